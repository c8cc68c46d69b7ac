/*
 * heuristic.c -- the classify stage's labels without a model: keywords,
 * code markers, question forms and length, read in one pass over the
 * prefix.
 *
 * The text is cut into words (runs of ASCII letters and digits, lower-
 * cased; other bytes separate them), and each word, and the phrases of two
 * and three words it ends, are looked up in one table of keywords (hashed
 * once into a struct cls_index; a phrase is looked up only when its first
 * word starts one).  A keyword counts for a category (summarize: summary)
 * or for complexity (design: complex; haiku: simple; explain: one of the
 * asks of the request).  What the request asks usually comes first, and
 * what it asks about after a colon or a line break, or in quotes: a
 * keyword before the first colon or line break (in the first 160 bytes)
 * counts twice, one in a quoted text not at all.  Bytes count too: code
 * fences, lines that end in ; { or }, operators such as == and ->, and a
 * high share of brackets count for code; arithmetic (2 + 3, x^2, 15%) for
 * reasoning; "or" before a quoted text (choices offered for it) for
 * classification.  The category with the highest score wins (ties:
 * extraction, summary, classification, creative, code, reasoning); below
 * 2 points it is chat.  Complexity adds points for length (25, 60 and 150
 * words), code to work on, three or more list items, two or more
 * questions, three or more commas in the first line, three or more
 * distinct asks and complex keywords, and takes them off for simple ones:
 * 0 or less is simple, 1 or 2 moderate, 3 or more complex.
 *
 * The table was fitted to tests/classify/prompts.tsv and heldout.tsv;
 * tests/classify/heldout2.tsv, written after, measures it (bench/RESULTS.md).
 */
#include <stdint.h>
#include <string.h>

#include "labels.h"

const char *const cls_category_names[CLS_N_CATEGORIES] = {
	"code", "reasoning", "creative", "extraction", "summary", "classification", "chat"
};
const char *const cls_complexity_names[CLS_N_COMPLEXITIES] = {
	"simple", "moderate", "complex"
};

static int
lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static int
name_of(const char *const *names, int n, const char *s, size_t len)
{
	for (int i = 0; i < n; i++) {
		size_t k = strlen(names[i]);
		if (k != len)
			continue;
		size_t j = 0;
		while (j < k && lower((unsigned char)s[j]) == names[i][j])
			j++;
		if (j == k)
			return i;
	}
	return -1;
}

int
cls_category_of(const char *s, size_t n)
{
	return name_of(cls_category_names, CLS_N_CATEGORIES, s, n);
}

int
cls_complexity_of(const char *s, size_t n)
{
	return name_of(cls_complexity_names, CLS_N_COMPLEXITIES, s, n);
}

size_t
cls_prefix(const char *text, size_t len, size_t chars)
{
	const unsigned char *p = (const unsigned char *)text;
	size_t i = 0;
	for (size_t k = 0; i < len && k < chars; k++) {
		unsigned c = p[i];
		size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 :
		    (c & 0xF8) == 0xF0 ? 4 : 1;
		if (n > len - i)
			n = 1;
		for (size_t j = 1; j < n; j++) {
			if ((p[i + j] & 0xC0) != 0x80) {
				n = 1;
				break;
			}
		}
		i += n;
	}
	return i;
}

/* ---- the keyword table -------------------------------------------------- */

/* what a keyword counts for: a category (enum cls_category), or these */
enum {
	K_COMPLEX = CLS_N_CATEGORIES, /* a point towards complex */
	K_SIMPLE,                     /* a point towards simple */
	K_ASK,                        /* one of the things the request asks for */
};

/*
 * Words, or phrases of two or three words, as the word splitting leaves
 * them ("what's" is "what s", "tl;dr" is "tl dr"); a single word ending in
 * '*' matches every word it starts.  w: the points (for K_ASK, which ask:
 * distinct asks are counted, 0 to 63).
 */
struct kw {
	const char *words;
	unsigned char what, w;
};

