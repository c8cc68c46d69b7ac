/*
 * shared.c -- porch_shared: read-only state a plugin builds once per
 * process and every copy of its stage reads (threads: one copy a shard;
 * reload: the old and the new pipeline's).
 *
 * One table for the process, under a lock: it is touched when a stage is
 * initialised or its pipeline freed, never per message.  An entry is
 * built by its first caller with the lock held, so a second caller of the
 * same key (another shard initialising at once) waits and gets the same
 * object; a failed build leaves no entry, and the next caller tries again.
 * Each stage holding an entry is listed, so a pipeline being freed lets go
 * of what its stages took, and the last one frees the object.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "shared.h"
#include "util.h"

struct shared {
	struct shared *next;
	char *key;
	void *obj;
	porch_shared_free_fn *release;
	struct porch_stage **holders;
	size_t n_holders;
};

static struct shared *table;
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

void *
porch_shared(porch_stage *st, const char *key, porch_shared_build_fn *build,
    porch_shared_free_fn *release, void *arg, char *err, size_t errlen)
{
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	pthread_mutex_lock(&table_lock);
	struct shared *e;
	for (e = table; e != NULL; e = e->next)
		if (strcmp(e->key, key) == 0)
			break;
	if (e == NULL) {
		void *obj = build(arg, err, errlen);
		if (obj == NULL) {
			if (err != NULL && errlen > 0 && err[0] == '\0')
				snprintf(err, errlen, "could not build the shared state '%s'", key);
			pthread_mutex_unlock(&table_lock);
			return NULL;
		}
		e = xcalloc(1, sizeof *e);
		e->key = xstrdup(key);
		e->obj = obj;
		e->release = release;
		e->next = table;
		table = e;
	}
	e->holders = xrealloc(e->holders, (e->n_holders + 1) * sizeof *e->holders);
	e->holders[e->n_holders++] = st;
	void *obj = e->obj;
	pthread_mutex_unlock(&table_lock);
	return obj;
}

void
shared_release_graph(struct graph *g)
{
	pthread_mutex_lock(&table_lock);
	for (struct shared **pp = &table; *pp != NULL;) {
		struct shared *e = *pp;
		for (size_t i = 0; i < e->n_holders;) {
			struct porch_stage *st = e->holders[i];
			if (st >= g->stages && st < g->stages + g->n_stages)
				e->holders[i] = e->holders[--e->n_holders];
			else
				i++;
		}
		if (e->n_holders > 0) {
			pp = &e->next;
			continue;
		}
		*pp = e->next;
		if (e->release != NULL)
			e->release(e->obj);
		free(e->holders);
		free(e->key);
		free(e);
	}
	pthread_mutex_unlock(&table_lock);
}
