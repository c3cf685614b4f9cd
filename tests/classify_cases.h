/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Request and rule cases shared by the native test of bpf/classify.h and
 * the test that runs the same code as BPF. Include classify.h first.
 */
#ifndef TRIAGE_CLASSIFY_CASES_H
#define TRIAGE_CLASSIFY_CASES_H

#include <stddef.h>
#include <string.h>

#include <criterion/criterion.h>

#include "triage.h"

/* A string literal as .data and .len, so that NUL bytes count too. */
#define BYTES(s)	.data = (const __u8 *)(s), .len = sizeof(s) - 1

#define F_HTTP		TRIAGE_REQ_HTTP
#define F_HOST		TRIAGE_REQ_HOST
#define F_CLEN		TRIAGE_REQ_CLEN
#define F_CUT		TRIAGE_REQ_TRUNCATED
#define F_PATH_CUT	TRIAGE_REQ_PATH_TRUNCATED

struct parse_case {
	const char *desc;
	const __u8 *data;
	size_t len;
	int ret;			/* triage_parse_http() */
	__u32 method;
	const char *path;		/* NULL: no path stored */
	const char *host;		/* NULL: no host stored */
	__u64 content_length;
	__u32 flags;
};

#define LONG_PATH	"/aaaaaaaaaabbbbbbbbbbccccccccccddddddddddeeeeeeeeeeffffffffffgggggggggg"
#define PATH_63		"/aaaaaaaaaabbbbbbbbbbccccccccccddddddddddeeeeeeeeeeffffffffffgg"
#define HOST_64		"h2345678901234567890123456789012345678901234567890123456.example"
#define HOST_65		"hh2345678901234567890123456789012345678901234567890123456.example"

/* 0x16 0x03 0x01: a TLS handshake record, then the ClientHello header */
#define TLS_CLIENT_HELLO \
	"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\x5e\x2f\x11\x00\x7a\x43" \
	"\x00\x00\x20\xc0\x2b\xc0\x2f\x00\x9e\xcc\xa9\xcc\xa8\x00\x00\x00\x0e"

