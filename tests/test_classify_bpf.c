// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Runs bpf/classify.h as BPF, through the tc program of classify_test.bpf.c
 * and BPF_PROG_TEST_RUN, on the request cases of the native test, and
 * checks that BPF and native builds agree. Needs root.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>

#include "triage.h"

static const struct triage_rule *native_rules;
static __u32 native_nr_rules;

/* The native build of classify.h, for comparison, fetches rules here. */
static const struct triage_rule *triage_rule_at(__u32 index)
{
	return index < native_nr_rules ? &native_rules[index] : NULL;
}

#include "classify.h"
#include "classify_cases.h"
#include "classify_test.h"
#include "classify_test.skel.h"

#define ETH_HLEN	14
#define MAX_FRAME	(ETH_HLEN + 40 + 60 + TRIAGE_PEEK_LEN + 100)
#define SERVER4		"192.0.2.1"
#define SERVER6		"2001:db8::1"

/* How the test frames carry the payload: IPv4 or IPv6, TCP options or not. */
struct frame_kind {
	const char *name;
	const char *client;
	bool tcp_options;
};

static const struct frame_kind frame_kinds[] = {
	{ "BPF over IPv4", CLIENT4, false },
	{ "BPF over IPv6 with TCP options", CLIENT6, true },
};

static struct classify_test_bpf *skel;

static void setup(void)
{
	if (geteuid() != 0)
		cr_skip_test("loading BPF programs needs root; run the test as root");
	skel = classify_test_bpf__open_and_load();
	cr_assert_not_null(skel, "classify_test.bpf.o failed to load: %s (run as root; "
			   "the verifier log is printed above)", strerror(errno));
}

static void teardown(void)
{
	classify_test_bpf__destroy(skel);
	skel = NULL;
}

TestSuite(bpf, .init = setup, .fini = teardown);

/* Writes the TCP header with a data offset of 5 or, with options, 8 words. */
static size_t put_tcp(__u8 *at, bool options)
{
	struct tcphdr tcp = {
		.source = htons(40000),
		.dest = htons(80),
		.seq = htonl(1),
		.ack_seq = htonl(1),
		.doff = options ? 8 : 5,
		.ack = 1,
		.psh = 1,
		.window = htons(65535),
	};
	/* NOP, NOP, timestamps (kind 8, length 10) */
	static const __u8 opts[12] = { 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2 };

	memcpy(at, &tcp, sizeof(tcp));
	if (!options)
		return sizeof(tcp);
	memcpy(at + sizeof(tcp), opts, sizeof(opts));
	return sizeof(tcp) + sizeof(opts);
}

/* Builds an Ethernet frame from KIND->client with PAYLOAD and returns its length. */
static size_t build_frame(__u8 *frame, const struct frame_kind *kind, const __u8 *payload,
			  size_t len)
{
	bool v6 = strchr(kind->client, ':') != NULL;
	size_t ip_len = v6 ? sizeof(struct ip6_hdr) : sizeof(struct iphdr);
	__u8 *ip = frame + ETH_HLEN;
	size_t tcp_len = put_tcp(ip + ip_len, kind->tcp_options);
	__u16 eth_type = htons(v6 ? 0x86dd : 0x0800);

	cr_assert_leq(ETH_HLEN + ip_len + tcp_len + len, MAX_FRAME, "payload too long");
	memset(frame, 0, ETH_HLEN);
	frame[0] = 0x02;
	frame[6] = 0x02;
	frame[11] = 0x01;
	memcpy(frame + 12, &eth_type, 2);

	if (v6) {
		struct ip6_hdr h = {
			.ip6_flow = htonl(6u << 28),
			.ip6_plen = htons(tcp_len + len),
			.ip6_nxt = IPPROTO_TCP,
			.ip6_hlim = 64,
		};

		inet_pton(AF_INET6, kind->client, &h.ip6_src);
		inet_pton(AF_INET6, SERVER6, &h.ip6_dst);
		memcpy(ip, &h, sizeof(h));
	} else {
		struct iphdr h = {
			.version = 4,
			.ihl = 5,
			.tot_len = htons(sizeof(h) + tcp_len + len),
			.ttl = 64,
			.protocol = IPPROTO_TCP,
		};

		inet_pton(AF_INET, kind->client, &h.saddr);
		inet_pton(AF_INET, SERVER4, &h.daddr);
		memcpy(ip, &h, sizeof(h));
	}
	memcpy(ip + ip_len + tcp_len, payload, len);
	return ETH_HLEN + ip_len + tcp_len + len;
}

