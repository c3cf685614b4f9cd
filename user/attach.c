// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * `triage attach` and the checks before an attach: find the service's
 * listening sockets on the port and take duplicates of them.
 */
#include <dirent.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "attach.h"
#include "controller.h"
#include "log.h"
#include "sysutil.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open		434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd		438
#endif
#define CAP_SYS_PTRACE_BIT	19
#define TCP_LISTEN_STATE	0x0A
/* __SO_ACCEPTCON in the flags column of /proc/net/unix. */
#define UNIX_ACCEPTCON		0x10000

/* One line of /proc/PID/net/{tcp,tcp6,udp,udp6} that belongs to the process. */
struct inet_entry {
	unsigned int port;
	unsigned int state;
	unsigned int uid;
};

/* Socket inodes of a process, each with the descriptor that refers to it. */
struct proc_socks {
	unsigned long inode[1024];
	int fd[1024];
	int n;
};

/* Buffer that attach_error() copies messages to during a request over the control socket. */
static char *capture_buf;
static size_t capture_len;

void attach_capture(char *buf, size_t len)
{
	capture_buf = buf;
	capture_len = buf ? len : 0;
	if (buf && len)
		buf[0] = '\0';
}

void attach_error(const char *fmt, ...)
{
	char msg[1024];
	size_t used;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pr_err("%s", msg);
	if (!capture_buf)
		return;
	used = strlen(capture_buf);
	snprintf(capture_buf + used, capture_len - used, "%s%s", used ? "\n" : "", msg);
}

static int proc_socket_inodes(pid_t pid, struct proc_socks *ps)
{
	char dir[64], path[320], link[64];
	struct dirent *de;
	unsigned long ino;
	ssize_t len;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", pid);
	d = opendir(dir);
	if (!d)
		return -errno;
	ps->n = 0;
	while ((de = readdir(d)) && ps->n < (int)(sizeof(ps->fd) / sizeof(ps->fd[0]))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		len = readlink(path, link, sizeof(link) - 1);
		if (len < 0) {
			if (errno == EACCES || errno == EPERM) {
				closedir(d);
				return -EPERM;
			}
			continue;
		}
		link[len] = '\0';
		if (sscanf(link, "socket:[%lu]", &ino) != 1)
			continue;
		ps->inode[ps->n] = ino;
		ps->fd[ps->n++] = atoi(de->d_name);
	}
	closedir(d);
	return 0;
}

static int find_sock(const struct proc_socks *ps, unsigned long ino)
{
	int i;

	for (i = 0; i < ps->n; i++)
		if (ps->inode[i] == ino)
			return i;
	return -1;
}

/*
 * Looks up INO in the table /proc/PID/net/NAME (tcp, tcp6, udp, udp6).
 * Returns 0 and fills E, or -ENOENT.
 */
static int inet_lookup(pid_t pid, const char *name, unsigned long ino, struct inet_entry *e)
{
	char path[64], *text, *line, *save;
	unsigned long inode;
	int found = -ENOENT;

	snprintf(path, sizeof(path), "/proc/%d/net/%s", pid, name);
	text = read_text_file(path, 1 << 24);
	if (!text)
		return -ENOENT;
	for (line = strtok_r(text, "\n", &save); line && found; line = strtok_r(NULL, "\n", &save))
		if (sscanf(line, " %*d: %*[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x %*x:%*x %*x:%*x %*x %u %*d %lu",
			   &e->port, &e->state, &e->uid, &inode) == 4 && inode == ino)
			found = 0;
	free(text);
	return found;
}

/* Prints the path of a listening Unix socket of the process into BUF; returns 0 or -ENOENT. */
static int unix_listener(pid_t pid, const struct proc_socks *ps, char *buf, size_t len)
{
	char path[64], *text, *line, *save, name[256];
	unsigned long ino, flags;
	int found = -ENOENT;

	snprintf(path, sizeof(path), "/proc/%d/net/unix", pid);
	text = read_text_file(path, 1 << 24);
	if (!text)
		return -ENOENT;
	for (line = strtok_r(text, "\n", &save); line && found; line = strtok_r(NULL, "\n", &save)) {
		name[0] = '\0';
		if (sscanf(line, "%*x: %*x %*x %lx %*x %*x %lu %255s", &flags, &ino, name) < 2)
			continue;
		if ((flags & UNIX_ACCEPTCON) && find_sock(ps, ino) >= 0) {
			snprintf(buf, len, "%s", name[0] ? name : "(unnamed)");
			found = 0;
		}
	}
	free(text);
	return found;
}

