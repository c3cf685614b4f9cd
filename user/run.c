// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* `triage run` and `triage check`: the controller's life from start to stop. */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <linux/magic.h>
#include <net/if.h>

#include "attach.h"
#include "controller.h"
#include "log.h"
#include "sysutil.h"

#define TIMER_MS	100

static const char run_usage[] =
	"Usage: triage run --config FILE [-v]\n"
	"Runs the controller in the foreground until SIGINT or SIGTERM.\n"
	"  -c, --config FILE   YAML configuration\n"
	"  -v, --verbose       also log debug messages\n";

static int parse_config_args(int argc, char **argv, const char *usage, const char **file)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	int c;

	*file = NULL;
	while ((c = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			*file = optarg;
			break;
		case 'v':
			log_threshold = LOG_LVL_DEBUG;
			break;
		case 'h':
			fputs(usage, stdout);
			exit(0);
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (!*file || optind != argc) {
		fprintf(stderr, "triage: %s\n%s", *file ? "unexpected argument" :
			"missing --config FILE", usage);
		return 2;
	}
	return 0;
}

static int load_config(const char *file, struct config *cfg)
{
	char err[1024];
	int ret;

	ret = config_load(file, cfg, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "triage: invalid config: %s\n", err);
		return 2;
	}
	return 0;
}

static void print_valid(const char *file, const struct config *cfg)
{
	int i, scaled = 0;

	for (i = 0; i < cfg->nr_pools; i++)
		scaled += cfg->pools[i].scaling.enabled;
	printf("%s: valid: port %u, mode %s, pools %d (%d scaled), categories %d, rules %d, templates %d",
	       file, cfg->port, config_mode_name(cfg->mode), cfg->nr_pools, scaled,
	       cfg->nr_categories, cfg->nr_rules, cfg->nr_templates);
	if (cfg->budget.has_cpus)
		printf(", budget %g CPUs", cfg->budget.cpus);
	if (cfg->budget.memory > 0)
		printf(", budget %lld MiB", (long long)(cfg->budget.memory >> 20));
	if (cfg->emerge.key)
		printf(", emerge by %s from template '%s'",
		       cfg->emerge.key == EMERGE_PATH ? "path" : "host",
		       cfg->templates[cfg->emerge.template].name);
	if (cfg->attach.pid)
		printf(", attach to pid %d as pool '%s'", cfg->attach.pid, cfg->attach.pool);
	printf("\n");
}

int cmd_check(int argc, char **argv)
{
	struct config *cfg = calloc(1, sizeof(*cfg));
	const char *file;
	int ret;

	if (!cfg)
		return 1;
	ret = parse_config_args(argc, argv, "Usage: triage check --config FILE\n"
				"Validates the configuration and changes nothing.\n", &file);
	if (!ret)
		ret = load_config(file, cfg);
	if (!ret)
		print_valid(file, cfg);
	config_free(cfg);
	free(cfg);
	return ret;
}

/* Returns true when a socket in this namespace listens on PORT (any address). */
static bool port_has_listener(uint16_t port)
{
	static const char *const files[] = { "/proc/net/tcp", "/proc/net/tcp6" };
	unsigned int lport, state;
	char *text, *line, *save;
	bool found = false;
	size_t i;

	for (i = 0; i < 2 && !found; i++) {
		text = read_text_file(files[i], 1 << 22);
		if (!text)
			continue;
		for (line = strtok_r(text, "\n", &save); line && !found;
		     line = strtok_r(NULL, "\n", &save))
			if (sscanf(line, " %*d: %*[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x", &lport,
				   &state) == 2)
				found = lport == port && state == 0x0A;
		free(text);
	}
	return found;
}

