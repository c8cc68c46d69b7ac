/* cli.h -- the porch command's subcommands (src/cmd_*.c) and what they share (src/cli.c). */
#ifndef PORCH_CLI_H
#define PORCH_CLI_H

#include <stddef.h>

/* Exit statuses, documented in porch(1). */
#define EXIT_OK       0
#define EXIT_RUNTIME  1  /* a plugin failed to start, I/O failed */
#define EXIT_INVALID  2  /* invalid pipeline file or command line */

#include "loader.h"

/* Options every subcommand that loads plugins takes. */
struct cli_common {
	char **plugin_dirs;
	size_t n_plugin_dirs;
	struct override *overrides;  /* --set, for run and check */
	size_t n_overrides;
};

void cli_add_plugin_dir(struct cli_common *c, const char *dir);
/* Adds a --set NAME.PARAM=VALUE; -1 after printing why if malformed. */
int cli_add_override(struct cli_common *c, const char *cmd, const char *arg);
void cli_free(struct cli_common *c);

int cmd_run(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_graph(int argc, char **argv);
int cmd_plugins(int argc, char **argv);
int cmd_reload(int argc, char **argv);
int cmd_top(int argc, char **argv);

/* "30s", "250ms", "2m", "1h" in seconds: 0, or -1 if malformed. */
int cli_parse_duration(const char *s, double *out);

/* "porch: " + message on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
