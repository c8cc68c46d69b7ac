/*
 * auth.c -- API keys and rate limits.
 *
 * Keys: api-keys-file holds one key per line (blank lines and lines that
 * start with '#' are skipped).  It must be private to its owner: a file
 * group or others may read or write is refused, as ssh refuses a private
 * key others can read (chmod 600).  With keys, every /v1/ endpoint and
 * /generate wants "Authorization: Bearer KEY", else 401; /healthz, /readyz
 * and /metrics stay open for probes and scrapers.  A key is compared with
 * every stored key, each in time that depends only on the stored key's
 * length, so timing does not tell how much of a guess was right.
 *
 * Rate limits: a token bucket per key (per client address without keys),
 * filled at rate-limit requests per second up to burst; a request finding
 * it empty gets 429 with Retry-After, the seconds until a token is there.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "http.h"

/* Buckets kept at most; full ones (idle clients) are forgotten first. */
#define BUCKETS_MAX 4096
#define BUCKET_SLOTS 256

struct bucket {
	struct bucket *next;
	double tokens, at;
	char id[];
};

int
auth_load(struct http_src *s, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, errlen, "api-keys-file '%s': %s", path, strerror(errno));
		return -1;
	}
	struct stat sb;
	if (fstat(fileno(f), &sb) != 0) {
		snprintf(err, errlen, "api-keys-file '%s': %s", path, strerror(errno));
		fclose(f);
		return -1;
	}
	mode_t open_to = sb.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH);
	if (open_to != 0) {
		int grp = (open_to & (S_IRGRP | S_IWGRP)) != 0;
		int oth = (open_to & (S_IROTH | S_IWOTH)) != 0;
		int rd = (open_to & (S_IRGRP | S_IROTH)) != 0;
		int wr = (open_to & (S_IWGRP | S_IWOTH)) != 0;
		snprintf(err, errlen, "api-keys-file '%s' is %s by %s (mode %04o), but API "
		    "keys are secrets: make it private to its owner with chmod 600 %s",
		    path, rd && wr ? "readable and writable" : rd ? "readable" : "writable",
		    grp && oth ? "group and others" : grp ? "its group" : "others",
		    (unsigned)(sb.st_mode & 07777), path);
		fclose(f);
		return -1;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;
	while ((n = getline(&line, &cap, f)) >= 0) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' ||
		    line[n - 1] == ' ' || line[n - 1] == '\t'))
			line[--n] = '\0';
		char *k = line;
		while (*k == ' ' || *k == '\t')
			k++;
		if (*k == '\0' || *k == '#')
			continue;
		char **keys = realloc(s->keys, (s->n_keys + 1) * sizeof *keys);
		char *dup = strdup(k);
		if (keys == NULL || dup == NULL) {
			free(dup);
			if (keys != NULL)
				s->keys = keys;
			snprintf(err, errlen, "api-keys-file '%s': out of memory", path);
			rc = -1;
			break;
		}
		s->keys = keys;
		s->keys[s->n_keys++] = dup;
	}
	free(line);
	if (ferror(f) && rc == 0) {
		snprintf(err, errlen, "api-keys-file '%s': %s", path, strerror(errno));
		rc = -1;
	}
	fclose(f);
	if (rc == 0 && s->n_keys == 0) {
		snprintf(err, errlen, "api-keys-file '%s' holds no key", path);
		rc = -1;
	}
	return rc;
}

/* Equal, in time that depends only on the stored key's length. */
static int
key_equal(const char *given, size_t glen, const char *stored)
{
	size_t slen = strlen(stored);
	unsigned char diff = glen != slen;
	for (size_t i = 0; i < slen; i++) {
		unsigned char g = i < glen ? (unsigned char)given[i] : 0;
		diff |= g ^ (unsigned char)stored[i];
	}
	return diff == 0;
}

static uint64_t
fnv1a(const char *p)
{
	uint64_t h = 14695981039346656037ull;
	for (; *p; p++) {
		h ^= (unsigned char)*p;
		h *= 1099511628211ull;
	}
	return h;
}

