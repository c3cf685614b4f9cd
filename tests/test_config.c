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

/* Scaling, removal, budget, templates and emerge: tests/configs/scaling.yaml */

static void load_scaling(void)
{
	int ret = config_load(config_path("scaling.yaml"), &cfg, err, sizeof(err));

	cr_assert_eq(ret, 0, "config_load() returned %d: %s", ret, err);
}

Test(scaling, active_target, .fini = free_config)
{
	const struct pool_config *pool = &cfg.pools[0];
	const struct pool_scaling *s = &pool->scaling;

	load_scaling();
	cr_assert_str_eq(pool->name, "light");
	cr_assert_eq(pool->workers, 2);
	cr_assert(s->enabled);
	cr_assert_eq(s->min, 1);
	cr_assert_eq(s->max, 8);
	cr_assert_eq(s->target, SCALE_ACTIVE);
	cr_assert_float_eq(s->target_value, 4, 1e-9);
	cr_assert_float_eq(s->up_factor, 1.5, 1e-9);
	cr_assert_eq(s->up_step_max, 3);
	cr_assert_eq(s->down_window_s, 45);
	cr_assert_float_eq(s->cpus_per_worker, 0.25, 1e-9);
	cr_assert_eq(s->memory_per_worker, 64LL << 20);
	cr_assert_eq(s->weight, 200);
	cr_assert(pool->removable);
	cr_assert_eq(pool->idle_timeout_s, 120);
	cr_assert_not(pool->borrowed);
}

/* cpu.max and memory.max are written for the starting count of 2 workers. */
Test(scaling, derived_limits, .fini = free_config)
{
	const struct pool_limits *limits = &cfg.pools[0].limits;

	load_scaling();
	cr_assert(limits->has_cpus);
	cr_assert_float_eq(limits->cpus, 0.5, 1e-9);
	cr_assert_eq(limits->memory_max, 128LL << 20);
	cr_assert_eq(limits->memory_high, -1);
}

Test(scaling, cpu_target_defaults, .fini = free_config)
{
	const struct pool_config *pool = &cfg.pools[1];
	const struct pool_scaling *s = &pool->scaling;

	load_scaling();
	cr_assert_str_eq(pool->name, "cpu");
	cr_assert_eq(pool->workers, 2, "workers is not scaling.min");
	cr_assert(s->enabled);
	cr_assert_eq(s->min, 2);
	cr_assert_eq(s->max, 4);
	cr_assert_eq(s->target, SCALE_CPU);
	cr_assert_float_eq(s->target_value, 0.7, 1e-9);
	cr_assert_float_eq(s->up_factor, 2, 1e-9);
	cr_assert_eq(s->up_step_max, 0);
	cr_assert_eq(s->down_window_s, 30);
	cr_assert_eq(s->memory_per_worker, -1);
	cr_assert_eq(s->weight, 100);
	cr_assert(pool->limits.has_cpus);
	cr_assert_float_eq(pool->limits.cpus, 1.0, 1e-9);
	cr_assert_eq(pool->limits.memory_max, 512LL << 20, "a fixed memory_max changed");
	cr_assert_not(pool->removable);
	cr_assert_eq(pool->idle_timeout_s, 0);
}

Test(scaling, fixed_pool, .fini = free_config)
{
	const struct pool_config *pool = &cfg.pools[2];
	const struct pool_scaling *s = &pool->scaling;

	load_scaling();
	cr_assert_str_eq(pool->name, "fixed");
	cr_assert_eq(pool->workers, 3);
	cr_assert_not(s->enabled);
	cr_assert_eq(s->min, 3);
	cr_assert_eq(s->max, 3);
	cr_assert_float_eq(s->cpus_per_worker, 0, 1e-9);
	cr_assert_eq(s->memory_per_worker, -1);
	cr_assert_eq(s->weight, 100);
	cr_assert_float_eq(pool->limits.cpus, 1.0, 1e-9);
	cr_assert_eq(pool->limits.memory_max, 256LL << 20);
	cr_assert_not(pool->removable);
	cr_assert_eq(pool->idle_timeout_s, 0);
}

