/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Attaching to a service that already listens on the port. triage takes
 * duplicates of the service's listening sockets with pidfd_getfd(). It steers
 * the port through the sockets' reuseport group, or through an sk_lookup
 * program in the network namespace for sockets without SO_REUSEPORT. triage
 * sends no signal to the service's processes.
 */
#ifndef TRIAGE_ATTACH_H
#define TRIAGE_ATTACH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "triage.h"

struct controller;
struct pool;
struct lookup_bpf;

enum attach_mech {
	ATTACH_REUSEPORT,		/* triage joins the service's reuseport group */
	ATTACH_SK_LOOKUP,		/* an sk_lookup program picks service or triage's group */
};

/* A service's listening socket, duplicated into the controller. */
struct service_sock {
	int fd;				/* the duplicate, -1 when closed */
	int target_fd;			/* the descriptor number in the service's process */
	unsigned long inode;
	__u32 slot;			/* socket-array index, reuseport mechanism only */
};

struct attach {
	pid_t pid;
	unsigned long long start_time;	/* of PID, so a reused pid is recognized */
	char comm[64];
	enum attach_mech mech;
	int pool;			/* index of the service's pool */
	uid_t sock_uid;			/* owner of the service's sockets */
	int v6only;			/* IPV6_V6ONLY of an AF_INET6 service socket */
	struct service_sock socks[TRIAGE_MAX_WORKERS];
	int nr_socks;
	bool move_to_pool;		/* move the service's processes into the pool's cgroups */
	bool in_array;			/* the sockets' slots are in the socket array */
	/* sk_lookup mechanism only */
	int entry_fd;			/* entry socket of triage's group, -1 when closed */
	uint16_t group_port;		/* port of triage's group */
	int fallback_pool;		/* the group's default pool */
	struct lookup_bpf *lookup;
	int lookup_link_fd;
};

/* Attach details of a port as read from its record, for `triage status`. */
struct attach_info {
	bool attached;
	pid_t pid;
	bool pid_running;		/* PID still runs with the recorded start time */
	char command[256];		/* its command line, spaces between arguments */
	char mech[16];			/* "reuseport" or "sk_lookup" */
	char pool[TRIAGE_NAME_LEN];
	bool moved;			/* its processes were moved into the pool's cgroups */
};

/*
 * Finds the listening TCP sockets of the configured process on the port and
 * duplicates them. Creates nothing outside the controller; every failure is
 * logged with its cause and the fix. Does nothing when no attach is set.
 */
int attach_preflight(struct controller *ctl);
/*
 * Logs an error of an attach and, while a capture buffer is set, also
 * appends it there, so a request over the control socket gets the message.
 */
void attach_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Sets the buffer that attach_error() appends to, or stops with BUF NULL. */
void attach_capture(char *buf, size_t len);

/* Returns true when the port belongs to a running service that triage attached to. */
bool attach_active(const struct controller *ctl);
/* Returns true for the pool that the service's own sockets form: it has no workers. */
bool attach_is_service_pool(const struct controller *ctl, const struct pool *pool);
/*
 * Joins the service's reuseport group or installs the sk_lookup program,
 * then moves the service's processes when move_to_pool is set. Every object
 * is recorded first, so state_undo() removes it.
 */
int attach_setup(struct controller *ctl);
/*
 * Runs the checks of an attach to a running controller on AT, whose pid is
 * set: the process, its listeners on the port, their duplicates, and that
 * they share the reuseport group of triage's listeners. Changes nothing
 * outside AT, and reports every failure through attach_error().
 */
int attach_check_live(struct controller *ctl, struct attach *at);
/*
 * Attaches process PID to the running controller: the same checks as at the
 * start, then the service's sockets, which must be in the reuseport group of
 * triage's listeners, become the slots of pool POOL ("" = default pool),
 * whose own workers are drained. Returns 0 with a description of the attach
 * in REPLY, or a negative errno with the error messages in REPLY and nothing
 * changed.
 */
int attach_live(struct controller *ctl, pid_t pid, const char *pool, bool move_to_pool,
		char *reply, size_t len);
/* Adds the service's slots to VAL when POOL is the service's pool on a reuseport port. */
void attach_pool_slots(const struct controller *ctl, const struct pool *pool,
		       struct triage_pool *val);
/*
 * Checks the attached service once per tick. Sockets that no process other
 * than the controller has open leave the pool, and their queued connections
 * move to other listeners.
 */
void attach_tick(struct controller *ctl);
/* Sends new connections to the service alone, before the workers stop. */
void attach_release(struct controller *ctl);
/* Closes the duplicates and frees the attach state. */
void attach_close(struct controller *ctl);

/*
 * Creates a worker's listening socket: with the service's socket owner as
 * file-system uid, because a reuseport group admits sockets of one user only.
 * Called between fork() and exec(), so it uses system calls only.
 */
int attach_listener_socket(const struct controller *ctl, int family);
/* Returns the port that workers bind: the service's port, or triage's group port. */
uint16_t attach_listen_port(const struct controller *ctl);
/* Fills the 16 bytes of ADDR with the address that triage's listeners bind. */
void attach_listen_addr(const struct controller *ctl, uint8_t *addr);

/*
 * Creates the control socket STATE_DIR/<port>.ctl (mode 0600), through which
 * 'triage attach' without --config attaches a service to this controller.
 * Records it first, so the undo of the record removes it.
 */
int attach_ctl_open(struct controller *ctl);
/* Serves one request on the control socket. Call it when the socket is readable. */
void attach_ctl_serve(struct controller *ctl);
void attach_ctl_close(struct controller *ctl);
/*
 * Sends an attach request to the controller of PORT, pid CONTROLLER, and
 * prints its reply. Returns the exit status of 'triage attach': 0 or 1.
 */
int attach_ctl_request(uint16_t port, pid_t controller, pid_t pid, const char *pool,
		       bool move_to_pool);
/* Removes the control socket file at PATH. Returns 0 or a negative errno. */
int attach_ctl_remove(const char *path);

/* Undoes one record line that starts with "attach"; other lines return -ENOENT. */
int attach_undo_line(const char *line);
/*
 * Returns true when PID is the attached service's process, or one of its
 * descendants, according to the record LINES: those are never signalled.
 */
bool attach_protects_pid(char **lines, int n, pid_t pid);
/* Reads the attach facts of PORT from its record. */
void attach_read_info(uint16_t port, struct attach_info *info);

int cmd_attach(int argc, char **argv);

#endif /* TRIAGE_ATTACH_H */
