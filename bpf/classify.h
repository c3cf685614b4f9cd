/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * HTTP/1.x request parser and rule matcher for the first payload bytes of
 * a TCP connection. The same code compiles into BPF programs (after
 * vmlinux.h and bpf/bpf_helpers.h) and natively for the unit tests.
 *
 * Before including this file, define the rule lookup:
 *
 *	static const struct triage_rule *triage_rule_at(__u32 index);
 *
 * It returns rule INDEX in evaluation order, or NULL past the last rule.
 *
 * The byte loops and the rule loop run through bpf_loop(), so the verifier
 * checks a callback body a few times instead of once per byte. To keep it
 * to a few, every position comes from the callback index, which the
 * verifier treats as unknown, and triage_opaque_zero() hides the parser
 * state from it. BPF programs should call the global functions at the end
 * of this file, which explains why.
 */
#ifndef TRIAGE_CLASSIFY_H
#define TRIAGE_CLASSIFY_H

#ifdef __bpf__
#ifndef AF_INET
#define AF_INET		2
#endif
#ifndef AF_INET6
#define AF_INET6	10
#endif
#else
#include <linux/types.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#endif

#include "triage.h"

/* Conditions that need a parsed request line. */
#define TRIAGE_MATCH_HTTP_FIELDS	(TRIAGE_MATCH_METHOD | TRIAGE_MATCH_PATH | \
					 TRIAGE_MATCH_HOST | TRIAGE_MATCH_HOST_SUFFIX | \
					 TRIAGE_MATCH_CLEN_ABOVE | TRIAGE_MATCH_CLEN_BELOW)

/* Index masks: each bounds an offset for the verifier within its array. */
#define TRIAGE_PEEK_MASK	(TRIAGE_PEEK_LEN - 1)
#define TRIAGE_PATH_MASK	(TRIAGE_PATH_LEN - 1)
#define TRIAGE_HOST_MASK	(TRIAGE_HOST_LEN - 1)
#define TRIAGE_RAW_MASK		(TRIAGE_RAW_LEN - 1)
#define TRIAGE_ADDR_MASK	15

_Static_assert((TRIAGE_PEEK_LEN & TRIAGE_PEEK_MASK) == 0, "TRIAGE_PEEK_LEN is not a power of 2");
_Static_assert((TRIAGE_PATH_LEN & TRIAGE_PATH_MASK) == 0, "TRIAGE_PATH_LEN is not a power of 2");
_Static_assert((TRIAGE_HOST_LEN & TRIAGE_HOST_MASK) == 0, "TRIAGE_HOST_LEN is not a power of 2");
_Static_assert((TRIAGE_RAW_LEN & TRIAGE_RAW_MASK) == 0, "TRIAGE_RAW_LEN is not a power of 2");

/*
 * Returns I & MASK. Clang drops a mask that an earlier bounds check makes
 * redundant, and the verifier may not connect that check to the register
 * used for the access, so the empty asm hides the range from clang.
 */
static inline __u32 triage_index(__u32 i, __u32 mask)
{
#ifdef __bpf__
	asm volatile("" : "+r"(i));
#endif
	return i & mask;
}

/*
 * Returns 0, computed from a bpf_loop() callback INDEX. bpf_loop() stops
 * below 2^23, but the verifier of Linux 6.18 gives INDEX an unknown 64-bit
 * value, so to it the result has unknown low 32 bits and an unknown sign.
 * Mixed into a value that steers a branch, it keeps the verifier from
 * checking the callback body again for each value that the branch depends
 * on: a parser state, or a Content-Length that grows by a digit each time.
 */
static inline __u64 triage_opaque_zero(__u64 index)
{
	__u64 zero = (index >> 32) | (index & (1ULL << 63));

#ifdef __bpf__
	/* keeps clang from folding ZERO after the index bounds check */
	asm volatile("" : "+r"(zero));
#endif
	return zero;
}

/* Maximum length of a literal that triage_match_literal() compares. */
#define TRIAGE_LITERAL_MAX	16
/* A string literal as the (pointer, length) argument pair. */
#define TRIAGE_LITERAL(s)	(s), (sizeof(s) - 1)

#ifdef __bpf__
#define TRIAGE_UNROLL		_Pragma("unroll")
#else
#define TRIAGE_UNROLL
#ifndef __always_inline
#define __always_inline		inline __attribute__((always_inline))
#endif

/*
 * Native stand-in for the bpf_loop() helper: calls CALLBACK_FN with
 * indices 0 .. NR_LOOPS - 1 until it returns 1, and returns the number of
 * calls made. The helper rejects FLAGS other than 0, this ignores them.
 */
static inline long bpf_loop(__u32 nr_loops, void *callback_fn, void *callback_ctx, __u64 flags)
{
	long (*callback)(__u64 index, void *ctx) = callback_fn;
	__u32 i;

	for (i = 0; i < nr_loops; i++) {
		if (callback(i, callback_ctx))
			return i + 1;
	}
	return nr_loops;
}
#endif /* __bpf__ */

/* The client of the connection, for TRIAGE_MATCH_CLIENT rules. */
struct triage_client {
	__u32 family;		/* AF_INET or AF_INET6 */
	__u8 addr[16];		/* network byte order, IPv4 in the first 4 bytes */
};

/* ---- Byte helpers ---- */

