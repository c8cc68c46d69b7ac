/*
 * classify-unit.c -- unit test of the classify stage's parts that do not
 * need the plugin API: the prefix (plugins/classify/heuristic.c), the
 * cache (cache.c) and the model's prompt and answers (model.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "labels.h"
#include "model.h"

static int failures, checks;

static void
check(const char *name, int good)
{
	checks++;
	if (good) {
		printf("ok - %s\n", name);
	} else {
		printf("not ok - %s\n", name);
		failures++;
	}
}

static void
test_prefix(void)
{
	check("prefix: ASCII", cls_prefix("abcdef", 6, 4) == 4);
	check("prefix: shorter text", cls_prefix("abc", 3, 800) == 3);
	/* é is 2 bytes, € 3, 😀 4: characters, not bytes */
	const char *u = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z";
	check("prefix: UTF-8, 1", cls_prefix(u, 10, 1) == 2);
	check("prefix: UTF-8, 2", cls_prefix(u, 10, 2) == 5);
	check("prefix: UTF-8, 3", cls_prefix(u, 10, 3) == 9);
	check("prefix: UTF-8, 4", cls_prefix(u, 10, 4) == 10);
	/* a sequence cut by the end, or broken, counts a byte a character */
	check("prefix: cut sequence", cls_prefix("\xe2\x82", 2, 1) == 1);
	check("prefix: broken sequence", cls_prefix("\xe2z\xac", 3, 2) == 2);
	check("prefix: stray continuation", cls_prefix("\x80\x80z", 3, 2) == 2);
}

static void
test_labels(void)
{
	check("names: category", cls_category_of("Code", 4) == CLS_CODE &&
	    cls_category_of("classification", 14) == CLS_CLASSIFICATION &&
	    cls_category_of("codes", 5) == -1 && cls_category_of("cod", 3) == -1);
	check("names: complexity", cls_complexity_of("COMPLEX", 7) == CLS_COMPLEX &&
	    cls_complexity_of("", 0) == -1);
	struct cls_index ix;
	cls_index_init(&ix);
	struct cls_labels l;
	cls_heuristic(&ix, "", 0, &l);
	check("heuristic: empty text is simple chat", l.category == CLS_CHAT &&
	    l.complexity == CLS_SIMPLE);
	const char *t = "Summarize this: 'def f(): return 1'";
	cls_heuristic(&ix, t, strlen(t), &l);
	check("heuristic: quoted code does not make code", l.category == CLS_SUMMARY);
	t = "```\nint main(void) {\n\treturn 0;\n}\n```";
	cls_heuristic(&ix, t, strlen(t), &l);
	check("heuristic: a code block", l.category == CLS_CODE);
}

