// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Tests of the YAML config reader: the example files in tests/configs/ and
 * one inline config per kind of error, checking the return value and that
 * the message names the file, the line and the key.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config.h"

static struct config cfg;
static char err[1024];

/* Returns the path of NAME in tests/configs/, next to this source file. */
static const char *config_path(const char *name)
{
	static char path[512];
	const char *slash = strrchr(__FILE__, '/');
	int dir_len = slash ? (int)(slash - __FILE__ + 1) : 0;

	snprintf(path, sizeof(path), "%.*sconfigs/%s", dir_len, __FILE__, name);
	return path;
}

static void load_full(void)
{
	int ret = config_load(config_path("full.yaml"), &cfg, err, sizeof(err));

	cr_assert_eq(ret, 0, "config_load() returned %d: %s", ret, err);
}

static void free_config(void)
{
	config_free(&cfg);
}

static int parse(const char *text)
{
	return config_parse("bad.yaml", text, strlen(text), &cfg, err, sizeof(err));
}

/*
 * Parses TEXT and checks the return value and that the message starts with
 * "bad.yaml:LINE:" and contains KEY.
 */
static void expect_error(const char *text, int expected_ret, int line, const char *key)
{
	char where[32];
	int ret = parse(text);

	snprintf(where, sizeof(where), "bad.yaml:%d:", line);
	cr_assert_eq(ret, expected_ret, "returned %d, message: %s", ret, err);
	cr_assert_eq(strncmp(err, where, strlen(where)), 0, "expected '%s' first in: %s", where,
		     err);
	cr_assert_not_null(strstr(err, key), "expected '%s' in: %s", key, err);
	config_free(&cfg);
}

static void expect_text(const char *part)
{
	cr_assert_not_null(strstr(err, part), "expected '%s' in: %s", part, err);
}

/* Lines 1 to 5 of most inline configs, so their own lines start at 6. */
#define HEAD \
	"port: 8080\n" \
	"default_pool: light\n" \
	"pools:\n" \
	"  - name: light\n" \
	"    command: [w]\n"

/* Lines 6 to 9: a category whose rules follow from line 10 on. */
#define CATEGORY \
	"categories:\n" \
	"  - name: c\n" \
	"    pool: light\n" \
	"    rules:\n"

/* Example files */

Test(full, settings, .fini = free_config)
{
	uint8_t addr[16];

	load_full();
	inet_pton(AF_INET6, "2001:db8::1", addr);
	cr_assert_eq(cfg.port, 8080);
	cr_assert_eq(cfg.family, AF_INET6);
	cr_assert_arr_eq(cfg.addr, addr, 16);
	cr_assert_str_eq(cfg.addr_text, "2001:db8::1");
	cr_assert_eq(cfg.mode, TRIAGE_MODE_PAYLOAD);
	cr_assert_str_eq(cfg.cgroup_root, "/sys/fs/cgroup/triage-test");
	cr_assert_eq(cfg.nr_ifaces, 2);
	cr_assert_str_eq(cfg.ifaces[0], "lo");
	cr_assert_str_eq(cfg.ifaces[1], "veth0");
	cr_assert_eq(cfg.tick_ms, 500);
	cr_assert_eq(cfg.default_pool, 0);
	cr_assert_eq(cfg.nr_pools, 3);
	cr_assert_eq(cfg.nr_categories, 3);
	cr_assert_eq(cfg.nr_rules, 6);
	cr_assert(strstr(cfg.file, "full.yaml"), "file is '%s'", cfg.file);
}

