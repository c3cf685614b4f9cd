// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The autoscaler. Once per tick it reads each pool's signals (the sockops
 * counters, the listeners' accept queues, the cgroup files) and computes
 * the worker count that the pool's policy recommends. Then it fits every
 * pool into the host budget by weight and resizes. Shrinking pools go
 * first, so the sum of the limits stays within the budget at every moment.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "attach.h"
#include "controller.h"
#include "log.h"
#include "sysutil.h"
#include "triage.skel.h"

/* Share of its CPU limit at which a pool counts as held at the limit. */
#define SATURATED	0.95
/* Allowance for the rounding of CPU figures in budget sums. */
#define CPU_EPSILON	1e-6


/* Finds "KEY VALUE" in a flat-keyed cgroup file such as cpu.stat. */
static bool keyed_value(const char *text, const char *key, unsigned long long *out)
{
	size_t n = strlen(key);
	const char *p;

	for (p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, key, n) && p[n] == ' ')
			return sscanf(p + n + 1, "%llu", out) == 1;
	return false;
}

/* Returns the "some avg10" figure of a PSI file, or -1. */
static double read_psi(const struct pool *pool, const char *file)
{
	char buf[256];
	double v;

	if (cgroup_read_v2(&pool->cg, file, buf, sizeof(buf)) ||
	    sscanf(buf, "some avg10=%lf", &v) != 1)
		return -1;
	return v;
}

static long long read_ll(const struct pool *pool, enum cg_ctrl c, const char *file)
{
	char buf[64];

	if (cgroup_read_file(&pool->cg, c, file, buf, sizeof(buf)))
		return -1;
	if (!strcmp(buf, "max"))
		return -1;
	return atoll(buf);
}

static void read_memory(struct pool *pool)
{
	struct pool_metrics *m = &pool->m;
	bool v1 = pool->cg.v1[CG_MEMORY][0];

	m->mem_current = read_ll(pool, CG_MEMORY, v1 ? "memory.usage_in_bytes" :
							"memory.current");
	m->mem_peak = read_ll(pool, CG_MEMORY, v1 ? "memory.max_usage_in_bytes" :
						     "memory.peak");
	m->mem_limit = read_ll(pool, CG_MEMORY, "memory.max");
	/* v1 reports "no limit" as a huge page-aligned number. */
	if (m->mem_limit > (1LL << 60))
		m->mem_limit = -1;
	m->oom_kills = cgroup_oom_kills(&pool->cg);
}

static double seconds_between(const struct timespec *a, const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) + (b->tv_nsec - a->tv_nsec) / 1e9;
}

/* Reads CPU use from the v2 cpu.stat, which every group has, and throttling where cpu lives. */
static void read_cpu(struct pool *pool, double dt)
{
	struct pool_scaler *sc = &pool->sc;
	struct pool_metrics *m = &pool->m;
	unsigned long long usage = 0, nr = 0, thr = 0;
	char buf[1024];
	bool v1 = pool->cg.v1[CG_CPU][0];

	if (!cgroup_read_v2(&pool->cg, "cpu.stat", buf, sizeof(buf)) &&
	    keyed_value(buf, "usage_usec", &usage) && sc->have_prev && dt > 0)
		m->cpu_usage = (double)(usage - sc->prev_usage_us) / 1e6 / dt;
	sc->prev_usage_us = usage;
	if (!cgroup_read_file(&pool->cg, CG_CPU, "cpu.stat", buf, sizeof(buf))) {
		keyed_value(buf, "nr_throttled", &nr);
		if (v1 && keyed_value(buf, "throttled_time", &thr))
			thr /= 1000;
		else if (!v1)
			keyed_value(buf, "throttled_usec", &thr);
	}
	if (sc->have_prev) {
		m->nr_throttled = nr - sc->prev_nr_throttled;
		m->throttled_ms = (double)(thr - sc->prev_throttled_us) / 1000;
	}
	sc->prev_nr_throttled = nr;
	sc->prev_throttled_us = thr;
	m->cpu_limit = pool->cfg->limits.has_cpus ? pool->cfg->limits.cpus : 0;
}

