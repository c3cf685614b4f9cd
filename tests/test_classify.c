// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Native build of the HTTP parser and rule matcher in bpf/classify.h. */
#include <arpa/inet.h>
#include <stdbool.h>
#include <string.h>

#include <criterion/criterion.h>

#include "triage.h"

static const struct triage_rule *test_rules;
static __u32 test_nr_rules;

/* classify.h fetches rules through this. Past the table it returns NULL. */
static const struct triage_rule *triage_rule_at(__u32 index)
{
	return index < test_nr_rules ? &test_rules[index] : NULL;
}

#include "classify.h"
#include "classify_cases.h"

/* Bytes that the parser would act on if it read past the segment end. */
static const char tempting_tail[] =
	" HTTP/1.1\r\nHost: leak.example\r\nContent-Length: 99\r\n\r\n";

/* Copies LEN bytes of DATA into PEEK and fills the rest from FILL, repeated. */
static void fill_peek(__u8 *peek, const __u8 *data, size_t len, const char *fill)
{
	size_t fill_len = strlen(fill), i;

	memcpy(peek, data, len);
	for (i = len; i < TRIAGE_PEEK_LEN; i++)
		peek[i] = fill_len ? fill[(i - len) % fill_len] : 0;
}

static int parse(const __u8 *data, size_t len, struct triage_http_req *req)
{
	__u8 peek[TRIAGE_PEEK_LEN];

	fill_peek(peek, data, len, "");
	return triage_parse_http(peek, len, req);
}

static void client_from_text(struct triage_client *client, const char *text)
{
	memset(client, 0, sizeof(*client));
	client->family = strchr(text, ':') ? AF_INET6 : AF_INET;
	cr_assert_eq(inet_pton(client->family, text, client->addr), 1,
		     "invalid client address '%s' in the test table", text);
}

static __u32 match(const __u8 *data, size_t len, const struct triage_client *client,
		   const struct triage_rule *rules, __u32 nr_rules)
{
	struct triage_http_req req;
	__u8 peek[TRIAGE_PEEK_LEN];

	fill_peek(peek, data, len, "");
	triage_parse_http(peek, len, &req);
	test_rules = rules;
	test_nr_rules = nr_rules;
	return triage_match_rules(&req, peek, len, client, nr_rules);
}

Test(parse, table)
{
	size_t i;

	for (i = 0; i < NR_PARSE_CASES; i++) {
		const struct parse_case *c = &parse_cases[i];
		struct triage_http_req req;
		int ret = parse(c->data, c->len, &req);

		check_parse_case(c, "native", ret, &req);
	}
}

/* Bytes past LEN must not change the result, whatever they are. */
Test(parse, ignores_bytes_past_len)
{
	size_t i;

	for (i = 0; i < NR_PARSE_CASES; i++) {
		const struct parse_case *c = &parse_cases[i];
		struct triage_http_req zeroed, tempted;
		__u8 peek[TRIAGE_PEEK_LEN];
		int ret_zeroed, ret_tempted;

		fill_peek(peek, c->data, c->len, "");
		ret_zeroed = triage_parse_http(peek, c->len, &zeroed);
		fill_peek(peek, c->data, c->len, tempting_tail);
		ret_tempted = triage_parse_http(peek, c->len, &tempted);

		cr_expect_eq(ret_tempted, ret_zeroed, "%s: return value depends on bytes past len",
			     c->desc);
		cr_expect(!memcmp(&tempted, &zeroed, sizeof(zeroed)),
			  "%s: request depends on bytes past len", c->desc);
	}
}

/* LEN past TRIAGE_PEEK_LEN parses as TRIAGE_PEEK_LEN. */
Test(parse, len_past_peek_len)
{
	struct triage_http_req full, capped;
	__u8 peek[TRIAGE_PEEK_LEN];
	int ret_full, ret_capped;

	fill_peek(peek, (const __u8 *)"GET /x HTTP/1.1\r\nA: ", 20, "b");
	ret_full = triage_parse_http(peek, TRIAGE_PEEK_LEN, &full);
	ret_capped = triage_parse_http(peek, TRIAGE_PEEK_LEN + 100, &capped);

	cr_expect_eq(ret_full, 0, "full buffer: return value %d", ret_full);
	cr_expect_eq(full.flags, TRIAGE_REQ_HTTP | TRIAGE_REQ_TRUNCATED,
		     "full buffer: flags %#x", full.flags);
	cr_expect_eq(ret_capped, ret_full, "len past peek: return value %d", ret_capped);
	cr_expect(!memcmp(&capped, &full, sizeof(full)), "len past peek: request differs");
}