static void set_rules(const struct triage_rule *rules, __u32 nr_rules)
{
	__u32 i;

	for (i = 0; i < nr_rules; i++) {
		int err = bpf_map__update_elem(skel->maps.rules, &i, sizeof(i), &rules[i],
					       sizeof(rules[i]), BPF_ANY);

		cr_assert_eq(err, 0, "writing rule %u failed: %s", i, strerror(-err));
	}
	skel->bss->nr_rules = nr_rules;
	native_rules = rules;
	native_nr_rules = nr_rules;
}

/* Runs classify_tc on PAYLOAD in a frame of KIND and returns its result. */
static struct classify_test_result run_bpf(const struct frame_kind *kind, const __u8 *payload,
					   size_t len)
{
	struct classify_test_result res;
	__u8 frame[MAX_FRAME];
	__u32 key = 0;
	int err;
	LIBBPF_OPTS(bpf_test_run_opts, opts,
		.data_in = frame,
		.data_size_in = build_frame(frame, kind, payload, len),
		.repeat = 1,
	);

	/* a result the program did not write shows up as garbage */
	memset(&res, 0xa5, sizeof(res));
	err = bpf_map__update_elem(skel->maps.result, &key, sizeof(key), &res, sizeof(res),
				   BPF_ANY);
	cr_assert_eq(err, 0, "resetting the result failed: %s", strerror(-err));

	err = bpf_prog_test_run_opts(bpf_program__fd(skel->progs.classify_tc), &opts);
	cr_assert_eq(err, 0, "BPF_PROG_TEST_RUN failed: %s", strerror(errno));
	cr_assert_eq(opts.retval, 0, "%s: classify_tc rejected the frame (%u)", kind->name,
		     opts.retval);

	err = bpf_map__lookup_elem(skel->maps.result, &key, sizeof(key), &res, sizeof(res), 0);
	cr_assert_eq(err, 0, "reading the result failed: %s", strerror(-err));
	return res;
}

/* Runs the native build on the same bytes, with the same rules. */
static struct classify_test_result run_native(const struct frame_kind *kind,
					      const __u8 *payload, size_t len)
{
	struct classify_test_result res;
	struct triage_client client = { 0 };
	__u8 peek[TRIAGE_PEEK_LEN] = { 0 };
	size_t n = len < TRIAGE_PEEK_LEN ? len : TRIAGE_PEEK_LEN;

	client.family = strchr(kind->client, ':') ? AF_INET6 : AF_INET;
	inet_pton(client.family, kind->client, client.addr);
	memcpy(peek, payload, n);
	memset(&res, 0, sizeof(res));
	res.parse_ret = triage_parse_http(peek, n, &res.req);
	res.category = triage_match_rules(&res.req, peek, n, &client, native_nr_rules);
	return res;
}

static void expect_same(const struct classify_test_result *bpf,
			const struct classify_test_result *native, const char *what,
			const char *where)
{
	cr_expect_eq(bpf->parse_ret, native->parse_ret, "%s, %s: return value %d, native %d",
		     what, where, bpf->parse_ret, native->parse_ret);
	cr_expect(!memcmp(&bpf->req, &native->req, sizeof(bpf->req)),
		  "%s, %s: request differs from the native build", what, where);
	cr_expect_eq(bpf->category, native->category, "%s, %s: category %#x, native %#x",
		     what, where, bpf->category, native->category);
}

