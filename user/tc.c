// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <string.h>

#include <bpf/libbpf.h>

#include "tc.h"

static void tc_hook_init(struct bpf_tc_hook *hook, int ifindex)
{
	memset(hook, 0, sizeof(*hook));
	hook->sz = sizeof(*hook);
	hook->ifindex = ifindex;
	hook->attach_point = BPF_TC_INGRESS;
}

int tc_filter_exists(int ifindex, unsigned int handle)
{
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = handle, .priority = TRIAGE_TC_PRIO);
	struct bpf_tc_hook hook;
	int err;

	tc_hook_init(&hook, ifindex);
	err = bpf_tc_query(&hook, &opts);
	if (err == -ENOENT || err == -EINVAL)
		return 0;
	return err ? err : 1;
}

int tc_filter_add(int ifindex, int prog_fd, unsigned int handle, bool *hook_created,
		  bool *replaced)
{
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = handle, .priority = TRIAGE_TC_PRIO,
		    .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE);
	struct bpf_tc_hook hook;
	int err;

	tc_hook_init(&hook, ifindex);
	err = bpf_tc_hook_create(&hook);
	if (err && err != -EEXIST)
		return err;
	*hook_created = !err;
	/* A new qdisc has no filters, and querying it only logs a kernel error. */
	*replaced = !*hook_created && tc_filter_exists(ifindex, handle) == 1;
	err = bpf_tc_attach(&hook, &opts);
	if (err && *hook_created) {
		hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
		bpf_tc_hook_destroy(&hook);
		*hook_created = false;
	}
	return err;
}

void tc_hook_remove(int ifindex)
{
	struct bpf_tc_hook hook;

	tc_hook_init(&hook, ifindex);
	hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
	bpf_tc_hook_destroy(&hook);
}

int tc_filter_remove(int ifindex, unsigned int handle, unsigned int prio, bool hook_created)
{
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = handle, .priority = prio);
	struct bpf_tc_hook hook;
	int err;

	tc_hook_init(&hook, ifindex);
	err = bpf_tc_detach(&hook, &opts);
	/* Destroying both attach points removes the clsact qdisc itself. */
	if (hook_created)
		tc_hook_remove(ifindex);
	return err;
}
