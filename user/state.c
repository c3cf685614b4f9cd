// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bpf/libbpf.h>
#include <net/if.h>

#include "attach.h"
#include "log.h"
#include "state.h"
#include "sysutil.h"
#include "tc.h"

/* Seconds a worker gets between SIGTERM and SIGKILL. */
#define STOP_GRACE_S	5

/* The run whose record is being undone. */
struct undo_ctx {
	uint16_t port;
	unsigned long long netns;	/* cookie of the run's network namespace */
	bool skip_netns;		/* that namespace is gone: skip its objects */
	char **lines;			/* the record, for the service processes it protects */
	int nr_lines;
};

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
	text = read_text_file(path, 64 << 20);
	if (!text)
		return -errno;
	/* A line needs at least two bytes, so this many pointers always suffice. */
	lines = calloc(strlen(text) / 2 + 1, sizeof(*lines));
	if (!lines) {
		free(text);
		return -ENOMEM;
	}
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
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
	unsigned long long started = 0;
	int n, pid = 0;

	if (state_read(port, &text, &lines, &n))
		return 0;
	if (sscanf(lines[0], "controller %d %*u %llu", &pid, &started) != 2)
		pid = 0;
	free(text);
	free(lines);
	if (pid <= 0 || proc_comm(pid, cmd, sizeof(cmd)) || strcmp(cmd, "triage"))
		return 0;
	/* A reused pid has another start time, and a zombie no longer runs. */
	if (!proc_alive(pid) || proc_start_time(pid) != started)
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
	pid_t *pids = calloc(n, sizeof(*pids));
	const char *cg;
	int i, pid, off, count = 0;
	time_t deadline;

	for (i = 0; pids && i < n; i++) {
		if (sscanf(lines[i], "worker %d %n", &pid, &off) != 1 || worker_exited(lines, n, pid))
			continue;
		cg = lines[i] + off;
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
	free(pids);
}

/*
 * Finds the record of another port in network namespace NETNS (any, when
 * NETNS is 0) that has a line starting with PREFIX. Returns 0 and its path
 * in PATH, or -ENOENT.
 */
static int find_other_record(uint16_t port, unsigned long long netns, const char *prefix,
			     char *path, size_t len)
{
	unsigned int other, pid;
	unsigned long long other_ns;
	char *text, *line, *save;
	struct dirent *de;
	bool found = false;
	DIR *d = opendir(STATE_DIR);

	while (d && !found && (de = readdir(d))) {
		if (sscanf(de->d_name, "%u.state", &other) != 1 || other == port)
			continue;
		snprintf(path, len, "%s/%s", STATE_DIR, de->d_name);
		text = read_text_file(path, 64 << 20);
		if (!text)
			continue;
		if (sscanf(text, "controller %u %llu", &pid, &other_ns) == 2 &&
		    (!netns || other_ns == netns))
			for (line = strtok_r(text, "\n", &save); line && !found;
			     line = strtok_r(NULL, "\n", &save))
				found = !strncmp(line, prefix, strlen(prefix));
		free(text);
	}
	if (d)
		closedir(d);
	return found ? 0 : -ENOENT;
}

static int append_line(const char *path, const char *line)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC), err = 0;
	size_t n = strlen(line);

	if (fd < 0)
		return -errno;
	if (write(fd, line, n) != (ssize_t)n || write(fd, "\n", 1) != 1)
		err = -errno;
	close(fd);
	return err;
}

/*
 * Passes the undo of a shared object to another run in the same namespace,
 * which still needs it: that run's record gets LINE and undoes it at its stop.
 */
static bool hand_over(const struct undo_ctx *ctx, bool same_netns, const char *prefix,
		      const char *line, const char *what)
{
	char path[300];

	if (find_other_record(ctx->port, same_netns ? ctx->netns : 0, prefix, path,
			      sizeof(path)) ||
	    append_line(path, line))
		return false;
	pr_info("%s: still used by the run recorded in %s, which now undoes it", what, path);
	return true;
}

