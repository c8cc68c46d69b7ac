/* cmd_plugins.c -- porch plugins: what is in the plugin path, and one in detail. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "params.h"
#include "registry.h"

static const char plugins_usage[] =
    "usage: porch plugins [--plugin-path DIR] [--mdoc | NAME]\n"
    "\n"
    "Without NAME, lists every plugin in the search path with its kind and\n"
    "summary (the first of a name wins; later ones are marked shadowed).\n"
    "With NAME, prints its file, ports and parameter table.\n"
    "With --mdoc, prints the porch-plugins(7) manual page for every plugin.\n"
    "Search path: --plugin-path, $PORCH_PLUGIN_PATH, then " PORCH_PLUGINDIR ".\n"
    "\n"
    "exit status: 0 listed, 1 a plugin in the path failed to load,\n"
    "2 no plugin NAME or a usage error.\n";

struct listing {
	int broken;
	char seen[256][64];
	size_t n_seen;
};

static void
list_one(void *ctx, const char *path, const struct plugin *p, const char *err)
{
	struct listing *l = ctx;
	if (p == NULL) {
		fprintf(stderr, "porch: %s\n", err);
		l->broken = 1;
		return;
	}
	/* plugin="NAME" finds NAME.so: a file named otherwise cannot be used */
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	size_t blen = strlen(base) - 3;
	if (strlen(p->desc.name) != blen || strncmp(base, p->desc.name, blen) != 0) {
		fprintf(stderr, "porch: %s: the file is named '%s' but the plugin inside "
		    "calls itself '%s'\n", path, base, p->desc.name);
		l->broken = 1;
		return;
	}
	int shadowed = 0;
	for (size_t i = 0; i < l->n_seen; i++)
		if (strcmp(l->seen[i], p->desc.name) == 0)
			shadowed = 1;
	if (!shadowed && l->n_seen < 256)
		snprintf(l->seen[l->n_seen++], sizeof l->seen[0], "%s", p->desc.name);
	printf("%-14s %-6s %s", p->desc.name,
	    p->desc.kind == PORCH_KIND_WORKER ? "worker" : "stage", p->desc.summary);
	if (shadowed)
		printf("  [shadowed: %s]", path);
	putchar('\n');
}

/* Prints text wrapped at 76 columns, indented; a blank line between paragraphs. */
static void
print_wrapped(const char *text, const char *indent)
{
	size_t col = 0;
	const char *s = text;
	while (*s) {
		if (s[0] == '\n' && s[1] == '\n') {
			printf("\n\n");
			col = 0;
			s += 2;
			continue;
		}
		while (*s == ' ' || *s == '\n')
			s++;
		size_t w = strcspn(s, " \n");
		if (w == 0)
			break;
		if (col > 0 && col + 1 + w > 76) {
			putchar('\n');
			col = 0;
		}
		if (col == 0) {
			col = (size_t)printf("%s", indent);
		} else {
			putchar(' ');
			col++;
		}
		col += (size_t)printf("%.*s", (int)w, s);
		s += w;
	}
	if (col > 0)
		putchar('\n');
}

/*
 * A default as it would be written, with control characters shown as C
 * escapes (a separator's "\n\n" is not two blank lines in a listing or a
 * manual page); bs is how a backslash is written ("\\e" in mdoc).
 */
static void
show_default(const char *prefix, const char *v, const char *bs)
{
	fputs(prefix, stdout);
	for (; *v != '\0'; v++) {
		if (*v == '\n')
			printf("%sn", bs);
		else if (*v == '\t')
			printf("%st", bs);
		else if (*v == '\\')
			printf("%s%s", bs, bs[1] == 'e' ? "e" : "\\");
		else
			putchar(*v);
	}
}

