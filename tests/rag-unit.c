/*
 * rag-unit.c -- unit tests of the rag stage's index (cmocka): tokens,
 * passages, BM25 scores against hand-computed values, top-k order and ties,
 * the context bound, and reading a corpus directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "bm25.h"
#include "corpus.h"
#include "passage.h"
#include "token.h"

/* ---- tokens ------------------------------------------------------------- */

/* All tokens of s, each followed by '|'. */
static const char *
tokens(const char *s, size_t len)
{
	static char out[4096];
	char tok[RAG_TOKEN_MAX];
	size_t pos = 0, n, used = 0;
	while ((n = rag_token_next(s, len, &pos, tok)) > 0) {
		assert_true(used + n + 1 < sizeof out);
		memcpy(out + used, tok, n);
		used += n;
		out[used++] = '|';
	}
	out[used] = '\0';
	return out;
}

#define TOKENS(s) tokens((s), sizeof(s) - 1)

static void
test_tokens(void **state)
{
	(void)state;
	assert_string_equal(TOKENS("Hello, WORLD!  porch-check x86_64"),
	    "hello|world|porch|check|x86|64|");
	/* UTF-8 bytes stay in their word, as they are (not case-folded) */
	assert_string_equal(TOKENS("Café NAÏVE über"), "café|naÏve|über|");
	/* stop words go, wherever they are and however they are written */
	assert_string_equal(TOKENS("What is THE size of a corpus?"), "size|corpus|");
	assert_string_equal(TOKENS("the of and"), "");
	assert_string_equal(TOKENS(""), "");
	assert_string_equal(TOKENS("  ,.;  "), "");
	/* "don't" is two tokens; a NUL byte separates */
	assert_string_equal(TOKENS("don't\0stop"), "don|t|stop|");
	/* a 64-byte token is kept, a 65-byte one is not */
	char s[200];
	memset(s, 'x', 64);
	strcpy(s + 64, " ok ");
	memset(s + 68, 'y', 65);
	strcpy(s + 133, " end");
	const char *got = tokens(s, strlen(s));
	assert_int_equal(strlen(got), 64 + 1 + 3 + 4);
	assert_string_equal(got + 65, "ok|end|");
	assert_true(rag_token_is_stop("the", 3));
	assert_true(rag_token_is_stop("a", 1));
	assert_true(rag_token_is_stop("which", 5));
	assert_false(rag_token_is_stop("thex", 4));
	assert_false(rag_token_is_stop("porch", 5));
	assert_true(rag_token_any("x", 1));
	assert_false(rag_token_any("-- the --", 9));
}

/* ---- passages ----------------------------------------------------------- */

struct pieces {
	char text[8192];
	size_t used, n;
	size_t longest;
};

/* Collects passages as "[TEXT]" one after the other. */
static int
collect(void *ctx, const char *text, size_t len)
{
	struct pieces *p = ctx;
	assert_true(p->used + len + 3 < sizeof p->text);
	assert_true(len > 0);
	assert_null(memchr(text, '\0', len));
	p->text[p->used++] = '[';
	memcpy(p->text + p->used, text, len);
	p->used += len;
	p->text[p->used++] = ']';
	p->text[p->used] = '\0';
	p->n++;
	if (len > p->longest)
		p->longest = len;
	return 0;
}

static const char *
split(const char *doc, size_t len, size_t max)
{
	static struct pieces p;
	memset(&p, 0, sizeof p);
	assert_int_equal(rag_split(doc, len, max, collect, &p), 0);
	/* only a character longer than max can make a longer passage */
	if (max >= 4)
		assert_true(p.longest <= max);
	return p.text;
}

#define SPLIT(s, max) split((s), sizeof(s) - 1, (max))

static void
test_split_paragraphs(void **state)
{
	(void)state;
	/* blank lines (even with spaces or CR) end paragraphs; lines lose
	 * trailing white space and keep their indentation */
	assert_string_equal(SPLIT("one\ntwo  \r\n \t\r\n\n\nthree\r\n    code\n", 1024),
	    "[one\ntwo][three\n    code]");
	/* headings stay with the paragraph after them */
	assert_string_equal(SPLIT("# Title\n\n## Part\n\nbody text\n\nnext\n", 1024),
	    "[# Title\n## Part\nbody text][next]");
	/* a heading at the end stands alone; NUL becomes a space */
	assert_string_equal(SPLIT("a\0b\n\n# last", 1024), "[a b][# last]");
	assert_string_equal(SPLIT("", 1024), "");
	assert_string_equal(SPLIT(" \n\t\n\r\n", 1024), "");
}