static bool have_cap_sys_ptrace(void)
{
	char *text = read_text_file("/proc/self/status", 1 << 16), *p;
	unsigned long long caps = 0;

	p = text ? strstr(text, "\nCapEff:") : NULL;
	if (p)
		caps = strtoull(p + strlen("\nCapEff:"), NULL, 16);
	free(text);
	return caps & (1ULL << CAP_SYS_PTRACE_BIT);
}

static uid_t proc_uid(pid_t pid)
{
	char path[64], *text, *p;
	unsigned int uid = 0;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	text = read_text_file(path, 1 << 16);
	p = text ? strstr(text, "\nUid:") : NULL;
	if (p)
		sscanf(p + strlen("\nUid:"), " %*u %u", &uid);
	free(text);
	return uid;
}

/* Logs why ptrace access to the service was denied (pidfd_getfd needs it) and what to do. */
static int report_denied(const struct controller *ctl, pid_t pid, const char *comm,
			 const char *step)
{
	char scope[16] = "", cause[256];

	/*
	 * NOTE: the Yama branches have not run, because the test hosts have no
	 * Yama. Only the missing CAP_SYS_PTRACE branch has a test.
	 */
	if (sysctl_read("kernel.yama.ptrace_scope", scope, sizeof(scope)))
		scope[0] = '\0';
	if (scope[0] && strcmp(scope, "0") && strcmp(scope, "3") && !have_cap_sys_ptrace())
		snprintf(cause, sizeof(cause),
			 "Yama's kernel.yama.ptrace_scope is %s and triage lacks CAP_SYS_PTRACE; run triage with CAP_SYS_PTRACE (as full root)",
			 scope);
	else if (!strcmp(scope, "3"))
		snprintf(cause, sizeof(cause),
			 "Yama's kernel.yama.ptrace_scope is 3, which denies it to every process until reboot; no attach is possible on this boot");
	else if (!have_cap_sys_ptrace())
		snprintf(cause, sizeof(cause),
			 "triage lacks CAP_SYS_PTRACE and the process runs as uid %u, not triage's uid %u; run triage with CAP_SYS_PTRACE (as full root)",
			 proc_uid(pid), geteuid());
	else
		snprintf(cause, sizeof(cause),
			 "triage has CAP_SYS_PTRACE%s%s, so a security module (SELinux, AppArmor) or a non-dumpable process denied it; check the audit log",
			 scope[0] ? " and Yama's kernel.yama.ptrace_scope is " : "", scope);
	attach_error("port %u: process %d (%s): %s denied: pidfd_getfd() needs ptrace access to the process; cause: %s",
		     ctl->cfg->port, pid, comm, step, cause);
	return -EPERM;
}

static int check_process(const struct controller *ctl, struct attach *at)
{
	unsigned int port = ctl->cfg->port;
	char path[64];
	struct stat st;

	if (!proc_alive(at->pid)) {
		attach_error("port %u: process %d: no such process; pass the pid of the running service, for example from 'ss -tlnp sport = :%u'",
			     port, at->pid, port);
		return -ESRCH;
	}
	at->start_time = proc_start_time(at->pid);
	if (proc_comm(at->pid, at->comm, sizeof(at->comm)))
		snprintf(at->comm, sizeof(at->comm), "?");
	snprintf(path, sizeof(path), "/proc/%d/ns/net", at->pid);
	if (stat(path, &st)) {
		if (errno == EACCES || errno == EPERM)
			return report_denied(ctl, at->pid, at->comm, "reading its network namespace");
		attach_error("port %u: process %d (%s): cannot read %s: %s", port, at->pid, at->comm, path,
			     strerror(errno));
		return -errno;
	}
	if (st.st_ino != netns_inode()) {
		attach_error("port %u: process %d (%s) lives in network namespace net:[%lu], but triage runs in net:[%lu]; run triage in the service's namespace, for example with 'nsenter --net=/proc/%d/ns/net triage attach ...'",
			     port, at->pid, at->comm, (unsigned long)st.st_ino, netns_inode(),
			     at->pid);
		return -EXDEV;
	}
	return 0;
}

