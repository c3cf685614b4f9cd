// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* BPF objects of one port: load, pin, fill the maps, attach. */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "attach.h"
#include "controller.h"
#include "log.h"
#include "sysutil.h"
#include "tc.h"
#include "triage.skel.h"

static int load_error(struct controller *ctl, int err)
{
	if (err == -EPERM || err == -EACCES)
		pr_err("port %u: loading BPF programs not permitted (%s); triage needs root with CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN, and no seccomp or LSM policy that blocks bpf()",
		       ctl->cfg->port, strerror(-err));
	else
		pr_err("port %u: failed to load BPF programs: %s (the verifier log, if any, is above)",
		       ctl->cfg->port, strerror(-err));
	return err;
}

static int pin_all(struct controller *ctl)
{
	struct bpf_program *prog;
	struct bpf_map *map;
	char path[512];
	int err;

	err = mkdir_p(ctl->pin_dir, 0700);
	if (err) {
		pr_err("pins %s: failed to create folder: %s", ctl->pin_dir, strerror(-err));
		return err;
	}
	bpf_object__for_each_map(map, ctl->skel->obj) {
		if (bpf_map__is_internal(map))
			continue;
		snprintf(path, sizeof(path), "%s/%s", ctl->pin_dir, bpf_map__name(map));
		err = bpf_map__pin(map, path);
		if (err) {
			pr_err("pins %s: failed to pin map: %s", path, strerror(-err));
			return err;
		}
	}
	bpf_object__for_each_program(prog, ctl->skel->obj) {
		snprintf(path, sizeof(path), "%s/%s", ctl->pin_dir, bpf_program__name(prog));
		err = bpf_program__pin(prog, path);
		if (err) {
			pr_err("pins %s: failed to pin program: %s", path, strerror(-err));
			return err;
		}
	}
	return 0;
}

int port_bpf_publish_conf(struct controller *ctl)
{
	struct config *cfg = ctl->cfg;
	struct triage_port_conf pc = {
		.nr_rules = cfg->nr_rules,
		.default_pool = cfg->default_pool,
		.mode = cfg->mode,
		.flags = cfg->syn_last_pool ? TRIAGE_CONF_SYN_LAST_POOL : 0,
		.emerge_key = cfg->emerge.key == EMERGE_PATH ? TRIAGE_EMERGE_PATH :
			      cfg->emerge.key == EMERGE_HOST ? TRIAGE_EMERGE_HOST : 0,
	};
	__u32 key = 0;

	if (bpf_map_update_elem(bpf_map__fd(ctl->skel->maps.conf), &key, &pc, BPF_ANY))
		return -errno;
	return 0;
}

int port_bpf_publish_rule(struct controller *ctl, int index)
{
	__u32 key = index;

	if (bpf_map_update_elem(bpf_map__fd(ctl->skel->maps.rules), &key,
				&ctl->cfg->rules[index].rule, BPF_ANY))
		return -errno;
	return 0;
}

/* A category with an empty name is a removed one; it points at the default pool. */
int port_bpf_publish_category(struct controller *ctl, int index)
{
	const struct category_config *cc = &ctl->cfg->categories[index];
	struct triage_category c = { .pool = cc->name[0] ? cc->pool : ctl->cfg->default_pool };
	__u32 key = index;

	memcpy(c.name, cc->name, sizeof(c.name));
	if (bpf_map_update_elem(bpf_map__fd(ctl->skel->maps.categories), &key, &c, BPF_ANY))
		return -errno;
	return 0;
}

int port_bpf_publish_listener(struct controller *ctl, __u64 cookie, __u32 slot)
{
	if (bpf_map_update_elem(bpf_map__fd(ctl->skel->maps.listeners), &cookie, &slot, BPF_ANY))
		return -errno;
	return 0;
}

void port_bpf_forget_listener(struct controller *ctl, __u64 cookie)
{
	bpf_map_delete_elem(bpf_map__fd(ctl->skel->maps.listeners), &cookie);
}