/* Reads each worker's active connections from its slot counters and its listener's queue. */
static void read_workers(struct controller *ctl, struct pool *pool)
{
	int fd = bpf_map__fd(ctl->skel->maps.slot_stats), j;
	__u64 ss[2];
	struct tcp_info ti;
	struct worker *w;
	socklen_t len;

	pool->m.queued = 0;
	pool->m.queued_max = 0;
	for (j = 0; j < TRIAGE_MAX_WORKERS; j++) {
		w = &pool->workers[j];
		w->active = 0;
		w->queued = 0;
		/* Idle slots are left out of the report, so their counters are not read. */
		if (!w->pid && !w->in_pool)
			continue;
		if (!bpf_percpu_sum(fd, w->slot, ss, 2))
			w->active = ss[0] > ss[1] ? ss[0] - ss[1] : 0;
		if (w->lfd < 0)
			continue;
		len = sizeof(ti);
		/* For a listener, tcpi_unacked is the accept-queue depth. */
		if (getsockopt(w->lfd, IPPROTO_TCP, TCP_INFO, &ti, &len))
			continue;
		w->queued = ti.tcpi_unacked;
		pool->m.queued += ti.tcpi_unacked;
		if (ti.tcpi_unacked > pool->m.queued_max)
			pool->m.queued_max = ti.tcpi_unacked;
	}
}

static void read_signals(struct controller *ctl, struct pool *pool)
{
	struct pool_scaler *sc = &pool->sc;
	struct pool_metrics *m = &pool->m;
	__u64 cs[sizeof(struct triage_conn_stats) / sizeof(__u64)] = {};
	struct timespec now;
	double dt = 0;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (sc->have_prev)
		dt = seconds_between(&sc->prev_at, &now);
	bpf_percpu_sum(bpf_map__fd(ctl->skel->maps.conn_stats), pool->id, cs,
		    sizeof(cs) / sizeof(cs[0]));
	/* established, closed are the first two fields of triage_conn_stats. */
	m->active = cs[0] > cs[1] ? cs[0] - cs[1] : 0;
	if (sc->have_prev && dt > 0) {
		m->conn_rate = (double)(cs[0] - sc->prev_established) / dt;
		m->done_rate = (double)(cs[1] - sc->prev_closed) / dt;
	}
	if (cs[0] != sc->prev_established || m->active)
		sc->last_conn = now;
	sc->prev_established = cs[0];
	sc->prev_closed = cs[1];
	read_workers(ctl, pool);
	read_cpu(pool, dt);
	read_memory(pool);
	m->psi_cpu = read_psi(pool, "cpu.pressure");
	m->psi_mem = read_psi(pool, "memory.pressure");
	m->psi_io = read_psi(pool, "io.pressure");
	sc->prev_at = now;
	sc->have_prev = true;
}

/* Returns the worker count that the policy recommends this tick, before cap and window. */
static __u32 recommend(const struct pool *pool, __u32 cur, char *reason, size_t len)
{
	const struct pool_scaling *s = &pool->cfg->scaling;
	const struct pool_metrics *m = &pool->m;
	double want;
	size_t n;

	if (s->target == SCALE_CPU) {
		double limit = m->cpu_limit > 0 ? m->cpu_limit : cur;
		double util = limit > 0 ? m->cpu_usage / limit : 0;

		want = ceil(cur * util / s->target_value - 1e-9);
		snprintf(reason, len, "CPU %.2f of %.2f allowed (%.0f%%), target %.0f%%",
			 m->cpu_usage, limit, util * 100, s->target_value * 100);
		/*
		 * Use cannot rise above the limit, so a pool at its limit hides how
		 * much more it needs: grow it by the whole factor instead.
		 */
		if (util >= SATURATED && want < ceil(cur * s->up_factor - 1e-9)) {
			want = ceil(cur * s->up_factor - 1e-9);
			n = strlen(reason);
			snprintf(reason + n, len - n, "; at its limit, so up to x%g", s->up_factor);
		}
	} else {
		/* Queued connections are counted as active: they are established already. */
		want = ceil((double)m->active / s->target_value - 1e-9);
		snprintf(reason, len, "%llu active connections (%u queued), target %g per worker",
			 (unsigned long long)m->active, m->queued, s->target_value);
	}
	if (want < s->min)
		want = s->min;
	if (want > s->max)
		want = s->max;
	return (__u32)want;
}

