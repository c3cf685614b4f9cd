/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Pool cgroups. Each pool has a cgroup v2 group, which BPF sockops programs
 * attach to even when no controller is enabled there. A limit goes to cgroup
 * v2 when its controller is available there, and otherwise to the cgroup v1
 * hierarchy that the controller is mounted on (hybrid hosts).
 */
#ifndef TRIAGE_CGROUP_H
#define TRIAGE_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "config.h"

#define CG_MOUNT_LEN	256
#define CG_PATH_LEN	512

/* Controllers that pool limits use; CG_IO is "io" on v2 and "blkio" on v1. */
enum cg_ctrl { CG_CPU, CG_CPUSET, CG_MEMORY, CG_IO, CG_PIDS, CG_NR_CTRL };

/* Controller locations found by cgroup_detect(). */
struct cg_layout {
	char v2_mount[CG_MOUNT_LEN];		/* "" when there is no cgroup2 mount */
	char v2_controllers[256];		/* the v2 root's cgroup.controllers */
	bool v2_has[CG_NR_CTRL];		/* listed in v2_controllers */
	char v1_mount[CG_NR_CTRL][CG_MOUNT_LEN];	/* v1 hierarchy with the controller, or "" */
};

/* One pool's group: a folder in cgroup v2 and one in each v1 hierarchy it uses. */
struct cg_group {
	char rel[CG_PATH_LEN];			/* REL of cgroup_create(), for messages */
	char v2[CG_PATH_LEN];
	char v1[CG_NR_CTRL][CG_PATH_LEN];	/* "" when the controller is on v2 or unused */
	bool created_v2;
	bool created_v1[CG_NR_CTRL];		/* false for the 2nd controller of a shared mount */
	char notes[512];			/* what the caller should log, "" if nothing */
};

/*
 * Sets FN to receive one line for each folder created ("cgroup PATH") and each
 * controller enabled in a cgroup this module did not create ("subtree PATH
 * CTRL"), in the order they happen, so a caller can keep a record to undo.
 */
void cgroup_set_recorder(void (*fn)(void *arg, const char *line), void *arg);

/* Returns "cpu", "cpuset", "memory", "io" or "pids". */
const char *cgroup_ctrl_name(enum cg_ctrl c);

/* Fills LAY from /proc/self/mountinfo and the v2 root's cgroup.controllers. */
int cgroup_detect(struct cg_layout *lay, char *err, size_t len);

/*
 * Writes one line for the start-up log, such as "cgroup v2 at
 * /sys/fs/cgroup/unified (hugetlb); v1: cpu at /sys/fs/cgroup/cpu, ...".
 */
void cgroup_describe(const struct cg_layout *lay, char *buf, size_t len);

/*
 * Creates V2_ROOT (a folder below the cgroup2 mount) and V2_ROOT/REL, then
 * applies LIMITS. For each limit whose controller lives on cgroup v1, the
 * same path below the v2 mount is created in that v1 hierarchy: V2_ROOT
 * "/sys/fs/cgroup/unified/triage" and REL "8080/light" give
 * "/sys/fs/cgroup/cpu/triage/8080/light". Folders above REL's last part
 * that exist already are reused; the last part must not exist.
 *
 * Controllers used on v2 are enabled in cgroup.subtree_control of each
 * ancestor. In an ancestor that this module did not create, the change is
 * recorded and undone by cgroup_release_layout(), or by cgroup_remove() of
 * the last group. GRP->notes lists what was enabled where and which limits
 * were mapped to a v1 file with other semantics.
 *
 * Each written limit is read back and compared. On error, everything created
 * or enabled by this call is undone and ERR names the cgroup, the limit and
 * the reason; the return value is a negative errno.
 */
int cgroup_create(const struct cg_layout *lay, const char *v2_root, const char *rel,
		  const struct pool_limits *limits, struct cg_group *grp, char *err, size_t len);

/*
 * Moves PID (0 = the caller) into the v2 group and each v1 group of GRP.
 * Uses only async-signal-safe calls (open, write, close and string
 * functions), so a child may call it between fork() and exec().
 * Returns 0 or the first negative errno.
 */
int cgroup_enter(const struct cg_group *grp, pid_t pid);

/*
 * Removes the groups of GRP that cgroup_create() created, after checking
 * that their cgroup.procs are empty (-EBUSY naming the pids otherwise, and
 * nothing is removed). Then removes the parent folders that this module
 * created and that are now empty. Calling it again does nothing.
 */
int cgroup_remove(struct cg_group *grp, char *err, size_t len);

/*
 * Undoes the cgroup.subtree_control changes made in cgroups that this module
 * did not create, deepest first, and removes the empty folders that it
 * created. Call it at exit; it is safe to call more than once.
 */
int cgroup_release_layout(char *err, size_t len);

/*
 * Reads FILE of the folder where controller C lives for GRP, without the
 * trailing newline. When C is on v1, a v2 name with a one-to-one v1
 * counterpart is read from that file instead, as raw v1 text: cpu.max reads
 * cpu.cfs_quota_us, cpu.weight reads cpu.shares, memory.max reads
 * memory.limit_in_bytes and memory.high reads memory.soft_limit_in_bytes.
 * Other names are read as given.
 */
int cgroup_read_file(const struct cg_group *grp, enum cg_ctrl c, const char *file,
		     char *buf, size_t len);

/*
 * Changes the CPU limit (cpu.max, or cpu.cfs_quota_us on v1) or the memory
 * limit (memory.max, or memory.limit_in_bytes on v1) of a group whose
 * controller cgroup_create() placed. Returns 0, or a negative errno with ERR
 * naming the file and the value. On v1, a memory limit below the group's
 * usage fails with -EBUSY after the kernel tried to reclaim.
 */
int cgroup_set_cpus(struct cg_group *grp, double cpus, char *err, size_t len);
int cgroup_set_memory_max(struct cg_group *grp, int64_t bytes, char *err, size_t len);
/* Returns the OOM kills in GRP's memory group so far, or 0 when it cannot be read. */
unsigned long long cgroup_oom_kills(const struct cg_group *grp);
/* Reads FILE of GRP's cgroup v2 folder, such as cpu.stat or cpu.pressure. */
int cgroup_read_v2(const struct cg_group *grp, const char *file, char *buf, size_t len);

#endif /* TRIAGE_CGROUP_H */
