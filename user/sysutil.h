/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Small helpers for files, processes, sysctls and namespaces. */
#ifndef TRIAGE_SYSUTIL_H
#define TRIAGE_SYSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Returns a NUL-terminated copy of PATH (at most MAX bytes), or NULL with errno set. */
char *read_text_file(const char *path, size_t max);
/* Writes the formatted text to PATH in one write(); returns 0 or -errno. */
int write_file_fmt(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* NAME is dotted, as in "net.ipv4.tcp_syncookies"; the value has no newline. */
int sysctl_read(const char *name, char *value, size_t len);
int sysctl_write(const char *name, const char *value);

unsigned long netns_inode(void);
/* Returns the current network namespace's cookie, which the kernel never reuses, or 0. */
unsigned long long netns_cookie(void);
int proc_comm(pid_t pid, char *buf, size_t len);
bool proc_alive(pid_t pid);
/* Returns the start time of PID in clock ticks since boot, or 0. */
unsigned long long proc_start_time(pid_t pid);
/* Returns true when PID's cgroup v2 path ends in REL_OR_ABS's path below the mount. */
bool proc_in_cgroup(pid_t pid, const char *cgroup_dir);
void sleep_ms(long ms);
/* Removes an empty cgroup folder, retrying while the kernel still frees it. */
int cgroup_rmdir_wait(const char *path);
int mkdir_p(const char *path, mode_t mode);
/*
 * Sums entry KEY of the per-CPU array map FD, whose value is NWORDS 64-bit
 * counters, over every possible CPU into OUT. Returns 0 or a negative errno.
 */
int bpf_percpu_sum(int fd, unsigned int key, unsigned long long *out, int nwords);

#endif /* TRIAGE_SYSUTIL_H */
