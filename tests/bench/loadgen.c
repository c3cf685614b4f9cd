// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * triage-loadgen: an open-loop HTTP/1.1 load generator for the triage
 * benchmarks.
 *
 * A closed-loop client sends its next request only after a response, so a
 * slow server also slows the client, and the time that requests would have
 * spent queued never shows up in the latencies (coordinated omission). Here
 * every request has an intended start time from a schedule of Poisson
 * arrivals, computed ahead from a seeded PRNG. Its latency runs from that
 * time to the last byte of the response, however late the request left.
 *
 * One thread runs an epoll loop over non-blocking sockets.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
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
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NSEC_PER_SEC		1000000000ULL
#define NSEC_PER_MSEC		1000000ULL
#define NSEC_PER_USEC		1000ULL

#define MAX_CLASSES		64
#define MAX_PATH_LEN		2048
#define MAX_WEIGHT		1e9
#define MIN_RATE		0.001
#define MAX_RATE		1e7
#define MIN_DURATION		0.001
#define MAX_SECONDS		86400.0
#define MAX_TIMEOUT_MS		3600000
#define MAX_INFLIGHT_LIMIT	1000000
#define MAX_CONNECTIONS		10000

#define DEFAULT_MIX		"/:1"
#define DEFAULT_CONNECTIONS	8
#define DEFAULT_TIMEOUT_MS	10000
#define DEFAULT_MAX_INFLIGHT	10000
#define DEFAULT_SEED		1

/* Every status line, header line and chunk size line must fit in the input buffer. */
#define IN_BUF_SIZE		4096
#define MAX_HEADER_LINES	256
#define POOL_NAME_MAX		255
/* Distinct pools counted per class. Responses from further pools count as "(other)". */
#define MAX_POOLS		16
#define NO_POOL_NAME		"(none)"
#define OTHER_POOL_NAME		"(other)"

/*
 * Samples stored per kind (latencies of all classes together, send lags).
 * 2^24 samples take 64 MiB. Samples past the cap still count in the mean
 * and max, but the percentiles come from the stored ones only.
 */
#define MAX_SAMPLES		(1u << 24)

#define ARRIVAL_BATCH		256	/* arrivals handled between two socket polls */
#define MAX_EVENTS		256
#define TIMER_SLACK_NS		1000	/* the default 50 us would delay the sends */
#define MAX_WAIT_NS		NSEC_PER_SEC

enum outcome {
	OUTCOME_RESPONSE,	/* a complete response, whatever its status */
	OUTCOME_CONNECT,	/* socket() or connect() failed */
	OUTCOME_RESET,		/* the connection failed or closed mid-response */
	OUTCOME_TIMEOUT,	/* no complete response within --timeout-ms */
	OUTCOME_PROTOCOL,	/* the response is not valid HTTP/1.x */
	OUTCOME_DROPPED,	/* not sent because --max-inflight requests were open */
	NR_OUTCOMES,
};

static const char *const outcome_names[NR_OUTCOMES] = {
	[OUTCOME_RESPONSE]	= "response",
	[OUTCOME_CONNECT]	= "connect",
	[OUTCOME_RESET]		= "reset",
	[OUTCOME_TIMEOUT]	= "timeout",
	[OUTCOME_PROTOCOL]	= "protocol",
	[OUTCOME_DROPPED]	= "dropped",
};

enum parse_state {
	PARSE_STATUS_LINE,
	PARSE_HEADERS,
	PARSE_BODY_LENGTH,	/* a body of Content-Length bytes */
	PARSE_CHUNK_SIZE,
	PARSE_CHUNK_DATA,
	PARSE_CHUNK_END,	/* the CRLF after the chunk data */
	PARSE_TRAILERS,
	PARSE_BODY_EOF,		/* a body that ends when the server closes the connection */
	PARSE_DONE,
};

enum parse_result {
	PARSE_MORE,		/* the response needs more input */
	PARSE_COMPLETE,
	PARSE_INVALID,
};

/* Parser state and the parts of a response that the report uses. */
struct response {
	enum parse_state state;
	int status;
	bool http10;
	bool conn_close;	/* the server closes the connection after this response */
	bool conn_keep_alive;	/* "Connection: keep-alive", which matters for HTTP/1.0 */
	bool chunked;
	bool has_length;
	uint64_t length;	/* Content-Length */
	uint64_t remaining;	/* bytes left of the Content-Length body or of the chunk */
	unsigned int header_lines;
	bool has_pool;
	char pool[POOL_NAME_MAX + 1];	/* X-Triage-Pool */
};

struct request {
	uint64_t intended_ns;	/* CLOCK_MONOTONIC */
	uint64_t deadline_ns;
	struct class_info *cls;
	struct conn *conn;	/* NULL while the request waits in its class queue */
	struct request *prev, *next;	/* open requests, oldest first */
	struct request *queue_next;
	bool measured;		/* false during the warmup */
};

enum conn_state {
	CONN_CLOSED,
	CONN_CONNECTING,
	CONN_SENDING,
	CONN_RECEIVING,
	CONN_IDLE,		/* keepalive mode: connected, without a request */
};

struct conn {
	int fd;
	enum conn_state state;
	uint32_t events;	/* registered with epoll, 0 when not registered */
	struct class_info *cls;
	struct request *req;
	size_t out_sent;
	struct response resp;
	struct conn *idle_next;	/* keepalive mode: next in the idle list of the class */
	size_t in_start, in_len;	/* unparsed input is in[in_start..in_len) */
	char in[IN_BUF_SIZE];
};

struct sample_vec {
	uint32_t *values;	/* microseconds */
	size_t len, cap;
};

struct pool_count {
	char name[POOL_NAME_MAX + 1];
	uint64_t count;
};

/* A path of --mix with its request text, results and, in keepalive mode, connections. */
struct class_info {
	char path[MAX_PATH_LEN + 1];
	double weight;
	double weight_end;	/* sum of the weights up to and including this class */
	char *request;
	size_t request_len;

	/* Results of the measured requests only */
	uint64_t scheduled, sent, completed, ok;
	uint64_t errors[NR_OUTCOMES];	/* [OUTCOME_RESPONSE] is unused */
	uint64_t http_errors;		/* completed responses with a status other than 2xx */
	uint64_t statuses[600];
	struct sample_vec latencies;	/* of 2xx responses */
	double latency_sum_us;
	uint32_t latency_max_us;
	struct pool_count pools[MAX_POOLS];
	unsigned int nr_pools;
	uint64_t other_pools;

	struct conn *conns;		/* keepalive mode: --connections of them */
	struct conn *idle;		/* connections without a request, CLOSED or IDLE */
	struct request *queue_head, *queue_tail;	/* arrivals waiting for a connection */
	bool dispatching;
};

struct options {
	const char *target;
	double rate;		/* requests per second */
	double duration;	/* seconds */
	double warmup;		/* seconds */
	const char *mix;
	bool keepalive;
	bool connections_set;
	unsigned int connections;
	unsigned int timeout_ms;
	unsigned int max_inflight;
	uint64_t seed;
	const char *raw_path;
};

static struct {
	struct options opts;
	struct class_info classes[MAX_CLASSES];
	unsigned int nr_classes;
	double total_weight;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	int epfd;
	FILE *raw;

	/* Schedule in CLOCK_MONOTONIC ns: warmup from start_ns, then measurement to end_ns */
	uint64_t start_ns, measure_ns, end_ns;
	uint64_t stop_ns;		/* when a signal ended the schedule early, else 0 */
	uint64_t finish_ns;		/* when the last request ended */
	double next_offset_s;		/* intended time of the next arrival after start_ns */
	uint64_t next_arrival_ns;
	struct class_info *next_class;
	bool schedule_done;
	uint64_t rng[4];

	struct request *requests;	/* --max-inflight of them */
	struct request *free_requests;
	struct request *open_head, *open_tail;
	unsigned int nr_open;
	unsigned int nr_preconnecting;

	uint64_t latencies_stored;
	uint64_t latencies_not_stored;
	struct sample_vec send_lags;
	uint64_t send_lags_stored;
	uint64_t send_lags_not_stored;
	uint32_t send_lag_max_us;
} gen = { .epfd = -1 };