static __always_inline __u8 triage_lower(__u8 c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* RFC 9110 tchar: the bytes of a method or a field name. */
static __always_inline bool triage_is_tchar(__u8 c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return true;
	switch (c) {
	case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
	case '+': case '-': case '.': case '^': case '_': case '`': case '|':
	case '~':
		return true;
	}
	return false;
}

/* Control bytes and space, which end or invalidate a request target. */
static __always_inline bool triage_is_ctl(__u8 c)
{
	return c <= ' ' || c == 0x7f;
}

static __always_inline bool triage_is_ows(__u8 c)
{
	return c == ' ' || c == '\t';
}

enum triage_literal_result {
	TRIAGE_LITERAL_MISMATCH	= -1,
	TRIAGE_LITERAL_SHORT	= 0,	/* the segment ended, all seen bytes matched */
	TRIAGE_LITERAL_MATCH	= 1,
};

/*
 * Compares BUF[POS .. POS + LIT_LEN) with LIT, ignoring ASCII case if
 * NOCASE, without reading at or past LEN. LIT_LEN must be a compile-time
 * constant so that the loop unrolls.
 */
static __always_inline int triage_match_literal(const __u8 *buf, __u32 len, __u32 pos,
						const char *lit, __u32 lit_len, bool nocase)
{
	__u32 k;

	TRIAGE_UNROLL
	for (k = 0; k < lit_len && k < TRIAGE_LITERAL_MAX; k++) {
		__u32 at = pos + k;
		__u8 c;

		if (at >= len)
			return TRIAGE_LITERAL_SHORT;
		c = buf[triage_index(at, TRIAGE_PEEK_MASK)];
		if (nocase)
			c = triage_lower(c);
		if (c != (__u8)lit[k])
			return TRIAGE_LITERAL_MISMATCH;
	}
	return TRIAGE_LITERAL_MATCH;
}

/* ---- Parser ---- */

/*
 * Parser states in input order. triage_parse_finish() relies on the order:
 * the request line comes before TRIAGE_PS_FIELD_START, and the states up
 * to TRIAGE_PS_OTHER_TARGET are inside the request target.
 */
enum triage_parse_state {
	TRIAGE_PS_LEADING,	/* empty lines before the request line */
	TRIAGE_PS_METHOD,
	TRIAGE_PS_TARGET,	/* first byte of the request target */
	TRIAGE_PS_SCHEME,	/* "http://" or "https://" of an absolute-form target */
	TRIAGE_PS_AUTHORITY,	/* host of an absolute-form target */
	TRIAGE_PS_AUTHORITY_V6,	/* inside the brackets of an IPv6 literal */
	TRIAGE_PS_AUTHORITY_PORT,
	TRIAGE_PS_PATH,
	TRIAGE_PS_OTHER_TARGET,	/* authority-form or unknown form, not stored */
	TRIAGE_PS_QUERY,	/* query or fragment, not stored */
	TRIAGE_PS_VERSION,	/* "HTTP/1.x", checked when the target ended */
	TRIAGE_PS_LINE_CR,	/* CR after the version, LF must follow */
	TRIAGE_PS_FIELD_START,	/* first byte of a header line */
	TRIAGE_PS_FIELD_NAME,
	TRIAGE_PS_FIELD_SKIP,	/* rest of a header line that is not used */
	TRIAGE_PS_END_CR,	/* CR of the empty line that ends the headers */
	TRIAGE_PS_HOST_OWS,
	TRIAGE_PS_HOST,
	TRIAGE_PS_HOST_V6,
	TRIAGE_PS_HOST_PORT,
	TRIAGE_PS_HOST_TAIL,	/* whitespace after the host */
	TRIAGE_PS_CLEN_OWS,
	TRIAGE_PS_CLEN,
	TRIAGE_PS_CLEN_TAIL,
	TRIAGE_PS_DONE,		/* the empty line that ends the headers was seen */
	TRIAGE_PS_ERROR,	/* not an HTTP/1.x request line */
};

struct triage_parse_ctx {
	const __u8 *buf;
	struct triage_http_req *req;
	__u32 len;
	__u32 state;		/* enum triage_parse_state */
	__u32 mark;		/* start of the current method, path, name or value */
	__u32 skip_until;	/* first position after the scheme or the version */
	__u64 clen;		/* Content-Length value being read */
	__u32 clen_invalid;	/* an invalid or a second, different Content-Length */
	__u32 ignore_host;	/* TRIAGE_REQ_HOST after an absolute-form target */
};

/* Stores byte N of a host in lower case. Bytes past TRIAGE_HOST_LEN are dropped. */
static __always_inline void triage_store_host(struct triage_http_req *req, __u32 n, __u8 c)
{
	if (n < TRIAGE_HOST_LEN)
		req->host[triage_index(n, TRIAGE_HOST_MASK)] = triage_lower(c);
}

/* Records the length of a host that ended at I, unless it does not fit. */
static __always_inline void triage_end_host(struct triage_parse_ctx *ctx, __u32 i)
{
	__u32 n = i - ctx->mark;

	if (n <= TRIAGE_HOST_LEN)
		ctx->req->host_len = n;
}

/* Returns the TRIAGE_METHOD_* bit of the N-byte token at ctx->mark, or 0. */
static __always_inline __u32 triage_method_bit(const struct triage_parse_ctx *ctx, __u32 n)
{
	const __u8 *buf = ctx->buf;
	__u32 len = ctx->len, at = ctx->mark;

#define TRIAGE_METHOD_IS(name) \
	(n == sizeof(name) - 1 && \
	 triage_match_literal(buf, len, at, TRIAGE_LITERAL(name), false) == TRIAGE_LITERAL_MATCH)

	if (TRIAGE_METHOD_IS("GET"))
		return TRIAGE_METHOD_GET;
	if (TRIAGE_METHOD_IS("HEAD"))
		return TRIAGE_METHOD_HEAD;
	if (TRIAGE_METHOD_IS("POST"))
		return TRIAGE_METHOD_POST;
	if (TRIAGE_METHOD_IS("PUT"))
		return TRIAGE_METHOD_PUT;
	if (TRIAGE_METHOD_IS("DELETE"))
		return TRIAGE_METHOD_DELETE;
	if (TRIAGE_METHOD_IS("OPTIONS"))
		return TRIAGE_METHOD_OPTIONS;
	if (TRIAGE_METHOD_IS("PATCH"))
		return TRIAGE_METHOD_PATCH;
	if (TRIAGE_METHOD_IS("CONNECT"))
		return TRIAGE_METHOD_CONNECT;
	if (TRIAGE_METHOD_IS("TRACE"))
		return TRIAGE_METHOD_TRACE;
	return 0;
#undef TRIAGE_METHOD_IS
}

static __always_inline void triage_step_leading(struct triage_parse_ctx *ctx, __u32 i, __u8 c)
{
	/* RFC 9112 section 2.2: skip empty lines before the request line */
	if (c == '\r' || c == '\n')
		return;
	if (!triage_is_tchar(c)) {
		ctx->state = TRIAGE_PS_ERROR;
		return;
	}
	ctx->mark = i;
	ctx->state = TRIAGE_PS_METHOD;
}

static __always_inline void triage_step_method(struct triage_parse_ctx *ctx, __u32 i, __u8 c)
{
	if (triage_is_tchar(c))
		return;
	if (c != ' ') {
		ctx->state = TRIAGE_PS_ERROR;
		return;
	}
	ctx->req->method = triage_method_bit(ctx, i - ctx->mark);
	ctx->state = TRIAGE_PS_TARGET;
}

/*
 * Handles the space that ends the request target at I: the version
 * "HTTP/1.0" or "HTTP/1.1" must follow, or a prefix of it if the segment
 * ends first.
 */
static __always_inline void triage_end_target(struct triage_parse_ctx *ctx, __u32 i)
{
	const __u8 *buf = ctx->buf;
	__u32 len = ctx->len, minor_at = i + 8;
	int res;

	res = triage_match_literal(buf, len, i + 1, TRIAGE_LITERAL("HTTP/1."), false);
	if (res == TRIAGE_LITERAL_MATCH && minor_at < len) {
		__u8 minor = buf[triage_index(minor_at, TRIAGE_PEEK_MASK)];

		if (minor != '0' && minor != '1')
			res = TRIAGE_LITERAL_MISMATCH;
	}
	if (res == TRIAGE_LITERAL_MISMATCH) {
		ctx->state = TRIAGE_PS_ERROR;
		return;
	}
	ctx->skip_until = minor_at + 1;
	ctx->state = TRIAGE_PS_VERSION;
}

static __always_inline void triage_step_path(struct triage_parse_ctx *ctx, __u32 i, __u8 c)
{
	struct triage_http_req *req = ctx->req;
	__u32 n = i - ctx->mark;

	if (c == ' ') {
		triage_end_target(ctx, i);
		return;
	}
	if (c == '?' || c == '#') {
		ctx->state = TRIAGE_PS_QUERY;
		return;
	}
	if (triage_is_ctl(c)) {
		ctx->state = TRIAGE_PS_ERROR;
		return;
	}
	if (n < TRIAGE_PATH_LEN) {
		req->path[triage_index(n, TRIAGE_PATH_MASK)] = c;
		req->path_len = n + 1;
	}
}

/* Skips a query, a fragment, or a target that is not stored. */
static __always_inline void triage_step_skip_target(struct triage_parse_ctx *ctx, __u32 i,
						    __u8 c)
{
	if (c == ' ')
		triage_end_target(ctx, i);
	else if (triage_is_ctl(c))
		ctx->state = TRIAGE_PS_ERROR;
}

static __always_inline void triage_step_target(struct triage_parse_ctx *ctx, __u32 i, __u8 c)
{
	const __u8 *buf = ctx->buf;
	__u32 len = ctx->len, scheme_len = 0;

	if (c == '/' || c == '*') {
		ctx->mark = i;
		ctx->state = TRIAGE_PS_PATH;
		triage_step_path(ctx, i, c);
		return;
	}
	if (triage_is_ctl(c)) {
		ctx->state = TRIAGE_PS_ERROR;
		return;
	}
	if (triage_match_literal(buf, len, i, TRIAGE_LITERAL("http://"), true) ==
	    TRIAGE_LITERAL_MATCH)
		scheme_len = 7;
	else if (triage_match_literal(buf, len, i, TRIAGE_LITERAL("https://"), true) ==
		 TRIAGE_LITERAL_MATCH)
		scheme_len = 8;
	if (scheme_len) {
		/*
		 * RFC 9112 section 3.2.2: the target's authority replaces any
		 * Host header, even when it is empty or too long to store.
		 */
		ctx->ignore_host = TRIAGE_REQ_HOST;
		ctx->skip_until = i + scheme_len;
		ctx->state = TRIAGE_PS_SCHEME;
		return;
	}
	/* authority-form (CONNECT), or a scheme cut off by the segment end */
	ctx->state = TRIAGE_PS_OTHER_TARGET;
}

/*
 * Handles C at I, the byte that ends the authority of an absolute-form
 * target: '/', '?', '#' or space. The host is final now.
 */
static __always_inline void triage_end_authority(struct triage_parse_ctx *ctx, __u32 i, __u8 c)
{
	struct triage_http_req *req = ctx->req;

	/* an empty host, or one that did not fit, leaves host_len 0 */
	if (req->host_len)
		req->flags |= TRIAGE_REQ_HOST;
	if (c == '/') {
		ctx->mark = i;
		ctx->state = TRIAGE_PS_PATH;
		triage_step_path(ctx, i, c);
		return;
	}
	req->path[0] = '/';
	req->path_len = 1;
	if (c == ' ')
		triage_end_target(ctx, i);
	else
		ctx->state = TRIAGE_PS_QUERY;
}

static __always_inline bool triage_ends_authority(__u8 c)
{
	return c == '/' || c == '?' || c == '#' || c == ' ';
}

static __always_inline void triage_step_authority(struct triage_parse_ctx *ctx, __u32 i, __u8 c)
{
	__u32 n = i - ctx->mark;

	if (triage_ends_authority(c)) {
		triage_end_host(ctx, i);
		triage_end_authority(ctx, i, c);
		return;
	}
	if (c == ':') {
		triage_end_host(ctx, i);
		ctx->state = TRIAGE_PS_AUTHORITY_PORT;
		return;
	}
	/* RFC 9110 section 4.2.4: a recipient treats userinfo as an error */
	if (c == '@' || triage_is_ctl(c)) {
		ctx->state = TRIAGE_PS_ERROR;
		return;
	}
	if (c == '[' && n == 0)
		ctx->state = TRIAGE_PS_AUTHORITY_V6;
	triage_store_host(ctx->req, n, c);
}

static __always_inline void triage_step_authority_v6(struct triage_parse_ctx *ctx, __u32 i,
						     __u8 c)
{
	/* an IPv6 literal without its closing bracket */
	if (triage_ends_authority(c) || triage_is_ctl(c)) {
		ctx->state = TRIAGE_PS_ERROR;
		return;
	}
	if (c == ']')
		ctx->state = TRIAGE_PS_AUTHORITY;
	triage_store_host(ctx->req, i - ctx->mark, c);
}

static __always_inline void triage_step_authority_port(struct triage_parse_ctx *ctx, __u32 i,
						       __u8 c)
{
	if (triage_ends_authority(c))
		triage_end_authority(ctx, i, c);
	else if (c == '@' || triage_is_ctl(c))
		ctx->state = TRIAGE_PS_ERROR;
}

static __always_inline void triage_step_scheme(struct triage_parse_ctx *ctx, __u32 i, __u8 c)
{
	if (i < ctx->skip_until)
		return;
	ctx->mark = i;
	ctx->state = TRIAGE_PS_AUTHORITY;
	triage_step_authority(ctx, i, c);
}

static __always_inline void triage_end_request_line(struct triage_parse_ctx *ctx)
{
	ctx->req->flags |= TRIAGE_REQ_HTTP;
	ctx->state = TRIAGE_PS_FIELD_START;
}

static __always_inline void triage_step_version(struct triage_parse_ctx *ctx, __u32 i, __u8 c)
{
	if (i < ctx->skip_until)
		return;
	if (c == '\r')
		ctx->state = TRIAGE_PS_LINE_CR;
	else if (c == '\n')
		triage_end_request_line(ctx);
	else
		ctx->state = TRIAGE_PS_ERROR;
}

static __always_inline void triage_step_line_cr(struct triage_parse_ctx *ctx, __u8 c)
{
	if (c == '\n')
		triage_end_request_line(ctx);
	else
		ctx->state = TRIAGE_PS_ERROR;
}

static __always_inline void triage_step_request_line(struct triage_parse_ctx *ctx,
						     __u32 state, __u32 i, __u8 c)
{
	switch (state) {
	case TRIAGE_PS_LEADING:
		triage_step_leading(ctx, i, c);
		break;
	case TRIAGE_PS_METHOD:
		triage_step_method(ctx, i, c);
		break;
	case TRIAGE_PS_TARGET:
		triage_step_target(ctx, i, c);
		break;
	case TRIAGE_PS_SCHEME:
		triage_step_scheme(ctx, i, c);
		break;
	case TRIAGE_PS_AUTHORITY:
		triage_step_authority(ctx, i, c);
		break;
	case TRIAGE_PS_AUTHORITY_V6:
		triage_step_authority_v6(ctx, i, c);
		break;
	case TRIAGE_PS_AUTHORITY_PORT:
		triage_step_authority_port(ctx, i, c);
		break;
	case TRIAGE_PS_PATH:
		triage_step_path(ctx, i, c);
		break;
	case TRIAGE_PS_OTHER_TARGET:
	case TRIAGE_PS_QUERY:
		triage_step_skip_target(ctx, i, c);
		break;
	case TRIAGE_PS_VERSION:
		triage_step_version(ctx, i, c);
		break;
	case TRIAGE_PS_LINE_CR:
		triage_step_line_cr(ctx, c);
		break;
	}
}

/* Drops the rest of a header line whose value is invalid or unused. */
static __always_inline void triage_skip_field(struct triage_parse_ctx *ctx, __u8 c)
{
	ctx->state = c == '\n' ? TRIAGE_PS_FIELD_START : TRIAGE_PS_FIELD_SKIP;
}

static __always_inline void triage_step_field_start(struct triage_parse_ctx *ctx, __u32 i,
						    __u8 c)
{
	if (c == '\n') {
		ctx->state = TRIAGE_PS_DONE;
	} else if (c == '\r') {
		ctx->state = TRIAGE_PS_END_CR;
	} else if (triage_is_tchar(c)) {
		ctx->mark = i;
		ctx->state = TRIAGE_PS_FIELD_NAME;
	} else {
		/* obsolete line folding or a malformed line: ignore it */
		ctx->state = TRIAGE_PS_FIELD_SKIP;
	}
}

static __always_inline void triage_step_field_name(struct triage_parse_ctx *ctx, __u64 zero,
						   __u32 i, __u8 c)
{
	const __u8 *buf = ctx->buf;
	__u32 len = ctx->len, at = ctx->mark, n = i - ctx->mark;

	if (triage_is_tchar(c))
		return;
	if (c != ':') {
		/* no colon right after the name, as in "Host :" */
		triage_skip_field(ctx, c);
		return;
	}
	if (n == 4 && triage_match_literal(buf, len, at, TRIAGE_LITERAL("host"), true) ==
		      TRIAGE_LITERAL_MATCH) {
		/*
		 * The first Host header wins, and an absolute-form target
		 * wins over all of them. A server responds with 400 to a
		 * request with two Host headers, so which one counts matters
		 * little.
		 */
		if ((ctx->req->flags | ctx->ignore_host | zero) & TRIAGE_REQ_HOST)
			ctx->state = TRIAGE_PS_FIELD_SKIP;
		else
			ctx->state = TRIAGE_PS_HOST_OWS;
		return;
	}
	if (n == 14 && triage_match_literal(buf, len, at, TRIAGE_LITERAL("content-length"),
					    true) == TRIAGE_LITERAL_MATCH) {
		ctx->state = TRIAGE_PS_CLEN_OWS;
		return;
	}
	ctx->state = TRIAGE_PS_FIELD_SKIP;
}

/* A Host line ended: its host, stored already, counts from now on. */
static __always_inline void triage_commit_host(struct triage_parse_ctx *ctx)
{
	ctx->req->flags |= TRIAGE_REQ_HOST;
	ctx->state = TRIAGE_PS_FIELD_START;
}

static __always_inline void triage_step_host(struct triage_parse_ctx *ctx, __u32 i, __u8 c)
{
	__u32 n = i - ctx->mark;

	if (c == '\n') {
		triage_end_host(ctx, i);
		triage_commit_host(ctx);
	} else if (triage_is_ows(c) || c == '\r') {
		triage_end_host(ctx, i);
		ctx->state = TRIAGE_PS_HOST_TAIL;
	} else if (c == ':') {
		triage_end_host(ctx, i);
		ctx->state = TRIAGE_PS_HOST_PORT;
	} else if (n >= TRIAGE_HOST_LEN) {
		/* too long to store, so it could match a rule by mistake */
		ctx->state = TRIAGE_PS_FIELD_SKIP;
	} else {
		if (c == '[' && n == 0)
			ctx->state = TRIAGE_PS_HOST_V6;
		triage_store_host(ctx->req, n, c);
	}
}

static __always_inline void triage_step_host_ows(struct triage_parse_ctx *ctx, __u32 i, __u8 c)
{
	if (triage_is_ows(c))
		return;
	/* an earlier Host line that did not count may have left bytes */
	__builtin_memset(ctx->req->host, 0, TRIAGE_HOST_LEN);
	ctx->mark = i;
	ctx->state = TRIAGE_PS_HOST;
	triage_step_host(ctx, i, c);
}

static __always_inline void triage_step_host_v6(struct triage_parse_ctx *ctx, __u32 i, __u8 c)
{
	__u32 n = i - ctx->mark;

	if (c == '\n' || c == '\r' || triage_is_ows(c) || n >= TRIAGE_HOST_LEN) {
		/* no closing bracket on the line, or too long */
		triage_skip_field(ctx, c);
		return;
	}
	if (c == ']')
		ctx->state = TRIAGE_PS_HOST;
	triage_store_host(ctx->req, n, c);
}

/* Skips the port after the host, and whitespace after either. */
static __always_inline void triage_step_host_rest(struct triage_parse_ctx *ctx, __u32 state,
						  __u8 c)
{
	if (c == '\n')
		triage_commit_host(ctx);
	else if (state == TRIAGE_PS_HOST_TAIL && !triage_is_ows(c) && c != '\r')
		/* a space inside the value, as in "a b", makes it no host */
		ctx->state = TRIAGE_PS_FIELD_SKIP;
}

static __always_inline void triage_commit_clen(struct triage_parse_ctx *ctx)
{
	struct triage_http_req *req = ctx->req;

	/* RFC 9112 section 6.3: differing values make the length unknown */
	if ((req->flags & TRIAGE_REQ_CLEN) && req->content_length != ctx->clen)
		ctx->clen_invalid = 1;
	req->content_length = ctx->clen;
	req->flags |= TRIAGE_REQ_CLEN;
	ctx->state = TRIAGE_PS_FIELD_START;
}

static __always_inline void triage_invalid_clen(struct triage_parse_ctx *ctx, __u8 c)
{
	ctx->clen_invalid = 1;
	triage_skip_field(ctx, c);
}

static __always_inline void triage_step_clen(struct triage_parse_ctx *ctx, __u64 zero, __u8 c)
{
	/* 2^64 - 1 = 1844674407370955161 * 10 + 5 */
	const __u64 max_tens = 1844674407370955161ULL;
	/* ZERO keeps the verifier from a round per digit while CLEN is small */
	__u64 clen = ctx->clen + zero;
	__u64 digit = c - '0';

	if (c >= '0' && c <= '9') {
		if (clen > max_tens || (clen == max_tens && digit > 5)) {
			triage_invalid_clen(ctx, c);
			return;
		}
		ctx->clen = clen * 10 + digit;
	} else if (c == '\n') {
		triage_commit_clen(ctx);
	} else if (triage_is_ows(c) || c == '\r') {
		ctx->state = TRIAGE_PS_CLEN_TAIL;
	} else {
		triage_invalid_clen(ctx, c);
	}
}

static __always_inline void triage_step_clen_ows(struct triage_parse_ctx *ctx, __u64 zero,
						 __u8 c)
{
	if (triage_is_ows(c))
		return;
	if (c < '0' || c > '9') {
		/* empty, signed or not a number */
		triage_invalid_clen(ctx, c);
		return;
	}
	ctx->clen = 0;
	ctx->state = TRIAGE_PS_CLEN;
	triage_step_clen(ctx, zero, c);
}

static __always_inline void triage_step_clen_tail(struct triage_parse_ctx *ctx, __u8 c)
{
	if (c == '\n')
		triage_commit_clen(ctx);
	else if (!triage_is_ows(c) && c != '\r')
		triage_invalid_clen(ctx, c);
}

static __always_inline void triage_step_field(struct triage_parse_ctx *ctx, __u32 state,
					      __u64 zero, __u32 i, __u8 c)
{
	switch (state) {
	case TRIAGE_PS_FIELD_START:
		triage_step_field_start(ctx, i, c);
		break;
	case TRIAGE_PS_FIELD_NAME:
		triage_step_field_name(ctx, zero, i, c);
		break;
	case TRIAGE_PS_FIELD_SKIP:
		if (c == '\n')
			ctx->state = TRIAGE_PS_FIELD_START;
		break;
	case TRIAGE_PS_END_CR:
		/* a CR that is not part of a CRLF makes a malformed line */
		ctx->state = c == '\n' ? TRIAGE_PS_DONE : TRIAGE_PS_FIELD_SKIP;
		break;
	case TRIAGE_PS_HOST_OWS:
		triage_step_host_ows(ctx, i, c);
		break;
	case TRIAGE_PS_HOST:
		triage_step_host(ctx, i, c);
		break;
	case TRIAGE_PS_HOST_V6:
		triage_step_host_v6(ctx, i, c);
		break;
	case TRIAGE_PS_HOST_PORT:
	case TRIAGE_PS_HOST_TAIL:
		triage_step_host_rest(ctx, state, c);
		break;
	case TRIAGE_PS_CLEN_OWS:
		triage_step_clen_ows(ctx, zero, c);
		break;
	case TRIAGE_PS_CLEN:
		triage_step_clen(ctx, zero, c);
		break;
	case TRIAGE_PS_CLEN_TAIL:
		triage_step_clen_tail(ctx, c);
		break;
	}
}

/* bpf_loop() callback: feeds byte INDEX to the parser, returns 1 to stop. */
static long triage_parse_byte(__u64 index, void *data)
{
	struct triage_parse_ctx *ctx = data;
	__u64 zero = triage_opaque_zero(index);
	__u32 state = ctx->state + zero;
	__u8 c;

	/* bpf_loop() stops at len, but the verifier does not know that */
	if (index >= ctx->len || index >= TRIAGE_PEEK_LEN)
		return 1;
	c = ctx->buf[triage_index(index, TRIAGE_PEEK_MASK)];

	if (state < TRIAGE_PS_FIELD_START)
		triage_step_request_line(ctx, state, index, c);
	else
		triage_step_field(ctx, state, zero, index, c);

	/* TRIAGE_PS_DONE and TRIAGE_PS_ERROR are the last states */
	return ctx->state + zero >= TRIAGE_PS_DONE;
}

/* Sets the flags that depend on where the parse ended and returns 0 or -1. */
static __always_inline int triage_parse_finish(struct triage_parse_ctx *ctx)
{
	struct triage_http_req *req = ctx->req;
	__u32 state = ctx->state;

	if (state == TRIAGE_PS_ERROR)
		goto not_http;
	if (state < TRIAGE_PS_FIELD_START) {
		/*
		 * The segment ended inside the request line. Only a known
		 * method followed by a space makes a cut line count as HTTP.
		 */
		if (state <= TRIAGE_PS_METHOD || !req->method)
			goto not_http;
		req->flags |= TRIAGE_REQ_HTTP | TRIAGE_REQ_TRUNCATED;
		if (state <= TRIAGE_PS_OTHER_TARGET)
			req->flags |= TRIAGE_REQ_PATH_TRUNCATED;
	} else if (state != TRIAGE_PS_DONE) {
		req->flags |= TRIAGE_REQ_TRUNCATED;
	}

	/* a host whose line or authority did not end does not count */
	if (!(req->flags & TRIAGE_REQ_HOST)) {
		__builtin_memset(req->host, 0, TRIAGE_HOST_LEN);
		req->host_len = 0;
	}
	if (ctx->clen_invalid) {
		req->flags &= ~TRIAGE_REQ_CLEN;
		req->content_length = 0;
	}
	return 0;

not_http:
	__builtin_memset(req, 0, sizeof(*req));
	return -1;
}

/*
 * Parses BUF[0 .. LEN), the first payload bytes of a connection, into REQ.
 * BUF must be TRIAGE_PEEK_LEN bytes long (in BPF, a map value); bytes at
 * and past LEN are never read, nor past TRIAGE_PEEK_LEN. Returns 0 and sets
 * TRIAGE_REQ_HTTP if an HTTP/1.0 or HTTP/1.1 request line was recognized.
 * Otherwise returns -1 and leaves REQ zeroed.
 *
 * A segment that ends inside the request line still counts as HTTP if it
 * got past a known method and its space: then REQ has TRIAGE_REQ_TRUNCATED,
 * and TRIAGE_REQ_PATH_TRUNCATED too if it ended inside the target. A Host
 * or Content-Length header counts only if its line ended.
 */
static inline int triage_parse_http(const __u8 *buf, __u32 len, struct triage_http_req *req)
{
	struct triage_parse_ctx ctx = {
		.buf = buf,
		.req = req,
		.len = len,
		.state = TRIAGE_PS_LEADING,
	};

	__builtin_memset(req, 0, sizeof(*req));
	/* the callback stops at TRIAGE_PEEK_LEN: a clamp here would split paths */
	bpf_loop(len, triage_parse_byte, &ctx, 0);
	return triage_parse_finish(&ctx);
}

/* ---- Rule matcher ---- */

struct triage_compare_ctx {
	const __u8 *a;
	const __u8 *b;
	__u32 a_off;
	__u32 b_off;
	__u32 equal;
	__u32 pad;
};

/*
 * Defines a bpf_loop() callback that compares byte INDEX of two arrays.
 * The masks are the array sizes minus one, constants in the code because
 * the verifier loses constants that clang packs into one stack slot.
 */
#define TRIAGE_COMPARE_CALLBACK(name, a_mask, b_mask)				\
static long name(__u64 index, void *data)					\
{										\
	struct triage_compare_ctx *ctx = data;					\
										\
	if (ctx->a[triage_index(ctx->a_off + index, a_mask)] ==				\
	    ctx->b[triage_index(ctx->b_off + index, b_mask)])				\
		return 0;							\
	ctx->equal = 0;								\
	return 1;								\
}

/* Path with path, host with host: both arrays are 64 bytes. */
TRIAGE_COMPARE_CALLBACK(triage_compare_name, TRIAGE_PATH_MASK, TRIAGE_HOST_MASK)
/* Payload with a rule's raw bytes. */
TRIAGE_COMPARE_CALLBACK(triage_compare_raw, TRIAGE_PEEK_MASK, TRIAGE_RAW_MASK)
/* Client address with a rule's address. */
TRIAGE_COMPARE_CALLBACK(triage_compare_addr, TRIAGE_ADDR_MASK, TRIAGE_ADDR_MASK)

_Static_assert(TRIAGE_PATH_LEN == TRIAGE_HOST_LEN, "triage_compare_name() needs one size");

/*
 * Compares N bytes at A + A_OFF and B + B_OFF with CALLBACK, one of the
 * callbacks above. The caller keeps A_OFF + N and B_OFF + N within the
 * array sizes that CALLBACK masks with.
 */
static __always_inline bool triage_bytes_equal(void *callback, const void *a, __u32 a_off,
					       const void *b, __u32 b_off, __u32 n)
{
	struct triage_compare_ctx ctx = {
		.a = a,
		.b = b,
		.a_off = a_off,
		.b_off = b_off,
		.equal = 1,
	};

	bpf_loop(n, callback, &ctx, 0);
	return ctx.equal;
}

/*
 * Matches a path prefix at '/' boundaries. "/api" matches "/api", "/api/"
 * and "/api/x" but not "/apix". "/api/" matches any path that starts with
 * it, and "/" every request target, "*" and authority-form included.
 */
static __always_inline bool triage_path_matches(const struct triage_http_req *req,
					      const struct triage_rule *rule)
{
	__u32 n = rule->path_len, have = req->path_len;

	if (n == 1 && rule->path[0] == '/')
		return true;
	if (n >= TRIAGE_PATH_LEN || n > have || have > TRIAGE_PATH_LEN)
		return false;
	if (!triage_bytes_equal(triage_compare_name, req->path, 0, rule->path, 0, n))
		return false;
	if (n > 0 && rule->path[triage_index(n - 1, TRIAGE_PATH_MASK)] == '/')
		return true;
	if (have > n)
		return req->path[triage_index(n, TRIAGE_PATH_MASK)] == '/';
	/* a cut path may go on past the rule, as in "/apix" */
	return !(req->flags & TRIAGE_REQ_PATH_TRUNCATED);
}

static __always_inline bool triage_host_matches(const struct triage_http_req *req,
					      const struct triage_rule *rule)
{
	__u32 n = rule->host_len;

	if (!(req->flags & TRIAGE_REQ_HOST) || n != req->host_len || n > TRIAGE_HOST_LEN)
		return false;
	return triage_bytes_equal(triage_compare_name, req->host, 0, rule->host, 0, n);
}

/*
 * Matches a host suffix at '.' boundaries. ".example.com" matches
 * "a.example.com" but not "example.com", and "example.com" matches both.
 * Neither matches "badexample.com".
 */
static __always_inline bool triage_host_suffix_matches(const struct triage_http_req *req,
						     const struct triage_rule *rule)
{
	__u32 n = rule->host_len, have = req->host_len, off;

	if (!(req->flags & TRIAGE_REQ_HOST) || n == 0 || n > have || have > TRIAGE_HOST_LEN)
		return false;
	off = have - n;
	if (!triage_bytes_equal(triage_compare_name, req->host, off, rule->host, 0, n))
		return false;
	if (rule->host[0] == '.')
		return off > 0;
	return off == 0 || req->host[triage_index(off - 1, TRIAGE_HOST_MASK)] == '.';
}

static __always_inline bool triage_raw_matches(const struct triage_rule *rule, const __u8 *buf,
					     __u32 len)
{
	__u32 n = rule->raw_len, off = rule->raw_offset;

	if (n > TRIAGE_RAW_LEN || off + n > len || off + n > TRIAGE_PEEK_LEN)
		return false;
	return triage_bytes_equal(triage_compare_raw, buf, off, rule->raw, 0, n);
}

static __always_inline bool triage_client_matches(const struct triage_rule *rule,
						const struct triage_client *client)
{
	__u32 prefixlen = rule->client_prefixlen, bytes, bits, max_bits;
	__u8 keep;

	if (!client || client->family != rule->client_family)
		return false;
	if (client->family == AF_INET)
		max_bits = 32;
	else if (client->family == AF_INET6)
		max_bits = 128;
	else
		return false;
	if (prefixlen > max_bits)
		return false;

	bytes = prefixlen / 8;
	bits = prefixlen % 8;
	if (!triage_bytes_equal(triage_compare_addr, client->addr, 0, rule->client_addr, 0,
				bytes))
		return false;
	if (bits == 0)
		return true;
	keep = (__u8)(0xff << (8 - bits));
	return ((client->addr[triage_index(bytes, TRIAGE_ADDR_MASK)] ^
		 rule->client_addr[triage_index(bytes, TRIAGE_ADDR_MASK)]) & keep) == 0;
}

struct triage_match_ctx {
	const struct triage_http_req *req;
	const __u8 *buf;
	const struct triage_client *client;
	__u32 len;
	__u32 category;
};

/* Returns whether every condition of RULE holds for the request in CTX. */
static __always_inline bool triage_rule_matches(const struct triage_rule *rule,
					      const struct triage_match_ctx *ctx)
{
	const struct triage_http_req *req = ctx->req;
	__u32 match = rule->match;
	__u64 clen = req->flags & TRIAGE_REQ_CLEN ? req->content_length : 0;

	/* protocols this matcher does not parse yet never match */
	if (rule->proto != TRIAGE_PROTO_ANY && rule->proto != TRIAGE_PROTO_HTTP)
		return false;
	if (!(req->flags & TRIAGE_REQ_HTTP) &&
	    (rule->proto == TRIAGE_PROTO_HTTP || (match & TRIAGE_MATCH_HTTP_FIELDS)))
		return false;

	if ((match & TRIAGE_MATCH_METHOD) && !(req->method & rule->methods))
		return false;
	if ((match & TRIAGE_MATCH_PATH) && !triage_path_matches(req, rule))
		return false;
	if ((match & TRIAGE_MATCH_HOST) && !triage_host_matches(req, rule))
		return false;
	if ((match & TRIAGE_MATCH_HOST_SUFFIX) && !triage_host_suffix_matches(req, rule))
		return false;
	if ((match & TRIAGE_MATCH_CLEN_ABOVE) &&
	    !((req->flags & TRIAGE_REQ_CLEN) && clen > rule->clen_above))
		return false;
	/*
	 * NOTE: headers cut by the segment end may hold a Content-Length
	 * later on, but a request without one counts as 0 here.
	 */
	if ((match & TRIAGE_MATCH_CLEN_BELOW) && !(clen < rule->clen_below))
		return false;
	if ((match & TRIAGE_MATCH_RAW) && !triage_raw_matches(rule, ctx->buf, ctx->len))
		return false;
	if ((match & TRIAGE_MATCH_CLIENT) && !triage_client_matches(rule, ctx->client))
		return false;
	return true;
}

/* bpf_loop() callback: tries rule INDEX, returns 1 once a rule matched. */
static long triage_match_rule(__u64 index, void *data)
{
	struct triage_match_ctx *ctx = data;
	const struct triage_rule *rule;

	if (index >= TRIAGE_MAX_RULES)
		return 1;
	rule = triage_rule_at(index);
	if (!rule)
		return 1;
	if (!triage_rule_matches(rule, ctx))
		return 0;
	ctx->category = rule->category;
	return 1;
}

/*
 * Returns the category of the first of rules 0 .. NR_RULES - 1 whose every
 * condition holds, or TRIAGE_NO_CATEGORY. NR_RULES is capped at
 * TRIAGE_MAX_RULES. REQ comes from triage_parse_http() on the same BUF and
 * LEN. Without TRIAGE_REQ_HTTP in REQ only raw and client conditions can
 * hold. CLIENT may be NULL, then client conditions fail.
 */
static inline __u32 triage_match_rules(const struct triage_http_req *req, const __u8 *buf,
				       __u32 len, const struct triage_client *client,
				       __u32 nr_rules)
{
	struct triage_match_ctx ctx = {
		.req = req,
		.buf = buf,
		.client = client,
		.len = len,
		.category = TRIAGE_NO_CATEGORY,
	};

	/* the callback stops at TRIAGE_MAX_RULES: a clamp here would split paths */
	bpf_loop(nr_rules, triage_match_rule, &ctx, 0);
	return ctx.category;
}

#ifdef __bpf__
/* The first payload bytes, as a type that a global function can take. */
struct triage_peek {
	__u8 buf[TRIAGE_PEEK_LEN];
};

/*
 * Entry points for BPF programs: triage_parse_http() and
 * triage_match_rules() behind global functions. The verifier checks a
 * global function once, on its own. It checks the code of a static one
 * again for each distinct caller state, such as IPv4 or IPv6, an empty or
 * a full payload, or a request on the stack. The memory behind a pointer
 * argument also has contents unknown to the verifier, so it does not track
 * the fields stored in REQ. In classify_test.bpf.c (Linux 6.18, clang 14)
 * a program that calls these takes about 120k processed instructions, one
 * that calls the static functions directly over 1M.
 *
 * NOTE: global functions: include this file in one object of a statically
 * linked set only.
 */
__noinline int triage_parse_peek(const struct triage_peek *peek, __u32 len,
				 struct triage_http_req *req)
{
	if (!peek || !req)
		return -1;
	return triage_parse_http(peek->buf, len, req);
}

__noinline __u32 triage_match_peek(const struct triage_http_req *req,
				   const struct triage_peek *peek, __u32 len,
				   const struct triage_client *client, __u32 nr_rules)
{
	if (!req || !peek)
		return TRIAGE_NO_CATEGORY;
	return triage_match_rules(req, peek->buf, len, client, nr_rules);
}
#endif /* __bpf__ */

#endif /* TRIAGE_CLASSIFY_H */
