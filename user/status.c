// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* `triage status` and `triage detach`: read and undo what runs pinned. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "attach.h"
#include "controller.h"
#include "log.h"
#include "lookup.h"
#include "sysutil.h"

#define DETACH_WAIT_S	30

struct pool_view {
	struct triage_pool pool;
	struct triage_steer_stats steer;
	struct triage_conn_stats conn;
};

struct port_view {
	unsigned int port;
	pid_t controller;
	struct triage_port_conf conf;
	struct triage_defer_stats defer;
	/* Connections that no pool accounts for: the kernel's own hash placed them. */
	struct triage_conn_stats unattributed;
	struct pool_view pools[TRIAGE_MAX_POOLS];
	int nr_pools;
	struct triage_category cats[TRIAGE_MAX_CATEGORIES];
	struct triage_steer_stats cat_steer[TRIAGE_MAX_CATEGORIES + 1];
	int nr_cats;
	struct attach_info attach;
	struct triage_lookup_stats lookup;	/* sk_lookup ports only */
};

static int open_pin(const char *dir, const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return bpf_obj_get(path);
}


#define NWORDS(type) ((int)(sizeof(type) / sizeof(__u64)))

static int read_pools(const char *dir, struct port_view *v)
{
	int pools_fd = open_pin(dir, "pools"), steer_fd = open_pin(dir, "pool_stats");
	int conn_fd = open_pin(dir, "conn_stats"), err = 0;
	struct pool_view *pv;
	__u32 i;

	if (pools_fd < 0 || steer_fd < 0 || conn_fd < 0) {
		err = -errno;
		goto out;
	}
	for (i = 0; i < TRIAGE_MAX_POOLS && !err; i++) {
		pv = &v->pools[v->nr_pools];
		if (bpf_map_lookup_elem(pools_fd, &i, &pv->pool) || !pv->pool.name[0])
			continue;
		err = bpf_percpu_sum(steer_fd, i, (__u64 *)&pv->steer, NWORDS(pv->steer));
		if (!err)
			err = bpf_percpu_sum(conn_fd, i, (__u64 *)&pv->conn, NWORDS(pv->conn));
		v->nr_pools++;
	}
	if (!err)
		err = bpf_percpu_sum(conn_fd, TRIAGE_UNKNOWN_POOL, (__u64 *)&v->unattributed,
				  NWORDS(v->unattributed));
out:
	close(pools_fd);
	close(steer_fd);
	close(conn_fd);
	return err;
}

static int read_categories(const char *dir, struct port_view *v)
{
	int cat_fd = open_pin(dir, "categories"), steer_fd = open_pin(dir, "category_stats");
	int err = 0;
	__u32 i;

	if (cat_fd < 0 || steer_fd < 0) {
		err = -errno;
		goto out;
	}
	for (i = 0; i <= TRIAGE_MAX_CATEGORIES && !err; i++) {
		if (i < TRIAGE_MAX_CATEGORIES &&
		    (bpf_map_lookup_elem(cat_fd, &i, &v->cats[i]) || !v->cats[i].name[0]))
			continue;
		err = bpf_percpu_sum(steer_fd, i, (__u64 *)&v->cat_steer[i],
				  NWORDS(v->cat_steer[i]));
		if (i < TRIAGE_MAX_CATEGORIES)
			v->nr_cats = i + 1;
	}
out:
	close(cat_fd);
	close(steer_fd);
	return err;
}

static int read_port(const char *dir, unsigned int port, struct port_view *v)
{
	int fd, err;
	__u32 zero = 0;

	memset(v, 0, sizeof(*v));
	v->port = port;
	v->controller = state_live_controller(port);
	fd = open_pin(dir, "conf");
	if (fd < 0)
		return -errno;
	err = bpf_map_lookup_elem(fd, &zero, &v->conf) ? -errno : 0;
	close(fd);
	fd = open_pin(dir, "defer_stats");
	if (!err && fd >= 0)
		err = bpf_percpu_sum(fd, 0, (__u64 *)&v->defer, NWORDS(v->defer));
	if (fd >= 0)
		close(fd);
	if (!err)
		err = read_pools(dir, v);
	if (!err)
		err = read_categories(dir, v);
	attach_read_info(port, &v->attach);
	fd = open_pin(dir, "lookup_stats");
	if (!err && fd >= 0)
		err = bpf_percpu_sum(fd, 0, (__u64 *)&v->lookup, NWORDS(v->lookup));
	if (fd >= 0)
		close(fd);
	return err;
}

