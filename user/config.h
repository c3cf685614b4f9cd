/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The controller's configuration, as read from a YAML file. */
#ifndef TRIAGE_CONFIG_H
#define TRIAGE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "triage.h"

#define CONFIG_MAX_ARGS		32
#define CONFIG_MAX_ENV		32
#define CONFIG_MAX_IFACES	8
#define CONFIG_PATH_MAX		256
#define CONFIG_MAX_TEMPLATES	4

/* Limits of one pool; a field left unset is not written to any cgroup. */
struct pool_limits {
	bool has_cpus;
	double cpus;			/* cpu.max as a number of CPUs */
	uint32_t cpu_weight;		/* cpu.weight, 1..10000, 0 = unset */
	char cpuset[64];		/* cpuset.cpus, "" = unset */
	int64_t memory_max;		/* bytes, -1 = unset */
	int64_t memory_high;		/* bytes, -1 = unset */
	uint32_t io_weight;		/* io.weight, 1..10000, 0 = unset */
	char io_max[128];		/* io.max line, such as "8:0 rbps=1048576", "" = unset */
	int64_t pids_max;		/* -1 = unset */
	/*
	 * Place the group in the memory controller even without a memory limit,
	 * so that its usage can be read. Set by the controller, not the file.
	 */
	bool account_memory;
};

/* Target that a scaled pool sizes itself for. */
enum scale_target {
	SCALE_ACTIVE = 1,		/* active connections per worker */
	SCALE_CPU,			/* CPU utilization of the pool's CPU limit */
};

/*
 * Scaling policy of a pool. enabled is false for a pool of fixed size. When
 * cpus_per_worker or memory_per_worker is set, the pool's cpu.max or
 * memory.max follows its worker count, and config_load() writes the values
 * for the starting count into the pool's limits.
 */
struct pool_scaling {
	bool enabled;
	uint32_t min;			/* workers, at least 1 */
	uint32_t max;			/* workers, at most TRIAGE_MAX_WORKERS */
	uint32_t target;		/* enum scale_target */
	double target_value;		/* connections per worker, or utilization in (0, 1] */
	double up_factor;		/* most growth in one tick, as a factor; default 2 */
	uint32_t up_step_max;		/* most workers added in one tick; 0 = up to max */
	uint32_t down_window_s;		/* stabilization window of scale-down; default 30 */
	double cpus_per_worker;		/* 0 = the CPU limit does not scale */
	int64_t memory_per_worker;	/* bytes, -1 = the memory limit does not scale */
	uint32_t weight;		/* share of the host budget under contention; default 100 */
};

struct pool_config {
	char name[TRIAGE_NAME_LEN];
	int line;			/* line of the pool in the file, for messages */
	char *argv[CONFIG_MAX_ARGS + 1];	/* NULL-terminated, argv[0] is the command */
	int argc;
	char *env[CONFIG_MAX_ENV + 1];	/* "KEY=VALUE", NULL-terminated */
	int envc;
	char user[64];			/* "" = run as the controller's user */
	uint32_t workers;		/* starting count, 1..TRIAGE_MAX_WORKERS */
	struct pool_limits limits;
	struct pool_scaling scaling;
	bool removable;			/* removed after idle_timeout_s without a connection */
	uint32_t idle_timeout_s;	/* 0 = never; only for removable pools */
	/*
	 * argv and env belong to another pool_config (the template this pool was
	 * made from), so config_free() leaves them alone.
	 */
	bool borrowed;
};

/* Resources that all pools together may use; a value left unset is not enforced. */
struct budget_config {
	bool has_cpus;
	double cpus;
	int64_t memory;			/* bytes, -1 = unset */
};

/* Key by which requests that match no rule are counted for emerging categories. */
enum emerge_key {
	EMERGE_OFF = 0,
	EMERGE_PATH,			/* the first path segment, such as "/reports" */
	EMERGE_HOST,			/* the Host header */
};

/*
 * Requests that match no rule are counted per key in an LRU map of
 * table_size entries. A key whose rate stays at or above rate for for_s
 * seconds becomes a category with a pool made from the template.
 */
