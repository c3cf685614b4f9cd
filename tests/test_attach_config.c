// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The `attach` section of the configuration and the command line's attach options. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static struct config cfg;
static char err[1024];

#define POOLS \
	"port: 8080\n" \
	"default_pool: web\n" \
	"pools:\n" \
	"  - name: web\n" \
	"  - name: cpu\n" \
	"    command: [w]\n"

static void free_config(void)
{
	config_free(&cfg);
}

static int parse(const char *text)
{
	return config_parse("test.yaml", text, strlen(text), &cfg, err, sizeof(err));
}

/* Writes TEXT to a temporary file and loads it with the command line's settings CLI. */
static int load_with_cli(const char *text, const struct attach_config *cli)
{
	char path[] = "/tmp/test_attach_config.XXXXXX";
	int fd = mkstemp(path), ret;

	cr_assert_geq(fd, 0, "mkstemp");
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text), "write");
	close(fd);
	ret = config_load_attach(path, cli, &cfg, err, sizeof(err));
	unlink(path);
	return ret;
}

Test(attach, section_sets_pid_pool_and_move, .fini = free_config)
{
	int ret = parse(POOLS "attach: {pid: 42, pool: web, move_to_pool: true}\n");

	cr_assert_eq(ret, 0, "parse: %s", err);
	cr_expect_eq(cfg.attach.pid, 42, "pid");
	cr_expect_str_eq(cfg.attach.pool, "web", "pool");
	cr_expect(cfg.attach.move_to_pool, "move_to_pool");
}

Test(attach, pool_defaults_to_default_pool, .fini = free_config)
{
	int ret = parse(POOLS "attach: {pid: 7}\n");

	cr_assert_eq(ret, 0, "parse: %s", err);
	cr_expect_str_eq(cfg.attach.pool, "web", "pool");
	cr_expect_not(cfg.attach.move_to_pool, "move_to_pool");
}

Test(attach, pool_without_command_needs_attach, .fini = free_config)
{
	int ret = parse(POOLS);

	cr_assert_eq(ret, -EINVAL, "ret");
	cr_expect(strstr(err, "test.yaml:4: pool 'web': missing required key 'command'"),
		  "message: %s", err);
}

Test(attach, other_pool_still_needs_command, .fini = free_config)
{
	int ret = parse(POOLS "attach: {pid: 7, pool: cpu}\n");

	cr_assert_eq(ret, -EINVAL, "ret");
	cr_expect(strstr(err, "pool 'web': missing required key 'command'"), "message: %s", err);
}

Test(attach, unknown_pool_rejected, .fini = free_config)
{
	int ret = parse(POOLS "attach: {pid: 7, pool: nope}\n");

	cr_assert_eq(ret, -EINVAL, "ret");
	cr_expect(strstr(err, "unknown pool"), "message: %s", err);
}

Test(attach, move_to_pool_must_be_boolean, .fini = free_config)
{
	int ret = parse(POOLS "attach: {pid: 7, move_to_pool: yes}\n");

	cr_assert_eq(ret, -EINVAL, "ret");
	cr_expect(strstr(err, "move_to_pool"), "message: %s", err);
}

Test(attach, pid_required, .fini = free_config)
{
	int ret = parse(POOLS "attach: {pool: web}\n");

	cr_assert_eq(ret, -EINVAL, "ret");
	cr_expect(strstr(err, "missing required key 'pid'"), "message: %s", err);
}

Test(attach, command_line_overrides_file, .fini = free_config)
{
	struct attach_config cli = { .pid = 99, .move_to_pool = true };
	int ret;

	snprintf(cli.pool, sizeof(cli.pool), "web");
	ret = load_with_cli(POOLS "attach: {pid: 7, pool: web}\n", &cli);
	cr_assert_eq(ret, 0, "load: %s", err);
	cr_expect_eq(cfg.attach.pid, 99, "pid");
	cr_expect(cfg.attach.move_to_pool, "move_to_pool");
}

Test(attach, command_line_unknown_pool, .fini = free_config)
{
	struct attach_config cli = { .pid = 99 };
	int ret;

	snprintf(cli.pool, sizeof(cli.pool), "nope");
	ret = load_with_cli(POOLS, &cli);
	cr_assert_eq(ret, -EINVAL, "ret");
	cr_expect(strstr(err, "--pool 'nope'"), "message: %s", err);
}

Test(attach, service_pool_cannot_scale, .fini = free_config)
{
	int ret = parse("port: 8080\n"
			"default_pool: web\n"
			"attach: {pid: 7}\n"
			"pools:\n"
			"  - name: web\n"
			"    scaling: {max: 3, target: {active_per_worker: 1}}\n"
			"  - name: cpu\n"
			"    command: [w]\n");

	cr_assert_eq(ret, -EINVAL, "ret");
	cr_expect(strstr(err, "pool 'web': key 'scaling': the attached service's pool"),
		  "message: %s", err);
}

Test(attach, pid_from_command_line_only, .fini = free_config)
{
	struct attach_config cli = { .pid = 9 };
	int ret = load_with_cli(POOLS "attach: {pool: web}\n", &cli);

	cr_assert_eq(ret, 0, "load: %s", err);
	cr_expect_eq(cfg.attach.pid, 9, "pid");
	cr_expect_str_eq(cfg.attach.pool, "web", "pool");
}