/* Returns the highest recommendation over the stabilization window, this tick's included. */
static __u32 window_max(struct pool_scaler *sc, const struct pool_scaling *s, __u32 rec)
{
	long long bucket_ms = s->down_window_s * 1000LL / SCALE_BUCKETS, now_ms, id;
	struct timespec now;
	__u32 best = rec;
	int i;

	clock_gettime(CLOCK_MONOTONIC, &now);
	now_ms = now.tv_sec * 1000LL + now.tv_nsec / 1000000;
	if (bucket_ms <= 0)
		return rec;
	id = now_ms / bucket_ms;
	i = id % SCALE_BUCKETS;
	if (sc->bucket_id[i] != id) {
		sc->bucket_id[i] = id;
		sc->bucket_max[i] = 0;
	}
	if (rec > sc->bucket_max[i])
		sc->bucket_max[i] = rec;
	for (i = 0; i < SCALE_BUCKETS; i++)
		if (sc->bucket_id[i] > id - SCALE_BUCKETS && sc->bucket_max[i] > best)
			best = sc->bucket_max[i];
	return best;
}

/* Applies the growth cap and the scale-down window to this tick's recommendation. */
static __u32 desired_size(struct pool *pool, __u32 cur, __u32 rec, char *reason, size_t len)
{
	const struct pool_scaling *s = &pool->cfg->scaling;
	__u32 high = window_max(&pool->sc, s, rec), cap;
	size_t n = strlen(reason);

	pool->sc.stabilized = rec > cur ? rec : (high < cur ? high : cur);
	if (rec > cur) {
		cap = (__u32)ceil(cur * s->up_factor - 1e-9);
		if (s->up_step_max && cap > cur + s->up_step_max)
			cap = cur + s->up_step_max;
		if (cap <= cur)
			cap = cur + 1;
		if (rec > cap) {
			snprintf(reason + n, len - n, "; growth capped at %u this tick", cap);
			return cap;
		}
		return rec;
	}
	if (high < cur) {
		snprintf(reason + n, len - n, "; highest recommendation in the last %u s: %u",
			 s->down_window_s, high);
		return high;
	}
	return cur;
}

/* Returns the CPU and the memory that N workers of POOL need from the budget. */
static double cpu_need(const struct pool *pool, __u32 n)
{
	if (pool->cfg->scaling.cpus_per_worker > 0)
		return n * pool->cfg->scaling.cpus_per_worker;
	return pool->cfg->limits.has_cpus ? pool->cfg->limits.cpus : 0;
}

static double mem_need(const struct pool *pool, __u32 n)
{
	if (pool->cfg->scaling.memory_per_worker > 0)
		return (double)n * pool->cfg->scaling.memory_per_worker;
	return pool->cfg->limits.memory_max > 0 ? pool->cfg->limits.memory_max : 0;
}

static bool scaled(const struct controller *ctl, const struct pool *pool)
{
	return pool->active && pool->cfg->scaling.enabled && !pool->sc.removing &&
	       !attach_is_service_pool(ctl, pool);
}

/*
 * Fits the desired sizes into the budget: each scaled pool keeps its
 * minimum, then the workers left over go one at a time to the pool with the
 * fewest extra workers per unit of weight, as long as they fit.
 */
