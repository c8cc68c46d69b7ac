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
 * The buckets are the stage's, not an instance's: with threads every
 * shard's copy of the stage takes from the same ones (under a lock, taken
 * once per request when rate-limit is set), so a key's limit holds for
 * the process, and a reload's new copy goes on with them.
 */
#include <pthread.h>
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

/* The buckets of a stage (by name), shared by its instances. */
struct limiter {
	struct limiter *next;
	char *name;
	unsigned refs;
	pthread_mutex_t lock;
	struct bucket **buckets;
	size_t n_buckets;
};

static struct limiter *limiters;
static pthread_mutex_t limiters_lock = PTHREAD_MUTEX_INITIALIZER;

static struct limiter *
limiter_get(const char *name)
{
	pthread_mutex_lock(&limiters_lock);
	struct limiter *l;
	for (l = limiters; l != NULL; l = l->next)
		if (strcmp(l->name, name) == 0)
			break;
	if (l == NULL && (l = calloc(1, sizeof *l)) != NULL) {
		l->buckets = calloc(BUCKET_SLOTS, sizeof *l->buckets);
		l->name = strdup(name);
		if (l->buckets == NULL || l->name == NULL) {
			free(l->buckets);
			free(l->name);
			free(l);
			l = NULL;
		} else {
			pthread_mutex_init(&l->lock, NULL);
			l->next = limiters;
			limiters = l;
		}
	}
	if (l != NULL)
		l->refs++;
	pthread_mutex_unlock(&limiters_lock);
	return l;
}

static void
limiter_put(struct limiter *l)
{
	if (l == NULL)
		return;
	pthread_mutex_lock(&limiters_lock);
	if (--l->refs > 0) {
		pthread_mutex_unlock(&limiters_lock);
		return;
	}
	for (struct limiter **pp = &limiters; *pp != NULL; pp = &(*pp)->next)
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	pthread_mutex_unlock(&limiters_lock);
	for (size_t i = 0; i < BUCKET_SLOTS; i++) {
		while (l->buckets[i] != NULL) {
			struct bucket *b = l->buckets[i];
			l->buckets[i] = b->next;
			free(b);
		}
	}
	pthread_mutex_destroy(&l->lock);
	free(l->buckets);
	free(l->name);
	free(l);
}

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
buckets_sweep(struct http_src *s, struct limiter *l, double now)
{
	for (size_t i = 0; i < BUCKET_SLOTS; i++) {
		for (struct bucket **pp = &l->buckets[i]; *pp != NULL;) {
			struct bucket *b = *pp;
			if (b->tokens + (now - b->at) * s->rate >= s->burst) {
				*pp = b->next;
				free(b);
				l->n_buckets--;
			} else {
				pp = &b->next;
			}
		}
	}
}

static double bucket_take(struct http_src *s, struct limiter *l, const char *id,
    double now);

/* Takes a token for id; returns 0, or the seconds until one is there. */
static double
rate_take(struct http_src *s, const char *id)
{
	double now = ev_now(s->w.loop);
	if (s->lim == NULL && (s->lim = limiter_get(s->name)) == NULL)
		return 0; /* out of memory: do not refuse for it */
	struct limiter *l = s->lim;
	pthread_mutex_lock(&l->lock);
	double wait = bucket_take(s, l, id, now);
	pthread_mutex_unlock(&l->lock);
	return wait;
}

/* rate_take with l locked. */
static double
bucket_take(struct http_src *s, struct limiter *l, const char *id, double now)
{
	struct bucket **slot = &l->buckets[fnv1a(id) % BUCKET_SLOTS];
	struct bucket *b;
	for (b = *slot; b != NULL; b = b->next)
		if (strcmp(b->id, id) == 0)
			break;
	if (b == NULL) {
		if (l->n_buckets >= BUCKETS_MAX)
			buckets_sweep(s, l, now);
		if (l->n_buckets >= BUCKETS_MAX)
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
		l->n_buckets++;
	}
	/* each shard's loop has its own idea of now, a little behind or ahead */
	if (now > b->at) {
		b->tokens += (now - b->at) * s->rate;
		b->at = now;
	}
	if (b->tokens > s->burst)
		b->tokens = s->burst;
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
	limiter_put(s->lim);
	s->lim = NULL;
}