static void
show_one(const struct plugin *p)
{
	const struct porch_plugin *d = &p->desc;
	printf("%s: %s\n", d->name, d->summary);
	printf("  kind:    %s\n", d->kind == PORCH_KIND_WORKER ? "worker" : "stage");
	printf("  file:    %s\n", p->path);
	printf("  abi:     %u.%u\n", d->abi_major, d->abi_minor);
	if (d->kind == PORCH_KIND_STAGE) {
		const char *role = (d->flags & PORCH_STAGE_SOURCE) ? "source (no input)" :
		    p->n_outputs == 0 ? "sink (input only)" : "filter (input and output)";
		printf("  role:    %s\n", role);
		printf("  ports:   ");
		for (int i = 0; i <= p->n_outputs; i++)
			printf("%s%s", i ? ", " : "", plugin_port_name(p, i));
		putchar('\n');
		if (d->flags & PORCH_STAGE_NEEDS_WORKER)
			printf("  worker:  required (worker=\"NAME\" on the <stage>)\n");
		else if (d->flags & PORCH_STAGE_OPTIONAL_WORKER)
			printf("  worker:  optional (worker=\"NAME\" on the <stage>)\n");
	}
	if (d->description != NULL) {
		putchar('\n');
		print_wrapped(d->description, "  ");
		putchar('\n');
	}
	size_t n = param_table_len(d->params);
	if (n == 0) {
		printf("  parameters: none\n");
		return;
	}
	printf("  parameters:\n");
	for (size_t i = 0; i < n; i++) {
		const struct porch_param *row = &d->params[i];
		char range[128];
		param_describe_range(row, range, sizeof range);
		printf("    %-18s %-9s", row->name, param_type_name(row->type));
		if (row->flags & PORCH_PARAM_REQUIRED)
			printf(" required");
		else if (row->default_value != NULL && *row->default_value)
			show_default(" default ", row->default_value, "\\");
		else if (row->default_value != NULL)
			printf(" default \"\"");
		else
			printf(" no default");
		if (range[0])
			printf(", %s %s", row->type == PORCH_PARAM_ENUM ? "one of" : "range", range);
		if (row->flags & PORCH_PARAM_RELOADABLE)
			printf(", reloadable");
		printf("\n        %s\n", row->doc ? row->doc : "");
	}
}

/* Text for an mdoc line: no leading dot or quote, backslashes escaped. */
static void
mdoc_text(FILE *out, const char *s)
{
	if (*s == '.' || *s == '\'')
		fputs("\\&", out);
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\e", out);
		else
			fputc(*s, out);
	}
}

/* Paragraphs as mdoc: one sentence per line, .Pp between paragraphs. */
static void
mdoc_paragraphs(FILE *out, const char *text)
{
	char line[4096];
	size_t n = 0;
	for (const char *s = text;; s++) {
		int para = s[0] == '\n' && s[1] == '\n';
		int sentence_end = n > 0 && (line[n - 1] == '.' || line[n - 1] == '?' ||
		    line[n - 1] == '!') && (*s == ' ' || *s == '\n');
		if (*s == '\0' || para || sentence_end || n == sizeof line - 1) {
			line[n] = '\0';
			if (n > 0) {
				mdoc_text(out, line);
				fputc('\n', out);
			}
			n = 0;
			if (*s == '\0')
				break;
			if (para) {
				fputs(".Pp\n", out);
				s++;
			}
			if (*s == ' ' || *s == '\n' || para)
				continue;
		}
		if (n == 0 && (*s == ' ' || *s == '\n'))
			continue;
		line[n++] = *s == '\n' ? ' ' : *s;
	}
}

