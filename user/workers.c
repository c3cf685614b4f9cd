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
#include <netinet/tcp.h>
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

int workers_preflight_pool(struct controller *ctl, struct pool *pool)
{
	int err;

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
	return 0;
}

int workers_preflight(struct controller *ctl)
{
	int i, err;

	for (i = 0; i < ctl->nr_pools; i++) {
		if (attach_is_service_pool(ctl, &ctl->pools[i]))
			continue;
		err = workers_preflight_pool(ctl, &ctl->pools[i]);
		if (err)
			return err;
	}
	/* Templates are checked now, so a missing command shows at start, not when a pool emerges. */
	for (i = 0; i < ctl->cfg->nr_templates; i++) {
		struct pool tmp = { .cfg = &ctl->cfg->templates[i] };

		err = workers_preflight_pool(ctl, &tmp);
		if (err)
			return err;
	}
	return 0;
}

static void child_fail(int fd, int stage)
{
	struct spawn_error e = { stage, errno };

	if (send(fd, &e, sizeof(e), MSG_NOSIGNAL) < 0)
		_exit(126);
	_exit(127);
}

/* Passes a copy of the listener to the controller, which keeps it to drain it later. */
static int send_listener(int sock, int fd)
{
	char ctrl[CMSG_SPACE(sizeof(int))] = {};
	struct spawn_error e = { -1, 0 };
	struct iovec iov = { &e, sizeof(e) };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctrl, .msg_controllen = sizeof(ctrl),
	};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &msg, MSG_NOSIGNAL) < 0 ? -1 : 0;
}

/* Receives one message of the child: an error, or the listener in *FD. */
static ssize_t recv_spawn(int sock, struct spawn_error *e, int *fd)
{
	char ctrl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { e, sizeof(*e) };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctrl, .msg_controllen = sizeof(ctrl),
	};
	struct cmsghdr *c;
	ssize_t n;

	do {
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	for (c = CMSG_FIRSTHDR(&msg); n > 0 && c; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(fd, CMSG_DATA(c), sizeof(int));
	return n;
}

static int child_listen(struct controller *ctl, int errfd)
{
	struct config *cfg = ctl->cfg;
	struct sockaddr_storage ss = {};
	uint8_t addr[16];
	socklen_t sslen;
	int fd, one = 1;

	attach_listen_addr(ctl, addr);
	if (cfg->family == AF_INET6) {
		struct sockaddr_in6 *a6 = (void *)&ss;

		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(attach_listen_port(ctl));
		memcpy(&a6->sin6_addr, addr, 16);
		sslen = sizeof(*a6);
	} else {
		struct sockaddr_in *a4 = (void *)&ss;

		a4->sin_family = AF_INET;
		a4->sin_port = htons(attach_listen_port(ctl));
		memcpy(&a4->sin_addr, addr, 4);
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
	if (send_listener(errfd, 3))
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

/* Keeps the listener that the child passed, and maps its cookie to the worker's slot. */
static void schedule_restart(struct pool *pool, struct worker *w, double lived);
static double elapsed_s(const struct timespec *since);

static void keep_listener(struct controller *ctl, struct pool *pool, struct worker *w, int fd)
{
	socklen_t len = sizeof(w->cookie);

	w->lfd = fd;
	w->cookie = 0;
	if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &w->cookie, &len) ||
	    port_bpf_publish_listener(ctl, w->cookie, w->slot))
		pr_warn("pool '%s': worker %u: listener cookie not recorded (%s); its queued connections migrate by the kernel's hash if it closes",
			pool->cfg->name, w->slot % TRIAGE_MAX_WORKERS, strerror(errno));
}

static void log_started(struct controller *ctl, struct pool *pool, struct worker *w)
{
	state_add(&ctl->st, "worker %d %s", w->pid, pool->cg.v2);
	pr_info("pool '%s': worker %u started, pid %d, slot %u, cgroup %s", pool->cfg->name,
		w->slot % TRIAGE_MAX_WORKERS, w->pid, w->slot, pool->cg.v2);
}

/*
 * The new worker's listener took the parked one's place in the socket array.
 * Shutting the parked listener down now hands what queued on it to the
 * reuseport program, which finds the new listener in the same pool.
 */
static int replace_parked(struct controller *ctl, struct pool *pool, struct worker *w, int fd)
{
	int old_fd = w->lfd, queued = 0, err;
	__u64 old_cookie = w->cookie;
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (!getsockopt(old_fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		queued = ti.tcpi_unacked;
	w->parked = false;
	w->lfd = -1;
	if (fd >= 0)
		keep_listener(ctl, pool, w, fd);
	log_started(ctl, pool, w);
	err = port_bpf_publish_pool(ctl, pool);
	shutdown(old_fd, SHUT_RD);
	close(old_fd);
	port_bpf_forget_listener(ctl, old_cookie);
	pr_info("pool '%s': the %d connections queued while it had no worker move to worker %u",
		pool->cfg->name, queued, w->slot % TRIAGE_MAX_WORKERS);
	return err;
}

/*
 * A failed child may have put its own socket in W's slot before it died,
 * which emptied the slot when the socket closed: put the parked listener
 * back, so the pool's connections keep queueing in the pool.
 */
static void repark(struct controller *ctl, struct worker *w)
{
	__u64 value;

	if (!w->parked || w->lfd < 0)
		return;
	value = w->lfd;
	if (bpf_map_update_elem(bpf_map__fd(ctl->skel->maps.socks), &w->slot, &value, BPF_ANY))
		pr_err("slot %u: failed to put the parked listener back in the socket array: %s",
		       w->slot, strerror(errno));
}

/* Whether POOL has a running listener other than W's. */
static bool other_listener(const struct pool *pool, const struct worker *w)
{
	int j;

	for (j = 0; j < TRIAGE_MAX_WORKERS; j++)
		if (&pool->workers[j] != w && pool->workers[j].pid > 0 &&
		    pool->workers[j].state == W_RUNNING && pool->workers[j].in_pool)
			return true;
	return false;
}

static int worker_start(struct controller *ctl, struct pool *pool, struct worker *w)
{
	struct spawn_error e;
	int sv[2], fd = -1;
	ssize_t n;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -errno;
	}
	if (pid == 0) {
		close(sv[0]);
		child_exec(ctl, pool, w, sv[1]);
	}
	close(sv[1]);
	/* First the listener, then either an error from exec or the end of the stream. */
	n = recv_spawn(sv[0], &e, &fd);
	if (n == sizeof(e) && e.stage < 0)
		n = recv_spawn(sv[0], &e, &fd);
	close(sv[0]);
	if ((n == sizeof(e) && e.stage >= 0) || fd < 0) {
		if (fd >= 0)
			close(fd);
		waitpid(pid, NULL, 0);
		if (n == sizeof(e) && e.stage >= 0)
			pr_err("pool '%s': worker %u failed while %s: %s", pool->cfg->name,
			       w->slot % TRIAGE_MAX_WORKERS, stage_names[e.stage], strerror(e.err));
		else
			pr_err("pool '%s': worker %u (pid %d) died before it passed its listener",
			       pool->cfg->name, w->slot % TRIAGE_MAX_WORKERS, pid);
		repark(ctl, w);
		return n == sizeof(e) && e.stage >= 0 ? -e.err : -ECHILD;
	}
	w->pid = pid;
	w->state = W_RUNNING;
	clock_gettime(CLOCK_MONOTONIC, &w->started);
	w->restart_at.tv_sec = 0;
	if (w->parked)
		return replace_parked(ctl, pool, w, fd);
	if (fd >= 0)
		keep_listener(ctl, pool, w, fd);
	log_started(ctl, pool, w);
	return port_bpf_publish_pool(ctl, pool);
}

static void worker_init(struct pool *pool, struct worker *w, int index)
{
	memset(w, 0, sizeof(*w));
	w->slot = pool->id * TRIAGE_MAX_WORKERS + index;
	w->backoff_ms = BACKOFF_MIN_MS;
	w->lfd = -1;
}

void workers_init_pool(struct pool *pool)
{
	int j;

	for (j = 0; j < TRIAGE_MAX_WORKERS; j++)
		worker_init(pool, &pool->workers[j], j);
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
			pool->workers[j].in_pool = true;
			err = worker_start(ctl, pool, &pool->workers[j]);
			if (!err)
				err = stop_requested();
			if (err)
				return err;
		}
	}
	return 0;
}

