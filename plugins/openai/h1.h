/*
 * h1.h -- the openai worker's own HTTP/1.1 client for plain http://
 * upstreams (h1.c), on the worker's libev loop.
 */
#ifndef PORCH_OPENAI_H1_H
#define PORCH_OPENAI_H1_H

#include "call.h"

/*
 * Sets up the native transport for o (worker_init): reads o->url (an
 * http:// URL without credentials), resolves its host with getaddrinfo
 * (this blocks: init only; the addresses are kept for the worker's life,
 * and a name's later changes are not seen), and renders the request head
 * that every request shares: the request line, Host, Content-Type,
 * Accept, User-Agent and, when key is not NULL, "Authorization: Bearer
 * key".  Returns 0, or -1 with the worker's error set; oai_io_native.fini
 * frees what was made either way.
 */
int oai_h1_init(struct oai *o, const char *key);

#endif /* PORCH_OPENAI_H1_H */