static int undo_tc(const struct undo_ctx *ctx, const char *line)
{
	unsigned int ifindex, handle, prio, hook_created;
	char ifname[IF_NAMESIZE + 1];
	int err;

	if (sscanf(line, "tc %u %u %u %u %16s", &ifindex, &handle, &prio, &hook_created,
		   ifname) != 5)
		return -EINVAL;
	if (ctx->skip_netns) {
		pr_info("interface %s: tc filter skipped, its network namespace is gone", ifname);
		return 0;
	}
	if (hook_created) {
		char prefix[32], qdisc[64], what[64];

		/* Another port's filter sits on the clsact qdisc that this run created. */
		snprintf(prefix, sizeof(prefix), "tc %u ", ifindex);
		snprintf(qdisc, sizeof(qdisc), "qdisc %u %s", ifindex, ifname);
		snprintf(what, sizeof(what), "interface %s: clsact qdisc", ifname);
		if (hand_over(ctx, true, prefix, qdisc, what))
			hook_created = 0;
	}
	err = tc_filter_remove(ifindex, handle, prio, hook_created);
	/* EINVAL: the clsact qdisc, and so the filter, is already gone. */
	if (err && err != -ENOENT && err != -ENODEV && err != -EINVAL) {
		pr_err("interface %s: failed to remove tc filter handle %u prio %u: %s",
		       ifname, handle, prio, strerror(-err));
		return err;
	}
	pr_info("interface %s: removed tc ingress filter handle %u prio %u%s", ifname, handle,
		prio, hook_created ? " and the clsact qdisc" : "");
	return 0;
}

static int undo_qdisc(const struct undo_ctx *ctx, const char *line)
{
	char ifname[IF_NAMESIZE + 1], prefix[32], what[64];
	unsigned int ifindex;

	if (sscanf(line, "qdisc %u %16s", &ifindex, ifname) != 2)
		return -EINVAL;
	if (ctx->skip_netns)
		return 0;
	/* A third run may still have a filter on it: pass the qdisc on again. */
	snprintf(prefix, sizeof(prefix), "tc %u ", ifindex);
	snprintf(what, sizeof(what), "interface %s: clsact qdisc", ifname);
	if (hand_over(ctx, true, prefix, line, what))
		return 0;
	tc_hook_remove(ifindex);
	pr_info("interface %s: removed the clsact qdisc", ifname);
	return 0;
}

static int undo_sysctl(const struct undo_ctx *ctx, const char *line)
{
	char name[128], value[64], cur[64], what[160];
	unsigned long long current = netns_cookie();
	int err;

	if (sscanf(line, "sysctl %127s %63s", name, value) != 2)
		return -EINVAL;
	if (ctx->skip_netns) {
		pr_info("sysctl %s: skipped, its network namespace is gone", name);
		return 0;
	}
	if (current != ctx->netns) {
		pr_err("sysctl %s: set in the network namespace with cookie %llu, but this one has cookie %llu; run 'triage detach' inside that namespace (nsenter --net=...)",
		       name, ctx->netns, current);
		return -EXDEV;
	}
	if (sysctl_read(name, cur, sizeof(cur)) == 0 && strcmp(cur, value) == 0)
		return 0;
	/*
	 * Every payload-mode port of the namespace needs the syncookies value this
	 * run set, and every port needs tcp_migrate_req.
	 */
	snprintf(what, sizeof(what), "sysctl %s", name);
	if (hand_over(ctx, true, strstr(name, "syncookies") ? "tc " : "pins ", line, what))
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

/*
 * Ends what is left in a cgroup this run created: children that its workers
 * forked. They keep the pool's listening socket, so the port stays taken.
 */
static void end_cgroup_procs(const struct undo_ctx *ctx, const char *path)
{
	char file[600], *text, *line, *save;
	int pid, round;

	snprintf(file, sizeof(file), "%s/cgroup.procs", path);
	for (round = 0; round < 2; round++) {
		text = read_text_file(file, 1 << 20);
		if (!text || !*text) {
			free(text);
			return;
		}
		for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			pid = atoi(line);
			if (pid <= 0)
				continue;
			/* An attached service's processes are never signalled. */
			if (attach_protects_pid(ctx->lines, ctx->nr_lines, pid)) {
				pr_err("cgroup %s: service process %d is still in it; left running and the cgroup kept: move the process out, then run 'triage detach --port %u' again",
				       path, pid, ctx->port);
				continue;
			}
			pr_warn("cgroup %s: process %d still runs, sending %s", path, pid,
				round ? "SIGKILL" : "SIGTERM");
			kill(pid, round ? SIGKILL : SIGTERM);
		}
		free(text);
		sleep_ms(round ? 100 : 1000);
	}
}

/* Removes cgroups that workers made below PATH, deepest first, ending their processes. */
static void remove_nested(const struct undo_ctx *ctx, const char *path, int depth)
{
	char child[600];
	struct dirent *de;
	DIR *d;

	if (depth > 16 || !(d = opendir(path)))
		return;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		snprintf(child, sizeof(child), "%s/%s", path, de->d_name);
		remove_nested(ctx, child, depth + 1);
		end_cgroup_procs(ctx, child);
		if (!cgroup_rmdir_wait(child))
			pr_info("cgroup %s: removed (made by a worker)", child);
	}
	closedir(d);
}