/* Offsets in REAL_REQUEST right after NEEDLE, found in the request. */
static size_t real_offset_after(const char *needle)
{
	const char *at = strstr(REAL_REQUEST, needle);

	cr_assert_not_null(at, "'%s' not found in REAL_REQUEST", needle);
	return at - REAL_REQUEST + strlen(needle);
}

/*
 * Cuts REAL_REQUEST at every length: the parser never claims more than the
 * bytes show, and keeps what they show.
 */
Test(parse, every_cut)
{
	const __u8 *real = (const __u8 *)REAL_REQUEST;
	size_t total = sizeof(REAL_REQUEST) - 1;
	size_t method_end = real_offset_after("POST ");
	size_t path_end = real_offset_after(REAL_PATH "?");
	size_t host_end = real_offset_after("8443\r\n");
	size_t clen_end = real_offset_after("1234\r\n");
	size_t headers_end = real_offset_after("\r\n\r\n");
	size_t p;

	for (p = 0; p <= total; p++) {
		struct triage_http_req req;
		int ret = parse(real, p, &req);
		size_t path_len = p < method_end ? 0 : p - method_end;

		if (path_len > strlen(REAL_PATH))
			path_len = strlen(REAL_PATH);
		if (p < method_end) {
			cr_expect_eq(ret, -1, "cut at %zu: return value %d before the method ended",
				     p, ret);
			cr_expect_eq(req.flags, 0, "cut at %zu: flags %#x", p, req.flags);
			continue;
		}
		cr_expect_eq(ret, 0, "cut at %zu: return value %d", p, ret);
		cr_expect_eq(req.method, TRIAGE_METHOD_POST, "cut at %zu: method %#x", p,
			     req.method);
		cr_expect(req.flags & TRIAGE_REQ_HTTP, "cut at %zu: no HTTP flag", p);
		cr_expect_eq(!!(req.flags & TRIAGE_REQ_TRUNCATED), p < headers_end,
			     "cut at %zu: flags %#x, TRUNCATED wrong", p, req.flags);
		cr_expect_eq(!!(req.flags & TRIAGE_REQ_PATH_TRUNCATED), p < path_end,
			     "cut at %zu: flags %#x, PATH_TRUNCATED wrong", p, req.flags);
		cr_expect_eq(req.path_len, path_len, "cut at %zu: path_len %u, expected %zu",
			     p, req.path_len, path_len);
		cr_expect(req.path_len <= strlen(REAL_PATH) &&
			  !memcmp(req.path, REAL_PATH, req.path_len),
			  "cut at %zu: path '%.*s' is no prefix of " REAL_PATH, p,
			  (int)sizeof(req.path), req.path);
		cr_expect_eq(!!(req.flags & TRIAGE_REQ_HOST), p >= host_end,
			     "cut at %zu: flags %#x, HOST wrong", p, req.flags);
		if (req.flags & TRIAGE_REQ_HOST)
			cr_expect(req.host_len == strlen(REAL_HOST) &&
				  !memcmp(req.host, REAL_HOST, req.host_len),
				  "cut at %zu: host '%.*s'", p, (int)sizeof(req.host), req.host);
		else
			cr_expect_eq(req.host_len, 0, "cut at %zu: host_len %u without HOST",
				     p, req.host_len);
		cr_expect_eq(!!(req.flags & TRIAGE_REQ_CLEN), p >= clen_end,
			     "cut at %zu: flags %#x, CLEN wrong", p, req.flags);
		cr_expect_eq(req.content_length, p >= clen_end ? REAL_CLEN : 0,
			     "cut at %zu: content_length %llu", p,
			     (unsigned long long)req.content_length);
	}
}

