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

/* Socket inodes of the process and the descriptor that holds each. */
struct proc_socks {
	unsigned long inode[1024];
	int fd[1024];
	int n;
};

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
	pr_err("port %u: process %d (%s): %s denied: pidfd_getfd() needs ptrace access to the process; cause: %s",
	       ctl->cfg->port, pid, comm, step, cause);
	return -EPERM;
}

static int check_process(const struct controller *ctl, struct attach *at)
{
	unsigned int port = ctl->cfg->port;
	char path[64];
	struct stat st;

	if (!proc_alive(at->pid)) {
		pr_err("port %u: process %d: no such process; pass the pid of the running service, for example from 'ss -tlnp sport = :%u'",
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
		pr_err("port %u: process %d (%s): cannot read %s: %s", port, at->pid, at->comm, path,
		       strerror(errno));
		return -errno;
	}
	if (st.st_ino != netns_inode()) {
		pr_err("port %u: process %d (%s) lives in network namespace net:[%lu], but triage runs in net:[%lu]; run triage in the service's namespace, for example with 'nsenter --net=/proc/%d/ns/net triage attach ...'",
		       port, at->pid, at->comm, (unsigned long)st.st_ino, netns_inode(), at->pid);
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
				pr_err("port %u: process %d (%s) has a UDP socket on port %u (fd %d), not a TCP listener; triage attach takes over TCP listeners only",
				       port, at->pid, at->comm, port, ps->fd[i]);
				return -EPROTOTYPE;
			}
	if (!unix_listener(at->pid, ps, upath, sizeof(upath))) {
		pr_err("port %u: process %d (%s) has no TCP listener on port %u but listens on the Unix socket %s; triage attach takes over TCP listeners only",
		       port, at->pid, at->comm, port, upath);
		return -EPROTOTYPE;
	}
	pr_err("port %u: process %d (%s) has no TCP socket listening on port %u; check the port and the pid with 'ss -tlnp sport = :%u'",
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
				pr_err("port %u: process %d (%s) has more than %d listeners on the port; triage takes at most %d",
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
		pr_err("port %u: process %d (%s): pidfd_open() failed: %s", ctl->cfg->port,
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
			pr_err("port %u: process %d (%s): pidfd_getfd() of fd %d failed: %s",
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
 * since /proc was read) and takes family and address from the first one.
 */
static int check_duplicates(struct controller *ctl, struct attach *at)
{
	struct config *cfg = ctl->cfg;
	struct sockaddr_storage ss, first;
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
			pr_err("port %u: process %d (%s): fd %d is no longer the TCP listener seen in /proc; the service changed its sockets meanwhile, so try again",
			       cfg->port, at->pid, at->comm, at->socks[i].target_fd);
			return -EAGAIN;
		}
		reuse = sockopt_int(fd, SOL_SOCKET, SO_REUSEPORT) > 0;
		if (i == 0) {
			first = ss;
			first_len = len;
			reuse_first = reuse;
			continue;
		}
		if (len != first_len || memcmp(&ss, &first, len) || reuse != reuse_first) {
			pr_err("port %u: process %d (%s): its listeners on the port differ in address or SO_REUSEPORT (fd %d and fd %d); triage attaches to listeners of one address",
			       cfg->port, at->pid, at->comm, at->socks[0].target_fd,
			       at->socks[i].target_fd);
			return -EINVAL;
		}
	}
	at->mech = reuse_first ? ATTACH_REUSEPORT : ATTACH_SK_LOOKUP;
	cfg->family = first.ss_family;
	if (cfg->family == AF_INET6) {
		memcpy(cfg->addr, &((struct sockaddr_in6 *)&first)->sin6_addr, 16);
		at->v6only = sockopt_int(at->socks[0].fd, IPPROTO_IPV6, IPV6_V6ONLY) > 0;
	} else {
		memcpy(cfg->addr, &((struct sockaddr_in *)&first)->sin_addr, 4);
	}
	inet_ntop(cfg->family, cfg->addr, cfg->addr_text, sizeof(cfg->addr_text));
	return 0;
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
	"Usage: triage attach --port P --pid PID [--pool NAME] [--move-to-pool] --config FILE [-v]\n"
	"Runs a controller in the foreground that steers port P, where process PID already\n"
	"listens, without restarting that process. Its listening sockets become pool NAME\n"
	"(default: the config's default_pool); the config's other pools start as usual.\n"
	"SIGINT, SIGTERM or 'triage detach --port P' give the port back to the process.\n"
	"  -p, --port P          the service's TCP port; must equal 'port' in the config\n"
	"  -P, --pid PID         a process that holds the service's listening sockets\n"
	"  -n, --pool NAME       the pool that the service's sockets form\n"
	"  -m, --move-to-pool    move the service's processes into that pool's cgroups\n"
	"  -c, --config FILE     YAML configuration\n"
	"  -v, --verbose         also log debug messages\n";

static int parse_number(const char *what, const char *text, long max, long *out)
{
	char *end;

	errno = 0;
	*out = strtol(text, &end, 10);
	if (*text && !*end && !errno && *out >= 1 && *out <= max)
		return 0;
	fprintf(stderr, "triage: invalid %s '%s': expected an integer from 1 to %ld\n", what, text,
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
	if (!*port || !pid || !*file || optind != argc) {
		fprintf(stderr, "triage: %s\n%s", optind != argc ? "unexpected argument" :
			!*port ? "missing --port P" : !pid ? "missing --pid PID" :
			"missing --config FILE", attach_usage);
		return 2;
	}
	return 0;
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
	if (running) {
		fprintf(stderr, "triage: port %ld: triage pid %d already steers it, and 'triage attach' starts a controller of its own; stop that one with 'triage detach --port %ld', then attach again, or add an 'attach' section to its config and restart it\n",
			port, running, port);
		free(cfg);
		return 1;
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
