/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The tc ingress filter that carries the deferral program. */
#ifndef TRIAGE_TC_H
#define TRIAGE_TC_H

#include <stdbool.h>

/* tc priority of triage's filters; the handle is the port number. */
#define TRIAGE_TC_PRIO	7717

/*
 * Attaches PROG_FD as a clsact ingress filter on IFINDEX. Creates the clsact
 * qdisc when missing (sets *HOOK_CREATED) and replaces a stale filter with the
 * same handle and priority (sets *REPLACED).
 */
int tc_filter_add(int ifindex, int prog_fd, unsigned int handle, bool *hook_created,
		  bool *replaced);
/* Removes the filter; removes the clsact qdisc too when HOOK_CREATED. */
int tc_filter_remove(int ifindex, unsigned int handle, unsigned int prio, bool hook_created);
/* Removes the clsact qdisc of IFINDEX with every filter on it. */
void tc_hook_remove(int ifindex);
/* Returns 1 when a filter with HANDLE and TRIAGE_TC_PRIO is on IFINDEX, 0 if not. */
int tc_filter_exists(int ifindex, unsigned int handle);

#endif /* TRIAGE_TC_H */