Test(scaling, templates, .fini = free_config)
{
	const struct pool_config *auto_template = &cfg.templates[0];
	const struct pool_config *spare = &cfg.templates[1];

	load_scaling();
	cr_assert_eq(cfg.nr_pools, 3);
	cr_assert_eq(cfg.nr_templates, 2);
	cr_assert_str_eq(auto_template->name, "auto");
	cr_assert_eq(auto_template->line, 42);
	cr_assert_eq(auto_template->argc, 3);
	cr_assert_str_eq(auto_template->argv[2], "8080");
	cr_assert_str_eq(auto_template->env[0], "MODE=auto");
	cr_assert(auto_template->removable, "a template is not removable");
	cr_assert_eq(auto_template->idle_timeout_s, 30);
	cr_assert(auto_template->scaling.enabled);
	cr_assert_eq(auto_template->scaling.min, 1);
	cr_assert_eq(auto_template->scaling.max, 4);
	cr_assert_eq(auto_template->workers, 1);
	cr_assert_float_eq(auto_template->limits.cpus, 0.5, 1e-9);
	cr_assert_eq(auto_template->limits.memory_max, 128LL << 20);

	cr_assert_str_eq(spare->name, "spare");
	cr_assert_eq(spare->argc, 1);
	cr_assert(spare->removable);
	cr_assert_eq(spare->idle_timeout_s, 60);
	cr_assert_not(spare->scaling.enabled);
	cr_assert_eq(config_pool_index(&cfg, "auto"), -1, "a template counts as a pool");
}

Test(scaling, budget, .fini = free_config)
{
	load_scaling();
	cr_assert(cfg.budget.has_cpus);
	cr_assert_float_eq(cfg.budget.cpus, 4, 1e-9);
	cr_assert_eq(cfg.budget.memory, 2LL << 30);
}

Test(scaling, emerge, .fini = free_config)
{
	load_scaling();
	cr_assert_eq(cfg.emerge.key, EMERGE_PATH);
	cr_assert_eq(cfg.emerge.template, 1);
	cr_assert_float_eq(cfg.emerge.rate, 20.5, 1e-9);
	cr_assert_eq(cfg.emerge.for_s, 5);
	cr_assert_eq(cfg.emerge.table_size, 4096);
	cr_assert_eq(cfg.emerge.max_pools, 2);
}

Test(scaling, absent_keys, .fini = free_config)
{
	const struct pool_config *pool = &cfg.pools[0];
	int ret = config_load(config_path("minimal.yaml"), &cfg, err, sizeof(err));

	cr_assert_eq(ret, 0, "config_load() returned %d: %s", ret, err);
	cr_assert_not(cfg.budget.has_cpus);
	cr_assert_eq(cfg.budget.memory, -1);
	cr_assert_eq(cfg.emerge.key, EMERGE_OFF);
	cr_assert_eq(cfg.emerge.template, -1);
	cr_assert_eq(cfg.nr_templates, 0);
	cr_assert_not(pool->scaling.enabled);
	cr_assert_eq(pool->scaling.min, 1);
	cr_assert_eq(pool->scaling.max, 1);
	cr_assert_float_eq(pool->scaling.up_factor, 2, 1e-9);
	cr_assert_eq(pool->scaling.down_window_s, 30);
	cr_assert_eq(pool->scaling.memory_per_worker, -1);
	cr_assert_eq(pool->scaling.weight, 100);
	cr_assert_not(pool->removable);
	cr_assert_eq(pool->idle_timeout_s, 0);
	cr_assert_not(pool->limits.has_cpus);
	cr_assert_eq(pool->limits.memory_max, -1);
}

Test(parse, removable_pool_default_timeout, .fini = free_config)
{
	int ret = parse(HEAD "    removable: true\n");

	cr_assert_eq(ret, 0, "returned %d: %s", ret, err);
	cr_assert(cfg.pools[0].removable);
	cr_assert_eq(cfg.pools[0].idle_timeout_s, 60);
}