/* Forgets buckets that are full again: they are as good as new. */
static void
buckets_sweep(struct http_src *s, double now)
{
	for (size_t i = 0; i < BUCKET_SLOTS; i++) {
		for (struct bucket **pp = &s->buckets[i]; *pp != NULL;) {
			struct bucket *b = *pp;
			if (b->tokens + (now - b->at) * s->rate >= s->burst) {
				*pp = b->next;
				free(b);
				s->n_buckets--;
			} else {
				pp = &b->next;
			}
		}
	}
}

/* Takes a token for id; returns 0, or the seconds until one is there. */
static double
rate_take(struct http_src *s, const char *id)
{
	double now = ev_now(s->w.loop);
	if (s->buckets == NULL && (s->buckets = calloc(BUCKET_SLOTS, sizeof *s->buckets)) == NULL)
		return 0; /* out of memory: do not refuse for it */
	struct bucket **slot = &s->buckets[fnv1a(id) % BUCKET_SLOTS];
	struct bucket *b;
	for (b = *slot; b != NULL; b = b->next)
		if (strcmp(b->id, id) == 0)
			break;
	if (b == NULL) {
		if (s->n_buckets >= BUCKETS_MAX)
			buckets_sweep(s, now);
		if (s->n_buckets >= BUCKETS_MAX)
			return 1; /* too many clients at once to keep apart */
		size_t len = strlen(id);
		b = malloc(sizeof *b + len + 1);
		if (b == NULL)
			return 0;
		memcpy(b->id, id, len + 1);
		b->tokens = s->burst;
		b->at = now;
		b->next = *slot;
		*slot = b;
		s->n_buckets++;
	}
	b->tokens += (now - b->at) * s->rate;
	if (b->tokens > s->burst)
		b->tokens = s->burst;
	b->at = now;
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
		return 0;
	}
	return (1.0 - b->tokens) / s->rate;
}

int
auth_check(struct http_src *s, struct hreq *h)
{
	const char *key = NULL;
	if (s->n_keys > 0) {
		const char *a = h->auth;
		if (a == NULL || strncasecmp(a, "Bearer ", 7) != 0) {
			answer_error_extra(h, 401, NULL, "invalid_api_key",
			    "WWW-Authenticate: Bearer\r\n", "no API key: send the header "
			    "'Authorization: Bearer KEY'");
			return -1;
		}
		key = a + 7;
		while (*key == ' ')
			key++;
		size_t klen = strlen(key);
		int match = 0;
		for (size_t i = 0; i < s->n_keys; i++)
			match |= key_equal(key, klen, s->keys[i]);
		if (!match) {
			answer_error_extra(h, 401, NULL, "invalid_api_key",
			    "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n",
			    "the API key is not valid");
			return -1;
		}
	}
	if (s->rate > 0) {
		const char *id = key != NULL ? key : wire_addr(&h->w);
		double wait = rate_take(s, id);
		if (wait > 0) {
			char extra[64];
			long long secs = (long long)ceil(wait);
			snprintf(extra, sizeof extra, "Retry-After: %lld\r\n", secs < 1 ? 1 : secs);
			char msg[160];
			snprintf(msg, sizeof msg, "too many requests: the limit is %g per second "
			    "with bursts of %g; try again in %lld s", s->rate, s->burst,
			    secs < 1 ? 1 : secs);
			answer_error_extra(h, 429, NULL, "rate_limit_exceeded", extra, msg);
			return -1;
		}
	}
	return 0;
}

void
auth_fini(struct http_src *s)
{
	for (size_t i = 0; i < s->n_keys; i++) {
		/* wipe before free: keys are secrets */
		volatile char *p = s->keys[i];
		while (*p)
			*p++ = 0;
		free(s->keys[i]);
	}
	free(s->keys);
	s->keys = NULL;
	s->n_keys = 0;
	if (s->buckets != NULL) {
		for (size_t i = 0; i < BUCKET_SLOTS; i++) {
			while (s->buckets[i] != NULL) {
				struct bucket *b = s->buckets[i];
				s->buckets[i] = b->next;
				free(b);
			}
		}
		free(s->buckets);
		s->buckets = NULL;
	}
}