static const struct kw kws[] = {
	/* code */
	{ "code", CLS_CODE, 2 }, { "function", CLS_CODE, 2 }, { "functions", CLS_CODE, 2 },
	{ "python", CLS_CODE, 3 }, { "javascript", CLS_CODE, 3 }, { "typescript", CLS_CODE, 3 },
	{ "java", CLS_CODE, 2 }, { "rust", CLS_CODE, 2 }, { "golang", CLS_CODE, 3 },
	{ "sql", CLS_CODE, 3 }, { "query", CLS_CODE, 1 }, { "regex", CLS_CODE, 3 },
	{ "regexp", CLS_CODE, 3 }, { "bash", CLS_CODE, 3 }, { "shell", CLS_CODE, 1 },
	{ "script", CLS_CODE, 1 }, { "compiler", CLS_CODE, 3 }, { "compile", CLS_CODE, 2 },
	{ "bug", CLS_CODE, 2 }, { "debug", CLS_CODE, 2 }, { "refactor", CLS_CODE, 3 },
	{ "implement", CLS_CODE, 2 }, { "api", CLS_CODE, 1 }, { "git", CLS_CODE, 3 },
	{ "exception", CLS_CODE, 2 }, { "traceback", CLS_CODE, 3 }, { "stack trace", CLS_CODE, 3 },
	{ "unit tests", CLS_CODE, 2 }, { "segfault", CLS_CODE, 3 }, { "syntax", CLS_CODE, 2 },
	{ "variable", CLS_CODE, 2 }, { "array", CLS_CODE, 2 }, { "loop", CLS_CODE, 2 },
	{ "django", CLS_CODE, 3 }, { "react", CLS_CODE, 2 }, { "kubernetes", CLS_CODE, 1 },
	{ "dockerfile", CLS_CODE, 3 }, { "html", CLS_CODE, 2 }, { "css", CLS_CODE, 2 },
	{ "error", CLS_CODE, 1 }, { "program", CLS_CODE, 2 }, { "class", CLS_CODE, 1 },
	{ "method", CLS_CODE, 1 }, { "library", CLS_CODE, 1 }, { "endpoint", CLS_CODE, 2 },
	{ "endpoints", CLS_CODE, 2 }, { "def", CLS_CODE, 2 }, { "return", CLS_CODE, 1 },
	{ "int", CLS_CODE, 1 }, { "void", CLS_CODE, 2 }, { "func", CLS_CODE, 2 },
	{ "const", CLS_CODE, 1 }, { "printf", CLS_CODE, 3 }, { "null", CLS_CODE, 1 },

	/* reasoning */
	{ "prove", CLS_REASONING, 3 }, { "proof", CLS_REASONING, 3 }, { "solve", CLS_REASONING, 3 },
	{ "calculate", CLS_REASONING, 3 }, { "compute", CLS_REASONING, 2 },
	{ "equation", CLS_REASONING, 3 }, { "equations", CLS_REASONING, 3 },
	{ "probability", CLS_REASONING, 3 }, { "prime", CLS_REASONING, 2 },
	{ "primes", CLS_REASONING, 2 }, { "reasoning", CLS_REASONING, 2 },
	{ "logic", CLS_REASONING, 2 }, { "logically", CLS_REASONING, 2 },
	{ "deduce", CLS_REASONING, 3 }, { "puzzle", CLS_REASONING, 3 }, { "riddle", CLS_REASONING, 2 },
	{ "trade offs", CLS_REASONING, 2 }, { "tradeoffs", CLS_REASONING, 2 },
	{ "estimate", CLS_REASONING, 2 }, { "derive", CLS_REASONING, 2 },
	{ "how much", CLS_REASONING, 2 }, { "how many", CLS_REASONING, 2 },
	{ "step by step", CLS_REASONING, 2 },
	{ "which is", CLS_REASONING, 1 }, { "larger", CLS_REASONING, 1 },
	{ "average", CLS_REASONING, 1 }, { "percent", CLS_REASONING, 1 },
	{ "compare", CLS_REASONING, 1 }, { "therefore", CLS_REASONING, 1 },
	{ "recommend", CLS_REASONING, 1 },
	{ "speed", CLS_REASONING, 1 }, { "total", CLS_REASONING, 1 },
	{ "definitely", CLS_REASONING, 1 }, { "chance", CLS_REASONING, 2 },
	{ "odds", CLS_REASONING, 2 }, { "times", CLS_REASONING, 1 }, { "plus", CLS_REASONING, 1 },
	{ "minus", CLS_REASONING, 2 }, { "divided by", CLS_REASONING, 2 },
	{ "multiply", CLS_REASONING, 2 }, { "ratio", CLS_REASONING, 2 },
	{ "math", CLS_REASONING, 2 }, { "arithmetic", CLS_REASONING, 2 },
	{ "cheaper", CLS_REASONING, 1 }, { "older than", CLS_REASONING, 1 },
	{ "younger", CLS_REASONING, 1 }, { "how long", CLS_REASONING, 1 },
	{ "how far", CLS_REASONING, 1 }, { "work out", CLS_REASONING, 2 },
	{ "if i", CLS_REASONING, 1 },

	/* creative */
	{ "poem", CLS_CREATIVE, 3 }, { "poems", CLS_CREATIVE, 3 }, { "poetry", CLS_CREATIVE, 3 },
	{ "haiku", CLS_CREATIVE, 3 }, { "limerick", CLS_CREATIVE, 3 }, { "sonnet", CLS_CREATIVE, 3 },
	{ "story", CLS_CREATIVE, 3 }, { "stories", CLS_CREATIVE, 2 }, { "tale", CLS_CREATIVE, 2 },
	{ "fairy tale", CLS_CREATIVE, 2 }, { "novel", CLS_CREATIVE, 3 }, { "chapter", CLS_CREATIVE, 2 },
	{ "lyrics", CLS_CREATIVE, 3 }, { "song", CLS_CREATIVE, 2 }, { "ballad", CLS_CREATIVE, 3 },
	{ "verse", CLS_CREATIVE, 2 }, { "verses", CLS_CREATIVE, 2 }, { "chorus", CLS_CREATIVE, 2 },
	{ "slogan", CLS_CREATIVE, 3 }, { "tagline", CLS_CREATIVE, 3 }, { "jingle", CLS_CREATIVE, 3 },
	{ "joke", CLS_CREATIVE, 3 }, { "jokes", CLS_CREATIVE, 3 }, { "pun", CLS_CREATIVE, 2 },
	{ "brainstorm", CLS_CREATIVE, 3 }, { "name for", CLS_CREATIVE, 3 },
	{ "names for", CLS_CREATIVE, 3 }, { "come up with", CLS_CREATIVE, 2 },
	{ "imagine", CLS_CREATIVE, 2 }, { "fiction", CLS_CREATIVE, 2 }, { "fantasy", CLS_CREATIVE, 2 },
	{ "character", CLS_CREATIVE, 1 }, { "characters", CLS_CREATIVE, 1 },
	{ "campaign", CLS_CREATIVE, 1 }, { "screenplay", CLS_CREATIVE, 3 },
	{ "creative", CLS_CREATIVE, 2 }, { "compose", CLS_CREATIVE, 2 }, { "catchy", CLS_CREATIVE, 2 },
	{ "rewrite", CLS_CREATIVE, 1 }, { "plot", CLS_CREATIVE, 1 }, { "write a", CLS_CREATIVE, 1 },
	{ "rhyme", CLS_CREATIVE, 3 }, { "title for", CLS_CREATIVE, 3 }, { "toast", CLS_CREATIVE, 3 },
	{ "speech", CLS_CREATIVE, 2 }, { "product description", CLS_CREATIVE, 2 },
	{ "caption", CLS_CREATIVE, 2 }, { "blog post", CLS_CREATIVE, 2 }, { "essay", CLS_CREATIVE, 1 },
	{ "invitation", CLS_CREATIVE, 2 }, { "birthday card", CLS_CREATIVE, 2 },
	{ "suggest a", CLS_CREATIVE, 1 }, { "funny", CLS_CREATIVE, 1 },

	/* extraction */
	{ "extract", CLS_EXTRACTION, 3 }, { "extracts", CLS_EXTRACTION, 3 },
	{ "pull out", CLS_EXTRACTION, 3 }, { "pull the", CLS_EXTRACTION, 2 },
	{ "parse", CLS_EXTRACTION, 2 }, { "list all", CLS_EXTRACTION, 2 },
	{ "find all", CLS_EXTRACTION, 2 }, { "identify the", CLS_EXTRACTION, 2 },
	{ "get the", CLS_EXTRACTION, 1 }, { "mentioned", CLS_EXTRACTION, 2 },
	{ "entities", CLS_EXTRACTION, 3 }, { "json", CLS_EXTRACTION, 2 }, { "csv", CLS_EXTRACTION, 2 },
	{ "table", CLS_EXTRACTION, 1 }, { "columns", CLS_EXTRACTION, 1 }, { "fields", CLS_EXTRACTION, 2 },
	{ "field", CLS_EXTRACTION, 1 }, { "from this", CLS_EXTRACTION, 1 },
	{ "from the following", CLS_EXTRACTION, 1 }, { "email address", CLS_EXTRACTION, 1 },
	{ "phone number", CLS_EXTRACTION, 1 }, { "normalize", CLS_EXTRACTION, 1 },
	{ "pull all", CLS_EXTRACTION, 3 }, { "in this sentence", CLS_EXTRACTION, 2 },
	{ "in this text", CLS_EXTRACTION, 2 }, { "in this email", CLS_EXTRACTION, 2 },
	{ "mentions", CLS_EXTRACTION, 1 }, { "find the", CLS_EXTRACTION, 1 },

	/* summary */
	{ "summar*", CLS_SUMMARY, 4 }, { "tl dr", CLS_SUMMARY, 4 }, { "tldr", CLS_SUMMARY, 4 },
	{ "gist", CLS_SUMMARY, 4 }, { "condense", CLS_SUMMARY, 4 }, { "sum up", CLS_SUMMARY, 4 },
	{ "recap", CLS_SUMMARY, 3 }, { "key points", CLS_SUMMARY, 2 }, { "main points", CLS_SUMMARY, 2 },
	{ "in a nutshell", CLS_SUMMARY, 3 }, { "shorten", CLS_SUMMARY, 2 }, { "overview", CLS_SUMMARY, 1 },
	{ "main arguments", CLS_SUMMARY, 1 }, { "bullet points", CLS_SUMMARY, 1 },
	{ "boil", CLS_SUMMARY, 2 }, { "essentials", CLS_SUMMARY, 2 }, { "essence", CLS_SUMMARY, 2 },
	{ "in one line", CLS_SUMMARY, 2 }, { "this about", CLS_SUMMARY, 2 },
	{ "highlights", CLS_SUMMARY, 2 },

	/* classification */
	{ "classify", CLS_CLASSIFICATION, 4 }, { "classif*", CLS_CLASSIFICATION, 3 },
	{ "categori*", CLS_CLASSIFICATION, 3 }, { "label", CLS_CLASSIFICATION, 3 },
	{ "sentiment", CLS_CLASSIFICATION, 3 }, { "positive or negative", CLS_CLASSIFICATION, 3 },
	{ "spam", CLS_CLASSIFICATION, 2 }, { "tag", CLS_CLASSIFICATION, 2 },
	{ "intent", CLS_CLASSIFICATION, 2 }, { "topic", CLS_CLASSIFICATION, 1 },
	{ "topics", CLS_CLASSIFICATION, 1 }, { "priority", CLS_CLASSIFICATION, 2 },
	{ "toxicity", CLS_CLASSIFICATION, 3 }, { "toxic", CLS_CLASSIFICATION, 2 },
	{ "which language", CLS_CLASSIFICATION, 2 }, { "what language", CLS_CLASSIFICATION, 2 },
	{ "moderator", CLS_CLASSIFICATION, 2 }, { "decide whether", CLS_CLASSIFICATION, 2 },
	{ "one of", CLS_CLASSIFICATION, 1 }, { "options", CLS_CLASSIFICATION, 1 },
	{ "fact or opinion", CLS_CLASSIFICATION, 3 }, { "category", CLS_CLASSIFICATION, 2 },
	{ "taxonomy", CLS_CLASSIFICATION, 3 }, { "genre", CLS_CLASSIFICATION, 2 },
	{ "is this", CLS_CLASSIFICATION, 1 }, { "rate the", CLS_CLASSIFICATION, 1 },
	{ "neutral", CLS_CLASSIFICATION, 2 }, { "assign", CLS_CLASSIFICATION, 2 },
	{ "sort these", CLS_CLASSIFICATION, 2 },
	{ "severity", CLS_CLASSIFICATION, 2 }, { "formal or informal", CLS_CLASSIFICATION, 3 },
	{ "or a statement", CLS_CLASSIFICATION, 2 }, { "which department", CLS_CLASSIFICATION, 2 },
	{ "belongs to", CLS_CLASSIFICATION, 1 }, { "go to", CLS_CLASSIFICATION, 1 },

	/* chat */
	{ "hi", CLS_CHAT, 2 }, { "hello", CLS_CHAT, 2 }, { "hey", CLS_CHAT, 2 },
	{ "thanks", CLS_CHAT, 2 }, { "thank you", CLS_CHAT, 2 }, { "good morning", CLS_CHAT, 2 },
	{ "good evening", CLS_CHAT, 2 }, { "how are you", CLS_CHAT, 2 }, { "what s", CLS_CHAT, 1 },
	{ "who", CLS_CHAT, 1 }, { "where", CLS_CHAT, 1 }, { "what are some", CLS_CHAT, 2 },
	{ "tips", CLS_CHAT, 1 }, { "advice", CLS_CHAT, 1 }, { "difference between", CLS_CHAT, 1 },
	{ "help me", CLS_CHAT, 1 }, { "can you explain", CLS_CHAT, 1 }, { "what should", CLS_CHAT, 1 },
	{ "should i", CLS_CHAT, 1 }, { "why is", CLS_CHAT, 1 }, { "do you", CLS_CHAT, 1 },
	{ "any tips", CLS_CHAT, 1 }, { "how tall", CLS_CHAT, 1 },

	/* complexity */
	{ "design", K_COMPLEX, 1 }, { "architecture", K_COMPLEX, 1 }, { "strategy", K_COMPLEX, 1 },
	{ "prove", K_COMPLEX, 1 }, { "comprehensive", K_COMPLEX, 1 }, { "detailed", K_COMPLEX, 1 },
	{ "in depth", K_COMPLEX, 1 }, { "thorough", K_COMPLEX, 1 }, { "trade offs", K_COMPLEX, 1 },
	{ "migration", K_COMPLEX, 1 }, { "scalable", K_COMPLEX, 1 }, { "thread safe", K_COMPLEX, 1 },
	{ "novel", K_COMPLEX, 1 }, { "chapter", K_COMPLEX, 1 }, { "campaign", K_COMPLEX, 1 },
	{ "for each", K_COMPLEX, 1 }, { "each of", K_COMPLEX, 1 }, { "transcript", K_COMPLEX, 1 },
	{ "contract", K_COMPLEX, 1 }, { "report", K_COMPLEX, 1 }, { "plan", K_COMPLEX, 1 },
	{ "step by step", K_COMPLEX, 1 }, { "executive", K_COMPLEX, 1 },
	/* answers of a few paragraphs: explanations, advice, stories */
	{ "explain", K_COMPLEX, 1 }, { "how does", K_COMPLEX, 1 }, { "how do", K_COMPLEX, 1 },
	{ "ways to", K_COMPLEX, 1 }, { "difference between", K_COMPLEX, 1 },
	{ "what are some", K_COMPLEX, 1 }, { "what should", K_COMPLEX, 1 },
	{ "story", K_COMPLEX, 1 }, { "lyrics", K_COMPLEX, 1 }, { "each", K_COMPLEX, 1 },
	{ "arguments", K_COMPLEX, 1 }, { "history", K_COMPLEX, 1 }, { "what happened", K_COMPLEX, 1 },
	{ "chance", K_COMPLEX, 1 }, { "probability", K_COMPLEX, 1 }, { "toast", K_COMPLEX, 1 },
	{ "speech", K_COMPLEX, 1 }, { "description", K_COMPLEX, 1 }, { "essay", K_COMPLEX, 1 },
	{ "blog post", K_COMPLEX, 1 }, { "letter", K_COMPLEX, 1 }, { "tips", K_COMPLEX, 1 },
	{ "why is", K_COMPLEX, 1 }, { "why does", K_COMPLEX, 1 }, { "why do", K_COMPLEX, 1 },
	{ "one sentence", K_SIMPLE, 1 }, { "one line", K_SIMPLE, 1 }, { "one word", K_SIMPLE, 1 }, { "few words", K_SIMPLE, 1 },
	{ "two line", K_SIMPLE, 1 }, { "haiku", K_SIMPLE, 1 }, { "joke", K_SIMPLE, 1 },
	{ "slogan", K_SIMPLE, 1 }, { "quick", K_SIMPLE, 1 }, { "briefly", K_SIMPLE, 1 },
	{ "yes or no", K_SIMPLE, 1 }, { "gist", K_SIMPLE, 1 }, { "tl dr", K_SIMPLE, 1 },
	{ "hi", K_SIMPLE, 1 }, { "hello", K_SIMPLE, 1 }, { "thanks", K_SIMPLE, 1 },
	{ "good morning", K_SIMPLE, 1 },

	/* asks: distinct ones are counted */
	{ "explain", K_ASK, 0 }, { "compare", K_ASK, 1 }, { "list", K_ASK, 2 }, { "include", K_ASK, 3 },
	{ "design", K_ASK, 4 }, { "implement", K_ASK, 5 }, { "write", K_ASK, 6 },
	{ "estimate", K_ASK, 7 }, { "recommend", K_ASK, 8 }, { "describe", K_ASK, 9 },
	{ "propose", K_ASK, 10 }, { "analyze", K_ASK, 11 }, { "analyse", K_ASK, 11 },
	{ "evaluate", K_ASK, 12 }, { "prove", K_ASK, 13 }, { "show", K_ASK, 14 },
	{ "verify", K_ASK, 15 }, { "check", K_ASK, 16 }, { "cite", K_ASK, 17 },
	{ "justify", K_ASK, 18 }, { "outline", K_ASK, 19 }, { "introduce", K_ASK, 20 },
	{ "rewrite", K_ASK, 21 }, { "refactor", K_ASK, 22 }, { "create", K_ASK, 23 },
	{ "compute", K_ASK, 24 }, { "summarize", K_ASK, 25 }, { "extract", K_ASK, 26 },
	{ "classify", K_ASK, 27 }, { "decide", K_ASK, 28 }, { "return", K_ASK, 29 },
	{ "keep", K_ASK, 30 }, { "find", K_ASK, 31 }, { "fix", K_ASK, 32 },
	{ "identify", K_ASK, 33 }, { "give", K_ASK, 34 }, { "plan", K_ASK, 35 },
	{ "foreshadow", K_ASK, 36 }, { "output", K_ASK, 37 }, { "walk", K_ASK, 38 },
};

