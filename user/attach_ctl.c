// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The control socket of a running controller, STATE_DIR/<port>.ctl, and the
 * client side of 'triage attach' without --config. One request and one reply
 * per connection, each a single SOCK_SEQPACKET message:
 *   request: "attach PID MOVE POOL", MOVE 0 or 1, POOL "-" for the default pool
 *   reply:   "ok" or "error", a newline, then the message lines
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "attach.h"
#include "controller.h"
#include "log.h"

#define CTL_REQUEST_MAX		256
#define CTL_REPLY_MAX		8192
/* Maximum time a connected client that sends nothing can stall the controller's loop. */
#define CTL_SERVER_TIMEOUT_S	1
/* The controller replies after its checks and the attach, which take well under this. */
#define CTL_CLIENT_TIMEOUT_S	30

static void ctl_path(uint16_t port, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%u.ctl", STATE_DIR, port);
}

int attach_ctl_remove(const char *path)
{
	struct stat st;

	if (lstat(path, &st))
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		pr_err("control socket %s: not a socket, so it was left alone; remove it by hand",
		       path);
		return -EEXIST;
	}
	if (unlink(path) && errno != ENOENT) {
		pr_err("control socket %s: failed to remove: %s", path, strerror(errno));
		return -errno;
	}
	pr_info("control socket %s: removed", path);
	return 0;
}

int attach_ctl_open(struct controller *ctl)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	unsigned int port = ctl->cfg->port;
	int fd, err;

	ctl_path(port, sa.sun_path, sizeof(sa.sun_path));
	err = state_add(&ctl->st, "attach-ctl %s", sa.sun_path);
	/* clean_stale() found no live controller of the port, so a socket file there is stale. */
	if (!err)
		err = attach_ctl_remove(sa.sun_path);
	if (err)
		return err;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	/* bind() gives the file the socket inode's mode: 0600, so only root may connect. */
	if (fd < 0 || fchmod(fd, 0600) || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    chmod(sa.sun_path, 0600) || listen(fd, 8)) {
		err = -errno;
		pr_err("port %u: failed to create the control socket %s: %s", port, sa.sun_path,
		       strerror(-err));
		if (fd >= 0)
			close(fd);
		return err;
	}
	ctl->ctl_fd = fd;
	pr_info("port %u: control socket %s accepts 'triage attach --port %u --pid PID'", port,
		sa.sun_path, port);
	return 0;
}

void attach_ctl_close(struct controller *ctl)
{
	if (ctl->ctl_fd >= 0)
		close(ctl->ctl_fd);
	ctl->ctl_fd = -1;
}

/* Runs one request and writes "ok\n..." or "error\n..." into REPLY. */
static void handle_request(struct controller *ctl, const char *req, char *reply, size_t len)
{
	char pool[TRIAGE_NAME_LEN + 1], message[CTL_REPLY_MAX - 8];
	int pid, move, err;

	if (sscanf(req, "attach %d %d %32s", &pid, &move, pool) != 3 || pid <= 0 ||
	    (move != 0 && move != 1)) {
		pr_warn("control socket: invalid request '%.80s'", req);
		snprintf(reply, len,
			 "error\ninvalid request '%.80s'; expected 'attach PID 0|1 POOL'", req);
		return;
	}
	pr_info("control socket: request to attach process %d to pool %s%s", pid,
		strcmp(pool, "-") ? pool : "(default)", move ? ", moving its processes" : "");
	err = attach_live(ctl, pid, strcmp(pool, "-") ? pool : "", move, message, sizeof(message));
	snprintf(reply, len, "%s\n%s", err ? "error" : "ok", message);
}

void attach_ctl_serve(struct controller *ctl)
{
	struct timeval tv = { .tv_sec = CTL_SERVER_TIMEOUT_S };
	char req[CTL_REQUEST_MAX], *reply;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	ssize_t n;
	int fd;

	fd = accept4(ctl->ctl_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	reply = malloc(CTL_REPLY_MAX);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (!reply || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len)) {
		pr_warn("control socket: dropped a request: %s", strerror(errno));
		goto out;
	}
	/* The file's mode admits root only, and this check also covers a descriptor passed on. */
	if (cred.uid != 0) {
		pr_warn("control socket: rejected a request of pid %d, uid %u: only root may attach",
			cred.pid, cred.uid);
		snprintf(reply, CTL_REPLY_MAX, "error\nonly root may attach a service to triage");
	} else {
		n = recv(fd, req, sizeof(req) - 1, 0);
		if (n <= 0) {
			pr_warn("control socket: pid %d sent no request within %d s", cred.pid,
				CTL_SERVER_TIMEOUT_S);
			goto out;
		}
		req[n] = '\0';
		handle_request(ctl, req, reply, CTL_REPLY_MAX);
	}
	if (send(fd, reply, strlen(reply), MSG_NOSIGNAL) < 0)
		pr_warn("control socket: failed to send the reply to pid %d: %s", cred.pid,
			strerror(errno));
out:
	free(reply);
	close(fd);
}

/* Prints each line of TEXT to F, with PREFIX before each. */
static void print_lines(FILE *f, const char *prefix, const char *text)
{
	const char *end;

	for (; *text; text = *end ? end + 1 : end) {
		end = strchrnul(text, '\n');
		fprintf(f, "%s%.*s\n", prefix, (int)(end - text), text);
	}
}

static int connect_ctl(uint16_t port, pid_t controller)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = CTL_CLIENT_TIMEOUT_S };
	int fd, err;

	ctl_path(port, sa.sun_path, sizeof(sa.sun_path));
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (!connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		return fd;
	err = -errno;
	close(fd);
	if (err == -EACCES || err == -EPERM)
		fprintf(stderr, "triage: port %u: connecting to the control socket %s was denied; it admits root only, so run 'triage attach' as root\n",
			port, sa.sun_path);
	else
		fprintf(stderr, "triage: port %u: triage pid %d steers it, but its control socket %s is unusable (%s); a controller of an older version has none, so stop it with 'triage detach --port %u' and attach with --config\n",
			port, controller, sa.sun_path, strerror(-err), port);
	return err;
}

int attach_ctl_request(uint16_t port, pid_t controller, pid_t pid, const char *pool,
		       bool move_to_pool)
{
	char req[CTL_REQUEST_MAX], *reply = calloc(1, CTL_REPLY_MAX);
	int fd, ret = 1;
	ssize_t n;

	fd = reply ? connect_ctl(port, controller) : -ENOMEM;
	if (fd < 0) {
		free(reply);
		return 1;
	}
	snprintf(req, sizeof(req), "attach %d %d %s", pid, move_to_pool, pool[0] ? pool : "-");
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0) {
		fprintf(stderr, "triage: port %u: failed to send the request to triage pid %d: %s\n",
			port, controller, strerror(errno));
		goto out;
	}
	n = recv(fd, reply, CTL_REPLY_MAX - 1, 0);
	if (n <= 0) {
		fprintf(stderr, "triage: port %u: triage pid %d sent no reply within %d s (%s); check its log, and 'triage status --port %u' for what it did\n",
			port, controller, CTL_CLIENT_TIMEOUT_S,
			n ? strerror(errno) : "connection closed", port);
		goto out;
	}
	reply[n] = '\0';
	if (!strncmp(reply, "ok\n", 3)) {
		print_lines(stdout, "", reply + 3);
		ret = 0;
	} else {
		print_lines(stderr, "triage: ", strncmp(reply, "error\n", 6) ? reply : reply + 6);
	}
out:
	close(fd);
	free(reply);
	return ret;
}