static void
test_split_long(void **state)
{
	(void)state;
	/* at the last sentence end keeping half of max (20): "One two. " */
	assert_string_equal(SPLIT("Aaaa bbbb. Cccc dddd eeee. Ffff.", 20),
	    "[Aaaa bbbb.][Cccc dddd eeee.][Ffff.]");
	/* a sentence end before max / 2 is not used: the last space is */
	assert_string_equal(SPLIT("Aa. bbbb cccc dddd eeee ffff", 20),
	    "[Aa. bbbb cccc dddd][eeee ffff]");
	/* no space: cut at max, backed off to a UTF-8 boundary (é is 2 bytes) */
	assert_string_equal(SPLIT("abcdefghi\xc3\xa9xyz", 10),
	    "[abcdefghi][\xc3\xa9xyz]");
	assert_string_equal(SPLIT("abcdefghij", 4), "[abcd][efgh][ij]");
	/* a character longer than max is taken whole, never split */
	assert_string_equal(SPLIT("\xe2\x82\xac\xe2\x82\xac", 2), "[\xe2\x82\xac][\xe2\x82\xac]");
	/* the line break is a space too */
	assert_string_equal(SPLIT("aaaa bbbb\ncccc dddd", 12), "[aaaa bbbb][cccc dddd]");
}

static void
test_utf8_cut(void **state)
{
	(void)state;
	const char *s = "ab\xe2\x82\xac" "cd"; /* "ab€cd": € is bytes 2-4 */
	assert_int_equal(rag_utf8_cut(s, 7, 10), 7);
	assert_int_equal(rag_utf8_cut(s, 7, 5), 5);
	assert_int_equal(rag_utf8_cut(s, 7, 4), 2);
	assert_int_equal(rag_utf8_cut(s, 7, 3), 2);
	assert_int_equal(rag_utf8_cut(s, 7, 2), 2);
	assert_int_equal(rag_utf8_cut(s, 7, 0), 0);
	/* not UTF-8 (a run of continuation bytes): cut at max */
	assert_int_equal(rag_utf8_cut("\x80\x80\x80\x80\x80\x80", 6, 5), 5);
}

/* ---- the context -------------------------------------------------------- */

static void
test_context(void **state)
{
	(void)state;
	char out[64];
	size_t len;
	struct rag_span p[] = { { "aaaa", 4 }, { "bbbbbb", 6 }, { "cc", 2 } };

	/* all three fit exactly: 4 + 2 + 6 + 2 + 2 */
	assert_int_equal(rag_context(out, 16, p, 3, &len), 3);
	assert_string_equal(out, "aaaa\n\nbbbbbb\n\ncc");
	assert_int_equal(len, 16);
	/* one byte less: the third no longer fits, and the context ends there */
	assert_int_equal(rag_context(out, 15, p, 3, &len), 2);
	assert_string_equal(out, "aaaa\n\nbbbbbb");
	/* the first that does not fit ends it, even if a later one would fit */
	assert_int_equal(rag_context(out, 11, p, 3, &len), 1);
	assert_string_equal(out, "aaaa");
	/* the best passage alone is too long: cut at a character boundary */
	struct rag_span u[] = { { "h\xc3\xa9llo w\xc3\xb6rld", 13 }, { "x", 1 } };
	assert_int_equal(rag_context(out, 9, u, 2, &len), 1);
	assert_string_equal(out, "h\xc3\xa9llo w"); /* ö would end at byte 10 */
	assert_int_equal(len, 8);
	assert_int_equal(rag_context(out, 10, u, 2, &len), 1);
	assert_string_equal(out, "h\xc3\xa9llo w\xc3\xb6");
	/* nothing found: an empty context */
	assert_int_equal(rag_context(out, 10, p, 0, &len), 0);
	assert_string_equal(out, "");
	assert_int_equal(len, 0);
}