/* Explains why no TCP listener on the port was found among the process's sockets. */
static int report_no_listener(const struct controller *ctl, const struct attach *at,
			      const struct proc_socks *ps)
{
	static const char *const udp[] = { "udp", "udp6" };
	unsigned int port = ctl->cfg->port;
	struct inet_entry e;
	char upath[256];
	int i, t;

	for (i = 0; i < ps->n; i++)
		for (t = 0; t < 2; t++)
			if (!inet_lookup(at->pid, udp[t], ps->inode[i], &e) && e.port == port) {
				attach_error("port %u: process %d (%s) has a UDP socket on port %u (fd %d), not a TCP listener; triage attach takes over TCP listeners only",
					     port, at->pid, at->comm, port, ps->fd[i]);
				return -EPROTOTYPE;
			}
	if (!unix_listener(at->pid, ps, upath, sizeof(upath))) {
		attach_error("port %u: process %d (%s) has no TCP listener on port %u but listens on the Unix socket %s; triage attach takes over TCP listeners only",
			     port, at->pid, at->comm, port, upath);
		return -EPROTOTYPE;
	}
	attach_error("port %u: process %d (%s) has no TCP socket listening on port %u; check the port and the pid with 'ss -tlnp sport = :%u'",
		     port, at->pid, at->comm, port, port);
	return -ENOENT;
}

/* Collects the process's TCP listeners on the port into AT->socks (inode and fd number). */
static int find_listeners(const struct controller *ctl, struct attach *at)
{
	static const char *const tcp[] = { "tcp", "tcp6" };
	struct proc_socks *ps = calloc(1, sizeof(*ps));
	struct inet_entry e;
	int i, t, err;

	if (!ps)
		return -ENOMEM;
	err = proc_socket_inodes(at->pid, ps);
	if (err == -EPERM) {
		free(ps);
		return report_denied(ctl, at->pid, at->comm, "listing its descriptors");
	}
	for (i = 0; !err && i < ps->n; i++)
		for (t = 0; t < 2; t++) {
			if (inet_lookup(at->pid, tcp[t], ps->inode[i], &e) ||
			    e.port != ctl->cfg->port || e.state != TCP_LISTEN_STATE)
				continue;
			if (at->nr_socks == TRIAGE_MAX_WORKERS) {
				attach_error("port %u: process %d (%s) has more than %d listeners on the port; triage takes at most %d",
					     ctl->cfg->port, at->pid, at->comm, TRIAGE_MAX_WORKERS,
					     TRIAGE_MAX_WORKERS);
				err = -E2BIG;
				break;
			}
			at->socks[at->nr_socks].inode = ps->inode[i];
			at->socks[at->nr_socks].target_fd = ps->fd[i];
			at->socks[at->nr_socks++].fd = -1;
			at->sock_uid = e.uid;
		}
	if (!err && !at->nr_socks)
		err = report_no_listener(ctl, at, ps);
	free(ps);
	return err;
}

static int take_duplicates(const struct controller *ctl, struct attach *at)
{
	int pidfd, i, fd, err = 0;

	pidfd = syscall(SYS_pidfd_open, at->pid, 0);
	if (pidfd < 0) {
		err = -errno;
		attach_error("port %u: process %d (%s): pidfd_open() failed: %s", ctl->cfg->port,
			     at->pid, at->comm, strerror(errno));
		return err;
	}
	for (i = 0; i < at->nr_socks && !err; i++) {
		fd = syscall(SYS_pidfd_getfd, pidfd, at->socks[i].target_fd, 0);
		if (fd >= 0) {
			at->socks[i].fd = fd;
			continue;
		}
		err = -errno;
		if (err == -EPERM)
			report_denied(ctl, at->pid, at->comm, "pidfd_getfd()");
		else
			attach_error("port %u: process %d (%s): pidfd_getfd() of fd %d failed: %s",
				     ctl->cfg->port, at->pid, at->comm, at->socks[i].target_fd,
				     strerror(-err));
	}
	close(pidfd);
	return err;
}

static int sockopt_int(int fd, int level, int name)
{
	socklen_t len = sizeof(int);
	int value = -1;

	if (getsockopt(fd, level, name, &value, &len))
		return -1;
	return value;
}

