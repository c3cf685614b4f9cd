// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * triage-worker: the demo HTTP/1.1 server that triage pools run.
 *
 * One thread runs an epoll loop over non-blocking sockets. The /cpu, /io and
 * /mem endpoints do their work inside that loop on purpose. A slow request
 * stalls every connection of this worker, and only the isolation between
 * pools keeps the other pools responsive.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define LISTEN_FDS_START	3	/* SD_LISTEN_FDS_START of systemd */
#define MAX_LISTENERS		64
#define POOL_NAME_MAX		255
#define DEFAULT_POOL_NAME	"unknown"	/* systemd's name for an unnamed fd */

#define MAX_HEADER_BYTES	(16 * 1024)	/* request line, headers, blank line */
#define IN_BUF_MIN		4096
#define IN_BUF_MAX		(32 * 1024)
/* Pipelined requests wait in the input buffer while this much output is unsent. */
#define OUT_HIGH_WATER		(64 * 1024)
#define OUT_BUF_KEEP		(16 * 1024)	/* larger output buffers are freed once sent */

#define IDLE_TIMEOUT_MS		30000
#define LINGER_TIMEOUT_MS	2000
#define EXPIRE_INTERVAL_MS	1000
#define ACCEPT_BATCH		64
#define ACCEPT_PAUSE_MS		1000
#define MAX_EVENTS		64

/*
 * After SIGTERM or SIGINT the worker exits within STOP_GRACE_MS. Open
 * connections get DRAIN_MS of it, and the rest is slack for closing them.
 * Work in a handler stops WORK_MARGIN_MS before the drain deadline so that
 * its response can still be sent.
 */
#define STOP_GRACE_MS		5000
#define DRAIN_MS		(STOP_GRACE_MS - 500)
#define WORK_MARGIN_MS		250

#define CPU_MS_MAX		10000
#define IO_KB_MAX		1048576
#define MEM_MB_MAX		4096
#define IO_CHUNK		(64 * 1024)
#define MAX_BLOB_KB		(64 * 1024)

#define MIN(a, b)		((a) < (b) ? (a) : (b))

/* Tag at the start of every object that epoll_event.data.ptr points to. */
enum handle_kind {
	HANDLE_LISTENER,
	HANDLE_CONN,
	HANDLE_WAKEUP,
};

struct listener {
	enum handle_kind kind;
	int fd;
	char addr[INET6_ADDRSTRLEN + 16];
};

struct request {
	const char *method;
	size_t method_len;
	const char *path;		/* without the query, not NUL-terminated */
	size_t path_len;
	const char *query;		/* the part after '?', not NUL-terminated */
	size_t query_len;
	bool http10;
	bool keep_alive;		/* what the client requested */
	bool expect_continue;
	uint64_t content_length;
};

struct response {
	int status;
	bool close;			/* close the connection after this response */
	const char *allow;		/* value of an Allow header, or NULL */
	size_t body_len;
	char body[256];
	size_t blob_len;		/* when set, the body is this many bytes of blob_data() */
};

/* The response to a request whose body is still being read and discarded. */
struct reply {
	struct response resp;
	bool head;			/* send the headers only */
	bool http10;
	bool keep_alive;
};

struct conn {
	enum handle_kind kind;
	int fd;
	uint32_t events;		/* registered with epoll */
	bool peer_eof;			/* the client shut down its sending side */
	bool close_after;		/* close once the output is sent */
	bool lingering;			/* write side shut, discarding input until EOF */
	bool reply_pending;		/* reply waits for body_left to reach 0 */
	uint64_t deadline_ms;		/* idle or linger timeout, CLOCK_MONOTONIC */
	uint64_t body_left;		/* request body bytes still to discard */
	char *in;			/* unparsed input is in[in_start..in_len) */
	size_t in_start, in_len, in_cap;
	char *out;			/* unsent output is out[out_sent..out_len) */
	size_t out_sent, out_len, out_cap;
	struct reply reply;
	struct sockaddr_storage peer;
	socklen_t peer_len;
	struct conn *prev, *next;
};

struct options {
	const char *listen;
	const char *pool;
};

static struct {
	const char *pool;
	pid_t pid;
	int epfd;
	struct listener listeners[MAX_LISTENERS];
	int nr_listeners;
	bool accept_paused;
	uint64_t accept_resume_ms;
	struct conn *conns;
	unsigned int nr_conns;
	uint64_t requests;
	bool stopping;			/* a stop signal was noticed */
	bool draining;			/* listeners closed, connections finishing */
	uint64_t drain_deadline_ms;
} worker = { .epfd = -1 };

static volatile sig_atomic_t stop_signal;
static int wake_fd = -1;		/* eventfd that the signal handler writes */
static const enum handle_kind wakeup_handle = HANDLE_WAKEUP;
static char io_pattern[IO_CHUNK];
static char io_readback[IO_CHUNK];

/* Logging */

static void log_vmsg(const char *fmt, va_list ap)
{
	char line[1024];
	size_t max = sizeof(line) - 1;
	int n;

	if (worker.pool)
		n = snprintf(line, max, "triage-worker[%d] pool=%s: ", (int)worker.pid,
			     worker.pool);
	else
		n = snprintf(line, max, "triage-worker[%d]: ", (int)worker.pid);
	if (n < 0)
		return;
	if ((size_t)n < max) {
		int len = vsnprintf(line + n, max - n, fmt, ap);

		if (len > 0)
			n += len;
	}
	if ((size_t)n > max - 1)
		n = max - 1;
	line[n++] = '\n';
	/* One write per line keeps lines whole when workers share stderr. */
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}

__attribute__((format(printf, 1, 2)))
static void log_msg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(fmt, ap);
	va_end(ap);
}

static unsigned int suppressed_errors;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Logs an error line unless one was logged less than a second ago, and counts the drops. */
__attribute__((format(printf, 1, 2)))
static void log_error_limited(const char *fmt, ...)
{
	static uint64_t last_ms;
	static bool logged;
	uint64_t now = now_ms();
	char text[512];
	va_list ap;

	if (logged && now - last_ms < 1000) {
		suppressed_errors++;
		return;
	}
	logged = true;
	last_ms = now;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (suppressed_errors)
		log_msg("%s (lines suppressed since the previous one: %u)", text,
			suppressed_errors);
	else
		log_msg("%s", text);
	suppressed_errors = 0;
}

static void format_addr(const struct sockaddr_storage *ss, socklen_t len, char *buf,
			size_t size)
{
	const struct sockaddr_in *sin = (const void *)ss;
	const struct sockaddr_in6 *sin6 = (const void *)ss;
	const struct sockaddr_un *sun = (const void *)ss;
	size_t path_off = offsetof(struct sockaddr_un, sun_path);
	char host[INET6_ADDRSTRLEN];

	switch (ss->ss_family) {
	case AF_INET:
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(buf, size, "%s:%u", host, ntohs(sin->sin_port));
		break;
	case AF_INET6:
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(buf, size, "[%s]:%u", host, ntohs(sin6->sin6_port));
		break;
	case AF_UNIX:
		if (len <= path_off || sun->sun_path[0] == '\0')
			snprintf(buf, size, "unix socket");
		else
			snprintf(buf, size, "unix:%.*s", (int)(len - path_off), sun->sun_path);
		break;
	default:
		snprintf(buf, size, "address family %d", ss->ss_family);
	}
}

