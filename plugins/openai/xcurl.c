/*
 * xcurl.c -- the openai worker's libcurl transport: every call an easy
 * handle on the worker's multi handle, which the loop drives (cev.c).
 * It speaks https:// (TLS, and HTTP/2 where the server offers it) and
 * http://, and honours libcurl's proxy variables (https_proxy, no_proxy
 * ...).  What libcurl hands over goes to call.c as it comes.
 *
 * libcurl takes no new transfer, and lets none be removed, while one of
 * its callbacks is on the stack (a token went downstream, and the stage
 * started or cancelled a call): such work waits on o->qhead, and in
 * o->zombies, until it returns (xcurl_after).
 *
 * No descriptor free for a connection (fdwait.c): our opensocket callback
 * records why socket(2) failed, and a transfer that ended for that waits
 * on o->fhead, with the calls that come meanwhile behind it (so none
 * overtakes), until the worker's wait is over; then they all go to
 * libcurl again, in order, and reuse what it has kept open first.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "call.h"
#include "cev.h"
#include "xcurl.h"

static size_t xcurl_on_write(char *p, size_t size, size_t nmemb, void *arg);
static size_t xcurl_on_header(char *p, size_t size, size_t nmemb, void *arg);
static curl_socket_t xcurl_on_opensocket(void *arg, curlsocktype purpose,
    struct curl_sockaddr *a);

#if LIBCURL_VERSION_NUM >= 0x075000 /* 7.80: CURLOPT_PREREQFUNCTION */
#define XCURL_HAVE_PREREQ 1
static int xcurl_on_prereq(void *arg, char *ip, char *local_ip, int port, int local_port);
#endif

/* cl's easy handle, set up with what never changes.  -1 when out of memory. */
static int
xcurl_easy(struct oai_call *cl)
{
	struct oai *o = cl->o;
	if ((cl->easy = curl_easy_init()) == NULL)
		return -1;
	CURL *e = cl->easy;
	int bad = 0;
	bad |= curl_easy_setopt(e, CURLOPT_URL, o->url) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, o->headers) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, xcurl_on_write) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, cl) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, xcurl_on_header) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_HEADERDATA, cl) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, cl) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, cl->errbuf) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, xcurl_on_opensocket) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, cl) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, "porch-openai/1") != CURLE_OK;
	/* idle pooled connections: find out early when a peer went away */
	bad |= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK;
	/* https peers are verified, certificate and name: libcurl's default,
	 * set here so that nothing turns it off; ca-file replaces the CAs */
	bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
	if (o->ca_file != NULL)
		bad |= curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file) != CURLE_OK;
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85 */
	bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
#else
	bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) != CURLE_OK;
#endif
#ifdef XCURL_HAVE_PREREQ
	bad |= curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, xcurl_on_prereq) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_PREREQDATA, cl) != CURLE_OK;
#endif
	if (bad) {
		curl_easy_cleanup(cl->easy);
		cl->easy = NULL;
		return -1;
	}
	return 0;
}

/* ---- what libcurl hands us ---------------------------------------------- */

/*
 * CURLOPT_OPENSOCKETFUNCTION: the socket of a new connection, as libcurl
 * would open it (close-on-exec too: nothing porch runs inherits it); when
 * there is none, why not is kept for xcurl_on_done, since the result
 * libcurl reports (CURLE_COULDNT_CONNECT) does not say.
 */
static curl_socket_t
xcurl_on_opensocket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct oai_call *cl = arg;
	(void)purpose;
	int fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
	if (fd < 0) {
		cl->sock_err = errno;
		return CURL_SOCKET_BAD;
	}
	oai_fd_ok(cl->o);
	return fd;
}

/* CURLOPT_WRITEFUNCTION: body bytes.  Returns n, or 0 to stop. */
static size_t
xcurl_on_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct oai_call *cl = arg;
	size_t n = size * nmemb;
	if (!cl->started) {
		long status = 0;
		curl_easy_getinfo(cl->easy, CURLINFO_RESPONSE_CODE, &status);
		cl->status = (int)status;
	}
	return oai_resp_body(cl, p, n) == 0 ? n : 0;
}

/* CURLOPT_HEADERFUNCTION: one header line (or a status line) at a time. */
static size_t
xcurl_on_header(char *p, size_t size, size_t nmemb, void *arg)
{
	struct oai_call *cl = arg;
	size_t n = size * nmemb;
	if (cl->cancelled)
		return 0;
	if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		/* a new response (after a 100 Continue, say) */
		oai_resp_begin(cl);
		return n;
	}
	const char *colon = memchr(p, ':', n);
	if (colon != NULL)
		oai_resp_header(cl, p, (size_t)(colon - p), colon + 1, n - (size_t)(colon + 1 - p));
	return n;
}

