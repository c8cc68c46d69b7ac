/*
 * rag-bench.c -- the driver of bench/rag: makes a synthetic corpus and
 * queries, and measures the rag stage's index (plugins/rag/, compiled in)
 * and SQLite FTS5 on the same passages and the same queries.
 *
 *   rag-bench gen DIR DOCS SEED     writes DOCS documents under DIR
 *   rag-bench queries N SEED        writes N queries, one a line
 *   rag-bench split DIR             reads and splits only (the shared part)
 *   rag-bench ours DIR QUERIES K MAX-CONTEXT REPEAT TOP1-FILE
 *   rag-bench fts5 DIR QUERIES K MAX-CONTEXT REPEAT TOP1-FILE
 *
 * ours and fts5 print "name value" lines: build_ms, rss_build_kib (VmRSS
 * growth over the build), index_kib (the index's own accounting: bm25_bytes
 * or sqlite3_memory_used), passages, queries, repeat, query_s (median of
 * REPEAT passes over every query), query_best_s, qps (queries / median),
 * hits (total passages attached in one pass).  TOP1-FILE gets each query's
 * best passage number (-1: none), one a line, to compare the two rankings:
 * from an untimed pass for ours; from the first timed pass for FTS5, where
 * one fprintf per query is lost in the noise and a pass takes long.
 *
 * Both sides do the same work per query: find the K best passages of the
 * query text and build the context of at most MAX-CONTEXT bytes from their
 * text (rag_context, as the stage does).  Both build from the same
 * passages: every document read and cut by rag_split, passages without a
 * token left out, so passage i of the index is row i + 1 of the FTS5 table.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "bm25.h"
#include "corpus.h"
#include "passage.h"
#include "token.h"

#define MAX_PASSAGE 1024 /* the stage's default max-passage-bytes */

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
die(const char *fmt, const char *arg)
{
	fprintf(stderr, "rag-bench: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(1);
}

/* VmRSS (or another /proc/self/status field) in KiB. */
static long
status_kib(const char *field)
{
	char line[256];
	long v = -1;
	size_t n = strlen(field);
	FILE *f = fopen("/proc/self/status", "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL)
		if (strncmp(line, field, n) == 0 && line[n] == ':')
			v = strtol(line + n + 1, NULL, 10);
	fclose(f);
	return v;
}

/* ---- the synthetic corpus ---------------------------------------------- */

static uint64_t
rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double
uniform(uint64_t *s)
{
	return (double)(rnd(s) >> 11) * 0x1.0p-53;
}

static size_t
between(uint64_t *s, size_t lo, size_t hi)
{
	return lo + (size_t)(rnd(s) % (hi - lo + 1));
}

/*
 * The vocabulary: VOCAB words whose frequencies follow Zipf's law with
 * exponent 1 (rank r is drawn with probability proportional to 1 / r).
 * As in English, the most frequent ranks are stop words, which the
 * tokeniser drops; the others are made of consonant-vowel syllables.
 */
#define VOCAB 50000
static const char *const stops[] = {
	"the", "of", "and", "to", "a", "in", "is", "it", "that", "for", "was",
	"on", "are", "as", "with", "by", "this", "be", "at", "or", "not", "which",
};
#define N_STOPS (sizeof stops / sizeof stops[0])

static char words[VOCAB][16];
static double cdf[VOCAB];

static void
vocab_init(void)
{
	static const char cons[] = "bcdfghjklmnprstvz", vow[] = "aeiou";
	double sum = 0;
	for (size_t r = 0; r < VOCAB; r++) {
		if (r < N_STOPS) {
			snprintf(words[r], sizeof words[r], "%s", stops[r]);
		} else {
			/* r in base 85 (17 consonants x 5 vowels), two syllables at least */
			size_t v = r + 85, n = 0;
			char *w = words[r];
			while (v > 0) {
				size_t syl = v % 85;
				w[n++] = cons[syl / 5];
				w[n++] = vow[syl % 5];
				v /= 85;
			}
			w[n] = '\0';
		}
		sum += 1.0 / (double)(r + 1);
		cdf[r] = sum;
	}
	for (size_t r = 0; r < VOCAB; r++)
		cdf[r] /= sum;
}

static const char *
word(uint64_t *s)
{
	double u = uniform(s);
	size_t lo = 0, hi = VOCAB - 1;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return words[lo];
}

/* A sentence of 5 to 20 words, capitalized, ending with a full stop. */
static void
sentence(FILE *f, uint64_t *s)
{
	size_t n = between(s, 5, 20);
	for (size_t i = 0; i < n; i++) {
		const char *w = word(s);
		if (i == 0)
			fprintf(f, "%c%s", w[0] - 'a' + 'A', w + 1);
		else
			fprintf(f, " %s", w);
	}
	fputc('.', f);
}

/*
 * DOCS documents in 100 directories (d00/ to d99/), alternately .md (with
 * a "# " heading of 2 to 5 words) and .txt, each of 3 to 6 paragraphs of 2
 * to 7 sentences.
 */
static void
gen(const char *dir, size_t docs, uint64_t seed)
{
	char path[4096];
	uint64_t s = seed;
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		die("cannot make %s", dir);
	for (size_t d = 0; d < 100; d++) {
		snprintf(path, sizeof path, "%s/d%02zu", dir, d);
		if (mkdir(path, 0755) != 0 && errno != EEXIST)
			die("cannot make %s", path);
	}
	for (size_t i = 0; i < docs; i++) {
		int md = i % 2 == 0;
		snprintf(path, sizeof path, "%s/d%02zu/doc%05zu.%s", dir, i % 100, i,
		    md ? "md" : "txt");
		FILE *f = fopen(path, "w");
		if (f == NULL)
			die("cannot write %s", path);
		if (md) {
			fputs("#", f);
			for (size_t n = between(&s, 2, 5); n > 0; n--)
				fprintf(f, " %s", word(&s));
			fputs("\n\n", f);
		}
		for (size_t p = between(&s, 3, 6); p > 0; p--) {
			for (size_t n = between(&s, 2, 7); n > 0; n--) {
				sentence(f, &s);
				fputc(n > 1 ? ' ' : '\n', f);
			}
			if (p > 1)
				fputc('\n', f);
		}
		if (fclose(f) != 0)
			die("cannot write %s", path);
	}
}

/* N queries of 2 to 6 words from the same vocabulary, at least one not a stop word. */
static void
queries(size_t n, uint64_t seed)
{
	uint64_t s = seed;
	char q[256];
	while (n > 0) {
		size_t used = 0;
		for (size_t k = between(&s, 2, 6); k > 0; k--)
			used += (size_t)snprintf(q + used, sizeof q - used, "%s%s",
			    used ? " " : "", word(&s));
		if (!rag_token_any(q, used))
			continue;
		printf("%s?\n", q);
		n--;
	}
}

/* ---- reading and splitting, shared by both sides ------------------------ */

typedef int passage_fn(void *ctx, uint32_t doc, const char *text, size_t len);

struct feed {
	passage_fn *fn;
	void *ctx;
	uint32_t doc;
	size_t passages;
};

static int
feed_one(void *ctx, const char *text, size_t len)
{
	struct feed *f = ctx;
	if (!rag_token_any(text, len))
		return 0; /* as bm25_add leaves it out */
	f->passages++;
	return f->fn(f->ctx, f->doc, text, len);
}

/*
 * Reads and splits every document of files (under dir) as the stage does,
 * and calls fn for each passage with a token.  Returns the passages.
 */
static size_t
each_passage(const char *dir, char **files, size_t n_files, passage_fn *fn, void *ctx)
{
	char path[4096];
	char *buf = NULL;
	size_t cap = 0;
	struct feed f = { fn, ctx, 0, 0 };
	for (size_t i = 0; i < n_files; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		FILE *fp = fopen(path, "rb");
		if (fp == NULL)
			die("cannot read %s", path);
		size_t len = 0, r;
		for (;;) {
			if (cap - len < 65536) {
				cap = cap ? cap * 2 : 65536;
				if ((buf = realloc(buf, cap)) == NULL)
					die("%s", "out of memory");
			}
			if ((r = fread(buf + len, 1, cap - len, fp)) == 0)
				break;
			len += r;
		}
		fclose(fp);
		f.doc = (uint32_t)i;
		if (rag_split(buf, len, MAX_PASSAGE, feed_one, &f) != 0)
			die("%s", "splitting failed");
	}
	free(buf);
	return f.passages;
}

struct files {
	char **v;
	size_t n;
};

/* The sorted document list, from the stage's own directory walk. */
static void
file_list(const char *dir, struct files *f)
{
	char err[1024];
	if (rag_corpus_list(dir, &f->v, &f->n, err, sizeof err) != 0)
		die("%s", err);
}

static int
count_only(void *ctx, uint32_t doc, const char *text, size_t len)
{
	(void)doc;
	(void)text;
	*(size_t *)ctx += len;
	return 0;
}

/* ---- queries ------------------------------------------------------------ */

struct qset {
	char **q;
	size_t *len;
	size_t n;
};

static void
read_queries(const char *path, struct qset *qs)
{
	char line[1024];
	size_t cap = 0;
	FILE *f = fopen(path, "r");
	if (f == NULL)
		die("cannot read %s", path);
	memset(qs, 0, sizeof *qs);
	while (fgets(line, sizeof line, f) != NULL) {
		size_t n = strcspn(line, "\n");
		line[n] = '\0';
		if (qs->n == cap) {
			cap = cap ? cap * 2 : 1024;
			qs->q = realloc(qs->q, cap * sizeof *qs->q);
			qs->len = realloc(qs->len, cap * sizeof *qs->len);
			if (qs->q == NULL || qs->len == NULL)
				die("%s", "out of memory");
		}
		qs->q[qs->n] = strdup(line);
		qs->len[qs->n++] = n;
	}
	fclose(f);
}

static void
free_queries(struct qset *qs)
{
	for (size_t i = 0; i < qs->n; i++)
		free(qs->q[i]);
	free(qs->q);
	free(qs->len);
}

static int
by_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void
report(const char *side, double build_s, long rss_kib, size_t index_bytes, size_t passages,
    size_t nq, double *pass_s, int repeat, size_t hits)
{
	qsort(pass_s, (size_t)repeat, sizeof *pass_s, by_double);
	double med = pass_s[repeat / 2];
	printf("side %s\n", side);
	printf("build_ms %.1f\n", build_s * 1e3);
	printf("rss_build_kib %ld\n", rss_kib);
	printf("index_kib %zu\n", index_bytes / 1024);
	printf("passages %zu\n", passages);
	printf("queries %zu\n", nq);
	printf("repeat %d\n", repeat);
	printf("query_s %.4f\n", med);
	printf("query_best_s %.4f\n", pass_s[0]);
	printf("qps %.0f\n", (double)nq / med);
	printf("hits %zu\n", hits);
	printf("peak_rss_kib %ld\n", status_kib("VmHWM"));
}

/* ---- ours --------------------------------------------------------------- */

static void
run_ours(const char *dir, const char *qpath, size_t k, size_t maxctx, int repeat,
    const char *top1)
{
	struct qset qs;
	char err[1024];
	read_queries(qpath, &qs);
	struct bm25_hit *hits = calloc(k, sizeof *hits);
	struct rag_span *spans = calloc(k, sizeof *spans);
	char *ctx = malloc(maxctx + 1);
	double *pass_s = calloc((size_t)repeat, sizeof *pass_s);

	long rss0 = status_kib("VmRSS");
	double t0 = now();
	struct rag_corpus *c = rag_corpus_load(dir, MAX_PASSAGE, 1.2, 0.75, err, sizeof err);
	double build = now() - t0;
	if (c == NULL)
		die("%s", err);
	long rss1 = status_kib("VmRSS");
	struct bm25 *ix = c->index;

	/* an untimed pass for the best passages, which warms the caches too */
	FILE *t1 = fopen(top1, "w");
	for (size_t i = 0; t1 != NULL && i < qs.n; i++) {
		size_t n = bm25_search(ix, qs.q[i], qs.len[i], k, hits);
		fprintf(t1, "%ld\n", n ? (long)hits[0].passage : -1L);
	}
	if (t1 != NULL)
		fclose(t1);
	size_t total = 0;
	for (int r = 0; r < repeat; r++) {
		total = 0;
		double s = now();
		for (size_t i = 0; i < qs.n; i++) {
			size_t n = bm25_search(ix, qs.q[i], qs.len[i], k, hits), len;
			for (size_t j = 0; j < n; j++)
				spans[j].text = bm25_passage(ix, hits[j].passage, &spans[j].len, NULL);
			total += rag_context(ctx, maxctx, spans, n, &len);
		}
		pass_s[r] = now() - s;
	}
	report("ours", build, rss1 - rss0, bm25_bytes(ix), bm25_passages(ix), qs.n, pass_s,
	    repeat, total);
	rag_corpus_free(c);
	free_queries(&qs);
	free(hits);
	free(spans);
	free(ctx);
	free(pass_s);
}

/* ---- SQLite FTS5 -------------------------------------------------------- */

static void
sql(sqlite3 *db, const char *s)
{
	char *err = NULL;
	if (sqlite3_exec(db, s, NULL, NULL, &err) != SQLITE_OK)
		die("sqlite: %s", err);
}

static int
insert_one(void *ctx, uint32_t doc, const char *text, size_t len)
{
	sqlite3_stmt *st = ctx;
	(void)doc;
	sqlite3_bind_text(st, 1, text, (int)len, SQLITE_TRANSIENT);
	if (sqlite3_step(st) != SQLITE_DONE)
		die("%s", "sqlite: insert failed");
	sqlite3_reset(st);
	return 0;
}

/* The query's tokens (ours: stop words out), each quoted, joined by OR. */
static char *
fts5_match(const char *q, size_t len)
{
	char tok[RAG_TOKEN_MAX], *out = malloc(len * 3 + 16);
	size_t pos = 0, n, used = 0;
	out[0] = '\0';
	while ((n = rag_token_next(q, len, &pos, tok)) > 0)
		used += (size_t)sprintf(out + used, "%s\"%.*s\"", used ? " OR " : "", (int)n, tok);
	return out;
}

static void
run_fts5(const char *dir, const char *qpath, size_t k, size_t maxctx, int repeat,
    const char *top1)
{
	struct qset qs;
	sqlite3 *db;
	sqlite3_stmt *ins, *sel;
	struct files list;
	read_queries(qpath, &qs);
	char **match = calloc(qs.n, sizeof *match);
	for (size_t i = 0; i < qs.n; i++)
		match[i] = fts5_match(qs.q[i], qs.len[i]);
	struct rag_span *spans = calloc(k, sizeof *spans);
	char **text = calloc(k, sizeof *text);
	size_t *cap = calloc(k, sizeof *cap);
	char *ctx = malloc(maxctx + 1);
	double *pass_s = calloc((size_t)repeat, sizeof *pass_s);

	if (sqlite3_open(":memory:", &db) != SQLITE_OK)
		die("%s", "sqlite: cannot open :memory:");
	long rss0 = status_kib("VmRSS");
	sqlite3_int64 mem0 = sqlite3_memory_used();
	double t0 = now();
	file_list(dir, &list);
	sql(db, "CREATE VIRTUAL TABLE p USING fts5(body)");
	sql(db, "BEGIN");
	if (sqlite3_prepare_v2(db, "INSERT INTO p(body) VALUES (?1)", -1, &ins, NULL) != SQLITE_OK)
		die("sqlite: %s", sqlite3_errmsg(db));
	size_t passages = each_passage(dir, list.v, list.n, insert_one, ins);
	sqlite3_finalize(ins);
	sql(db, "COMMIT");
	double build = now() - t0;
	long rss1 = status_kib("VmRSS");
	size_t bytes = (size_t)(sqlite3_memory_used() - mem0);

	if (sqlite3_prepare_v2(db, "SELECT rowid, body FROM p WHERE p MATCH ?1 "
	    "ORDER BY rank LIMIT ?2", -1, &sel, NULL) != SQLITE_OK)
		die("sqlite: %s", sqlite3_errmsg(db));
	FILE *t1 = fopen(top1, "w");
	size_t total = 0;
	for (int r = 0; r < repeat; r++) {
		total = 0;
		double s = now();
		for (size_t i = 0; i < qs.n; i++) {
			size_t n = 0, len;
			long best = -1;
			sqlite3_bind_text(sel, 1, match[i], -1, SQLITE_STATIC);
			sqlite3_bind_int(sel, 2, (int)k);
			while (n < k && sqlite3_step(sel) == SQLITE_ROW) {
				if (n == 0)
					best = (long)sqlite3_column_int64(sel, 0) - 1;
				const unsigned char *body = sqlite3_column_text(sel, 1);
				size_t blen = (size_t)sqlite3_column_bytes(sel, 1);
				/* the row's text lives until the next step: keep a copy */
				if (cap[n] < blen + 1) {
					cap[n] = blen + 1;
					text[n] = realloc(text[n], cap[n]);
				}
				memcpy(text[n], body, blen);
				spans[n].text = text[n];
				spans[n].len = blen;
				n++;
			}
			sqlite3_reset(sel);
			total += rag_context(ctx, maxctx, spans, n, &len);
			if (r == 0 && t1 != NULL)
				fprintf(t1, "%ld\n", best);
		}
		pass_s[r] = now() - s;
	}
	if (t1 != NULL)
		fclose(t1);
	report("fts5", build, rss1 - rss0, bytes, passages, qs.n, pass_s, repeat, total);
	sqlite3_finalize(sel);
	sqlite3_close(db);
	rag_corpus_list_free(list.v, list.n);
	for (size_t i = 0; i < qs.n; i++)
		free(match[i]);
	for (size_t i = 0; i < k; i++)
		free(text[i]);
	free(match);
	free(text);
	free(cap);
	free(spans);
	free(ctx);
	free(pass_s);
	free_queries(&qs);
}

int
main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "gen") == 0) {
		vocab_init();
		gen(argv[2], strtoul(argv[3], NULL, 10), strtoull(argv[4], NULL, 10));
		return 0;
	}
	if (argc == 4 && strcmp(argv[1], "queries") == 0) {
		vocab_init();
		queries(strtoul(argv[2], NULL, 10), strtoull(argv[3], NULL, 10));
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "split") == 0) {
		struct files list;
		size_t bytes = 0;
		double t0 = now();
		file_list(argv[2], &list);
		size_t n = each_passage(argv[2], list.v, list.n, count_only, &bytes);
		printf("split_ms %.1f\npassages %zu\ndocuments %zu\npassage_bytes %zu\n",
		    (now() - t0) * 1e3, n, list.n, bytes);
		rag_corpus_list_free(list.v, list.n);
		return 0;
	}
	if (argc == 8 && (strcmp(argv[1], "ours") == 0 || strcmp(argv[1], "fts5") == 0)) {
		size_t k = strtoul(argv[4], NULL, 10), maxctx = strtoul(argv[5], NULL, 10);
		int repeat = atoi(argv[6]);
		if (k == 0 || maxctx < 16 || repeat < 1)
			die("%s", "bad K, MAX-CONTEXT or REPEAT");
		if (argv[1][0] == 'o')
			run_ours(argv[2], argv[3], k, maxctx, repeat, argv[7]);
		else
			run_fts5(argv[2], argv[3], k, maxctx, repeat, argv[7]);
		return 0;
	}
	fprintf(stderr, "usage: rag-bench gen DIR DOCS SEED | queries N SEED | split DIR |\n"
	    "       rag-bench ours|fts5 DIR QUERIES K MAX-CONTEXT REPEAT TOP1-FILE\n");
	return 2;
}