int workers_in_pool(const struct pool *pool)
{
	int j, n = 0;

	for (j = 0; j < TRIAGE_MAX_WORKERS; j++)
		n += pool->workers[j].in_pool;
	return n;
}

int workers_alive(const struct pool *pool)
{
	int j, n = 0;

	for (j = 0; j < TRIAGE_MAX_WORKERS; j++)
		n += pool->workers[j].pid > 0;
	return n;
}

int workers_add(struct controller *ctl, struct pool *pool, int n)
{
	struct worker *w;
	int j, started = 0;

	for (j = 0; j < TRIAGE_MAX_WORKERS && started < n; j++) {
		w = &pool->workers[j];
		/* A draining worker still owns its slot until it exits. */
		if (w->in_pool || w->state != W_IDLE || w->pid)
			continue;
		w->in_pool = true;
		w->backoff_ms = BACKOFF_MIN_MS;
		if (worker_start(ctl, pool, w))
			schedule_restart(pool, w, 0);
		started++;
	}
	return started;
}

/* Stops new connections reaching W's listener and moves its queued ones elsewhere. */
static void release_listener(struct controller *ctl, struct worker *w)
{
	if (w->lfd < 0)
		return;
	bpf_map_delete_elem(bpf_map__fd(ctl->skel->maps.socks), &w->slot);
	/*
	 * shutdown() of a listener unhashes it and hands each queued connection
	 * to the reuseport program's migration path, so none is reset.
	 */
	shutdown(w->lfd, SHUT_RD);
	close(w->lfd);
	port_bpf_forget_listener(ctl, w->cookie);
	w->lfd = -1;
}

