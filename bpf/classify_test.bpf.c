// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Test harness for classify.h. sk_reuseport programs do not support
 * BPF_PROG_TEST_RUN, so classify_tc runs the parser and the matcher on a
 * frame handed in by the test. classify_reuseport is never run: loading it
 * shows that the verifier accepts the same code in the sk_reuseport
 * context, with the request on the stack instead of in a map.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "triage.h"
#include "classify_test.h"

#define TC_ACT_OK	0
#define TC_ACT_SHOT	2
#define ETH_HLEN	14
#define ETH_P_IP	0x0800
#define ETH_P_IPV6	0x86DD
#define TCP_DOFF_OFF	12	/* byte of the TCP header that holds the data offset */

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TRIAGE_MAX_RULES);
	__type(key, __u32);
	__type(value, struct triage_rule);
} rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct classify_test_result);
} result SEC(".maps");

/* Rules in use, set by the test through the skeleton's bss. */
__u32 nr_rules;

static const struct triage_rule *triage_rule_at(__u32 index)
{
	return bpf_map_lookup_elem(&rules, &index);
}

#include "classify.h"

struct classify_scratch {
	struct triage_peek peek;
	__u32 category;			/* written by classify_reuseport only */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct classify_scratch);
} scratch SEC(".maps");

/* Where a frame's TCP header starts, its TCP segment length, its sender. */
struct frame_info {
	__u32 tcp_off;
	__u32 tcp_len;
	struct triage_client client;
};

static __always_inline int parse_ipv4(struct __sk_buff *skb, struct frame_info *fi)
{
	struct iphdr ip;
	__u32 hdr_len, tot_len;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)))
		return -1;
	hdr_len = ip.ihl * 4;
	tot_len = bpf_ntohs(ip.tot_len);
	if (ip.version != 4 || hdr_len < sizeof(ip) || tot_len < hdr_len ||
	    ip.protocol != IPPROTO_TCP)
		return -1;
	fi->tcp_off = ETH_HLEN + hdr_len;
	fi->tcp_len = tot_len - hdr_len;
	fi->client.family = AF_INET;
	__builtin_memcpy(fi->client.addr, &ip.saddr, sizeof(ip.saddr));
	return 0;
}

/* IPv6 extension headers are not followed: the test sends none. */
static __always_inline int parse_ipv6(struct __sk_buff *skb, struct frame_info *fi)
{
	struct ipv6hdr ip6;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip6, sizeof(ip6)))
		return -1;
	if (ip6.version != 6 || ip6.nexthdr != IPPROTO_TCP)
		return -1;
	fi->tcp_off = ETH_HLEN + sizeof(ip6);
	fi->tcp_len = bpf_ntohs(ip6.payload_len);
	fi->client.family = AF_INET6;
	__builtin_memcpy(fi->client.addr, &ip6.saddr, sizeof(ip6.saddr));
	return 0;
}

/* Returns the TCP header length read from the data offset at OFF, or 0. */
static __always_inline __u32 tcp_header_len(const void *ctx, __u32 off)
{
	__u8 doff;

	if (bpf_skb_load_bytes(ctx, off + TCP_DOFF_OFF, &doff, sizeof(doff)))
		return 0;
	return (doff >> 4) * 4;
}

/*
 * Copies up to TRIAGE_PEEK_LEN of the AVAIL payload bytes at OFF into BUF
 * and returns how many it copied.
 */
static __always_inline __u32 copy_payload(const void *ctx, __u32 off, __u32 avail, __u8 *buf)
{
	__u32 n = avail;

	if (n > TRIAGE_PEEK_LEN)
		n = TRIAGE_PEEK_LEN;
	/* the helper rejects a length of 0 */
	if (n == 0)
		return 0;
	/* N stays the same, but the verifier gets the bounds 1 <= N <= TRIAGE_PEEK_LEN */
	n = triage_index(n - 1, TRIAGE_PEEK_MASK) + 1;
	if (bpf_skb_load_bytes(ctx, off, buf, n))
		return 0;
	return n;
}

SEC("tc")
int classify_tc(struct __sk_buff *skb)
{
	struct classify_test_result *res;
	struct classify_scratch *s;
	struct frame_info fi = {};
	__u32 key = 0, tcp_hdr_len, len;
	int err;

	s = bpf_map_lookup_elem(&scratch, &key);
	res = bpf_map_lookup_elem(&result, &key);
	if (!s || !res)
		return TC_ACT_SHOT;

	if (skb->protocol == bpf_htons(ETH_P_IP))
		err = parse_ipv4(skb, &fi);
	else if (skb->protocol == bpf_htons(ETH_P_IPV6))
		err = parse_ipv6(skb, &fi);
	else
		err = -1;
	if (err)
		return TC_ACT_SHOT;

	tcp_hdr_len = tcp_header_len(skb, fi.tcp_off);
	if (tcp_hdr_len < 20 || tcp_hdr_len > fi.tcp_len)
		return TC_ACT_SHOT;
	len = copy_payload(skb, fi.tcp_off + tcp_hdr_len, fi.tcp_len - tcp_hdr_len,
			   s->peek.buf);

	res->parse_ret = triage_parse_peek(&s->peek, len, &res->req);
	res->category = triage_match_peek(&res->req, &s->peek, len, &fi.client, nr_rules);
	return TC_ACT_OK;
}

/* Reads the client address from the IP header, which precedes the skb data. */
static __always_inline int reuseport_client(struct sk_reuseport_md *md,
					    struct triage_client *client)
{
	if (md->eth_protocol == bpf_htons(ETH_P_IP)) {
		client->family = AF_INET;
		return bpf_skb_load_bytes_relative(md, offsetof(struct iphdr, saddr),
						   client->addr, 4, BPF_HDR_START_NET);
	}
	if (md->eth_protocol == bpf_htons(ETH_P_IPV6)) {
		client->family = AF_INET6;
		return bpf_skb_load_bytes_relative(md, offsetof(struct ipv6hdr, saddr),
						   client->addr, 16, BPF_HDR_START_NET);
	}
	return -1;
}

SEC("sk_reuseport")
int classify_reuseport(struct sk_reuseport_md *md)
{
	struct triage_client client = {};
	struct triage_http_req req = {};
	struct classify_scratch *s;
	__u32 key = 0, tcp_hdr_len, len = 0;

	s = bpf_map_lookup_elem(&scratch, &key);
	if (!s)
		return SK_PASS;
	reuseport_client(md, &client);

	/* offset 0 of the skb data is the TCP header here */
	tcp_hdr_len = tcp_header_len(md, 0);
	if (tcp_hdr_len >= 20 && tcp_hdr_len <= md->len)
		len = copy_payload(md, tcp_hdr_len, md->len - tcp_hdr_len, s->peek.buf);

	triage_parse_peek(&s->peek, len, &req);
	s->category = triage_match_peek(&req, &s->peek, len, &client, nr_rules);
	return SK_PASS;
}