static volatile sig_atomic_t stop_signal;

/* Logging */

__attribute__((format(printf, 1, 2)))
static void log_msg(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	fprintf(stderr, "triage-loadgen: %s\n", line);
}

/*
 * Logs a message the first time that this call site runs. Errors repeat at
 * the request rate, and the report counts all of them.
 */
#define log_once(...)						\
	do {							\
		static bool logged_;				\
								\
		if (!logged_) {					\
			logged_ = true;				\
			log_msg(__VA_ARGS__);			\
		}						\
	} while (0)

#define ONCE_SUFFIX	" (logged once, the report counts every occurrence)"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

static uint32_t ns_to_us(uint64_t ns)
{
	uint64_t us = (ns + NSEC_PER_USEC / 2) / NSEC_PER_USEC;

	return us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* PRNG: xoshiro256**, with its state filled from the seed by splitmix64 */

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void rng_seed(uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		gen.rng[i] = splitmix64(&seed);
}

static uint64_t rotl64(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(void)
{
	uint64_t *s = gen.rng;
	uint64_t result = rotl64(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl64(s[3], 45);
	return result;
}

/* Returns a uniform double in [0, 1) with 53 random bits. */
static double rng_uniform(void)
{
	return (double)(rng_next() >> 11) * 0x1.0p-53;
}

/* Samples an exponential distribution. 1 - u is in (0, 1], so the log is finite. */
static double rng_exponential(double mean)
{
	return -mean * log1p(-rng_uniform());
}

/* Options */

static const char usage_text[] =
	"Usage: triage-loadgen --target HOST:PORT --rate R --duration S [options]\n"
	"\n"
	"Open-loop HTTP/1.1 load generator. Requests start at Poisson arrival times\n"
	"that a seeded PRNG computes ahead, whether or not earlier requests have\n"
	"finished. Each latency runs from the intended start of the request to the\n"
	"last byte of its response. The report is one JSON object on stdout.\n"
	"\n"
	"Options:\n"
	"  --target HOST:PORT     server to load; write IPv6 as [ADDR]:PORT. HOST is\n"
	"                         resolved once, and the first address is used\n"
	"  --rate R               mean arrival rate in requests per second,\n"
	"                         from 0.001 to 10000000\n"
	"  --duration S           seconds of measured load, up to 86400\n"
	"  --mix PATH:WEIGHT,...  paths to request and their relative weights; each\n"
	"                         item splits at its last ':' so that paths may\n"
	"                         contain ':' (default \"" DEFAULT_MIX "\")\n"
	"  --mode MODE            close (default): a new connection per request, sent\n"
	"                         with \"Connection: close\"; keepalive: --connections\n"
	"                         persistent connections per path, and an arrival\n"
	"                         waits in a FIFO queue until one of them is idle\n"
	"  --connections N        connections per path in keepalive mode (default 8)\n"
	"  --timeout-ms T         a request fails T ms after its intended start\n"
	"                         (default 10000)\n"
	"  --max-inflight M       maximum open requests, queued ones included; later\n"
	"                         arrivals count as dropped (default 10000)\n"
	"  --seed N               PRNG seed for arrival times and paths (default 1)\n"
	"  --raw FILE             write one line per measured request, in the order\n"
	"                         they end: INTENDED_US LATENCY_US CLASS STATUS, where\n"
	"                         INTENDED_US counts from the end of the warmup,\n"
	"                         LATENCY_US ends at the response or the failure,\n"
	"                         CLASS is the index in --mix, and STATUS is the HTTP\n"
	"                         status or connect, reset, timeout, protocol or\n"
	"                         dropped\n"
	"  --warmup S             seconds of load at the same rate before the\n"
	"                         measurement, whose results are discarded (default 0)\n"
	"  -h, --help             print this help and exit\n"
	"\n"
	"Report: sent = completed + connect + reset + timeout + protocol errors, and\n"
	"scheduled = sent + dropped. Responses with a status other than 2xx count as\n"
	"completed and as http errors. Latency percentiles cover 2xx responses only\n"
	"and are exact (nearest rank) over up to 16777216 stored samples.\n"
	"achieved_rate is completed responses per measured second. send_lag is how\n"
	"late the generator handled each arrival; a high value means that the\n"
	"generator, not the server, is the bottleneck. pools counts responses by\n"
	"their X-Triage-Pool header.\n"
	"\n"
	"The run ends at most --timeout-ms after warmup + duration. SIGINT or SIGTERM\n"
	"ends the schedule early and reports the requests already sent; a second\n"
	"signal kills the process.\n"
	"\n"
	"Exit status: 0 when the run finished, whatever the responses were; 1 when\n"
	"setup or writing --raw failed; 2 on invalid arguments.\n";

enum {
	OPT_TARGET = 256,
	OPT_RATE,
	OPT_DURATION,
	OPT_MIX,
	OPT_MODE,
	OPT_CONNECTIONS,
	OPT_TIMEOUT_MS,
	OPT_MAX_INFLIGHT,
	OPT_SEED,
	OPT_RAW,
	OPT_WARMUP,
};

static void __attribute__((noreturn)) usage_error(void)
{
	fputs("Try 'triage-loadgen --help' for more information.\n", stderr);
	exit(2);
}

static void __attribute__((noreturn)) invalid_option(const char *name, const char *value,
						     const char *expected)
{
	fprintf(stderr, "triage-loadgen: invalid %s '%s': expected %s\n", name, value, expected);
	usage_error();
}

/* Parses a finite number from MIN to MAX, or exits with status 2. */
static double parse_number(const char *name, const char *value, double min, double max,
			   const char *expected)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(value, &end);
	if (end == value || *end || errno || !isfinite(v) || v < min || v > max)
		invalid_option(name, value, expected);
	return v;
}

/* Parses a decimal integer from MIN to MAX, or exits with status 2. */
static uint64_t parse_integer(const char *name, const char *value, uint64_t min, uint64_t max,
			      const char *expected)
{
	unsigned long long v;
	char *end;

	if (value[0] < '0' || value[0] > '9')
		invalid_option(name, value, expected);
	errno = 0;
	v = strtoull(value, &end, 10);
	if (*end || errno || v < min || v > max)
		invalid_option(name, value, expected);
	return v;
}

static void set_option(struct options *opts, int opt, const char *value)
{
	switch (opt) {
	case OPT_TARGET:
		opts->target = value;
		break;
	case OPT_RATE:
		opts->rate = parse_number("--rate", value, MIN_RATE, MAX_RATE,
					  "requests per second from 0.001 to 10000000");
		break;
	case OPT_DURATION:
		opts->duration = parse_number("--duration", value, MIN_DURATION, MAX_SECONDS,
					      "seconds from 0.001 to 86400");
		break;
	case OPT_WARMUP:
		opts->warmup = parse_number("--warmup", value, 0, MAX_SECONDS,
					    "seconds from 0 to 86400");
		break;
	case OPT_MIX:
		opts->mix = value;
		break;
	case OPT_MODE:
		if (strcmp(value, "close") && strcmp(value, "keepalive"))
			invalid_option("--mode", value, "close or keepalive");
		opts->keepalive = !strcmp(value, "keepalive");
		break;
	case OPT_CONNECTIONS:
		opts->connections = parse_integer("--connections", value, 1, MAX_CONNECTIONS,
						  "an integer from 1 to 10000");
		opts->connections_set = true;
		break;
	case OPT_TIMEOUT_MS:
		opts->timeout_ms = parse_integer("--timeout-ms", value, 1, MAX_TIMEOUT_MS,
						 "milliseconds from 1 to 3600000");
		break;
	case OPT_MAX_INFLIGHT:
		opts->max_inflight = parse_integer("--max-inflight", value, 1, MAX_INFLIGHT_LIMIT,
						   "an integer from 1 to 1000000");
		break;
	case OPT_SEED:
		opts->seed = parse_integer("--seed", value, 0, UINT64_MAX,
					   "an integer from 0 to 18446744073709551615");
		break;
	case OPT_RAW:
		opts->raw_path = value;
		break;
	}
}

static void parse_options(int argc, char **argv, struct options *opts)
{
	static const struct option long_options[] = {
		{ "target", required_argument, NULL, OPT_TARGET },
		{ "rate", required_argument, NULL, OPT_RATE },
		{ "duration", required_argument, NULL, OPT_DURATION },
		{ "mix", required_argument, NULL, OPT_MIX },
		{ "mode", required_argument, NULL, OPT_MODE },
		{ "connections", required_argument, NULL, OPT_CONNECTIONS },
		{ "timeout-ms", required_argument, NULL, OPT_TIMEOUT_MS },
		{ "max-inflight", required_argument, NULL, OPT_MAX_INFLIGHT },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "raw", required_argument, NULL, OPT_RAW },
		{ "warmup", required_argument, NULL, OPT_WARMUP },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	*opts = (struct options) {
		.mix = DEFAULT_MIX,
		.connections = DEFAULT_CONNECTIONS,
		.timeout_ms = DEFAULT_TIMEOUT_MS,
		.max_inflight = DEFAULT_MAX_INFLIGHT,
		.seed = DEFAULT_SEED,
	};
	while ((opt = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
		if (opt == 'h') {
			fputs(usage_text, stdout);
			exit(0);
		}
		if (opt == '?')
			usage_error();
		set_option(opts, opt, optarg);
	}
	if (optind < argc) {
		fprintf(stderr, "triage-loadgen: unexpected argument '%s'\n", argv[optind]);
		usage_error();
	}
	if (!opts->target || !opts->rate || !opts->duration) {
		fprintf(stderr, "triage-loadgen: missing required option %s\n",
			!opts->target ? "--target HOST:PORT" :
			!opts->rate ? "--rate R" : "--duration S");
		usage_error();
	}
	if (opts->connections_set && !opts->keepalive)
		log_msg("note: --connections applies to --mode keepalive only and is ignored");
}

/* Splits "HOST:PORT" or "[ADDR]:PORT" into HOST and PORT. */
static int split_host_port(const char *spec, char *host, size_t host_size, char *port,
			   size_t port_size)
{
	const char *colon = strrchr(spec, ':');
	size_t len;

	if (!colon || !colon[1] || strlen(colon + 1) >= port_size)
		return -1;
	len = colon - spec;
	if (len >= 2 && spec[0] == '[' && spec[len - 1] == ']') {
		spec++;
		len -= 2;
	}
	if (!len || len >= host_size)
		return -1;
	memcpy(host, spec, len);
	host[len] = '\0';
	strcpy(port, colon + 1);
	return 0;
}

/* Resolves --target into gen.addr, or exits with status 2. */
static void resolve_target(const char *target)
{
	struct addrinfo hints = {
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICSERV,
	};
	char host[256], port[16];
	struct addrinfo *ai;
	int err;

	/* The target also becomes the Host header, so it must not break the request. */
	for (const char *p = target; *p; p++) {
		if (*p <= ' ' || *p > '~')
			invalid_option("--target", target,
				       "HOST:PORT without spaces or control characters");
	}
	if (split_host_port(target, host, sizeof(host), port, sizeof(port)))
		invalid_option("--target", target,
			       "HOST:PORT, such as 127.0.0.1:8080 or [::1]:8080");
	err = getaddrinfo(host, port, &hints, &ai);
	if (err) {
		fprintf(stderr, "triage-loadgen: invalid --target '%s': %s\n", target,
			gai_strerror(err));
		usage_error();
	}
	memcpy(&gen.addr, ai->ai_addr, ai->ai_addrlen);
	gen.addr_len = ai->ai_addrlen;
	freeaddrinfo(ai);
}

static void __attribute__((noreturn)) invalid_mix_item(const char *item, size_t len,
						       const char *problem)
{
	fprintf(stderr, "triage-loadgen: invalid --mix item '%.*s': %s\n", (int)len, item,
		problem);
	usage_error();
}

/* Adds one "PATH:WEIGHT" item of --mix as a class. */
static void add_mix_item(const char *item, size_t len)
{
	const char *colon = memrchr(item, ':', len);
	struct class_info *cls = &gen.classes[gen.nr_classes];
	size_t path_len = colon ? (size_t)(colon - item) : 0;
	char weight[64], *end;

	if (!colon || !path_len || colon + 1 == item + len)
		invalid_mix_item(item, len, "expected PATH:WEIGHT, such as /light:95");
	if (gen.nr_classes == MAX_CLASSES)
		invalid_mix_item(item, len, "more than 64 paths");
	if (item[0] != '/')
		invalid_mix_item(item, len, "the path must start with '/'");
	if (path_len > MAX_PATH_LEN)
		invalid_mix_item(item, len, "the path is longer than 2048 bytes");
	for (size_t i = 0; i < path_len; i++) {
		if (item[i] <= ' ' || item[i] > '~')
			invalid_mix_item(item, len,
					 "the path must be printable ASCII without spaces; percent-encode other bytes");
	}
	memcpy(cls->path, item, path_len);
	cls->path[path_len] = '\0';
	for (unsigned int i = 0; i < gen.nr_classes; i++) {
		if (!strcmp(gen.classes[i].path, cls->path))
			invalid_mix_item(item, len, "the path appears twice");
	}

	snprintf(weight, sizeof(weight), "%.*s", (int)(item + len - colon - 1), colon + 1);
	errno = 0;
	cls->weight = strtod(weight, &end);
	if (end == weight || *end || errno || !isfinite(cls->weight) || cls->weight <= 0 ||
	    cls->weight > MAX_WEIGHT)
		invalid_mix_item(item, len,
				 "the weight must be a number greater than 0, at most 1e9");
	gen.total_weight += cls->weight;
	cls->weight_end = gen.total_weight;
	gen.nr_classes++;
}

static void parse_mix(const char *mix)
{
	const char *p = mix;

	for (;;) {
		const char *end = strchrnul(p, ',');

		if (end == p)
			invalid_option("--mix", mix, "PATH:WEIGHT items separated by commas, such as \"/light:95,/cpu?ms=20:5\"");
		add_mix_item(p, end - p);
		if (!*end)
			break;
		p = end + 1;
	}
}

/* Setup */

static int build_requests(void)
{
	const char *connection = gen.opts.keepalive ? "keep-alive" : "close";

	for (unsigned int i = 0; i < gen.nr_classes; i++) {
		struct class_info *cls = &gen.classes[i];
		int n = asprintf(&cls->request,
				 "GET %s HTTP/1.1\r\n"
				 "Host: %s\r\n"
				 "User-Agent: triage-loadgen\r\n"
				 "Accept: */*\r\n"
				 "Connection: %s\r\n"
				 "\r\n",
				 cls->path, gen.opts.target, connection);

		if (n < 0)
			return -1;
		cls->request_len = n;
	}
	return 0;
}

static int alloc_requests(void)
{
	unsigned int n = gen.opts.max_inflight;

	gen.requests = calloc(n, sizeof(*gen.requests));
	if (!gen.requests)
		return -1;
	for (unsigned int i = 0; i < n; i++)
		gen.requests[i].next = i + 1 < n ? &gen.requests[i + 1] : NULL;
	gen.free_requests = gen.requests;
	return 0;
}

/* Takes the hard limit of open files, since each open request may hold a socket. */
static void raise_fd_limit(void)
{
	unsigned int needed = gen.opts.keepalive ?
			      gen.opts.connections * gen.nr_classes : gen.opts.max_inflight;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)needed + 16)
		log_msg("note: the open file limit %llu is below the %u sockets that this run may need; sockets past it fail as connect errors",
			(unsigned long long)rl.rlim_cur, needed);
}

static void on_stop_signal(int sig)
{
	stop_signal = sig;
}

static int setup(void)
{
	/* Without SA_RESTART the signal interrupts epoll_pwait2(). A second signal kills. */
	struct sigaction sa = { .sa_handler = on_stop_signal, .sa_flags = SA_RESETHAND };

	if (build_requests() || alloc_requests()) {
		log_msg("out of memory");
		return -1;
	}
	gen.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (gen.epfd < 0) {
		log_msg("epoll_create1 failed: %s", strerror(errno));
		return -1;
	}
	if (gen.opts.raw_path) {
		gen.raw = fopen(gen.opts.raw_path, "we");
		if (!gen.raw) {
			log_msg("opening --raw %s failed: %s", gen.opts.raw_path, strerror(errno));
			return -1;
		}
		setvbuf(gen.raw, NULL, _IOFBF, 1 << 20);
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	prctl(PR_SET_TIMERSLACK, TIMER_SLACK_NS, 0, 0, 0);
	raise_fd_limit();
	rng_seed(gen.opts.seed);
	return 0;
}

/* Samples and results */

/* Appends VALUE unless STORED reached MAX_SAMPLES or memory ran out. */
static bool samples_append(struct sample_vec *s, uint32_t value, uint64_t *stored)
{
	if (*stored >= MAX_SAMPLES)
		return false;
	if (s->len == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		uint32_t *values;

		/* Grows no further than the samples that may still be stored. */
		if (cap > s->len + (MAX_SAMPLES - *stored))
			cap = s->len + (MAX_SAMPLES - *stored);
		values = realloc(s->values, cap * sizeof(*values));
		if (!values)
			return false;
		s->values = values;
		s->cap = cap;
	}
	s->values[s->len++] = value;
	(*stored)++;
	return true;
}

static void count_pool(struct class_info *cls, const struct response *resp)
{
	const char *name = resp->has_pool ? resp->pool : NO_POOL_NAME;

	for (unsigned int i = 0; i < cls->nr_pools; i++) {
		if (!strcmp(cls->pools[i].name, name)) {
			cls->pools[i].count++;
			return;
		}
	}
	if (cls->nr_pools == MAX_POOLS) {
		cls->other_pools++;
		return;
	}
	snprintf(cls->pools[cls->nr_pools].name, sizeof(cls->pools[0].name), "%s", name);
	cls->pools[cls->nr_pools++].count = 1;
}

static void record_response(struct class_info *cls, const struct response *resp,
			    uint32_t latency_us)
{
	cls->completed++;
	cls->statuses[resp->status]++;
	count_pool(cls, resp);
	if (resp->status / 100 != 2) {
		cls->http_errors++;
		log_once("%s returned HTTP status %d" ONCE_SUFFIX, cls->path, resp->status);
		return;
	}
	cls->ok++;
	cls->latency_sum_us += latency_us;
	if (latency_us > cls->latency_max_us)
		cls->latency_max_us = latency_us;
	if (!samples_append(&cls->latencies, latency_us, &gen.latencies_stored))
		gen.latencies_not_stored++;
}

static void write_raw_line(const struct class_info *cls, uint64_t intended_ns, uint32_t latency_us,
			   enum outcome outcome, const struct response *resp)
{
	uint64_t intended_us = (intended_ns - gen.measure_ns) / NSEC_PER_USEC;
	unsigned int index = cls - gen.classes;

	if (outcome == OUTCOME_RESPONSE)
		fprintf(gen.raw, "%" PRIu64 " %" PRIu32 " %u %d\n", intended_us, latency_us, index,
			resp->status);
	else
		fprintf(gen.raw, "%" PRIu64 " %" PRIu32 " %u %s\n", intended_us, latency_us, index,
			outcome_names[outcome]);
}

/*
 * Records how a measured request ended at NOW. RESP is the response for
 * OUTCOME_RESPONSE and unused otherwise.
 */
static void record_result(struct class_info *cls, uint64_t intended_ns, uint64_t now,
			  enum outcome outcome, const struct response *resp)
{
	uint32_t latency_us = ns_to_us(now > intended_ns ? now - intended_ns : 0);

	if (outcome == OUTCOME_RESPONSE)
		record_response(cls, resp, latency_us);
	else
		cls->errors[outcome]++;
	if (gen.raw)
		write_raw_line(cls, intended_ns, latency_us, outcome, resp);
}

/* Requests */

static struct request *request_alloc(void)
{
	struct request *req = gen.free_requests;

	gen.free_requests = req->next;
	memset(req, 0, sizeof(*req));
	return req;
}

static void open_list_append(struct request *req)
{
	req->prev = gen.open_tail;
	req->next = NULL;
	if (gen.open_tail)
		gen.open_tail->next = req;
	else
		gen.open_head = req;
	gen.open_tail = req;
	gen.nr_open++;
}

static void open_list_remove(struct request *req)
{
	if (req->prev)
		req->prev->next = req->next;
	else
		gen.open_head = req->next;
	if (req->next)
		req->next->prev = req->prev;
	else
		gen.open_tail = req->prev;
	gen.nr_open--;
}

/* Records the result of REQ, which must have no connection, and frees it. */
static void request_end(struct request *req, enum outcome outcome, const struct response *resp)
{
	uint64_t now = now_ns();

	open_list_remove(req);
	if (req->measured)
		record_result(req->cls, req->intended_ns, now, outcome, resp);
	gen.finish_ns = now;
	req->next = gen.free_requests;
	gen.free_requests = req;
}

static void queue_push(struct class_info *cls, struct request *req)
{
	req->queue_next = NULL;
	if (cls->queue_tail)
		cls->queue_tail->queue_next = req;
	else
		cls->queue_head = req;
	cls->queue_tail = req;
}

static struct request *queue_pop(struct class_info *cls)
{
	struct request *req = cls->queue_head;

	cls->queue_head = req->queue_next;
	if (!cls->queue_head)
		cls->queue_tail = NULL;
	return req;
}

/* Connections */

static void conn_watch(struct conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };
	int op = c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;

	if (c->events == events)
		return;
	/* With a valid fd, only a lack of memory or fs.epoll.max_user_watches fails this. */
	if (epoll_ctl(gen.epfd, op, c->fd, &ev)) {
		log_msg("epoll_ctl failed: %s", strerror(errno));
		exit(1);
	}
	c->events = events;
}

/* Closes the socket of C. ABORT sends a RST so that neither side keeps state. */
static void conn_close_fd(struct conn *c, bool abort)
{
	static const struct linger rst = { .l_onoff = 1, .l_linger = 0 };

	if (c->fd >= 0) {
		if (abort)
			setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
		close(c->fd);
	}
	c->fd = -1;
	c->events = 0;
	c->state = CONN_CLOSED;
}

static void class_dispatch(struct class_info *cls);

static void idle_push(struct conn *c)
{
	c->idle_next = c->cls->idle;
	c->cls->idle = c;
}

static struct conn *idle_pop(struct class_info *cls)
{
	struct conn *c = cls->idle;

	cls->idle = c->idle_next;
	return c;
}

/* Hands C, whose request has ended, to the next queued request, or frees it in close mode. */
static void conn_release(struct conn *c)
{
	if (!gen.opts.keepalive) {
		free(c);
		return;
	}
	idle_push(c);
	class_dispatch(c->cls);
}

/* Ends the request on C with OUTCOME and detaches it from C. */
static void conn_end_request(struct conn *c, enum outcome outcome)
{
	struct request *req = c->req;

	c->req = NULL;
	req->conn = NULL;
	request_end(req, outcome, &c->resp);
}

/* Closes C after a failure and ends its request, if it has one, with OUTCOME. */
static void conn_fail(struct conn *c, enum outcome outcome, bool abort)
{
	conn_close_fd(c, abort);
	if (!c->req)
		return;
	conn_end_request(c, outcome);
	conn_release(c);
}

static void conn_complete(struct conn *c)
{
	bool reuse = gen.opts.keepalive && !c->resp.conn_close && c->in_start == c->in_len;

	if (reuse)
		c->state = CONN_IDLE;
	else
		conn_close_fd(c, false);
	conn_end_request(c, OUTCOME_RESPONSE);
	conn_release(c);
}

/* Returns whether ERR from the first send means that the connection never came up. */
static bool is_connect_error(int err)
{
	return err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH ||
	       err == ETIMEDOUT;
}

static void conn_send(struct conn *c)
{
	const struct class_info *cls = c->cls;

	while (c->out_sent < cls->request_len) {
		ssize_t n = send(c->fd, cls->request + c->out_sent, cls->request_len - c->out_sent,
				 MSG_NOSIGNAL);

		if (n >= 0) {
			c->out_sent += n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			conn_watch(c, EPOLLOUT);
			return;
		}
		if (!c->out_sent && is_connect_error(errno)) {
			log_once("connect to %s failed: %s" ONCE_SUFFIX, gen.opts.target,
				 strerror(errno));
			conn_fail(c, OUTCOME_CONNECT, false);
		} else {
			log_once("sending the request for %s failed: %s" ONCE_SUFFIX, cls->path,
				 strerror(errno));
			conn_fail(c, OUTCOME_RESET, false);
		}
		return;
	}
	c->state = CONN_RECEIVING;
	conn_watch(c, EPOLLIN);
}

static void conn_start_send(struct conn *c)
{
	memset(&c->resp, 0, sizeof(c->resp));
	c->in_start = 0;
	c->in_len = 0;
	c->out_sent = 0;
	c->state = CONN_SENDING;
	conn_send(c);
}

/* Opens the socket of C and starts to connect. C may have no request, to connect ahead. */
static void conn_connect(struct conn *c)
{
	int one = 1;

	c->fd = socket(gen.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		log_once("socket failed: %s" ONCE_SUFFIX, strerror(errno));
		conn_fail(c, OUTCOME_CONNECT, false);
		return;
	}
	c->events = 0;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (!connect(c->fd, (struct sockaddr *)&gen.addr, gen.addr_len)) {
		if (c->req) {
			conn_start_send(c);
		} else {
			c->state = CONN_IDLE;
			conn_watch(c, EPOLLIN);
		}
		return;
	}
	if (errno == EINPROGRESS) {
		c->state = CONN_CONNECTING;
		conn_watch(c, EPOLLOUT);
		if (!c->req)
			gen.nr_preconnecting++;
		return;
	}
	log_once("connect to %s failed: %s" ONCE_SUFFIX, gen.opts.target, strerror(errno));
	conn_fail(c, OUTCOME_CONNECT, false);
}

static void conn_on_connected(struct conn *c)
{
	socklen_t len = sizeof(int);
	int err = 0;

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len))
		err = errno;
	if (!c->req)
		gen.nr_preconnecting--;
	if (err) {
		log_once("connect to %s failed: %s" ONCE_SUFFIX, gen.opts.target, strerror(err));
		conn_fail(c, OUTCOME_CONNECT, false);
		return;
	}
	if (c->req) {
		conn_start_send(c);
	} else {
		c->state = CONN_IDLE;
		conn_watch(c, EPOLLIN);
	}
}

