/* call.h -- one HTTP call of the openai worker, and the worker's state. */
#ifndef PORCH_OPENAI_CALL_H
#define PORCH_OPENAI_CALL_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <ev.h>
#include <porch/plugin.h>

#include "cev.h"
#include "request.h"
#include "sse.h"

struct oai;

enum oai_state {
	OAI_FREE,     /* on the free list */
	OAI_WAITING,  /* submitted while libcurl ran: queued until it returns */
	OAI_RUNNING,  /* its transfer is in the multi handle */
	OAI_ENDING,   /* out of the multi handle, being ended */
};

/* One call, with its easy handle; both are reused for later calls. */
struct oai_call {
	struct oai_call *prev, *next;  /* the active list; next: the free list */
	struct oai_call *qnext;        /* the waiting queue */
	struct oai *o;
	porch_call *c;                 /* NULL once cancelled */
	CURL *easy;
	enum oai_state state;
	char *body;                    /* the request body */

	char *resp;                    /* a whole (not streamed) answer */
	size_t rlen, rcap;
	size_t total;                  /* answer bytes so far, for max-response */
	struct sse sse;
	struct oai_acc acc;            /* a stream's extras, for its end */
	char *error_json;              /* the upstream's error object, or NULL */

	ev_timer read_timer;           /* read-timeout, lazily re-armed */
	ev_tstamp last;                /* loop time of the last bytes received */

	int64_t retry_after;           /* ms; -1: not given */
	unsigned event_stream : 1;     /* Content-Type: text/event-stream */
	unsigned ms_given : 1;         /* retry-after-ms was given (it wins) */
	unsigned started : 1;          /* the first body bytes came */
	unsigned sse_mode : 1;         /* the body is parsed as events */
	unsigned saw_done : 1;         /* "data: [DONE]" came */
	unsigned cancelled : 1;

	/* why we stopped the transfer ourselves, if we did */
	enum porch_error fail_err;
	int fail_status;
	char fail_why[384];
	char errbuf[CURL_ERROR_SIZE];
};

struct oai {
	porch_worker *w;
	struct ev_loop *loop;
	struct cev *cv;
	struct curl_slist *headers;    /* holds the API key: zeroed when freed */
	char *url;
	struct oai_shape shape;
	long connect_timeout_ms;
	double read_timeout;           /* s */
	size_t max_response;
	const char *ca_file;           /* ca-file, or NULL: libcurl's CA bundle */
	const char *key;               /* the API key (the environment's), or NULL */
	struct oai_call *active;       /* every call not free */
	struct oai_call *free;
	struct oai_call *qhead, *qtail;/* waiting for libcurl to return */
	unsigned zombies;              /* cancelled while libcurl ran */
	int curl_ready;                /* curl_global_init succeeded */
};

/*
 * A call ready for c, with its easy handle: from the free list or new, on
 * the active list, its request not yet set.  NULL when out of memory.
 */
struct oai_call *oai_call_get(struct oai *o, porch_call *c);

/* Back to the free list; it must be out of the multi handle. */
void oai_call_put(struct oai_call *cl);

/* Frees a call and its easy handle (worker_fini). */
void oai_call_destroy(struct oai_call *cl);

/*
 * Starts a call's transfer; not while cev_busy.  A transfer that cannot
 * start ends the call (failed, internal).
 */
void oai_start(struct oai_call *cl);

/* cev_done_fn: a transfer ended; ends its call. */
void oai_on_done(void *arg, CURL *easy, CURLcode result);

/* cev_after_fn: stops the calls cancelled, and starts those submitted,
 * while libcurl ran. */
void oai_after(void *arg);

#endif /* PORCH_OPENAI_CALL_H */