#ifdef XCURL_HAVE_PREREQ
/*
 * CURLOPT_PREREQFUNCTION: connected, the request goes out now.  The read
 * timeout runs from here, not from submit: a call waiting for one of the
 * max-connections is not late.
 */
static int
xcurl_on_prereq(void *arg, char *ip, char *local_ip, int port, int local_port)
{
	(void)ip;
	(void)local_ip;
	(void)port;
	(void)local_port;
	oai_read_timer_start(arg);
	return CURL_PREREQFUNC_OK;
}
#endif

/* ---- the transfer's end ------------------------------------------------- */

/* cev_done_fn: a transfer ended; ends its call. */
static void
xcurl_on_done(void *arg, CURL *easy, CURLcode result)
{
	struct oai *o = arg;
	char *priv = NULL;
	curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
	struct oai_call *cl = (struct oai_call *)priv;
	if (cl == NULL)
		return;
	if (cl->cancelled) {
		o->zombies--;
		oai_call_put(cl);
		return;
	}
	/* no descriptor free, and nothing of an answer yet: wait, not fail */
	int err = cl->sock_err;
	if (err == 0 && (result == CURLE_COULDNT_CONNECT || result == CURLE_COULDNT_RESOLVE_HOST)) {
		long oserr = 0;
		curl_easy_getinfo(easy, CURLINFO_OS_ERRNO, &oserr);
		err = (int)oserr;
	}
	if (result != CURLE_OK && oai_fd_short(err) && !cl->started && cl->status == 0) {
		ev_timer_stop(o->loop, &cl->read_timer);
		cl->state = OAI_NOFD; /* not running: xcurl_fini leaves its handle be */
		if (oai_fd_wait(cl, err) == 0)
			oai_fdq_push(cl);
		return;
	}
	long status = 0;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	cl->status = (int)status;
	const char *what = cl->errbuf[0] != '\0' ? cl->errbuf : curl_easy_strerror(result);
	switch (result) {
	case CURLE_OK:
		oai_call_end(cl, PORCH_ERR_NONE, "done");
		break;
	case CURLE_OPERATION_TIMEDOUT:
		/* our stall limits are our own timer: this is connect-timeout */
		oai_call_end(cl, PORCH_ERR_TIMEOUT, "connect-timeout: %s", what);
		break;
	case CURLE_OUT_OF_MEMORY:
		oai_call_end(cl, PORCH_ERR_INTERNAL, "libcurl: %s", what);
		break;
	default:
		/* refused, reset, DNS, TLS, a broken HTTP answer */
		oai_call_end(cl, PORCH_ERR_TRANSPORT, "%s", what);
		break;
	}
}

/* Starts a call's transfer, outside libcurl. */
static void
xcurl_add(struct oai_call *cl)
{
	cl->sock_err = 0;
	cl->errbuf[0] = '\0';
	CURLMcode rc = cev_add(cl->o->cv, cl->easy);
	if (rc != CURLM_OK) {
		oai_call_end(cl, PORCH_ERR_INTERNAL, "could not start the request: %s",
		    curl_multi_strerror(rc));
		return;
	}
	cl->state = OAI_RUNNING;
#ifndef XCURL_HAVE_PREREQ
	oai_read_timer_start(cl);
#endif
}

/* cev_after_fn: what had to wait for libcurl to return. */
static void
xcurl_after(void *arg)
{
	struct oai *o = arg;
	if (o->zombies > 0) {
		struct oai_call *cl = o->active, *next;
		for (; cl != NULL && o->zombies > 0; cl = next) {
			next = cl->next;
			if (cl->cancelled && cl->state == OAI_RUNNING) {
				cev_remove(o->cv, cl->easy);
				o->zombies--;
				oai_call_put(cl);
			}
		}
	}
	struct oai_call *cl;
	while ((cl = oai_queue_pop(o)) != NULL)
		xcurl_add(cl); /* may end calls, and queue none: we are outside libcurl */
}

/* ---- the transport ------------------------------------------------------ */

static void
xcurl_start(struct oai_call *cl)
{
	struct oai *o = cl->o;
	if (cl->easy == NULL && xcurl_easy(cl) != 0) {
		oai_call_end(cl, PORCH_ERR_INTERNAL, "out of memory");
		return;
	}
	curl_easy_setopt(cl->easy, CURLOPT_POSTFIELDS, cl->body);
	curl_easy_setopt(cl->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)cl->blen);
	if (o->fhead != NULL) {
		/* behind the calls waiting for a descriptor, not before them */
		oai_fdq_push(cl);
		return;
	}
	if (cev_busy(o->cv)) {
		/* called from a libcurl callback (a token went downstream):
		 * libcurl takes no new transfer until it returns */
		oai_queue_push(cl);
		return;
	}
	xcurl_add(cl);
}

