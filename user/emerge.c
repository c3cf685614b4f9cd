// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Emerging and idle pools. The reuseport program counts requests that match
 * no rule by a key (first path segment or Host) in the emerge map. A key
 * whose rate stays at the configured level for the configured time becomes a
 * category with a pool made from the template, and a rule for it goes into
 * the rules map after every configured rule. A removable pool without a
 * connection for its idle timeout is drained and removed. Its traffic then
 * falls back to the default pool, and a new pool emerges if demand returns.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "attach.h"
#include "controller.h"
#include "log.h"
#include "sysutil.h"
#include "triage.skel.h"

struct emerge_entry {
	struct triage_emerge_key key;
	__u64 count;			/* map value at the last tick */
	double rate;			/* connections per second over the last tick */
	struct timespec since;		/* start of the current run at or above the rate */
	bool seen;			/* present in the map this tick */
};

struct emerge_state {
	struct emerge_entry *entries;
	__u32 nr, cap;
	struct timespec last;
};

static double since_s(const struct timespec *from, const struct timespec *to)
{
	return (to->tv_sec - from->tv_sec) + (to->tv_nsec - from->tv_nsec) / 1e9;
}

int emerge_init(struct controller *ctl)
{
	struct timespec now;
	int i;

	clock_gettime(CLOCK_MONOTONIC, &now);
	for (i = 0; i < ctl->nr_pools; i++)
		ctl->pools[i].sc.last_conn = now;
	if (!ctl->cfg->emerge.key)
		return 0;
	ctl->emerge = calloc(1, sizeof(*ctl->emerge));
	if (!ctl->emerge)
		return -ENOMEM;
	ctl->emerge->cap = ctl->cfg->emerge.table_size;
	ctl->emerge->entries = calloc(ctl->emerge->cap, sizeof(struct emerge_entry));
	if (!ctl->emerge->entries) {
		free(ctl->emerge);
		ctl->emerge = NULL;
		return -ENOMEM;
	}
	ctl->emerge->last = now;
	pr_info("emerging categories: requests without a rule are counted by %s; %.1f conn/s for %u s makes a pool from template '%s' (at most %u such pools)",
		ctl->cfg->emerge.key == EMERGE_PATH ? "first path segment" : "Host",
		ctl->cfg->emerge.rate, ctl->cfg->emerge.for_s,
		ctl->cfg->templates[ctl->cfg->emerge.template].name, ctl->cfg->emerge.max_pools);
	return 0;
}

void emerge_free(struct controller *ctl)
{
	if (!ctl->emerge)
		return;
	free(ctl->emerge->entries);
	free(ctl->emerge);
	ctl->emerge = NULL;
}

/* Rules and categories */

static void remove_rules_of(struct controller *ctl, int category)
{
	struct config *cfg = ctl->cfg;
	int i, j;

	for (i = 0, j = 0; i < cfg->nr_rules; i++)
		if (cfg->rules[i].category != category)
			cfg->rules[j++] = cfg->rules[i];
	if (j == cfg->nr_rules)
		return;
	/* The count drops first, so the program never reads past the live rules. */
	cfg->nr_rules = j;
	port_bpf_publish_conf(ctl);
	for (i = 0; i < j; i++)
		port_bpf_publish_rule(ctl, i);
}

/* Points the categories of POOL at the default pool, or back at POOL. */
static void retarget_categories(struct controller *ctl, struct pool *pool, bool away)
{
	struct config *cfg = ctl->cfg;
	struct triage_category c = {};
	__u32 key;
	int i;

	for (i = 0; i < cfg->nr_categories; i++) {
		if (cfg->categories[i].pool != (int)pool->id || !cfg->categories[i].name[0])
			continue;
		c.pool = away ? (__u32)cfg->default_pool : pool->id;
		memcpy(c.name, cfg->categories[i].name, sizeof(c.name));
		key = i;
		bpf_map_update_elem(bpf_map__fd(ctl->skel->maps.categories), &key, &c, BPF_ANY);
	}
}