/* Stop handling */

static void on_stop_signal(int sig)
{
	int saved_errno = errno;
	uint64_t one = 1;
	ssize_t ret;

	stop_signal = sig;
	if (wake_fd >= 0) {
		/* It fails only if the counter is nonzero already, so epoll wakes anyway. */
		ret = write(wake_fd, &one, sizeof(one));
		(void)ret;
	}
	errno = saved_errno;
}

/* Notices a stop signal, which starts the drain clock, and returns whether one arrived. */
static bool stop_requested(void)
{
	if (stop_signal && !worker.stopping) {
		worker.stopping = true;
		worker.drain_deadline_ms = now_ms() + DRAIN_MS;
		log_msg("stopping on SIG%s: accepting no new connections, open connections: %u",
			sigabbrev_np(stop_signal), worker.nr_conns);
	}
	return worker.stopping;
}

/* Returns whether a handler must give up its work so the worker exits in time. */
static bool work_must_stop(void)
{
	return stop_requested() && now_ms() + WORK_MARGIN_MS >= worker.drain_deadline_ms;
}

/* Endpoints */

__attribute__((format(printf, 3, 4)))
static void set_response(struct response *resp, int status, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(resp->body, sizeof(resp->body), fmt, ap);
	va_end(ap);
	resp->status = status;
	resp->body_len = n < 0 ? 0 : MIN((size_t)n, sizeof(resp->body) - 1);
}

static int parse_uint(const char *p, const char *end, uint64_t max, uint64_t *value)
{
	uint64_t v = 0;

	if (p == end)
		return -EINVAL;
	for (; p < end; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (*p - '0');
		if (v > max)
			return -EINVAL;
	}
	*value = v;
	return 0;
}

/*
 * Finds KEY in the query string and parses its value as a decimal integer.
 * The first occurrence wins. Returns 0, -ENOENT when KEY is missing, or
 * -EINVAL when the value is not an integer from 0 to MAX.
 */
static int query_uint(const struct request *req, const char *key, uint64_t max,
		      uint64_t *value)
{
	const char *p = req->query, *end = req->query + req->query_len;
	size_t key_len = strlen(key);

	while (p < end) {
		const char *amp = memchr(p, '&', end - p);
		const char *param_end = amp ? amp : end;
		size_t param_len = param_end - p;

		if (param_len >= key_len && !memcmp(p, key, key_len)) {
			if (param_len == key_len)
				return -EINVAL;
			if (p[key_len] == '=')
				return parse_uint(p + key_len + 1, param_end, max, value);
		}
		if (!amp)
			break;
		p = amp + 1;
	}
	return -ENOENT;
}

/* Reads query parameter KEY, or sets a 400 response and returns false. */
static bool get_param(const struct request *req, const char *key, uint64_t max,
		      uint64_t *value, struct response *resp)
{
	int err = query_uint(req, key, max, value);

	if (err == -ENOENT)
		set_response(resp, 400, "missing query parameter %s: use %s=N with N from 0 to %"
			     PRIu64 "\n", key, key, max);
	else if (err)
		set_response(resp, 400, "invalid query parameter %s: expected an integer from 0 to %"
			     PRIu64 "\n", key, max);
	return !err;
}

/* LABEL is the endpoint and its parameter, such as "cpu ms". */
static void set_shutdown_response(struct response *resp, const char *label, uint64_t value)
{
	set_response(resp, 503, "%s=%" PRIu64 ": stopped because the worker is shutting down\n",
		     label, value);
	resp->close = true;
}

static void handle_light(const struct request *req, struct response *resp)
{
	set_response(resp, 200, "ok\n");
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spins until this thread has used MS of CPU time. Returns false if a stop cut it short. */
static bool burn_cpu(uint64_t ms)
{
	uint64_t start = thread_cpu_ns();
	uint64_t now = start, x = start | 1;

	while (now - start < ms * 1000000) {
		/* xorshift64 keeps the ALU busy between clock reads, which are syscalls. */
		for (int i = 0; i < 1000; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
		}
		/* Tells the compiler that x is used, so it keeps the loop. */
		__asm__ __volatile__("" : "+r"(x));
		if (work_must_stop())
			break;
		now = thread_cpu_ns();
	}
	return now - start >= ms * 1000000;
}

static void handle_cpu(const struct request *req, struct response *resp)
{
	uint64_t ms;

	if (!get_param(req, "ms", CPU_MS_MAX, &ms, resp))
		return;
	if (burn_cpu(ms))
		set_response(resp, 200, "cpu ms=%" PRIu64 "\n", ms);
	else
		set_shutdown_response(resp, "cpu ms", ms);
}

/* Opens an unnamed temporary file in $TMPDIR, or /tmp when it is unset. */
static int open_tmpfile(char *err, size_t err_size)
{
	const char *dir = getenv("TMPDIR");
	char path[PATH_MAX];
	int fd;

	if (!dir || !*dir)
		dir = "/tmp";
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	/* EOPNOTSUPP: the file system lacks O_TMPFILE. EISDIR: the kernel lacks it. */
	if (errno != EOPNOTSUPP && errno != EISDIR) {
		snprintf(err, err_size, "open %s: %s", dir, strerror(errno));
		return -1;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/triage-worker-XXXXXX", dir) >= sizeof(path)) {
		snprintf(err, err_size, "TMPDIR is too long");
		return -1;
	}
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, err_size, "mkostemp %s: %s", path, strerror(errno));
		return -1;
	}
	unlink(path);
	return fd;
}

/* Writes or reads LEN bytes at OFFSET, retrying short transfers. */
static int transfer_all(int fd, bool write, char *buf, size_t len, off_t offset)
{
	while (len) {
		ssize_t n = write ? pwrite(fd, buf, len, offset) : pread(fd, buf, len, offset);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA;
		buf += n;
		len -= n;
		offset += n;
	}
	return 0;
}

