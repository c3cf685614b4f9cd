/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The record of every object a run creates, one line per object, appended
 * as it is created. A clean stop, `triage detach` and the next run after a
 * crash all undo a port by replaying this record, so they remove exactly
 * what was created and nothing else.
 */
#ifndef TRIAGE_STATE_H
#define TRIAGE_STATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define STATE_DIR	"/run/triage"
#define PIN_ROOT	"/sys/fs/bpf/triage"

struct state {
	int fd;
	uint16_t port;
	char path[128];
};

/* Creates STATE_DIR/<port>.state for a new run; -EEXIST if one is there. */
int state_create(struct state *st, uint16_t port);
/* Appends one record line, such as "tc lo 1 8080 7717 1", and syncs it. */
int state_add(struct state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void state_close(struct state *st);

void state_path(uint16_t port, char *buf, size_t len);
/* Returns the controller pid recorded for PORT if that process still runs, else 0. */
pid_t state_live_controller(uint16_t port);
/*
 * Undoes everything recorded for PORT, newest first: workers (only pids that
 * are still in the recorded cgroups), tc filters, pins, cgroups, controllers
 * enabled in subtree_control, sysctls. Then removes the record. Returns 0 or
 * the first negative errno; every failure is logged with the object. A record
 * of another network namespace is refused unless FORCE, which skips the
 * namespace's own objects (tc filters, sysctls), for a namespace that is gone.
 */
int state_undo(uint16_t port, bool force);
/*
 * Serializes undos and the set-up of objects that runs share, so a hand-over
 * never lands in a record that is being read. Returns a descriptor or -1.
 */
int state_lock(void);
void state_unlock(int fd);

/* Removes a pin folder and the files in it, then PIN_ROOT if it is empty. */
int pins_remove(const char *dir);

#endif /* TRIAGE_STATE_H */
