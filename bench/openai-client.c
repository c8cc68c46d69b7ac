/*
 * openai-client.c -- the peer of bench/openai: a minimal libcurl client
 * that POSTs the same body COUNT times, CONCURRENCY at a time, over kept
 * connections, and throws the answers away.  What any C program pays
 * libcurl for the same HTTP traffic, with no JSON, no pipeline, no loop of
 * its own (curl_multi_poll).
 *
 *   openai-client URL BODY COUNT CONCURRENCY
 *
 * Exits 0 if every answer was a 200, 1 otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

static size_t
discard(char *p, size_t size, size_t nmemb, void *arg)
{
	(void)p;
	(void)arg;
	return size * nmemb;
}

int
main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: openai-client URL BODY COUNT CONCURRENCY\n");
		return 2;
	}
	const char *url = argv[1], *body = argv[2];
	long count = atol(argv[3]), conc = atol(argv[4]);
	if (count < 1 || conc < 1)
		return 2;
	if (conc > count)
		conc = count;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	CURLM *m = curl_multi_init();
	curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, conc);
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, conc);
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	h = curl_slist_append(h, "Expect:");
	CURL **easy = calloc((size_t)conc, sizeof *easy);
	long started = 0, done = 0, bad = 0;
	for (long i = 0; i < conc; i++) {
		easy[i] = curl_easy_init();
		curl_easy_setopt(easy[i], CURLOPT_URL, url);
		curl_easy_setopt(easy[i], CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(easy[i], CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(easy[i], CURLOPT_NOSIGNAL, 1L);
		curl_multi_add_handle(m, easy[i]);
		started++;
	}
	while (done < count) {
		int running, left;
		curl_multi_perform(m, &running);
		CURLMsg *msg;
		while ((msg = curl_multi_info_read(m, &left)) != NULL) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			CURL *e = msg->easy_handle;
			long status = 0;
			curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
			if (msg->data.result != CURLE_OK || status != 200)
				bad++;
			done++;
			curl_multi_remove_handle(m, e);
			if (started < count) {
				curl_multi_add_handle(m, e);
				started++;
			}
		}
		if (done < count)
			curl_multi_poll(m, NULL, 0, 1000, NULL);
	}
	for (long i = 0; i < conc; i++)
		curl_easy_cleanup(easy[i]);
	free(easy);
	curl_multi_cleanup(m);
	curl_slist_free_all(h);
	curl_global_cleanup();
	if (bad > 0)
		fprintf(stderr, "openai-client: %ld of %ld requests failed\n", bad, count);
	return bad > 0;
}