static int fill_rules(struct controller *ctl)
{
	struct config *cfg = ctl->cfg;
	int i, err;

	for (i = 0; i < cfg->nr_rules; i++) {
		err = port_bpf_publish_rule(ctl, i);
		if (err)
			return err;
	}
	for (i = 0; i < cfg->nr_categories; i++) {
		err = port_bpf_publish_category(ctl, i);
		if (err)
			return err;
	}
	return port_bpf_publish_conf(ctl);
}

int port_bpf_publish_pool(struct controller *ctl, struct pool *pool)
{
	struct triage_pool val = {};
	const struct worker *w;
	int i;

	if (!pool->active)
		return bpf_map_update_elem(bpf_map__fd(ctl->skel->maps.pools), &pool->id, &val,
					   BPF_ANY) ? -errno : 0;
	memcpy(val.name, pool->cfg->name, sizeof(val.name));
	/* Only running workers in the pool take new connections, so draining ones only finish theirs. */
	for (i = 0; i < TRIAGE_MAX_WORKERS; i++) {
		w = &pool->workers[i];
		if ((w->pid > 0 && w->in_pool && w->state == W_RUNNING) || (w->parked && w->lfd >= 0))
			val.slot[val.nr_slots++] = w->slot;
	}
	attach_pool_slots(ctl, pool, &val);
	if (bpf_map_update_elem(bpf_map__fd(ctl->skel->maps.pools), &pool->id, &val, BPF_ANY)) {
		pr_err("pool '%s': failed to update the pools map: %s", pool->cfg->name,
		       strerror(errno));
		return -errno;
	}
	return 0;
}

int port_bpf_setup(struct controller *ctl)
{
	int i, err;

	ctl->skel = triage_bpf__open();
	if (!ctl->skel)
		return load_error(ctl, -errno);
	ctl->skel->rodata->port = ctl->cfg->port;
	if (ctl->cfg->emerge.key && ctl->cfg->emerge.table_size)
		bpf_map__set_max_entries(ctl->skel->maps.emerge, ctl->cfg->emerge.table_size);
	err = triage_bpf__load(ctl->skel);
	if (err)
		return load_error(ctl, err);

	err = state_add(&ctl->st, "pins %s", ctl->pin_dir);
	if (!err)
		err = pin_all(ctl);
	if (err)
		return err;
	err = fill_rules(ctl);
	for (i = 0; !err && i < ctl->nr_pools; i++)
		err = port_bpf_publish_pool(ctl, &ctl->pools[i]);
	if (err) {
		pr_err("port %u: failed to fill the rule maps: %s", ctl->cfg->port, strerror(-err));
		return err;
	}
	pr_info("port %u: BPF programs loaded (rules %d, categories %d, pools %d), pinned at %s",
		ctl->cfg->port, ctl->cfg->nr_rules, ctl->cfg->nr_categories, ctl->nr_pools,
		ctl->pin_dir);
	return 0;
}

void port_bpf_close(struct controller *ctl)
{
	if (ctl->sockops_fd >= 0)
		close(ctl->sockops_fd);
	ctl->sockops_fd = -1;
	triage_bpf__destroy(ctl->skel);
	ctl->skel = NULL;
}

int port_sockops_attach(struct controller *ctl)
{
	char path[512];
	int cg_fd, fd, err;

	cg_fd = open(ctl->port_cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg_fd < 0) {
		err = -errno;
		pr_err("cgroup %s: failed to open for sockops: %s", ctl->port_cgroup, strerror(errno));
		return err;
	}
	fd = bpf_link_create(bpf_program__fd(ctl->skel->progs.triage_sockops), cg_fd,
			     BPF_CGROUP_SOCK_OPS, NULL);
	err = fd < 0 ? -errno : 0;
	close(cg_fd);
	if (err) {
		pr_err("cgroup %s: failed to attach the sockops program: %s", ctl->port_cgroup,
		       strerror(-err));
		return err;
	}
	ctl->sockops_fd = fd;
	/* Pinned, the link outlives a crashed controller, as the other programs do. */
	snprintf(path, sizeof(path), "%s/sockops_link", ctl->pin_dir);
	if (bpf_obj_pin(fd, path)) {
		err = -errno;
		pr_err("pins %s: failed to pin the sockops link: %s", path, strerror(errno));
		return err;
	}
	pr_info("cgroup %s: sockops program attached", ctl->port_cgroup);
	return 0;
}