/* Bytes past the cut must not change the result either. */
Test(parse, every_cut_ignores_rest)
{
	const __u8 *real = (const __u8 *)REAL_REQUEST;
	size_t total = sizeof(REAL_REQUEST) - 1, p;

	for (p = 0; p <= total; p++) {
		struct triage_http_req zeroed, rest;
		__u8 peek[TRIAGE_PEEK_LEN];
		int ret_zeroed, ret_rest;

		fill_peek(peek, real, p, "");
		ret_zeroed = triage_parse_http(peek, p, &zeroed);
		fill_peek(peek, real, total, "");
		ret_rest = triage_parse_http(peek, p, &rest);

		cr_expect_eq(ret_rest, ret_zeroed, "cut at %zu: return value depends on the rest",
			     p);
		cr_expect(!memcmp(&rest, &zeroed, sizeof(zeroed)),
			  "cut at %zu: request depends on the rest", p);
	}
}

Test(match, table)
{
	size_t i;

	for (i = 0; i < NR_MATCH_CASES; i++) {
		const struct match_case *c = &match_cases[i];
		struct triage_client client;
		__u32 category;

		client_from_text(&client, c->client);
		category = match(c->data, c->len, &client, c->rules, c->nr_rules);
		cr_expect_eq(category, c->category, "%s: category %#x, expected %#x",
			     c->desc, category, c->category);
	}
}

/*
 * A rule that matches a cut of REAL_REQUEST must match the whole request,
 * because missing bytes never make a rule match.
 */
Test(match, cuts_are_conservative)
{
	const __u8 *real = (const __u8 *)REAL_REQUEST;
	size_t total = sizeof(REAL_REQUEST) - 1, p, r;
	struct triage_client client;

	client_from_text(&client, CLIENT4);
	for (r = 0; r < NR_REAL_RULES; r++) {
		__u32 whole = match(real, total, &client, &real_rules[r], 1);

		cr_expect_eq(whole != TRIAGE_NO_CATEGORY, real_rule_holds[r],
			     "rule %zu on the whole request: category %#x", r, whole);
		for (p = 0; p < total; p++) {
			__u32 cut = match(real, p, &client, &real_rules[r], 1);

			cr_expect(cut == TRIAGE_NO_CATEGORY || real_rule_holds[r],
				  "rule %zu holds for the cut at %zu but not for the request",
				  r, p);
		}
	}
}

/* Rules at and past TRIAGE_MAX_RULES are never fetched. */
Test(match, rule_count_capped)
{
	static struct triage_rule rules[TRIAGE_MAX_RULES + 1];
	const struct match_case *c = &match_cases[0];
	struct triage_client client;
	__u32 category;
	size_t i;

	for (i = 0; i < TRIAGE_MAX_RULES; i++)
		rules[i] = (struct triage_rule){ .proto = 7, .category = 1 };
	rules[TRIAGE_MAX_RULES] = (struct triage_rule){ .category = 2 };
	client_from_text(&client, CLIENT4);

	category = match(c->data, c->len, &client, rules, TRIAGE_MAX_RULES + 1);
	cr_expect_eq(category, TRIAGE_NO_CATEGORY, "rule past the cap: category %#x", category);
	rules[TRIAGE_MAX_RULES - 1].proto = TRIAGE_PROTO_ANY;
	category = match(c->data, c->len, &client, rules, TRIAGE_MAX_RULES + 1);
	cr_expect_eq(category, 1, "last rule within the cap: category %#x", category);
}

Test(match, null_client)
{
	struct triage_rule rule = { .match = TRIAGE_MATCH_CLIENT, .category = 1,
				    .client_family = AF_INET, .client_prefixlen = 0 };
	const __u8 *data = (const __u8 *)"GET / HTTP/1.1\r\n\r\n";
	__u32 category = match(data, 18, NULL, &rule, 1);

	cr_expect_eq(category, TRIAGE_NO_CATEGORY, "client rule without client: category %#x",
		     category);
}

Test(loop_shim, stops_on_one)
{
	struct triage_compare_ctx ctx = {
		.a = (const __u8 *)"abcdef",
		.b = (const __u8 *)"abcxef",
		.equal = 1,
	};
	long calls = bpf_loop(6, triage_compare_name, &ctx, 0);

	cr_expect_eq(calls, 4, "calls %ld, expected 4 (stop at the mismatch)", calls);
	cr_expect_eq(ctx.equal, 0, "mismatch not seen");
}