Test(parse, removable_false, .fini = free_config)
{
	int ret = parse(HEAD "    removable: false\n");

	cr_assert_eq(ret, 0, "returned %d: %s", ret, err);
	cr_assert_not(cfg.pools[0].removable);
	cr_assert_eq(cfg.pools[0].idle_timeout_s, 0);
}

Test(parse, emerge_defaults, .fini = free_config)
{
	int ret = parse(HEAD "templates:\n  - name: t\n    command: [w]\n"
			"emerge: {key: host, template: t, rate: 3}\n");

	cr_assert_eq(ret, 0, "returned %d: %s", ret, err);
	cr_assert_eq(cfg.emerge.key, EMERGE_HOST);
	cr_assert_eq(cfg.emerge.template, 0);
	cr_assert_float_eq(cfg.emerge.rate, 3, 1e-9);
	cr_assert_eq(cfg.emerge.for_s, 10);
	cr_assert_eq(cfg.emerge.table_size, 1024);
	cr_assert_eq(cfg.emerge.max_pools, 4);
	cr_assert(cfg.templates[0].removable);
	cr_assert_eq(cfg.templates[0].idle_timeout_s, 60);
}

Test(parse, templates_without_emerge, .fini = free_config)
{
	int ret = parse(HEAD "templates:\n  - name: t\n    command: [w]\n");

	cr_assert_eq(ret, 0, "returned %d: %s", ret, err);
	cr_assert_eq(cfg.nr_templates, 1);
	cr_assert_eq(cfg.emerge.key, EMERGE_OFF);
}

Test(parse, budget_memory_only, .fini = free_config)
{
	int ret = parse(HEAD "    limits: {memory_max: 1G}\nbudget: {memory: 1G}\n");

	cr_assert_eq(ret, 0, "returned %d: %s", ret, err);
	cr_assert_not(cfg.budget.has_cpus);
	cr_assert_eq(cfg.budget.memory, 1LL << 30);
}

/* 0.1 + 0.1 + 0.1 is a little above 0.3 in binary and must still fit 0.3. */
Test(parse, budget_decimal_sum, .fini = free_config)
{
	int ret = parse("port: 8080\ndefault_pool: a\nbudget: {cpus: 0.3}\npools:\n"
			"  - {name: a, command: w, limits: {cpus: 0.1}}\n"
			"  - {name: b, command: w, limits: {cpus: 0.1}}\n"
			"  - {name: c, command: w, limits: {cpus: 0.1}}\n");

	cr_assert_eq(ret, 0, "returned %d: %s", ret, err);
}

/* A pool made from a template shares its strings, so only the template frees them. */
Test(free, borrowed_pool)
{
	struct pool_config *borrowed_pool;

	load_scaling();
	borrowed_pool = &cfg.pools[cfg.nr_pools];
	*borrowed_pool = cfg.templates[0];
	borrowed_pool->borrowed = true;
	config_free(&cfg);
	cr_assert_null(cfg.templates[0].argv[0]);
	cr_assert_null(cfg.templates[0].env[0]);
	cr_assert_eq(cfg.templates[0].argc, 0);
	cr_assert_null(cfg.pools[0].argv[0]);
	cr_assert_not_null(borrowed_pool->argv[0], "the borrowed pool's strings were touched");
	config_free(&cfg);
}

Test(free, after_failed_template)
{
	int ret = parse(HEAD "templates:\n  - name: t\n    command: [w]\n"
			"  - name: u\n    command: [w]\n    workers: 0\n");

	cr_assert_eq(ret, -EINVAL);
	cr_assert_null(cfg.templates[0].argv[0]);
	cr_assert_eq(cfg.nr_templates, 0);
	config_free(&cfg);
}

/* Scaling errors */

Test(error, scaling_min_above_max)
{
	expect_error(HEAD "    scaling:\n      min: 4\n      max: 2\n"
		     "      target: {active_per_worker: 1}\n",
		     -EINVAL, 8, "key 'max'");
	expect_text("expected an integer from min (4) to 32, got '2'");
}

