/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Map keys and values shared by the BPF programs and the controller.
 * Only fixed-width types and explicitly padded structs live here, so both
 * sides see one layout.
 */
#ifndef TRIAGE_H
#define TRIAGE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define TRIAGE_NAME_LEN		32
#define TRIAGE_MAX_POOLS	16
/* Listeners per pool, so the socket array has MAX_POOLS * MAX_WORKERS slots. */
#define TRIAGE_MAX_WORKERS	32
#define TRIAGE_MAX_SLOTS	(TRIAGE_MAX_POOLS * TRIAGE_MAX_WORKERS)
#define TRIAGE_MAX_CATEGORIES	32
#define TRIAGE_MAX_RULES	64

/* Payload bytes that the classifier copies out of the first segment. */
#define TRIAGE_PEEK_LEN		512
/* A rule's path is at most PATH_LEN - 1 bytes, so the byte after it is stored. */
#define TRIAGE_PATH_LEN		64
#define TRIAGE_HOST_LEN		64
#define TRIAGE_RAW_LEN		32

/* Methods are case-sensitive tokens; each has one bit. */
enum triage_method {
	TRIAGE_METHOD_GET	= 1 << 0,
	TRIAGE_METHOD_HEAD	= 1 << 1,
	TRIAGE_METHOD_POST	= 1 << 2,
	TRIAGE_METHOD_PUT	= 1 << 3,
	TRIAGE_METHOD_DELETE	= 1 << 4,
	TRIAGE_METHOD_OPTIONS	= 1 << 5,
	TRIAGE_METHOD_PATCH	= 1 << 6,
	TRIAGE_METHOD_CONNECT	= 1 << 7,
	TRIAGE_METHOD_TRACE	= 1 << 8,
};

/* Conditions of a rule; every bit set in triage_rule.match must hold. */
enum triage_match {
	TRIAGE_MATCH_METHOD		= 1 << 0,
	TRIAGE_MATCH_PATH		= 1 << 1,
	TRIAGE_MATCH_HOST		= 1 << 2,
	TRIAGE_MATCH_HOST_SUFFIX	= 1 << 3,
	TRIAGE_MATCH_CLEN_ABOVE		= 1 << 4,
	TRIAGE_MATCH_CLEN_BELOW		= 1 << 5,
	TRIAGE_MATCH_RAW		= 1 << 6,
	TRIAGE_MATCH_CLIENT		= 1 << 7,
};

/* Protocol that a rule parses; TLS and UDP get their own values later. */
enum triage_proto {
	TRIAGE_PROTO_ANY	= 0,
	TRIAGE_PROTO_HTTP	= 1,
};

enum triage_mode {
	TRIAGE_MODE_PAYLOAD	= 0,
	TRIAGE_MODE_CONNECTION	= 1,
};

/*
 * One classification rule. The rules map stores them in evaluation order
 * (the controller sorts by priority), so the first match wins.
 */
struct triage_rule {
	__u32 match;			/* TRIAGE_MATCH_* bits */
	__u32 category;			/* index into the categories map */
	__u32 methods;			/* TRIAGE_METHOD_* bits, any of them matches */
	__u8 proto;			/* enum triage_proto */
	__u8 raw_len;			/* bytes of raw[] to compare */
	__u16 raw_offset;		/* payload offset of raw[] */
	__u16 path_len;
	__u16 host_len;
	__u8 client_family;		/* AF_INET or AF_INET6 */
	__u8 client_prefixlen;
	__u8 pad[6];
	__u64 clen_above;		/* Content-Length > clen_above */
	__u64 clen_below;		/* Content-Length < clen_below */
	__u8 client_addr[16];		/* network byte order, IPv4 in the first 4 bytes */
	char path[TRIAGE_PATH_LEN];	/* prefix matched at '/' boundaries */
	char host[TRIAGE_HOST_LEN];	/* lower case, without port */
	__u8 raw[TRIAGE_RAW_LEN];
};

/* Fields the HTTP parser extracted from the first payload bytes. */
enum triage_req_flags {
	TRIAGE_REQ_HTTP		= 1 << 0,	/* a request line was recognized */
	TRIAGE_REQ_HOST		= 1 << 1,	/* a Host header was seen */
	TRIAGE_REQ_CLEN		= 1 << 2,	/* a Content-Length header was seen */
	TRIAGE_REQ_TRUNCATED	= 1 << 3,	/* the headers did not end in the segment */
	TRIAGE_REQ_PATH_TRUNCATED = 1 << 4,	/* the segment ended inside the target */
};

