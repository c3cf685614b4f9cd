// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Worker processes. Each worker is forked into its pool's cgroups, creates
 * its own listening socket there (so the socket and every connection it
 * accepts belong to the pool's cgroup, where the sockops program counts them),
 * puts it in the socket array, and execs the pool's command with the socket
 * passed by systemd socket activation.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "attach.h"
#include "controller.h"
#include "log.h"
#include "sysutil.h"
#include "triage.skel.h"

#define LISTEN_BACKLOG		1024
#define BACKOFF_MIN_MS		100
#define BACKOFF_MAX_MS		30000
/* A worker that ran this long before it exited restarts after the minimum back-off again. */
#define STABLE_RUN_S		10
#define STOP_GRACE_MS		5000

/* Steps of the child before exec, reported to the parent on failure. */
enum spawn_stage {
	STAGE_CGROUP, STAGE_SOCKET, STAGE_BIND, STAGE_LISTEN, STAGE_REUSEPORT_PROG,
	STAGE_SOCKARRAY, STAGE_FD, STAGE_ENV, STAGE_USER, STAGE_EXEC,
};

static const char *const stage_names[] = {
	[STAGE_CGROUP] = "joining the pool's cgroups",
	[STAGE_SOCKET] = "creating the listening socket",
	[STAGE_BIND] = "binding the listening socket",
	[STAGE_LISTEN] = "listening",
	[STAGE_REUSEPORT_PROG] = "attaching the reuseport program",
	[STAGE_SOCKARRAY] = "adding the socket to the socket array",
	[STAGE_FD] = "moving the socket to fd 3",
	[STAGE_ENV] = "setting the environment",
	[STAGE_USER] = "switching user",
	[STAGE_EXEC] = "executing the command",
};

struct spawn_error {
	int stage;
	int err;
};

static int resolve_exe(const char *cmd, char *out, size_t len)
{
	const char *path = getenv("PATH");
	char dir[PATH_MAX];
	const char *p, *end;

	if (strchr(cmd, '/')) {
		snprintf(out, len, "%s", cmd);
		return access(out, X_OK) ? -errno : 0;
	}
	for (p = path ? path : "/usr/local/bin:/usr/bin:/bin"; *p; p = *end ? end + 1 : end) {
		end = strchrnul(p, ':');
		snprintf(dir, sizeof(dir), "%.*s", (int)(end - p), p);
		snprintf(out, len, "%s/%s", *dir ? dir : ".", cmd);
		if (!access(out, X_OK))
			return 0;
	}
	return -ENOENT;
}

static int resolve_user(struct pool *pool)
{
	const char *name = pool->cfg->user;
	struct passwd *pw;
	char *end;
	long uid;

	if (!name[0])
		return 0;
	pw = getpwnam(name);
	if (!pw) {
		uid = strtol(name, &end, 10);
		if (*end || uid < 0)
			return -ENOENT;
		pw = getpwuid(uid);
		if (!pw)
			return -ENOENT;
	}
	pool->set_user = true;
	pool->uid = pw->pw_uid;
	pool->gid = pw->pw_gid;
	return 0;
}

int workers_preflight(struct controller *ctl)
{
	struct pool *pool;
	int i, err;

	for (i = 0; i < ctl->nr_pools; i++) {
		pool = &ctl->pools[i];
		if (attach_is_service_pool(ctl, pool))
			continue;
		err = resolve_exe(pool->cfg->argv[0], pool->exe, sizeof(pool->exe));
		if (err) {
			pr_err("pool '%s': command '%s' not found or not executable (%s); fix 'command' at %s:%d or install it",
			       pool->cfg->name, pool->cfg->argv[0], strerror(-err), ctl->cfg->file,
			       pool->cfg->line);
			return err;
		}
		err = resolve_user(pool);
		if (err) {
			pr_err("pool '%s': user '%s' not found; fix 'user' at %s:%d or create the user",
			       pool->cfg->name, pool->cfg->user, ctl->cfg->file, pool->cfg->line);
			return err;
		}
	}
	return 0;
}

static void child_fail(int fd, int stage)
{
	struct spawn_error e = { stage, errno };

	if (write(fd, &e, sizeof(e)) < 0)
		_exit(126);
	_exit(127);
}

static int child_listen(struct controller *ctl, int errfd)
{
	struct config *cfg = ctl->cfg;
	struct sockaddr_storage ss = {};
	socklen_t sslen;
	int fd, one = 1;

	if (cfg->family == AF_INET6) {
		struct sockaddr_in6 *a6 = (void *)&ss;

		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(attach_listen_port(ctl));
		memcpy(&a6->sin6_addr, cfg->addr, 16);
		sslen = sizeof(*a6);
	} else {
		struct sockaddr_in *a4 = (void *)&ss;

		a4->sin_family = AF_INET;
		a4->sin_port = htons(attach_listen_port(ctl));
		memcpy(&a4->sin_addr, cfg->addr, 4);
		sslen = sizeof(*a4);
	}
	fd = attach_listener_socket(ctl, cfg->family);
	if (fd < 0)
		child_fail(errfd, STAGE_SOCKET);
	/* SO_REUSEADDR lets listen() succeed while TIME_WAIT sockets remain on the port. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)))
		child_fail(errfd, STAGE_SOCKET);
	if (bind(fd, (struct sockaddr *)&ss, sslen))
		child_fail(errfd, STAGE_BIND);
	if (listen(fd, LISTEN_BACKLOG))
		child_fail(errfd, STAGE_LISTEN);
	return fd;
}

static void child_exec(struct controller *ctl, struct pool *pool, struct worker *w, int errfd)
{
	int fd, prog_fd, i;
	sigset_t mask;
	__u64 value;
	char buf[32];

	errfd = fcntl(errfd, F_DUPFD_CLOEXEC, 10);
	/* The controller blocks these for its signalfd, and a blocked mask survives exec. */
	sigemptyset(&mask);
	sigprocmask(SIG_SETMASK, &mask, NULL);
	setpgid(0, 0);
	if (cgroup_enter(&pool->cg, 0))
		child_fail(errfd, STAGE_CGROUP);

	fd = child_listen(ctl, errfd);
	prog_fd = bpf_program__fd(ctl->skel->progs.triage_select);
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &prog_fd, sizeof(prog_fd)))
		child_fail(errfd, STAGE_REUSEPORT_PROG);
	value = fd;
	if (bpf_map_update_elem(bpf_map__fd(ctl->skel->maps.socks), &w->slot, &value, BPF_ANY))
		child_fail(errfd, STAGE_SOCKARRAY);

	if ((fd != 3 && dup2(fd, 3) < 0) || fcntl(3, F_SETFD, 0))
		child_fail(errfd, STAGE_FD);
	/* Every other descriptor, the error pipe included, closes at exec. */
	if (close_range(4, ~0U, CLOSE_RANGE_CLOEXEC))
		child_fail(errfd, STAGE_FD);

	/* The pool's environment first, so it cannot override the socket activation. */
	for (i = 0; i < pool->cfg->envc; i++)
		if (putenv(pool->cfg->env[i]))
			child_fail(errfd, STAGE_ENV);
	snprintf(buf, sizeof(buf), "%d", getpid());
	if (setenv("LISTEN_PID", buf, 1) || setenv("LISTEN_FDS", "1", 1) ||
	    setenv("LISTEN_FDNAMES", pool->cfg->name, 1))
		child_fail(errfd, STAGE_ENV);

	if (pool->set_user) {
		struct passwd *pw = getpwuid(pool->uid);

		if (!pw || initgroups(pw->pw_name, pool->gid) || setgid(pool->gid) ||
		    setuid(pool->uid))
			child_fail(errfd, STAGE_USER);
	}
	execv(pool->exe, pool->cfg->argv);
	child_fail(errfd, STAGE_EXEC);
}