static void drain_one(struct controller *ctl, struct pool *pool, struct worker *w)
{
	w->in_pool = false;
	w->restart_at.tv_sec = 0;
	if (!w->pid) {
		w->state = W_IDLE;
		w->parked = false;
		port_bpf_publish_pool(ctl, pool);
		release_listener(ctl, w);
		return;
	}
	w->state = W_DRAINING;
	port_bpf_publish_pool(ctl, pool);
	release_listener(ctl, w);
	kill(w->pid, SIGTERM);
	clock_gettime(CLOCK_MONOTONIC, &w->kill_at);
	w->kill_at.tv_sec += STOP_GRACE_MS / 1000;
	pr_info("pool '%s': draining worker %u (pid %d): out of the socket array, queued connections moved, SIGTERM sent, SIGKILL after %d ms",
		pool->cfg->name, w->slot % TRIAGE_MAX_WORKERS, w->pid, STOP_GRACE_MS);
}

int workers_drain(struct controller *ctl, struct pool *pool, int n)
{
	int j, done = 0;

	/* The highest slots go first, so a pool keeps its low slots across resizes. */
	for (j = TRIAGE_MAX_WORKERS - 1; j >= 0 && done < n; j--) {
		if (!pool->workers[j].in_pool)
			continue;
		drain_one(ctl, pool, &pool->workers[j]);
		done++;
	}
	return done;
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
		for (j = 0; j < TRIAGE_MAX_WORKERS; j++)
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


/*
 * A worker that the OOM killer ended at its pool's memory limit died of what
 * a request asked for, not of a broken command. It restarts after the
 * shortest back-off, so the pool is refilled as soon as the request is gone.
 */
static bool killed_by_oom(struct pool *pool, int status)
{
	unsigned long long n;

	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
		return false;
	n = cgroup_oom_kills(&pool->cg);
	if (n <= pool->oom_seen)
		return false;
	pool->oom_seen = n;
	return true;
}

void workers_reap(struct controller *ctl)
{
	struct worker *w;
	struct pool *pool;
	bool drained;
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
		drained = w->state == W_DRAINING;
		w->pid = 0;
		w->state = W_IDLE;
		/*
		 * The controller's copy kept the listener open: take it out of the
		 * array and shut it down, so that what was queued for the dead worker
		 * moves to another listener.
		 */
		if (!ctl->stopping && !drained && w->in_pool && w->lfd >= 0 &&
		    !other_listener(pool, w)) {
			/* The pool's last listener: it queues until the replacement starts. */
			w->parked = true;
		} else {
			/* Unpublished first, so the migration picks none of this worker's slot. */
			port_bpf_publish_pool(ctl, pool);
			release_listener(ctl, w);
		}
		if (ctl->stopping)
			continue;
		if (drained) {
			pr_info("pool '%s': drained worker %u (pid %d) exited with %s after %.1f s",
				pool->cfg->name, w->slot % TRIAGE_MAX_WORKERS, pid, how, lived);
			continue;
		}
		pr_warn("pool '%s': worker %u (pid %d) exited with %s after %.1f s%s",
			pool->cfg->name, w->slot % TRIAGE_MAX_WORKERS, pid, how, lived,
			w->parked ? "; its listener keeps the pool's connections queued until a new worker starts" : "");
		if (!w->in_pool)
			continue;
		if (killed_by_oom(pool, status)) {
			pr_warn("pool '%s': worker %u was killed by the OOM killer at the pool's memory limit (%lld bytes)",
				pool->cfg->name, w->slot % TRIAGE_MAX_WORKERS,
				(long long)pool->cfg->limits.memory_max);
			w->backoff_ms = BACKOFF_MIN_MS;
		}
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
		for (j = 0; j < TRIAGE_MAX_WORKERS; j++) {
			w = &pool->workers[j];
			if (w->state == W_DRAINING && w->pid && due(&w->kill_at)) {
				pr_warn("pool '%s': drained worker %u (pid %d) still running %d ms after SIGTERM, sending SIGKILL",
					pool->cfg->name, j, w->pid, STOP_GRACE_MS);
				kill(w->pid, SIGKILL);
				w->kill_at.tv_sec = 0;
			}
			if (!w->in_pool || w->pid || !due(&w->restart_at))
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
		for (j = 0; j < TRIAGE_MAX_WORKERS; j++) {
			pid = ctl->pools[i].workers[j].pid;
			if (pid > 0 && !kill(pid, sig))
				count++;
		}
	return count;
}

static void close_listeners(struct controller *ctl)
{
	int i, j;

	for (i = 0; i < ctl->nr_pools; i++)
		for (j = 0; j < TRIAGE_MAX_WORKERS; j++)
			if (ctl->pools[i].workers[j].lfd >= 0) {
				close(ctl->pools[i].workers[j].lfd);
				ctl->pools[i].workers[j].lfd = -1;
			}
}

void workers_stop_all(struct controller *ctl)
{
	int waited, left;

	ctl->stopping = true;
	/* The workers' own descriptors keep the listeners until they exit. */
	close_listeners(ctl);
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