Test(error, scaling_max_missing)
{
	expect_error(HEAD "    scaling: {min: 2, target: {active_per_worker: 1}}\n", -EINVAL, 6,
		     "scaling of pool 'light': missing required key 'max'");
}

Test(error, scaling_max_range)
{
	expect_error(HEAD "    scaling: {max: 33, target: {active_per_worker: 1}}\n", -EINVAL, 6,
		     "key 'max': expected an integer from 1 to 32, got '33'");
}

Test(error, scaling_min_range)
{
	expect_error(HEAD "    scaling:\n      min: 0\n      max: 2\n", -EINVAL, 7,
		     "key 'min': expected an integer from 1 to 32, got '0'");
}

Test(error, workers_below_min)
{
	expect_error(HEAD "    workers: 1\n"
		     "    scaling: {min: 2, max: 4, target: {cpu_utilization: 1}}\n",
		     -EINVAL, 6, "key 'workers'");
	expect_text("expected an integer from scaling min (2) to max (4), got '1'");
}

Test(error, workers_above_max)
{
	expect_error(HEAD "    scaling: {max: 4, target: {cpu_utilization: 1}}\n    workers: 5\n",
		     -EINVAL, 7, "key 'workers'");
	expect_text("from scaling min (1) to max (4), got '5'");
}

Test(error, target_missing)
{
	expect_error(HEAD "    scaling:\n      max: 4\n", -EINVAL, 6,
		     "scaling of pool 'light': missing required key 'target'");
}

Test(error, target_both)
{
	expect_error(HEAD "    scaling:\n      max: 4\n      target:\n"
		     "        active_per_worker: 4\n        cpu_utilization: 0.5\n",
		     -EINVAL, 8, "key 'target'");
	expect_text("exactly one of active_per_worker and cpu_utilization, got both");
}

Test(error, target_neither)
{
	expect_error(HEAD "    scaling: {max: 4, target: {}}\n", -EINVAL, 6, "key 'target'");
	expect_text("got neither");
}

Test(error, target_unknown_key)
{
	expect_error(HEAD "    scaling:\n      max: 4\n      target:\n        rps: 4\n", -EINVAL, 9,
		     "unknown key 'rps' in target");
}

Test(error, cpu_utilization_range)
{
	expect_error(HEAD "    scaling: {max: 4, target: {cpu_utilization: 1.5}}\n", -EINVAL, 6,
		     "key 'cpu_utilization': expected a number above 0 and at most 1, got '1.5'");
}

Test(error, active_per_worker_zero)
{
	expect_error(HEAD "    scaling: {max: 4, target: {active_per_worker: 0}}\n", -EINVAL, 6,
		     "key 'active_per_worker': expected a number above 0");
}

Test(error, up_factor_below_one)
{
	expect_error(HEAD "    scaling: {max: 4, target: {active_per_worker: 1}, up_factor: 0.5}\n",
		     -EINVAL, 6, "key 'up_factor': expected a number from 1 to 16, got '0.5'");
}

Test(error, up_factor_word)
{
	expect_error(HEAD "    scaling: {max: 4, target: {active_per_worker: 1}, up_factor: inf}\n",
		     -EINVAL, 6, "key 'up_factor'");
}

Test(error, up_step_max_range)
{
	expect_error(HEAD "    scaling: {max: 4, target: {active_per_worker: 1},"
		     " up_step_max: 33}\n",
		     -EINVAL, 6, "key 'up_step_max': expected an integer from 0 to 32");
}

Test(error, down_window_range)
{
	expect_error(HEAD "    scaling:\n      max: 4\n      target: {active_per_worker: 1}\n"
		     "      down_window_s: 3601\n",
		     -EINVAL, 9, "key 'down_window_s': expected an integer from 0 to 3600");
}

Test(error, weight_range)
{
	expect_error(HEAD "    scaling: {max: 4, target: {active_per_worker: 1}, weight: 0}\n",
		     -EINVAL, 6, "key 'weight': expected an integer from 1 to 10000, got '0'");
}