Test(full, pool_list_command, .fini = free_config)
{
	const struct pool_config *pool = &cfg.pools[0];

	load_full();
	cr_assert_str_eq(pool->name, "light");
	cr_assert_eq(pool->line, 12);
	cr_assert_eq(pool->argc, 3);
	cr_assert_str_eq(pool->argv[0], "build/triage-worker");
	cr_assert_str_eq(pool->argv[1], "--port");
	cr_assert_str_eq(pool->argv[2], "8080");
	cr_assert_null(pool->argv[3]);
	cr_assert_eq(pool->envc, 2);
	cr_assert_str_eq(pool->env[0], "MODE=light");
	cr_assert_str_eq(pool->env[1], "LEVEL=3");
	cr_assert_null(pool->env[2]);
	cr_assert_str_eq(pool->user, "nobody");
	cr_assert_eq(pool->workers, 2);
}

Test(full, pool_limits, .fini = free_config)
{
	const struct pool_limits *limits = &cfg.pools[0].limits;

	load_full();
	cr_assert(limits->has_cpus);
	cr_assert_float_eq(limits->cpus, 0.5, 1e-9);
	cr_assert_eq(limits->cpu_weight, 100);
	cr_assert_str_eq(limits->cpuset, "0-1,3");
	cr_assert_eq(limits->memory_max, 256LL << 20);
	cr_assert_eq(limits->memory_high, 200LL << 20);
	cr_assert_eq(limits->io_weight, 50);
	cr_assert_str_eq(limits->io_max, "8:0 rbps=1048576 wbps=max");
	cr_assert_eq(limits->pids_max, 64);
}

Test(full, pool_string_command, .fini = free_config)
{
	const struct pool_config *pool = &cfg.pools[1];

	load_full();
	cr_assert_str_eq(pool->name, "cpu");
	cr_assert_eq(pool->argc, 4);
	cr_assert_str_eq(pool->argv[0], "build/triage-worker");
	cr_assert_str_eq(pool->argv[1], "--busy");
	cr_assert_str_eq(pool->argv[2], "--port");
	cr_assert_str_eq(pool->argv[3], "8080");
	cr_assert_null(pool->argv[4]);
	cr_assert_eq(pool->envc, 0);
	cr_assert_str_eq(pool->user, "1000");
	cr_assert_eq(pool->workers, 4);
	cr_assert_eq(pool->limits.memory_max, 1LL << 30);
	cr_assert_eq(pool->limits.memory_high, -1);
	cr_assert_eq(pool->limits.pids_max, -1);
	cr_assert_not(pool->limits.has_cpus);
}

Test(full, pool_defaults, .fini = free_config)
{
	const struct pool_config *pool = &cfg.pools[2];

	load_full();
	cr_assert_str_eq(pool->name, "ssh");
	cr_assert_eq(pool->argc, 1);
	cr_assert_str_eq(pool->user, "");
	cr_assert_eq(pool->workers, 1);
	cr_assert_not(pool->limits.has_cpus);
	cr_assert_eq(pool->limits.cpu_weight, 0);
	cr_assert_str_eq(pool->limits.cpuset, "");
	cr_assert_eq(pool->limits.memory_max, -1);
	cr_assert_eq(pool->limits.memory_high, -1);
	cr_assert_eq(pool->limits.io_weight, 0);
	cr_assert_str_eq(pool->limits.io_max, "");
	cr_assert_eq(pool->limits.pids_max, -1);
}

Test(full, categories, .fini = free_config)
{
	load_full();
	cr_assert_str_eq(cfg.categories[0].name, "static");
	cr_assert_eq(cfg.categories[0].pool, 0);
	cr_assert_str_eq(cfg.categories[1].name, "heavy");
	cr_assert_eq(cfg.categories[1].pool, 1);
	cr_assert_str_eq(cfg.categories[2].name, "ssh");
	cr_assert_eq(cfg.categories[2].pool, 2);
	cr_assert_eq(cfg.categories[2].line, 56);
}

/* Priorities in file order are 0, 5, 10, 5, -1, 0. */
Test(full, rule_order, .fini = free_config)
{
	static const int orders[] = { 2, 1, 3, 0, 5, 4 };
	static const int priorities[] = { 10, 5, 5, 0, 0, -1 };
	int i;

	load_full();
	for (i = 0; i < 6; i++) {
		cr_assert_eq(cfg.rules[i].order, orders[i], "rule %d", i);
		cr_assert_eq(cfg.rules[i].priority, priorities[i], "rule %d", i);
	}
}

