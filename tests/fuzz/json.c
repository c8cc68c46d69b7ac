/*
 * json.c -- libFuzzer harness: the http source's quick JSON reader
 * (plugins/http/jparse.c) against jansson, differentially.  jparse_object
 * must build exactly what json_loadb(JSON_REJECT_DUPLICATES) builds, or
 * refuse (NULL) and leave the body to json_loadb: a tree json_loadb
 * refuses, or one that is not json_equal to json_loadb's, is a crash.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "jparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	json_t *quick = jparse_object(p, size);
	if (quick == NULL)
		return 0; /* refused: json_loadb decides, which is always right */
	json_error_t err;
	json_t *ref = json_loadb(p, size, JSON_REJECT_DUPLICATES, &err);
	if (ref == NULL) {
		fprintf(stderr, "jparse built a tree json_loadb refuses: %s (line %d, column %d)\n",
		    err.text, err.line, err.column);
		abort();
	}
	if (!json_is_object(ref) || !json_equal(quick, ref)) {
		char *a = json_dumps(quick, JSON_ENCODE_ANY | JSON_SORT_KEYS);
		char *b = json_dumps(ref, JSON_ENCODE_ANY | JSON_SORT_KEYS);
		fprintf(stderr, "jparse and json_loadb differ:\n jparse:     %s\n json_loadb: %s\n",
		    a ? a : "?", b ? b : "?");
		free(a);
		free(b);
		abort();
	}
	json_decref(quick);
	json_decref(ref);
	return 0;
}