/* ---- BM25 --------------------------------------------------------------- */

static struct bm25 *
index_of(const char *const *texts, size_t n, double k1, double b)
{
	struct bm25 *ix = bm25_new(k1, b);
	assert_non_null(ix);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(bm25_add(ix, (uint32_t)i, texts[i], strlen(texts[i])), 0);
	assert_int_equal(bm25_finish(ix), 0);
	return ix;
}

static size_t
search(struct bm25 *ix, const char *q, size_t k, struct bm25_hit *hits)
{
	return bm25_search(ix, q, strlen(q), k, hits);
}

static void
assert_score(float got, double want)
{
	if (fabs((double)got - want) > 1e-5 * (1 + fabs(want)))
		fail_msg("score %.7f, want %.7f", (double)got, want);
}

/*
 * Three passages, N = 3, lengths 3, 2 and 4 tokens, avgdl = 3:
 *   p0 "apple banana apple", p1 "banana cherry", p2 "cherry date elder fig"
 */
static const char *const fruit[] = {
	"Apple banana, apple.", "banana cherry", "cherry date elder fig"
};

static void
test_bm25_scores(void **state)
{
	(void)state;
	struct bm25 *ix = index_of(fruit, 3, 1.2, 0.75);
	struct bm25_hit h[8];
	char buf[32];

	assert_int_equal(bm25_passages(ix), 3);
	assert_int_equal(bm25_terms(ix), 6);
	assert_int_equal(bm25_postings(ix), 8);

	/*
	 * "apple": df 1, idf = ln(1 + 2.5 / 1.5) = 0.9808293;
	 * p0: tf 2, dl = avgdl: 0.9808293 * 2 * 2.2 / (2 + 1.2) = 1.3486403
	 */
	assert_int_equal(search(ix, "apple", 3, h), 1);
	assert_int_equal(h[0].passage, 0);
	assert_score(h[0].score, 1.3486403);
	snprintf(buf, sizeof buf, "%.4f", (double)h[0].score);
	assert_string_equal(buf, "1.3486");

	/*
	 * "banana cherry": both df 2, idf = ln(1 + 1.5 / 2.5) = 0.4700036;
	 * p1 (dl 2): norm 1.2 * (0.25 + 0.5) = 0.9, each 0.4700036 * 2.2 / 1.9
	 *   = 0.5442147, total 1.0884294;
	 * p0 (dl 3): banana once, norm 1.2: 0.4700036 * 2.2 / 2.2 = 0.4700036;
	 * p2 (dl 4): cherry once, norm 1.5: 0.4700036 * 2.2 / 2.5 = 0.4136032
	 */
	assert_int_equal(search(ix, "What is a banana or a CHERRY?", 3, h), 3);
	assert_int_equal(h[0].passage, 1);
	assert_score(h[0].score, 1.0884294);
	assert_int_equal(h[1].passage, 0);
	assert_score(h[1].score, 0.4700036);
	assert_int_equal(h[2].passage, 2);
	assert_score(h[2].score, 0.4136032);

	/* k smaller than the matches keeps the best */
	assert_int_equal(search(ix, "banana cherry", 1, h), 1);
	assert_int_equal(h[0].passage, 1);
	/* a repeated query token counts once */
	assert_int_equal(search(ix, "apple apple apple", 3, h), 1);
	assert_score(h[0].score, 1.3486403);
	/* nothing known, only stop words, or nothing at all: no hits */
	assert_int_equal(search(ix, "zebra", 3, h), 0);
	assert_int_equal(search(ix, "the of and", 3, h), 0);
	assert_int_equal(search(ix, "", 3, h), 0);
	bm25_free(ix);

	/* b = 0: no length normalization; k1 = 0: tf does not count */
	ix = index_of(fruit, 3, 1.2, 0);
	assert_int_equal(search(ix, "cherry", 3, h), 2);
	assert_score(h[0].score, 0.4700036);
	assert_score(h[1].score, 0.4700036);
	assert_int_equal(h[0].passage, 1); /* a tie: the earlier passage first */
	assert_int_equal(h[1].passage, 2);
	bm25_free(ix);
	ix = index_of(fruit, 3, 0, 0.75);
	assert_int_equal(search(ix, "apple", 3, h), 1);
	assert_score(h[0].score, 0.9808293);
	bm25_free(ix);
}

