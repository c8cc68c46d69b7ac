/*
 * probe.c -- the openai worker's health probe (a pool's active health
 * check, porch.xml(5) POOLS): GET BASE-URL + health-path, healthy when
 * the server answers 2xx within health-timeout.
 *
 * A probe is one libcurl transfer on a multi handle of its own, driven by
 * the worker's loop through cev.c as the curl transport's are, so that it
 * goes through a proxy, TLS and the CA file as a request would, whichever
 * transport the worker's calls use, and never takes a connection they
 * could use.  One probe at a time; a probe asked for while one runs is
 * answered by it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "cev.h"
#include "probe.h"

struct oai_probe {
	struct oai *o;
	struct cev *cv;
	CURL *easy;
	struct curl_slist *headers;  /* the API key, if any: zeroed when freed */
	char *url;
	long timeout_ms;
	int running;
	int global;                  /* curl_global_init succeeded */
};

/* The body is not needed: its bytes are dropped (and bounded by the timeout). */
static size_t
probe_discard(char *p, size_t size, size_t nmemb, void *arg)
{
	(void)p;
	(void)arg;
	return size * nmemb;
}

static void
probe_done(void *arg, CURL *easy, CURLcode result)
{
	struct oai_probe *pr = arg;
	long code = 0;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
	pr->running = 0;
	porch_worker_probed(pr->o->w, result == CURLE_OK && code >= 200 && code < 300);
}

static void
probe_after(void *arg)
{
	(void)arg;
}

/* The probe's state, made the first time; NULL when out of memory. */
static struct oai_probe *
probe_new(struct oai *o)
{
	const porch_params *p = porch_worker_params(o->w);
	struct oai_probe *pr = calloc(1, sizeof *pr);
	if (pr == NULL)
		return NULL;
	pr->o = o;
	pr->global = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
	const char *base = porch_param_str(p, "base-url");
	const char *path = porch_param_str(p, "health-path");
	size_t blen = strlen(base);
	while (blen > 0 && base[blen - 1] == '/')
		blen--;
	size_t n = blen + strlen(path) + 2;
	pr->url = malloc(n);
	if (pr->url != NULL)
		snprintf(pr->url, n, "%.*s%s%s", (int)blen, base, path[0] == '/' ? "" : "/", path);
	pr->timeout_ms = (long)porch_param_int(p, "health-timeout");
	if (o->key != NULL) {
		size_t kn = strlen("Authorization: Bearer ") + strlen(o->key) + 1;
		char *a = malloc(kn);
		if (a != NULL) {
			snprintf(a, kn, "Authorization: Bearer %s", o->key);
			pr->headers = curl_slist_append(NULL, a);
			explicit_bzero(a, kn);
			free(a);
		}
	}
	pr->cv = cev_new(o->loop, probe_done, probe_after, pr);
	pr->easy = curl_easy_init();
	if (!pr->global || pr->url == NULL || pr->cv == NULL || pr->easy == NULL ||
	    (o->key != NULL && pr->headers == NULL)) {
		o->probe = pr;
		oai_probe_free(o);
		return NULL;
	}
	CURL *e = pr->easy;
	curl_easy_setopt(e, CURLOPT_URL, pr->url);
	curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, pr->timeout_ms);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, probe_discard);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85 */
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	if (pr->headers != NULL)
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, pr->headers);
	if (o->ca_file != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file);
	return pr;
}

void
oai_probe(porch_worker *w)
{
	struct oai *o = porch_worker_data(w);
	if (o == NULL)
		return;
	if (o->probe == NULL && (o->probe = probe_new(o)) == NULL) {
		porch_worker_probed(w, 0); /* no way to tell: not healthy */
		return;
	}
	struct oai_probe *pr = o->probe;
	if (pr->running)
		return;  /* the one running answers */
	if (cev_add(pr->cv, pr->easy) != CURLM_OK) {
		porch_worker_probed(w, 0);
		return;
	}
	pr->running = 1;
}

void
oai_probe_free(struct oai *o)
{
	struct oai_probe *pr = o->probe;
	if (pr == NULL)
		return;
	if (pr->running)
		cev_remove(pr->cv, pr->easy);
	if (pr->easy != NULL)
		curl_easy_cleanup(pr->easy);
	if (pr->cv != NULL)
		cev_free(pr->cv);
	if (pr->headers != NULL) {
		for (struct curl_slist *h = pr->headers; h != NULL; h = h->next)
			explicit_bzero(h->data, strlen(h->data));
		curl_slist_free_all(pr->headers);
	}
	free(pr->url);
	if (pr->global)
		curl_global_cleanup();
	free(pr);
	o->probe = NULL;
}