/* ties go to the earlier one */
static const enum cls_category tie_order[] = {
	CLS_EXTRACTION, CLS_SUMMARY, CLS_CLASSIFICATION, CLS_CREATIVE, CLS_CODE,
	CLS_REASONING, CLS_CHAT
};

#define WORD_MAX 24 /* longer words match no keyword */

struct scan {
	int score[CLS_N_CATEGORIES];
	int complex, simple;
	uint64_t asks;
	size_t words;
};

/* FNV-1a of a NUL-terminated string: the index's hash. */
static unsigned
kw_hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h & (CLS_INDEX_SLOTS - 1);
}

void
cls_index_init(struct cls_index *ix)
{
	memset(ix, 0, sizeof *ix);
	for (size_t i = 0; i < sizeof kws / sizeof kws[0]; i++) {
		size_t n = strlen(kws[i].words);
		if (kws[i].words[n - 1] == '*') {
			/* stems: matched one by one */
			if (ix->n_stems < sizeof ix->stem / sizeof ix->stem[0]) {
				ix->stem_len[ix->n_stems] = (unsigned char)(n - 1);
				ix->stem[ix->n_stems++] = (unsigned short)i;
			}
			continue;
		}
		/* a phrase: its first word's bit */
		const char *sp = strchr(kws[i].words, ' ');
		if (sp != NULL) {
			char first[WORD_MAX + 1];
			size_t k = (size_t)(sp - kws[i].words);
			memcpy(first, kws[i].words, k);
			first[k] = '\0';
			unsigned fh = kw_hash(first);
			if (strchr(sp + 1, ' ') != NULL)
				ix->first3[fh / 8] |= (unsigned char)(1u << (fh % 8));
			else
				ix->first2[fh / 8] |= (unsigned char)(1u << (fh % 8));
		}
		unsigned h = kw_hash(kws[i].words);
		while (ix->slot[h] != 0)
			h = (h + 1) & (CLS_INDEX_SLOTS - 1);
		ix->slot[h] = (unsigned short)(i + 1);
	}
}

