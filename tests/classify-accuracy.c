/*
 * classify-accuracy.c -- the classify stage's heuristics on a labelled set
 * of prompts: how often they give the label a person gave.
 *
 *   classify-accuracy [-p CHARS] [-v | -l | -j | -t ROUNDS] [FILE]
 *
 * FILE (default $top_srcdir/tests/classify/prompts.tsv) has a prompt a
 * line: category TAB complexity TAB text, with \n, \t and \\ escaped in
 * the text; lines starting with # are comments.  Each text is cut to its
 * first CHARS characters (800, the stage's default prefix-chars) and
 * labelled by plugins/classify/heuristic.c, the stage's own code.  Prints
 * the accuracy of category and of complexity, per class (recall: right
 * of the prompts of that class, and precision: right of those given that
 * label) and the confusion matrices.  -v also lists every prompt labelled
 * wrong; -l prints only the labels given, "category TAB complexity" a
 * line; -j prints only the prompts as JSON lines {"text": ...}, the stdin
 * source's input; -t labels every prompt ROUNDS times and prints only the
 * time it took per prompt and per byte of prefix (CLOCK_MONOTONIC, the
 * index made once).  A measurement: it exits 0 whatever the accuracy, 1 only
 * when the file cannot be read or has a malformed line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "labels.h"

struct prompt {
	int category, complexity;
	char *text;
	size_t len;
};

static void
die(const char *fmt, const char *a, long b)
{
	fprintf(stderr, "classify-accuracy: ");
	fprintf(stderr, fmt, a, b);
	fputc('\n', stderr);
	exit(1);
}

/* \n, \t and \\ in s (in place); the new length */
static size_t
unescape(char *s)
{
	size_t o = 0;
	for (size_t i = 0; s[i] != '\0'; i++) {
		if (s[i] == '\\' && (s[i + 1] == 'n' || s[i + 1] == 't' || s[i + 1] == '\\')) {
			i++;
			s[o++] = s[i] == 'n' ? '\n' : s[i] == 't' ? '\t' : '\\';
		} else {
			s[o++] = s[i];
		}
	}
	s[o] = '\0';
	return o;
}

static void
json_line(const char *s, size_t n)
{
	fputs("{\"text\":\"", stdout);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c == '\n')
			fputs("\\n", stdout);
		else if (c == '\t')
			fputs("\\t", stdout);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	fputs("\"}\n", stdout);
}

static void
table(const char *what, const char *const *names, int n, int conf[][CLS_N_CATEGORIES],
    size_t total)
{
	int right = 0;
	for (int i = 0; i < n; i++)
		right += conf[i][i];
	printf("%s: %d of %zu right (%.1f%%)\n", what, right, total,
	    total ? 100.0 * right / (double)total : 0.0);
	printf("  %-15s %9s %9s   confusion (rows: labelled, columns: given)\n", "",
	    "recall", "precision");
	printf("  %-15s %9s %9s  ", "", "", "");
	for (int j = 0; j < n; j++)
		printf(" %5.5s", names[j]);
	putchar('\n');
	for (int i = 0; i < n; i++) {
		int row = 0, col = 0;
		for (int j = 0; j < n; j++) {
			row += conf[i][j];
			col += conf[j][i];
		}
		char r[16], p[16];
		snprintf(r, sizeof r, "%d/%d", conf[i][i], row);
		snprintf(p, sizeof p, "%d/%d", conf[i][i], col);
		printf("  %-15s %9s %9s  ", names[i], r, p);
		for (int j = 0; j < n; j++)
			printf(" %5d", conf[i][j]);
		putchar('\n');
	}
}