static void print_attach_text(const struct port_view *v)
{
	const struct attach_info *a = &v->attach;

	if (!a->attached) {
		printf("  owned by triage: every listener of the port belongs to its pools\n");
		return;
	}
	printf("  attached to service pid %d (%s), steered by %s; the service's sockets form pool '%s'%s\n",
	       a->pid, a->pid_running ? a->command : "no longer running",
	       strcmp(a->mech, "reuseport") ? "an sk_lookup program (client prefixes only; payload rules choose among triage's pools)" :
					      "its reuseport group (payload rules)",
	       a->pool, a->moved ? ", its processes moved into that pool's cgroups" : "");
	if (strcmp(a->mech, "reuseport"))
		printf("  sk_lookup: %llu lookups to the service, %llu to triage's pools, %llu with no pool listener, %llu assign errors\n",
		       (unsigned long long)v->lookup.to_service,
		       (unsigned long long)v->lookup.to_pools,
		       (unsigned long long)v->lookup.no_pool_listener,
		       (unsigned long long)v->lookup.assign_err);
}

static void json_string(const char *text)
{
	putchar('"');
	for (; *text; text++) {
		if (*text == '"' || *text == '\\')
			printf("\\%c", *text);
		else if ((unsigned char)*text < 0x20)
			printf("\\u%04x", *text);
		else
			putchar(*text);
	}
	putchar('"');
}

static void print_attach_json(const struct port_view *v)
{
	const struct attach_info *a = &v->attach;

	if (!a->attached) {
		printf("\"steering\":\"owned\",\"service\":null,");
		return;
	}
	printf("\"steering\":\"attached\",\"service\":{\"pid\":%d,\"running\":%s,\"command\":",
	       a->pid, a->pid_running ? "true" : "false");
	json_string(a->command);
	printf(",\"mechanism\":\"%s\",\"pool\":\"%s\",\"moved_to_pool\":%s", a->mech, a->pool,
	       a->moved ? "true" : "false");
	if (strcmp(a->mech, "reuseport"))
		printf(",\"lookup\":{\"to_service\":%llu,\"to_pools\":%llu,\"no_pool_listener\":%llu,\"assign_errors\":%llu}",
		       (unsigned long long)v->lookup.to_service,
		       (unsigned long long)v->lookup.to_pools,
		       (unsigned long long)v->lookup.no_pool_listener,
		       (unsigned long long)v->lookup.assign_err);
	printf("},");
}

static double payload_share(const struct triage_steer_stats *s)
{
	__u64 total = s->payload + s->syn;

	return total ? 100.0 * s->payload / total : 0.0;
}