static void
test_bm25_passages(void **state)
{
	(void)state;
	struct bm25 *ix = bm25_new(1.2, 0.75);
	size_t len;
	uint32_t doc;
	assert_int_equal(bm25_add(ix, 7, "first one", 9), 0);
	/* a passage without a token is not added */
	assert_int_equal(bm25_add(ix, 7, "the -- of", 9), 1);
	assert_int_equal(bm25_add(ix, 9, "second", 6), 0);
	assert_int_equal(bm25_finish(ix), 0);
	assert_int_equal(bm25_passages(ix), 2);
	assert_string_equal(bm25_passage(ix, 1, &len, &doc), "second");
	assert_int_equal(len, 6);
	assert_int_equal(doc, 9);
	assert_string_equal(bm25_passage(ix, 0, NULL, &doc), "first one");
	assert_int_equal(doc, 7);
	/* no more adding once finished */
	assert_int_equal(bm25_add(ix, 9, "third", 5), -1);
	assert_true(bm25_bytes(ix) > 0);
	bm25_free(ix);

	/* an empty index finds nothing */
	ix = bm25_new(1.2, 0.75);
	assert_int_equal(bm25_finish(ix), 0);
	struct bm25_hit h[1];
	assert_int_equal(search(ix, "anything", 1, h), 0);
	bm25_free(ix);
}

/*
 * The dictionary: terms that share their first 8 bytes stay apart, and
 * every term is found again after the table has grown many times.
 */
static void
test_bm25_dictionary(void **state)
{
	(void)state;
	static const char *const near[] = {
		"abcdefgh", "abcdefghij", "abcdefghik", "abcdefg", "abcdefghijklmnopq"
	};
	struct bm25 *ix = index_of(near, 5, 1.2, 0.75);
	struct bm25_hit h[5];
	assert_int_equal(bm25_terms(ix), 5);
	for (uint32_t i = 0; i < 5; i++) {
		assert_int_equal(search(ix, near[i], 5, h), 1);
		assert_int_equal(h[0].passage, i);
	}
	assert_int_equal(search(ix, "abcdefghi", 5, h), 0);
	bm25_free(ix);

	/* found by trying: the same length, first 8 bytes, tag (24 bits of the
	 * hash) and first slot, so only comparing all their bytes tells them
	 * apart (while the table has 1024 slots) */
	static const char *const twins[] = { "collideackfaa", "collideaso7ca" };
	ix = index_of(twins, 2, 1.2, 0.75);
	assert_int_equal(bm25_terms(ix), 2);
	for (uint32_t i = 0; i < 2; i++) {
		assert_int_equal(search(ix, twins[i], 2, h), 1);
		assert_int_equal(h[0].passage, i);
	}
	bm25_free(ix);

	/* 20000 terms, one passage each: the table grows from 1024 slots */
	enum { N = 20000 };
	char t[32];
	ix = bm25_new(1.2, 0.75);
	for (uint32_t i = 0; i < N; i++) {
		int n = snprintf(t, sizeof t, "term%uend", (unsigned)i * 7919u);
		assert_int_equal(bm25_add(ix, i, t, (size_t)n), 0);
	}
	assert_int_equal(bm25_finish(ix), 0);
	assert_int_equal(bm25_terms(ix), N);
	for (uint32_t i = 0; i < N; i++) {
		int n = snprintf(t, sizeof t, "TERM%uEND", (unsigned)i * 7919u);
		assert_int_equal(bm25_search(ix, t, (size_t)n, 1, h), 1);
		assert_int_equal(h[0].passage, i);
	}
	bm25_free(ix);
}

/* splitmix64, for repeatable random corpora */
static uint64_t
rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/*
 * The index against a direct computation of the formula, on a random
 * corpus: the same scores, best first, ties by passage, and nothing left
 * out that scores better than the last hit.
 */