struct triage_http_req {
	__u32 method;			/* one TRIAGE_METHOD_* bit, 0 if unknown */
	__u32 flags;			/* enum triage_req_flags */
	__u64 content_length;
	__u16 path_len;			/* stored bytes of path[] */
	__u16 host_len;			/* stored bytes of host[] */
	__u32 pad;
	char path[TRIAGE_PATH_LEN];	/* origin-form path without query */
	char host[TRIAGE_HOST_LEN];	/* lower case, without port */
};

enum triage_conf_flags {
	/* Place SYN-time connections with no matching rule by the 4-tuple's last pool. */
	TRIAGE_CONF_SYN_LAST_POOL	= 1 << 0,
};

/* Global settings of one attached port: array map with one entry. */
struct triage_port_conf {
	__u32 nr_rules;
	__u32 default_pool;
	__u32 mode;			/* enum triage_mode */
	__u32 flags;			/* enum triage_conf_flags */
	__u32 emerge_key;		/* enum triage_emerge_kind, 0 = not counted */
	__u32 pad;
};

/* Key kind by which the emerge map counts requests that match no rule. */
enum triage_emerge_kind {
	TRIAGE_EMERGE_PATH	= 1,	/* first path segment, with its leading '/' */
	TRIAGE_EMERGE_HOST	= 2,	/* Host header, lower case, without port */
};

/* Key of the emerge map; text is zero-padded so equal keys compare equal. */
struct triage_emerge_key {
	__u32 kind;			/* enum triage_emerge_kind */
	__u32 len;
	char text[TRIAGE_HOST_LEN];
};

/* A category maps to the pool that serves it. */
struct triage_category {
	__u32 pool;
	__u32 pad;
	char name[TRIAGE_NAME_LEN];
};

/*
 * A pool's listeners: slot[] contains socket-array indices. The controller
 * rewrites the whole value when a worker starts or stops.
 */
struct triage_pool {
	__u32 nr_slots;
	__u32 pad;
	__u32 slot[TRIAGE_MAX_WORKERS];
	char name[TRIAGE_NAME_LEN];
};

/*
 * Per-CPU counters of one category or pool, summed by the reader. The
 * sockops program counts each established connection once, in payload or
 * in syn, from how its listener was chosen; to_default counts a subset of
 * those. select_err counts failed selections of the reuseport program.
 */
struct triage_steer_stats {
	__u64 payload;			/* listener chosen with the first data segment in hand */
	__u64 syn;			/* listener chosen without payload, at SYN time */
	__u64 to_default;		/* no rule matched, so the default pool took it */
	__u64 select_err;		/* bpf_sk_select_reuseport() failed */
	__u64 syn_hinted;		/* of syn: placed by the last pool of the same 4-tuple */
};

/* Counters of the tc deferral program. */
struct triage_defer_stats {
	__u64 acks_dropped;		/* bare handshake ACKs dropped */
	__u64 acks_passed;		/* bare ACKs of existing connections */
};

struct triage_conn_stats {
	__u64 established;
	__u64 closed;
	__u64 bytes_in;
	__u64 bytes_out;
	__u64 unknown;			/* established with no recorded pool */
};

/* Key of the hand-off from the reuseport program to the sockops program. */
struct triage_flow_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;			/* host byte order */
	__u16 dport;			/* host byte order */
	__u32 family;
};

enum triage_flow_flags {
	TRIAGE_FLOW_PAYLOAD	= 1 << 0,	/* chosen from payload bytes */
	TRIAGE_FLOW_DEFAULT	= 1 << 1,	/* no rule matched */
	TRIAGE_FLOW_HINT	= 1 << 2,	/* placed by the 4-tuple's last pool */
};

/* Placement of a connection by the reuseport program, kept until it closes. */
struct triage_flow {
	__u32 pool;
	__u32 category;			/* TRIAGE_NO_CATEGORY when no rule matched */
	__u32 flags;			/* enum triage_flow_flags */
	__u32 slot;			/* socket-array index chosen, TRIAGE_NO_SLOT if none */
};

/*
 * Per-CPU counters of one listener slot, from which the controller computes
 * active connections per worker. A connection that migrates to another listener
 * stays counted on the slot that first took it.
 */
struct triage_slot_stats {
	__u64 established;
	__u64 closed;
};

#define TRIAGE_NO_CATEGORY	0xffffffffu
#define TRIAGE_NO_SLOT		0xffffffffu
/* Index of the counters for connections that no rule or pool accounts for. */
#define TRIAGE_OTHER_CATEGORY	TRIAGE_MAX_CATEGORIES
#define TRIAGE_UNKNOWN_POOL	TRIAGE_MAX_POOLS
/* Entries of the flows map, the reuseport to sockops hand-off. */
#define TRIAGE_MAX_FLOWS	65536

#endif /* TRIAGE_H */
