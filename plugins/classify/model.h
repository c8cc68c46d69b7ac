/*
 * model.h -- the classify stage's question to a model and the reading of
 * its answer.  Free of the plugin API.
 */
#ifndef PORCH_CLASSIFY_MODEL_H
#define PORCH_CLASSIFY_MODEL_H

#include <stddef.h>

#include "labels.h"

/* The instructions the stage sends when its prompt parameter is not set. */
extern const char cls_default_prompt[];

/*
 * The prompt for text (len bytes): prompt with its first "{text}"
 * replaced by text, or, without one, text after a blank line.  malloc'ed,
 * its length in *out_len; NULL when out of memory.
 */
char *cls_model_prompt(const char *prompt, const char *text, size_t len, size_t *out_len);

/*
 * 0 and *out when answer (n bytes) is one JSON object whose "category"
 * and "complexity" are strings naming labels (in any case), alone but for
 * white space and a Markdown code fence (```json ... ```) around it;
 * other members are ignored.  Else -1.
 */
int cls_model_parse(const char *answer, size_t n, struct cls_labels *out);

#endif /* PORCH_CLASSIFY_MODEL_H */