static void
test_bm25_against_direct(void **state)
{
	(void)state;
	enum { NP = 300, NW = 40, K = 10 };
	static char text[NP][400];
	static int tf[NP][NW];
	int dl[NP], df[NW] = { 0 };
	char words[NW][8];
	uint64_t seed = 42;
	double k1 = 1.2, b = 0.75, total = 0;

	for (int w = 0; w < NW; w++)
		snprintf(words[w], sizeof words[w], "w%02d", w);
	struct bm25 *ix = bm25_new(k1, b);
	for (int p = 0; p < NP; p++) {
		int n = 1 + (int)(rnd(&seed) % 30);
		size_t used = 0;
		dl[p] = n;
		total += n;
		for (int i = 0; i < n; i++) {
			/* skewed: low-numbered words are common */
			int w = (int)(rnd(&seed) % NW);
			w = (int)(rnd(&seed) % (unsigned)(w + 1));
			if (tf[p][w]++ == 0)
				df[w]++;
			used += (size_t)snprintf(text[p] + used, sizeof text[p] - used, "%s%s",
			    i ? " " : "", words[w]);
		}
		assert_int_equal(bm25_add(ix, 0, text[p], used), 0);
	}
	assert_int_equal(bm25_finish(ix), 0);
	double avgdl = total / NP;

	for (int q = 0; q < 200; q++) {
		int qw[4], nq = 1 + (int)(rnd(&seed) % 4);
		char query[64];
		size_t used = 0;
		for (int i = 0; i < nq; i++) {
			qw[i] = (int)(rnd(&seed) % NW);
			used += (size_t)snprintf(query + used, sizeof query - used, "%s ", words[qw[i]]);
		}
		double want[NP];
		for (int p = 0; p < NP; p++) {
			want[p] = 0;
			for (int i = 0; i < nq; i++) {
				int w = qw[i], dup = 0;
				for (int j = 0; j < i; j++)
					dup |= qw[j] == w;
				if (dup || tf[p][w] == 0)
					continue;
				double idf = log(1 + (NP - df[w] + 0.5) / (df[w] + 0.5));
				want[p] += idf * tf[p][w] * (k1 + 1) /
				    (tf[p][w] + k1 * (1 - b + b * dl[p] / avgdl));
			}
		}
		struct bm25_hit h[K];
		size_t n = bm25_search(ix, query, used, K, h);
		size_t matching = 0;
		for (int p = 0; p < NP; p++)
			matching += want[p] > 0;
		assert_int_equal(n, matching < K ? matching : K);
		for (size_t i = 0; i < n; i++) {
			assert_score(h[i].score, want[h[i].passage]);
			if (i > 0) {
				assert_true(h[i - 1].score >= h[i].score);
				if (h[i - 1].score == h[i].score)
					assert_true(h[i - 1].passage < h[i].passage);
			}
		}
		for (int p = 0; n == K && p < NP; p++) {
			int in = 0;
			for (size_t i = 0; i < n; i++)
				in |= h[i].passage == (uint32_t)p;
			if (!in && want[p] > (double)h[K - 1].score + 1e-4)
				fail_msg("query '%s': passage %d (%f) left out, last hit %f",
				    query, p, want[p], (double)h[K - 1].score);
		}
	}
	bm25_free(ix);
}

/* ---- a corpus directory ------------------------------------------------- */

static char dir[256];

static void
put(const char *rel, const char *text)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, rel);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void
sub(const char *rel)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, rel);
	assert_int_equal(mkdir(path, 0755), 0);
}

