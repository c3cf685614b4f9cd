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
struct attach;

struct worker {
	pid_t pid;			/* 0 while not running */
	__u32 slot;			/* index in the socket array */
	int restarts;
	long backoff_ms;
	struct timespec started;
	struct timespec restart_at;	/* zero when no restart is pending */
};

struct pool {
	const struct pool_config *cfg;
	__u32 id;
	char exe[PATH_MAX];		/* the resolved command */
	bool set_user;
	uid_t uid;
	gid_t gid;
	struct cg_group cg;
	struct worker workers[TRIAGE_MAX_WORKERS];
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
	struct attach *attach;		/* the running service on the port, NULL if none */
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

/* Resolves commands and users of every pool; touches nothing. */
int workers_preflight(struct controller *ctl);
/* Starts every worker of every pool; returns once each one exec'd or failed. */
int workers_start_all(struct controller *ctl);
/* Reaps exited workers and schedules their restart. */
void workers_reap(struct controller *ctl);
/* Starts the workers whose back-off has passed. */
void workers_restart_due(struct controller *ctl);
/* SIGTERM to every worker, SIGKILL after the grace period; reaps them. */
void workers_stop_all(struct controller *ctl);

/* Returns -EINTR when SIGINT or SIGTERM is pending; both stay blocked for the signalfd. */
int stop_requested(void);

/* Runs the controller of a loaded config until a stop signal; returns the exit status. */
int controller_run(struct config *cfg, const char *file);

int cmd_run(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_detach(int argc, char **argv);

#endif /* TRIAGE_CONTROLLER_H */