static int write_file(int fd, uint64_t bytes, char *err, size_t err_size)
{
	for (uint64_t off = 0; off < bytes; off += IO_CHUNK) {
		size_t len = MIN(IO_CHUNK, bytes - off);
		int ret;

		if (work_must_stop())
			return -ECANCELED;
		ret = transfer_all(fd, true, io_pattern, len, off);
		if (ret) {
			snprintf(err, err_size, "write: %s", strerror(-ret));
			return ret;
		}
	}
	/*
	 * NOTE: fsync() and writes throttled by dirty page limits cannot be cut
	 * short, so on a slow disk a stop signal can take longer than STOP_GRACE_MS.
	 */
	if (fsync(fd)) {
		snprintf(err, err_size, "fsync: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

static int verify_file(int fd, uint64_t bytes, char *err, size_t err_size)
{
	for (uint64_t off = 0; off < bytes; off += IO_CHUNK) {
		size_t len = MIN(IO_CHUNK, bytes - off);
		int ret;

		if (work_must_stop())
			return -ECANCELED;
		ret = transfer_all(fd, false, io_readback, len, off);
		if (ret) {
			snprintf(err, err_size, "read: %s", strerror(-ret));
			return ret;
		}
		if (memcmp(io_readback, io_pattern, len)) {
			snprintf(err, err_size, "data read back at offset %" PRIu64
				 " differs from what was written", off);
			return -EIO;
		}
	}
	return 0;
}

/* Writes BYTES to a temporary file, fsyncs it, and reads it back. */
static int run_io(uint64_t bytes, char *err, size_t err_size)
{
	int fd = open_tmpfile(err, err_size);
	int ret;

	if (fd < 0)
		return -EIO;
	ret = write_file(fd, bytes, err, err_size);
	if (!ret)
		ret = verify_file(fd, bytes, err, err_size);
	close(fd);
	return ret;
}

static void handle_io(const struct request *req, struct response *resp)
{
	char err[160];
	uint64_t kb;
	int ret;

	if (!get_param(req, "kb", IO_KB_MAX, &kb, resp))
		return;
	ret = run_io(kb * 1024, err, sizeof(err));
	if (!ret)
		set_response(resp, 200, "io kb=%" PRIu64 "\n", kb);
	else if (ret == -ECANCELED)
		set_shutdown_response(resp, "io kb", kb);
	else
		set_response(resp, 500, "io kb=%" PRIu64 " failed: %s\n", kb, err);
}

/*
 * Maps BYTES of anonymous memory, writes one byte per page, and unmaps it.
 * mmap() rather than malloc() returns the memory to the kernel at once, so
 * the pool's memory.current drops after the request.
 * NOTE: with overcommit, mmap() of more than the cgroup's memory.max still
 * succeeds, and touching the pages gets the worker OOM-killed, not a 503.
 */
static int touch_memory(uint64_t bytes)
{
	long page = sysconf(_SC_PAGESIZE);
	volatile char *mem;
	int ret = 0;

	if (!bytes)
		return 0;
	if (bytes > SIZE_MAX)
		return -ENOMEM;
	mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return -errno;
	for (uint64_t off = 0; off < bytes; off += page) {
		if (off % (1 << 20) == 0 && work_must_stop()) {
			ret = -ECANCELED;
			break;
		}
		mem[off] = 1;
	}
	munmap((void *)mem, bytes);
	return ret;
}

static void handle_mem(const struct request *req, struct response *resp)
{
	uint64_t mb;
	int ret;

	if (!get_param(req, "mb", MEM_MB_MAX, &mb, resp))
		return;
	ret = touch_memory(mb << 20);
	if (!ret)
		set_response(resp, 200, "mem mb=%" PRIu64 "\n", mb);
	else if (ret == -ECANCELED)
		set_shutdown_response(resp, "mem mb", mb);
	else
		set_response(resp, 503, "mem mb=%" PRIu64 ": allocation failed: %s\n", mb,
			     strerror(-ret));
}

/*
 * Returns filler of at least LEN bytes. The buffer is reserved once for
 * MAX_BLOB_KB KiB but filled only as far as the largest response so far,
 * so small bodies cost small memory and a pool's memory limit stays
 * meaningful.
 */
static const char *blob_data(size_t len)
{
	static char *blob;
	static size_t filled;

	if (!blob) {
		blob = mmap(NULL, (size_t)MAX_BLOB_KB * 1024, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (blob == MAP_FAILED) {
			blob = NULL;
			return NULL;
		}
	}
	if (len > filled) {
		memset(blob + filled, 'x', len - filled);
		filled = len;
	}
	return blob;
}

/* Large bodies for throughput tests, sent from one shared buffer. */
static void handle_blob(const struct request *req, struct response *resp)
{
	uint64_t kb;

	if (!get_param(req, "kb", MAX_BLOB_KB, &kb, resp))
		return;
	if (!blob_data(kb * 1024)) {
		set_response(resp, 503, "blob kb=%" PRIu64 ": out of memory\n", kb);
		return;
	}
	resp->status = 200;
	resp->blob_len = kb * 1024;
	resp->body_len = resp->blob_len;
}

struct route {
	const char *path;
	void (*handle)(const struct request *req, struct response *resp);
};

static const struct route routes[] = {
	{ "/light", handle_light },
	{ "/cpu", handle_cpu },
	{ "/io", handle_io },
	{ "/mem", handle_mem },
	{ "/blob", handle_blob },
};

static bool method_is(const struct request *req, const char *name)
{
	return req->method_len == strlen(name) && !memcmp(req->method, name, req->method_len);
}

static void dispatch(const struct request *req, struct response *resp)
{
	const struct route *route = NULL;

	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (req->path_len == strlen(routes[i].path) &&
		    !memcmp(req->path, routes[i].path, req->path_len)) {
			route = &routes[i];
			break;
		}
	}
	if (!route) {
		set_response(resp, 404, "not found\n");
		return;
	}
	if (!method_is(req, "GET") && !method_is(req, "HEAD") && !method_is(req, "POST")) {
		set_response(resp, 405, "method not allowed: use GET, HEAD or POST\n");
		resp->allow = "GET, HEAD, POST";
		return;
	}
	route->handle(req, resp);
}

/* HTTP parsing */

static bool is_tchar(unsigned char ch)
{
	if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
		return true;
	return ch && strchr("!#$%&'*+-.^_`|~", ch);
}

static bool is_token(const char *p, size_t len)
{
	if (!len)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!is_tchar(p[i]))
			return false;
	}
	return true;
}

/*
 * Returns the length of the header block at BUF (request line, header lines
 * and the blank line), or 0 if the blank line is not within LEN bytes. Lines
 * may end in CR LF or in a bare LF.
 */
static size_t find_header_end(const char *buf, size_t len)
{
	const char *p = buf, *end = buf + len;

	while ((p = memchr(p, '\n', end - p)) != NULL) {
		p++;
		if (p < end && *p == '\n')
			return p + 1 - buf;
		if (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
			return p + 2 - buf;
	}
	return 0;
}

/* Returns the length of the line at P without its line ending, and where the next starts. */
static size_t next_line(const char *p, const char *end, const char **next)
{
	const char *lf = memchr(p, '\n', end - p);
	size_t len = lf - p;

	if (len && p[len - 1] == '\r')
		len--;
	*next = lf + 1;
	return len;
}

__attribute__((format(printf, 3, 4)))
static bool reject(struct response *resp, int status, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(resp->body, sizeof(resp->body), fmt, ap);
	va_end(ap);
	resp->status = status;
	resp->body_len = n < 0 ? 0 : MIN((size_t)n, sizeof(resp->body) - 1);
	resp->close = true;
	return false;
}

/* Splits an origin-form or absolute-form target into path and query. */
static bool parse_target(const char *target, size_t len, struct request *req)
{
	const char *end = target + len;
	const char *question, *path;

	if (len > 8 && !strncasecmp(target, "https://", 8))
		target += 8;
	else if (len > 7 && !strncasecmp(target, "http://", 7))
		target += 7;
	else if (target[0] != '/')
		return false;

	question = memchr(target, '?', end - target);
	req->query = question ? question + 1 : end;
	req->query_len = question ? (size_t)(end - question - 1) : 0;
	if (question)
		end = question;
	/* In absolute form the path follows the authority and may be empty. */
	path = memchr(target, '/', end - target);
	req->path = path ? path : "/";
	req->path_len = path ? (size_t)(end - path) : 1;
	return true;
}

static bool parse_request_line(const char *line, size_t len, struct request *req,
			       struct response *resp)
{
	const char *end = line + len;
	const char *sp1 = memchr(line, ' ', len);
	const char *target, *sp2, *version;

	if (!sp1 || !is_token(line, sp1 - line))
		goto invalid;
	target = sp1 + 1;
	sp2 = memchr(target, ' ', end - target);
	if (!sp2 || sp2 == target)
		goto invalid;
	version = sp2 + 1;
	if (end - version != 8 || memcmp(version, "HTTP/", 5) || version[6] != '.' ||
	    version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9')
		goto invalid;
	if (version[5] != '1')
		return reject(resp, 505, "HTTP version %.8s is not supported: use HTTP/1.1\n",
			      version);
	for (const char *p = target; p < sp2; p++) {
		if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
			goto invalid;
	}
	if (!parse_target(target, sp2 - target, req))
		return reject(resp, 400, "invalid request target: expected a path starting with /\n");
	req->method = line;
	req->method_len = sp1 - line;
	/* HTTP/1.2 and later minor versions get HTTP/1.1 behavior. */
	req->http10 = version[7] == '0';
	return true;

invalid:
	return reject(resp, 400, "invalid request line: expected METHOD TARGET HTTP/1.1\n");
}

/* Headers that change how the request is read or the connection is kept. */
struct header_state {
	bool has_length;
	bool has_transfer_encoding;
	bool conn_close;
	bool conn_keep_alive;
};

/* 10^18 bytes, low enough that parse_uint() cannot overflow. */
#define CONTENT_LENGTH_MAX	1000000000000000000ULL

static bool header_is(const char *name, size_t len, const char *expected)
{
	return len == strlen(expected) && !strncasecmp(name, expected, len);
}

static void trim_spaces(const char **start, const char **end)
{
	while (*start < *end && (**start == ' ' || **start == '\t'))
		(*start)++;
	while (*end > *start && ((*end)[-1] == ' ' || (*end)[-1] == '\t'))
		(*end)--;
}

/* Reads the comma-separated options of a Connection header. */
static void parse_connection(const char *p, const char *end, struct header_state *st)
{
	while (p < end) {
		const char *comma = memchr(p, ',', end - p);
		const char *token = p, *token_end = comma ? comma : end;

		trim_spaces(&token, &token_end);
		if (header_is(token, token_end - token, "close"))
			st->conn_close = true;
		else if (header_is(token, token_end - token, "keep-alive"))
			st->conn_keep_alive = true;
		if (!comma)
			break;
		p = comma + 1;
	}
}

static bool parse_content_length(const char *value, const char *end, struct request *req,
				 struct header_state *st, struct response *resp)
{
	uint64_t length;

	if (parse_uint(value, end, CONTENT_LENGTH_MAX, &length))
		return reject(resp, 400, "invalid Content-Length: expected a decimal byte count\n");
	if (st->has_length && length != req->content_length)
		return reject(resp, 400, "conflicting Content-Length headers\n");
	st->has_length = true;
	req->content_length = length;
	return true;
}

static bool parse_header(const char *line, size_t len, struct request *req,
			 struct header_state *st, struct response *resp)
{
	const char *colon = memchr(line, ':', len);
	const char *value, *end = line + len;
	size_t name_len;

	if (line[0] == ' ' || line[0] == '\t')
		return reject(resp, 400, "obsolete header line folding is not supported\n");
	if (!colon || !is_token(line, colon - line))
		return reject(resp, 400, "invalid header line: expected NAME: VALUE\n");
	name_len = colon - line;
	value = colon + 1;
	trim_spaces(&value, &end);
	for (const char *p = value; p < end; p++) {
		unsigned char ch = *p;

		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return reject(resp, 400, "invalid control character in header %.*s\n",
				      (int)MIN(name_len, 64), line);
	}

	if (header_is(line, name_len, "Content-Length"))
		return parse_content_length(value, end, req, st, resp);
	if (header_is(line, name_len, "Transfer-Encoding"))
		st->has_transfer_encoding = true;
	else if (header_is(line, name_len, "Connection"))
		parse_connection(value, end, st);
	else if (header_is(line, name_len, "Expect"))
		req->expect_continue = header_is(value, end - value, "100-continue");
	return true;
}

/* Parses the header block at BUF into REQ, or fills RESP with the error to send. */
static bool parse_request(const char *buf, size_t len, struct request *req,
			  struct response *resp)
{
	const char *end = buf + len, *next;
	struct header_state st = { 0 };
	size_t line_len = next_line(buf, end, &next);

	memset(req, 0, sizeof(*req));
	if (!parse_request_line(buf, line_len, req, resp))
		return false;
	for (;;) {
		const char *line = next;

		line_len = next_line(line, end, &next);
		if (!line_len)
			break;
		if (!parse_header(line, line_len, req, &st, resp))
			return false;
	}
	/* The body length of a chunked request is unknown, so the next request cannot be found. */
	if (st.has_transfer_encoding)
		return reject(resp, 411, "Transfer-Encoding in requests is not supported: send the body with Content-Length\n");
	if (req->http10)
		req->keep_alive = st.conn_keep_alive && !st.conn_close;
	else
		req->keep_alive = !st.conn_close;
	return true;
}

/* Responses */

static const char *status_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 411: return "Length Required";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	}
	return "Unknown";
}

/* Returns the current time as an HTTP date, formatted once per second. */
static const char *http_date(void)
{
	static char date[64];
	static time_t formatted = -1;
	time_t now = time(NULL);
	struct tm tm;

	if (now != formatted && gmtime_r(&now, &tm)) {
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
		formatted = now;
	}
	return date;
}

/* Connections */

static size_t out_pending(const struct conn *c)
{
	return c->out_len - c->out_sent;
}

static size_t in_avail(const struct conn *c)
{
	return c->in_len - c->in_start;
}

/* Returns whether part of a request has arrived and its response is not yet queued. */
static bool mid_request(const struct conn *c)
{
	return c->body_left || c->reply_pending || in_avail(c);
}

static void conn_touch(struct conn *c)
{
	c->deadline_ms = now_ms() + IDLE_TIMEOUT_MS;
}

static void conn_close(struct conn *c)
{
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		worker.conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	worker.nr_conns--;
	free(c->in);
	free(c->out);
	free(c);
}

/* Logs why C is being closed (ERR is an errno value or 0) and closes it. */
static void conn_fail(struct conn *c, const char *reason, int err)
{
	char peer[INET6_ADDRSTRLEN + 16];

	format_addr(&c->peer, c->peer_len, peer, sizeof(peer));
	if (err)
		log_error_limited("closing connection from %s: %s: %s", peer, reason,
				  strerror(err));
	else
		log_error_limited("closing connection from %s: %s", peer, reason);
	conn_close(c);
}

static int out_append(struct conn *c, const char *data, size_t len)
{
	if (c->out_cap - c->out_len < len) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		char *out;

		while (cap - c->out_len < len)
			cap *= 2;
		out = realloc(c->out, cap);
		if (!out)
			return -ENOMEM;
		c->out = out;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
	return 0;
}

/* Appends a response to the output buffer. Returns -1 if C was closed. */
static int queue_response(struct conn *c, const struct response *resp, bool keep_alive,
			  bool head, bool http10)
{
	const char *connection = "";
	char hdr[1024];
	int n;

	if (!keep_alive)
		connection = "Connection: close\r\n";
	else if (http10)
		connection = "Connection: keep-alive\r\n";
	n = snprintf(hdr, sizeof(hdr),
		     "HTTP/1.1 %d %s\r\n"
		     "Content-Type: text/plain\r\n"
		     "Content-Length: %zu\r\n"
		     "Date: %s\r\n"
		     "X-Triage-Pool: %s\r\n"
		     "X-Worker-Pid: %d\r\n"
		     "%s%s%s%s\r\n",
		     resp->status, status_reason(resp->status), resp->body_len, http_date(),
		     worker.pool, (int)worker.pid, resp->allow ? "Allow: " : "",
		     resp->allow ? resp->allow : "", resp->allow ? "\r\n" : "", connection);
	if (out_append(c, hdr, MIN((size_t)n, sizeof(hdr) - 1)) ||
	    (!head && resp->blob_len && out_append(c, blob_data(resp->blob_len), resp->blob_len)) ||
	    (!head && !resp->blob_len && out_append(c, resp->body, resp->body_len))) {
		conn_fail(c, "queueing the response failed", ENOMEM);
		return -1;
	}
	return 0;
}

/* Sends an error response and closes C after it. Returns -1 if C was closed. */
static int conn_reject(struct conn *c, const struct response *resp)
{
	char peer[INET6_ADDRSTRLEN + 16];

	format_addr(&c->peer, c->peer_len, peer, sizeof(peer));
	log_error_limited("closing connection from %s after %d %s: %.*s", peer, resp->status,
			  status_reason(resp->status), (int)strcspn(resp->body, "\n"), resp->body);
	c->close_after = true;
	return queue_response(c, resp, false, false, false);
}

static void skip_blank_lines(struct conn *c)
{
	/*
	 * Some HTTP/1.0 clients send a CRLF after a POST body, and RFC 2616
	 * section 4.1 recommends that servers ignore empty lines before a request line.
	 */
	while (c->in_start < c->in_len &&
	       (c->in[c->in_start] == '\r' || c->in[c->in_start] == '\n'))
		c->in_start++;
}

static void discard_body(struct conn *c)
{
	size_t n = MIN(c->body_left, in_avail(c));

	c->in_start += n;
	c->body_left -= n;
}

/* Returns whether the complete header block of another request is buffered. */
static bool next_request_buffered(const struct conn *c)
{
	const char *p = c->in + c->in_start, *end = c->in + c->in_len;

	while (p < end && (*p == '\r' || *p == '\n'))
		p++;
	return find_header_end(p, MIN((size_t)(end - p), MAX_HEADER_BYTES)) != 0;
}

/*
 * Parses the header block at the start of the input and runs its handler. The
 * response waits in c->reply until the request body has been discarded, so the
 * client never gets a response while it is still sending. Returns -1 if C was closed.
 */
static int conn_start_request(struct conn *c, size_t hdr_len)
{
	struct reply *reply = &c->reply;
	struct request req;

	memset(reply, 0, sizeof(*reply));
	if (!parse_request(c->in + c->in_start, hdr_len, &req, &reply->resp))
		return conn_reject(c, &reply->resp);
	c->in_start += hdr_len;
	c->body_left = req.content_length;
	if (req.expect_continue && !req.http10 && c->body_left > in_avail(c) &&
	    out_append(c, "HTTP/1.1 100 Continue\r\n\r\n", 25)) {
		conn_fail(c, "queueing the response failed", ENOMEM);
		return -1;
	}

	dispatch(&req, &reply->resp);
	worker.requests++;
	reply->head = method_is(&req, "HEAD");
	reply->http10 = req.http10;
	reply->keep_alive = req.keep_alive && !reply->resp.close;
	c->reply_pending = true;
	return 0;
}

/* Queues the reply of a request whose body is fully discarded. */
static int conn_finish_request(struct conn *c)
{
	bool keep_alive = c->reply.keep_alive;

	/* After a stop signal or the client's EOF, only buffered requests get a response. */
	if (keep_alive && (worker.stopping || c->peer_eof))
		keep_alive = next_request_buffered(c);
	if (!keep_alive)
		c->close_after = true;
	c->reply_pending = false;
	return queue_response(c, &c->reply.resp, keep_alive, c->reply.head, c->reply.http10);
}

enum process_result {
	PROCESS_WAIT,		/* needs more input, or the connection is closing */
	PROCESS_BLOCKED,	/* stopped at OUT_HIGH_WATER */
	PROCESS_CLOSED,		/* the connection was closed and freed */
};

/* Handles an input that holds no complete header block. */
static enum process_result conn_incomplete_request(struct conn *c)
{
	struct response resp = { 0 };

	if (in_avail(c) >= MAX_HEADER_BYTES)
		reject(&resp, 431, "request line and headers exceed %d bytes\n", MAX_HEADER_BYTES);
	else if (c->peer_eof)
		reject(&resp, 400, "the connection ended inside the request headers\n");
	else
		return PROCESS_WAIT;
	return conn_reject(c, &resp) ? PROCESS_CLOSED : PROCESS_WAIT;
}

/* Responds to the complete requests in the input buffer, in order. */
static enum process_result conn_process(struct conn *c)
{
	while (!c->close_after) {
		size_t hdr_len;

		if (out_pending(c) >= OUT_HIGH_WATER)
			return PROCESS_BLOCKED;
		discard_body(c);
		if (c->body_left)
			return PROCESS_WAIT;
		if (c->reply_pending) {
			if (conn_finish_request(c))
				return PROCESS_CLOSED;
			continue;
		}
		skip_blank_lines(c);
		if (!in_avail(c))
			return PROCESS_WAIT;
		hdr_len = find_header_end(c->in + c->in_start, MIN(in_avail(c), MAX_HEADER_BYTES));
		if (!hdr_len)
			return conn_incomplete_request(c);
		if (conn_start_request(c, hdr_len))
			return PROCESS_CLOSED;
	}
	return PROCESS_WAIT;
}

/* Sends buffered output until the socket is full. Returns 0 or a negative errno. */
static int conn_flush(struct conn *c)
{
	while (out_pending(c)) {
		ssize_t n = send(c->fd, c->out + c->out_sent, out_pending(c), MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0)
			return -errno;
		c->out_sent += n;
		conn_touch(c);
	}
	c->out_sent = 0;
	c->out_len = 0;
	if (c->out_cap > OUT_BUF_KEEP) {
		free(c->out);
		c->out = NULL;
		c->out_cap = 0;
	}
	return 0;
}

static bool conn_wants_read(const struct conn *c)
{
	if (c->lingering)
		return true;
	if (c->peer_eof || c->close_after || out_pending(c) >= OUT_HIGH_WATER)
		return false;
	if (worker.stopping && !mid_request(c))
		return false;
	return in_avail(c) < IN_BUF_MAX;
}

static void conn_set_events(struct conn *c)
{
	struct epoll_event ev = { .data.ptr = c };

	if (conn_wants_read(c))
		ev.events |= EPOLLIN;
	if (!c->lingering && out_pending(c))
		ev.events |= EPOLLOUT;
	if (ev.events == c->events)
		return;
	if (epoll_ctl(worker.epfd, EPOLL_CTL_MOD, c->fd, &ev)) {
		conn_fail(c, "epoll_ctl failed", errno);
		return;
	}
	c->events = ev.events;
}

/* Returns whether the client has sent, or is likely still sending, input not yet read. */
static bool conn_has_unread_input(const struct conn *c)
{
	int queued = 0;

	if (c->body_left || in_avail(c))
		return true;
	return !ioctl(c->fd, FIONREAD, &queued) && queued > 0;
}

/*
 * Closes C, first shutting down its sending side and reading until the
 * client's EOF when input is left. Closing with unread input would send a
 * reset, and the reset can destroy the response before the client reads it.
 */
static void conn_shutdown(struct conn *c)
{
	if (c->peer_eof || !conn_has_unread_input(c) || shutdown(c->fd, SHUT_WR)) {
		conn_close(c);
		return;
	}
	c->lingering = true;
	c->deadline_ms = now_ms() + LINGER_TIMEOUT_MS;
	conn_set_events(c);
}

static void conn_linger_read(struct conn *c)
{
	char buf[16384];

	for (int i = 0; i < 16; i++) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

		if (n > 0)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		/* EOF, or an error that ends the connection as well. */
		conn_close(c);
		return;
	}
}