static void
count(struct scan *s, const struct kw *k, int mult)
{
	if (k->what < CLS_N_CATEGORIES)
		s->score[k->what] += k->w * mult;
	else if (k->what == K_COMPLEX)
		s->complex += k->w;
	else if (k->what == K_SIMPLE)
		s->simple += k->w;
	else
		s->asks |= (uint64_t)1 << k->w;
}

/* Every keyword whose words are key, of hash h. */
static void
lookup(const struct cls_index *ix, struct scan *s, const char *key, unsigned h, int mult)
{
	for (; ix->slot[h] != 0; h = (h + 1) & (CLS_INDEX_SLOTS - 1)) {
		const struct kw *k = &kws[ix->slot[h] - 1];
		if (strcmp(k->words, key) == 0)
			count(s, k, mult);
	}
}

static int
bit(const unsigned char *set, unsigned h)
{
	return (set[h / 8] >> (h % 8)) & 1;
}

/* A word, and the hash of it. */
struct word {
	char s[WORD_MAX + 1];
	size_t len;
	unsigned hash;
};

/* The keywords that end with word cur, after prev and prev2 (len 0 if
 * none), their points times mult (0: quoted, counted for nothing). */
static void
match(const struct cls_index *ix, struct scan *s, const struct word *prev2,
    const struct word *prev, const struct word *cur, int mult)
{
	if (mult == 0)
		return;
	lookup(ix, s, cur->s, cur->hash, mult);
	char two[2 * WORD_MAX + 2], three[3 * WORD_MAX + 3];
	if (prev->len > 0 && bit(ix->first2, prev->hash)) {
		memcpy(two, prev->s, prev->len);
		two[prev->len] = ' ';
		memcpy(two + prev->len + 1, cur->s, cur->len + 1);
		lookup(ix, s, two, kw_hash(two), mult);
	}
	if (prev2->len > 0 && prev->len > 0 && bit(ix->first3, prev2->hash)) {
		size_t o = prev2->len;
		memcpy(three, prev2->s, o);
		three[o++] = ' ';
		memcpy(three + o, prev->s, prev->len);
		o += prev->len;
		three[o++] = ' ';
		memcpy(three + o, cur->s, cur->len + 1);
		lookup(ix, s, three, kw_hash(three), mult);
	}
	for (unsigned i = 0; i < ix->n_stems; i++) {
		const struct kw *k = &kws[ix->stem[i]];
		size_t n = ix->stem_len[i];
		if (cur->len >= n && memcmp(k->words, cur->s, n) == 0)
			count(s, k, mult);
	}
}

