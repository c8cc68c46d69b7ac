/* cmd_check.c -- porch check: validate pipeline files, compiler style. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "node.h"
#include "loader.h"

static const char check_usage[] =
    "usage: porch check [--plugin-path DIR] [--set NAME.PARAM=VALUE] FILE...\n"
    "\n"
    "Validates each pipeline file: XML, schema, graph and every parameter.\n"
    "Every problem is printed as FILE:LINE:COL: error: MESSAGE on stderr;\n"
    "a valid file prints 'FILE: ok' on stdout.\n"
    "\n"
    "  -P, --plugin-path DIR  search DIR for plugins first (repeatable)\n"
    "  -s, --set N.P=V        check as if parameter P of stage or worker N were V\n"
    "\n"
    "exit status: 0 all valid, 2 a file is invalid or the command line is wrong.\n";

int
cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "plugin-path", required_argument, NULL, 'P' },
		{ "set", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli_common common = { 0 };
	int c, status = EXIT_OK;
	while ((c = getopt_long(argc, argv, "hP:s:", opts, NULL)) != -1) {
		switch (c) {
		case 'P':
			cli_add_plugin_dir(&common, optarg);
			break;
		case 's':
			if (cli_add_override(&common, "check", optarg) != 0)
				return EXIT_INVALID;
			break;
		case 'h':
			fputs(check_usage, stdout);
			return EXIT_OK;
		default:
			fputs(check_usage, stderr);
			return EXIT_INVALID;
		}
	}
	if (optind >= argc) {
		cli_error("check: no pipeline file given");
		fputs(check_usage, stderr);
		return EXIT_INVALID;
	}
	for (int i = optind; i < argc; i++) {
		struct diag d;
		diag_init(&d, argv[i], stderr);
		struct cfg_pipeline *p = config_load(argv[i], config_schema_path(),
		    common.plugin_dirs, common.n_plugin_dirs, common.overrides,
	    common.n_overrides, NULL, &d);
		if (p == NULL) {
			status = EXIT_INVALID;
			continue;
		}
		node_check(p, &d);
		if (d.errors > 0) {
			status = EXIT_INVALID;
			config_free(p);
			continue;
		}
		printf("%s: ok\n", argv[i]);
		config_free(p);
	}
	cli_free(&common);
	return status;
}
