// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * triage's kernel side for one port: the sk_reuseport selector, the tc
 * program that defers the handshake ACK, and the sockops connection tracker.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "triage.h"

#define AF_INET		2
#define AF_INET6	10
#define ETH_P_IP	0x0800
#define ETH_P_IPV6	0x86DD
/* Lets the next filter run: other ports' filters share our priority. */
#define TC_ACT_UNSPEC	(-1)
#define TC_ACT_SHOT	2

#define TCP_FLAG_FIN	0x01
#define TCP_FLAG_SYN	0x02
#define TCP_FLAG_RST	0x04
#define TCP_FLAG_ACK	0x10

/* Set by the controller before load. */
const volatile __u16 port = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct triage_port_conf);
} conf SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TRIAGE_MAX_RULES);
	__type(key, __u32);
	__type(value, struct triage_rule);
} rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TRIAGE_MAX_CATEGORIES);
	__type(key, __u32);
	__type(value, struct triage_category);
} categories SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TRIAGE_MAX_POOLS);
	__type(key, __u32);
	__type(value, struct triage_pool);
} pools SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
	__uint(max_entries, TRIAGE_MAX_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TRIAGE_MAX_CATEGORIES + 1);
	__type(key, __u32);
	__type(value, struct triage_steer_stats);
} category_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TRIAGE_MAX_POOLS);
	__type(key, __u32);
	__type(value, struct triage_steer_stats);
} pool_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TRIAGE_MAX_POOLS + 1);
	__type(key, __u32);
	__type(value, struct triage_conn_stats);
} conn_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct triage_defer_stats);
} defer_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TRIAGE_MAX_FLOWS);
	__type(key, struct triage_flow_key);
	__type(value, struct triage_flow);
} flows SEC(".maps");

/*
 * Pool of each recently closed connection, by 4-tuple. A SYN that reuses the
 * 4-tuple of a server-side TIME_WAIT socket gets no cookie, so its listener
 * is chosen without payload. With syn_placement: last_pool, the pool of that
 * 4-tuple's previous connection is used then.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TRIAGE_MAX_FLOWS);
	__type(key, struct triage_flow_key);
	__type(value, struct triage_flow);
} recent SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TRIAGE_MAX_SLOTS);
	__type(key, __u32);
	__type(value, struct triage_slot_stats);
} slot_stats SEC(".maps");

/*
 * Slot of each listener by socket cookie, written by the controller. When a
 * listener closes, the kernel runs the program for each queued connection,
 * and this map gives the pool that the closing listener served.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TRIAGE_MAX_SLOTS);
	__type(key, __u64);
	__type(value, __u32);
} listeners SEC(".maps");

/*
 * Connections whose request matched no rule, counted by first path segment
 * or by Host. The controller sets the size from the config before load and
 * turns a key with a sustained rate into a category of its own.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct triage_emerge_key);
	__type(value, __u64);
} emerge SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct triage_flow);
} conn_pool SEC(".maps");

static const struct triage_rule *triage_rule_at(__u32 index)
{
	return bpf_map_lookup_elem(&rules, &index);
}

#include "classify.h"

/* Per-CPU scratch space: the payload copy and the parsed request. */
struct scratch {
	struct triage_peek peek;
	struct triage_http_req req;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_map SEC(".maps");


static void count_steer(void *map, __u32 index, const struct triage_flow *flow)
{
	struct triage_steer_stats *st = bpf_map_lookup_elem(map, &index);

	if (!st)
		return;
	if (flow->flags & TRIAGE_FLOW_PAYLOAD)
		st->payload++;
	else
		st->syn++;
	if (flow->flags & TRIAGE_FLOW_DEFAULT)
		st->to_default++;
	if (flow->flags & TRIAGE_FLOW_HINT)
		st->syn_hinted++;
}

static void count_select_err(void *map, __u32 index)
{
	struct triage_steer_stats *st = bpf_map_lookup_elem(map, &index);

	if (st)
		st->select_err++;
}

/*
 * Picks one listener of POOL by the connection hash and stores its slot in
 * *SLOT; returns 0 when selected.
 */
static int select_pool(struct sk_reuseport_md *md, __u32 pool_id, __u32 *slot)
{
	struct triage_pool *pool = bpf_map_lookup_elem(&pools, &pool_id);
	__u32 n, i, key;

	if (!pool)
		return -1;
	n = pool->nr_slots;
	if (n == 0 || n > TRIAGE_MAX_WORKERS)
		return -1;
	i = md->hash % n;
	/* The verifier does not bound a modulo, so bound the index again. */
	barrier_var(i);
	if (i >= TRIAGE_MAX_WORKERS)
		return -1;
	key = pool->slot[i];
	if (bpf_sk_select_reuseport(md, &socks, &key, 0))
		return -1;
	*slot = key;
	return 0;
}

/* Copies the first path segment ("/name") or the Host of REQ into KEY. */
static bool emerge_key_of(__u32 kind, const struct triage_http_req *req,
			  struct triage_emerge_key *key)
{
	__u32 i, n;

