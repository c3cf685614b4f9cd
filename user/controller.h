/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The controller of one port: its BPF objects, pools and workers. */
#ifndef TRIAGE_CONTROLLER_H
#define TRIAGE_CONTROLLER_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include "cgroup.h"
#include "config.h"
#include "state.h"

struct triage_bpf;
struct emerge_state;
struct attach;

enum worker_state {
	W_IDLE,				/* no process, and restarted when in the pool */
	W_RUNNING,
	W_DRAINING,			/* out of the socket array, finishing its requests */
};

struct worker {
	pid_t pid;			/* 0 while not running */
	__u32 slot;			/* index in the socket array */
	int state;			/* enum worker_state */
	bool in_pool;			/* counted in the pool's size, so restarted when it exits */
	/*
	 * The controller's copy of the worker's listener. It keeps the listener
	 * open after the worker dies, until the controller shuts it down, which
	 * moves its queued connections to other listeners instead of resetting
	 * them.
	 */
	int lfd;
	__u64 cookie;			/* socket cookie of the listener */
	/*
	 * The worker died as the last one of its pool: its listener stays in the
	 * socket array and takes the pool's connections into its queue until a
	 * new worker starts, so they never spill into another pool.
	 */
	bool parked;
	int restarts;
	long backoff_ms;
	struct timespec started;
	struct timespec restart_at;	/* zero when no restart is pending */
	struct timespec kill_at;	/* SIGKILL time of a draining worker */
	__u64 active;			/* connections its listener took and not yet closed */
	__u32 queued;			/* accept-queue depth of its listener */
};

/* Recommendations of the last down_window_s, as the highest one per bucket. */
#define SCALE_BUCKETS	64

/* Figures of one pool for one tick, and what the autoscaler decided. */
struct pool_metrics {
	double conn_rate;		/* connections established per second */
	double done_rate;		/* connections closed per second */
	__u64 active;			/* established and not yet closed */
	__u32 queued;			/* accept-queue depth, summed over listeners */
	__u32 queued_max;		/* deepest accept queue of one listener */
	double cpu_usage;		/* CPUs used over the last tick */
	double cpu_limit;		/* CPUs allowed by cpu.max, 0 = none */
	double throttled_ms;		/* time throttled during the last tick */
	__u64 nr_throttled;		/* periods throttled during the last tick */
	long long mem_current;		/* bytes, -1 = not available */
	long long mem_peak;
	long long mem_limit;		/* bytes, -1 = none */
	__u64 oom_kills;		/* since the pool started, -1 unknown */
	double psi_cpu, psi_mem, psi_io;	/* "some" avg10, percent; -1 = not available */
};

struct pool_scaler {
	__u64 prev_established, prev_closed, prev_usage_us, prev_throttled_us;
	__u64 prev_nr_throttled;
	struct timespec prev_at;
	bool have_prev;
	__u32 recommended;		/* what the policy asked for in the last tick */
	__u32 stabilized;		/* recommendation after the window, before the growth cap */
	__u32 desired;			/* after the growth cap and the stabilization window */
	__u32 granted;			/* after the host budget */
	__u32 share;			/* workers the host budget grants towards stabilized */
	__u32 held_back;		/* stabilized - share: workers the budget denies */
	long long bucket_id[SCALE_BUCKETS];
	__u32 bucket_max[SCALE_BUCKETS];
	char decision[320];		/* the last change and its reason */
	time_t decision_at;		/* wall-clock time of the last change, 0 = none */
	struct timespec last_conn;	/* last tick with a new or an active connection */
	bool seeded;			/* the starting size is in the window */
	bool removing;			/* removable pool being drained for good */
};

struct pool {
	struct pool_config *cfg;
	__u32 id;
	bool active;			/* pools[] has holes where emerged pools were removed */
	bool emerged;			/* made from a template at run time */
	int category;			/* the emerged pool's category, -1 otherwise */
	char exe[PATH_MAX];		/* the resolved command */
	bool set_user;
	uid_t uid;
	gid_t gid;
	struct cg_group cg;
	struct worker workers[TRIAGE_MAX_WORKERS];
	struct pool_metrics m;
	struct pool_scaler sc;
	unsigned long long oom_seen;	/* OOM kills of the group when the last worker exited */
};

