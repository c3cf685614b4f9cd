// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sk_lookup program for a port whose service listens without SO_REUSEPORT.
 * For each lookup of a new connection (the SYN, and with SYN cookies the
 * first data segment too) it decides from the client address alone, so both
 * lookups of one connection get the same result. It either leaves the
 * connection to the service's socket or assigns triage's entry socket, whose
 * reuseport group then picks a pool from the payload.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "triage.h"
#include "lookup.h"

#define AF_INET		2
#define AF_INET6	10

/* Set by the controller before load. */
const volatile __u16 port = 0;
/* The service's bound address; lookups for other local addresses pass untouched. */
const volatile __u32 bound_family = AF_INET;
/* Network byte order, IPv4 in the first word. */
const volatile __u32 bound_addr[4] = {};
const volatile __u8 bound_any = 1;
/* The pool that triage's group falls back to; no listener there means no assignment. */
const volatile __u32 fallback_pool = 0;

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} entry SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, TRIAGE_LOOKUP_MAX_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct triage_lookup_key);
	__type(value, __u32);
} prefixes SEC(".maps");

/* The controller points this at the pools map of triage.bpf.c before load. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TRIAGE_MAX_POOLS);
	__type(key, __u32);
	__type(value, struct triage_pool);
} pools SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct triage_lookup_stats);
} lookup_stats SEC(".maps");

static bool local_addr_matches(const struct bpf_sk_lookup *ctx)
{
	__u32 ip;

	if (bound_any)
		return true;
	if (ctx->family != bound_family)
		return false;
	if (ctx->family == AF_INET) {
		ip = ctx->local_ip4;
		barrier_var(ip);
		return ip == bound_addr[0];
	}
	/* Context fields are read at constant offsets only, so no loop here. */
	return ctx->local_ip6[0] == bound_addr[0] && ctx->local_ip6[1] == bound_addr[1] &&
	       ctx->local_ip6[2] == bound_addr[2] && ctx->local_ip6[3] == bound_addr[3];
}

static void client_key(const struct bpf_sk_lookup *ctx, struct triage_lookup_key *key)
{
	__u32 a[4] = {};

	/* The barriers keep clang from merging the two loads into one through a moved ctx pointer. */
	if (ctx->family == AF_INET) {
		a[2] = bpf_htonl(0xffff);
		a[3] = ctx->remote_ip4;
		barrier_var(a[3]);
	} else {
		a[0] = ctx->remote_ip6[0];
		a[1] = ctx->remote_ip6[1];
		a[2] = ctx->remote_ip6[2];
		a[3] = ctx->remote_ip6[3];
		barrier_var(a[3]);
	}
	key->prefixlen = 128;
	__builtin_memcpy(key->addr, a, 16);
}

static bool pool_has_listener(__u32 id)
{
	struct triage_pool *pool = bpf_map_lookup_elem(&pools, &id);

	return pool && pool->nr_slots > 0;
}

SEC("sk_lookup")
int triage_lookup(struct bpf_sk_lookup *ctx)
{
	struct triage_lookup_key key = {};
	struct triage_lookup_stats *st;
	struct bpf_sock *sk;
	__u32 zero = 0, *target;
	long err;

	if (ctx->protocol != IPPROTO_TCP || ctx->local_port != port)
		return SK_PASS;
	if (!local_addr_matches(ctx))
		return SK_PASS;
	st = bpf_map_lookup_elem(&lookup_stats, &zero);
	client_key(ctx, &key);
	target = bpf_map_lookup_elem(&prefixes, &key);
	if (!target || *target != TRIAGE_LOOKUP_POOLS) {
		if (st)
			st->to_service++;
		return SK_PASS;
	}
	/*
	 * Without a listener in the fallback pool, the group's kernel hash could
	 * pick the entry socket, which nobody accepts from.
	 */
	if (!pool_has_listener(fallback_pool)) {
		if (st)
			st->no_pool_listener++;
		return SK_PASS;
	}
	sk = bpf_map_lookup_elem(&entry, &zero);
	if (!sk) {
		if (st)
			st->no_pool_listener++;
		return SK_PASS;
	}
	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	if (st) {
		if (err)
			st->assign_err++;
		else
			st->to_pools++;
	}
	/* Fail open: an unassigned lookup continues to the service's socket. */
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