static int worker_start(struct controller *ctl, struct pool *pool, struct worker *w)
{
	struct spawn_error e;
	int pipefd[2];
	ssize_t n;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		return -errno;
	}
	if (pid == 0) {
		close(pipefd[0]);
		child_exec(ctl, pool, w, pipefd[1]);
	}
	close(pipefd[1]);
	do {
		n = read(pipefd[0], &e, sizeof(e));
	} while (n < 0 && errno == EINTR);
	close(pipefd[0]);
	if (n == sizeof(e)) {
		waitpid(pid, NULL, 0);
		pr_err("pool '%s': worker %u failed while %s: %s", pool->cfg->name,
		       w->slot % TRIAGE_MAX_WORKERS, stage_names[e.stage], strerror(e.err));
		return -e.err;
	}
	w->pid = pid;
	clock_gettime(CLOCK_MONOTONIC, &w->started);
	w->restart_at.tv_sec = 0;
	state_add(&ctl->st, "worker %d %s", pid, pool->cg.v2);
	pr_info("pool '%s': worker %u started, pid %d, slot %u, cgroup %s", pool->cfg->name,
		w->slot % TRIAGE_MAX_WORKERS, pid, w->slot, pool->cg.v2);
	return port_bpf_publish_pool(ctl, pool);
}

