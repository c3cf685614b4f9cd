// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The pools report: once per tick the controller writes each pool's size,
 * limits, signals and last scaling decision to STATE_DIR/PORT.pools.json
 * and a table to PORT.pools.txt, and `triage pools` prints them.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "controller.h"
#include "log.h"

/* A report older than this, in seconds, is flagged: the longest tick is 60 s. */
#define STALE_S		120

static void report_path(uint16_t port, const char *ext, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%u.pools.%s", STATE_DIR, port, ext);
}

/* Writes TEXT as a JSON string; decision texts are built by the controller. */
static void json_string(FILE *f, const char *text)
{
	const char *s;

	fputc('"', f);
	for (s = text; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

/* Writes "KEY": V, or null for a negative V, which marks a figure not available. */
static void json_number(FILE *f, const char *key, double v, bool last)
{
	if (v < 0)
		fprintf(f, "\"%s\": null%s", key, last ? "" : ", ");
	else if (v == (double)(long long)v)
		fprintf(f, "\"%s\": %lld%s", key, (long long)v, last ? "" : ", ");
	else
		fprintf(f, "\"%s\": %.3f%s", key, v, last ? "" : ", ");
}

static void json_workers(FILE *f, const struct pool *p)
{
	static const char *const states[] = { "idle", "running", "draining" };
	const struct worker *w;
	bool first = true;
	int j;

	for (j = 0; j < TRIAGE_MAX_WORKERS; j++) {
		w = &p->workers[j];
		if (!w->pid && !w->in_pool)
			continue;
		fprintf(f, "%s{\"index\": %d, \"slot\": %u, \"pid\": %d, \"state\": \"%s\", \"in_pool\": %s, \"active\": %llu, \"queued\": %u, \"restarts\": %d}",
			first ? "" : ", ", j, w->slot, (int)w->pid, states[w->state],
			w->in_pool ? "true" : "false", (unsigned long long)w->active, w->queued,
			w->restarts);
		first = false;
	}
}

static void json_pool(FILE *f, const struct pool *p)
{
	const struct pool_config *c = p->cfg;
	const struct pool_metrics *m = &p->m;
	const struct pool_scaler *sc = &p->sc;
	int cur = workers_in_pool(p);

	fprintf(f, "    {\"name\": ");
	json_string(f, c->name);
	fprintf(f, ", \"id\": %u, \"removable\": %s, \"emerged\": %s, \"removing\": %s,\n",
		p->id, c->removable ? "true" : "false", p->emerged ? "true" : "false",
		sc->removing ? "true" : "false");
	fprintf(f, "     \"workers\": {\"current\": %d, \"running\": %d, \"desired\": %u, \"granted\": %u, \"min\": %u, \"max\": %u, \"held_back\": %u, \"scaled\": %s},\n",
		cur, workers_alive(p), c->scaling.enabled ? sc->stabilized : (__u32)cur,
		c->scaling.enabled ? sc->share : (__u32)cur,
		c->scaling.enabled ? c->scaling.min : (__u32)cur,
		c->scaling.enabled ? c->scaling.max : (__u32)cur, sc->held_back,
		c->scaling.enabled ? "true" : "false");
	fprintf(f, "     \"limits\": {");
	json_number(f, "cpus", c->limits.has_cpus ? c->limits.cpus : -1, false);
	json_number(f, "memory_max", (double)c->limits.memory_max, true);
	fprintf(f, "},\n");
	fprintf(f, "     \"utilization\": {\"active\": %llu, ", (unsigned long long)m->active);
	json_number(f, "active_per_worker", cur ? (double)m->active / cur : 0, false);
	fprintf(f, "\"queued\": %u, \"queued_max\": %u, ", m->queued, m->queued_max);
	json_number(f, "conn_per_s", m->conn_rate, false);
	json_number(f, "cpu_usage", m->cpu_usage, false);
	json_number(f, "cpu_utilization", m->cpu_limit > 0 ? m->cpu_usage / m->cpu_limit : -1,
		    false);
	json_number(f, "throttled_ms", m->throttled_ms, true);
	fprintf(f, "},\n     \"memory\": {");
	json_number(f, "current", m->mem_current, false);
	json_number(f, "peak", m->mem_peak, false);
	fprintf(f, "\"oom_kills\": %llu},\n", (unsigned long long)m->oom_kills);
	fprintf(f, "     \"psi\": {");
	json_number(f, "cpu", m->psi_cpu, false);
	json_number(f, "memory", m->psi_mem, false);
	json_number(f, "io", m->psi_io, true);
	fprintf(f, "},\n     \"worker_list\": [");
	json_workers(f, p);
	fprintf(f, "],\n     \"last_decision\": ");
	if (sc->decision_at) {
		fprintf(f, "{\"time\": %lld, \"text\": ", (long long)sc->decision_at);
		json_string(f, sc->decision);
		fprintf(f, "}}");
	} else {
		fprintf(f, "null}");
	}
}

static void budget_used(const struct controller *ctl, double *cpu, long long *mem)
{
	int i;

	*cpu = 0;
	*mem = 0;
	for (i = 0; i < ctl->nr_pools; i++) {
		const struct pool_limits *l = &ctl->pools[i].cfg->limits;

		if (!ctl->pools[i].active)
			continue;
		*cpu += l->has_cpus ? l->cpus : 0;
		*mem += l->memory_max > 0 ? l->memory_max : 0;
	}
}

static void write_json(const struct controller *ctl, FILE *f)
{
	const struct budget_config *b = &ctl->cfg->budget;
	bool first = true;
	long long mem;
	double cpu;
	int i;

	budget_used(ctl, &cpu, &mem);
	fprintf(f, "{\"port\": %u, \"controller\": %d, \"time\": %lld, \"tick_ms\": %d,\n",
		ctl->cfg->port, (int)getpid(), (long long)time(NULL), ctl->cfg->tick_ms);
	fprintf(f, " \"budget\": {");
	json_number(f, "cpus", b->has_cpus ? b->cpus : -1, false);
	fprintf(f, "\"memory\": %lld, ", (long long)b->memory);
	json_number(f, "cpus_used", cpu, false);
	fprintf(f, "\"memory_used\": %lld},\n \"pools\": [\n", mem);
	for (i = 0; i < ctl->nr_pools; i++) {
		if (!ctl->pools[i].active)
			continue;
		if (!first)
			fprintf(f, ",\n");
		first = false;
		json_pool(f, &ctl->pools[i]);
	}
	fprintf(f, "\n ]}\n");
}

static void format_bytes(long long v, char *buf, size_t len)
{
	if (v < 0)
		snprintf(buf, len, "-");
	else if (v >= 1LL << 30)
		snprintf(buf, len, "%.1fG", v / (double)(1LL << 30));
	else
		snprintf(buf, len, "%.0fM", v / (double)(1 << 20));
}

static void format_psi(double v, char *buf, size_t len)
{
	if (v < 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.1f", v);
}

static void text_pool(const struct pool *p, int width, FILE *f)
{
	const struct pool_config *c = p->cfg;
	const struct pool_metrics *m = &p->m;
	char cpus[16], mlim[16], mcur[16], pc[8], pm[8], pi[8], psi[32], when[16] = "-";
	int cur = workers_in_pool(p);
	struct tm tm;

	if (c->limits.has_cpus)
		snprintf(cpus, sizeof(cpus), "%.2f", c->limits.cpus);
	else
		snprintf(cpus, sizeof(cpus), "-");
	format_bytes(c->limits.memory_max, mlim, sizeof(mlim));
	format_bytes(m->mem_current, mcur, sizeof(mcur));
	format_psi(m->psi_cpu, pc, sizeof(pc));
	format_psi(m->psi_mem, pm, sizeof(pm));
	format_psi(m->psi_io, pi, sizeof(pi));
	snprintf(psi, sizeof(psi), "%s/%s/%s", pc, pm, pi);
	if (p->sc.decision_at && localtime_r(&p->sc.decision_at, &tm))
		strftime(when, sizeof(when), "%H:%M:%S", &tm);
	fprintf(f, "%-*s %3d %3u %3u %3u %4u  %-6s %-6s %6llu %5u %6.2f %-6s %-14s %s %s\n",
		width, c->name, cur, c->scaling.enabled ? p->sc.stabilized : (__u32)cur,
		c->scaling.enabled ? c->scaling.min : (__u32)cur,
		c->scaling.enabled ? c->scaling.max : (__u32)cur, p->sc.held_back, cpus, mlim,
		(unsigned long long)m->active, m->queued, m->cpu_usage, mcur, psi, when,
		p->sc.decision_at ? p->sc.decision : "");
}

static void write_text(const struct controller *ctl, FILE *f)
{
	const struct budget_config *b = &ctl->cfg->budget;
	char mem_used[16], mem_budget[16];
	long long mem;
	double cpu;
	int i, width = 8;

	/* Emerged pools have long names: the first column fits the longest. */
	for (i = 0; i < ctl->nr_pools; i++)
		if (ctl->pools[i].active && (int)strlen(ctl->pools[i].cfg->name) > width)
			width = strlen(ctl->pools[i].cfg->name);
	budget_used(ctl, &cpu, &mem);
	format_bytes(mem, mem_used, sizeof(mem_used));
	format_bytes(b->memory, mem_budget, sizeof(mem_budget));
	fprintf(f, "port %u  controller %d  tick %d ms  budget: CPUs %.2f of ", ctl->cfg->port,
		(int)getpid(), ctl->cfg->tick_ms, cpu);
	if (b->has_cpus)
		fprintf(f, "%.2f", b->cpus);
	else
		fprintf(f, "unlimited");
	fprintf(f, ", memory %s of %s\n", mem_used, b->memory > 0 ? mem_budget : "unlimited");
	fprintf(f, "%-*s %3s %3s %3s %3s %4s  %-6s %-6s %6s %5s %6s %-6s %-14s %s\n", width, "POOL",
		"CUR",
		"DES", "MIN", "MAX", "HELD", "CPUS", "MEMMAX", "ACTIVE", "QUEUE", "CPU", "MEM",
		"PSI c/m/io", "LAST DECISION");
	for (i = 0; i < ctl->nr_pools; i++)
		if (ctl->pools[i].active)
			text_pool(&ctl->pools[i], width, f);
}

/* Writes PATH through a temporary file and rename(), so a reader never sees half a report. */
static void write_atomic(const struct controller *ctl, const char *path,
			 void (*fn)(const struct controller *, FILE *))
{
	char tmp[256];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (!f)
		return;
	fn(ctl, f);
	if (fclose(f) || rename(tmp, path))
		unlink(tmp);
}

void pools_report_write(struct controller *ctl, bool remove)
{
	char json[128], text[128];

	report_path(ctl->cfg->port, "json", json, sizeof(json));
	report_path(ctl->cfg->port, "txt", text, sizeof(text));
	if (remove) {
		unlink(json);
		unlink(text);
		return;
	}
	write_atomic(ctl, json, write_json);
	write_atomic(ctl, text, write_text);
}

static const char pools_usage[] =
	"Usage: triage pools [--port P] [--json]\n"
	"Prints each pool's workers (current, desired, minimum, maximum), limits,\n"
	"utilization, pressure and last scaling decision, as the running controller\n"
	"wrote them at its last tick. Without --port, every port with a controller.\n";

/* Prints one port's report, with a warning when it is stale; returns 1 when there is none. */
static int print_report(uint16_t port, bool json)
{
	char path[128], line[4096];
	struct stat st;
	FILE *f;

	report_path(port, json ? "json" : "txt", path, sizeof(path));
	f = fopen(path, "re");
	if (!f || fstat(fileno(f), &st)) {
		fprintf(stderr, "triage: port %u: no pools report (%s); is 'triage run' running for port %u?\n",
			port, path, port);
		if (f)
			fclose(f);
		return 1;
	}
	if (!state_live_controller(port))
		fprintf(stderr, "triage: port %u: its controller is not running; the report below is from %s",
			port, ctime(&st.st_mtime));
	else if (time(NULL) - st.st_mtime > STALE_S)
		fprintf(stderr, "triage: port %u: the report is %lld s old\n", port,
			(long long)(time(NULL) - st.st_mtime));
	while (fgets(line, sizeof(line), f))
		fputs(line, stdout);
	fclose(f);
	return 0;
}

static int print_all(bool json)
{
	unsigned int port, found = 0;
	struct dirent *de;
	int ret = 0;
	DIR *d = opendir(STATE_DIR);

	while (d && (de = readdir(d))) {
		char ext[8];

		if (sscanf(de->d_name, "%u.pools.%7s", &port, ext) != 2 || strcmp(ext, "txt") ||
		    port > 65535)
			continue;
		if (json && found)
			printf("\n");
		ret |= print_report((uint16_t)port, json);
		found++;
	}
	if (d)
		closedir(d);
	if (!found) {
		fprintf(stderr, "triage: no pools report in %s; no controller is running\n",
			STATE_DIR);
		return 1;
	}
	return ret;
}

int cmd_pools(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	long port = -1;
	bool json = false;
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "p:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			port = strtol(optarg, &end, 10);
			if (*end || port < 1 || port > 65535) {
				fprintf(stderr, "triage: --port '%s': expected a port from 1 to 65535\n",
					optarg);
				return 2;
			}
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			fputs(pools_usage, stdout);
			return 0;
		default:
			fputs(pools_usage, stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "triage: unexpected argument '%s'; 'triage pools' takes only --port and --json\n",
			argv[optind]);
		fputs(pools_usage, stderr);
		return 2;
	}
	return port > 0 ? print_report((uint16_t)port, json) : print_all(json);
}