static bool conn_should_close(const struct conn *c)
{
	return c->close_after || c->peer_eof || (worker.stopping && !mid_request(c));
}

/* Responds to buffered requests, sends output, then closes C or updates its epoll events. */
static void conn_run(struct conn *c)
{
	enum process_result result;

	do {
		int err;

		result = conn_process(c);
		if (result == PROCESS_CLOSED)
			return;
		err = conn_flush(c);
		if (err) {
			conn_fail(c, "send failed", -err);
			return;
		}
	} while (result == PROCESS_BLOCKED && !out_pending(c));

	if (!out_pending(c) && conn_should_close(c))
		conn_shutdown(c);
	else
		conn_set_events(c);
}

/* Makes room for a read: moves unparsed input to the front and grows the buffer. */
static int conn_reserve_input(struct conn *c)
{
	size_t avail = in_avail(c);
	size_t cap;
	char *in;

	if (c->in_start) {
		memmove(c->in, c->in + c->in_start, avail);
		c->in_start = 0;
		c->in_len = avail;
	}
	if (c->in_len < c->in_cap)
		return 0;
	cap = c->in_cap ? c->in_cap * 2 : IN_BUF_MIN;
	in = realloc(c->in, cap);
	if (!in)
		return -ENOMEM;
	c->in = in;
	c->in_cap = cap;
	return 0;
}

