/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Layouts shared by the sk_lookup program and the controller, for a port
 * that triage steers next to a service whose sockets lack SO_REUSEPORT.
 */
#ifndef TRIAGE_LOOKUP_H
#define TRIAGE_LOOKUP_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Client prefixes; the longest match decides between the service and triage's pools. */
#define TRIAGE_LOOKUP_MAX_PREFIXES	256

/*
 * Key of the prefixes LPM trie. An IPv4 address is stored as an IPv4-mapped
 * IPv6 address (::ffff:a.b.c.d), with 96 added to its prefix length.
 */
struct triage_lookup_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* Value of the prefixes trie. */
enum triage_lookup_target {
	TRIAGE_LOOKUP_SERVICE	= 0,	/* the service's own socket */
	TRIAGE_LOOKUP_POOLS	= 1,	/* triage's reuseport group, through the entry socket */
};

/* Counters of the sk_lookup program, per CPU. */
struct triage_lookup_stats {
	__u64 to_service;		/* lookups left to the service's socket */
	__u64 to_pools;			/* lookups assigned to triage's entry socket */
	__u64 no_pool_listener;		/* a prefix asked for triage's pools, none had a listener */
	__u64 assign_err;		/* bpf_sk_assign() failed */
};

#endif /* TRIAGE_LOOKUP_H */