	key->kind = kind;
	/*
	 * A key cut short would give a rule that never matches the requests it
	 * came from, so such keys are not counted at all.
	 */
	if (kind == TRIAGE_EMERGE_HOST) {
		if (!(req->flags & TRIAGE_REQ_HOST) || req->host_len == 0 ||
		    req->host_len >= TRIAGE_HOST_LEN - 1)
			return false;
		n = req->host_len < TRIAGE_HOST_LEN ? req->host_len : TRIAGE_HOST_LEN - 1;
		/* barrier_var() keeps clang from turning the copy into memcpy(). */
		for (i = 0; i < TRIAGE_HOST_LEN - 1 && i < n; i++) {
			barrier_var(i);
			key->text[i] = req->host[i];
		}
		key->len = n;
		return true;
	}
	if (req->path_len < 2 || req->path[0] != '/')
		return false;
	key->text[0] = '/';
	for (i = 1; i < TRIAGE_HOST_LEN - 1 && i < req->path_len && i < TRIAGE_PATH_LEN; i++) {
		barrier_var(i);
		if (req->path[i] == '/')
			break;
		key->text[i] = req->path[i];
	}
	key->len = i;
	if (i >= TRIAGE_HOST_LEN - 1 ||
	    (i == req->path_len && (req->flags & TRIAGE_REQ_PATH_TRUNCATED)))
		return false;
	return i > 1;
}

static void count_emerge(__u32 kind, const struct triage_http_req *req)
{
	struct triage_emerge_key key = {};
	__u64 first = 1, *count;

	if (!(req->flags & TRIAGE_REQ_HTTP) || !emerge_key_of(kind, req, &key))
		return;
	count = bpf_map_lookup_elem(&emerge, &key);
	if (count)
		__sync_fetch_and_add(count, 1);
	else
		bpf_map_update_elem(&emerge, &key, &first, BPF_NOEXIST);
}

/*
 * A listener of the group is closing: place one of its queued connections on
 * another listener of the same pool, else of the default pool, else let the
 * kernel hash among the remaining ones. Never drop: that would reset it.
 */
static int migrate(struct sk_reuseport_md *md, const struct triage_port_conf *pc)
{
	__u64 cookie = bpf_get_socket_cookie(md->sk);
	__u32 *slot = bpf_map_lookup_elem(&listeners, &cookie), chosen, pool;

	pool = slot ? *slot / TRIAGE_MAX_WORKERS : pc->default_pool;
	if (!select_pool(md, pool, &chosen))
		return SK_PASS;
	if (pool != pc->default_pool)
		select_pool(md, pc->default_pool, &chosen);
	return SK_PASS;
}

/* Reads the client and server addresses from the IP header into KEY and CLIENT. */
static int load_addrs(struct sk_reuseport_md *md, struct triage_flow_key *key,
		      struct triage_client *client)
{
	if (md->eth_protocol == bpf_htons(ETH_P_IP)) {
		if (bpf_skb_load_bytes_relative(md, offsetof(struct iphdr, saddr), key->saddr,
						8, BPF_HDR_START_NET))
			return -1;
		/* saddr and daddr are adjacent in the IPv4 header. */
		__builtin_memcpy(key->daddr, key->saddr + 4, 4);
		__builtin_memset(key->saddr + 4, 0, 4);
		key->family = AF_INET;
	} else if (md->eth_protocol == bpf_htons(ETH_P_IPV6)) {
		if (bpf_skb_load_bytes_relative(md, offsetof(struct ipv6hdr, saddr), key->saddr,
						16, BPF_HDR_START_NET))
			return -1;
		if (bpf_skb_load_bytes_relative(md, offsetof(struct ipv6hdr, daddr), key->daddr,
						16, BPF_HDR_START_NET))
			return -1;
		key->family = AF_INET6;
	} else {
		return -1;
	}
	client->family = key->family;
	__builtin_memcpy(client->addr, key->saddr, 16);
	return 0;
}

/* Copies up to TRIAGE_PEEK_LEN payload bytes; returns the count copied. */
static __u32 load_payload(struct sk_reuseport_md *md, __u32 offset, __u64 len, __u8 *buf)
{
	if (len > TRIAGE_PEEK_LEN)
		len = TRIAGE_PEEK_LEN;
	/* Keep clang from folding the clamp, so the verifier can bound len to 1..PEEK_LEN. */
	barrier_var(len);
	if (len == 0 || len > TRIAGE_PEEK_LEN)
		return 0;
	if (bpf_skb_load_bytes(md, offset, buf, len))
		return 0;
	return len;
}

/* Places a connection chosen without payload where its 4-tuple went last time. */
static void apply_hint(const struct triage_flow_key *key, struct triage_flow *flow)
{
	struct triage_flow *last = bpf_map_lookup_elem(&recent, key);

	if (!last || last->pool >= TRIAGE_MAX_POOLS)
		return;
	flow->pool = last->pool;
	flow->category = last->category;
	flow->flags = TRIAGE_FLOW_HINT | (last->category == TRIAGE_NO_CATEGORY ?
					  TRIAGE_FLOW_DEFAULT : 0);
}

/*
 * The migrate attach type makes the kernel call this program also for the
 * queued connections of a closing listener, so scale-down loses none.
 */
SEC("sk_reuseport/migrate")
int triage_select(struct sk_reuseport_md *md)
{
	struct triage_flow_key key = {};
	struct triage_client client = {};
	struct triage_flow flow = { .slot = TRIAGE_NO_SLOT };
	struct triage_port_conf *pc;
	struct triage_category *cat;
	struct scratch *s;
	struct tcphdr th;
	__u32 zero = 0, hlen, len = 0, cat_id;

	pc = bpf_map_lookup_elem(&conf, &zero);
	s = bpf_map_lookup_elem(&scratch_map, &zero);
	if (!pc || !s || md->ip_protocol != IPPROTO_TCP)
		return SK_PASS;
	if (md->migrating_sk)
		return migrate(md, pc);
	/* Offset 0 of an sk_reuseport skb is the TCP header. */
	if (bpf_skb_load_bytes(md, 0, &th, sizeof(th)))
		return SK_PASS;
	if (load_addrs(md, &key, &client))
		return SK_PASS;
	key.sport = bpf_ntohs(th.source);
	key.dport = bpf_ntohs(th.dest);

	hlen = th.doff * 4;
	if (pc->mode == TRIAGE_MODE_PAYLOAD && md->len > hlen)
		len = load_payload(md, hlen, (__u64)md->len - hlen, s->peek.buf);

	__builtin_memset(&s->req, 0, sizeof(s->req));
	if (len)
		triage_parse_peek(&s->peek, len, &s->req);
	cat_id = triage_match_peek(&s->req, &s->peek, len, &client, pc->nr_rules);

	cat = NULL;
	if (cat_id < TRIAGE_MAX_CATEGORIES)
		cat = bpf_map_lookup_elem(&categories, &cat_id);
	flow.flags = (len ? TRIAGE_FLOW_PAYLOAD : 0) | (cat ? 0 : TRIAGE_FLOW_DEFAULT);
	flow.category = cat ? cat_id : TRIAGE_NO_CATEGORY;
	flow.pool = cat ? cat->pool : pc->default_pool;
	if (!len && !cat && (pc->flags & TRIAGE_CONF_SYN_LAST_POOL))
		apply_hint(&key, &flow);
	if (len && !cat && pc->emerge_key)
		count_emerge(pc->emerge_key, &s->req);

	if (select_pool(md, flow.pool, &flow.slot)) {
		count_select_err(&pool_stats, flow.pool);
		count_select_err(&category_stats, cat ? cat_id : TRIAGE_OTHER_CATEGORY);
		/* Fail open: the default pool, then the kernel's own hash. */
		if (flow.pool == pc->default_pool ||
		    select_pool(md, pc->default_pool, &flow.slot))
			return SK_PASS;
		flow.pool = pc->default_pool;
	}
	/*
	 * The program runs for the SYN and again for the first data segment of a
	 * cookie connection, so the counting waits for the sockops program,
	 * which runs once per connection, with the last placement recorded here.
	 */
	bpf_map_update_elem(&flows, &key, &flow, BPF_ANY);
	return SK_PASS;
}

/*
 * Returns true for a TCP segment that is a bare ACK to our port. Headers are
 * read relative to the network header, so devices without an Ethernet header
 * (tun, WireGuard, ipip) and IPv4 options work too.
 */
static bool is_bare_ack(struct __sk_buff *skb, struct bpf_sock_tuple *tuple, __u32 *tuple_len)
{
	__u32 l4, total;
	struct tcphdr th;
	__u8 flags;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes_relative(skb, 0, &ip, sizeof(ip), BPF_HDR_START_NET))
			return false;
		/* A fragment carries no complete TCP header to judge. */
		if (ip.protocol != IPPROTO_TCP || ip.ihl < 5 || (ip.frag_off & bpf_htons(0x3fff)))
			return false;
		l4 = ip.ihl * 4;
		total = bpf_ntohs(ip.tot_len);
		tuple->ipv4.saddr = ip.saddr;
		tuple->ipv4.daddr = ip.daddr;
		*tuple_len = sizeof(tuple->ipv4);
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes_relative(skb, 0, &ip6, sizeof(ip6), BPF_HDR_START_NET))
			return false;
		/* Extension headers are not followed: such segments pass untouched. */
		if (ip6.nexthdr != IPPROTO_TCP)
			return false;
		l4 = sizeof(ip6);
		total = l4 + bpf_ntohs(ip6.payload_len);
		__builtin_memcpy(tuple->ipv6.saddr, &ip6.saddr, 16);
		__builtin_memcpy(tuple->ipv6.daddr, &ip6.daddr, 16);
		*tuple_len = sizeof(tuple->ipv6);
	} else {
		return false;
	}
	if (bpf_skb_load_bytes_relative(skb, l4, &th, sizeof(th), BPF_HDR_START_NET))
		return false;
	if (th.dest != bpf_htons(port) || total != l4 + th.doff * 4)
		return false;
	if (*tuple_len == sizeof(tuple->ipv4)) {
		tuple->ipv4.sport = th.source;
		tuple->ipv4.dport = th.dest;
	} else {
		tuple->ipv6.sport = th.source;
		tuple->ipv6.dport = th.dest;
	}
	flags = ((__u8 *)&th)[13];
	return (flags & (TCP_FLAG_SYN | TCP_FLAG_FIN | TCP_FLAG_RST | TCP_FLAG_ACK)) == TCP_FLAG_ACK;
}