Test(full, rule_path_methods, .fini = free_config)
{
	const struct rule_config *rc = &cfg.rules[3];

	load_full();
	cr_assert_eq(rc->order, 0);
	cr_assert_eq(rc->line, 42);
	cr_assert_eq(rc->category, 0);
	cr_assert_eq(rc->rule.category, 0);
	cr_assert_eq(rc->rule.match, TRIAGE_MATCH_PATH | TRIAGE_MATCH_METHOD);
	cr_assert_eq(rc->rule.methods, TRIAGE_METHOD_GET | TRIAGE_METHOD_HEAD);
	cr_assert_eq(rc->rule.proto, TRIAGE_PROTO_HTTP);
	cr_assert_eq(rc->rule.path_len, 7);
	cr_assert_str_eq(rc->rule.path, "/static");
}

Test(full, rule_host, .fini = free_config)
{
	const struct rule_config *rc = &cfg.rules[1];

	load_full();
	cr_assert_eq(rc->order, 1);
	cr_assert_eq(rc->rule.match, TRIAGE_MATCH_HOST);
	cr_assert_eq(rc->rule.proto, TRIAGE_PROTO_HTTP);
	cr_assert_eq(rc->rule.host_len, 11);
	cr_assert_str_eq(rc->rule.host, "example.com");
}

Test(full, rule_content_length, .fini = free_config)
{
	const struct rule_config *rc = &cfg.rules[0];

	load_full();
	cr_assert_eq(rc->order, 2);
	cr_assert_eq(rc->category, 1);
	cr_assert_eq(rc->rule.match, TRIAGE_MATCH_METHOD | TRIAGE_MATCH_CLEN_ABOVE |
		     TRIAGE_MATCH_CLEN_BELOW | TRIAGE_MATCH_HOST_SUFFIX);
	cr_assert_eq(rc->rule.methods, TRIAGE_METHOD_POST);
	cr_assert_eq(rc->rule.clen_above, 1ULL << 20);
	cr_assert_eq(rc->rule.clen_below, 2ULL << 30);
	cr_assert_str_eq(rc->rule.host, ".example.org");
	cr_assert_eq(rc->rule.host_len, 12);
}

Test(full, rule_client_v6, .fini = free_config)
{
	const struct rule_config *rc = &cfg.rules[2];
	uint8_t addr[16];

	load_full();
	inet_pton(AF_INET6, "2001:db8::", addr);
	cr_assert_eq(rc->order, 3);
	cr_assert_eq(rc->rule.match, TRIAGE_MATCH_CLIENT);
	cr_assert_eq(rc->rule.proto, TRIAGE_PROTO_ANY);
	cr_assert_eq(rc->rule.client_family, AF_INET6);
	cr_assert_eq(rc->rule.client_prefixlen, 32);
	cr_assert_arr_eq(rc->rule.client_addr, addr, 16);
}

Test(full, rule_raw_string, .fini = free_config)
{
	const struct rule_config *rc = &cfg.rules[5];

	load_full();
	cr_assert_eq(rc->order, 4);
	cr_assert_eq(rc->category, 2);
	cr_assert_eq(rc->rule.match, TRIAGE_MATCH_RAW);
	cr_assert_eq(rc->rule.proto, TRIAGE_PROTO_ANY);
	cr_assert_eq(rc->rule.raw_offset, 0);
	cr_assert_eq(rc->rule.raw_len, 4);
	cr_assert_arr_eq(rc->rule.raw, "SSH-", 4);
}