static int
is_word(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/* A digit, or a lone letter (a variable: x, n, k), at p[i]. */
static int
is_operand(const unsigned char *p, size_t len, size_t i, int dir)
{
	if (is_digit(p[i]))
		return 1;
	if (!(p[i] >= 'a' && p[i] <= 'z'))
		return 0;
	/* lone: no letter on its far side */
	size_t j = i + (size_t)dir;
	if (dir < 0 && i == 0)
		return 1;
	if (j >= len)
		return 1;
	return !is_word(p[j]) || is_digit(p[j]);
}

/* Arithmetic at p[i], an operator: an operand on both sides (one space between). */
static int
is_arith(const unsigned char *p, size_t len, size_t i)
{
	int c = p[i];
	size_t l = i, r = i + 1;
	int spaced = 0;
	if (l > 0 && p[l - 1] == ' ') {
		l--;
		spaced++;
	}
	if (r < len && p[r] == ' ') {
		r++;
		spaced++;
	}
	if (l == 0 || r >= len)
		return 0;
	/* - and / are dashes, dates, ranges and paths unless spaced as in 6 - 2 */
	if ((c == '-' || c == '/') && spaced != 2)
		return 0;
	return is_operand(p, len, l - 1, -1) && is_operand(p, len, r, 1);
}

void
cls_heuristic(const struct cls_index *ix, const char *text, size_t len,
    struct cls_labels *out)
{
	const unsigned char *p = (const unsigned char *)text;
	struct scan s;
	memset(&s, 0, sizeof s);
	struct word w[3];      /* a ring: the word, the one before, the one before that */
	unsigned cur = 0;
	memset(w, 0, sizeof w);

	/* the head: up to the first line break or colon, at most 160 bytes */
	size_t head = len < 160 ? len : 160;
	for (size_t i = 0; i < head; i++) {
		if (p[i] == '\n' || (p[i] == ':' && (i + 1 == len || p[i + 1] == ' '))) {
			head = i;
			break;
		}
	}

	int code = 0, fence = 0, ends = 0, ops = 0, tick = 0, arith = 0;
	int quote = 0;         /* the quote character of a quoted text we are in */
	int quotes = 0, or_first = 0; /* quoted texts; "or" before the first */
	size_t symbols = 0, items = 0, questions = 0, commas = 0;
	int first_line = 1;    /* before the first line break */
	size_t line_start = 0, last_solid = 0;
	int solid = 0;
	for (size_t i = 0; i <= len; i++) {
		int c = i < len ? p[i] : '\n';
		if (i < len && is_word(c)) {
			size_t start = i, n = 0;
			cur = (cur + 1) % 3;
			struct word *word = &w[cur];
			uint32_t h = 2166136261u; /* kw_hash, as it goes */
			while (i < len && is_word(p[i])) {
				if (n < WORD_MAX) {
					word->s[n] = (char)lower(p[i]);
					h = (h ^ (unsigned char)word->s[n]) * 16777619u;
				}
				n++;
				i++;
			}
			if (n > WORD_MAX)
				n = 0; /* matches nothing, breaks phrases */
			word->s[n] = '\0';
			word->len = n;
			word->hash = h & (CLS_INDEX_SLOTS - 1);
			s.words++;
			if (n > 0)
				match(ix, &s, &w[(cur + 1) % 3], &w[(cur + 2) % 3], word,
				    quote ? 0 : start < head ? 2 : 1);
			if (!quote && quotes == 0 && n == 2 && word->s[0] == 'o' && word->s[1] == 'r')
				or_first = 1;
			/* a list item: "1." or "2)" at the start of a line or after a space */
			if (i < len && (p[i] == '.' || p[i] == ')') && n <= 2 && is_digit(word->s[0]) &&
			    (start == line_start || p[start - 1] == ' ') &&
			    (i + 1 == len || p[i + 1] == ' '))
				items++;
			solid = 1;
			last_solid = i - 1;
			i--;
			continue;
		}
		switch (c) {
		case '\n':
			/* a line ending in ; { or } */
			if (solid && (p[last_solid] == ';' || p[last_solid] == '{' ||
			    p[last_solid] == '}'))
				ends++;
			solid = 0;
			first_line = 0;
			line_start = i + 1;
			/* "- item" or "* item" */
			if (i + 2 < len && (p[i + 1] == '-' || p[i + 1] == '*') && p[i + 2] == ' ')
				items++;
			continue;
		case '?':
			questions++;
			break;
		case ',':
			commas += first_line && !quote;
			break;
		case '\'':
		case '"':
			/* opens after a space, colon or bracket, before a non-space;
			 * closes before a non-word byte (so "we're" stays inside) */
			if (quote == 0 && (i == 0 || p[i - 1] == ' ' || p[i - 1] == ':' ||
			    p[i - 1] == '(' || p[i - 1] == '\n') && i + 1 < len && p[i + 1] != ' ') {
				quote = c;
				quotes++;
			} else if (quote == c && (i + 1 == len || !is_word(p[i + 1]))) {
				quote = 0;
			}
			break;
		case '`':
			if (i + 2 < len && p[i + 1] == '`' && p[i + 2] == '`')
				fence = 1;
			else
				tick = 1;
			break;
		case '{': case '}': case '(': case ')': case ';': case '=': case '<':
		case '>': case '[': case ']':
			symbols++;
			break;
		default:
			break;
		}
		if (c == '=' && i + 1 < len && p[i + 1] == '=')
			ops++;
		else if ((c == '!' || c == ':') && i + 1 < len && p[i + 1] == '=')
			ops++;
		else if ((c == '-' || c == '=') && i + 1 < len && p[i + 1] == '>')
			ops++;
		else if ((c == '&' || c == '|') && i + 1 < len && p[i + 1] == c)
			ops++;
		else if (c == '#' && len - i >= 8 && memcmp(p + i, "#include", 8) == 0)
			ops += 2;
		else if (c == '+' && i + 1 < len && p[i + 1] == '+' && i > 0 && lower(p[i - 1]) == 'c')
			ops += 2; /* C++ */
		if (c == '%' && i > 0 && is_digit(p[i - 1]))
			arith++;
		else if ((c == '+' || c == '-' || c == '*' || c == '/' || c == '^' || c == '=') &&
		    is_arith(p, len, i))
			arith++;
		if (c != ' ' && c != '\t' && c != '\r') {
			solid = 1;
			last_solid = i;
		}
	}

	code += fence ? 6 : 0;
	code += 2 * (ends > 4 ? 4 : ends);
	code += 2 * (ops > 3 ? 3 : ops);
	code += tick;
	if (symbols >= 6 && symbols * 20 > len)
		code += 3;
	s.score[CLS_CODE] += code;
	s.score[CLS_REASONING] += 2 * (arith > 3 ? 3 : arith);
	/* choices offered ("A, B or C"), then a quoted text: pick one for it */
	if (or_first && quotes > 0)
		s.score[CLS_CLASSIFICATION] += 2;

	enum cls_category best = CLS_CHAT;
	int top = 1; /* below 2: chat */
	for (size_t i = 0; i < sizeof tie_order / sizeof tie_order[0]; i++) {
		enum cls_category k = tie_order[i];
		if (k != CLS_CHAT && s.score[k] > top) {
			top = s.score[k];
			best = k;
		}
	}
	if (best != CLS_CHAT && s.score[CLS_CHAT] > top)
		best = CLS_CHAT;
	out->category = best;

	int points = 0;
	points += s.words >= 150 ? 3 : s.words >= 60 ? 2 : s.words >= 25 ? 1 : 0;
	points += fence || ends >= 2; /* code to work on */
	points += items >= 3;
	points += questions >= 2;
	points += commas >= 3; /* the ask lists several things */
	int asks = 0;
	for (uint64_t a = s.asks; a != 0; a &= a - 1)
		asks++;
	points += asks >= 4 ? 2 : asks >= 3 ? 1 : 0;
	points += s.complex > 2 ? 2 : s.complex;
	points -= s.simple > 2 ? 2 : s.simple;
	out->complexity = points <= 0 ? CLS_SIMPLE : points <= 2 ? CLS_MODERATE : CLS_COMPLEX;
}
