// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Steering a port that a running service listens on, and giving it back:
 * the reuseport group mechanism, the sk_lookup mechanism, moving the
 * service's processes into its pool's cgroups, and the undo of each.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "attach.h"
#include "controller.h"
#include "log.h"
#include "lookup.h"
#include "lookup.skel.h"
#include "sysutil.h"
#include "triage.skel.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open		434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd		438
#endif
#ifndef SO_DETACH_REUSEPORT_BPF
#define SO_DETACH_REUSEPORT_BPF	68
#endif
/* Time for connections already steered to triage's listeners to be accepted. */
#define RELEASE_SETTLE_MS	300
#define MAX_SERVICE_PROCS	256

static const char *mech_name(enum attach_mech mech)
{
	return mech == ATTACH_REUSEPORT ? "reuseport" : "sk_lookup";
}

void attach_pool_slots(const struct controller *ctl, const struct pool *pool,
		       struct triage_pool *val)
{
	const struct attach *at = ctl->attach;
	int i;

	if (!at || !at->in_array || at->pool != (int)pool->id)
		return;
	for (i = 0; i < at->nr_socks && val->nr_slots < TRIAGE_MAX_WORKERS; i++)
		if (at->socks[i].fd >= 0)
			val->slot[val->nr_slots++] = at->socks[i].slot;
}

/* Puts the service's sockets in the socket array at their slots, and undoes that on error. */
static int put_service_socks(struct controller *ctl)
{
	struct attach *at = ctl->attach;
	int socks_fd = bpf_map__fd(ctl->skel->maps.socks);
	__u64 value;
	int i, err;

	for (i = 0; i < at->nr_socks; i++) {
		value = at->socks[i].fd;
		if (!bpf_map_update_elem(socks_fd, &at->socks[i].slot, &value, BPF_ANY))
			continue;
		err = -errno;
		attach_error("port %u: failed to put the service's fd %d in the socket array at slot %u: %s; another program may hold the socket (sk_user_data in use)",
			     ctl->cfg->port, at->socks[i].target_fd, at->socks[i].slot,
			     strerror(-err));
		while (--i >= 0)
			bpf_map_delete_elem(socks_fd, &at->socks[i].slot);
		return err;
	}
	at->in_array = true;
	return 0;
}

static void remove_service_socks(struct controller *ctl)
{
	struct attach *at = ctl->attach;
	int i;

	at->in_array = false;
	for (i = 0; i < at->nr_socks; i++)
		bpf_map_delete_elem(bpf_map__fd(ctl->skel->maps.socks), &at->socks[i].slot);
}

static int join_reuseport_group(struct controller *ctl)
{
	struct attach *at = ctl->attach;
	int prog_fd = bpf_program__fd(ctl->skel->progs.triage_select);
	int i, err;

	for (i = 0; i < at->nr_socks; i++)
		at->socks[i].slot = at->pool * TRIAGE_MAX_WORKERS + i;
	err = put_service_socks(ctl);
	if (!err)
		err = port_bpf_publish_pool(ctl, &ctl->pools[at->pool]);
	if (err)
		return err;
	err = state_add(&ctl->st, "attach-group %d %llu %lu", at->pid, at->start_time,
			at->socks[0].inode);
	if (!err && setsockopt(at->socks[0].fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &prog_fd,
			       sizeof(prog_fd)))
		err = -errno;
	if (err) {
		pr_err("port %u: failed to attach the reuseport program to the service's group: %s",
		       ctl->cfg->port, strerror(-err));
		return err;
	}
	pr_info("port %u: reuseport program attached to the group of process %d; its %d socket%s form pool '%s'",
		ctl->cfg->port, at->pid, at->nr_socks, at->nr_socks == 1 ? "" : "s",
		ctl->cfg->pools[at->pool].name);
	return 0;
}

/* The group's default pool on an sk_lookup port must be one of triage's pools. */
static int pick_fallback_pool(struct controller *ctl)
{
	struct attach *at = ctl->attach;
	int i;

	if (ctl->cfg->default_pool != at->pool) {
		at->fallback_pool = ctl->cfg->default_pool;
		return 0;
	}
	for (i = 0; i < ctl->nr_pools; i++)
		if (i != at->pool) {
			at->fallback_pool = i;
			pr_info("port %u: the default pool '%s' is the service's, so triage's group falls back to pool '%s'",
				ctl->cfg->port, ctl->cfg->pools[at->pool].name,
				ctl->cfg->pools[i].name);
			return 0;
		}
	pr_err("port %u: the service's socket has no SO_REUSEPORT, so triage's pools form a group of their own, but the config has no pool besides '%s'; add a pool with a command",
	       ctl->cfg->port, ctl->cfg->pools[at->pool].name);
	return -EINVAL;
}

