/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Attaching to a service that already listens on the port: triage takes
 * duplicates of the service's listening sockets with pidfd_getfd() and steers
 * the port either through the sockets' reuseport group or, for sockets
 * without SO_REUSEPORT, through an sk_lookup program in the network
 * namespace. The service's processes are never signalled by triage.
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
	/* sk_lookup mechanism only */
	int entry_fd;			/* entry socket of triage's group, -1 when closed */
	uint16_t group_port;		/* port of triage's group */
	int fallback_pool;		/* the group's default pool */
	struct lookup_bpf *lookup;
	int lookup_link_fd;
};

/* What the record says about an attached port, for `triage status`. */
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