static void fit_budget(struct controller *ctl)
{
	const struct budget_config *b = &ctl->cfg->budget;
	double cpu_left = b->has_cpus ? b->cpus : INFINITY;
	double mem_left = b->memory > 0 ? (double)b->memory : INFINITY;
	struct pool *p, *best;
	double score, best_score;
	int i;

	for (i = 0; i < ctl->nr_pools; i++) {
		p = &ctl->pools[i];
		if (!p->active)
			continue;
		p->sc.granted = scaled(ctl, p) ? p->cfg->scaling.min : (__u32)workers_in_pool(p);
		cpu_left -= cpu_need(p, p->sc.granted);
		mem_left -= mem_need(p, p->sc.granted);
	}
	for (;;) {
		best = NULL;
		best_score = INFINITY;
		for (i = 0; i < ctl->nr_pools; i++) {
			p = &ctl->pools[i];
			if (!scaled(ctl, p) || p->sc.granted >= p->sc.stabilized)
				continue;
			if (cpu_need(p, p->sc.granted + 1) - cpu_need(p, p->sc.granted) >
			    cpu_left + CPU_EPSILON ||
			    mem_need(p, p->sc.granted + 1) - mem_need(p, p->sc.granted) > mem_left)
				continue;
			score = (double)(p->sc.granted - p->cfg->scaling.min) /
				p->cfg->scaling.weight;
			if (score < best_score) {
				best_score = score;
				best = p;
			}
		}
		if (!best)
			break;
		cpu_left -= cpu_need(best, best->sc.granted + 1) - cpu_need(best, best->sc.granted);
		mem_left -= mem_need(best, best->sc.granted + 1) - mem_need(best, best->sc.granted);
		best->sc.granted++;
	}
}