/* HTTP/1.x response parser */

static const char *parse_error;	/* why the latest response was invalid */

static enum parse_result invalid_response(const char *why)
{
	parse_error = why;
	return PARSE_INVALID;
}

/* Takes the next line from the input of C, without its CRLF or LF. Returns NULL if incomplete. */
static const char *take_line(struct conn *c, size_t *len)
{
	const char *start = c->in + c->in_start;
	const char *lf = memchr(start, '\n', c->in_len - c->in_start);

	if (!lf)
		return NULL;
	c->in_start = lf + 1 - c->in;
	*len = lf - start;
	if (*len && start[*len - 1] == '\r')
		(*len)--;
	return start;
}

/* Parses "HTTP/1.x NNN reason", where the reason may be empty. */
static enum parse_result parse_status_line(struct response *resp, const char *line, size_t len)
{
	if (len < 12 || memcmp(line, "HTTP/1.", 7) || line[7] < '0' || line[7] > '9' ||
	    line[8] != ' ' || (len > 12 && line[12] != ' '))
		return invalid_response("the status line is not \"HTTP/1.x NNN reason\"");
	for (int i = 9; i < 12; i++) {
		if (line[i] < '0' || line[i] > '9')
			return invalid_response("the status code is not 3 digits");
	}
	resp->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
	if (resp->status < 100 || resp->status > 599)
		return invalid_response("the status code is outside 100 to 599");
	resp->http10 = line[7] == '0';
	resp->state = PARSE_HEADERS;
	return PARSE_MORE;
}