static void fill_sockaddr(const struct config *cfg, uint16_t port, struct sockaddr_storage *ss,
			  socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (cfg->family == AF_INET6) {
		struct sockaddr_in6 *a6 = (void *)ss;

		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		memcpy(&a6->sin6_addr, cfg->addr, 16);
		*len = sizeof(*a6);
	} else {
		struct sockaddr_in *a4 = (void *)ss;

		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		memcpy(&a4->sin_addr, cfg->addr, 4);
		*len = sizeof(*a4);
	}
}

/* Creates the entry socket of triage's group on a free port, with the selector attached. */
static int make_entry_socket(struct controller *ctl)
{
	struct attach *at = ctl->attach;
	int prog_fd = bpf_program__fd(ctl->skel->progs.triage_select), one = 1, fd;
	struct sockaddr_storage ss;
	socklen_t len;

	fd = socket(ctl->cfg->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	at->entry_fd = fd;
	if (ctl->cfg->family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &at->v6only, sizeof(at->v6only)))
		return -errno;
	fill_sockaddr(ctl->cfg, 0, &ss, &len);
	if (ss.ss_family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 64) ||
	    setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &prog_fd, sizeof(prog_fd)))
		return -errno;
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len))
		return -errno;
	at->group_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
				   ((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

static void to_mapped(const struct triage_rule *r, struct triage_lookup_key *key)
{
	memset(key, 0, sizeof(*key));
	if (r->client_family == AF_INET) {
		key->addr[10] = 0xff;
		key->addr[11] = 0xff;
		memcpy(key->addr + 12, r->client_addr, 4);
		key->prefixlen = 96 + r->client_prefixlen;
	} else {
		memcpy(key->addr, r->client_addr, 16);
		key->prefixlen = r->client_prefixlen;
	}
}

/*
 * Fills the prefixes trie from the rules whose only condition is a client
 * prefix: those are decidable before any payload is seen. Of two rules with
 * the same prefix, the first in priority order wins.
 */
static int fill_prefixes(struct controller *ctl, int *count)
{
	struct attach *at = ctl->attach;
	int fd = bpf_map__fd(at->lookup->maps.prefixes), i;
	const struct triage_rule *r;
	struct triage_lookup_key key;
	__u32 target;

	*count = 0;
	for (i = 0; i < ctl->cfg->nr_rules; i++) {
		r = &ctl->cfg->rules[i].rule;
		if (r->match != TRIAGE_MATCH_CLIENT)
			continue;
		to_mapped(r, &key);
		target = ctl->cfg->categories[r->category].pool == at->pool ?
			 TRIAGE_LOOKUP_SERVICE : TRIAGE_LOOKUP_POOLS;
		if (bpf_map_update_elem(fd, &key, &target, BPF_NOEXIST) && errno != EEXIST)
			return -errno;
		*count += target == TRIAGE_LOOKUP_POOLS;
	}
	return 0;
}

static int load_lookup(struct controller *ctl)
{
	struct attach *at = ctl->attach;
	struct lookup_bpf *skel;
	int err, any = 1, i;

	skel = lookup_bpf__open();
	if (!skel)
		return -errno;
	at->lookup = skel;
	skel->rodata->port = ctl->cfg->port;
	skel->rodata->bound_family = ctl->cfg->family;
	skel->rodata->fallback_pool = at->fallback_pool;
	for (i = 0; i < 16; i++)
		if (ctl->cfg->addr[i] && !(ctl->cfg->family == AF_INET && i >= 4))
			any = 0;
	skel->rodata->bound_any = any;
	memcpy((void *)skel->rodata->bound_addr, ctl->cfg->addr, sizeof(ctl->cfg->addr));
	err = bpf_map__reuse_fd(skel->maps.pools, bpf_map__fd(ctl->skel->maps.pools));
	if (!err)
		err = lookup_bpf__load(skel);
	return err;
}

/* Pins the link and the counters under the port's pin folder, which the undo removes. */
static int pin_lookup(struct controller *ctl)
{
	struct attach *at = ctl->attach;
	char path[512];

	snprintf(path, sizeof(path), "%s/lookup_link", ctl->pin_dir);
	if (bpf_obj_pin(at->lookup_link_fd, path))
		return -errno;
	snprintf(path, sizeof(path), "%s/lookup_stats", ctl->pin_dir);
	return bpf_map__pin(at->lookup->maps.lookup_stats, path);
}

static int attach_lookup_link(struct controller *ctl)
{
	struct attach *at = ctl->attach;
	int netns_fd, err = 0;

	netns_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (netns_fd < 0)
		return -errno;
	at->lookup_link_fd = bpf_link_create(bpf_program__fd(at->lookup->progs.triage_lookup),
					     netns_fd, BPF_SK_LOOKUP, NULL);
	if (at->lookup_link_fd < 0)
		err = -errno;
	close(netns_fd);
	if (!err)
		err = pin_lookup(ctl);
	return err;
}

/* Points the selector's fallback at triage's group default, which has listeners. */
static int set_group_default(struct controller *ctl)
{
	int fd = bpf_map__fd(ctl->skel->maps.conf);
	struct triage_port_conf pc;
	__u32 zero = 0;

	if (bpf_map_lookup_elem(fd, &zero, &pc))
		return -errno;
	pc.default_pool = ctl->attach->fallback_pool;
	return bpf_map_update_elem(fd, &zero, &pc, BPF_ANY) ? -errno : 0;
}

static int setup_lookup(struct controller *ctl)
{
	struct attach *at = ctl->attach;
	int err, prefixes = 0;
	__u32 zero = 0;
	__u64 value;

	err = pick_fallback_pool(ctl);
	if (err)
		return err;
	err = make_entry_socket(ctl);
	if (err) {
		pr_err("port %u: failed to create the entry socket of triage's group on %s: %s",
		       ctl->cfg->port, ctl->cfg->addr_text, strerror(-err));
		return err;
	}
	err = set_group_default(ctl);
	if (!err)
		err = load_lookup(ctl);
	if (!err)
		err = fill_prefixes(ctl, &prefixes);
	if (!err)
		err = attach_lookup_link(ctl);
	if (err) {
		pr_err("port %u: failed to load or attach the sk_lookup program: %s", ctl->cfg->port,
		       strerror(-err));
		return err;
	}
	/* Last: from here on, lookups from the prefixes reach triage's group. */
	value = at->entry_fd;
	if (bpf_map_update_elem(bpf_map__fd(at->lookup->maps.entry), &zero, &value, BPF_ANY)) {
		err = -errno;
		pr_err("port %u: failed to put the entry socket in the sockmap: %s", ctl->cfg->port,
		       strerror(-err));
		return err;
	}
	pr_info("port %u: sk_lookup program attached to network namespace net:[%lu]; it sends %d client prefix%s to triage's group on port %u, the rest to process %d",
		ctl->cfg->port, netns_inode(), prefixes, prefixes == 1 ? "" : "es", at->group_port,
		at->pid);
	if (!prefixes)
		pr_warn("port %u: no rule has a client prefix as its only condition, so every connection stays with the service",
			ctl->cfg->port);
	return 0;
}

/* Reads the cgroup of PID in the hierarchy whose /proc/PID/cgroup line matches CTRL ("" = v2). */
static int proc_cgroup_rel(pid_t pid, const char *ctrl, char *rel, size_t len)
{
	char path[64], *text, *line, *save, *ctrls, *p;
	int err = -ENOENT;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", pid);
	text = read_text_file(path, 1 << 16);
	if (!text)
		return -errno;
	for (line = strtok_r(text, "\n", &save); line && err; line = strtok_r(NULL, "\n", &save)) {
		ctrls = strchr(line, ':');
		p = ctrls ? strchr(ctrls + 1, ':') : NULL;
		if (!p)
			continue;
		ctrls++;
		n = p - ctrls;
		if (!*ctrl ? n == 0 : strstr(ctrls, ctrl) && strstr(ctrls, ctrl) < p) {
			snprintf(rel, len, "%s", p + 1);
			err = 0;
		}
	}
	free(text);
	return err;
}

/* Collects PID and its descendants, by walking the parent pid of every process. */
static int service_procs(pid_t root, pid_t *out, int max)
{
	int n = 1, changed = 1, i, pid, ppid;
	char path[64], *text, *p;
	struct dirent *de;
	DIR *d;

	out[0] = root;
	while (changed && n < max) {
		changed = 0;
		d = opendir("/proc");
		while (d && (de = readdir(d)) && n < max) {
			pid = atoi(de->d_name);
			if (pid <= 0)
				continue;
			snprintf(path, sizeof(path), "/proc/%d/stat", pid);
			text = read_text_file(path, 1024);
			p = text ? strrchr(text, ')') : NULL;
			if (!p || sscanf(p + 2, "%*c %d", &ppid) != 1)
				ppid = 0;
			free(text);
			for (i = 0; i < n && out[i] != pid; i++)
				;
			if (i < n)
				continue;
			for (i = 0; i < n && out[i] != ppid; i++)
				;
			if (i < n) {
				out[n++] = pid;
				changed = 1;
			}
		}
		if (d)
			closedir(d);
	}
	return n;
}

static int undo_moved(const char *line);
static void attach_free(struct attach *at);

/* Recorded moves of one move_to_pool() call, so that a failed run-time attach undoes them. */
struct moves {
	char **lines;
	int n;
};

static void moves_free(struct moves *mv)
{
	while (mv && mv->n > 0)
		free(mv->lines[--mv->n]);
	if (mv)
		free(mv->lines);
}

/* Moves one process into DIR (a pool's cgroup folder) after recording where it was. */
static int move_one(struct controller *ctl, pid_t pid, const char *mount, const char *ctrl,
		    const char *dir, struct moves *mv)
{
	char rel[512], path[600], *line, **more;
	int err;

	err = proc_cgroup_rel(pid, ctrl, rel, sizeof(rel));
	if (err)
		return err;
	if (asprintf(&line, "attach-moved %d %llu %s %s%s", pid, proc_start_time(pid), dir,
		     mount, strcmp(rel, "/") ? rel : "") < 0)
		return -ENOMEM;
	err = state_add(&ctl->st, "%s", line);
	more = err || !mv ? NULL : realloc(mv->lines, (mv->n + 1) * sizeof(*more));
	if (more) {
		mv->lines = more;
		mv->lines[mv->n++] = line;
	} else {
		free(line);
	}
	if (err)
		return err;
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	return write_file_fmt(path, "%d", pid);
}

/* Moves the service's processes into its pool's cgroups, and notes each move in MV if set. */
static int move_to_pool(struct controller *ctl, struct moves *mv)
{
	struct pool *pool = &ctl->pools[ctl->attach->pool];
	pid_t pids[MAX_SERVICE_PROCS];
	int n, i, c, err = 0;

	n = service_procs(ctl->attach->pid, pids, MAX_SERVICE_PROCS);
	for (i = 0; i < n && !err; i++) {
		err = move_one(ctl, pids[i], ctl->lay.v2_mount, "", pool->cg.v2, mv);
		for (c = 0; c < CG_NR_CTRL && !err; c++)
			if (pool->cg.v1[c][0])
				err = move_one(ctl, pids[i], ctl->lay.v1_mount[c],
					       c == CG_IO ? "blkio" : cgroup_ctrl_name(c),
					       pool->cg.v1[c], mv);
		if (err)
			attach_error("pool '%s': failed to move service process %d into its cgroups: %s",
				     pool->cfg->name, pids[i], strerror(-err));
	}
	if (!err)
		pr_info("pool '%s': moved %d process%s of the service into %s", pool->cfg->name, n,
			n == 1 ? "" : "es", pool->cg.v2);
	return err;
}

int attach_setup(struct controller *ctl)
{
	struct attach *at = ctl->attach;
	int err;

	if (!at)
		return 0;
	err = state_add(&ctl->st, "attach %d %llu %s %s %d", at->pid, at->start_time,
			mech_name(at->mech), ctl->cfg->pools[at->pool].name, at->move_to_pool);
	/* net.ipv4.tcp_migrate_req is 1 already: controller_start() sets it for every run. */
	if (!err)
		err = at->mech == ATTACH_REUSEPORT ? join_reuseport_group(ctl) : setup_lookup(ctl);
	if (!err && at->move_to_pool)
		err = move_to_pool(ctl, NULL);
	return err;
}

/* Finds the pool that a run-time attach names ("" = the default pool). */
static int live_pick_pool(struct controller *ctl, const char *name, struct pool **out)
{
	unsigned int port = ctl->cfg->port;
	char names[256] = "";
	struct pool *pool;
	int i;

	if (!name[0])
		name = ctl->cfg->pools[ctl->cfg->default_pool].name;
	for (i = 0; i < ctl->nr_pools; i++) {
		pool = &ctl->pools[i];
		if (pool->active && !pool->emerged)
			snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s'%s'",
				 names[0] ? ", " : "", pool->cfg->name);
		if (!pool->cfg->name[0] || strcmp(pool->cfg->name, name))
			continue;
		if (pool->emerged) {
			attach_error("port %u: pool '%s' was made from a template at run time and is removed when idle; name a pool of the config with --pool",
				     port, name);
			return -EINVAL;
		}
		if (!pool->active || pool->sc.removing) {
			attach_error("port %u: pool '%s' is %s after its idle timeout; name another pool with --pool, or restart triage",
				     port, name, pool->active ? "being removed" : "removed");
			return -EINVAL;
		}
		*out = pool;
		return 0;
	}
	attach_error("port %u: no pool '%s' in the running config; name one of %s with --pool",
		     port, name, names);
	return -ENOENT;
}

/*
 * Chooses the socket-array slots of the service's sockets among the pool's
 * slots that no worker uses, from the highest down, since drain_one()
 * deletes a draining worker's own slot from the array.
 */
static int live_pick_slots(struct controller *ctl, struct pool *pool, struct attach *at)
{
	const struct worker *w;
	int i, j = TRIAGE_MAX_WORKERS - 1;

	for (i = 0; i < at->nr_socks; i++, j--) {
		for (; j >= 0; j--) {
			w = &pool->workers[j];
			if (!w->in_pool && !w->pid && w->lfd < 0 && w->state == W_IDLE)
				break;
		}
		if (j < 0) {
			attach_error("port %u: pool '%s' has %d workers, which leaves fewer than the %d free socket-array slots that the service's sockets need; lower the pool's workers and restart triage, or name another pool with --pool",
				     ctl->cfg->port, pool->cfg->name, workers_alive(pool),
				     at->nr_socks);
			return -ENOSPC;
		}
		at->socks[i].slot = pool->id * TRIAGE_MAX_WORKERS + j;
	}
	return 0;
}

/* Checks a run-time attach and prepares AT. Changes nothing outside AT. */
static int live_prepare(struct controller *ctl, pid_t pid, const char *name,
			struct pool **pool, struct attach *at)
{
	const struct attach *cur = ctl->attach;
	unsigned int port = ctl->cfg->port;
	int err;

	if (cur) {
		attach_error("port %u: already attached to process %d (%s), and triage steers one service per port; 'triage detach --port %u' stops this controller and gives the port back",
			     port, cur->pid, cur->comm, port);
		return -EBUSY;
	}
	if (ctl->stopping) {
		attach_error("port %u: the controller is stopping", port);
		return -ESHUTDOWN;
	}
	err = live_pick_pool(ctl, name, pool);
	if (err)
		return err;
	at->pid = pid;
	at->pool = (*pool)->id;
	at->mech = ATTACH_REUSEPORT;
	err = attach_check_live(ctl, at);
	if (!err)
		err = live_pick_slots(ctl, *pool, at);
	return err;
}

/*
 * Makes the service's sockets the pool's slots. Order: record the group,
 * move the processes, put the sockets in the array and publish them next to
 * the pool's workers, record the attach. A failure undoes the steps before.
 */
static int live_join(struct controller *ctl, struct pool *pool)
{
	struct attach *at = ctl->attach;
	struct moves mv = {};
	int err, i;

	err = state_add(&ctl->st, "attach-group %d %llu %lu", at->pid, at->start_time,
			at->socks[0].inode);
	if (!err && at->move_to_pool)
		err = move_to_pool(ctl, &mv);
	if (!err)
		err = put_service_socks(ctl);
	if (!err) {
		err = port_bpf_publish_pool(ctl, pool);
		if (err)
			remove_service_socks(ctl);
	}
	/* Last, since 'triage status' shows the port as attached from this line on. */
	if (!err)
		err = state_add(&ctl->st, "attach %d %llu %s %s %d", at->pid, at->start_time,
				mech_name(at->mech), pool->cfg->name, at->move_to_pool);
	if (err && at->in_array) {
		remove_service_socks(ctl);
		port_bpf_publish_pool(ctl, pool);
	}
	for (i = mv.n - 1; err && i >= 0; i--)
		undo_moved(mv.lines[i]);
	moves_free(&mv);
	if (err)
		attach_error("port %u: attaching process %d failed: %s; the steering is unchanged",
			     ctl->cfg->port, at->pid, strerror(-err));
	return err;
}

int attach_live(struct controller *ctl, pid_t pid, const char *name, bool move_to_pool,
		char *reply, size_t len)
{
	struct attach *at = calloc(1, sizeof(*at));
	struct pool *pool = NULL;
	int err, drained;

	if (!at)
		return -ENOMEM;
	at->move_to_pool = move_to_pool;
	at->entry_fd = -1;
	at->lookup_link_fd = -1;
	attach_capture(reply, len);
	err = live_prepare(ctl, pid, name, &pool, at);
	if (!err) {
		ctl->attach = at;
		err = live_join(ctl, pool);
		if (err)
			ctl->attach = NULL;
	}
	attach_capture(NULL, 0);
	if (err) {
		attach_free(at);
		return err;
	}
	/* The service's pool is the service's now: triage neither scales nor removes it. */
	pool->cfg->scaling.enabled = false;
	pool->cfg->removable = false;
	drained = workers_drain(ctl, pool, workers_in_pool(pool));
	snprintf(reply, len, "port %u: attached process %d (%s): its %d listening socket%s on %s:%u form pool '%s', steered through the reuseport group of triage's listeners; %d worker%s of pool '%s' drained%s",
		 ctl->cfg->port, at->pid, at->comm, at->nr_socks, at->nr_socks == 1 ? "" : "s",
		 ctl->cfg->addr_text, ctl->cfg->port, pool->cfg->name, drained,
		 drained == 1 ? "" : "s", pool->cfg->name,
		 at->move_to_pool ? "; the service's processes moved into the pool's cgroups" : "");
	pr_info("%s", reply);
	return 0;
}

void attach_release(struct controller *ctl)
{
	struct attach *at = ctl->attach;
	struct triage_port_conf pc;
	__u32 zero = 0;
	int fd;

	if (!at || !ctl->skel)
		return;
	if (at->mech == ATTACH_REUSEPORT) {
		/* No rule and the service's pool as default: every new connection goes there. */
		fd = bpf_map__fd(ctl->skel->maps.conf);
		if (!bpf_map_lookup_elem(fd, &zero, &pc)) {
			pc.nr_rules = 0;
			pc.default_pool = at->pool;
			pc.flags = 0;
			bpf_map_update_elem(fd, &zero, &pc, BPF_ANY);
		}
	} else if (at->lookup) {
		bpf_map_delete_elem(bpf_map__fd(at->lookup->maps.entry), &zero);
	}
	pr_info("port %u: new connections go to process %d alone; stopping triage's pools",
		ctl->cfg->port, at->pid);
	sleep_ms(RELEASE_SETTLE_MS);
	/* The entry socket closes before the workers, so their queues never move onto it. */
	if (at->entry_fd >= 0)
		close(at->entry_fd);
	at->entry_fd = -1;
}

static void attach_free(struct attach *at)
{
	int i;

	if (!at)
		return;
	for (i = 0; i < at->nr_socks; i++)
		if (at->socks[i].fd >= 0)
			close(at->socks[i].fd);
	if (at->entry_fd >= 0)
		close(at->entry_fd);
	if (at->lookup_link_fd >= 0)
		close(at->lookup_link_fd);
	lookup_bpf__destroy(at->lookup);
	free(at);
}

void attach_close(struct controller *ctl)
{
	attach_free(ctl->attach);
	ctl->attach = NULL;
}

int attach_listener_socket(const struct controller *ctl, int family)
{
	const struct attach *at = ctl->attach;
	int fd, saved = -1;

	if (at && at->mech == ATTACH_REUSEPORT && at->sock_uid != 0)
		saved = setfsuid(at->sock_uid);
	fd = socket(family, SOCK_STREAM, 0);
	if (saved >= 0)
		setfsuid(saved);
	if (fd >= 0 && at && family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &at->v6only, sizeof(at->v6only));
	return fd;
}

/*
 * On an sk_lookup port, triage's group listens on IPv4 loopback, where the
 * program hands it connections but no other host reaches it directly.
 */
void attach_listen_addr(const struct controller *ctl, uint8_t *addr)
{
	__be32 lo = htonl(INADDR_LOOPBACK);

	memcpy(addr, ctl->cfg->addr, 16);
	if (ctl->attach && ctl->attach->mech == ATTACH_SK_LOOKUP && ctl->cfg->family == AF_INET)
		memcpy(addr, &lo, 4);
}

uint16_t attach_listen_port(const struct controller *ctl)
{
	if (ctl->attach && ctl->attach->mech == ATTACH_SK_LOOKUP)
		return ctl->attach->group_port;
	return ctl->cfg->port;
}

/* Returns a duplicate of the service's socket INO, or a negative errno. */
static int dup_by_inode(pid_t pid, unsigned long ino)
{
	char dir[64], path[320], link[64], want[64];
	struct dirent *de;
	int pidfd, fd = -ENOENT;
	ssize_t len;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", pid);
	snprintf(want, sizeof(want), "socket:[%lu]", ino);
	d = opendir(dir);
	if (!d)
		return -errno;
	while (fd == -ENOENT && (de = readdir(d))) {
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		len = readlink(path, link, sizeof(link) - 1);
		if (len < 0)
			continue;
		link[len] = '\0';
		if (strcmp(link, want))
			continue;
		pidfd = syscall(SYS_pidfd_open, pid, 0);
		fd = pidfd < 0 ? -errno : syscall(SYS_pidfd_getfd, pidfd, atoi(de->d_name), 0);
		if (pidfd >= 0 && fd < 0)
			fd = -errno;
		if (pidfd >= 0)
			close(pidfd);
	}
	closedir(d);
	return fd;
}

static int undo_group(const char *line)
{
	unsigned long long start;
	unsigned long ino;
	int pid, fd, err = 0, unused = 0;

	if (sscanf(line, "attach-group %d %llu %lu", &pid, &start, &ino) != 3)
		return -EINVAL;
	if (!proc_alive(pid) || proc_start_time(pid) != start) {
		pr_info("service pid %d: gone, and its reuseport group with it", pid);
		return 0;
	}
	fd = dup_by_inode(pid, ino);
	if (fd == -ENOENT) {
		pr_info("service pid %d: socket %lu closed, and its reuseport group with it", pid, ino);
		return 0;
	}
	/* The kernel ignores the value but rejects an option shorter than an int. */
	if (fd < 0 || (setsockopt(fd, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &unused,
				  sizeof(unused)) && errno != ENOENT))
		err = fd < 0 ? fd : -errno;
	if (fd >= 0)
		close(fd);
	if (err) {
		pr_err("service pid %d: failed to detach the reuseport program from its group: %s",
		       pid, strerror(-err));
		return err;
	}
	pr_info("service pid %d: reuseport program detached from its listeners' group", pid);
	return 0;
}

/* Returns true when PID is ROOT or descends from it. */
static bool descends_from(pid_t pid, pid_t root)
{
	char path[64], *text, *p;
	int depth, ppid;

	for (depth = 0; depth < 64 && pid > 1; depth++) {
		if (pid == root)
			return true;
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		text = read_text_file(path, 1024);
		p = text ? strrchr(text, ')') : NULL;
		if (!p || sscanf(p + 2, "%*c %d", &ppid) != 1)
			ppid = 0;
		free(text);
		pid = ppid;
	}
	return false;
}

/* Moves PID, and the processes in POOL_DIR that it forked since, back to ORIG. */
static int undo_moved(const char *line)
{
	char pool_dir[512], orig[600], procs[620], *text, *l, *save;
	unsigned long long start;
	int pid, off = 0, other, err = 0;

	if (sscanf(line, "attach-moved %d %llu %511s %n", &pid, &start, pool_dir, &off) != 3 ||
	    !off)
		return -EINVAL;
	snprintf(orig, sizeof(orig), "%s", line + off);
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", orig);
	if (proc_alive(pid) && proc_start_time(pid) == start)
		err = write_file_fmt(procs, "%d", pid);
	snprintf(pool_dir + strlen(pool_dir), sizeof(pool_dir) - strlen(pool_dir), "/cgroup.procs");
	text = read_text_file(pool_dir, 1 << 20);
	for (l = text ? strtok_r(text, "\n", &save) : NULL; l && !err;
	     l = strtok_r(NULL, "\n", &save)) {
		other = atoi(l);
		if (other > 0 && descends_from(other, pid))
			err = write_file_fmt(procs, "%d", other);
	}
	free(text);
	if (err && err != -ESRCH) {
		pr_err("service pid %d: failed to move it back to cgroup %s: %s; move it with 'echo %d > %s'",
		       pid, orig, strerror(-err), pid, procs);
		return err;
	}
	pr_info("service pid %d: moved back to cgroup %s", pid, orig);
	return 0;
}

int attach_undo_line(const char *line)
{
	if (!strncmp(line, "attach-ctl ", 11))
		return attach_ctl_remove(line + 11);
	if (!strncmp(line, "attach-group ", 13))
		return undo_group(line);
	if (!strncmp(line, "attach-moved ", 13))
		return undo_moved(line);
	if (!strncmp(line, "attach ", 7))
		return 0;
	return -ENOENT;
}

bool attach_protects_pid(char **lines, int n, pid_t pid)
{
	unsigned long long start;
	int i, root;

	for (i = 0; i < n; i++) {
		if (sscanf(lines[i], "attach-moved %d %llu", &root, &start) == 2 && root == pid &&
		    proc_start_time(pid) == start)
			return true;
		/* A recorded root that no longer runs may have had its pid reused. */
		if (sscanf(lines[i], "attach %d %llu", &root, &start) == 2 &&
		    proc_start_time(root) == start && descends_from(pid, root))
			return true;
	}
	return false;
}

/* Whether process PID has socket INODE among its descriptors. */
static bool pid_has_socket(pid_t pid, unsigned long inode)
{
	char path[64], link[64], want[32];
	struct dirent *f;
	bool found = false;
	DIR *fds;
	ssize_t n;

	snprintf(want, sizeof(want), "socket:[%lu]", inode);
	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	fds = opendir(path);
	while (fds && !found && (f = readdir(fds))) {
		snprintf(path, sizeof(path), "/proc/%d/fd/%s", pid, f->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n > 0) {
			link[n] = '\0';
			found = !strcmp(link, want);
		}
	}
	if (fds)
		closedir(fds);
	return found;
}

/* Returns a process other than this one with socket INODE among its descriptors, or 0. */
static pid_t find_socket_owner(unsigned long inode)
{
	struct dirent *p;
	pid_t pid, found = 0;
	DIR *procs = opendir("/proc");

	while (procs && !found && (p = readdir(procs))) {
		pid = atoi(p->d_name);
		if (pid > 0 && pid != getpid() && pid_has_socket(pid, inode))
			found = pid;
	}
	if (procs)
		closedir(procs);
	return found;
}

/*
 * Removes the service's sockets once no other process has them open. Only
 * triage's copies would keep them listening then, so connections would wait
 * there and never be accepted. Shutting the copies down moves what is
 * queued to triage's listeners of the group.
 */
static void service_gone(struct controller *ctl)
{
	struct attach *at = ctl->attach;
	int i;

	pr_warn("port %u: process %d (%s) exited and no other process has its listening sockets open; removing them from pool '%s'",
		ctl->cfg->port, at->pid, at->comm, ctl->cfg->pools[at->pool].name);
	if (at->mech == ATTACH_SK_LOOKUP && at->lookup) {
		/* A prefix of length 0 matches every client: all go to triage's group. */
		struct triage_lookup_key all = {};
		__u32 target = TRIAGE_LOOKUP_POOLS;

		if (bpf_map_update_elem(bpf_map__fd(at->lookup->maps.prefixes), &all, &target,
					BPF_ANY))
			pr_err("port %u: failed to send every client to triage's pools: %s",
			       ctl->cfg->port, strerror(errno));
	}
	if (at->in_array) {
		remove_service_socks(ctl);
		port_bpf_publish_pool(ctl, &ctl->pools[at->pool]);
	}
	for (i = 0; i < at->nr_socks; i++) {
		if (at->socks[i].fd < 0)
			continue;
		shutdown(at->socks[i].fd, SHUT_RD);
		close(at->socks[i].fd);
		at->socks[i].fd = -1;
	}
	at->nr_socks = 0;
}


/*
 * Records the group again under a socket and process that still hold it, so
 * a later detach finds the group to take triage's program off.
 */
static void record_group_again(struct controller *ctl)
{
	struct attach *at = ctl->attach;
	int i;

	if (at->mech != ATTACH_REUSEPORT)
		return;
	for (i = 0; i < at->nr_socks; i++)
		if (at->socks[i].fd >= 0) {
			state_add(&ctl->st, "attach-group %d %llu %lu", at->pid, at->start_time,
				  at->socks[i].inode);
			return;
		}
}

/*
 * Removes the listeners that the service closed, as nginx does when it
 * reloads with fewer workers. triage's copy would keep such a listener open
 * while no process accepts from it, so shutting the copy down moves its queue
 * to the service's other listeners.
 * NOTE: listeners that the service opens later (a reload with more workers)
 * are not added, so they get no connections until the next attach.
 */
static void release_closed_socks(struct controller *ctl)
{
	struct attach *at = ctl->attach;
	struct service_sock *ss;
	int i, fd;

	for (i = 0; i < at->nr_socks; i++) {
		ss = &at->socks[i];
		if (ss->fd < 0 || pid_has_socket(at->pid, ss->inode) || find_socket_owner(ss->inode))
			continue;
		pr_warn("port %u: process %d closed its listener (socket inode %lu, slot %u); moving what is queued on it to the service's other listeners",
			ctl->cfg->port, at->pid, ss->inode, ss->slot);
		/* Unpublished first, so the migration picks one of the other slots. */
		fd = ss->fd;
		ss->fd = -1;
		port_bpf_publish_pool(ctl, &ctl->pools[at->pool]);
		bpf_map_delete_elem(bpf_map__fd(ctl->skel->maps.socks), &ss->slot);
		shutdown(fd, SHUT_RD);
		close(fd);
		record_group_again(ctl);
	}
}

void attach_tick(struct controller *ctl)
{
	struct attach *at = ctl->attach;
	pid_t holder;

	if (!at || !at->nr_socks)
		return;
	if (proc_alive(at->pid) && proc_start_time(at->pid) == at->start_time) {
		if (at->mech == ATTACH_REUSEPORT)
			release_closed_socks(ctl);
		return;
	}
	/* A worker of the service may have exited while its parent keeps the sockets. */
	holder = find_socket_owner(at->socks[0].inode);
	if (!holder) {
		service_gone(ctl);
		return;
	}
	pr_info("port %u: process %d exited; process %d still has the service's sockets open, so the controller follows it instead",
		ctl->cfg->port, at->pid, holder);
	at->pid = holder;
	at->start_time = proc_start_time(holder);
	record_group_again(ctl);
}