SEC("tc")
int triage_defer(struct __sk_buff *skb)
{
	struct triage_defer_stats *st;
	struct bpf_sock_tuple tuple = {};
	struct bpf_sock *sk;
	__u32 tuple_len = 0, zero = 0;
	bool listener;

	if (!is_bare_ack(skb, &tuple, &tuple_len))
		return TC_ACT_UNSPEC;
	sk = bpf_skc_lookup_tcp(skb, &tuple, tuple_len, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return TC_ACT_UNSPEC;
	listener = sk->state == BPF_TCP_LISTEN;
	bpf_sk_release(sk);

	st = bpf_map_lookup_elem(&defer_stats, &zero);
	if (!listener) {
		if (st)
			st->acks_passed++;
		return TC_ACT_UNSPEC;
	}
	/*
	 * Only a listener matches, so this ACK completes a SYN-cookie handshake.
	 * Dropping it makes the first data segment create the connection.
	 */
	if (st)
		st->acks_dropped++;
	return TC_ACT_SHOT;
}

static void flow_key_from_sockops(struct bpf_sock_ops *skops, struct triage_flow_key *key)
{
	key->family = skops->family;
	if (skops->family == AF_INET) {
		__builtin_memcpy(key->saddr, &skops->remote_ip4, 4);
		__builtin_memcpy(key->daddr, &skops->local_ip4, 4);
	} else if (skops->remote_ip6[0] == 0 && skops->remote_ip6[1] == 0 &&
		   skops->remote_ip6[2] == bpf_htonl(0xffff)) {
		/* An IPv4 client of a dual-stack listener: the selector keyed it as IPv4. */
		__u32 a;

		key->family = AF_INET;
		a = skops->remote_ip6[3];
		__builtin_memcpy(key->saddr, &a, 4);
		a = skops->local_ip6[3];
		__builtin_memcpy(key->daddr, &a, 4);
	} else {
		__u32 a[4];

		a[0] = skops->remote_ip6[0];
		a[1] = skops->remote_ip6[1];
		a[2] = skops->remote_ip6[2];
		a[3] = skops->remote_ip6[3];
		__builtin_memcpy(key->saddr, a, 16);
		a[0] = skops->local_ip6[0];
		a[1] = skops->local_ip6[1];
		a[2] = skops->local_ip6[2];
		a[3] = skops->local_ip6[3];
		__builtin_memcpy(key->daddr, a, 16);
	}
	/* remote_port is in network byte order in the upper half, local_port in host order. */
	key->sport = bpf_ntohl(skops->remote_port);
	key->dport = skops->local_port;
}

static void count_slot(__u32 slot, bool established)
{
	struct triage_slot_stats *st;

	if (slot >= TRIAGE_MAX_SLOTS)
		return;
	st = bpf_map_lookup_elem(&slot_stats, &slot);
	if (!st)
		return;
	if (established)
		st->established++;
	else
		st->closed++;
}

static void on_established(struct bpf_sock_ops *skops)
{
	struct triage_flow_key key = {};
	struct triage_flow *flow, *stored;
	struct triage_conn_stats *st;
	struct bpf_sock *sk = skops->sk;
	__u32 pool = TRIAGE_UNKNOWN_POOL, cat;

	if (!sk)
		return;
	flow_key_from_sockops(skops, &key);
	flow = bpf_map_lookup_elem(&flows, &key);
	if (flow && flow->pool < TRIAGE_MAX_POOLS) {
		pool = flow->pool;
		cat = flow->category < TRIAGE_MAX_CATEGORIES ? flow->category :
							      TRIAGE_OTHER_CATEGORY;
		count_steer(&pool_stats, pool, flow);
		count_steer(&category_stats, cat, flow);
	}
	stored = bpf_sk_storage_get(&conn_pool, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (stored) {
		stored->pool = pool;
		stored->category = flow ? flow->category : TRIAGE_NO_CATEGORY;
		stored->flags = flow ? flow->flags : 0;
		stored->slot = flow && pool != TRIAGE_UNKNOWN_POOL ? flow->slot : TRIAGE_NO_SLOT;
		count_slot(stored->slot, true);
	}
	if (flow)
		bpf_map_delete_elem(&flows, &key);

	st = bpf_map_lookup_elem(&conn_stats, &pool);
	if (st) {
		st->established++;
		if (pool == TRIAGE_UNKNOWN_POOL)
			st->unknown++;
	}
	bpf_sock_ops_cb_flags_set(skops, BPF_SOCK_OPS_STATE_CB_FLAG);
}

static void on_close(struct bpf_sock_ops *skops)
{
	struct triage_conn_stats *st;
	struct triage_flow *stored;
	struct bpf_sock *sk = skops->sk;
	__u32 pool;

	if (!sk)
		return;
	stored = bpf_sk_storage_get(&conn_pool, sk, NULL, 0);
	if (!stored)
		return;
	pool = stored->pool;
	count_slot(stored->slot, false);
	st = bpf_map_lookup_elem(&conn_stats, &pool);
	if (st) {
		st->closed++;
		st->bytes_in += skops->bytes_received;
		st->bytes_out += skops->bytes_acked;
	}
	if (pool < TRIAGE_MAX_POOLS) {
		struct triage_flow_key key = {};

		flow_key_from_sockops(skops, &key);
		bpf_map_update_elem(&recent, &key, stored, BPF_ANY);
	}
	bpf_sk_storage_delete(&conn_pool, sk);
}

SEC("sockops")
int triage_sockops(struct bpf_sock_ops *skops)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		if (skops->local_port == port)
			on_established(skops);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == BPF_TCP_CLOSE)
			on_close(skops);
		break;
	}
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