static void note_decision(struct pool *pool, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void note_decision(struct pool *pool, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(pool->sc.decision, sizeof(pool->sc.decision), fmt, ap);
	va_end(ap);
	pool->sc.decision_at = time(NULL);
	pr_info("pool '%s': %s", pool->cfg->name, pool->sc.decision);
}

/* Writes the limits for N workers. Returns false when the kernel rejected a value. */
static bool set_limits(struct pool *pool, __u32 n)
{
	struct pool_config *cfg = pool->cfg;
	char err[512];

	if (cfg->scaling.cpus_per_worker > 0 && cfg->limits.cpus != n * cfg->scaling.cpus_per_worker) {
		if (cgroup_set_cpus(&pool->cg, n * cfg->scaling.cpus_per_worker, err, sizeof(err))) {
			pr_warn("pool '%s': %s", cfg->name, err);
			return false;
		}
		cfg->limits.cpus = n * cfg->scaling.cpus_per_worker;
	}
	if (cfg->scaling.memory_per_worker > 0 &&
	    cfg->limits.memory_max != (int64_t)n * cfg->scaling.memory_per_worker) {
		if (cgroup_set_memory_max(&pool->cg, (int64_t)n * cfg->scaling.memory_per_worker,
					  err, sizeof(err))) {
			pr_warn("pool '%s': %s; keeping the memory limit at %lld bytes",
				cfg->name, err, (long long)cfg->limits.memory_max);
			return false;
		}
		cfg->limits.memory_max = (int64_t)n * cfg->scaling.memory_per_worker;
	}
	return true;
}

static void describe_limits(const struct pool *pool, char *buf, size_t len)
{
	const struct pool_limits *l = &pool->cfg->limits;
	int n = 0;

	buf[0] = '\0';
	if (pool->cfg->scaling.cpus_per_worker > 0)
		n = snprintf(buf, len, "; cpu limit %.2f CPUs", l->cpus);
	if (pool->cfg->scaling.memory_per_worker > 0 && n >= 0 && (size_t)n < len)
		snprintf(buf + n, len - n, "; memory limit %lld MiB",
			 (long long)(l->memory_max >> 20));
}

static void shrink(struct controller *ctl, struct pool *pool, __u32 cur, const char *reason)
{
	__u32 to = pool->sc.granted;
	char lim[128];

	workers_drain(ctl, pool, cur - to);
	set_limits(pool, to);
	describe_limits(pool, lim, sizeof(lim));
	note_decision(pool, "workers %u -> %u: %s%s", cur, to, reason, lim);
}

/* Computes the budget still free after every other pool's current limits. */
static void budget_left(struct controller *ctl, const struct pool *except, double *cpu,
			double *mem)
{
	const struct budget_config *b = &ctl->cfg->budget;
	int i;

	*cpu = b->has_cpus ? b->cpus : INFINITY;
	*mem = b->memory > 0 ? (double)b->memory : INFINITY;
	for (i = 0; i < ctl->nr_pools; i++) {
		const struct pool *p = &ctl->pools[i];

		if (!p->active || p == except)
			continue;
		*cpu -= p->cfg->limits.has_cpus ? p->cfg->limits.cpus : 0;
		*mem -= p->cfg->limits.memory_max > 0 ? p->cfg->limits.memory_max : 0;
	}
}

static void grow(struct controller *ctl, struct pool *pool, __u32 cur, const char *reason)
{
	__u32 to = pool->sc.granted;
	double cpu, mem;
	char lim[128];

	/* A pool whose memory limit could not be lowered yet counts with its old limit. */
	budget_left(ctl, pool, &cpu, &mem);
	while (to > cur && (cpu_need(pool, to) > cpu + CPU_EPSILON || mem_need(pool, to) > mem))
		to--;
	if (to == cur)
		return;
	if (!set_limits(pool, to))
		return;
	workers_add(ctl, pool, to - cur);
	describe_limits(pool, lim, sizeof(lim));
	note_decision(pool, "workers %u -> %u: %s%s", cur, to, reason, lim);
}

static void report_held_back(struct pool *pool, __u32 before)
{
	const struct pool_scaler *sc = &pool->sc;

	if (sc->held_back == before)
		return;
	if (sc->held_back)
		pr_warn("pool '%s': held back by the host budget: wants %u workers, the budget grants %u (%u fewer, weight %u)",
			pool->cfg->name, sc->stabilized, sc->share, sc->held_back,
			pool->cfg->scaling.weight);
	else
		pr_info("pool '%s': no longer held back by the host budget (wants %u workers)",
			pool->cfg->name, sc->stabilized);
}

void autoscale_tick(struct controller *ctl)
{
	static char reason[TRIAGE_MAX_POOLS][256];
	__u32 cur[TRIAGE_MAX_POOLS] = {}, prev_held;
	struct pool *p;
	int i;

	for (i = 0; i < ctl->nr_pools; i++) {
		p = &ctl->pools[i];
		if (!p->active)
			continue;
		read_signals(ctl, p);
		cur[i] = workers_in_pool(p);
		p->sc.desired = cur[i];
		p->sc.stabilized = cur[i];
		if (!scaled(ctl, p))
			continue;
		/* The starting size counts as a recommendation, so it stays for one window. */
		if (!p->sc.seeded) {
			window_max(&p->sc, &p->cfg->scaling, cur[i]);
			p->sc.seeded = true;
		}
		p->sc.recommended = recommend(p, cur[i], reason[i], sizeof(reason[i]));
		p->sc.desired = desired_size(p, cur[i], p->sc.recommended, reason[i], sizeof(reason[i]));
	}
	/*
	 * The budget shares out the stabilized recommendations, so a pool held
	 * back shows its full shortfall. The growth cap then limits how much of
	 * its share it takes in this tick.
	 */
	fit_budget(ctl);
	for (i = 0; i < ctl->nr_pools; i++) {
		p = &ctl->pools[i];
		if (!scaled(ctl, p))
			continue;
		prev_held = p->sc.held_back;
		p->sc.share = p->sc.granted;
		p->sc.held_back = p->sc.stabilized > p->sc.share ? p->sc.stabilized - p->sc.share : 0;
		if (p->sc.granted > p->sc.desired)
			p->sc.granted = p->sc.desired;
		report_held_back(p, prev_held);
		if (p->sc.granted < cur[i])
			shrink(ctl, p, cur[i], reason[i]);
	}
	for (i = 0; i < ctl->nr_pools; i++) {
		p = &ctl->pools[i];
		if (scaled(ctl, p) && p->sc.granted > cur[i])
			grow(ctl, p, cur[i], reason[i]);
	}
	pools_report_write(ctl, false);
}