/* Reads what the socket has. Returns -1 if C was closed. */
static int conn_read(struct conn *c)
{
	ssize_t n;

	if (conn_reserve_input(c)) {
		conn_fail(c, "growing the input buffer failed", ENOMEM);
		return -1;
	}
	n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
	if (n > 0) {
		c->in_len += n;
		conn_touch(c);
	} else if (n == 0) {
		c->peer_eof = true;
	} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
		conn_fail(c, "recv failed", errno);
		return -1;
	}
	return 0;
}

static int socket_error(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len))
		return errno;
	return err;
}

static void on_conn_event(struct conn *c, uint32_t events)
{
	if (c->lingering) {
		conn_linger_read(c);
		return;
	}
	if (events & EPOLLERR) {
		conn_fail(c, "socket error", socket_error(c->fd));
		return;
	}
	if ((events & (EPOLLIN | EPOLLHUP)) && conn_wants_read(c)) {
		if (conn_read(c))
			return;
	} else if (events & EPOLLHUP) {
		conn_fail(c, "the client hung up", 0);
		return;
	}
	conn_run(c);
}

/* Closes connections whose idle or linger timeout has passed. */
static void expire_conns(uint64_t now)
{
	struct conn *c, *next;

	for (c = worker.conns; c; c = next) {
		next = c->next;
		if (now < c->deadline_ms)
			continue;
		if (!c->lingering && (out_pending(c) || mid_request(c)))
			conn_fail(c, "no data sent or received within the idle timeout",
				  ETIMEDOUT);
		else
			conn_close(c);
	}
}