/* Returns true for a pool folder, <root>/<port>/<pool>, which only this run uses. */
static bool is_pool_folder(const struct undo_ctx *ctx, const char *path)
{
	char parent[600], port[16];
	const char *slash = strrchr(path, '/'), *prev;

	if (!slash)
		return false;
	snprintf(parent, sizeof(parent), "%.*s", (int)(slash - path), path);
	prev = strrchr(parent, '/');
	snprintf(port, sizeof(port), "%u", ctx->port);
	return prev && !strcmp(prev + 1, port);
}

static int undo_cgroup(const struct undo_ctx *ctx, const char *line)
{
	const char *path = line + strlen("cgroup ");
	char prefix[600], final[600], what[600];
	int err;

	if (is_pool_folder(ctx, path))
		remove_nested(ctx, path, 0);

	if (has_subdirs(path)) {
		/* A parent such as the shared "triage" folder still serves another port. */
		snprintf(prefix, sizeof(prefix), "cgroup %s/", path);
		snprintf(final, sizeof(final), "final %s", line);
		snprintf(what, sizeof(what), "cgroup %s", path);
		if (!hand_over(ctx, false, prefix, final, what))
			pr_info("cgroup %s: kept, other cgroups below it", path);
		return 0;
	}
	end_cgroup_procs(ctx, path);
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
	char path[512], buf[600];
	const char *ctrl = strrchr(line, ' ');
	int err;

	if (!ctrl || ctrl <= line + strlen("subtree "))
		return -EINVAL;
	snprintf(path, sizeof(path), "%.*s", (int)(ctrl - line - strlen("subtree ")),
		 line + strlen("subtree "));
	ctrl++;
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

static int undo_line(const struct undo_ctx *ctx, const char *line)
{
	if (!strncmp(line, "tc ", 3))
		return undo_tc(ctx, line);
	if (!strncmp(line, "qdisc ", 6))
		return undo_qdisc(ctx, line);
	if (!strncmp(line, "sysctl ", 7))
		return undo_sysctl(ctx, line);
	if (!strncmp(line, "cgroup ", 7))
		return undo_cgroup(ctx, line);
	if (!strncmp(line, "subtree ", 8))
		return undo_subtree(line);
	if (!strncmp(line, "pins ", 5))
		return pins_remove(line + 5);
	if (!strncmp(line, "attach", 6))
		return attach_undo_line(line);
	return 0;
}

static int state_undo_locked(uint16_t port, bool force);

int state_lock(void)
{
	int fd;

	mkdir(STATE_DIR, 0755);
	fd = open(STATE_DIR "/.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		flock(fd, LOCK_EX);
	return fd;
}

void state_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}

int state_undo(uint16_t port, bool force)
{
	int lock = state_lock(), ret;

	ret = state_undo_locked(port, force);
	state_unlock(lock);
	return ret;
}

static int state_undo_locked(uint16_t port, bool force)
{
	struct undo_ctx ctx = { .port = port };
	char *text, **lines, path[128];
	int i, n, err, first = 0, pid;

	err = state_read(port, &text, &lines, &n);
	if (err)
		return err;
	if (sscanf(lines[0], "controller %d %llu", &pid, &ctx.netns) != 2) {
		pr_warn("port %u: record has no controller line; undoing it anyway", port);
	} else if (ctx.netns != netns_cookie() && force) {
		pr_warn("port %u: recorded in the network namespace with cookie %llu, not this one; --force skips that namespace's tc filters and sysctls",
			port, ctx.netns);
		ctx.skip_netns = true;
	} else if (ctx.netns != netns_cookie()) {
		/* tc filters and sysctls belong to the run's namespace, so undo nothing here. */
		pr_err("port %u: attached in the network namespace with cookie %llu, but this one has cookie %llu; run the command inside that namespace (nsenter --net=/run/netns/NAME), or add --force if that namespace no longer exists",
		       port, ctx.netns, netns_cookie());
		free(text);
		free(lines);
		return -EXDEV;
	}
	ctx.lines = lines;
	ctx.nr_lines = n;

	undo_workers(lines, n);
	for (i = n - 1; i >= 0; i--) {
		if (!strncmp(lines[i], "final ", 6))
			continue;
		err = undo_line(&ctx, lines[i]);
		if (err && !first)
			first = err;
	}
	/* Parents handed over by another run go last, once this run's folders are gone. */
	for (i = n - 1; i >= 0; i--) {
		if (strncmp(lines[i], "final ", 6))
			continue;
		err = undo_line(&ctx, lines[i] + 6);
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
	/* The pools report of a crashed run would otherwise read as current. */
	snprintf(path, sizeof(path), "%s/%u.pools.json", STATE_DIR, port);
	unlink(path);
	snprintf(path, sizeof(path), "%s/%u.pools.txt", STATE_DIR, port);
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
