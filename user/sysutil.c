// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "sysutil.h"

char *read_text_file(const char *path, size_t max)
{
	size_t len = 0;
	ssize_t n;
	char *buf;
	int fd, saved;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	buf = malloc(max + 1);
	if (!buf) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	while (len < max && (n = read(fd, buf + len, max - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			saved = errno;
			free(buf);
			close(fd);
			errno = saved;
			return NULL;
		}
		len += n;
	}
	close(fd);
	buf[len] = '\0';
	return buf;
}

int write_file_fmt(const char *path, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	int fd, n, err = 0;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || n >= (int)sizeof(buf))
		return -EINVAL;
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, buf, n) != n)
		err = -errno;
	close(fd);
	return err;
}

static void sysctl_path(const char *name, char *path, size_t len)
{
	size_t i, off = snprintf(path, len, "/proc/sys/");

	for (i = 0; name[i] && off + 1 < len; i++)
		path[off++] = name[i] == '.' ? '/' : name[i];
	path[off] = '\0';
}

int sysctl_read(const char *name, char *value, size_t len)
{
	char path[256], *text;
	size_t n;

	sysctl_path(name, path, sizeof(path));
	text = read_text_file(path, 256);
	if (!text)
		return -errno;
	n = strcspn(text, "\n");
	text[n] = '\0';
	snprintf(value, len, "%s", text);
	free(text);
	return 0;
}

int sysctl_write(const char *name, const char *value)
{
	char path[256];

	sysctl_path(name, path, sizeof(path));
	return write_file_fmt(path, "%s\n", value);
}

unsigned long netns_inode(void)
{
	struct stat st;

	if (stat("/proc/self/ns/net", &st))
		return 0;
	return st.st_ino;
}

unsigned long long netns_cookie(void)
{
	unsigned long long cookie = 0;
	socklen_t len = sizeof(cookie);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return 0;
	if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len))
		cookie = 0;
	close(fd);
	return cookie;
}

int proc_comm(pid_t pid, char *buf, size_t len)
{
	char path[64], *text;

	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	text = read_text_file(path, 64);
	if (!text)
		return -errno;
	text[strcspn(text, "\n")] = '\0';
	snprintf(buf, len, "%s", text);
	free(text);
	return 0;
}

bool proc_alive(pid_t pid)
{
	char path[64], *text, *state;
	bool alive;

	/* A zombie has exited: it only waits for its parent to reap it. */
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	text = read_text_file(path, 1024);
	if (!text)
		return false;
	state = strrchr(text, ')');
	alive = state && state[1] == ' ' && state[2] != 'Z' && state[2] != 'X';
	free(text);
	return alive;
}

unsigned long long proc_start_time(pid_t pid)
{
	unsigned long long start = 0;
	char path[64], *text, *p;
	int field;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	text = read_text_file(path, 1024);
	if (!text)
		return 0;
	/* Field 22 is starttime; count from field 3, after the parenthesized name. */
	p = strrchr(text, ')');
	for (field = 2; p && *p && field < 22; p++)
		if (*p == ' ')
			field++;
	if (p && field == 22)
		start = strtoull(p, NULL, 10);
	free(text);
	return start;
}

bool proc_in_cgroup(pid_t pid, const char *cgroup_dir)
{
	char path[64], *text, *line;
	size_t dlen, llen;
	bool found = false;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", pid);
	text = read_text_file(path, 8192);
	if (!text)
		return false;
	dlen = strlen(cgroup_dir);
	for (line = strtok(text, "\n"); line && !found; line = strtok(NULL, "\n")) {
		if (strncmp(line, "0::", 3))
			continue;
		line += 3;
		llen = strlen(line);
		/* The record stores the full path, but /proc shows it relative to the mount. */
		found = llen > 1 && llen <= dlen && !strcmp(cgroup_dir + dlen - llen, line);
	}
	free(text);
	return found;
}

void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

int cgroup_rmdir_wait(const char *path)
{
	int i;

	/* Exited tasks leave a cgroup asynchronously, so EBUSY can last a moment. */
	for (i = 0; i < 100; i++) {
		if (!rmdir(path))
			return 0;
		if (errno != EBUSY)
			return -errno;
		sleep_ms(50);
	}
	return -EBUSY;
}

int mkdir_p(const char *path, mode_t mode)
{
	char buf[512];
	size_t i;

	snprintf(buf, sizeof(buf), "%s", path);
	for (i = 1; buf[i]; i++) {
		if (buf[i] != '/')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, mode) && errno != EEXIST)
			return -errno;
		buf[i] = '/';
	}
	if (mkdir(buf, mode) && errno != EEXIST)
		return -errno;
	return 0;
}

int bpf_percpu_sum(int fd, unsigned int key, unsigned long long *out, int nwords)
{
	int ncpu = libbpf_num_possible_cpus(), i, j;
	unsigned long long *vals;

	if (ncpu <= 0)
		return -EINVAL;
	vals = calloc(ncpu, nwords * sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	if (bpf_map_lookup_elem(fd, &key, vals)) {
		free(vals);
		return -errno;
	}
	memset(out, 0, nwords * sizeof(*out));
	for (i = 0; i < ncpu; i++)
		for (j = 0; j < nwords; j++)
			out[j] += vals[i * nwords + j];
	free(vals);
	return 0;
}
