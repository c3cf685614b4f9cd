// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bpf/libbpf.h>
#include <net/if.h>

#include "log.h"
#include "state.h"
#include "sysutil.h"
#include "tc.h"

#define MAX_RECORDS	4096
/* Seconds a worker gets between SIGTERM and SIGKILL. */
#define STOP_GRACE_S	5

void state_path(uint16_t port, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%u.state", STATE_DIR, port);
}

int state_create(struct state *st, uint16_t port)
{
	mkdir(STATE_DIR, 0755);
	st->port = port;
	state_path(port, st->path, sizeof(st->path));
	st->fd = open(st->path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
	if (st->fd < 0)
		return -errno;
	return 0;
}

int state_add(struct state *st, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= (int)sizeof(line) - 1)
		return -ENAMETOOLONG;
	line[n++] = '\n';
	if (write(st->fd, line, n) != n)
		return -errno;
	fdatasync(st->fd);
	return 0;
}

void state_close(struct state *st)
{
	if (st->fd >= 0)
		close(st->fd);
	st->fd = -1;
}

/* Reads the record into TEXT and its lines into LINES; the caller frees both. */
static int state_read(uint16_t port, char **text_out, char ***lines_out, int *count)
{
	char path[128], *text, **lines, *save, *line;
	int n = 0;

	state_path(port, path, sizeof(path));
	text = read_text_file(path, 1 << 20);
	if (!text)
		return -errno;
	lines = calloc(MAX_RECORDS, sizeof(*lines));
	if (!lines) {
		free(text);
		return -ENOMEM;
	}
	for (line = strtok_r(text, "\n", &save); line && n < MAX_RECORDS;
	     line = strtok_r(NULL, "\n", &save))
		lines[n++] = line;
	if (n == 0) {
		free(text);
		free(lines);
		return -EINVAL;
	}
	*text_out = text;
	*lines_out = lines;
	*count = n;
	return 0;
}

pid_t state_live_controller(uint16_t port)
{
	char *text, **lines, cmd[64];
	int n, pid = 0;

	if (state_read(port, &text, &lines, &n))
		return 0;
	if (sscanf(lines[0], "controller %d", &pid) != 1)
		pid = 0;
	free(text);
	free(lines);
	if (pid <= 0 || proc_comm(pid, cmd, sizeof(cmd)) || strcmp(cmd, "triage"))
		return 0;
	return pid;
}

static bool worker_exited(char **lines, int n, int pid)
{
	int i, other;

	for (i = 0; i < n; i++)
		if (sscanf(lines[i], "exited %d", &other) == 1 && other == pid)
			return true;
	return false;
}

/* Sends SIGTERM to the recorded workers still in their cgroup, then SIGKILL after the grace. */
static void undo_workers(char **lines, int n)
{
	pid_t pids[MAX_RECORDS];
	char cg[512];
	int i, pid, count = 0;
	time_t deadline;

	for (i = 0; i < n; i++) {
		if (sscanf(lines[i], "worker %d %511s", &pid, cg) != 2 || worker_exited(lines, n, pid))
			continue;
		if (!proc_in_cgroup(pid, cg))
			continue;
		pr_info("worker pid %d in %s: sending SIGTERM", pid, cg);
		if (kill(pid, SIGTERM) == 0)
			pids[count++] = pid;
	}
	deadline = time(NULL) + STOP_GRACE_S;
	for (i = 0; i < count; i++) {
		while (proc_alive(pids[i]) && time(NULL) < deadline)
			sleep_ms(50);
		if (proc_alive(pids[i])) {
			pr_warn("worker pid %d: still running %d s after SIGTERM, sending SIGKILL",
				pids[i], STOP_GRACE_S);
			kill(pids[i], SIGKILL);
		}
	}
}

static int undo_tc(const char *line)
{
	unsigned int ifindex, handle, prio, hook_created;
	char ifname[IF_NAMESIZE + 1];
	int err;

	if (sscanf(line, "tc %u %u %u %u %16s", &ifindex, &handle, &prio, &hook_created,
		   ifname) != 5)
		return -EINVAL;
	err = tc_filter_remove(ifindex, handle, prio, hook_created);
	if (err && err != -ENOENT && err != -ENODEV) {
		pr_err("interface %s: failed to remove tc filter handle %u prio %u: %s",
		       ifname, handle, prio, strerror(-err));
		return err;
	}
	pr_info("interface %s: removed tc ingress filter handle %u prio %u%s", ifname, handle,
		prio, hook_created ? " and the clsact qdisc" : "");
	return 0;
}