static const struct parse_case parse_cases[] = {
	{ "simple GET with Host",
	  BYTES("GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n"),
	  0, TRIAGE_METHOD_GET, "/index.html", "example.com", 0, F_HTTP | F_HOST },
	{ "leading CRLFs",
	  BYTES("\r\n\r\nGET / HTTP/1.1\r\nHost: a.example\r\n\r\n"),
	  0, TRIAGE_METHOD_GET, "/", "a.example", 0, F_HTTP | F_HOST },
	{ "leading bare LFs and LF line ends",
	  BYTES("\n\nPOST /x HTTP/1.0\n\n"),
	  0, TRIAGE_METHOD_POST, "/x", NULL, 0, F_HTTP },
	{ "lower-case gET is no known method",
	  BYTES("gET / HTTP/1.1\r\n\r\n"),
	  0, 0, "/", NULL, 0, F_HTTP },
	{ "unknown method token",
	  BYTES("BREW /pot HTTP/1.1\r\n\r\n"),
	  0, 0, "/pot", NULL, 0, F_HTTP },
	{ "method with a known prefix",
	  BYTES("GETX / HTTP/1.1\r\n\r\n"),
	  0, 0, "/", NULL, 0, F_HTTP },
	{ "HEAD", BYTES("HEAD /h HTTP/1.1\r\n\r\n"),
	  0, TRIAGE_METHOD_HEAD, "/h", NULL, 0, F_HTTP },
	{ "PUT", BYTES("PUT /p HTTP/1.1\r\n\r\n"),
	  0, TRIAGE_METHOD_PUT, "/p", NULL, 0, F_HTTP },
	{ "DELETE", BYTES("DELETE /d HTTP/1.1\r\n\r\n"),
	  0, TRIAGE_METHOD_DELETE, "/d", NULL, 0, F_HTTP },
	{ "PATCH", BYTES("PATCH /p HTTP/1.1\r\n\r\n"),
	  0, TRIAGE_METHOD_PATCH, "/p", NULL, 0, F_HTTP },
	{ "TRACE", BYTES("TRACE /t HTTP/1.1\r\n\r\n"),
	  0, TRIAGE_METHOD_TRACE, "/t", NULL, 0, F_HTTP },
	{ "OPTIONS with asterisk-form",
	  BYTES("OPTIONS * HTTP/1.1\r\nHost: example.com\r\n\r\n"),
	  0, TRIAGE_METHOD_OPTIONS, "*", "example.com", 0, F_HTTP | F_HOST },
	{ "CONNECT with authority-form",
	  BYTES("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
	  0, TRIAGE_METHOD_CONNECT, NULL, "example.com", 0, F_HTTP | F_HOST },
	{ "absolute-form",
	  BYTES("GET http://Example.COM/a/b?q=1 HTTP/1.1\r\n\r\n"),
	  0, TRIAGE_METHOD_GET, "/a/b", "example.com", 0, F_HTTP | F_HOST },
	{ "absolute-form with port",
	  BYTES("GET http://example.com:8080/x HTTP/1.1\r\n\r\n"),
	  0, TRIAGE_METHOD_GET, "/x", "example.com", 0, F_HTTP | F_HOST },
	{ "absolute-form https",
	  BYTES("GET https://secure.example/s HTTP/1.1\r\n\r\n"),
	  0, TRIAGE_METHOD_GET, "/s", "secure.example", 0, F_HTTP | F_HOST },
	{ "absolute-form upper-case scheme",
	  BYTES("GET HTTP://example.com/p HTTP/1.1\r\n\r\n"),
	  0, TRIAGE_METHOD_GET, "/p", "example.com", 0, F_HTTP | F_HOST },
	{ "absolute-form without path",
	  BYTES("GET http://example.com HTTP/1.1\r\n\r\n"),
	  0, TRIAGE_METHOD_GET, "/", "example.com", 0, F_HTTP | F_HOST },
	{ "absolute-form with query after host",
	  BYTES("GET http://example.com?x=1 HTTP/1.1\r\n\r\n"),
	  0, TRIAGE_METHOD_GET, "/", "example.com", 0, F_HTTP | F_HOST },
	{ "absolute-form host wins over Host",
	  BYTES("GET http://abs.example/p HTTP/1.1\r\nHost: hdr.example\r\n\r\n"),
	  0, TRIAGE_METHOD_GET, "/p", "abs.example", 0, F_HTTP | F_HOST },
	{ "absolute-form IPv6 literal",
	  BYTES("GET http://[2001:db8::1]:8080/v6 HTTP/1.1\r\n\r\n"),
	  0, TRIAGE_METHOD_GET, "/v6", "[2001:db8::1]", 0, F_HTTP | F_HOST },
	{ "absolute-form with empty host",
	  BYTES("GET http:///p HTTP/1.1\r\nHost: h.example\r\n\r\n"),
	  0, TRIAGE_METHOD_GET, "/p", NULL, 0, F_HTTP },
	{ "absolute-form with host of 65 bytes",
	  BYTES("GET http://" HOST_65 "/p HTTP/1.1\r\nHost: h.example\r\n\r\n"),
	  0, TRIAGE_METHOD_GET, "/p", NULL, 0, F_HTTP },
	{ "absolute-form with host of 64 bytes",
	  BYTES("GET http://" HOST_64 ":80/p HTTP/1.1\r\n\r\n"),
	  0, TRIAGE_METHOD_GET, "/p", HOST_64, 0, F_HTTP | F_HOST },
	{ "absolute-form with userinfo",
	  BYTES("GET http://user@example.com/ HTTP/1.1\r\n\r\n"),
	  -1, 0, NULL, NULL, 0, 0 },
	{ "query dropped",
	  BYTES("GET /search?q=a/b HTTP/1.1\r\n\r\n"),
	  0, TRIAGE_METHOD_GET, "/search", NULL, 0, F_HTTP },
	{ "fragment dropped",
	  BYTES("GET /page#top HTTP/1.1\r\n\r\n"),
	  0, TRIAGE_METHOD_GET, "/page", NULL, 0, F_HTTP },
	{ "pipelined requests: the first one counts",
	  BYTES("GET /first HTTP/1.1\r\nHost: one.example\r\n\r\n"
		"POST /second HTTP/1.1\r\nHost: two.example\r\nContent-Length: 5\r\n\r\nhello"),
	  0, TRIAGE_METHOD_GET, "/first", "one.example", 0, F_HTTP | F_HOST },
	{ "Host with port",
	  BYTES("GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"),
	  0, TRIAGE_METHOD_GET, "/", "example.com", 0, F_HTTP | F_HOST },
	{ "IPv6 Host with port",
	  BYTES("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"),
	  0, TRIAGE_METHOD_GET, "/", "[::1]", 0, F_HTTP | F_HOST },
	{ "IPv6 Host without port",
	  BYTES("GET / HTTP/1.1\r\nHost: [2001:db8::1]\r\n\r\n"),
	  0, TRIAGE_METHOD_GET, "/", "[2001:db8::1]", 0, F_HTTP | F_HOST },
	{ "header names in any case",
	  BYTES("GET / HTTP/1.1\r\nhOsT: Example.Com\r\ncontent-LENGTH: 42\r\n\r\n"),
	  0, TRIAGE_METHOD_GET, "/", "example.com", 42, F_HTTP | F_HOST | F_CLEN },
	{ "whitespace around values",
	  BYTES("PUT / HTTP/1.1\r\nHost: \t example.com \t\r\nContent-Length:  7 \t\r\n\r\n"),
	  0, TRIAGE_METHOD_PUT, "/", "example.com", 7, F_HTTP | F_HOST | F_CLEN },
	{ "no whitespace around values",
	  BYTES("PUT / HTTP/1.1\r\nHost:example.com\r\nContent-Length:7\r\n\r\n"),
	  0, TRIAGE_METHOD_PUT, "/", "example.com", 7, F_HTTP | F_HOST | F_CLEN },
	{ "equal Content-Length twice",
	  BYTES("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"),
	  0, TRIAGE_METHOD_POST, "/", NULL, 5, F_HTTP | F_CLEN },
	{ "conflicting Content-Length",
	  BYTES("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
	  0, TRIAGE_METHOD_POST, "/", NULL, 0, F_HTTP },
	{ "Content-Length overflow",
	  BYTES("POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n"),
	  0, TRIAGE_METHOD_POST, "/", NULL, 0, F_HTTP },
	{ "Content-Length at maximum",
	  BYTES("POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n"),
	  0, TRIAGE_METHOD_POST, "/", NULL, 18446744073709551615ULL, F_HTTP | F_CLEN },
	{ "Content-Length with sign",
	  BYTES("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n"),
	  0, TRIAGE_METHOD_POST, "/", NULL, 0, F_HTTP },
	{ "Content-Length with letter",
	  BYTES("POST / HTTP/1.1\r\nContent-Length: 5a\r\n\r\n"),
	  0, TRIAGE_METHOD_POST, "/", NULL, 0, F_HTTP },
	{ "Content-Length as list",
	  BYTES("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n"),
	  0, TRIAGE_METHOD_POST, "/", NULL, 0, F_HTTP },
	{ "empty Content-Length",
	  BYTES("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n"),
	  0, TRIAGE_METHOD_POST, "/", NULL, 0, F_HTTP },
	{ "first Host wins",
	  BYTES("GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n"),
	  0, TRIAGE_METHOD_GET, "/", "a.example", 0, F_HTTP | F_HOST },
	{ "space before colon",
	  BYTES("GET / HTTP/1.1\r\nHost : evil.example\r\n\r\n"),
	  0, TRIAGE_METHOD_GET, "/", NULL, 0, F_HTTP },
	{ "space inside Host",
	  BYTES("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
	  0, TRIAGE_METHOD_GET, "/", NULL, 0, F_HTTP },
	{ "Host of 64 bytes",
	  BYTES("GET / HTTP/1.1\r\nHost: " HOST_64 "\r\n\r\n"),
	  0, TRIAGE_METHOD_GET, "/", HOST_64, 0, F_HTTP | F_HOST },
	{ "Host of 65 bytes",
	  BYTES("GET / HTTP/1.1\r\nHost: " HOST_65 "\r\n\r\n"),
	  0, TRIAGE_METHOD_GET, "/", NULL, 0, F_HTTP },
	{ "path longer than the store",
	  BYTES("GET " LONG_PATH " HTTP/1.1\r\n\r\n"),
	  0, TRIAGE_METHOD_GET, "/aaaaaaaaaabbbbbbbbbbccccccccccddddddddddeeeeeeeeeeffffffffffggg",
	  NULL, 0, F_HTTP },
	{ "obsolete line folding ignored",
	  BYTES("GET / HTTP/1.1\r\nX-A: 1\r\n  Host: evil.example\r\nHost: good.example\r\n\r\n"),
	  0, TRIAGE_METHOD_GET, "/", "good.example", 0, F_HTTP | F_HOST },
	{ "header line without colon ignored",
	  BYTES("GET / HTTP/1.1\r\nJunk\r\nHost: h.example\r\n\r\n"),
	  0, TRIAGE_METHOD_GET, "/", "h.example", 0, F_HTTP | F_HOST },
	{ "HTTP/0.9 request", BYTES("GET /\r\n"), -1, 0, NULL, NULL, 0, 0 },
	{ "missing version", BYTES("GET / \r\n\r\n"), -1, 0, NULL, NULL, 0, 0 },
	{ "HTTP/2.0 version", BYTES("GET / HTTP/2.0\r\n\r\n"), -1, 0, NULL, NULL, 0, 0 },
	{ "HTTP/1.2 version", BYTES("GET / HTTP/1.2\r\n\r\n"), -1, 0, NULL, NULL, 0, 0 },
	{ "lower-case version", BYTES("GET / http/1.1\r\n\r\n"), -1, 0, NULL, NULL, 0, 0 },
	{ "text after version", BYTES("GET / HTTP/1.1 x\r\n\r\n"), -1, 0, NULL, NULL, 0, 0 },
	{ "two spaces after method", BYTES("GET  / HTTP/1.1\r\n\r\n"), -1, 0, NULL, NULL, 0, 0 },
	{ "binary garbage",
	  BYTES("\x00\xff\x13\x37GET / HTTP/1.1\r\n\r\n"), -1, 0, NULL, NULL, 0, 0 },
	{ "TLS ClientHello", BYTES(TLS_CLIENT_HELLO), -1, 0, NULL, NULL, 0, 0 },
	{ "empty segment", BYTES(""), -1, 0, NULL, NULL, 0, 0 },
	{ "only empty lines", BYTES("\r\n\r\n"), -1, 0, NULL, NULL, 0, 0 },
	{ "cut in method", BYTES("GE"), -1, 0, NULL, NULL, 0, 0 },
	{ "cut after unknown method", BYTES("FOO /x"), -1, 0, NULL, NULL, 0, 0 },
	{ "cut after method",
	  BYTES("GET "), 0, TRIAGE_METHOD_GET, NULL, NULL, 0, F_HTTP | F_CUT | F_PATH_CUT },
	{ "cut in path",
	  BYTES("GET /api/us"),
	  0, TRIAGE_METHOD_GET, "/api/us", NULL, 0, F_HTTP | F_CUT | F_PATH_CUT },
	{ "cut in query",
	  BYTES("GET /a?b"), 0, TRIAGE_METHOD_GET, "/a", NULL, 0, F_HTTP | F_CUT },
	{ "cut in version",
	  BYTES("GET /api HTTP/1."), 0, TRIAGE_METHOD_GET, "/api", NULL, 0, F_HTTP | F_CUT },
	{ "cut in scheme",
	  BYTES("GET htt"), 0, TRIAGE_METHOD_GET, NULL, NULL, 0, F_HTTP | F_CUT | F_PATH_CUT },
	{ "cut in absolute-form host",
	  BYTES("GET http://examp"),
	  0, TRIAGE_METHOD_GET, NULL, NULL, 0, F_HTTP | F_CUT | F_PATH_CUT },
	{ "cut in absolute-form path",
	  BYTES("GET http://example.com/ap"),
	  0, TRIAGE_METHOD_GET, "/ap", "example.com", 0, F_HTTP | F_HOST | F_CUT | F_PATH_CUT },
	{ "cut in Host value",
	  BYTES("GET / HTTP/1.1\r\nHost: exam"),
	  0, TRIAGE_METHOD_GET, "/", NULL, 0, F_HTTP | F_CUT },
	{ "cut before LF of Host line",
	  BYTES("GET / HTTP/1.1\r\nHost: example.com\r"),
	  0, TRIAGE_METHOD_GET, "/", NULL, 0, F_HTTP | F_CUT },
	{ "cut after Host line",
	  BYTES("GET / HTTP/1.1\r\nHost: example.com\r\nAccept: */*"),
	  0, TRIAGE_METHOD_GET, "/", "example.com", 0, F_HTTP | F_HOST | F_CUT },
	{ "cut in Content-Length",
	  BYTES("POST / HTTP/1.1\r\nContent-Length: 12"),
	  0, TRIAGE_METHOD_POST, "/", NULL, 0, F_HTTP | F_CUT },
};

#define NR_PARSE_CASES	(sizeof(parse_cases) / sizeof(parse_cases[0]))

/*
 * Checks RET and REQ against C. WHERE names the run, such as "native" or
 * "BPF over IPv6", for the messages.
 */
static inline void check_parse_case(const struct parse_case *c, const char *where, int ret,
				    const struct triage_http_req *req)
{
	const char *path = c->path ? c->path : "";
	const char *host = c->host ? c->host : "";
	size_t path_len = strlen(path), host_len = strlen(host);

	cr_expect_eq(ret, c->ret, "%s, %s: return value %d, expected %d",
		     c->desc, where, ret, c->ret);
	cr_expect_eq(req->method, c->method, "%s, %s: method %#x, expected %#x",
		     c->desc, where, req->method, c->method);
	cr_expect_eq(req->flags, c->flags, "%s, %s: flags %#x, expected %#x",
		     c->desc, where, req->flags, c->flags);
	cr_expect_eq(req->path_len, path_len, "%s, %s: path_len %u, expected %zu",
		     c->desc, where, req->path_len, path_len);
	cr_expect(req->path_len == path_len && !memcmp(req->path, path, path_len),
		  "%s, %s: path '%.*s', expected '%s'", c->desc, where,
		  (int)sizeof(req->path), req->path, path);
	cr_expect_eq(req->host_len, host_len, "%s, %s: host_len %u, expected %zu",
		     c->desc, where, req->host_len, host_len);
	cr_expect(req->host_len == host_len && !memcmp(req->host, host, host_len),
		  "%s, %s: host '%.*s', expected '%s'", c->desc, where,
		  (int)sizeof(req->host), req->host, host);
	cr_expect_eq(req->content_length, c->content_length,
		     "%s, %s: content_length %llu, expected %llu", c->desc, where,
		     (unsigned long long)req->content_length,
		     (unsigned long long)c->content_length);
}

/* Rule field initializers from a string literal. */
#define RULE_PATH(s)	.path = s, .path_len = sizeof(s) - 1
#define RULE_HOST(s)	.host = s, .host_len = sizeof(s) - 1
#define RULE_RAW(off, s) .raw_offset = (off), .raw = s, .raw_len = sizeof(s) - 1

#define MAX_CASE_RULES	3

struct match_case {
	const char *desc;
	const __u8 *data;
	size_t len;
	const char *client;		/* numeric IPv4 or IPv6 address */
	struct triage_rule rules[MAX_CASE_RULES];
	__u32 nr_rules;
	__u32 category;			/* triage_match_rules() */
};

#define GET_API		BYTES("GET /api HTTP/1.1\r\nHost: example.com\r\n\r\n")
#define CLIENT4		"192.0.2.10"
#define CLIENT6		"2001:db8:1::5"
#define NONE		TRIAGE_NO_CATEGORY

/* One rule with a single condition, category 1. */
#define ONE_RULE(...)	.rules = { { .category = 1, __VA_ARGS__ } }, .nr_rules = 1
#define PATH_RULE(s)	ONE_RULE(.match = TRIAGE_MATCH_PATH, RULE_PATH(s))
#define SUFFIX_RULE(s)	ONE_RULE(.match = TRIAGE_MATCH_HOST_SUFFIX, RULE_HOST(s))
#define CLIENT_RULE(family, prefixlen, ...) \
	ONE_RULE(.match = TRIAGE_MATCH_CLIENT, .client_family = (family), \
		 .client_prefixlen = (prefixlen), .client_addr = { __VA_ARGS__ })

static const struct match_case match_cases[] = {
	{ "method GET matches GET", GET_API, CLIENT4,
	  ONE_RULE(.match = TRIAGE_MATCH_METHOD, .methods = TRIAGE_METHOD_GET), 1 },
	{ "method set matches POST",
	  BYTES("POST / HTTP/1.1\r\n\r\n"), CLIENT4,
	  ONE_RULE(.match = TRIAGE_MATCH_METHOD,
		   .methods = TRIAGE_METHOD_GET | TRIAGE_METHOD_POST), 1 },
	{ "method POST misses GET", GET_API, CLIENT4,
	  ONE_RULE(.match = TRIAGE_MATCH_METHOD, .methods = TRIAGE_METHOD_POST), NONE },
	{ "path /api matches /api", GET_API, CLIENT4, PATH_RULE("/api"), 1 },
	{ "path /api matches /api/",
	  BYTES("GET /api/ HTTP/1.1\r\n\r\n"), CLIENT4, PATH_RULE("/api"), 1 },
	{ "path /api matches /api/x",
	  BYTES("GET /api/x HTTP/1.1\r\n\r\n"), CLIENT4, PATH_RULE("/api"), 1 },
	{ "path /api misses /apix",
	  BYTES("GET /apix HTTP/1.1\r\n\r\n"), CLIENT4, PATH_RULE("/api"), NONE },
	{ "path /api misses /ap",
	  BYTES("GET /ap HTTP/1.1\r\n\r\n"), CLIENT4, PATH_RULE("/api"), NONE },
	{ "path /api matches /api?x",
	  BYTES("GET /api?x=1 HTTP/1.1\r\n\r\n"), CLIENT4, PATH_RULE("/api"), 1 },
	{ "path /api/ matches /api/x",
	  BYTES("GET /api/x HTTP/1.1\r\n\r\n"), CLIENT4, PATH_RULE("/api/"), 1 },
	{ "path /api/ misses /api", GET_API, CLIENT4, PATH_RULE("/api/"), NONE },
	{ "path / matches a deep path",
	  BYTES("GET /a/b/c HTTP/1.1\r\n\r\n"), CLIENT4, PATH_RULE("/"), 1 },
	{ "path / matches asterisk-form",
	  BYTES("OPTIONS * HTTP/1.1\r\n\r\n"), CLIENT4, PATH_RULE("/"), 1 },
	{ "path rule of 63 bytes checks the 64th",
	  BYTES("GET " LONG_PATH " HTTP/1.1\r\n\r\n"), CLIENT4,
	  PATH_RULE(PATH_63), NONE },
	{ "path rule of 63 bytes matches at '/'",
	  BYTES("GET " PATH_63 "/tail HTTP/1.1\r\n\r\n"), CLIENT4,
	  PATH_RULE(PATH_63), 1 },
	{ "cut path /api misses /api rule",
	  BYTES("GET /api"), CLIENT4, PATH_RULE("/api"), NONE },
	{ "cut path /api/ matches /api rule",
	  BYTES("GET /api/"), CLIENT4, PATH_RULE("/api"), 1 },
	{ "cut path /apix misses /api rule",
	  BYTES("GET /apix"), CLIENT4, PATH_RULE("/api"), NONE },
	{ "cut path /api/ matches /api/ rule",
	  BYTES("GET /api/"), CLIENT4, PATH_RULE("/api/"), 1 },
	{ "path ended by space before cut",
	  BYTES("GET /api "), CLIENT4, PATH_RULE("/api"), 1 },
	{ "host matches exactly", GET_API, CLIENT4,
	  ONE_RULE(.match = TRIAGE_MATCH_HOST, RULE_HOST("example.com")), 1 },
	{ "host matches after lower case and port",
	  BYTES("GET / HTTP/1.1\r\nHost: Example.COM:80\r\n\r\n"), CLIENT4,
	  ONE_RULE(.match = TRIAGE_MATCH_HOST, RULE_HOST("example.com")), 1 },
	{ "host misses subdomain",
	  BYTES("GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n"), CLIENT4,
	  ONE_RULE(.match = TRIAGE_MATCH_HOST, RULE_HOST("example.com")), NONE },
	{ "host misses request without Host",
	  BYTES("GET / HTTP/1.1\r\n\r\n"), CLIENT4,
	  ONE_RULE(.match = TRIAGE_MATCH_HOST, RULE_HOST("example.com")), NONE },
	{ "suffix .example.com matches a.example.com",
	  BYTES("GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n"), CLIENT4,
	  SUFFIX_RULE(".example.com"), 1 },
	{ "suffix .example.com misses example.com", GET_API, CLIENT4,
	  SUFFIX_RULE(".example.com"), NONE },
	{ "suffix .example.com misses badexample.com",
	  BYTES("GET / HTTP/1.1\r\nHost: badexample.com\r\n\r\n"), CLIENT4,
	  SUFFIX_RULE(".example.com"), NONE },
	{ "suffix example.com matches example.com", GET_API, CLIENT4,
	  SUFFIX_RULE("example.com"), 1 },
	{ "suffix example.com matches a.b.example.com",
	  BYTES("GET / HTTP/1.1\r\nHost: a.b.example.com\r\n\r\n"), CLIENT4,
	  SUFFIX_RULE("example.com"), 1 },
	{ "suffix example.com misses badexample.com",
	  BYTES("GET / HTTP/1.1\r\nHost: badexample.com\r\n\r\n"), CLIENT4,
	  SUFFIX_RULE("example.com"), NONE },
	{ "Content-Length 101 above 100",
	  BYTES("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n"), CLIENT4,
	  ONE_RULE(.match = TRIAGE_MATCH_CLEN_ABOVE, .clen_above = 100), 1 },
	{ "Content-Length 100 not above 100",
	  BYTES("POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n"), CLIENT4,
	  ONE_RULE(.match = TRIAGE_MATCH_CLEN_ABOVE, .clen_above = 100), NONE },
	{ "no Content-Length not above 0", GET_API, CLIENT4,
	  ONE_RULE(.match = TRIAGE_MATCH_CLEN_ABOVE, .clen_above = 0), NONE },
	{ "Content-Length 99 below 100",
	  BYTES("POST / HTTP/1.1\r\nContent-Length: 99\r\n\r\n"), CLIENT4,
	  ONE_RULE(.match = TRIAGE_MATCH_CLEN_BELOW, .clen_below = 100), 1 },
	{ "Content-Length 100 not below 100",
	  BYTES("POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n"), CLIENT4,
	  ONE_RULE(.match = TRIAGE_MATCH_CLEN_BELOW, .clen_below = 100), NONE },
	{ "no Content-Length counts as 0", GET_API, CLIENT4,
	  ONE_RULE(.match = TRIAGE_MATCH_CLEN_BELOW, .clen_below = 1), 1 },
	{ "raw bytes match TLS record", BYTES(TLS_CLIENT_HELLO), CLIENT4,
	  ONE_RULE(.match = TRIAGE_MATCH_RAW, RULE_RAW(0, "\x16\x03")), 1 },
	{ "raw bytes match at offset", BYTES(TLS_CLIENT_HELLO), CLIENT4,
	  ONE_RULE(.match = TRIAGE_MATCH_RAW, RULE_RAW(5, "\x01")), 1 },
	{ "raw bytes differ", BYTES(TLS_CLIENT_HELLO), CLIENT4,
	  ONE_RULE(.match = TRIAGE_MATCH_RAW, RULE_RAW(0, "\x16\x02")), NONE },
	{ "raw bytes past the segment end", BYTES("\x16\x03\x01"), CLIENT4,
	  ONE_RULE(.match = TRIAGE_MATCH_RAW, RULE_RAW(2, "\x01\x00")), NONE },
	{ "raw bytes match HTTP request", GET_API, CLIENT4,
	  ONE_RULE(.match = TRIAGE_MATCH_RAW, RULE_RAW(0, "GET ")), 1 },
	{ "client in 192.0.2.0/24", GET_API, CLIENT4,
	  CLIENT_RULE(AF_INET, 24, 192, 0, 2, 0), 1 },
	{ "client not in 198.51.100.0/24", GET_API, CLIENT4,
	  CLIENT_RULE(AF_INET, 24, 198, 51, 100, 0), NONE },
	{ "client in 192.0.2.0/28, partial byte", GET_API, CLIENT4,
	  CLIENT_RULE(AF_INET, 28, 192, 0, 2, 0), 1 },
	{ "client not in 192.0.2.0/29, partial byte", GET_API, CLIENT4,
	  CLIENT_RULE(AF_INET, 29, 192, 0, 2, 0), NONE },
	{ "client in 0.0.0.0/0", BYTES(TLS_CLIENT_HELLO), CLIENT4,
	  CLIENT_RULE(AF_INET, 0, 0), 1 },
	{ "client equal to /32", GET_API, CLIENT4,
	  CLIENT_RULE(AF_INET, 32, 192, 0, 2, 10), 1 },
	{ "client in 2001:db8::/32", GET_API, CLIENT6,
	  CLIENT_RULE(AF_INET6, 32, 0x20, 0x01, 0x0d, 0xb8), 1 },
	{ "client not in 2001:db8:2::/48", GET_API, CLIENT6,
	  CLIENT_RULE(AF_INET6, 48, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x02), NONE },
	{ "IPv4 rule misses IPv6 client", GET_API, CLIENT6,
	  CLIENT_RULE(AF_INET, 0, 0), NONE },
	{ "prefix longer than the address", GET_API, CLIENT4,
	  CLIENT_RULE(AF_INET, 33, 192, 0, 2, 10), NONE },
	{ "HTTP rule without conditions matches HTTP", GET_API, CLIENT4,
	  ONE_RULE(.proto = TRIAGE_PROTO_HTTP), 1 },
	{ "HTTP rule misses TLS", BYTES(TLS_CLIENT_HELLO), CLIENT4,
	  ONE_RULE(.proto = TRIAGE_PROTO_HTTP), NONE },
	{ "method condition misses non-HTTP", BYTES("GET /\r\n"), CLIENT4,
	  ONE_RULE(.match = TRIAGE_MATCH_METHOD, .methods = TRIAGE_METHOD_GET), NONE },
	{ "catch-all rule matches garbage", BYTES("\x00\x01\x02"), CLIENT4,
	  ONE_RULE(.match = 0), 1 },
	{ "unknown protocol never matches", GET_API, CLIENT4,
	  ONE_RULE(.proto = 7), NONE },
	{ "all conditions must hold", GET_API, CLIENT4,
	  ONE_RULE(.match = TRIAGE_MATCH_METHOD | TRIAGE_MATCH_PATH,
		   .methods = TRIAGE_METHOD_POST, RULE_PATH("/api")), NONE },
	{ "all conditions hold", GET_API, CLIENT4,
	  ONE_RULE(.match = TRIAGE_MATCH_METHOD | TRIAGE_MATCH_PATH | TRIAGE_MATCH_HOST,
		   .methods = TRIAGE_METHOD_GET, RULE_PATH("/api"),
		   RULE_HOST("example.com")), 1 },
	{ "first matching rule wins", GET_API, CLIENT4,
	  .rules = {
		{ .match = TRIAGE_MATCH_PATH, .category = 5, RULE_PATH("/api") },
		{ .match = TRIAGE_MATCH_PATH, .category = 6, RULE_PATH("/") },
	  }, .nr_rules = 2, 5 },
	{ "later rule matches when earlier miss", GET_API, CLIENT4,
	  .rules = {
		{ .match = TRIAGE_MATCH_PATH, .category = 5, RULE_PATH("/other") },
		{ .match = TRIAGE_MATCH_HOST, .category = 6, RULE_HOST("nope.example") },
		{ .match = TRIAGE_MATCH_PATH, .category = 7, RULE_PATH("/") },
	  }, .nr_rules = 3, 7 },
	{ "rules past nr_rules are not tried", GET_API, CLIENT4,
	  .rules = {
		{ .match = TRIAGE_MATCH_PATH, .category = 5, RULE_PATH("/other") },
		{ .match = TRIAGE_MATCH_PATH, .category = 6, RULE_PATH("/") },
	  }, .nr_rules = 1, NONE },
	{ "no rules", GET_API, CLIENT4, .nr_rules = 0, NONE },
};

#define NR_MATCH_CASES	(sizeof(match_cases) / sizeof(match_cases[0]))

/*
 * A realistic request for the tests that cut it at every length. The
 * offsets of its parts are found with strstr() in the tests.
 */
#define REAL_REQUEST \
	"POST /api/v1/users?id=7 HTTP/1.1\r\n" \
	"Host: API.Example.com:8443\r\n" \
	"User-Agent: triage-test/1.0\r\n" \
	"Content-Length: 1234\r\n" \
	"Accept: */*\r\n" \
	"\r\n" \
	"{\"name\":\"x\"}"
#define REAL_PATH	"/api/v1/users"
#define REAL_HOST	"api.example.com"
#define REAL_CLEN	1234

/* Single-condition rules tried on every cut of REAL_REQUEST. */
static const struct triage_rule real_rules[] = {
	{ .match = TRIAGE_MATCH_PATH, RULE_PATH("/api") },
	{ .match = TRIAGE_MATCH_PATH, RULE_PATH("/api/") },
	{ .match = TRIAGE_MATCH_PATH, RULE_PATH("/api/v") },
	{ .match = TRIAGE_MATCH_PATH, RULE_PATH("/api/v1") },
	{ .match = TRIAGE_MATCH_PATH, RULE_PATH("/api/v1/users") },
	{ .match = TRIAGE_MATCH_PATH, RULE_PATH("/api/v1/usersx") },
	{ .match = TRIAGE_MATCH_PATH, RULE_PATH("/apiv") },
	{ .match = TRIAGE_MATCH_PATH, RULE_PATH("/") },
	{ .match = TRIAGE_MATCH_HOST, RULE_HOST("api.example.com") },
	{ .match = TRIAGE_MATCH_HOST, RULE_HOST("api.example.co") },
	{ .match = TRIAGE_MATCH_HOST_SUFFIX, RULE_HOST("example.com") },
	{ .match = TRIAGE_MATCH_HOST_SUFFIX, RULE_HOST(".example.com") },
	{ .match = TRIAGE_MATCH_METHOD, .methods = TRIAGE_METHOD_POST },
	{ .match = TRIAGE_MATCH_CLEN_ABOVE, .clen_above = 1000 },
	{ .match = TRIAGE_MATCH_RAW, RULE_RAW(0, "POST /api") },
	{ .proto = TRIAGE_PROTO_HTTP },
};

#define NR_REAL_RULES	(sizeof(real_rules) / sizeof(real_rules[0]))

/* Whether each of real_rules matches the whole REAL_REQUEST. */
static const bool real_rule_holds[NR_REAL_RULES] = {
	true, true, false, true, true, false, false, true,
	true, false, true, true, true, true, true, true,
};

#endif /* TRIAGE_CLASSIFY_CASES_H */