/* Idle pools */

static void start_removal(struct controller *ctl, struct pool *pool, double idle)
{
	pool->sc.removing = true;
	if (pool->emerged) {
		remove_rules_of(ctl, pool->category);
		ctl->cfg->categories[pool->category].name[0] = '\0';
		port_bpf_publish_category(ctl, pool->category);
	} else {
		retarget_categories(ctl, pool, true);
	}
	workers_drain(ctl, pool, workers_in_pool(pool));
	pr_info("pool '%s': removing after %.0f s without a connection (idle timeout %u s); its traffic goes to the default pool '%s'",
		pool->cfg->name, idle, pool->cfg->idle_timeout_s,
		ctl->cfg->pools[ctl->cfg->default_pool].name);
}

static void finish_removal(struct controller *ctl, struct pool *pool)
{
	char err[1024];

	if (cgroup_remove(&pool->cg, err, sizeof(err))) {
		pr_warn("pool '%s': %s; retrying at the next tick", pool->cfg->name, err);
		return;
	}
	pool->active = false;
	port_bpf_publish_pool(ctl, pool);
	pr_info("pool '%s': removed with its cgroup %s", pool->cfg->name, pool->cg.v2);
	pool->sc.removing = false;
	/* A removed configured pool starts counting its categories' connections afresh. */
	pool->sc.have_prev = false;
	if (pool->emerged) {
		/* The template owns argv and env: clear the copy without freeing them. */
		memset(pool->cfg, 0, sizeof(*pool->cfg));
		pool->cfg->borrowed = true;
		pool->emerged = false;
	}
}

/* A removed configured pool comes back when one of its categories gets a connection. */
static bool demand_returned(struct controller *ctl, struct pool *pool)
{
	int fd = bpf_map__fd(ctl->skel->maps.category_stats), c;
	struct triage_steer_stats st;
	__u64 total = 0;

	for (c = 0; c < ctl->cfg->nr_categories; c++) {
		if (ctl->cfg->categories[c].pool != (int)pool->id)
			continue;
		if (bpf_percpu_sum(fd, c, (__u64 *)&st, sizeof(st) / sizeof(__u64)))
			continue;
		total += st.payload + st.syn;
	}
	if (total == pool->sc.prev_established)
		return false;
	pool->sc.prev_established = total;
	return pool->sc.have_prev;
}

static void revive(struct controller *ctl, struct pool *pool)
{
	struct pool_config *cfg = pool->cfg;
	__u32 n = cfg->scaling.enabled ? cfg->scaling.min : cfg->workers;

	if (pool_cgroup_setup(ctl, pool))
		return;
	pool->active = true;
	memset(&pool->sc, 0, sizeof(pool->sc));
	memset(&pool->m, 0, sizeof(pool->m));
	clock_gettime(CLOCK_MONOTONIC, &pool->sc.last_conn);
	workers_init_pool(pool);
	workers_add(ctl, pool, n);
	retarget_categories(ctl, pool, false);
	pr_info("pool '%s': demand returned to its categories; recreated with %u workers",
		cfg->name, n);
}

/* Removed configured pools keep counting their categories' connections here. */
static void watch_dormant(struct controller *ctl, struct pool *pool)
{
	bool first = !pool->sc.have_prev;

	if (demand_returned(ctl, pool) && !first) {
		revive(ctl, pool);
		return;
	}
	pool->sc.have_prev = true;
}

static void check_idle(struct controller *ctl)
{
	struct timespec now;
	struct pool *pool;
	double idle;
	int i;

	clock_gettime(CLOCK_MONOTONIC, &now);
	for (i = 0; i < ctl->nr_pools; i++) {
		pool = &ctl->pools[i];
		if (!pool->active) {
			if (pool->cfg->name[0] && pool->cfg->removable && !pool->emerged &&
			    pool->cg.v2[0])
				watch_dormant(ctl, pool);
			continue;
		}
		if (pool->sc.removing) {
			if (!workers_alive(pool))
				finish_removal(ctl, pool);
			continue;
		}
		if (!pool->cfg->removable || !pool->cfg->idle_timeout_s ||
		    (int)pool->id == ctl->cfg->default_pool || attach_is_service_pool(ctl, pool))
			continue;
		idle = since_s(&pool->sc.last_conn, &now);
		if (idle >= pool->cfg->idle_timeout_s && !pool->m.active)
			start_removal(ctl, pool, idle);
	}
}

