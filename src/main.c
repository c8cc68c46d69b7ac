/*
 * main.c -- the porch command: picks the subcommand (run, replay, reload,
 * check, graph, plugins, top) and hands it the command line.  The subcommands
 * are src/cmd_*.c; what they share is in src/cli.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "crash.h"
#include "porch/plugin.h"
#include "util.h"

static const char usage[] =
    "usage: porch COMMAND [OPTIONS] [ARGS]\n"
    "\n"
    "commands:\n"
    "  run FILE         run a pipeline until its input ends or a signal drains it\n"
    "  replay DLQ FILE  feed the dead letters in DLQ back into pipeline FILE\n"
    "  check FILE...    validate pipeline files; errors as FILE:LINE:COL: error: ...\n"
    "  graph FILE       print the pipeline as a Graphviz graph (porch graph F | dot -Tsvg)\n"
    "  plugins [NAME]   list the plugins found, or show one's ports and parameters\n"
    "  reload PIDFILE   make a running porch load its pipeline file again (SIGHUP)\n"
    "  top URL          watch a running porch live, from its /metrics (http stage or --control)\n"
    "\n"
    "options:\n"
    "  --help           this text; 'porch COMMAND --help' for a command's options\n"
    "  --version        print the version and plugin ABI\n"
    "\n"
    "exit status: 0 success, 1 runtime failure, 2 invalid pipeline or usage.\n"
    "See porch(1), porch.xml(5) and porch-plugin(3).\n";

int
main(int argc, char **argv)
{
	/* a crash names the plugin callback that was running (porch(1)) */
	crash_install();
	if (argc < 2) {
		fputs(usage, stderr);
		return EXIT_INVALID;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		fputs(usage, stdout);
		return EXIT_OK;
	}
	if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
		printf("porch %s (plugin ABI %d.%d)\n", PACKAGE_VERSION, PORCH_ABI_MAJOR,
		    PORCH_ABI_MINOR);
		return EXIT_OK;
	}
	if (strcmp(cmd, "run") == 0)
		return cmd_run(argc - 1, argv + 1);
	if (strcmp(cmd, "replay") == 0)
		return cmd_replay(argc - 1, argv + 1);
	if (strcmp(cmd, "check") == 0)
		return cmd_check(argc - 1, argv + 1);
	if (strcmp(cmd, "graph") == 0)
		return cmd_graph(argc - 1, argv + 1);
	if (strcmp(cmd, "plugins") == 0)
		return cmd_plugins(argc - 1, argv + 1);
	if (strcmp(cmd, "reload") == 0)
		return cmd_reload(argc - 1, argv + 1);
	if (strcmp(cmd, "top") == 0)
		return cmd_top(argc - 1, argv + 1);

	static const char *const cmds[] = { "run", "replay", "check", "graph", "plugins",
		"reload", "top" };
	const char *near = NULL;
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
		if (edit_distance(cmds[i], cmd) <= 2)
			near = cmds[i];
	if (near)
		cli_error("unknown command '%s'; did you mean '%s'? (see porch --help)", cmd, near);
	else
		cli_error("unknown command '%s' (see porch --help)", cmd);
	return EXIT_INVALID;
}