static void print_text(const struct port_view *v)
{
	const struct pool_view *pv;
	const struct triage_steer_stats *cs;
	int i;

	printf("port %u: mode %s, controller %s", v->port,
	       v->conf.mode == TRIAGE_MODE_PAYLOAD ? "payload" : "connection",
	       v->controller ? "running" : "not running (pinned programs keep steering)");
	if (v->controller)
		printf(" (pid %d)", v->controller);
	printf(", handshake ACKs deferred %llu\n", (unsigned long long)v->defer.acks_dropped);
	print_attach_text(v);
	if (v->unattributed.established)
		printf("  %llu connections went to no pool's listener (a pool had no worker, so the kernel's reuseport hash chose)\n",
		       (unsigned long long)v->unattributed.established);
	printf("  %-16s %7s %7s %9s %9s %9s %7s %9s %7s %8s\n", "POOL", "WORKERS", "ACTIVE",
	       "CONNS", "PAYLOAD", "SYN", "HINTED", "DEFAULT", "ERRORS", "PAYLOAD%");
	for (i = 0; i < v->nr_pools; i++) {
		pv = &v->pools[i];
		printf("  %-16s %7u %7lld %9llu %9llu %9llu %7llu %9llu %7llu %7.1f%%\n",
		       pv->pool.name, pv->pool.nr_slots,
		       (long long)(pv->conn.established - pv->conn.closed),
		       (unsigned long long)pv->conn.established,
		       (unsigned long long)pv->steer.payload, (unsigned long long)pv->steer.syn,
		       (unsigned long long)pv->steer.syn_hinted,
		       (unsigned long long)pv->steer.to_default,
		       (unsigned long long)pv->steer.select_err, payload_share(&pv->steer));
	}
	printf("  %-16s %-16s %9s %9s %7s\n", "CATEGORY", "POOL", "PAYLOAD", "SYN", "ERRORS");
	for (i = 0; i <= TRIAGE_MAX_CATEGORIES; i++) {
		cs = &v->cat_steer[i];
		if (i < TRIAGE_MAX_CATEGORIES && (i >= v->nr_cats || !v->cats[i].name[0]))
			continue;
		printf("  %-16s %-16s %9llu %9llu %7llu\n",
		       i < TRIAGE_MAX_CATEGORIES ? v->cats[i].name : "(no rule)",
		       i < TRIAGE_MAX_CATEGORIES ? v->pools[v->cats[i].pool].pool.name :
						   v->pools[v->conf.default_pool].pool.name,
		       (unsigned long long)cs->payload, (unsigned long long)cs->syn,
		       (unsigned long long)cs->select_err);
	}
}

static void print_json(const struct port_view *v, bool first)
{
	const struct pool_view *pv;
	int i;

	printf("%s{\"port\":%u,\"mode\":\"%s\",\"controller_pid\":%d,\"acks_deferred\":%llu,"
	       "\"unattributed\":%llu,", first ? "" : ",", v->port,
	       v->conf.mode == TRIAGE_MODE_PAYLOAD ? "payload" : "connection", v->controller,
	       (unsigned long long)v->defer.acks_dropped,
	       (unsigned long long)v->unattributed.established);
	print_attach_json(v);
	printf("\"pools\":[");
	for (i = 0; i < v->nr_pools; i++) {
		pv = &v->pools[i];
		printf("%s{\"name\":\"%s\",\"workers\":%u,\"active\":%lld,\"established\":%llu,"
		       "\"closed\":%llu,\"bytes_in\":%llu,\"bytes_out\":%llu,\"payload\":%llu,"
		       "\"syn\":%llu,\"syn_hinted\":%llu,\"default\":%llu,"
		       "\"select_errors\":%llu,\"payload_share\":%.4f}",
		       i ? "," : "", pv->pool.name, pv->pool.nr_slots,
		       (long long)(pv->conn.established - pv->conn.closed),
		       (unsigned long long)pv->conn.established,
		       (unsigned long long)pv->conn.closed,
		       (unsigned long long)pv->conn.bytes_in,
		       (unsigned long long)pv->conn.bytes_out,
		       (unsigned long long)pv->steer.payload, (unsigned long long)pv->steer.syn,
		       (unsigned long long)pv->steer.syn_hinted,
		       (unsigned long long)pv->steer.to_default,
		       (unsigned long long)pv->steer.select_err, payload_share(&pv->steer) / 100);
	}
	printf("],\"categories\":[");
	for (i = 0; i <= TRIAGE_MAX_CATEGORIES; i++) {
		const struct triage_steer_stats *cs = &v->cat_steer[i];
		bool other = i == TRIAGE_MAX_CATEGORIES;

		if (!other && (i >= v->nr_cats || !v->cats[i].name[0]))
			continue;
		printf("{\"name\":%s%s%s,\"pool\":\"%s\",\"payload\":%llu,\"syn\":%llu,"
		       "\"select_errors\":%llu}%s",
		       other ? "" : "\"", other ? "null" : v->cats[i].name, other ? "" : "\"",
		       other ? v->pools[v->conf.default_pool].pool.name :
			       v->pools[v->cats[i].pool].pool.name,
		       (unsigned long long)cs->payload, (unsigned long long)cs->syn,
		       (unsigned long long)cs->select_err, other ? "" : ",");
	}
	printf("]}");
}