static void conn_open(int fd, const struct sockaddr_storage *peer, socklen_t peer_len)
{
	struct conn *c = calloc(1, sizeof(*c));
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
	int one = 1;

	if (!c || epoll_ctl(worker.epfd, EPOLL_CTL_ADD, fd, &ev)) {
		log_error_limited("closing a new connection: %s",
				  strerror(c ? errno : ENOMEM));
		free(c);
		close(fd);
		return;
	}
	/* The 100 Continue and the final response are separate writes, so avoid Nagle delays. */
	if (peer->ss_family == AF_INET || peer->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->kind = HANDLE_CONN;
	c->fd = fd;
	c->events = EPOLLIN;
	memcpy(&c->peer, peer, MIN((size_t)peer_len, sizeof(c->peer)));
	c->peer_len = peer_len;
	c->next = worker.conns;
	if (worker.conns)
		worker.conns->prev = c;
	worker.conns = c;
	worker.nr_conns++;
	conn_touch(c);
}

/* Listeners */

static void listeners_set_polled(bool polled)
{
	for (int i = 0; i < worker.nr_listeners; i++) {
		struct listener *l = &worker.listeners[i];
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = l };

		/* ENOENT on removal: a listener shut down by its supervisor left already. */
		if (epoll_ctl(worker.epfd, polled ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, l->fd, &ev) &&
		    (polled || errno != ENOENT))
			log_msg("epoll_ctl on listening fd %d (%s) failed: %s", l->fd, l->addr,
				strerror(errno));
	}
}

static void listeners_pause(void)
{
	listeners_set_polled(false);
	worker.accept_paused = true;
	worker.accept_resume_ms = now_ms() + ACCEPT_PAUSE_MS;
}

static void listeners_resume(void)
{
	listeners_set_polled(true);
	worker.accept_paused = false;
}

static void listeners_close(void)
{
	/*
	 * Remove each fd from epoll before closing it, because another process
	 * (the socket activator) may hold the same socket, and epoll removes an
	 * fd by itself only when the last reference to the socket is closed.
	 */
	if (!worker.accept_paused)
		listeners_set_polled(false);
	for (int i = 0; i < worker.nr_listeners; i++)
		close(worker.listeners[i].fd);
	worker.nr_listeners = 0;
	worker.accept_paused = false;
}

static bool accept_error_is_transient(int err)
{
	/* accept(2) passes on these network errors of the new connection. */
	switch (err) {
	case EINTR:
	case ECONNABORTED:
	case EPROTO:
	case EPERM:
	case ENETDOWN:
	case ENOPROTOOPT:
	case EHOSTDOWN:
	case ENONET:
	case EHOSTUNREACH:
	case EOPNOTSUPP:
	case ENETUNREACH:
		return true;
	}
	return false;
}