/* The wait for a free descriptor is over: every call that waited goes to
 * libcurl again, in order (from the loop, so libcurl is not running). */
static void
xcurl_retry(struct oai *o)
{
	struct oai_call *cl;
	while ((cl = oai_fdq_pop(o)) != NULL)
		xcurl_add(cl); /* one that finds none again waits on a new list */
}

static void
xcurl_cancel(struct oai_call *cl)
{
	struct oai *o = cl->o;
	if (cev_busy(o->cv)) {
		/* inside libcurl: stopped by xcurl_on_done or xcurl_after.  A
		 * body that is the message's document (not owned) may be gone
		 * before then: libcurl gets a copy, which it reads if it has not
		 * made the request yet (one it has made, it read whole: at most
		 * OAI_BORROW_MAX bytes, see oai_submit) */
		if (cl->owned == NULL && cl->body != NULL &&
		    (cl->owned = malloc(cl->blen + 1)) != NULL) {
			memcpy(cl->owned, cl->body, cl->blen);
			cl->owned[cl->blen] = '\0';
			cl->body = cl->owned;
			curl_easy_setopt(cl->easy, CURLOPT_POSTFIELDS, cl->body);
		}
		cl->cancelled = 1;
		o->zombies++;
		return;
	}
	cev_remove(o->cv, cl->easy);
	oai_call_put(cl);
}

static void
xcurl_abort(struct oai_call *cl)
{
	cev_remove(cl->o->cv, cl->easy);
}

/* Frees the headers, the key's bytes zeroed first. */
static void
xcurl_headers_free(struct curl_slist *h)
{
	for (struct curl_slist *t = h; t != NULL; t = t->next)
		explicit_bzero(t->data, strlen(t->data));
	curl_slist_free_all(h);
}

static void
xcurl_fini(struct oai *o)
{
	/* the easy handles out of the multi handle and freed before it,
	 * and all of it before libcurl's global state goes */
	struct oai_call *lists[2] = { o->active, o->free };
	for (int i = 0; i < 2; i++) {
		for (struct oai_call *cl = lists[i]; cl != NULL; cl = cl->next) {
			if (cl->easy == NULL)
				continue;
			if (cl->state == OAI_RUNNING && o->cv != NULL)
				cev_remove(o->cv, cl->easy);
			curl_easy_cleanup(cl->easy);
			cl->easy = NULL;
		}
	}
	if (o->cv != NULL) {
		cev_free(o->cv);
		o->cv = NULL;
	}
	xcurl_headers_free(o->headers);
	o->headers = NULL;
	if (o->curl_ready)
		curl_global_cleanup();
	o->curl_ready = 0;
}

const struct oai_io oai_io_curl = {
	.name = "curl",
	.start = xcurl_start,
	.cancel = xcurl_cancel,
	.abort = xcurl_abort,
	.fini = xcurl_fini,
	.retry = xcurl_retry,
};

/* The request headers; the API key goes in the last one. */
static struct curl_slist *
xcurl_headers(const char *key)
{
	static const char *const fixed[] = {
		"Content-Type: application/json",
		"Accept: application/json, text/event-stream",
		"Expect:", /* no "100 Continue" round trip for large prompts */
	};
	struct curl_slist *h = NULL, *t;
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
		if ((t = curl_slist_append(h, fixed[i])) == NULL)
			goto fail;
		h = t;
	}
	if (key != NULL) {
		size_t n = strlen("Authorization: Bearer ") + strlen(key) + 1;
		char *a = malloc(n);
		if (a == NULL)
			goto fail;
		snprintf(a, n, "Authorization: Bearer %s", key);
		t = curl_slist_append(h, a);
		explicit_bzero(a, n);
		free(a);
		if (t == NULL)
			goto fail;
		h = t;
	}
	return h;
fail:
	xcurl_headers_free(h);
	return NULL;
}

int
oai_curl_init(struct oai *o, const char *key)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		porch_worker_error(o->w, "libcurl could not be initialised");
		return -1;
	}
	o->curl_ready = 1;
	if ((o->headers = xcurl_headers(key)) == NULL ||
	    (o->cv = cev_new(o->loop, xcurl_on_done, xcurl_after, o)) == NULL) {
		porch_worker_error(o->w, "out of memory");
		return -1;
	}
	long maxc = o->max_connections;
	CURLM *m = cev_multi(o->cv);
	curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, maxc);
	curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, maxc);
	/* keep as many idle connections as may be open, for reuse */
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, maxc);
	return 0;
}
