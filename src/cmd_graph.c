/* cmd_graph.c -- porch graph: a pipeline as Graphviz DOT, for dot -Tsvg. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "balance.h"
#include "cli.h"
#include "loader.h"
#include "util.h"

static const char graph_usage[] =
    "usage: porch graph [--plugin-path DIR] [--set NAME.PARAM=VALUE] FILE\n"
    "\n"
    "Prints the pipeline as a Graphviz digraph on stdout: stages with their\n"
    "plugin (and concurrency, but for sources), workers, pools with their policy, members and\n"
    "fallbacks, and channels with capacity, overflow and condition.\n"
    "Example: porch graph pipelines/hello.xml | dot -Tsvg > hello.svg\n"
    "\n"
    "  -P, --plugin-path DIR  search DIR for plugins first (repeatable)\n"
    "  -s, --set N.P=V        draw it as porch run --set N.P=V would run it\n"
    "\n"
    "exit status: 0 printed, 2 the file is invalid.\n";

/* DOT string literal content: escape quotes and backslashes. */
static void
dot_str(FILE *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', out);
		/* a condition may span lines in the file: one line in a label */
		fputc(*s == '\n' || *s == '\r' || *s == '\t' ? ' ' : *s, out);
	}
}

/* Stages on the longest path from a source (the graph is acyclic). */
static size_t
longest_path(const struct cfg_pipeline *p)
{
	size_t n = p->n_stages, best = n > 0 ? 1 : 0;
	size_t *depth = xcalloc(n ? n : 1, sizeof *depth);
	for (size_t i = 0; i < n; i++)
		depth[i] = 1;
	/* n rounds of relaxing every channel settle any acyclic graph */
	for (size_t round = 0; round < n; round++) {
		int changed = 0;
		for (size_t k = 0; k < p->n_channels; k++) {
			const struct cfg_channel *c = &p->channels[k];
			if (c->src == NULL || c->dst == NULL)
				continue;
			size_t a = (size_t)(c->src - p->stages), b = (size_t)(c->dst - p->stages);
			if (depth[b] < depth[a] + 1) {
				depth[b] = depth[a] + 1;
				changed = 1;
			}
		}
		if (!changed)
			break;
	}
	for (size_t i = 0; i < n; i++)
		if (depth[i] > best)
			best = depth[i];
	free(depth);
	return best;
}

/* Left to right while it fits a screen's width; a longer chain of stages
 * is drawn top to bottom. */
#define GRAPH_WIDE_MAX 5