Test(error, cpus_per_worker_range)
{
	expect_error(HEAD "    scaling:\n      max: 4\n      target: {active_per_worker: 1}\n"
		     "      cpus_per_worker: -1\n",
		     -EINVAL, 9, "key 'cpus_per_worker'");
}

Test(error, memory_per_worker_zero)
{
	expect_error(HEAD "    scaling: {max: 4, target: {active_per_worker: 1},"
		     " memory_per_worker: 0}\n",
		     -EINVAL, 6, "key 'memory_per_worker': expected a size above 0");
}

Test(error, memory_per_worker_too_small)
{
	expect_error(HEAD "    scaling: {max: 4, target: {active_per_worker: 1},"
		     " memory_per_worker: 1}\n",
		     -EINVAL, 6, "key 'memory_per_worker': expected a size of at least 4M, got '1'");
}

Test(error, memory_per_worker_too_large)
{
	expect_error(HEAD "    scaling:\n      max: 4\n      target: {active_per_worker: 1}\n"
		     "      memory_per_worker: 262144T\n",
		     -EINVAL, 9, "key 'memory_per_worker': expected a size of at most 262143T");
}

Test(error, scaling_unknown_key)
{
	expect_error(HEAD "    scaling:\n      max: 4\n      maximum: 4\n", -EINVAL, 8,
		     "unknown key 'maximum' in scaling");
}

Test(error, cpus_twice)
{
	expect_error(HEAD "    limits: {cpus: 1}\n    scaling:\n      max: 4\n"
		     "      target: {active_per_worker: 1}\n      cpus_per_worker: 0.5\n",
		     -EINVAL, 10, "key 'cpus_per_worker'");
	expect_text("pool 'light' sets both limits.cpus and scaling.cpus_per_worker;"
		    " set one of them");
}

Test(error, memory_twice)
{
	expect_error(HEAD "    limits: {memory_max: max}\n    scaling:\n      max: 4\n"
		     "      target: {active_per_worker: 1}\n      memory_per_worker: 64M\n",
		     -EINVAL, 10, "key 'memory_per_worker'");
	expect_text("sets both limits.memory_max and scaling.memory_per_worker; set one of them");
}

/* Removal errors */

Test(error, removable_word)
{
	expect_error(HEAD "    removable: yes\n", -EINVAL, 6,
		     "key 'removable': expected true or false, got 'yes'");
}

Test(error, idle_timeout_not_removable)
{
	expect_error(HEAD "    idle_timeout_s: 60\n", -EINVAL, 6, "key 'idle_timeout_s'");
	expect_text("only a removable pool has an idle timeout");
}

Test(error, idle_timeout_removable_false)
{
	expect_error(HEAD "    idle_timeout_s: 60\n    removable: false\n", -EINVAL, 6,
		     "key 'idle_timeout_s'");
}

Test(error, idle_timeout_range)
{
	expect_error(HEAD "    removable: true\n    idle_timeout_s: 0\n", -EINVAL, 7,
		     "key 'idle_timeout_s': expected an integer from 1 to 86400, got '0'");
}

/* Template errors */

Test(error, template_not_removable)
{
	expect_error(HEAD "templates:\n  - name: t\n    command: [w]\n    removable: false\n",
		     -EINVAL, 9, "key 'removable'");
	expect_text("always removable, got 'false'");
}

Test(error, template_named_like_pool)
{
	expect_error(HEAD "templates:\n  - name: light\n    command: [w]\n", -EINVAL, 7,
		     "key 'name'");
	expect_text("unique template name, got 'light', which the pool on line 4 already uses");
}

Test(error, duplicate_template)
{
	expect_error(HEAD "templates:\n"
		     "  - name: t\n    command: [w]\n"
		     "  - name: t\n    command: [w]\n",
		     -EINVAL, 9, "key 'name'");
	expect_text("which the template on line 7 already uses");
}

Test(error, template_missing_command)
{
	expect_error(HEAD "templates:\n  - name: t\n", -EINVAL, 7,
		     "template 't': missing required key 'command'");
}