Test(full, rule_raw_hex_client_v4, .fini = free_config)
{
	const struct rule_config *rc = &cfg.rules[4];
	static const uint8_t raw[] = { 0x00, 0xff, 0x10, 0xab };
	static const uint8_t addr[] = { 10, 0, 0, 0 };

	load_full();
	cr_assert_eq(rc->order, 5);
	cr_assert_eq(rc->rule.match, TRIAGE_MATCH_RAW | TRIAGE_MATCH_CLIENT);
	cr_assert_eq(rc->rule.raw_offset, 4);
	cr_assert_eq(rc->rule.raw_len, 4);
	cr_assert_arr_eq(rc->rule.raw, raw, 4);
	cr_assert_eq(rc->rule.client_family, AF_INET);
	cr_assert_eq(rc->rule.client_prefixlen, 8);
	cr_assert_arr_eq(rc->rule.client_addr, addr, 4);
}

Test(minimal, defaults, .fini = free_config)
{
	int ret = config_load(config_path("minimal.yaml"), &cfg, err, sizeof(err));

	cr_assert_eq(ret, 0, "config_load() returned %d: %s", ret, err);
	cr_assert_eq(cfg.port, 9000);
	cr_assert_eq(cfg.family, AF_INET);
	cr_assert_str_eq(cfg.addr_text, "0.0.0.0");
	cr_assert_eq(cfg.mode, TRIAGE_MODE_PAYLOAD);
	cr_assert_str_eq(cfg.cgroup_root, "");
	cr_assert_eq(cfg.nr_ifaces, 0);
	cr_assert_eq(cfg.tick_ms, 1000);
	cr_assert_eq(cfg.nr_pools, 1);
	cr_assert_eq(cfg.pools[0].workers, 1);
	cr_assert_eq(cfg.nr_categories, 0);
	cr_assert_eq(cfg.nr_rules, 0);
}

/* Inline valid configs */

Test(parse, connection_mode_client_rule, .fini = free_config)
{
	int ret = parse(HEAD "mode: connection\n" CATEGORY "      - client: ::1\n");

	cr_assert_eq(ret, 0, "returned %d: %s", ret, err);
	cr_assert_eq(cfg.mode, TRIAGE_MODE_CONNECTION);
	cr_assert_eq(cfg.rules[0].rule.client_prefixlen, 128);
}

Test(parse, null_optional_values, .fini = free_config)
{
	int ret = parse(HEAD "categories:\ninterfaces: ~\n");

	cr_assert_eq(ret, 0, "returned %d: %s", ret, err);
	cr_assert_eq(cfg.nr_categories, 0);
	cr_assert_eq(cfg.nr_ifaces, 0);
}

Test(parse, method_list_bits, .fini = free_config)
{
	int ret = parse(HEAD CATEGORY
			"      - method: [DELETE, OPTIONS, PATCH, CONNECT, TRACE, PUT]\n");

	cr_assert_eq(ret, 0, "returned %d: %s", ret, err);
	cr_assert_eq(cfg.rules[0].rule.methods,
		     TRIAGE_METHOD_DELETE | TRIAGE_METHOD_OPTIONS | TRIAGE_METHOD_PATCH |
		     TRIAGE_METHOD_CONNECT | TRIAGE_METHOD_TRACE | TRIAGE_METHOD_PUT);
}

/* Helpers */

Test(size, plain_and_suffixes)
{
	int64_t value = -1;

	cr_assert_eq(config_parse_size("0", &value), 0);
	cr_assert_eq(value, 0);
	cr_assert_eq(config_parse_size("1000", &value), 0);
	cr_assert_eq(value, 1000);
	cr_assert_eq(config_parse_size("4K", &value), 0);
	cr_assert_eq(value, 4096);
	cr_assert_eq(config_parse_size("3m", &value), 0);
	cr_assert_eq(value, 3LL << 20);
	cr_assert_eq(config_parse_size("2G", &value), 0);
	cr_assert_eq(value, 2LL << 30);
	cr_assert_eq(config_parse_size("5T", &value), 0);
	cr_assert_eq(value, 5LL << 40);
}