static int parse_port(const char *text, unsigned int *port)
{
	char *end;
	long v = strtol(text, &end, 10);

	if (*text == '\0' || *end || v < 1 || v > 65535) {
		fprintf(stderr, "triage: invalid port '%s': expected an integer from 1 to 65535\n",
			text);
		return 2;
	}
	*port = v;
	return 0;
}

int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "port", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	static const char usage[] = "Usage: triage status [--port P] [--json]\n"
		"Prints per port and pool: workers, connections and how they were steered.\n";
	unsigned int port = 0, p;
	struct port_view *v = calloc(1, sizeof(*v));
	bool json = false, any = false, printed = false;
	struct dirent *de;
	char dir[512];
	int c, ret = 0;
	DIR *d;

	while (v && (c = getopt_long(argc, argv, "jp:h", opts, NULL)) != -1) {
		if (c == 'j')
			json = true;
		else if (c == 'p' && !parse_port(optarg, &port))
			continue;
		else if (c == 'h')
			ret = (fputs(usage, stdout), -1);
		else
			ret = (fputs(usage, stderr), 2);
		if (ret)
			break;
	}
	if (!v || ret) {
		free(v);
		if (ret < 0)
			return 0;	/* --help */
		if (ret)
			return ret;
		return 1;	/* out of memory */
	}
	d = opendir(PIN_ROOT);
	if (json)
		printf("[");
	while (d && (de = readdir(d))) {
		if (sscanf(de->d_name, "%u", &p) != 1 || (port && p != port))
			continue;
		snprintf(dir, sizeof(dir), "%s/%s", PIN_ROOT, de->d_name);
		if (read_port(dir, p, v)) {
			fprintf(stderr, "triage: port %u: cannot read pins at %s: %s; if no triage runs for it, remove them with 'triage detach --port %u'\n",
				p, dir, strerror(errno), p);
			ret = 1;
			any = true;
			continue;
		}
		if (json)
			print_json(v, !printed);
		else
			print_text(v);
		any = printed = true;
	}
	if (d)
		closedir(d);
	if (json)
		printf("]\n");
	else if (!any)
		printf(port ? "port %u: not attached\n" : "no port is attached%.0u\n", port);
	free(v);
	return ret;
}

int cmd_detach(int argc, char **argv)
{
	static const char usage[] = "Usage: triage detach --port P [--force]\n"
		"Stops the controller of port P, or removes what a crashed one left.\n"
		"  --force   undo a record of a network namespace that no longer exists,\n"
		"            skipping that namespace's tc filters and sysctls\n";
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	unsigned int port = 0;
	bool force = false;
	char path[128], dir[256];
	struct stat st;
	int c, i;
	pid_t pid;

	while ((c = getopt_long(argc, argv, "p:fh", opts, NULL)) != -1) {
		if (c == 'p' && !parse_port(optarg, &port))
			continue;
		if (c == 'f') {
			force = true;
			continue;
		}
		fputs(usage, c == 'h' ? stdout : stderr);
		return c == 'h' ? 0 : 2;
	}
	if (!port) {
		fprintf(stderr, "triage: missing --port P\n%s", usage);
		return 2;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "triage: 'triage detach' must run as root; try: sudo triage detach --port %u\n",
			port);
		return 1;
	}
	pid = state_live_controller(port);
	if (pid) {
		pr_info("port %u: stopping controller pid %d", port, pid);
		kill(pid, SIGTERM);
		for (i = 0; i < DETACH_WAIT_S * 10 && proc_alive(pid); i++)
			sleep_ms(100);
		if (proc_alive(pid)) {
			pr_err("port %u: controller pid %d still running after %d s", port, pid,
			       DETACH_WAIT_S);
			return 1;
		}
	}
	state_path(port, path, sizeof(path));
	snprintf(dir, sizeof(dir), "%s/%u", PIN_ROOT, port);
	if (!pid && stat(path, &st) && stat(dir, &st)) {
		fprintf(stderr, "triage: port %u: not attached (no record at %s, no pins at %s)\n",
			port, path, dir);
		return 1;
	}
	if (!stat(path, &st) && state_undo(port, force))
		return 1;
	if (!stat(dir, &st) && pins_remove(dir))
		return 1;
	pr_info("port %u: detached", port);
	return 0;
}