static void
test_cache(void)
{
	struct cls_cache *c = cls_cache_new(2);
	struct cls_value v = { { CLS_CODE, CLS_SIMPLE }, 1 }, got;
	uint64_t ha = cls_cache_hash(c, "a", 1), hb = cls_cache_hash(c, "b", 1),
	    hc = cls_cache_hash(c, "c", 1);
	check("cache: hashes differ", ha != hb && hb != hc);
	check("cache: same key, same hash", cls_cache_hash(c, "a", 1) == ha);
	check("cache: empty", cls_cache_get(c, "a", 1, ha, &got) == 0 && cls_cache_size(c) == 0);
	cls_cache_put(c, "a", 1, ha, &v);
	v.labels.category = CLS_CHAT;
	cls_cache_put(c, "b", 1, hb, &v);
	check("cache: hit", cls_cache_get(c, "a", 1, ha, &got) == 1 &&
	    got.labels.category == CLS_CODE && got.by == 1);
	/* a was used last: c pushes b out */
	cls_cache_put(c, "c", 1, hc, &v);
	check("cache: bounded", cls_cache_size(c) == 2);
	check("cache: least recently used out", cls_cache_get(c, "b", 1, hb, &got) == 0);
	check("cache: recently used kept", cls_cache_get(c, "a", 1, ha, &got) == 1 &&
	    cls_cache_get(c, "c", 1, hc, &got) == 1);
	/* a key with another key's hash is not that key */
	check("cache: a colliding hash is no hit", cls_cache_get(c, "x", 1, ha, &got) == 0);
	check("cache: a longer key is no hit", cls_cache_get(c, "ab", 2, ha, &got) == 0);
	/* replacing keeps one entry */
	v.labels.complexity = CLS_COMPLEX;
	cls_cache_put(c, "c", 1, hc, &v);
	check("cache: replaced", cls_cache_size(c) == 2 &&
	    cls_cache_get(c, "c", 1, hc, &got) == 1 && got.labels.complexity == CLS_COMPLEX);
	/* an empty key is a key */
	uint64_t he = cls_cache_hash(c, "", 0);
	cls_cache_put(c, "", 0, he, &v);
	check("cache: an empty key", cls_cache_get(c, "", 0, he, &got) == 1);
	cls_cache_free(c);
	check("cache: no entries refused", cls_cache_new(0) == NULL);
	uint64_t k[2] = { 0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL };
	check("siphash13: differs by key and text",
	    cls_siphash13(k, "", 0) != cls_siphash13(k, "a", 1) &&
	    cls_siphash13(k, "abcdefgh", 8) != cls_siphash13(k, "abcdefgi", 8));
}

static void
test_model(void)
{
	size_t n;
	char *p = cls_model_prompt("Label: {text}!", "hi", 2, &n);
	check("prompt: {text} replaced", p != NULL && n == 10 && strcmp(p, "Label: hi!") == 0);
	free(p);
	p = cls_model_prompt("Label.", "hi", 2, &n);
	check("prompt: appended", p != NULL && strcmp(p, "Label.\n\nhi") == 0 && n == strlen(p));
	free(p);
	p = cls_model_prompt(cls_default_prompt, "x", 1, &n);
	check("prompt: the default ends with the text", p != NULL && p[n - 1] == 'x' &&
	    strstr(p, "{text}") == NULL);
	free(p);

	struct cls_labels l;
	static const char *const good[] = {
		"{\"category\":\"code\",\"complexity\":\"simple\"}",
		"  \n{\"complexity\": \"Simple\", \"category\": \" CODE \", \"why\": 1}\n",
		"```json\n{\"category\":\"code\",\"complexity\":\"simple\"}\n```",
		"```\n{\"category\":\"code\",\"complexity\":\"simple\"}```",
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		char name[64];
		snprintf(name, sizeof name, "answer %zu parses", i + 1);
		memset(&l, 0, sizeof l);
		l.category = CLS_CHAT;
		check(name, cls_model_parse(good[i], strlen(good[i]), &l) == 0 &&
		    l.category == CLS_CODE && l.complexity == CLS_SIMPLE);
	}
	static const char *const bad[] = {
		"", "code, simple", "{\"category\":\"code\"}",
		"{\"category\":\"poetry\",\"complexity\":\"simple\"}",
		"{\"category\":\"code\",\"complexity\":3}",
		"Sure! {\"category\":\"code\",\"complexity\":\"simple\"}",
		"{\"category\":\"code\",\"complexity\":\"simple\"} Hope this helps.",
		"[\"code\",\"simple\"]",
		"{\"category\":\"code\",\"category\":\"chat\",\"complexity\":\"simple\"}",
		"```json\n{\"category\":\"code\",\"complexity\":\"simple\"}",
		"{\"category\":\"code\",\"complexity\":\"simple\"",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char name[64];
		snprintf(name, sizeof name, "answer %zu does not parse", i + 1);
		check(name, cls_model_parse(bad[i], strlen(bad[i]), &l) == -1);
	}
}

int
main(void)
{
	test_prefix();
	test_labels();
	test_cache();
	test_model();
	printf("# %d checks\n", checks);
	if (failures > 0) {
		printf("# %d of %d checks failed\n", failures, checks);
		return 1;
	}
	return 0;
}