static int
corpus_setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "%s/rag-unit.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
corpus_teardown(void **state)
{
	(void)state;
	char cmd[512];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
test_corpus(void **state)
{
	(void)state;
	char err[1024], path[512], other[1024];

	/* an empty directory, then one with only empty or foreign files */
	assert_int_equal(rag_corpus_check(dir, err, sizeof err), -1);
	snprintf(other, sizeof other, "corpus '%s' has no .txt or .md files with text; "
	    "add some, or point corpus at the directory that holds them", dir);
	assert_string_equal(err, other);
	put("empty.txt", " \n\n -- \n");
	put("notes.rst", "restructured text is not read\n");
	put(".hidden.md", "hidden files are not read\n");
	assert_int_equal(rag_corpus_check(dir, err, sizeof err), -1);
	assert_string_equal(err, other);
	assert_null(rag_corpus_load(dir, 1024, 1.2, 0.75, err, sizeof err));
	assert_string_equal(err, other);

	/* documents at any depth, in byte order of their paths */
	put("b.md", "# Bees\n\nBees make honey.\n");
	sub("a");
	put("a/c.TXT", "Cats sleep.\n\nCats purr.\n");
	sub(".git");
	put(".git/x.md", "not a document\n");
	snprintf(path, sizeof path, "%s/link.md", dir);
	assert_int_equal(symlink("b.md", path), 0);
	snprintf(path, sizeof path, "%s/dirlink", dir);
	assert_int_equal(symlink("a", path), 0);
	assert_int_equal(rag_corpus_check(dir, err, sizeof err), 0);

	struct rag_corpus *c = rag_corpus_load(dir, 1024, 1.2, 0.75, err, sizeof err);
	assert_non_null(c);
	assert_int_equal(c->n_files, 4);
	assert_string_equal(c->files[0], "a/c.TXT");
	assert_string_equal(c->files[1], "b.md");
	assert_string_equal(c->files[2], "empty.txt");
	assert_string_equal(c->files[3], "link.md");
	assert_int_equal(c->n_documents, 3);
	assert_int_equal(bm25_passages(c->index), 4);
	struct bm25_hit h[4];
	uint32_t doc;
	assert_int_equal(bm25_search(c->index, "purr", 4, 4, h), 1);
	assert_string_equal(bm25_passage(c->index, h[0].passage, NULL, &doc), "Cats purr.");
	assert_string_equal(c->files[doc], "a/c.TXT");
	/* a tie between b.md and its link: the earlier path first */
	assert_int_equal(bm25_search(c->index, "honey", 5, 4, h), 2);
	assert_string_equal(bm25_passage(c->index, h[0].passage, NULL, &doc),
	    "# Bees\nBees make honey.");
	assert_string_equal(c->files[doc], "b.md");
	(void)bm25_passage(c->index, h[1].passage, NULL, &doc);
	assert_string_equal(c->files[doc], "link.md");
	rag_corpus_free(c);

	/* not there, not a directory */
	snprintf(path, sizeof path, "%s/nope", dir);
	assert_int_equal(rag_corpus_check(path, err, sizeof err), -1);
	snprintf(other, sizeof other, "corpus '%s': no such directory", path);
	assert_string_equal(err, other);
	snprintf(path, sizeof path, "%s/b.md", dir);
	assert_int_equal(rag_corpus_check(path, err, sizeof err), -1);
	snprintf(other, sizeof other, "corpus '%s' is not a directory; give the "
	    "directory that holds the .txt and .md files", path);
	assert_string_equal(err, other);

	/* unreadable files and directories (root reads them anyway) */
	if (geteuid() != 0) {
		snprintf(path, sizeof path, "%s/b.md", dir);
		assert_int_equal(chmod(path, 0), 0);
		assert_int_equal(rag_corpus_check(dir, err, sizeof err), -1);
		snprintf(other, sizeof other, "corpus '%s': cannot read 'b.md': "
		    "Permission denied", dir);
		assert_string_equal(err, other);
		assert_int_equal(chmod(path, 0644), 0);
		snprintf(path, sizeof path, "%s/a", dir);
		assert_int_equal(chmod(path, 0), 0);
		assert_int_equal(rag_corpus_check(dir, err, sizeof err), -1);
		snprintf(other, sizeof other, "corpus '%s': cannot read the directory 'a': "
		    "Permission denied", dir);
		assert_string_equal(err, other);
		assert_int_equal(chmod(path, 0755), 0);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tokens),
		cmocka_unit_test(test_split_paragraphs),
		cmocka_unit_test(test_split_long),
		cmocka_unit_test(test_utf8_cut),
		cmocka_unit_test(test_context),
		cmocka_unit_test(test_bm25_scores),
		cmocka_unit_test(test_bm25_passages),
		cmocka_unit_test(test_bm25_dictionary),
		cmocka_unit_test(test_bm25_against_direct),
		cmocka_unit_test_setup_teardown(test_corpus, corpus_setup, corpus_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