static void accept_conns(struct listener *l)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		int fd = accept4(l->fd, (struct sockaddr *)&peer, &len,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			conn_open(fd, &peer, len);
			continue;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		if (accept_error_is_transient(errno))
			continue;
		/*
		 * EINVAL: the socket no longer listens. Its supervisor shut it down to
		 * take this worker out of service, and a stop signal follows.
		 */
		if (errno == EINVAL) {
			log_msg("listener fd %d (%s) was shut down by its supervisor; no new connections",
				l->fd, l->addr);
			epoll_ctl(worker.epfd, EPOLL_CTL_DEL, l->fd, NULL);
			return;
		}
		/* Errors such as EMFILE would repeat at once, so accepting pauses for a while. */
		log_error_limited("accept on fd %d (%s) failed: %s; retrying in %d ms", l->fd,
				  l->addr, strerror(errno), ACCEPT_PAUSE_MS);
		listeners_pause();
		return;
	}
}

/* Checks that FD is a listening stream socket and adds it to the listeners. */
static int add_listener(int fd, const char *origin)
{
	struct sockaddr_storage addr;
	socklen_t len = sizeof(int), addr_len = sizeof(addr);
	int accepting = 0, type = 0;
	struct listener *l;

	if (worker.nr_listeners == MAX_LISTENERS) {
		log_msg("too many listening sockets: the limit is %d", MAX_LISTENERS);
		return -1;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len)) {
		log_msg("fd %d from %s is not a socket: %s", fd, origin, strerror(errno));
		return -1;
	}
	len = sizeof(int);
	if (!accepting || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) ||
	    type != SOCK_STREAM) {
		log_msg("fd %d from %s is not a listening stream socket", fd, origin);
		return -1;
	}
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)) {
		log_msg("fcntl on fd %d from %s failed: %s", fd, origin, strerror(errno));
		return -1;
	}

	l = &worker.listeners[worker.nr_listeners++];
	l->kind = HANDLE_LISTENER;
	l->fd = fd;
	if (getsockname(fd, (struct sockaddr *)&addr, &addr_len))
		snprintf(l->addr, sizeof(l->addr), "unknown address");
	else
		format_addr(&addr, addr_len, l->addr, sizeof(l->addr));
	return 0;
}

/* Socket activation variables, read the way sd_listen_fds(3) reads them. */
struct activation {
	int nr_fds;			/* 0 when none were passed to this process */
	const char *first_name;		/* name of fd 3 from LISTEN_FDNAMES, or NULL */
	uint64_t other_pid;		/* LISTEN_PID when it names another process */
};

/* Reads LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES, then unsets them. */
static int read_activation(struct activation *act)
{
	const char *pid_text = getenv("LISTEN_PID");
	const char *fds_text = getenv("LISTEN_FDS");
	const char *names = getenv("LISTEN_FDNAMES");
	uint64_t pid, nr_fds;
	int ret = -1;

	memset(act, 0, sizeof(*act));
	if (!pid_text) {
		ret = 0;
		goto out;
	}
	if (parse_uint(pid_text, pid_text + strlen(pid_text), INT_MAX, &pid) || !pid) {
		log_msg("invalid LISTEN_PID=%s: expected a process ID", pid_text);
		goto out;
	}
	if (pid != (uint64_t)getpid()) {
		act->other_pid = pid;
		ret = 0;
		goto out;
	}
	if (!fds_text || parse_uint(fds_text, fds_text + strlen(fds_text), MAX_LISTENERS,
				    &nr_fds)) {
		log_msg("invalid LISTEN_FDS=%s: expected a count from 0 to %d",
			fds_text ? fds_text : "(unset)", MAX_LISTENERS);
		goto out;
	}
	act->nr_fds = nr_fds;
	if (names && names[0] != ':' && names[0])
		act->first_name = strndup(names, strcspn(names, ":"));
	ret = 0;
out:
	/* Child processes must not take these fds as their own. */
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return ret;
}

/* Splits "ADDR:PORT" or "[ADDR]:PORT". */
static int split_host_port(const char *spec, char *host, size_t host_size, const char **port)
{
	const char *colon = strrchr(spec, ':');
	size_t len;

	if (!colon || !colon[1])
		return -1;
	len = colon - spec;
	if (len >= 2 && spec[0] == '[' && spec[len - 1] == ']') {
		spec++;
		len -= 2;
	}
	if (len >= host_size)
		return -1;
	memcpy(host, spec, len);
	host[len] = '\0';
	*port = colon + 1;
	return 0;
}

/*
 * Opens the listening socket of --listen. Returns the fd, -2 for an invalid
 * SPEC, or -1 when a system call failed.
 */
static int open_listen_socket(const char *spec)
{
	struct addrinfo hints = {
		.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV,
		.ai_socktype = SOCK_STREAM,
	};
	char host[INET6_ADDRSTRLEN + 16];
	const char *port, *step = NULL;
	struct addrinfo *ai;
	int fd, err, one = 1;

	if (split_host_port(spec, host, sizeof(host), &port)) {
		log_msg("invalid --listen %s: expected ADDR:PORT, such as 127.0.0.1:8080 or [::1]:8080",
			spec);
		return -2;
	}
	err = getaddrinfo(host[0] && strcmp(host, "*") ? host : NULL, port, &hints, &ai);
	if (err) {
		log_msg("invalid --listen %s: ADDR must be a numeric IPv4 or IPv6 address, and PORT a number (%s)",
			spec, gai_strerror(err));
		return -2;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		step = "socket";
	else if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
		 setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)))
		step = "setsockopt";
	else if (bind(fd, ai->ai_addr, ai->ai_addrlen))
		step = "bind";
	else if (listen(fd, SOMAXCONN))
		step = "listen";
	if (step) {
		log_msg("%s for --listen %s failed: %s", step, spec, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

/* Setup */

static const char usage_text[] =
	"Usage: triage-worker [--listen ADDR:PORT] [--pool NAME]\n"
	"\n"
	"Demo HTTP/1.1 worker for triage pools. It serves the listening sockets\n"
	"passed by socket activation (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES) and\n"
	"the socket of --listen.\n"
	"\n"
	"Options:\n"
	"  -l, --listen ADDR:PORT  also listen on ADDR:PORT with SO_REUSEADDR and\n"
	"                          SO_REUSEPORT; write IPv6 as [ADDR]:PORT\n"
	"  -p, --pool NAME         pool name for the X-Triage-Pool header (default: the\n"
	"                          first name in LISTEN_FDNAMES, else \"" DEFAULT_POOL_NAME "\")\n"
	"  -h, --help              print this help and exit\n"
	"\n"
	"Endpoints, for GET, HEAD and POST (a request body is read and discarded):\n"
	"  /light       responds \"ok\"\n"
	"  /cpu?ms=N    uses N ms of CPU time, N from 0 to 10000\n"
	"  /io?kb=N     writes N KiB to a temporary file in $TMPDIR (default /tmp),\n"
	"               fsyncs it and reads it back, N from 0 to 1048576\n"
	"  /mem?mb=N    allocates N MiB and writes to every page, N from 0 to 4096\n"
	"  /blob?kb=N   returns a body of N KiB, N from 0 to 65536\n"
	"\n"
	"SIGTERM or SIGINT stops accepting, answers the requests already received\n"
	"and exits within 5 s.\n"
	"\n"
	"Exit status: 0 after SIGTERM or SIGINT, 1 when setup fails, 2 on invalid\n"
	"arguments or when no listening socket was given.\n";

static void parse_options(int argc, char **argv, struct options *opts)
{
	static const struct option long_options[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "pool", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "l:p:h", long_options, NULL)) != -1) {
		switch (opt) {
		case 'l':
			opts->listen = optarg;
			break;
		case 'p':
			opts->pool = optarg;
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		default:
			fputs("Try 'triage-worker --help' for more information.\n", stderr);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "triage-worker: unexpected argument '%s'\n", argv[optind]);
		fputs("Try 'triage-worker --help' for more information.\n", stderr);
		exit(2);
	}
}