static int tc_attach_one(struct controller *ctl, const char *ifname)
{
	unsigned int ifindex = if_nametoindex(ifname);
	bool created = false, replaced = false;
	int err;

	if (!ifindex) {
		pr_err("interface '%s': not found in this network namespace; fix 'interfaces' in %s",
		       ifname, ctl->cfg->file);
		return -ENODEV;
	}
	err = tc_filter_add(ifindex, bpf_program__fd(ctl->skel->progs.triage_defer),
			    ctl->cfg->port, &created, &replaced);
	if (err) {
		pr_err("interface %s: failed to attach the tc ingress filter: %s", ifname,
		       strerror(-err));
		return err;
	}
	err = state_add(&ctl->st, "tc %u %u %u %d %s", ifindex, ctl->cfg->port, TRIAGE_TC_PRIO,
			created, ifname);
	if (replaced)
		pr_warn("interface %s: replaced a stale tc filter handle %u prio %u left by an earlier run",
			ifname, ctl->cfg->port, TRIAGE_TC_PRIO);
	pr_info("interface %s: tc ingress filter attached (handle %u prio %u%s)", ifname,
		ctl->cfg->port, TRIAGE_TC_PRIO, created ? ", clsact qdisc created" : "");
	return err;
}

int port_tc_setup(struct controller *ctl)
{
	struct if_nameindex *ifs, *it;
	int i, err = 0;

	if (ctl->cfg->nr_ifaces) {
		for (i = 0; !err && i < ctl->cfg->nr_ifaces; i++)
			err = tc_attach_one(ctl, ctl->cfg->ifaces[i]);
		return err;
	}
	ifs = if_nameindex();
	if (!ifs) {
		err = -errno;
		pr_err("port %u: failed to list interfaces: %s", ctl->cfg->port, strerror(errno));
		return err;
	}
	for (it = ifs; !err && it->if_index; it++)
		err = tc_attach_one(ctl, it->if_name);
	if_freenameindex(ifs);
	return err;
}

/* Sets sysctl NAME to VALUE in this namespace, recording the old value for the undo. */
int port_sysctl_set(struct controller *ctl, const char *name, const char *value,
		    const char *why)
{
	char old[64];
	int err;

	err = sysctl_read(name, old, sizeof(old));
	if (err) {
		pr_err("sysctl %s: failed to read: %s", name, strerror(-err));
		return err;
	}
	if (!strcmp(old, value)) {
		pr_info("sysctl %s: already %s in network namespace net:[%lu]", name, value,
			netns_inode());
		return 0;
	}
	err = state_add(&ctl->st, "sysctl %s %s", name, old);
	if (!err)
		err = sysctl_write(name, value);
	if (err) {
		pr_err("sysctl %s: failed to set %s: %s", name, value, strerror(-err));
		return err;
	}
	pr_info("sysctl %s: %s -> %s in network namespace net:[%lu], %s; restored on stop",
		name, old, value, netns_inode(), why);
	return 0;
}

int port_sysctl_setup(struct controller *ctl)
{
	const char *name = "net.ipv4.tcp_syncookies";
	char old[64];
	int err;

	err = sysctl_read(name, old, sizeof(old));
	if (err) {
		pr_err("sysctl %s: failed to read: %s", name, strerror(-err));
		return err;
	}
	if (!strcmp(old, "2")) {
		pr_info("sysctl %s: already 2 in network namespace net:[%lu]", name,
			netns_inode());
		return 0;
	}
	err = state_add(&ctl->st, "sysctl %s %s", name, old);
	if (!err)
		err = sysctl_write(name, "2");
	if (err) {
		pr_err("sysctl %s: failed to set 2: %s", name, strerror(-err));
		return err;
	}
	pr_info("sysctl %s: %s -> 2 in network namespace net:[%lu], so every SYN gets a cookie; restored on stop",
		name, old, netns_inode());
	return 0;
}