static void
print_dot(const struct cfg_pipeline *p, FILE *out)
{
	fputs("digraph \"", out);
	dot_str(out, p->name);
	fprintf(out, "\" {\n\trankdir=%s;\n\tnode [shape=box, style=rounded, "
	    "fontname=\"Helvetica\"];\n\tedge [fontname=\"Helvetica\", fontsize=10];\n",
	    longest_path(p) > GRAPH_WIDE_MAX ? "TB" : "LR");
	for (size_t i = 0; i < p->n_stages; i++) {
		const struct cfg_stage *s = &p->stages[i];
		const struct plugin *pl = s->plugin;
		int source = (pl->desc.flags & PORCH_STAGE_SOURCE) != 0;
		const char *shape = source ? "invhouse" : pl->n_outputs == 0 ? "house" : "box";
		/* a source takes no input: its concurrency means nothing */
		if (source)
			fprintf(out, "\t\"%s\" [shape=%s, label=\"%s\\n(%s)\"];\n",
			    s->name, shape, s->name, s->plugin_name);
		else
			fprintf(out, "\t\"%s\" [shape=%s, label=\"%s\\n(%s, concurrency %d)\"];\n",
			    s->name, shape, s->name, s->plugin_name, s->concurrency);
	}
	for (size_t i = 0; i < p->n_workers; i++) {
		const struct cfg_worker *w = &p->workers[i];
		fprintf(out, "\t\"worker:%s\" [shape=ellipse, label=\"%s\\n(worker %s)\"];\n",
		    w->name, w->name, w->plugin_name);
	}
	for (size_t i = 0; i < p->n_pools; i++) {
		const struct cfg_pool *pl = &p->pools[i];
		fprintf(out, "\t\"pool:%s\" [shape=component, label=\"%s\\n(pool, %s)\"];\n",
		    pl->name, pl->name, balance_policy_name(pl->policy));
		for (size_t k = 0; k < pl->n_members; k++) {
			const struct cfg_member *m = &pl->members[k];
			fprintf(out, "\t\"pool:%s\" -> \"worker:%s\" [style=dotted, "
			    "arrowhead=none, label=\"weight %d", pl->name, m->worker_name,
			    m->weight);
			if (m->context_limit > 0)
				fprintf(out, ", context %ld", m->context_limit);
			fputs("\"];\n", out);
		}
		for (size_t k = 0; k < pl->n_fallbacks; k++)
			fprintf(out, "\t\"pool:%s\" -> \"%s:%s\" [style=dashed, "
			    "label=\"fallback %zu\"];\n", pl->name,
			    pl->fb_pools[k] ? "pool" : "worker",
			    pl->fb_pools[k] ? pl->fb_pools[k]->name : pl->fb_workers[k]->name, k + 1);
	}
	for (size_t i = 0; i < p->n_stages; i++) {
		const struct cfg_stage *s = &p->stages[i];
		if (s->worker != NULL)
			fprintf(out, "\t\"%s\" -> \"worker:%s\" [style=dotted, arrowhead=none];\n",
			    s->name, s->worker->name);
		else if (s->pool != NULL)
			fprintf(out, "\t\"%s\" -> \"pool:%s\" [style=dotted, arrowhead=none];\n",
			    s->name, s->pool->name);
	}
	for (size_t i = 0; i < p->n_channels; i++) {
		const struct cfg_channel *c = &p->channels[i];
		int is_error = plugin_port_index(c->src->plugin, "error") == c->port_index;
		fprintf(out, "\t\"%s\" -> \"%s\" [label=\"", c->from, c->to);
		if (c->port_index != 0 || is_error)
			fprintf(out, "%s: ", c->port);
		fprintf(out, "%d, %s", c->capacity, overflow_name(c->overflow));
		if (c->cond != NULL) {
			fputs("\\nwhen ", out);
			dot_str(out, cond_source(c->cond));
		} else if (c->otherwise) {
			fputs("\\notherwise", out);
		}
		fprintf(out, "\"%s];\n", is_error ? ", style=dashed, color=red" : "");
	}
	fputs("}\n", out);
}

int
cmd_graph(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "plugin-path", required_argument, NULL, 'P' },
		{ "set", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli_common common = { 0 };
	int c;
	while ((c = getopt_long(argc, argv, "hP:s:", opts, NULL)) != -1) {
		switch (c) {
		case 'P':
			cli_add_plugin_dir(&common, optarg);
			break;
		case 's':
			if (cli_add_override(&common, "graph", optarg) != 0) {
				cli_free(&common);
				return EXIT_INVALID;
			}
			break;
		case 'h':
			fputs(graph_usage, stdout);
			return EXIT_OK;
		default:
			fputs(graph_usage, stderr);
			return EXIT_INVALID;
		}
	}
	if (optind != argc - 1) {
		cli_error("graph: expected exactly one pipeline file");
		fputs(graph_usage, stderr);
		cli_free(&common);
		return EXIT_INVALID;
	}
	struct diag d;
	diag_init(&d, argv[optind], stderr);
	struct cfg_pipeline *p = config_load(argv[optind], config_schema_path(),
	    common.plugin_dirs, common.n_plugin_dirs, common.overrides, common.n_overrides,
	    NULL, &d);
	if (p == NULL) {
		cli_free(&common);
		return EXIT_INVALID;
	}
	print_dot(p, stdout);
	config_free(p);
	cli_free(&common);
	return EXIT_OK;
}
