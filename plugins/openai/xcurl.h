/* xcurl.h -- the openai worker's libcurl transport (xcurl.c). */
#ifndef PORCH_OPENAI_XCURL_H
#define PORCH_OPENAI_XCURL_H

#include "call.h"

/*
 * Sets up the libcurl transport for o (worker_init): libcurl's global
 * state, the request headers (the API key, when key is not NULL, as
 * "Authorization: Bearer"), and the multi handle on o's loop, with at most
 * o->max_connections connections.  Returns 0, or -1 with the worker's
 * error set; oai_io_curl.fini frees what was made either way.
 */
int oai_curl_init(struct oai *o, const char *key);

#endif /* PORCH_OPENAI_XCURL_H */