/* Emerging pools */

static struct emerge_entry *find_entry(struct emerge_state *es,
				       const struct triage_emerge_key *key)
{
	__u32 i;

	for (i = 0; i < es->nr; i++)
		if (!memcmp(&es->entries[i].key, key, sizeof(*key)))
			return &es->entries[i];
	if (es->nr == es->cap)
		return NULL;
	memset(&es->entries[es->nr], 0, sizeof(es->entries[0]));
	es->entries[es->nr].key = *key;
	return &es->entries[es->nr++];
}

/* Reads the map and updates each key's rate; drops keys the LRU evicted. */
static void read_counts(struct controller *ctl, struct emerge_state *es, double dt)
{
	int fd = bpf_map__fd(ctl->skel->maps.emerge);
	struct triage_emerge_key key, next;
	struct emerge_entry *e;
	void *prev = NULL;
	__u64 count, delta;
	__u32 i, j;

	for (i = 0; i < es->nr; i++)
		es->entries[i].seen = false;
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &count))
			continue;
		e = find_entry(es, &key);
		if (!e)
			continue;
		/* A key evicted and counted again restarts from its new count. */
		delta = count >= e->count ? count - e->count : count;
		e->rate = dt > 0 ? (double)delta / dt : 0;
		e->count = count;
		e->seen = true;
	}
	for (i = 0, j = 0; i < es->nr; i++)
		if (es->entries[i].seen)
			es->entries[j++] = es->entries[i];
	es->nr = j;
}

static bool key_text_ok(const struct triage_emerge_key *key)
{
	__u32 i;

	if (key->len == 0 || key->len >= TRIAGE_PATH_LEN)
		return false;
	for (i = 0; i < key->len; i++)
		if ((unsigned char)key->text[i] <= ' ' || (unsigned char)key->text[i] >= 0x7f ||
		    strchr("?#", key->text[i]))
			return false;
	return true;
}