static bool pool_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (!len || len > POOL_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)name[i] < 0x21 || (unsigned char)name[i] > 0x7e)
			return false;
	}
	return true;
}

static int setup_signals(void)
{
	struct sigaction sa = { .sa_handler = on_stop_signal, .sa_flags = SA_RESTART };
	sigset_t stop_set;

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) || sigaction(SIGINT, &sa, NULL))
		return -errno;
	/* The parent may have blocked them, and blocked signals would never stop the loop. */
	sigemptyset(&stop_set);
	sigaddset(&stop_set, SIGTERM);
	sigaddset(&stop_set, SIGINT);
	sigprocmask(SIG_UNBLOCK, &stop_set, NULL);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int setup_loop(void)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = (void *)&wakeup_handle };

	worker.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (worker.epfd < 0) {
		log_msg("epoll_create1 failed: %s", strerror(errno));
		return -1;
	}
	wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (wake_fd < 0 || epoll_ctl(worker.epfd, EPOLL_CTL_ADD, wake_fd, &ev)) {
		log_msg("eventfd setup failed: %s", strerror(errno));
		return -1;
	}
	if (setup_signals()) {
		log_msg("sigaction failed: %s", strerror(errno));
		return -1;
	}
	listeners_set_polled(true);
	return 0;
}

/* epoll has no FD_SETSIZE limit, so take the hard limit for many connections. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void log_start(void)
{
	char fds[1024];
	size_t len = 0;

	fds[0] = '\0';
	for (int i = 0; i < worker.nr_listeners && len < sizeof(fds); i++) {
		const struct listener *l = &worker.listeners[i];

		len += snprintf(fds + len, sizeof(fds) - len, "%s%d (%s)", i ? ", " : "", l->fd,
				l->addr);
	}
	log_msg("started, listening on fd %s", fds);
}

/* Main loop */

static void on_event(const struct epoll_event *ev)
{
	uint64_t count;

	switch (*(const enum handle_kind *)ev->data.ptr) {
	case HANDLE_LISTENER:
		if (!worker.stopping && !worker.accept_paused)
			accept_conns(ev->data.ptr);
		break;
	case HANDLE_CONN:
		on_conn_event(ev->data.ptr, ev->events);
		break;
	case HANDLE_WAKEUP:
		if (read(wake_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
			log_msg("reading the eventfd failed: %s", strerror(errno));
		break;
	}
}

/*
 * Closes the listeners and lets each connection finish what it has received,
 * including requests still in the socket's receive queue.
 */
static void begin_drain(void)
{
	struct conn *c, *next;

	worker.draining = true;
	listeners_close();
	for (c = worker.conns; c; c = next) {
		next = c->next;
		if (c->lingering)
			continue;
		if (!c->peer_eof && !c->close_after && in_avail(c) < IN_BUF_MAX && conn_read(c))
			continue;
		conn_run(c);
	}
}

static int loop_timeout(uint64_t now, uint64_t next_expire)
{
	uint64_t until = next_expire;

	if (worker.accept_paused)
		until = MIN(until, worker.accept_resume_ms);
	if (worker.draining)
		until = MIN(until, worker.drain_deadline_ms);
	return until > now ? (int)(until - now) : 0;
}

/* Runs until the drain after a stop signal ends. Returns 0, or -1 on failure. */
static int run_loop(void)
{
	struct epoll_event events[MAX_EVENTS];
	uint64_t next_expire = now_ms() + EXPIRE_INTERVAL_MS;

	for (;;) {
		uint64_t now;
		int n;

		if (stop_requested() && !worker.draining)
			begin_drain();
		now = now_ms();
		if (worker.draining && (!worker.nr_conns || now >= worker.drain_deadline_ms))
			return 0;
		if (worker.accept_paused && now >= worker.accept_resume_ms)
			listeners_resume();
		if (now >= next_expire) {
			expire_conns(now);
			next_expire = now + EXPIRE_INTERVAL_MS;
		}
		n = epoll_wait(worker.epfd, events, MAX_EVENTS, loop_timeout(now, next_expire));
		if (n < 0 && errno != EINTR) {
			log_msg("epoll_wait failed: %s", strerror(errno));
			return -1;
		}
		for (int i = 0; i < n; i++)
			on_event(&events[i]);
	}
}

/* Closes the connections still open and logs the stop with the worker's totals. */
static void log_stop(void)
{
	unsigned int unfinished = worker.nr_conns;
	char reason[32] = "a failure";

	while (worker.conns)
		conn_close(worker.conns);
	if (stop_signal)
		snprintf(reason, sizeof(reason), "SIG%s", sigabbrev_np(stop_signal));
	log_msg("stopped after %s; requests served: %" PRIu64 ", connections closed unfinished: %u, error messages suppressed: %u",
		reason, worker.requests, unfinished, suppressed_errors);
}

/* Collects the listening sockets. Returns 0, or the exit status for a failure. */
static int setup_listeners(const struct options *opts)
{
	struct activation act;
	const char *pool;
	int fd;

	if (read_activation(&act))
		return 2;
	if (!act.nr_fds && !opts->listen) {
		if (act.other_pid)
			log_msg("no listening socket: LISTEN_PID=%" PRIu64 " names another process, and --listen is missing",
				act.other_pid);
		else
			log_msg("no listening socket: start through socket activation or pass --listen ADDR:PORT");
		return 2;
	}
	pool = DEFAULT_POOL_NAME;
	if (opts->pool)
		pool = opts->pool;
	else if (act.first_name)
		pool = act.first_name;
	if (!pool_name_valid(pool)) {
		log_msg("invalid pool name '%s': use 1 to %d printable ASCII characters without spaces",
			pool, POOL_NAME_MAX);
		return 2;
	}
	worker.pool = pool;

	for (int i = 0; i < act.nr_fds; i++) {
		if (add_listener(LISTEN_FDS_START + i, "LISTEN_FDS"))
			return 2;
	}
	if (opts->listen) {
		fd = open_listen_socket(opts->listen);
		if (fd < 0)
			return fd == -2 ? 2 : 1;
		if (add_listener(fd, "--listen"))
			return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct options opts = { 0 };
	int ret;

	worker.pid = getpid();
	parse_options(argc, argv, &opts);
	ret = setup_listeners(&opts);
	if (ret)
		return ret;
	if (setup_loop())
		return 1;
	raise_fd_limit();
	for (size_t i = 0; i < sizeof(io_pattern); i++)
		io_pattern[i] = (char)(i * 31 + 7);

	log_start();
	ret = run_loop();
	log_stop();
	return ret ? 1 : 0;
}