/* Checks that the workers can bind the port; creates nothing that outlives it. */
static int check_port_free(const struct config *cfg)
{
	struct sockaddr_storage ss = {};
	int fd, one = 1, err = 0;
	socklen_t len;

	if (port_has_listener(cfg->port)) {
		pr_err("port %u: a socket already listens on it in this network namespace; stop that service first, or take over its port with 'triage attach --port %u --pid PID --config FILE' or 'attach: {pid: PID}' in the config",
		       cfg->port, cfg->port);
		return -EADDRINUSE;
	}
	if (cfg->family == AF_INET6) {
		struct sockaddr_in6 *a6 = (void *)&ss;

		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(cfg->port);
		memcpy(&a6->sin6_addr, cfg->addr, 16);
		len = sizeof(*a6);
	} else {
		struct sockaddr_in *a4 = (void *)&ss;

		a4->sin_family = AF_INET;
		a4->sin_port = htons(cfg->port);
		memcpy(&a4->sin_addr, cfg->addr, 4);
		len = sizeof(*a4);
	}
	fd = socket(cfg->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len)) {
		err = -errno;
		if (err == -EADDRINUSE)
			pr_err("port %u: address %s in use by a socket without SO_REUSEPORT (or of another user); stop that service or choose another port",
			       cfg->port, cfg->addr_text);
		else
			pr_err("port %u: cannot bind %s: %s", cfg->port, cfg->addr_text,
			       strerror(-err));
	}
	close(fd);
	return err;
}

static int mount_bpffs(void)
{
	struct statfs sfs;

	if (!statfs("/sys/fs/bpf", &sfs) && sfs.f_type == BPF_FS_MAGIC)
		return 0;
	if (mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700")) {
		pr_err("bpffs: failed to mount at /sys/fs/bpf: %s", strerror(errno));
		return -errno;
	}
	pr_info("bpffs: mounted at /sys/fs/bpf (left mounted on stop, since other tools pin there too)");
	return 0;
}

/* Checks that every configured interface exists, before anything is created. */
static int check_interfaces(const struct config *cfg)
{
	int i;

	for (i = 0; i < cfg->nr_ifaces; i++) {
		if (if_nametoindex(cfg->ifaces[i]))
			continue;
		pr_err("interface '%s': not found in this network namespace (net:[%lu]); fix 'interfaces' in %s or run triage in the namespace that has it",
		       cfg->ifaces[i], netns_inode(), cfg->file);
		return -ENODEV;
	}
	return 0;
}

/* Removes what a crashed run on the same port left behind. */
static int clean_stale(uint16_t port, const char *pin_dir)
{
	char path[128];
	struct stat st;
	pid_t pid;

	pid = state_live_controller(port);
	if (pid) {
		pr_err("port %u: already managed by triage pid %d; stop it or run 'triage detach --port %u'",
		       port, pid, port);
		return -EBUSY;
	}
	state_path(port, path, sizeof(path));
	if (!stat(path, &st)) {
		pr_warn("port %u: found the record of a run that did not stop cleanly (%s); undoing it",
			port, path);
		if (state_undo(port, false))
			return -EBUSY;
	}
	if (!stat(pin_dir, &st)) {
		pr_warn("port %u: removing stale pins at %s", port, pin_dir);
		return pins_remove(pin_dir);
	}
	return 0;
}

static void record_cgroup_change(void *arg, const char *line)
{
	state_add(arg, "%s", line);
}

int pool_cgroup_setup(struct controller *ctl, struct pool *pool)
{
	char rel[128], err[1024];
	int ret;

	snprintf(rel, sizeof(rel), "%u/%s", ctl->cfg->port, pool->cfg->name);
	/* Every pool reports its memory use, with a limit or without. */
	pool->cfg->limits.account_memory = true;
	ret = cgroup_create(&ctl->lay, ctl->cfg->cgroup_root, rel, &pool->cfg->limits,
			    &pool->cg, err, sizeof(err));
	if (ret) {
		pr_err("pool '%s': %s", pool->cfg->name, err);
		return ret;
	}
	pr_info("pool '%s': cgroup %s ready%s%s", pool->cfg->name, pool->cg.v2,
		pool->cg.notes[0] ? "; " : "", pool->cg.notes);
	return 0;
}

static int setup_pools(struct controller *ctl)
{
	int i, ret;

	cgroup_set_recorder(record_cgroup_change, &ctl->st);
	for (i = 0; i < ctl->nr_pools; i++) {
		ret = pool_cgroup_setup(ctl, &ctl->pools[i]);
		if (ret)
			return ret;
	}
	return 0;
}