/* Finds the next token of a comma-separated header value in [*p, end), trimmed. */
static bool next_token(const char **p, const char *end, const char **token, size_t *len)
{
	const char *s = *p, *e;

	while (s < end && (*s == ',' || *s == ' ' || *s == '\t'))
		s++;
	if (s == end)
		return false;
	e = memchr(s, ',', end - s);
	if (!e)
		e = end;
	*p = e;
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*token = s;
	*len = e - s;
	return true;
}

static bool token_is(const char *token, size_t len, const char *word)
{
	return len == strlen(word) && !strncasecmp(token, word, len);
}

static void parse_connection(struct response *resp, const char *value, size_t len)
{
	const char *p = value, *token;
	size_t token_len;

	while (next_token(&p, value + len, &token, &token_len)) {
		if (token_is(token, token_len, "close"))
			resp->conn_close = true;
		else if (token_is(token, token_len, "keep-alive"))
			resp->conn_keep_alive = true;
	}
}

/*
 * RFC 9112 (Message Body Length): chunked counts only as the last transfer
 * coding, and with any other last coding the body ends at the close.
 */
static void parse_transfer_encoding(struct response *resp, const char *value, size_t len)
{
	const char *p = value, *token;
	size_t token_len;
	bool chunked = false;

	while (next_token(&p, value + len, &token, &token_len))
		chunked = token_is(token, token_len, "chunked");
	resp->chunked = chunked;
	if (!chunked)
		resp->conn_close = true;
}