struct emerge_config {
	uint32_t key;			/* enum emerge_key */
	uint32_t table_size;		/* default 1024 */
	double rate;			/* connections per second */
	uint32_t for_s;			/* default 10 */
	int template;			/* index into config.templates */
	uint32_t max_pools;		/* most pools that exist this way at once; default 4 */
};

/* A rule in the file; converted to struct triage_rule for the kernel. */
struct rule_config {
	int line;
	int priority;			/* higher first; ties keep file order */
	int order;			/* position in the file */
	int category;			/* index into config.categories */
	struct triage_rule rule;	/* match bits and values, category filled in */
};

struct category_config {
	char name[TRIAGE_NAME_LEN];
	int line;
	int pool;			/* index into config.pools */
};

/* The running service that a run attaches to (`attach:` or `triage attach`). */
struct attach_config {
	int pid;			/* 0 = no service: triage owns the port */
	char pool[TRIAGE_NAME_LEN];	/* pool of the service's sockets, "" = default_pool */
	bool move_to_pool;		/* move the service's processes into the pool's cgroups */
	int line;			/* line of `attach` in the file, 0 when set on the command line */
};

struct config {
	char file[CONFIG_PATH_MAX];
	uint16_t port;
	int family;			/* AF_INET or AF_INET6 */
	uint8_t addr[16];		/* network byte order */
	char addr_text[64];
	uint32_t mode;			/* enum triage_mode */
	char cgroup_root[CONFIG_PATH_MAX];	/* cgroup v2 folder for the pools */
	char ifaces[CONFIG_MAX_IFACES][16];	/* tc attach points; none = every interface */
	int nr_ifaces;
	int default_pool;		/* index into pools */
	int tick_ms;
	/*
	 * Placement of a connection chosen without payload and without a matching
	 * rule: false for the default pool, true for the pool of its 4-tuple's
	 * previous connection.
	 */
	bool syn_last_pool;

	struct budget_config budget;
	struct emerge_config emerge;

	/* pools[] has room for the pools that emerge at run time, after nr_pools. */
	struct pool_config pools[TRIAGE_MAX_POOLS];
	int nr_pools;
	struct pool_config templates[CONFIG_MAX_TEMPLATES];
	int nr_templates;
	struct category_config categories[TRIAGE_MAX_CATEGORIES];
	int nr_categories;
	struct rule_config rules[TRIAGE_MAX_RULES];
	int nr_rules;			/* sorted by priority after config_load() */
	struct attach_config attach;
};

/*
 * Loads and validates FILE into CFG without touching the system. On error
 * returns -EINVAL for invalid content, -E2BIG when a list exceeds its limit or
 * a negative errno from reading, writes "FILE:LINE: key 'KEY': what was
 * expected, got 'VALUE'" into ERR and leaves CFG zeroed. CFG is overwritten
 * without being freed, so call config_free() before loading into it again.
 */
int config_load(const char *file, struct config *cfg, char *err, size_t err_len);
/*
 * Same as config_load(), with the command line's attach settings CLI (pid,
 * pool unless "", move_to_pool when true) taking precedence over the file's
 * `attach` section. CLI may be NULL.
 */
int config_load_attach(const char *file, const struct attach_config *cli, struct config *cfg,
		       char *err, size_t err_len);
/* Same as config_load() for a config held in memory; NAME is used in messages. */
int config_parse(const char *name, const char *text, size_t len, struct config *cfg,
		 char *err, size_t err_len);
/*
 * Frees the argv and env strings of CFG. Safe to call twice and after a failed
 * load, but CFG must have been passed to config_load() or config_parse() first.
 */
void config_free(struct config *cfg);
/* Returns the index of the pool called NAME, or -1 if there is none. */
int config_pool_index(const struct config *cfg, const char *name);
/*
 * Parses a byte count: a decimal integer with an optional K, M, G or T suffix
 * (powers of 1024, either case). Returns -EINVAL for other text, "max"
 * included, and -ERANGE when the value does not fit in int64_t.
 */
int config_parse_size(const char *text, int64_t *out);
/* Returns "payload" or "connection" for a TRIAGE_MODE_* value, "unknown" otherwise. */
const char *config_mode_name(uint32_t mode);

#endif /* TRIAGE_CONFIG_H */