Test(error, template_unknown_key)
{
	expect_error(HEAD "templates:\n  - name: t\n    command: [w]\n    pool: x\n", -EINVAL, 9,
		     "unknown key 'pool' in template");
}

Test(error, templates_type)
{
	expect_error(HEAD "templates: t\n", -EINVAL, 6,
		     "key 'templates': expected a list of templates, got 't'");
}

Test(error, too_many_templates)
{
	char text[4096];
	int i, len;

	len = snprintf(text, sizeof(text), HEAD "templates:\n");
	for (i = 0; i <= CONFIG_MAX_TEMPLATES; i++)
		len += snprintf(text + len, sizeof(text) - len,
				"  - name: t%d\n    command: [w]\n", i);
	expect_error(text, -E2BIG, 6, "key 'templates'");
	expect_text("at most 4 templates, got 5");
}

/* Budget errors */

Test(error, budget_empty)
{
	expect_error(HEAD "budget: {}\n", -EINVAL, 6,
		     "key 'budget': expected at least one of: cpus, memory");
}

Test(error, budget_cpus_zero)
{
	expect_error(HEAD "budget: {cpus: 0}\n", -EINVAL, 6, "key 'cpus'");
	expect_text("above 0");
}

Test(error, budget_memory_zero)
{
	expect_error(HEAD "budget:\n  memory: 0\n", -EINVAL, 7,
		     "key 'memory': expected a size above 0");
}

Test(error, budget_unknown_key)
{
	expect_error(HEAD "budget:\n  pids: 10\n", -EINVAL, 7, "unknown key 'pids' in budget");
}

Test(error, budget_cpus_pool_without_limit)
{
	expect_error(HEAD "budget: {cpus: 2}\n", -EINVAL, 4,
		     "pool 'light': budget.cpus needs a CPU limit");
	expect_text("add scaling.cpus_per_worker or limits.cpus");
}

Test(error, budget_memory_template_without_limit)
{
	expect_error(HEAD "    limits: {memory_max: 1G}\nbudget: {memory: 2G}\n"
		     "templates:\n  - name: t\n    command: [w]\n",
		     -EINVAL, 9, "template 't': budget.memory needs a memory limit");
	expect_text("add scaling.memory_per_worker or limits.memory_max");
}

Test(error, budget_memory_max_unlimited)
{
	expect_error(HEAD "    limits: {memory_max: max}\nbudget: {memory: 2G}\n", -EINVAL, 4,
		     "pool 'light': budget.memory needs a memory limit");
}

Test(error, budget_cpus_at_minimum)
{
	expect_error(HEAD "    limits: {cpus: 1.5}\nbudget:\n  cpus: 1\n", -EINVAL, 8,
		     "key 'cpus'");
	expect_text("expected at least 1.5 CPUs, which the pools need at their minimum worker"
		    " counts, got '1'");
}

/* The minimum of 1 worker needs 0.5 CPUs, but the starting 3 workers need 1.5. */
Test(error, budget_cpus_at_start)
{
	expect_error(HEAD "    workers: 3\n"
		     "    scaling: {max: 4, target: {active_per_worker: 2}, cpus_per_worker: 0.5}\n"
		     "budget: {cpus: 1}\n",
		     -EINVAL, 8, "key 'cpus'");
	expect_text("at least 1.5 CPUs, which the pools need at their starting worker counts,"
		    " got '1'");
}

Test(error, budget_memory_at_minimum)
{
	expect_error(HEAD "    limits: {memory_max: 512M}\nbudget: {memory: 256M}\n", -EINVAL, 7,
		     "key 'memory'");
	expect_text("expected at least 512M, which the pools need at their minimum worker"
		    " counts, got '256M'");
}

Test(error, budget_memory_at_start)
{
	expect_error(HEAD "    scaling:\n      min: 1\n      max: 4\n"
		     "      target: {active_per_worker: 2}\n      memory_per_worker: 100M\n"
		     "    workers: 2\nbudget:\n  memory: 150M\n",
		     -EINVAL, 13, "key 'memory'");
	expect_text("at least 200M, which the pools need at their starting worker counts,"
		    " got '150M'");
}