struct controller {
	struct config *cfg;
	struct triage_bpf *skel;
	struct state st;
	struct cg_layout lay;
	char pin_dir[256];
	char port_cgroup[512];		/* v2 folder of the port, where sockops attaches */
	struct pool pools[TRIAGE_MAX_POOLS];
	int nr_pools;
	int sockops_fd;			/* link fd, -1 when not attached */
	bool stopping;
	struct emerge_state *emerge;	/* NULL when the config has no emerge section */
	struct attach *attach;		/* the running service on the port, NULL if none */
	int ctl_fd;			/* listening control socket, -1 when closed */
};

/* Loads the programs, fills and pins the maps. */
int port_bpf_setup(struct controller *ctl);
/* Writes the pool's live listener slots into the pools map. */
int port_bpf_publish_pool(struct controller *ctl, struct pool *pool);
void port_bpf_close(struct controller *ctl);
/* Attaches the deferral program to the configured interfaces (payload mode). */
int port_tc_setup(struct controller *ctl);
int port_sockops_attach(struct controller *ctl);
int port_sysctl_setup(struct controller *ctl);

/* Writes a category and the conf entry (rule count, default pool) to the maps. */
int port_bpf_publish_category(struct controller *ctl, int category);
int port_bpf_publish_conf(struct controller *ctl);
int port_bpf_publish_rule(struct controller *ctl, int index);
/* Records the slot of a listener by its socket cookie for the migration path. */
int port_bpf_publish_listener(struct controller *ctl, __u64 cookie, __u32 slot);
void port_bpf_forget_listener(struct controller *ctl, __u64 cookie);
int port_sysctl_set(struct controller *ctl, const char *name, const char *value,
		    const char *why);

/* Sets every worker entry of POOL to idle, with its slot; POOL->id must be set. */
void workers_init_pool(struct pool *pool);
/* Resolves command and user of one pool; touches nothing. */
int workers_preflight_pool(struct controller *ctl, struct pool *pool);
/* Resolves commands and users of every pool; touches nothing. */
int workers_preflight(struct controller *ctl);
/* Starts every worker of every pool; returns once each one exec'd or failed. */
int workers_start_all(struct controller *ctl);
/* Starts N more workers of POOL; returns how many started. */
int workers_add(struct controller *ctl, struct pool *pool, int n);
/*
 * Takes N running workers of POOL out of service without resetting a
 * connection: out of the socket array, listener shut down so its queue
 * migrates, then SIGTERM and SIGKILL after the grace period.
 */
int workers_drain(struct controller *ctl, struct pool *pool, int n);
/* Counts the workers in POOL's size, running or not. */
int workers_in_pool(const struct pool *pool);
/* Counts the processes of POOL, draining ones included. */
int workers_alive(const struct pool *pool);
/* Reaps exited workers and schedules their restart. */
void workers_reap(struct controller *ctl);
/* Starts the workers whose back-off has passed; kills drained ones past their grace. */
void workers_restart_due(struct controller *ctl);
/* SIGTERM to every worker, SIGKILL after the grace period; reaps them. */
void workers_stop_all(struct controller *ctl);

/* Creates the cgroup of POOL (id and cfg set); logs the error. */
int pool_cgroup_setup(struct controller *ctl, struct pool *pool);

/* Reads the signals of every pool, resizes them and writes the pools report. */
void autoscale_tick(struct controller *ctl);
/* Writes /run/triage/PORT.pools.json and .txt; removes them with REMOVE. */
void pools_report_write(struct controller *ctl, bool remove);

/* Emerging and idle pools; emerge_init() reads the config, the others run each tick. */
int emerge_init(struct controller *ctl);
void emerge_tick(struct controller *ctl);
void emerge_free(struct controller *ctl);

/* Returns -EINTR when SIGINT or SIGTERM is pending; both stay blocked for the signalfd. */
int stop_requested(void);

/* Runs the controller of a loaded config until a stop signal; returns the exit status. */
int controller_run(struct config *cfg, const char *file);

int cmd_run(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_detach(int argc, char **argv);
int cmd_pools(int argc, char **argv);

#endif /* TRIAGE_CONTROLLER_H */