/* Builds "TEMPLATE-KEY" from the name characters of KEY, unique among the pools. */
static void make_name(struct controller *ctl, const struct triage_emerge_key *key, char *out)
{
	const char *tmpl = ctl->cfg->templates[ctl->cfg->emerge.template].name;
	char base[TRIAGE_NAME_LEN];
	size_t n, i;
	int suffix;

	n = snprintf(base, sizeof(base), "%s-", tmpl);
	for (i = 0; i < key->len && n < sizeof(base) - 1; i++) {
		char c = key->text[i];

		if (c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')
			base[n++] = c;
		else if (i > 0 && base[n - 1] != '-')
			base[n++] = '-';
	}
	base[n] = '\0';
	snprintf(out, TRIAGE_NAME_LEN, "%s", base);
	for (suffix = 2; config_pool_index(ctl->cfg, out) >= 0 && suffix < 100; suffix++)
		snprintf(out, TRIAGE_NAME_LEN, "%.*s-%d", TRIAGE_NAME_LEN - 4, base, suffix);
}

static int free_pool_id(struct controller *ctl)
{
	int i;

	for (i = 0; i < TRIAGE_MAX_POOLS; i++)
		if (i >= ctl->nr_pools || (!ctl->pools[i].active && !ctl->cfg->pools[i].name[0]))
			return i;
	return -1;
}

static int free_category(struct controller *ctl)
{
	int i;

	for (i = 0; i < TRIAGE_MAX_CATEGORIES; i++)
		if (i >= ctl->cfg->nr_categories || !ctl->cfg->categories[i].name[0])
			return i;
	return -1;
}

static int emerged_count(const struct controller *ctl)
{
	int i, n = 0;

	for (i = 0; i < ctl->nr_pools; i++)
		n += ctl->pools[i].active && ctl->pools[i].emerged;
	return n;
}

/* Whether the budget has room for the template's first workers next to the current limits. */
static bool budget_fits(struct controller *ctl, const struct pool_config *pc, __u32 n)
{
	const struct budget_config *b = &ctl->cfg->budget;
	double cpu = 0, mem = 0;
	int i;

	for (i = 0; i < ctl->nr_pools; i++) {
		const struct pool_limits *l = &ctl->pools[i].cfg->limits;

		if (!ctl->pools[i].active)
			continue;
		cpu += l->has_cpus ? l->cpus : 0;
		mem += l->memory_max > 0 ? l->memory_max : 0;
	}
	cpu += pc->scaling.cpus_per_worker > 0 ? n * pc->scaling.cpus_per_worker :
		(pc->limits.has_cpus ? pc->limits.cpus : 0);
	mem += pc->scaling.memory_per_worker > 0 ? (double)n * pc->scaling.memory_per_worker :
		(pc->limits.memory_max > 0 ? pc->limits.memory_max : 0);
	return (!b->has_cpus || cpu <= b->cpus + 1e-6) && (b->memory <= 0 || mem <= b->memory);
}

static void fill_rule(struct rule_config *rc, const struct triage_emerge_key *key, int category)
{
	memset(rc, 0, sizeof(*rc));
	rc->category = category;
	rc->priority = -1;
	rc->rule.category = category;
	rc->rule.proto = TRIAGE_PROTO_HTTP;
	if (key->kind == TRIAGE_EMERGE_HOST) {
		rc->rule.match = TRIAGE_MATCH_HOST;
		memcpy(rc->rule.host, key->text, key->len);
		rc->rule.host_len = key->len;
	} else {
		rc->rule.match = TRIAGE_MATCH_PATH;
		memcpy(rc->rule.path, key->text, key->len);
		rc->rule.path_len = key->len;
	}
}

/* Sets up pool ID from the template; on failure nothing of it is left. */
static int make_pool(struct controller *ctl, int id, const char *name)
{
	const struct pool_config *tmpl = &ctl->cfg->templates[ctl->cfg->emerge.template];
	struct pool_config *pc = &ctl->cfg->pools[id];
	struct pool *pool = &ctl->pools[id];
	char err[1024];
	__u32 n;

	*pc = *tmpl;
	pc->borrowed = true;
	pc->removable = true;
	snprintf(pc->name, sizeof(pc->name), "%s", name);
	n = pc->scaling.enabled ? pc->scaling.min : pc->workers;
	if (pc->scaling.cpus_per_worker > 0)
		pc->limits.cpus = n * pc->scaling.cpus_per_worker;
	if (pc->scaling.memory_per_worker > 0)
		pc->limits.memory_max = (int64_t)n * pc->scaling.memory_per_worker;
	memset(pool, 0, sizeof(*pool));
	pool->cfg = pc;
	pool->id = id;
	pool->category = -1;
	workers_init_pool(pool);
	if (workers_preflight_pool(ctl, pool) || pool_cgroup_setup(ctl, pool))
		goto fail;
	pool->active = true;
	pool->emerged = true;
	clock_gettime(CLOCK_MONOTONIC, &pool->sc.last_conn);
	if (id >= ctl->nr_pools)
		ctl->nr_pools = ctl->cfg->nr_pools = id + 1;
	if (workers_add(ctl, pool, n) && workers_alive(pool))
		return 0;
	pr_err("pool '%s': no worker of the new pool started; removing it", name);
	workers_drain(ctl, pool, workers_in_pool(pool));
	pool->active = false;
	port_bpf_publish_pool(ctl, pool);
	if (cgroup_remove(&pool->cg, err, sizeof(err)))
		pr_warn("pool '%s': %s", name, err);
fail:
	memset(pc, 0, sizeof(*pc));
	pc->borrowed = true;
	memset(pool, 0, sizeof(*pool));
	pool->cfg = pc;
	pool->id = id;
	pool->category = -1;
	workers_init_pool(pool);
	return -EIO;
}

static void emerge_one(struct controller *ctl, struct emerge_entry *e, double sustained)
{
	struct config *cfg = ctl->cfg;
	const struct pool_config *tmpl = &cfg->templates[cfg->emerge.template];
	char name[TRIAGE_NAME_LEN];
	int id = free_pool_id(ctl), cat = free_category(ctl);
	__u32 n = tmpl->scaling.enabled ? tmpl->scaling.min : tmpl->workers;

	/* Try again after another full period, instead of at every tick. */
	e->since.tv_sec = 0;
	if (id < 0 || cat < 0 || cfg->nr_rules >= TRIAGE_MAX_RULES) {
		pr_warn("emerging key '%.*s' at %.1f conn/s: no room for another pool, category or rule (limits %d, %d, %d)",
			(int)e->key.len, e->key.text, e->rate, TRIAGE_MAX_POOLS,
			TRIAGE_MAX_CATEGORIES, TRIAGE_MAX_RULES);
		return;
	}
	if (!budget_fits(ctl, tmpl, n)) {
		pr_warn("emerging key '%.*s' at %.1f conn/s: held back, the host budget has no room for %u worker(s) of template '%s'",
			(int)e->key.len, e->key.text, e->rate, n, tmpl->name);
		return;
	}
	make_name(ctl, &e->key, name);
	if (make_pool(ctl, id, name))
		return;
	snprintf(cfg->categories[cat].name, TRIAGE_NAME_LEN, "%s", name);
	cfg->categories[cat].pool = id;
	if (cat >= cfg->nr_categories)
		cfg->nr_categories = cat + 1;
	ctl->pools[id].category = cat;
	port_bpf_publish_category(ctl, cat);
	fill_rule(&cfg->rules[cfg->nr_rules], &e->key, cat);
	port_bpf_publish_rule(ctl, cfg->nr_rules);
	cfg->nr_rules++;
	port_bpf_publish_conf(ctl);
	pr_info("emerging category '%s': %s '%.*s' at %.1f conn/s for %.0f s (threshold %.1f conn/s for %u s); pool '%s' from template '%s' with %u worker(s), rule %d",
		name, e->key.kind == TRIAGE_EMERGE_HOST ? "host" : "path", (int)e->key.len,
		e->key.text, e->rate, sustained, cfg->emerge.rate, cfg->emerge.for_s, name,
		tmpl->name, n, cfg->nr_rules - 1);
}

static void check_emerging(struct controller *ctl)
{
	struct emerge_state *es = ctl->emerge;
	const struct emerge_config *ec = &ctl->cfg->emerge;
	struct emerge_entry *e;
	struct timespec now;
	double sustained;
	__u32 i;

	clock_gettime(CLOCK_MONOTONIC, &now);
	read_counts(ctl, es, since_s(&es->last, &now));
	es->last = now;
	for (i = 0; i < es->nr; i++) {
		e = &es->entries[i];
		if (e->rate < ec->rate || !key_text_ok(&e->key)) {
			e->since.tv_sec = 0;
			continue;
		}
		if (!e->since.tv_sec) {
			e->since = now;
			continue;
		}
		sustained = since_s(&e->since, &now);
		if (sustained + 1e-3 < ec->for_s)
			continue;
		if (emerged_count(ctl) >= (int)ec->max_pools) {
			pr_warn("emerging key '%.*s' at %.1f conn/s: held back, %u emerged pools exist already (emerge.max_pools)",
				(int)e->key.len, e->key.text, e->rate, ec->max_pools);
			e->since.tv_sec = 0;
			continue;
		}
		emerge_one(ctl, e, sustained);
	}
}

void emerge_tick(struct controller *ctl)
{
	check_idle(ctl);
	if (ctl->emerge)
		check_emerging(ctl);
}