static int controller_init(struct controller *ctl, struct config *cfg)
{
	char err[1024], where[1024];
	int i, ret;

	ctl->cfg = cfg;
	ctl->sockops_fd = -1;
	ctl->ctl_fd = -1;
	ctl->st.fd = -1;
	ctl->nr_pools = cfg->nr_pools;
	for (i = 0; i < cfg->nr_pools; i++) {
		ctl->pools[i].cfg = &cfg->pools[i];
		ctl->pools[i].id = i;
		ctl->pools[i].active = true;
		ctl->pools[i].category = -1;
		workers_init_pool(&ctl->pools[i]);
	}
	snprintf(ctl->pin_dir, sizeof(ctl->pin_dir), "%s/%u", PIN_ROOT, cfg->port);

	ret = cgroup_detect(&ctl->lay, err, sizeof(err));
	if (ret) {
		pr_err("%s", err);
		return ret;
	}
	cgroup_describe(&ctl->lay, where, sizeof(where));
	pr_info("%s", where);
	if (!cfg->cgroup_root[0])
		snprintf(cfg->cgroup_root, sizeof(cfg->cgroup_root), "%s/triage",
			 ctl->lay.v2_mount);
	snprintf(ctl->port_cgroup, sizeof(ctl->port_cgroup), "%s/%u", cfg->cgroup_root,
		 cfg->port);
	return 0;
}

int stop_requested(void)
{
	sigset_t pending;

	if (sigpending(&pending))
		return 0;
	if (sigismember(&pending, SIGINT) || sigismember(&pending, SIGTERM)) {
		pr_warn("stop requested while starting");
		return -EINTR;
	}
	return 0;
}

/* Creates everything in order; on error the caller undoes the record. */
static int controller_start(struct controller *ctl)
{
	struct config *cfg = ctl->cfg;
	int ret;

	ret = workers_preflight(ctl);
	if (!ret)
		ret = attach_preflight(ctl);
	if (!ret)
		ret = check_interfaces(cfg);
	if (!ret)
		ret = mount_bpffs();
	/* A crashed run's workers still hold the port, so undo that run first. */
	if (!ret)
		ret = clean_stale(cfg->port, ctl->pin_dir);
	/* An attach takes over a port that the service already listens on. */
	if (!ret && !attach_active(ctl))
		ret = check_port_free(cfg);
	if (ret)
		return ret;

	ret = state_create(&ctl->st, cfg->port);
	if (ret) {
		pr_err("port %u: failed to create the record %s: %s", cfg->port, ctl->st.path,
		       strerror(-ret));
		return ret;
	}
	ret = state_add(&ctl->st, "controller %d %llu %llu", getpid(), netns_cookie(),
			proc_start_time(getpid()));
	/* BPF first: a host that does not permit it fails before any cgroup exists. */
	if (!ret)
		ret = port_bpf_setup(ctl);
	if (!ret)
		ret = stop_requested();
	if (!ret)
		ret = setup_pools(ctl);
	if (!ret)
		ret = port_sockops_attach(ctl);
	if (!ret) {
		/* A run that stops meanwhile might hand these over to a record not yet complete. */
		int lock = state_lock();

		ret = port_sysctl_set(ctl, "net.ipv4.tcp_migrate_req", "1",
				      "so a closing listener's queued connections move to another listener instead of being reset");
		if (!ret && cfg->mode == TRIAGE_MODE_PAYLOAD)
			ret = port_sysctl_setup(ctl);
		if (!ret && cfg->mode == TRIAGE_MODE_PAYLOAD)
			ret = port_tc_setup(ctl);
		state_unlock(lock);
	}
	if (!ret)
		ret = attach_setup(ctl);
	if (!ret)
		ret = emerge_init(ctl);
	if (!ret)
		ret = stop_requested();
	if (!ret)
		ret = workers_start_all(ctl);
	/* Last, so that a request never meets a half-started controller. */
	if (!ret)
		ret = attach_ctl_open(ctl);
	if (!ret)
		ret = stop_requested();
	return ret;
}

static int make_signalfd(void)
{
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL))
		return -errno;
	return signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
}

static int make_timerfd(void)
{
	struct itimerspec its = {
		.it_interval = { 0, TIMER_MS * 1000000L },
		.it_value = { 0, TIMER_MS * 1000000L },
	};
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);

	if (fd >= 0 && timerfd_settime(fd, 0, &its, NULL)) {
		close(fd);
		return -1;
	}
	return fd;
}

static long elapsed_ms(const struct timespec *from, const struct timespec *to)
{
	return (to->tv_sec - from->tv_sec) * 1000 + (to->tv_nsec - from->tv_nsec) / 1000000;
}

