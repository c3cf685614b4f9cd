// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* triage: one binary, one handler per subcommand. */
#include <stdio.h>
#include <string.h>

#include "attach.h"
#include "controller.h"

#define TRIAGE_VERSION	"0.1.0"

static const char usage[] =
	"Usage: triage COMMAND [OPTIONS]\n"
	"Steers each connection of a port to a worker pool, chosen in the kernel from the\n"
	"connection's first payload bytes.\n"
	"\n"
	"Commands:\n"
	"  run --config FILE     run the controller in the foreground (root)\n"
	"  attach --port P --pid PID [--pool NAME] [--move-to-pool] [--config FILE]\n"
	"                        steer a port where PID already listens: through the running\n"
	"                        controller, or with --config through a new one\n"
	"  check --config FILE   validate a configuration and change nothing\n"
	"  status [--port P] [--json]\n"
	"                        print pools, workers and steering counters from the pins\n"
	"  pools [--port P] [--json]\n"
	"                        print each pool's size, limits, load and last scaling decision\n"
	"  detach --port P       stop the port's controller, or remove what a crashed run left\n"
	"  version               print the version\n"
	"\n"
	"Run 'triage COMMAND --help' for the options of a command.\n";

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	if (!strcmp(cmd, "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(cmd, "attach"))
		return cmd_attach(argc - 1, argv + 1);
	if (!strcmp(cmd, "check"))
		return cmd_check(argc - 1, argv + 1);
	if (!strcmp(cmd, "status"))
		return cmd_status(argc - 1, argv + 1);
	if (!strcmp(cmd, "pools"))
		return cmd_pools(argc - 1, argv + 1);
	if (!strcmp(cmd, "detach"))
		return cmd_detach(argc - 1, argv + 1);
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
		printf("triage %s\n", TRIAGE_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		fputs(usage, stdout);
		return 0;
	}
	if (*cmd)
		fprintf(stderr, "triage: unknown command '%s'\n", cmd);
	fputs(usage, stderr);
	return 2;
}