/* The skeleton load also verified classify_reuseport, the sk_reuseport program. */
Test(bpf, skeleton_loads)
{
	cr_expect_geq(bpf_program__fd(skel->progs.classify_tc), 0, "classify_tc has no fd");
	cr_expect_geq(bpf_program__fd(skel->progs.classify_reuseport), 0,
		      "classify_reuseport has no fd");
}

Test(bpf, parse_table)
{
	size_t i, k;

	set_rules(NULL, 0);
	for (k = 0; k < sizeof(frame_kinds) / sizeof(frame_kinds[0]); k++) {
		const struct frame_kind *kind = &frame_kinds[k];

		for (i = 0; i < NR_PARSE_CASES; i++) {
			const struct parse_case *c = &parse_cases[i];
			struct classify_test_result res = run_bpf(kind, c->data, c->len);

			check_parse_case(c, kind->name, res.parse_ret, &res.req);
			cr_expect_eq(res.category, TRIAGE_NO_CATEGORY,
				     "%s, %s: category %#x without rules", c->desc, kind->name,
				     res.category);
		}
	}
}

Test(bpf, match_table)
{
	size_t i;

	for (i = 0; i < NR_MATCH_CASES; i++) {
		const struct match_case *c = &match_cases[i];
		struct frame_kind kind = { "BPF", c->client, false };
		struct classify_test_result res;

		set_rules(c->rules, c->nr_rules);
		res = run_bpf(&kind, c->data, c->len);
		cr_expect_eq(res.category, c->category, "%s, BPF: category %#x, expected %#x",
			     c->desc, res.category, c->category);
	}
}

/* Every cut of REAL_REQUEST, with each rule of real_rules, as in the native build. */
Test(bpf, every_cut_as_native)
{
	const __u8 *real = (const __u8 *)REAL_REQUEST;
	size_t total = sizeof(REAL_REQUEST) - 1, p, r;
	const struct frame_kind *kind = &frame_kinds[0];
	char what[64];

	for (r = 0; r < NR_REAL_RULES; r++) {
		set_rules(&real_rules[r], 1);
		for (p = 0; p <= total; p++) {
			struct classify_test_result bpf = run_bpf(kind, real, p);
			struct classify_test_result native = run_native(kind, real, p);

			snprintf(what, sizeof(what), "rule %zu, cut at %zu", r, p);
			expect_same(&bpf, &native, what, kind->name);
		}
	}
}

/* A payload longer than TRIAGE_PEEK_LEN is classified from its first bytes. */
Test(bpf, long_payload)
{
	static const struct triage_rule rule = {
		.match = TRIAGE_MATCH_PATH, .category = 3, RULE_PATH("/long"),
	};
	__u8 payload[TRIAGE_PEEK_LEN + 64];
	const char *head = "GET /long HTTP/1.1\r\nHost: example.com\r\nX-Pad: ";
	__u32 flags = TRIAGE_REQ_HTTP | TRIAGE_REQ_HOST | TRIAGE_REQ_TRUNCATED;
	struct classify_test_result bpf, native;
	size_t k;

	memset(payload, 'p', sizeof(payload));
	memcpy(payload, head, strlen(head));
	memcpy(payload + sizeof(payload) - 4, "\r\n\r\n", 4);
	set_rules(&rule, 1);
	for (k = 0; k < sizeof(frame_kinds) / sizeof(frame_kinds[0]); k++) {
		bpf = run_bpf(&frame_kinds[k], payload, sizeof(payload));
		native = run_native(&frame_kinds[k], payload, sizeof(payload));

		expect_same(&bpf, &native, "payload of 576 bytes", frame_kinds[k].name);
		cr_expect_eq(bpf.req.flags, flags, "payload of 576 bytes, %s: flags %#x",
			     frame_kinds[k].name, bpf.req.flags);
		cr_expect_eq(bpf.category, 3, "payload of 576 bytes, %s: category %#x",
			     frame_kinds[k].name, bpf.category);
	}
}