Test(size, invalid)
{
	int64_t value = 7;

	cr_assert_eq(config_parse_size("", &value), -EINVAL);
	cr_assert_eq(config_parse_size("max", &value), -EINVAL);
	cr_assert_eq(config_parse_size("-1", &value), -EINVAL);
	cr_assert_eq(config_parse_size(" 1", &value), -EINVAL);
	cr_assert_eq(config_parse_size("12X", &value), -EINVAL);
	cr_assert_eq(config_parse_size("1MB", &value), -EINVAL);
	cr_assert_eq(config_parse_size("1.5G", &value), -EINVAL);
	cr_assert_eq(config_parse_size("K", &value), -EINVAL);
	cr_assert_eq(value, 7);
}

Test(size, overflow)
{
	int64_t value = 7;

	cr_assert_eq(config_parse_size("8388608T", &value), -ERANGE);
	cr_assert_eq(config_parse_size("99999999999999999999", &value), -ERANGE);
	cr_assert_eq(config_parse_size("8388607T", &value), 0);
	cr_assert_eq(value, 8388607LL << 40);
}

Test(mode, names)
{
	cr_assert_str_eq(config_mode_name(TRIAGE_MODE_PAYLOAD), "payload");
	cr_assert_str_eq(config_mode_name(TRIAGE_MODE_CONNECTION), "connection");
	cr_assert_str_eq(config_mode_name(7), "unknown");
}

Test(pool_index, found_and_missing, .fini = free_config)
{
	load_full();
	cr_assert_eq(config_pool_index(&cfg, "light"), 0);
	cr_assert_eq(config_pool_index(&cfg, "ssh"), 2);
	cr_assert_eq(config_pool_index(&cfg, "heavy"), -1);
	cr_assert_eq(config_pool_index(&cfg, NULL), -1);
}

Test(free, twice)
{
	load_full();
	config_free(&cfg);
	cr_assert_null(cfg.pools[0].argv[0]);
	cr_assert_null(cfg.pools[0].env[0]);
	cr_assert_eq(cfg.pools[0].argc, 0);
	config_free(&cfg);
	cr_assert_null(cfg.pools[1].argv[0]);
}

Test(free, after_failed_load)
{
	/* The error is in the second pool, after the first pool's strings exist. */
	int ret = parse(HEAD "    env: {A: b}\n  - name: x\n    command: [w]\n    workers: 0\n");

	cr_assert_eq(ret, -EINVAL);
	cr_assert_null(cfg.pools[0].argv[0]);
	cr_assert_null(cfg.pools[0].env[0]);
	cr_assert_eq(cfg.nr_pools, 0);
	config_free(&cfg);
	config_free(&cfg);
}

/* Top-level errors */

Test(error, missing_port)
{
	expect_error("# the comment moves the mapping to line 2\n"
		     "default_pool: light\n"
		     "pools:\n"
		     "  - name: light\n"
		     "    command: [w]\n",
		     -EINVAL, 2, "key 'port'");
	expect_text("missing required key");
}

Test(error, missing_command)
{
	expect_error("port: 8080\ndefault_pool: cpu\npools:\n  - name: cpu\n    workers: 2\n",
		     -EINVAL, 4, "pool 'cpu': missing required key 'command'");
}

Test(error, port_range)
{
	expect_error("port: 70000\ndefault_pool: light\npools:\n  - name: light\n    command: w\n",
		     -EINVAL, 1, "key 'port'");
	expect_text("expected an integer from 1 to 65535, got '70000'");
}

Test(error, bad_address)
{
	expect_error(HEAD "address: 300.1.2.3\n", -EINVAL, 6, "key 'address'");
	expect_text("got '300.1.2.3'");
}

Test(parse, syn_placement, .fini = free_config)
{
	int ret = parse(HEAD "syn_placement: last_pool\n");

	cr_assert_eq(ret, 0, "returned %d: %s", ret, err);
	cr_assert(cfg.syn_last_pool, "syn_placement: last_pool not stored");
}