int
main(int argc, char **argv)
{
	size_t chars = 800;
	int mode = 0; /* 'v', 'l', 'j', 't' */
	long rounds = 0;
	const char *path = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-p") == 0 && i + 1 < argc)
			chars = (size_t)strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc && (rounds = atol(argv[++i])) > 0)
			mode = 't';
		else if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "-l") == 0 ||
		    strcmp(argv[i], "-j") == 0)
			mode = argv[i][1];
		else if (argv[i][0] == '-')
			die("usage: classify-accuracy [-p CHARS] [-v | -l | -j | -t ROUNDS] [FILE]%s%ld",
			    "", 0);
		else
			path = argv[i];
	}
	char def[4096];
	if (path == NULL) {
		const char *top = getenv("top_srcdir");
		snprintf(def, sizeof def, "%s/tests/classify/prompts.tsv", top ? top : ".");
		path = def;
	}
	FILE *f = fopen(path, "r");
	if (f == NULL)
		die("cannot read %s%ld", path, 0);

	struct prompt *ps = NULL;
	size_t n = 0, cap = 0;
	char *line = NULL;
	size_t lcap = 0;
	long lineno = 0;
	ssize_t got;
	while ((got = getline(&line, &lcap, f)) >= 0) {
		lineno++;
		if (got > 0 && line[got - 1] == '\n')
			line[--got] = '\0';
		if (got == 0 || line[0] == '#')
			continue;
		char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
		if (t2 == NULL || strchr(t2 + 1, '\t') != NULL)
			die("%s:%ld: not category TAB complexity TAB text", path, lineno);
		int cat = cls_category_of(line, (size_t)(t1 - line));
		int cx = cls_complexity_of(t1 + 1, (size_t)(t2 - t1 - 1));
		if (cat < 0 || cx < 0)
			die("%s:%ld: unknown category or complexity", path, lineno);
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			ps = realloc(ps, cap * sizeof *ps);
			if (ps == NULL)
				die("out of memory%s%ld", "", 0);
		}
		ps[n].category = cat;
		ps[n].complexity = cx;
		ps[n].text = strdup(t2 + 1);
		if (ps[n].text == NULL)
			die("out of memory%s%ld", "", 0);
		ps[n].len = unescape(ps[n].text);
		n++;
	}
	free(line);
	fclose(f);

	struct cls_index ix;
	cls_index_init(&ix);
	if (mode == 't') {
		struct timespec a, b;
		size_t bytes = 0, sink = 0;
		clock_gettime(CLOCK_MONOTONIC, &a);
		for (long r = 0; r < rounds; r++) {
			for (size_t i = 0; i < n; i++) {
				struct cls_labels l;
				size_t plen = cls_prefix(ps[i].text, ps[i].len, chars);
				cls_heuristic(&ix, ps[i].text, plen, &l);
				sink += l.category + l.complexity;
				bytes += plen;
			}
		}
		clock_gettime(CLOCK_MONOTONIC, &b);
		double ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
		printf("%zu prompts x %ld rounds: %.0f ns per prompt, %.1f ns per byte of "
		    "prefix (mean prefix %.0f bytes)%s\n", n, rounds, ns / ((double)n * rounds),
		    ns / (double)bytes, (double)bytes / ((double)n * rounds), sink ? "" : " ");
		for (size_t i = 0; i < n; i++)
			free(ps[i].text);
		free(ps);
		return 0;
	}
	int cat_conf[CLS_N_CATEGORIES][CLS_N_CATEGORIES] = { { 0 } };
	int cx_conf[CLS_N_CATEGORIES][CLS_N_CATEGORIES] = { { 0 } };
	for (size_t i = 0; i < n; i++) {
		if (mode == 'j') {
			json_line(ps[i].text, ps[i].len);
			continue;
		}
		struct cls_labels l;
		cls_heuristic(&ix, ps[i].text, cls_prefix(ps[i].text, ps[i].len, chars), &l);
		if (mode == 'l') {
			printf("%s\t%s\n", cls_category_names[l.category],
			    cls_complexity_names[l.complexity]);
			continue;
		}
		cat_conf[ps[i].category][l.category]++;
		cx_conf[ps[i].complexity][l.complexity]++;
		if (mode == 'v' && ((int)l.category != ps[i].category ||
		    (int)l.complexity != ps[i].complexity))
			printf("%s/%s labelled %s/%s: %.70s\n", cls_category_names[l.category],
			    cls_complexity_names[l.complexity], cls_category_names[ps[i].category],
			    cls_complexity_names[ps[i].complexity], ps[i].text);
	}
	if (mode != 'l' && mode != 'j') {
		printf("classify heuristics on %s: %zu prompts, prefix %zu characters\n",
		    path, n, chars);
		table("category", cls_category_names, CLS_N_CATEGORIES, cat_conf, n);
		table("complexity", cls_complexity_names, CLS_N_COMPLEXITIES, cx_conf, n);
	}
	for (size_t i = 0; i < n; i++)
		free(ps[i].text);
	free(ps);
	return 0;
}