/* Returns the signal that ended the loop. */
static int controller_loop(struct controller *ctl, int sig_fd, int timer_fd)
{
	struct pollfd pfd[3] = {
		{ sig_fd, POLLIN, 0 }, { timer_fd, POLLIN, 0 }, { ctl->ctl_fd, POLLIN, 0 },
	};
	struct signalfd_siginfo si;
	struct timespec now, last_tick;
	uint64_t ticks;

	clock_gettime(CLOCK_MONOTONIC, &last_tick);
	for (;;) {
		if (poll(pfd, 3, -1) < 0 && errno != EINTR)
			return SIGTERM;
		while (read(sig_fd, &si, sizeof(si)) == sizeof(si)) {
			if (si.ssi_signo == SIGCHLD)
				workers_reap(ctl);
			else if (si.ssi_signo == SIGHUP)
				pr_info("SIGHUP received; reloading the config is not supported, restart to apply changes");
			else
				return si.ssi_signo;
		}
		if (pfd[2].revents & POLLIN)
			attach_ctl_serve(ctl);
		if (read(timer_fd, &ticks, sizeof(ticks)) != sizeof(ticks))
			continue;
		workers_restart_due(ctl);
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (elapsed_ms(&last_tick, &now) + TIMER_MS / 2 < ctl->cfg->tick_ms)
			continue;
		last_tick = now;
		/* Idle pools go first, so the autoscaler never sizes a pool about to leave. */
		attach_tick(ctl);
		emerge_tick(ctl);
		autoscale_tick(ctl);
	}
}

static int controller_stop(struct controller *ctl)
{
	int ret;

	attach_ctl_close(ctl);
	attach_release(ctl);
	workers_stop_all(ctl);
	pools_report_write(ctl, true);
	emerge_free(ctl);
	attach_close(ctl);
	port_bpf_close(ctl);
	if (ctl->st.fd < 0)
		return 0;
	state_close(&ctl->st);
	ret = state_undo(ctl->cfg->port, false);
	if (ret)
		pr_err("port %u: cleanup incomplete; run 'triage detach --port %u' to retry",
		       ctl->cfg->port, ctl->cfg->port);
	return ret;
}

int cmd_run(int argc, char **argv)
{
	struct config *cfg = calloc(1, sizeof(*cfg));
	const char *file;
	int ret;

	if (!cfg)
		return 1;
	ret = parse_config_args(argc, argv, run_usage, &file);
	if (!ret)
		ret = load_config(file, cfg);
	if (!ret)
		ret = controller_run(cfg, file);
	config_free(cfg);
	free(cfg);
	return ret;
}

int controller_run(struct config *cfg, const char *file)
{
	struct controller *ctl = calloc(1, sizeof(*ctl));
	int ret = 0, sig_fd = -1, timer_fd = -1, sig = 0;

	if (!ctl)
		return 1;
	if (geteuid() != 0) {
		fprintf(stderr, "triage: 'triage run' must run as root, since it loads BPF programs, creates cgroups and sets sysctls; try: sudo triage run --config %s\n",
			file);
		ret = 1;
		goto out;
	}
	log_setup_libbpf();
	ret = controller_init(ctl, cfg) ? 1 : 0;
	if (ret)
		goto out;
	sig_fd = make_signalfd();
	timer_fd = make_timerfd();
	if (sig_fd < 0 || timer_fd < 0) {
		pr_err("failed to set up signal and timer handling: %s", strerror(errno));
		ret = 1;
		goto out;
	}
	pr_info("starting: port %u on %s, mode %s, %d pools, config %s", cfg->port, cfg->addr_text,
		config_mode_name(cfg->mode), cfg->nr_pools, file);
	if (controller_start(ctl)) {
		pr_err("start failed; removing what this run created");
		controller_stop(ctl);
		ret = 1;
		goto out;
	}
	pr_info("running: port %u steered by %s", cfg->port,
		cfg->mode == TRIAGE_MODE_PAYLOAD ? "payload" : "connection");
	sig = controller_loop(ctl, sig_fd, timer_fd);
	pr_info("stopping on %s", strsignal(sig));
	ret = controller_stop(ctl) ? 1 : 0;
	pr_info("stopped: port %u", cfg->port);
out:
	if (sig_fd >= 0)
		close(sig_fd);
	if (timer_fd >= 0)
		close(timer_fd);
	free(ctl);
	return ret;
}