static enum parse_result parse_content_length(struct response *resp, const char *value,
					      size_t len)
{
	uint64_t length = 0;

	if (!len)
		return invalid_response("Content-Length is empty");
	for (size_t i = 0; i < len; i++) {
		if (value[i] < '0' || value[i] > '9' || length > (UINT64_MAX - 9) / 10)
			return invalid_response("Content-Length is not a decimal byte count");
		length = length * 10 + (value[i] - '0');
	}
	if (resp->has_length && resp->length != length)
		return invalid_response("the response has conflicting Content-Length headers");
	resp->has_length = true;
	resp->length = length;
	return PARSE_MORE;
}

static enum parse_result parse_header(struct response *resp, const char *line, size_t len)
{
	const char *colon = memchr(line, ':', len);
	const char *value, *end = line + len;
	size_t name_len;

	if (++resp->header_lines > MAX_HEADER_LINES)
		return invalid_response("the response has more than 256 header lines");
	if (!colon || colon == line)
		return invalid_response("a header line has no name or no ':'");
	name_len = colon - line;
	value = colon + 1;
	while (value < end && (*value == ' ' || *value == '\t'))
		value++;
	while (end > value && (end[-1] == ' ' || end[-1] == '\t'))
		end--;

	if (token_is(line, name_len, "Content-Length"))
		return parse_content_length(resp, value, end - value);
	if (token_is(line, name_len, "Transfer-Encoding"))
		parse_transfer_encoding(resp, value, end - value);
	else if (token_is(line, name_len, "Connection"))
		parse_connection(resp, value, end - value);
	else if (token_is(line, name_len, "X-Triage-Pool"))
		resp->has_pool = snprintf(resp->pool, sizeof(resp->pool), "%.*s",
					  (int)(end - value), value) >= 0;
	return PARSE_MORE;
}

/* Decides how the body is delimited once the blank line after the headers arrived. */
static enum parse_result end_headers(struct response *resp)
{
	if (resp->status / 100 == 1) {
		/* The final response follows an interim one such as 100 Continue. */
		if (resp->status == 101)
			return invalid_response(
				"the server switched protocols, which was not requested");
		memset(resp, 0, sizeof(*resp));
		return PARSE_MORE;
	}
	if (resp->http10 && !resp->conn_keep_alive)
		resp->conn_close = true;
	if (resp->status == 204 || resp->status == 304) {
		resp->state = PARSE_DONE;
	} else if (resp->chunked) {
		resp->state = PARSE_CHUNK_SIZE;
	} else if (resp->has_length) {
		resp->remaining = resp->length;
		resp->state = resp->length ? PARSE_BODY_LENGTH : PARSE_DONE;
	} else {
		resp->conn_close = true;
		resp->state = PARSE_BODY_EOF;
	}
	return PARSE_MORE;
}

