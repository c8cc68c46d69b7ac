/* jparse.h -- a quick reader for request bodies (jparse.c). */
#ifndef PORCH_HTTP_JPARSE_H
#define PORCH_HTTP_JPARSE_H

#include <stddef.h>

#include <jansson.h>

/*
 * The JSON object in body[0..len), as json_loadb(JSON_REJECT_DUPLICATES)
 * would build it; NULL when the body is not a well-formed object this
 * reader takes on (then json_loadb decides, and says why).  The caller
 * owns the reference.
 */
json_t *jparse_object(const char *body, size_t len);

#endif /* PORCH_HTTP_JPARSE_H */