/*
 * Checks each duplicate again (the process may have replaced a descriptor
 * since /proc was read), checks that all are bound alike, sets the mechanism
 * and returns the first one's address in FIRST.
 */
static int verify_duplicates(const struct controller *ctl, struct attach *at,
			     struct sockaddr_storage *first)
{
	unsigned int port = ctl->cfg->port;
	struct sockaddr_storage ss;
	socklen_t len, first_len = 0;
	int i, fd, reuse, reuse_first = -1;
	struct stat st;

	for (i = 0; i < at->nr_socks; i++) {
		fd = at->socks[i].fd;
		len = sizeof(ss);
		if (fstat(fd, &st) || st.st_ino != at->socks[i].inode ||
		    sockopt_int(fd, SOL_SOCKET, SO_PROTOCOL) != IPPROTO_TCP ||
		    sockopt_int(fd, SOL_SOCKET, SO_ACCEPTCONN) != 1 ||
		    getsockname(fd, (struct sockaddr *)&ss, &len)) {
			attach_error("port %u: process %d (%s): fd %d is no longer the TCP listener seen in /proc; the service changed its sockets meanwhile, so try again",
				     port, at->pid, at->comm, at->socks[i].target_fd);
			return -EAGAIN;
		}
		reuse = sockopt_int(fd, SOL_SOCKET, SO_REUSEPORT) > 0;
		if (i == 0) {
			*first = ss;
			first_len = len;
			reuse_first = reuse;
			continue;
		}
		if (len != first_len || memcmp(&ss, first, len) || reuse != reuse_first) {
			attach_error("port %u: process %d (%s): its listeners on the port differ in address or SO_REUSEPORT (fd %d and fd %d); triage attaches to listeners of one address",
				     port, at->pid, at->comm, at->socks[0].target_fd,
				     at->socks[i].target_fd);
			return -EINVAL;
		}
	}
	at->mech = reuse_first ? ATTACH_REUSEPORT : ATTACH_SK_LOOKUP;
	if (first->ss_family == AF_INET6)
		at->v6only = sockopt_int(at->socks[0].fd, IPPROTO_IPV6, IPV6_V6ONLY) > 0;
	return 0;
}

/* Takes family and address of the port from the service's first listener. */
static int check_duplicates(struct controller *ctl, struct attach *at)
{
	struct config *cfg = ctl->cfg;
	struct sockaddr_storage first;
	int err;

	err = verify_duplicates(ctl, at, &first);
	if (err)
		return err;
	cfg->family = first.ss_family;
	if (cfg->family == AF_INET6)
		memcpy(cfg->addr, &((struct sockaddr_in6 *)&first)->sin6_addr, 16);
	else
		memcpy(cfg->addr, &((struct sockaddr_in *)&first)->sin_addr, 4);
	inet_ntop(cfg->family, cfg->addr, cfg->addr_text, sizeof(cfg->addr_text));
	return 0;
}

/*
 * What decides the reuseport group that a listener joins: the kernel puts
 * listeners with SO_REUSEPORT in one group when family, address, port,
 * bound device, IPV6_V6ONLY and socket owner are all equal.
 */
struct group_key {
	int family;
	unsigned char addr[16];
	unsigned int port;
	uid_t uid;
	int ifindex;
	int v6only;
	char text[96];			/* "ADDR:PORT as uid U", for messages */
};