/* Parses a chunk size line: hex digits, then optional chunk extensions after ';'. */
static enum parse_result parse_chunk_size(struct response *resp, const char *line, size_t len)
{
	uint64_t size = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		char ch = line[i];
		int digit;

		if (ch >= '0' && ch <= '9')
			digit = ch - '0';
		else if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
			digit = (ch | 0x20) - 'a' + 10;
		else
			break;
		if (size > (UINT64_MAX >> 4))
			return invalid_response("a chunk size overflows 64 bits");
		size = size * 16 + digit;
	}
	if (!i || (i < len && line[i] != ';' && line[i] != ' ' && line[i] != '\t'))
		return invalid_response("a chunk size is not a hexadecimal number");
	resp->remaining = size;
	resp->state = size ? PARSE_CHUNK_DATA : PARSE_TRAILERS;
	return PARSE_MORE;
}

static enum parse_result parse_line(struct response *resp, const char *line, size_t len)
{
	switch (resp->state) {
	case PARSE_STATUS_LINE:
		return parse_status_line(resp, line, len);
	case PARSE_HEADERS:
		return len ? parse_header(resp, line, len) : end_headers(resp);
	case PARSE_CHUNK_SIZE:
		return parse_chunk_size(resp, line, len);
	case PARSE_CHUNK_END:
		if (len)
			return invalid_response("chunk data is longer than its size");
		resp->state = PARSE_CHUNK_SIZE;
		return PARSE_MORE;
	case PARSE_TRAILERS:
		if (!len)
			resp->state = PARSE_DONE;
		else if (++resp->header_lines > MAX_HEADER_LINES)
			return invalid_response("the response has more than 256 header lines");
		return PARSE_MORE;
	default:
		return invalid_response("internal error: a body state reached the line parser");
	}
}

/* Discards up to resp->remaining body bytes from the input. Returns whether all arrived. */
static bool skip_body(struct conn *c)
{
	size_t avail = c->in_len - c->in_start;
	size_t n = avail < c->resp.remaining ? avail : (size_t)c->resp.remaining;

	c->in_start += n;
	c->resp.remaining -= n;
	return !c->resp.remaining;
}

/* Parses the input of C as far as it goes. */
static enum parse_result parse_response(struct conn *c)
{
	struct response *resp = &c->resp;
	const char *line;
	size_t len;

	for (;;) {
		switch (resp->state) {
		case PARSE_DONE:
			return PARSE_COMPLETE;
		case PARSE_BODY_EOF:
			c->in_start = c->in_len;
			return PARSE_MORE;
		case PARSE_BODY_LENGTH:
			if (!skip_body(c))
				return PARSE_MORE;
			resp->state = PARSE_DONE;
			break;
		case PARSE_CHUNK_DATA:
			if (!skip_body(c))
				return PARSE_MORE;
			resp->state = PARSE_CHUNK_END;
			break;
		default:
			line = take_line(c, &len);
			if (!line)
				return PARSE_MORE;
			if (parse_line(resp, line, len) == PARSE_INVALID)
				return PARSE_INVALID;
		}
	}
}

/* Makes room at the end of the input buffer. Returns false when a line fills all of it. */
static bool make_input_room(struct conn *c)
{
	if (c->in_start == c->in_len) {
		c->in_start = 0;
		c->in_len = 0;
	}
	if (c->in_len < sizeof(c->in))
		return true;
	if (!c->in_start)
		return false;
	memmove(c->in, c->in + c->in_start, c->in_len - c->in_start);
	c->in_len -= c->in_start;
	c->in_start = 0;
	return true;
}

static void conn_on_eof(struct conn *c)
{
	if (c->resp.state == PARSE_BODY_EOF) {
		conn_complete(c);
		return;
	}
	log_once("the server closed the connection before the response for %s was complete"
		 ONCE_SUFFIX, c->cls->path);
	conn_fail(c, OUTCOME_RESET, false);
}

static void conn_receive(struct conn *c)
{
	for (;;) {
		enum parse_result result;
		ssize_t n;

		if (!make_input_room(c)) {
			log_once("invalid response for %s: a line is longer than %d bytes"
				 ONCE_SUFFIX, c->cls->path, IN_BUF_SIZE);
			conn_fail(c, OUTCOME_PROTOCOL, true);
			return;
		}
		n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
		if (n == 0) {
			conn_on_eof(c);
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			log_once("receiving the response for %s failed: %s" ONCE_SUFFIX,
				 c->cls->path, strerror(errno));
			conn_fail(c, OUTCOME_RESET, false);
			return;
		}
		c->in_len += n;
		result = parse_response(c);
		if (result == PARSE_COMPLETE) {
			conn_complete(c);
			return;
		}
		if (result == PARSE_INVALID) {
			log_once("invalid response for %s: %s" ONCE_SUFFIX, c->cls->path,
				 parse_error);
			conn_fail(c, OUTCOME_PROTOCOL, true);
			return;
		}
	}
}

/* Handles input on an idle keepalive connection, which is EOF or unexpected data. */
static void conn_on_idle_input(struct conn *c)
{
	char buf[256];
	ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0)
		log_once("the server sent data on an idle connection for %s, so it was closed"
			 ONCE_SUFFIX, c->cls->path);
	conn_close_fd(c, n > 0);
}

static void conn_on_event(struct conn *c)
{
	switch (c->state) {
	case CONN_CONNECTING:
		conn_on_connected(c);
		break;
	case CONN_SENDING:
		conn_send(c);
		break;
	case CONN_RECEIVING:
		conn_receive(c);
		break;
	case CONN_IDLE:
		conn_on_idle_input(c);
		break;
	case CONN_CLOSED:
		break;
	}
}

/* Starts REQ on C, an idle keepalive connection or a new close-mode one. */
static void conn_assign(struct conn *c, struct request *req)
{
	c->req = req;
	req->conn = c;
	if (c->state == CONN_IDLE)
		conn_start_send(c);
	else
		conn_connect(c);
}

/* Pairs queued requests of CLS with idle connections, oldest request first. */
static void class_dispatch(struct class_info *cls)
{
	/*
	 * A failed conn_assign() releases the connection and calls this again.
	 * The loop below then goes on with the next request instead.
	 */
	if (cls->dispatching)
		return;
	cls->dispatching = true;
	while (cls->queue_head && cls->idle) {
		struct request *req = queue_pop(cls);

		conn_assign(idle_pop(cls), req);
	}
	cls->dispatching = false;
}

static struct conn *conn_new(struct class_info *cls)
{
	struct conn *c = malloc(sizeof(*c));

	if (!c)
		return NULL;
	c->fd = -1;
	c->state = CONN_CLOSED;
	c->events = 0;
	c->cls = cls;
	c->req = NULL;
	c->idle_next = NULL;
	return c;
}

/* Schedule and main loop */

/* Draws the time and path of the next arrival, or ends the schedule past its end. */
static void schedule_next(void)
{
	double u;
	unsigned int i;

	gen.next_offset_s += rng_exponential(1.0 / gen.opts.rate);
	gen.next_arrival_ns = gen.start_ns + (uint64_t)llround(gen.next_offset_s * NSEC_PER_SEC);
	u = rng_uniform() * gen.total_weight;
	for (i = 0; i + 1 < gen.nr_classes && u >= gen.classes[i].weight_end; i++)
		;
	gen.next_class = &gen.classes[i];
	if (gen.next_arrival_ns >= gen.end_ns)
		gen.schedule_done = true;
}

static void record_send_lag(uint64_t lag_ns)
{
	uint32_t lag_us = ns_to_us(lag_ns);

	if (lag_us > gen.send_lag_max_us)
		gen.send_lag_max_us = lag_us;
	if (!samples_append(&gen.send_lags, lag_us, &gen.send_lags_stored))
		gen.send_lags_not_stored++;
}