static int undo_sysctl(const char *line, unsigned long netns)
{
	char name[128], value[64], cur[64];
	unsigned long current = netns_inode();
	int err;

	if (sscanf(line, "sysctl %127s %63s", name, value) != 2)
		return -EINVAL;
	if (current != netns) {
		pr_err("sysctl %s: set in network namespace net:[%lu], but this is net:[%lu]; "
		       "run 'triage detach' inside that namespace (nsenter --net=...)",
		       name, netns, current);
		return -EXDEV;
	}
	if (sysctl_read(name, cur, sizeof(cur)) == 0 && strcmp(cur, value) == 0)
		return 0;
	err = sysctl_write(name, value);
	if (err) {
		pr_err("sysctl %s: failed to restore value %s: %s", name, value, strerror(-err));
		return err;
	}
	pr_info("sysctl %s: restored %s (was %s)", name, value, cur);
	return 0;
}

static bool has_subdirs(const char *path)
{
	struct dirent *de;
	DIR *d = opendir(path);
	bool found = false;

	while (d && !found && (de = readdir(d)))
		found = de->d_type == DT_DIR && de->d_name[0] != '.';
	if (d)
		closedir(d);
	return found;
}

static int undo_cgroup(const char *line)
{
	char path[512];
	int err;

	if (sscanf(line, "cgroup %511s", path) != 1)
		return -EINVAL;
	if (has_subdirs(path)) {
		/* A parent such as the shared "triage" folder still serves another port. */
		pr_info("cgroup %s: kept, other cgroups below it", path);
		return 0;
	}
	err = cgroup_rmdir_wait(path);
	if (err && err != -ENOENT) {
		pr_err("cgroup %s: failed to remove: %s", path, strerror(-err));
		return err;
	}
	if (!err)
		pr_info("cgroup %s: removed", path);
	return 0;
}

static int undo_subtree(const char *line)
{
	char path[512], ctrl[32], buf[600];
	int err;

	if (sscanf(line, "subtree %511s %31s", path, ctrl) != 2)
		return -EINVAL;
	snprintf(buf, sizeof(buf), "%s/cgroup.subtree_control", path);
	err = write_file_fmt(buf, "-%s", ctrl);
	if (err) {
		pr_err("cgroup %s: failed to disable controller %s in cgroup.subtree_control: %s",
		       path, ctrl, strerror(-err));
		return err;
	}
	pr_info("cgroup %s: disabled controller %s in cgroup.subtree_control", path, ctrl);
	return 0;
}

static int undo_line(const char *line, unsigned long netns)
{
	char path[512];

	if (!strncmp(line, "tc ", 3))
		return undo_tc(line);
	if (!strncmp(line, "sysctl ", 7))
		return undo_sysctl(line, netns);
	if (!strncmp(line, "cgroup ", 7))
		return undo_cgroup(line);
	if (!strncmp(line, "subtree ", 8))
		return undo_subtree(line);
	if (sscanf(line, "pins %511s", path) == 1)
		return pins_remove(path);
	return 0;
}

int state_undo(uint16_t port)
{
	unsigned long netns = 0;
	char *text, **lines, path[128];
	int i, n, err, first = 0, pid;

	err = state_read(port, &text, &lines, &n);
	if (err)
		return err;
	if (sscanf(lines[0], "controller %d %lu", &pid, &netns) != 2) {
		pr_warn("port %u: record has no controller line; undoing it anyway", port);
	} else if (netns != netns_inode()) {
		/* tc filters and sysctls belong to the run's namespace, so undo nothing here. */
		pr_err("port %u: attached in network namespace net:[%lu], but this is net:[%lu]; run the command inside that namespace (nsenter --net=/run/netns/NAME)",
		       port, netns, netns_inode());
		free(text);
		free(lines);
		return -EXDEV;
	}

	undo_workers(lines, n);
	for (i = n - 1; i >= 0; i--) {
		err = undo_line(lines[i], netns);
		if (err && !first)
			first = err;
	}
	free(text);
	free(lines);
	if (first) {
		pr_err("port %u: some objects were not removed; the record stays for another 'triage detach --port %u'",
		       port, port);
		return first;
	}
	state_path(port, path, sizeof(path));
	unlink(path);
	return 0;
}

int pins_remove(const char *dir)
{
	struct dirent *de;
	char path[512];
	DIR *d = opendir(dir);
	int err = 0;

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) && errno != ENOENT && !err)
			err = -errno;
	}
	closedir(d);
	if (rmdir(dir) && errno != ENOENT && !err)
		err = -errno;
	if (err) {
		pr_err("pins %s: failed to remove: %s", dir, strerror(-err));
		return err;
	}
	pr_info("pins %s: removed", dir);
	/* The shared parent goes only when no other port has pins in it. */
	rmdir(PIN_ROOT);
	return 0;
}