static int read_group_key(int fd, struct group_key *k)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char addr[INET6_ADDRSTRLEN];
	struct stat st;

	memset(k, 0, sizeof(*k));
	if (getsockname(fd, (struct sockaddr *)&ss, &len) || fstat(fd, &st))
		return -errno;
	k->family = ss.ss_family;
	if (k->family == AF_INET6) {
		memcpy(k->addr, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
		k->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		k->v6only = sockopt_int(fd, IPPROTO_IPV6, IPV6_V6ONLY) > 0;
	} else {
		memcpy(k->addr, &((struct sockaddr_in *)&ss)->sin_addr, 4);
		k->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	/* A socket's inode belongs to the file-system uid of its creator, as sk_uid does. */
	k->uid = st.st_uid;
	k->ifindex = sockopt_int(fd, SOL_SOCKET, SO_BINDTOIFINDEX);
	if (k->ifindex < 0)
		k->ifindex = 0;
	inet_ntop(k->family, k->addr, addr, sizeof(addr));
	snprintf(k->text, sizeof(k->text), "%s%s%s:%u as uid %u%s%s",
		 k->family == AF_INET6 ? "[" : "", addr, k->family == AF_INET6 ? "]" : "", k->port,
		 k->uid, k->ifindex ? ", bound to a device" : "", k->v6only ? ", IPV6_V6ONLY" : "");
	return 0;
}

static bool same_group(const struct group_key *a, const struct group_key *b)
{
	return a->family == b->family && !memcmp(a->addr, b->addr, sizeof(a->addr)) &&
	       a->port == b->port && a->uid == b->uid && a->ifindex == b->ifindex &&
	       a->v6only == b->v6only;
}

/* Returns a listener that the controller keeps for one of its workers, or -1. */
static int triage_listener(const struct controller *ctl, const char **pool_name)
{
	const struct pool *pool;
	int i, j;

	for (i = 0; i < ctl->nr_pools; i++) {
		pool = &ctl->pools[i];
		for (j = 0; pool->active && j < TRIAGE_MAX_WORKERS; j++)
			if (pool->workers[j].lfd >= 0) {
				*pool_name = pool->cfg->name;
				return pool->workers[j].lfd;
			}
	}
	return -1;
}

/* Rejects a pid whose listener is one of triage's own, such as a worker's. */
static int check_not_triage(const struct controller *ctl, const struct attach *at)
{
	const struct pool *pool;
	struct stat st;
	int i, j, k;

	for (i = 0; i < ctl->nr_pools; i++) {
		pool = &ctl->pools[i];
		for (j = 0; j < TRIAGE_MAX_WORKERS; j++) {
			if (pool->workers[j].lfd < 0 || fstat(pool->workers[j].lfd, &st))
				continue;
			for (k = 0; k < at->nr_socks; k++) {
				if (at->socks[k].inode != st.st_ino)
					continue;
				attach_error("port %u: process %d (%s): fd %d is the listener of triage's own pool '%s' (worker %d), not a service's; pass the pid of the service that listens on the port",
					     ctl->cfg->port, at->pid, at->comm,
					     at->socks[k].target_fd, pool->cfg->name, j);
				return -EINVAL;
			}
		}
	}
	return 0;
}

/* Checks that the service's listeners share the reuseport group of triage's listeners. */
static int check_same_group(const struct controller *ctl, const struct attach *at)
{
	unsigned int port = ctl->cfg->port;
	struct group_key svc, ours;
	const char *pool_name = "";
	int fd;

	if (at->mech != ATTACH_REUSEPORT) {
		attach_error("port %u: process %d (%s) listens without SO_REUSEPORT, so its socket cannot be in the reuseport group of triage's listeners, and a running controller attaches only to sockets in that group; restart triage with 'attach: {pid: %d}' in its config, which steers such a socket through an sk_lookup program",
			     port, at->pid, at->comm, at->pid);
		return -EOPNOTSUPP;
	}
	fd = triage_listener(ctl, &pool_name);
	if (fd < 0) {
		attach_error("port %u: no worker of triage listens right now, so the reuseport group of its listeners cannot be compared with the service's sockets; try again when 'triage status --port %u' shows workers",
			     port, port);
		return -EAGAIN;
	}
	if (read_group_key(at->socks[0].fd, &svc) || read_group_key(fd, &ours)) {
		attach_error("port %u: failed to read the address and owner of a listener: %s",
			     port, strerror(errno));
		return -errno;
	}
	if (same_group(&svc, &ours))
		return 0;
	attach_error("port %u: process %d (%s) listens on %s, but triage's listeners (pool '%s') listen on %s, so the service's sockets are in another reuseport group, where triage's program cannot select them; bind the service to the same address and port with SO_REUSEPORT as uid %u (for nginx: 'listen ADDRESS:%u reuseport' with its master process as that uid), or restart triage with 'attach: {pid: %d}' in its config",
		     port, at->pid, at->comm, svc.text, pool_name, ours.text, ours.uid, port,
		     at->pid);
	return -EXDEV;
}

int attach_check_live(struct controller *ctl, struct attach *at)
{
	struct sockaddr_storage first;
	int err;

	err = check_process(ctl, at);
	if (err == -EXDEV)
		attach_error("port %u: a running controller attaches only processes of its own network namespace, net:[%lu]",
			     ctl->cfg->port, netns_inode());
	if (!err)
		err = find_listeners(ctl, at);
	if (!err)
		err = check_not_triage(ctl, at);
	if (!err)
		err = take_duplicates(ctl, at);
	if (!err)
		err = verify_duplicates(ctl, at, &first);
	if (!err)
		err = check_same_group(ctl, at);
	return err;
}

int attach_preflight(struct controller *ctl)
{
	struct attach *at;
	int err;

	if (!ctl->cfg->attach.pid)
		return 0;
	at = calloc(1, sizeof(*at));
	if (!at)
		return -ENOMEM;
	ctl->attach = at;
	at->pid = ctl->cfg->attach.pid;
	at->pool = config_pool_index(ctl->cfg, ctl->cfg->attach.pool);
	at->move_to_pool = ctl->cfg->attach.move_to_pool;
	at->entry_fd = -1;
	at->lookup_link_fd = -1;
	err = check_process(ctl, at);
	if (!err)
		err = find_listeners(ctl, at);
	if (!err)
		err = take_duplicates(ctl, at);
	if (!err)
		err = check_duplicates(ctl, at);
	if (err)
		return err;
	pr_info("port %u: process %d (%s) listens on %s with %d socket%s (%s); steering by %s",
		ctl->cfg->port, at->pid, at->comm, ctl->cfg->addr_text, at->nr_socks,
		at->nr_socks == 1 ? "" : "s",
		at->mech == ATTACH_REUSEPORT ? "SO_REUSEPORT" : "no SO_REUSEPORT",
		at->mech == ATTACH_REUSEPORT ? "its reuseport group" : "an sk_lookup program");
	return 0;
}

bool attach_active(const struct controller *ctl)
{
	return ctl->attach != NULL;
}

bool attach_is_service_pool(const struct controller *ctl, const struct pool *pool)
{
	/* A service attached at run time is not in the config. */
	if (ctl->attach)
		return ctl->attach->pool == (int)pool->id;
	return ctl->cfg->attach.pid && !strcmp(pool->cfg->name, ctl->cfg->attach.pool);
}

static void read_cmdline(pid_t pid, char *buf, size_t len)
{
	char path[64], *text;
	ssize_t n;
	int fd, i;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	buf[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	text = buf;
	n = read(fd, text, len - 1);
	close(fd);
	if (n <= 0)
		return;
	text[n] = '\0';
	/* Arguments are separated by NUL bytes; the last one ends the command line. */
	for (i = 0; i < n - 1; i++)
		if (!text[i])
			text[i] = ' ';
}

void attach_read_info(uint16_t port, struct attach_info *info)
{
	char path[128], *text, *line, *save;
	unsigned long long start;
	int pid, move;

	memset(info, 0, sizeof(*info));
	state_path(port, path, sizeof(path));
	text = read_text_file(path, 64 << 20);
	for (line = text ? strtok_r(text, "\n", &save) : NULL; line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (sscanf(line, "attach %d %llu %15s %31s %d", &pid, &start, info->mech,
			   info->pool, &move) != 5)
			continue;
		info->attached = true;
		info->pid = pid;
		info->moved = move;
		info->pid_running = proc_alive(pid) && proc_start_time(pid) == start;
		if (info->pid_running)
			read_cmdline(pid, info->command, sizeof(info->command));
		break;
	}
	free(text);
}

static const char attach_usage[] =
	"Usage: triage attach --port P --pid PID [--pool NAME] [--move-to-pool]\n"
	"                     [--config FILE] [-v]\n"
	"Steers port P, where process PID already listens, without restarting that process.\n"
	"Its listening sockets become pool NAME (default: the config's default_pool).\n"
	"Without --config, the running controller of port P attaches the process: its\n"
	"sockets must have SO_REUSEPORT and share the group of triage's listeners (same\n"
	"address, port and socket owner), and the pool's own workers are drained.\n"
	"With --config, a new controller runs in the foreground and the config's other pools\n"
	"start as usual; it is rejected while a controller of port P runs.\n"
	"'triage detach --port P' gives the port back to the process.\n"
	"  -p, --port P          the service's TCP port; must equal 'port' in the config\n"
	"  -P, --pid PID         a process that has the service's listening sockets open\n"
	"  -n, --pool NAME       the pool that the service's sockets form\n"
	"  -m, --move-to-pool    move the service's processes into that pool's cgroups\n"
	"  -c, --config FILE     YAML configuration of a new controller\n"
	"  -v, --verbose         also log debug messages\n";

static int parse_number(const char *option, const char *text, long max, long *out)
{
	char *end;

	errno = 0;
	*out = strtol(text, &end, 10);
	if (*text && !*end && !errno && *out >= 1 && *out <= max)
		return 0;
	fprintf(stderr, "triage: invalid %s '%s': expected an integer from 1 to %ld\n", option, text,
		max);
	return 2;
}

static int parse_attach_args(int argc, char **argv, struct attach_config *cli, long *port,
			     const char **file, bool *verbose)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "pid", required_argument, NULL, 'P' },
		{ "pool", required_argument, NULL, 'n' },
		{ "move-to-pool", no_argument, NULL, 'm' },
		{ "config", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	long pid = 0;
	int c;

	while ((c = getopt_long(argc, argv, "p:P:n:mc:vh", opts, NULL)) != -1) {
		if ((c == 'p' && parse_number("port", optarg, 65535, port)) ||
		    (c == 'P' && parse_number("pid", optarg, INT32_MAX, &pid)))
			return 2;
		if (c == 'n')
			snprintf(cli->pool, sizeof(cli->pool), "%s", optarg);
		else if (c == 'm')
			cli->move_to_pool = true;
		else if (c == 'c')
			*file = optarg;
		else if (c == 'v')
			*verbose = true;
		else if (c == 'h')
			return fputs(attach_usage, stdout), -1;
		else if (c != 'p' && c != 'P')
			return fputs(attach_usage, stderr), 2;
	}
	cli->pid = (int)pid;
	if (!*port || !pid || optind != argc) {
		fprintf(stderr, "triage: %s\n%s", optind != argc ? "unexpected argument" :
			!*port ? "missing --port P" : "missing --pid PID", attach_usage);
		return 2;
	}
	return 0;
}

/*
 * Handles the cases that start no controller: a request to the running one,
 * and the errors. Returns the exit status, or -1 to start a new controller.
 */
static int attach_route(long port, pid_t running, const struct attach_config *cli,
			const char *file)
{
	if (geteuid() != 0) {
		fprintf(stderr, "triage: 'triage attach' must run as root, since it takes over another process's sockets; try: sudo triage attach ...\n");
		return 1;
	}
	if (running && file) {
		fprintf(stderr, "triage: port %ld: triage pid %d already steers it, and --config starts a controller of its own; leave out --config to attach through the running controller ('triage attach --port %ld --pid %d'), or stop it with 'triage detach --port %ld' and attach again\n",
			port, running, port, cli->pid, port);
		return 1;
	}
	if (running)
		return attach_ctl_request((uint16_t)port, running, cli->pid, cli->pool,
					  cli->move_to_pool);
	if (!file) {
		fprintf(stderr, "triage: port %ld: no triage controller runs for it, so there is none to attach through; start one with 'triage run --config FILE' and attach again, or pass --config FILE to start a controller that attaches at once\n",
			port);
		return 1;
	}
	return -1;
}

int cmd_attach(int argc, char **argv)
{
	struct config *cfg = calloc(1, sizeof(*cfg));
	struct attach_config cli = {};
	const char *file = NULL;
	bool verbose = false;
	char err[1024];
	long port = 0;
	pid_t running;
	int ret;

	if (!cfg)
		return 1;
	ret = parse_attach_args(argc, argv, &cli, &port, &file, &verbose);
	if (ret) {
		free(cfg);
		return ret < 0 ? 0 : ret;
	}
	if (verbose)
		log_threshold = LOG_LVL_DEBUG;
	running = state_live_controller((uint16_t)port);
	ret = attach_route(port, running, &cli, file);
	if (ret >= 0) {
		free(cfg);
		return ret;
	}
	ret = config_load_attach(file, &cli, cfg, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "triage: invalid config: %s\n", err);
		free(cfg);
		return 2;
	}
	if (cfg->port != port) {
		fprintf(stderr, "triage: --port %ld differs from port %u in %s; use the same port in both\n",
			port, cfg->port, file);
		ret = 2;
	} else {
		ret = controller_run(cfg, file);
	}
	config_free(cfg);
	free(cfg);
	return ret;
}