Test(parse, syn_placement_default, .fini = free_config)
{
	int ret = parse(HEAD);

	cr_assert_eq(ret, 0, "returned %d: %s", ret, err);
	cr_assert_not(cfg.syn_last_pool, "the default placement is not the default pool");
}

Test(error, unknown_syn_placement)
{
	expect_error(HEAD "syn_placement: hint\n", -EINVAL, 6, "key 'syn_placement'");
}

Test(error, unknown_mode)
{
	expect_error(HEAD "mode: fast\n", -EINVAL, 6, "key 'mode'");
	expect_text("expected payload or connection, got 'fast'");
}

Test(error, relative_cgroup_root)
{
	expect_error(HEAD "cgroup_root: sys/fs/cgroup\n", -EINVAL, 6, "key 'cgroup_root'");
}

Test(error, unknown_key)
{
	expect_error(HEAD "    wrokers: 2\n", -EINVAL, 6, "unknown key 'wrokers' in pool");
	expect_text("expected one of: name, command, env, user, workers, limits");
}

Test(error, duplicate_key)
{
	expect_error(HEAD "port: 9090\n", -EINVAL, 6, "key 'port'");
	expect_text("duplicate key, first set on line 1");
}

Test(error, list_for_scalar)
{
	expect_error(HEAD "tick_ms: [100, 200]\n", -EINVAL, 6, "key 'tick_ms'");
	expect_text("got a list");
}

Test(error, tick_ms_range)
{
	expect_error(HEAD "tick_ms: 99\n", -EINVAL, 6, "key 'tick_ms'");
}

Test(error, bad_interface)
{
	expect_error(HEAD "interfaces: [lo, eth0/1]\n", -EINVAL, 6, "key 'interfaces'");
}

Test(error, unknown_default_pool)
{
	expect_error("port: 8080\n"
		     "default_pool: heavy\n"
		     "pools:\n"
		     "  - name: light\n"
		     "    command: [w]\n",
		     -EINVAL, 2, "key 'default_pool'");
	expect_text("unknown pool");
	expect_text("got 'heavy'");
}

Test(error, yaml_syntax)
{
	int ret = parse("port: 8080\ndefault_pool: light\n  pools: x\n");

	cr_assert_eq(ret, -EINVAL);
	expect_text("bad.yaml:3:");
	expect_text("invalid YAML: mapping values are not allowed");
}

Test(error, unreadable_file)
{
	int ret = config_load("/nonexistent/triage.yaml", &cfg, err, sizeof(err));

	cr_assert_eq(ret, -ENOENT);
	cr_assert_str_eq(err, "/nonexistent/triage.yaml: cannot read: No such file or directory");
}

Test(error, directory)
{
	int ret = config_load("/", &cfg, err, sizeof(err));

	cr_assert_eq(ret, -EISDIR);
	expect_text("/: cannot read:");
}

Test(error, empty)
{
	int ret = parse("# nothing\n");

	cr_assert_eq(ret, -EINVAL);
	expect_text("bad.yaml: the config is empty");
}

Test(error, two_documents)
{
	expect_error(HEAD "---\nport: 1\n", -EINVAL, 7, "second");
}

Test(error, top_level_list)
{
	expect_error("- port\n", -EINVAL, 1, "expected a mapping");
}

/* Pool errors */

Test(error, workers_range)
{
	expect_error(HEAD "    workers: 33\n", -EINVAL, 6, "key 'workers'");
	expect_text("expected an integer from 1 to 32, got '33'");
}

Test(error, workers_word)
{
	expect_error(HEAD "    workers: many\n", -EINVAL, 6,
		     "key 'workers': expected an integer from 1 to 32, got 'many'");
}

Test(error, size_suffix)
{
	expect_error(HEAD "    limits:\n      memory_max: 256X\n", -EINVAL, 7, "key 'memory_max'");
	expect_text("got '256X'");
}