static void
mdoc_one(void *ctx, const char *path, const struct plugin *p, const char *err)
{
	(void)path;
	struct listing *l = ctx;
	if (p == NULL) {
		fprintf(stderr, "porch: %s\n", err);
		l->broken = 1;
		return;
	}
	const struct porch_plugin *d = &p->desc;
	printf(".Ss %s\n", d->name);
	mdoc_text(stdout, d->summary);
	/* mdoc wants each sentence on a line of its own */
	printf("\n.Pp\n");
	if (d->description != NULL) {
		mdoc_paragraphs(stdout, d->description);
		printf(".Pp\n");
	}
	printf("Kind: %s.\n", d->kind == PORCH_KIND_WORKER ? "worker" : "stage");
	if (d->kind == PORCH_KIND_STAGE) {
		printf("Role: %s.\nPorts:", (d->flags & PORCH_STAGE_SOURCE) ? "source" :
		    p->n_outputs == 0 ? "sink" : "filter");
		for (int i = 0; i <= p->n_outputs; i++)
			printf(" %s%s", plugin_port_name(p, i), i < p->n_outputs ? "," : ".");
		putchar('\n');
		if (d->flags & PORCH_STAGE_NEEDS_WORKER)
			printf("Needs a worker.\n");
		else if (d->flags & PORCH_STAGE_OPTIONAL_WORKER)
			printf("May name a worker.\n");
	}
	size_t n = param_table_len(d->params);
	if (n == 0) {
		printf(".Pp\nNo parameters.\n");
		return;
	}
	printf(".Bl -tag -width Ds\n");
	for (size_t i = 0; i < n; i++) {
		const struct porch_param *row = &d->params[i];
		char range[128];
		param_describe_range(row, range, sizeof range);
		printf(".It Cm %s Ar %s\n", row->name, param_type_name(row->type));
		if (row->flags & PORCH_PARAM_REQUIRED)
			printf("Required.\n");
		else if (row->default_value != NULL && *row->default_value) {
			show_default("Default: ", row->default_value, "\\e");
			printf(".\n");
		}
		else if (row->default_value != NULL)
			printf("Default: empty.\n");
		if (range[0])
			printf("%s %s.\n", row->type == PORCH_PARAM_ENUM ? "One of" : "Range:", range);
		mdoc_text(stdout, row->doc ? row->doc : "");
		putchar('\n');
	}
	printf(".El\n");
}

/* porch-plugins(7), generated from the plugins' own tables at build time. */
static int
print_mdoc(struct registry *r)
{
	struct listing l;
	memset(&l, 0, sizeof l);
	printf(".\\\" generated by 'porch plugins --mdoc' from the plugins' tables: do not edit\n"
	    ".Dd November 22, 2026\n.Dt PORCH-PLUGINS 7\n.Os\n.Sh NAME\n"
	    ".Nm porch-plugins\n.Nd the plugins that come with porch\n"
	    ".Sh DESCRIPTION\n"
	    "These are the stage and worker plugins built and installed with porch.\n"
	    "This page is generated from each plugin's parameter table, the same table\n"
	    ".Ic porch check\n"
	    "validates pipeline files with and\n"
	    ".Ic porch plugins Ar NAME\n"
	    "prints, so the three cannot disagree.\n"
	    "Durations are in milliseconds unless a unit is given, sizes in bytes\n"
	    "unless a suffix is given; see\n.Xr porch.xml 5 .\n");
	registry_scan(r, mdoc_one, &l);
	printf(".Sh SEE ALSO\n.Xr porch 1 ,\n.Xr porch-plugin 3 ,\n.Xr porch.xml 5\n");
	return l.broken ? EXIT_RUNTIME : EXIT_OK;
}

int
cmd_plugins(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "plugin-path", required_argument, NULL, 'P' },
		{ "mdoc", no_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli_common common = { 0 };
	int c, status = EXIT_OK, mdoc = 0;
	while ((c = getopt_long(argc, argv, "hP:", opts, NULL)) != -1) {
		switch (c) {
		case 'P':
			cli_add_plugin_dir(&common, optarg);
			break;
		case 'm':
			mdoc = 1;
			break;
		case 'h':
			fputs(plugins_usage, stdout);
			return EXIT_OK;
		default:
			fputs(plugins_usage, stderr);
			return EXIT_INVALID;
		}
	}
	if (argc - optind > 1) {
		cli_error("plugins: expected at most one plugin name");
		return EXIT_INVALID;
	}
	struct registry r;
	registry_init(&r);
	registry_setup(&r, common.plugin_dirs, common.n_plugin_dirs, NULL, NULL);
	if (mdoc) {
		status = print_mdoc(&r);
	} else if (optind == argc) {
		struct listing l;
		memset(&l, 0, sizeof l);
		registry_scan(&r, list_one, &l);
		if (l.n_seen == 0 && !l.broken) {
			char path[1024];
			registry_describe(&r, path, sizeof path);
			cli_error("no plugins found in %s", path);
		}
		status = l.broken ? EXIT_RUNTIME : EXIT_OK;
	} else {
		char err[2048];
		const struct plugin *p = registry_find(&r, argv[optind], err, sizeof err);
		if (p == NULL) {
			cli_error("%s", err);
			status = EXIT_INVALID;
		} else {
			show_one(p);
		}
	}
	registry_free(&r);
	cli_free(&common);
	return status;
}