int workers_start_all(struct controller *ctl)
{
	struct pool *pool;
	int i, j, err;

	for (i = 0; i < ctl->nr_pools; i++) {
		pool = &ctl->pools[i];
		if (attach_is_service_pool(ctl, pool))
			continue;
		for (j = 0; j < (int)pool->cfg->workers; j++) {
			pool->workers[j].slot = pool->id * TRIAGE_MAX_WORKERS + j;
			pool->workers[j].backoff_ms = BACKOFF_MIN_MS;
			err = worker_start(ctl, pool, &pool->workers[j]);
			if (!err)
				err = stop_requested();
			if (err)
				return err;
		}
	}
	return 0;
}

static double elapsed_s(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - since->tv_sec) + (now.tv_nsec - since->tv_nsec) / 1e9;
}

static struct worker *find_worker(struct controller *ctl, pid_t pid, struct pool **pool_out)
{
	int i, j;

	for (i = 0; i < ctl->nr_pools; i++)
		for (j = 0; j < (int)ctl->pools[i].cfg->workers; j++)
			if (ctl->pools[i].workers[j].pid == pid) {
				*pool_out = &ctl->pools[i];
				return &ctl->pools[i].workers[j];
			}
	return NULL;
}

static void describe_status(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exit status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "signal %s", strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "wait status 0x%x", status);
}

static void schedule_restart(struct pool *pool, struct worker *w, double lived)
{
	struct timespec *at = &w->restart_at;

	if (lived >= STABLE_RUN_S)
		w->backoff_ms = BACKOFF_MIN_MS;
	clock_gettime(CLOCK_MONOTONIC, at);
	at->tv_sec += w->backoff_ms / 1000;
	at->tv_nsec += (w->backoff_ms % 1000) * 1000000L;
	if (at->tv_nsec >= 1000000000L) {
		at->tv_sec++;
		at->tv_nsec -= 1000000000L;
	}
	pr_info("pool '%s': restarting worker %u in %ld ms (restart %d)", pool->cfg->name,
		w->slot % TRIAGE_MAX_WORKERS, w->backoff_ms, w->restarts + 1);
	w->backoff_ms = w->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : w->backoff_ms * 2;
}

void workers_reap(struct controller *ctl)
{
	struct worker *w;
	struct pool *pool;
	char how[64];
	int status;
	double lived;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		w = find_worker(ctl, pid, &pool);
		if (!w)
			continue;
		lived = elapsed_s(&w->started);
		describe_status(status, how, sizeof(how));
		state_add(&ctl->st, "exited %d", pid);
		w->pid = 0;
		/* The kernel drops the closed socket from the array; drop its slot too. */
		port_bpf_publish_pool(ctl, pool);
		if (ctl->stopping)
			continue;
		pr_warn("pool '%s': worker %u (pid %d) exited with %s after %.1f s",
			pool->cfg->name, w->slot % TRIAGE_MAX_WORKERS, pid, how, lived);
		schedule_restart(pool, w, lived);
	}
}

static bool due(const struct timespec *at)
{
	struct timespec now;

	if (!at->tv_sec)
		return false;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > at->tv_sec || (now.tv_sec == at->tv_sec && now.tv_nsec >= at->tv_nsec);
}

void workers_restart_due(struct controller *ctl)
{
	struct worker *w;
	struct pool *pool;
	int i, j;

	for (i = 0; i < ctl->nr_pools && !ctl->stopping; i++) {
		pool = &ctl->pools[i];
		for (j = 0; j < (int)pool->cfg->workers; j++) {
			w = &pool->workers[j];
			if (w->pid || !due(&w->restart_at))
				continue;
			w->restarts++;
			clock_gettime(CLOCK_MONOTONIC, &w->started);
			if (worker_start(ctl, pool, w))
				schedule_restart(pool, w, 0);
		}
	}
}

static int signal_workers(struct controller *ctl, int sig)
{
	int i, j, count = 0;
	pid_t pid;

	for (i = 0; i < ctl->nr_pools; i++)
		for (j = 0; j < (int)ctl->pools[i].cfg->workers; j++) {
			pid = ctl->pools[i].workers[j].pid;
			if (pid > 0 && !kill(pid, sig))
				count++;
		}
	return count;
}

void workers_stop_all(struct controller *ctl)
{
	int waited, left;

	ctl->stopping = true;
	left = signal_workers(ctl, SIGTERM);
	if (left)
		pr_info("stopping %d workers with SIGTERM", left);
	for (waited = 0; left && waited < STOP_GRACE_MS; waited += 20) {
		sleep_ms(20);
		workers_reap(ctl);
		left = signal_workers(ctl, 0);
	}
	if (left) {
		pr_warn("%d workers still running %d ms after SIGTERM, sending SIGKILL", left,
			STOP_GRACE_MS);
		signal_workers(ctl, SIGKILL);
		while (signal_workers(ctl, 0)) {
			sleep_ms(20);
			workers_reap(ctl);
		}
	}
}