/* Emerge errors */

#define TEMPLATE "templates:\n  - name: auto\n    command: [w]\n"

Test(error, emerge_unknown_template)
{
	expect_error(HEAD TEMPLATE "emerge: {key: path, template: big, rate: 1}\n", -EINVAL, 9,
		     "key 'template'");
	expect_text("unknown template; expected one of: auto, got 'big'");
}

Test(error, emerge_without_templates)
{
	expect_error(HEAD "emerge:\n  key: path\n  template: auto\n  rate: 1\n", -EINVAL, 8,
		     "key 'template': unknown template");
	expect_text("templates list, which is missing or empty, got 'auto'");
}

Test(error, emerge_missing_key)
{
	expect_error(HEAD TEMPLATE "emerge: {template: auto, rate: 1}\n", -EINVAL, 9,
		     "emerge: missing required key 'key'");
}

Test(error, emerge_missing_template)
{
	expect_error(HEAD TEMPLATE "emerge: {key: host, rate: 1}\n", -EINVAL, 9,
		     "emerge: missing required key 'template'");
}

Test(error, emerge_missing_rate)
{
	expect_error(HEAD TEMPLATE "emerge: {key: host, template: auto}\n", -EINVAL, 9,
		     "emerge: missing required key 'rate'");
}

Test(error, emerge_key_value)
{
	expect_error(HEAD TEMPLATE "emerge: {key: query, template: auto, rate: 1}\n", -EINVAL, 9,
		     "key 'key': expected path or host, got 'query'");
}

Test(error, emerge_connection_mode)
{
	expect_error(HEAD "mode: connection\n" TEMPLATE
		     "emerge:\n  key: host\n  template: auto\n  rate: 1\n",
		     -EINVAL, 11, "key 'key': emerging pools need mode: payload");
}

Test(error, emerge_rate_zero)
{
	expect_error(HEAD TEMPLATE "emerge: {key: path, template: auto, rate: 0}\n", -EINVAL, 9,
		     "key 'rate': expected a number above 0");
}

Test(error, emerge_for_s_range)
{
	expect_error(HEAD TEMPLATE "emerge:\n  key: path\n  template: auto\n  rate: 1\n"
		     "  for_s: 3601\n",
		     -EINVAL, 13, "key 'for_s': expected an integer from 1 to 3600, got '3601'");
}

Test(error, emerge_table_size_range)
{
	expect_error(HEAD TEMPLATE "emerge: {key: path, template: auto, rate: 1, table_size: 8}\n",
		     -EINVAL, 9, "key 'table_size': expected an integer from 16 to 65536");
}

Test(error, emerge_max_pools_range)
{
	expect_error(HEAD TEMPLATE "emerge: {key: path, template: auto, rate: 1, max_pools: 17}\n",
		     -EINVAL, 9, "key 'max_pools': expected an integer from 1 to 16, got '17'");
}

/* 13 configured pools leave room for 3 emerged ones, fewer than the default 4. */
Test(error, emerge_max_pools_room)
{
	char text[4096];
	int i, len;

	len = snprintf(text, sizeof(text), "port: 8080\ndefault_pool: p0\npools:\n");
	for (i = 0; i < 13; i++)
		len += snprintf(text + len, sizeof(text) - len,
				"  - name: p%d\n    command: [w]\n", i);
	snprintf(text + len, sizeof(text) - len,
		 TEMPLATE "emerge:\n  key: path\n  template: auto\n  rate: 1\n");
	expect_error(text, -EINVAL, 33, "key 'max_pools'");
	expect_text("expected at most 3, the room that 13 configured pools leave of 16, got 4");
}

Test(error, emerge_unknown_key)
{
	expect_error(HEAD TEMPLATE "emerge:\n  key: path\n  threshold: 3\n", -EINVAL, 11,
		     "unknown key 'threshold' in emerge");
}