Test(error, cpuset)
{
	expect_error(HEAD "    limits:\n      cpuset: 3-1\n", -EINVAL, 7, "key 'cpuset'");
}

Test(error, cpuset_chars)
{
	expect_error(HEAD "    limits:\n      cpuset: \"0,,1\"\n", -EINVAL, 7, "key 'cpuset'");
}

Test(error, io_max_value)
{
	expect_error(HEAD "    limits:\n      io_max: \"8:0 rbps=fast\"\n", -EINVAL, 7,
		     "key 'io_max'");
}

Test(error, io_max_key)
{
	expect_error(HEAD "    limits:\n      io_max: \"8:0 xbps=1\"\n", -EINVAL, 7,
		     "key 'io_max'");
}

Test(error, io_max_device)
{
	expect_error(HEAD "    limits:\n      io_max: \"sda rbps=1\"\n", -EINVAL, 7,
		     "key 'io_max'");
}

Test(error, cpus_range)
{
	expect_error(HEAD "    limits:\n      cpus: 0\n", -EINVAL, 7, "key 'cpus'");
}

Test(error, pids_max_range)
{
	expect_error(HEAD "    limits:\n      pids_max: 0\n", -EINVAL, 7, "key 'pids_max'");
}

Test(error, limits_type)
{
	expect_error(HEAD "    limits:\n      - cpus\n", -EINVAL, 6, "key 'limits'");
}

Test(error, env_name)
{
	expect_error(HEAD "    env: {1BAD: x}\n", -EINVAL, 6, "key 'env'");
	expect_text("got '1BAD'");
}

Test(error, env_value_list)
{
	expect_error(HEAD "    env:\n      GOOD: [x]\n", -EINVAL, 7, "key 'GOOD'");
}

Test(error, duplicate_pool)
{
	expect_error(HEAD "  - name: light\n    command: [w]\n", -EINVAL, 6, "key 'name'");
	expect_text("unique pool name, got 'light'");
	expect_text("line 4");
}

Test(error, pool_name_charset)
{
	expect_error(HEAD "  - name: Big_Pool\n    command: [w]\n", -EINVAL, 6, "key 'name'");
	expect_text("got 'Big_Pool'");
}

Test(error, pool_name_length)
{
	expect_error(HEAD "  - name: abcdefghijklmnopqrstuvwxyz0123456\n    command: [w]\n",
		     -EINVAL, 6, "key 'name'");
}

Test(error, empty_command)
{
	expect_error(HEAD "  - name: two\n    command: \"  \"\n", -EINVAL, 7, "key 'command'");
}

Test(error, too_many_pools)
{
	char text[4096];
	int i, len;

	len = snprintf(text, sizeof(text), "port: 8080\ndefault_pool: p0\npools:\n");
	for (i = 0; i <= TRIAGE_MAX_POOLS; i++)
		len += snprintf(text + len, sizeof(text) - len,
				"  - name: p%d\n    command: [w]\n", i);
	expect_error(text, -E2BIG, 3, "key 'pools'");
	expect_text("at most 16 pools, got 17");
}

Test(error, too_many_args)
{
	char text[4096];
	int i, len;

	len = snprintf(text, sizeof(text), HEAD "  - name: big\n    command: [w");
	for (i = 0; i < CONFIG_MAX_ARGS; i++)
		len += snprintf(text + len, sizeof(text) - len, ", a%d", i);
	snprintf(text + len, sizeof(text) - len, "]\n");
	expect_error(text, -E2BIG, 7, "key 'command'");
}

/* Category and rule errors */

Test(error, category_unknown_pool)
{
	expect_error(HEAD "categories:\n  - name: c\n    pool: gpu\n", -EINVAL, 8, "key 'pool'");
	expect_text("unknown pool; expected one of: light, got 'gpu'");
}