static void start_request(struct request *req)
{
	struct conn *c;

	if (gen.opts.keepalive) {
		queue_push(req->cls, req);
		class_dispatch(req->cls);
		return;
	}
	c = conn_new(req->cls);
	if (!c) {
		log_once("out of memory for a connection" ONCE_SUFFIX);
		request_end(req, OUTCOME_CONNECT, NULL);
		return;
	}
	conn_assign(c, req);
}

/* Handles the arrival intended at INTENDED_NS for CLS. */
static void arrive(uint64_t intended_ns, struct class_info *cls)
{
	bool measured = intended_ns >= gen.measure_ns;
	uint64_t now = now_ns();
	struct request *req;

	if (measured) {
		cls->scheduled++;
		record_send_lag(now - intended_ns);
	}
	if (gen.nr_open >= gen.opts.max_inflight) {
		log_once("dropped a request for %s because %u requests were open (--max-inflight)"
			 ONCE_SUFFIX, cls->path, gen.nr_open);
		if (measured)
			record_result(cls, intended_ns, now, OUTCOME_DROPPED, NULL);
		return;
	}
	if (measured)
		cls->sent++;
	req = request_alloc();
	req->intended_ns = intended_ns;
	req->deadline_ns = intended_ns + gen.opts.timeout_ms * NSEC_PER_MSEC;
	req->cls = cls;
	req->measured = measured;
	open_list_append(req);
	start_request(req);
}

static void run_arrivals(void)
{
	for (int i = 0; i < ARRIVAL_BATCH && !gen.schedule_done; i++) {
		uint64_t intended_ns = gen.next_arrival_ns;
		struct class_info *cls = gen.next_class;

		if (intended_ns > now_ns())
			return;
		schedule_next();
		arrive(intended_ns, cls);
	}
}

/* Fails the open requests whose deadline passed. The oldest is first in the open list. */
static void expire_requests(uint64_t now)
{
	while (gen.open_head && gen.open_head->deadline_ns <= now) {
		struct request *req = gen.open_head;

		log_once("a request for %s timed out after %u ms" ONCE_SUFFIX, req->cls->path,
			 gen.opts.timeout_ms);
		if (req->conn) {
			conn_fail(req->conn, OUTCOME_TIMEOUT, true);
			continue;
		}
		/* Queued requests of a class are in arrival order, so REQ heads its queue. */
		queue_pop(req->cls);
		request_end(req, OUTCOME_TIMEOUT, NULL);
	}
}

static int wait_events(struct epoll_event *events, uint64_t timeout_ns)
{
	struct timespec ts = {
		.tv_sec = timeout_ns / NSEC_PER_SEC,
		.tv_nsec = timeout_ns % NSEC_PER_SEC,
	};
	int n = epoll_pwait2(gen.epfd, events, MAX_EVENTS, &ts, NULL);

	if (n < 0 && errno == ENOSYS) {
		/* NOTE: without epoll_pwait2() the timeout rounds up to ms, adding send lag. */
		n = epoll_wait(gen.epfd, events, MAX_EVENTS,
			       (int)((timeout_ns + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC));
	}
	if (n < 0 && errno != EINTR) {
		log_msg("epoll_pwait2 failed: %s", strerror(errno));
		exit(1);
	}
	return n < 0 ? 0 : n;
}

static uint64_t next_timeout_ns(uint64_t now)
{
	uint64_t until = now + MAX_WAIT_NS;

	if (!gen.schedule_done && gen.next_arrival_ns < until)
		until = gen.next_arrival_ns;
	if (gen.open_head && gen.open_head->deadline_ns < until)
		until = gen.open_head->deadline_ns;
	return until > now ? until - now : 0;
}

static void poll_sockets(uint64_t timeout_ns)
{
	struct epoll_event events[MAX_EVENTS];
	int n = wait_events(events, timeout_ns);

	for (int i = 0; i < n; i++)
		conn_on_event(events[i].data.ptr);
}

static void stop_schedule(uint64_t now)
{
	gen.schedule_done = true;
	gen.stop_ns = now;
	log_msg("stopping on SIG%s: no new requests, waiting up to %u ms for %u open ones",
		sigabbrev_np(stop_signal), gen.opts.timeout_ms, gen.nr_open);
}

static void run_load(void)
{
	for (;;) {
		uint64_t now;

		if (stop_signal && !gen.schedule_done)
			stop_schedule(now_ns());
		run_arrivals();
		now = now_ns();
		expire_requests(now);
		if (gen.schedule_done && !gen.nr_open)
			return;
		poll_sockets(next_timeout_ns(now));
	}
}

/*
 * Opens the keepalive connections before the schedule starts, so that the
 * first requests do not pay for the handshake. Connections that fail here
 * connect again when a request needs them.
 */
static int preconnect(void)
{
	uint64_t deadline;
	unsigned int n = gen.opts.connections;

	for (unsigned int i = 0; i < gen.nr_classes; i++) {
		struct class_info *cls = &gen.classes[i];

		cls->conns = calloc(n, sizeof(*cls->conns));
		if (!cls->conns) {
			log_msg("out of memory for %u connections per path", n);
			return -1;
		}
		for (unsigned int j = n; j-- > 0;) {
			struct conn *c = &cls->conns[j];

			c->fd = -1;
			c->cls = cls;
			idle_push(c);
			conn_connect(c);
		}
	}
	deadline = now_ns() + gen.opts.timeout_ms * NSEC_PER_MSEC;
	while (gen.nr_preconnecting && !stop_signal) {
		uint64_t now = now_ns();

		if (now >= deadline)
			break;
		poll_sockets(deadline - now);
	}
	gen.nr_preconnecting = 0;
	for (unsigned int i = 0; i < gen.nr_classes; i++) {
		for (unsigned int j = 0; j < n; j++) {
			if (gen.classes[i].conns[j].state == CONN_CONNECTING)
				conn_close_fd(&gen.classes[i].conns[j], true);
		}
	}
	return 0;
}

static void close_conns(void)
{
	if (!gen.opts.keepalive)
		return;
	for (unsigned int i = 0; i < gen.nr_classes; i++) {
		for (unsigned int j = 0; j < gen.opts.connections; j++)
			conn_close_fd(&gen.classes[i].conns[j], false);
	}
}

static void start_schedule(void)
{
	/* A short lead lets the first arrival be on time. */
	gen.start_ns = now_ns() + NSEC_PER_MSEC;
	gen.measure_ns = gen.start_ns + (uint64_t)llround(gen.opts.warmup * NSEC_PER_SEC);
	gen.end_ns = gen.measure_ns + (uint64_t)llround(gen.opts.duration * NSEC_PER_SEC);
	gen.finish_ns = gen.start_ns;
	schedule_next();
}

/* Report */

static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = *s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch > 0x7e)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

/* Latencies of one class or of all, with SORTED holding the stored samples. */
struct summary {
	uint64_t count;
	double sum_us;
	uint32_t max_us;
	const uint32_t *sorted;
	size_t stored;
};

static int compare_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* qsort() must not get NULL, which an empty sample_vec has. */
static void sort_samples(uint32_t *values, size_t len)
{
	if (len > 1)
		qsort(values, len, sizeof(*values), compare_u32);
}

/* Prints the nearest-rank percentile PERMILLE / 1000 in ms, or null without samples. */
static void print_percentile(const uint32_t *sorted, size_t len, unsigned int permille)
{
	size_t rank = (len * permille + 999) / 1000;

	if (!len) {
		printf("null");
		return;
	}
	printf("%.3f", sorted[(rank ? rank : 1) - 1] / 1000.0);
}

static void print_percentile_field(const char *key, const struct summary *s,
				   unsigned int permille)
{
	printf("\"%s\": ", key);
	print_percentile(s->sorted, s->stored, permille);
	printf(", ");
}

static void print_summary(const struct summary *s)
{
	printf("\"count\": %" PRIu64 ", ", s->count);
	print_percentile_field("p50_ms", s, 500);
	print_percentile_field("p90_ms", s, 900);
	print_percentile_field("p99_ms", s, 990);
	print_percentile_field("p999_ms", s, 999);
	if (s->count)
		printf("\"max_ms\": %.3f, \"mean_ms\": %.3f", s->max_us / 1000.0,
		       s->sum_us / s->count / 1000.0);
	else
		printf("\"max_ms\": null, \"mean_ms\": null");
}

