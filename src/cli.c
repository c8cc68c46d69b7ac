/*
 * cli.c -- what the porch command's subcommands share: error messages,
 * the options that load plugins (--plugin-path, --set) and durations on
 * the command line.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

void
cli_error(const char *fmt, ...)
{
	va_list ap;
	fputs("porch: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void
cli_add_plugin_dir(struct cli_common *c, const char *dir)
{
	c->plugin_dirs = xrealloc(c->plugin_dirs, (c->n_plugin_dirs + 1) * sizeof(char *));
	c->plugin_dirs[c->n_plugin_dirs++] = xstrdup(dir);
}

int
cli_add_override(struct cli_common *c, const char *cmd, const char *arg)
{
	struct override o;
	char err[256];
	if (override_parse(arg, &o, err, sizeof err) != 0) {
		cli_error("%s: %s", cmd, err);
		return -1;
	}
	c->overrides = xrealloc(c->overrides, (c->n_overrides + 1) * sizeof o);
	c->overrides[c->n_overrides++] = o;
	return 0;
}

void
cli_free(struct cli_common *c)
{
	for (size_t i = 0; i < c->n_plugin_dirs; i++)
		free(c->plugin_dirs[i]);
	free(c->plugin_dirs);
	for (size_t i = 0; i < c->n_overrides; i++) {
		free(c->overrides[i].target);
		free(c->overrides[i].param);
		free(c->overrides[i].value);
	}
	free(c->overrides);
	c->plugin_dirs = NULL;
	c->overrides = NULL;
	c->n_plugin_dirs = c->n_overrides = 0;
}

/* "30s", "250ms", "2m", "1h": an integer and a unit, nothing else. */
int
cli_parse_duration(const char *s, double *out)
{
	size_t digits = strspn(s, "0123456789");
	if (digits == 0 || digits > 9)
		return -1;
	double v = (double)strtol(s, NULL, 10);
	const char *unit = s + digits;
	if (strcmp(unit, "ms") == 0)
		*out = v / 1000;
	else if (strcmp(unit, "s") == 0)
		*out = v;
	else if (strcmp(unit, "m") == 0)
		*out = v * 60;
	else if (strcmp(unit, "h") == 0)
		*out = v * 3600;
	else
		return -1;
	return 0;
}