Test(error, duplicate_category)
{
	expect_error(HEAD CATEGORY "  - name: c\n    pool: light\n", -EINVAL, 10, "key 'name'");
}

Test(error, rule_without_conditions)
{
	expect_error(HEAD CATEGORY "      - priority: 3\n", -EINVAL, 10, "category 'c'");
	expect_text("rule without conditions");
}

Test(error, path_without_slash)
{
	expect_error(HEAD CATEGORY "      - path: cpu\n", -EINVAL, 10, "key 'path'");
	expect_text("starts with '/'");
}

Test(error, path_too_long)
{
	expect_error(HEAD CATEGORY "      - path: /"
		     "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0\n",
		     -EINVAL, 10, "key 'path'");
	expect_text("at most 63 bytes");
}

Test(error, path_with_query)
{
	expect_error(HEAD CATEGORY "      - path: /a?b=1\n", -EINVAL, 10, "key 'path'");
}

Test(error, lowercase_method)
{
	expect_error(HEAD CATEGORY "      - method: get\n", -EINVAL, 10, "key 'method'");
	expect_text("got 'get'");
}

Test(error, host_and_suffix)
{
	expect_error(HEAD CATEGORY "      - host: a.com\n        host_suffix: .b.com\n", -EINVAL,
		     11, "key 'host_suffix'");
}

Test(error, host_with_port)
{
	expect_error(HEAD CATEGORY "      - host: a.com:80\n", -EINVAL, 10, "key 'host'");
}

Test(error, empty_length_range)
{
	expect_error(HEAD CATEGORY
		     "      - content_length_above: 1K\n        content_length_below: 1025\n",
		     -EINVAL, 11, "key 'content_length_below'");
}

Test(error, bytes_beyond_peek)
{
	expect_error(HEAD CATEGORY
		     "      - bytes: {offset: 500, prefix: \"0123456789abcdef\"}\n",
		     -EINVAL, 10, "key 'bytes'");
	expect_text("got 500 + 16");
}

Test(error, bytes_missing_prefix)
{
	expect_error(HEAD CATEGORY "      - bytes:\n          offset: 2\n", -EINVAL, 10,
		     "missing required key 'prefix'");
}

Test(error, bad_hex)
{
	expect_error(HEAD CATEGORY "      - bytes: {prefix: \"hex:5g\"}\n", -EINVAL, 10,
		     "key 'prefix'");
	expect_text("got 'hex:5g'");
}

Test(error, odd_hex)
{
	expect_error(HEAD CATEGORY "      - bytes: {prefix: \"hex:535\"}\n", -EINVAL, 10,
		     "key 'prefix'");
}

Test(error, client_host_bits)
{
	expect_error(HEAD CATEGORY "      - client: 10.0.0.1/8\n", -EINVAL, 10, "key 'client'");
	expect_text("such as '10.0.0.0/8'");
}

Test(error, client_v6_host_bits)
{
	expect_error(HEAD CATEGORY "      - client: 2001:db8::1/64\n", -EINVAL, 10,
		     "key 'client'");
	expect_text("such as '2001:db8::/64'");
}

Test(error, client_prefix_range)
{
	expect_error(HEAD CATEGORY "      - client: 10.0.0.0/33\n", -EINVAL, 10, "key 'client'");
}

Test(error, payload_rule_connection_mode)
{
	expect_error(HEAD "mode: connection\n" CATEGORY "      - path: /x\n", -EINVAL, 11,
		     "key 'path'");
	expect_text("payload rules need mode: payload");
}

Test(error, too_many_rules)
{
	char text[8192];
	int i, len;

	len = snprintf(text, sizeof(text), HEAD CATEGORY);
	for (i = 0; i <= TRIAGE_MAX_RULES; i++)
		len += snprintf(text + len, sizeof(text) - len, "      - path: /r%d\n", i);
	expect_error(text, -E2BIG, 10 + TRIAGE_MAX_RULES, "key 'rules'");
}