static void print_errors(const uint64_t *errors, uint64_t http_errors)
{
	printf("{\"connect\": %" PRIu64 ", \"reset\": %" PRIu64 ", \"timeout\": %" PRIu64
	       ", \"http\": %" PRIu64 ", \"protocol\": %" PRIu64 ", \"dropped\": %" PRIu64 "}",
	       errors[OUTCOME_CONNECT], errors[OUTCOME_RESET], errors[OUTCOME_TIMEOUT],
	       http_errors, errors[OUTCOME_PROTOCOL], errors[OUTCOME_DROPPED]);
}

static void print_statuses(const struct class_info *cls)
{
	const char *sep = "";

	printf("\"statuses\": {");
	for (int status = 100; status < 600; status++) {
		if (cls->statuses[status]) {
			printf("%s\"%d\": %" PRIu64, sep, status, cls->statuses[status]);
			sep = ", ";
		}
	}
	printf("}");
}

static void print_pools(const struct class_info *cls)
{
	const char *sep = "";

	printf("\"pools\": {");
	for (unsigned int i = 0; i < cls->nr_pools; i++) {
		printf("%s", sep);
		json_string(cls->pools[i].name);
		printf(": %" PRIu64, cls->pools[i].count);
		sep = ", ";
	}
	if (cls->other_pools)
		printf("%s\"" OTHER_POOL_NAME "\": %" PRIu64, sep, cls->other_pools);
	printf("}");
}

static void print_class(const struct class_info *cls)
{
	struct summary s = {
		.count = cls->ok,
		.sum_us = cls->latency_sum_us,
		.max_us = cls->latency_max_us,
		.sorted = cls->latencies.values,
		.stored = cls->latencies.len,
	};

	printf("    {\"path\": ");
	json_string(cls->path);
	printf(", \"weight\": %g, \"scheduled\": %" PRIu64 ", \"sent\": %" PRIu64
	       ", \"completed\": %" PRIu64 ", \"errors\": ", cls->weight, cls->scheduled,
	       cls->sent, cls->completed);
	print_errors(cls->errors, cls->http_errors);
	printf(", ");
	print_statuses(cls);
	printf(", ");
	print_summary(&s);
	printf(", ");
	print_pools(cls);
	printf("}");
}

/* Sorts every class's samples and merges them into ALL, whose values the caller frees. */
static void summarize_all(struct summary *all)
{
	uint32_t *merged = malloc((gen.latencies_stored ? gen.latencies_stored : 1) *
				  sizeof(*merged));
	size_t len = 0;

	memset(all, 0, sizeof(*all));
	for (unsigned int i = 0; i < gen.nr_classes; i++) {
		struct class_info *cls = &gen.classes[i];

		sort_samples(cls->latencies.values, cls->latencies.len);
		all->count += cls->ok;
		all->sum_us += cls->latency_sum_us;
		if (cls->latency_max_us > all->max_us)
			all->max_us = cls->latency_max_us;
		if (merged && cls->latencies.len) {
			memcpy(merged + len, cls->latencies.values,
			       cls->latencies.len * sizeof(*merged));
			len += cls->latencies.len;
		}
	}
	if (!merged)
		log_msg("out of memory for merging the latencies, so the percentiles of all are null");
	sort_samples(merged, len);
	all->sorted = merged;
	all->stored = len;
}

static void sum_classes(uint64_t *totals, uint64_t *errors, uint64_t *http_errors)
{
	memset(errors, 0, NR_OUTCOMES * sizeof(*errors));
	totals[0] = totals[1] = totals[2] = 0;
	*http_errors = 0;
	for (unsigned int i = 0; i < gen.nr_classes; i++) {
		const struct class_info *cls = &gen.classes[i];

		totals[0] += cls->scheduled;
		totals[1] += cls->sent;
		totals[2] += cls->completed;
		*http_errors += cls->http_errors;
		for (int k = 0; k < NR_OUTCOMES; k++)
			errors[k] += cls->errors[k];
	}
}

/* Seconds of measured schedule, shorter when a signal stopped it. */
static double measured_seconds(void)
{
	uint64_t end = gen.stop_ns && gen.stop_ns < gen.end_ns ? gen.stop_ns : gen.end_ns;

	return end > gen.measure_ns ? (double)(end - gen.measure_ns) / NSEC_PER_SEC : 0;
}

static void print_send_lag(void)
{
	const struct sample_vec *lags = &gen.send_lags;

	sort_samples(lags->values, lags->len);
	printf("  \"send_lag_p50_ms\": ");
	print_percentile(lags->values, lags->len, 500);
	printf(",\n  \"send_lag_p99_ms\": ");
	print_percentile(lags->values, lags->len, 990);
	printf(",\n  \"send_lag_max_ms\": %.3f,\n", gen.send_lag_max_us / 1000.0);
}

static void print_report(void)
{
	uint64_t totals[3], errors[NR_OUTCOMES], http_errors;
	double seconds = measured_seconds();
	struct summary all;

	summarize_all(&all);
	sum_classes(totals, errors, &http_errors);
	printf("{\n  \"target\": ");
	json_string(gen.opts.target);
	printf(",\n  \"rate\": %g,\n  \"duration\": %g,\n  \"warmup\": %g,\n", gen.opts.rate,
	       gen.opts.duration, gen.opts.warmup);
	printf("  \"mode\": \"%s\",\n", gen.opts.keepalive ? "keepalive" : "close");
	if (gen.opts.keepalive)
		printf("  \"connections\": %u,\n", gen.opts.connections);
	printf("  \"seed\": %" PRIu64 ",\n  \"timeout_ms\": %u,\n  \"max_inflight\": %u,\n",
	       gen.opts.seed, gen.opts.timeout_ms, gen.opts.max_inflight);
	printf("  \"interrupted\": %s,\n", gen.stop_ns ? "true" : "false");
	printf("  \"measured_s\": %.3f,\n  \"wall_s\": %.3f,\n", seconds,
	       (double)(gen.finish_ns - gen.start_ns) / NSEC_PER_SEC);
	printf("  \"scheduled\": %" PRIu64 ",\n  \"sent\": %" PRIu64 ",\n  \"completed\": %"
	       PRIu64 ",\n  \"errors\": ", totals[0], totals[1], totals[2]);
	print_errors(errors, http_errors);
	printf(",\n  \"achieved_rate\": %.3f,\n", seconds > 0 ? totals[2] / seconds : 0);
	printf("  \"classes\": [\n");
	for (unsigned int i = 0; i < gen.nr_classes; i++) {
		print_class(&gen.classes[i]);
		printf(i + 1 < gen.nr_classes ? ",\n" : "\n");
	}
	printf("  ],\n  \"all\": {");
	print_summary(&all);
	printf("},\n");
	print_send_lag();
	printf("  \"samples_capped\": %s,\n", gen.latencies_not_stored ? "true" : "false");
	printf("  \"latency_samples_not_stored\": %" PRIu64 ",\n", gen.latencies_not_stored);
	printf("  \"send_lag_samples_not_stored\": %" PRIu64 "\n}\n", gen.send_lags_not_stored);
	free((void *)all.sorted);
}

static int close_raw(void)
{
	if (!gen.raw)
		return 0;
	if (ferror(gen.raw) | fclose(gen.raw)) {
		log_msg("writing --raw %s failed: %s", gen.opts.raw_path, strerror(errno));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int ret = 0;

	parse_options(argc, argv, &gen.opts);
	resolve_target(gen.opts.target);
	parse_mix(gen.opts.mix);
	if (setup())
		return 1;
	if (gen.opts.keepalive && preconnect())
		return 1;
	start_schedule();
	run_load();
	close_conns();
	print_report();
	if (close_raw())
		ret = 1;
	if (fflush(stdout)) {
		log_msg("writing the report failed: %s", strerror(errno));
		ret = 1;
	}
	return ret;
}
