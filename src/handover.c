/*
 * handover.c -- what a graph passes to the graph that replaces it on
 * reload: listening sockets (kept by the runtime, shared by key) and idle
 * client connections (handed from a retiring source to its successor).
 *
 * The listeners are the process's: one table, under a lock, since with
 * threads every shard's graphs use it (a key is per shard: each shard
 * listens on its own socket, SO_REUSEPORT).  A socket stays open while a
 * stage of any graph holds it, so the old graph can let go of it after the
 * new one took it, and the kernel's accept queue is never closed under a
 * client during a reload.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "graph.h"
#include "handover.h"
#include "util.h"

struct listener {
	struct listener *next;
	unsigned shard;
	char *key;
	int fd;
	struct porch_stage **holders;
	size_t n_holders;
};

static struct listener *listeners;
static pthread_mutex_t listeners_lock = PTHREAD_MUTEX_INITIALIZER;

static struct listener *
find(unsigned shard, const char *key)
{
	for (struct listener *l = listeners; l != NULL; l = l->next)
		if (l->shard == shard && strcmp(l->key, key) == 0)
			return l;
	return NULL;
}

static void
hold(struct listener *l, porch_stage *st)
{
	for (size_t i = 0; i < l->n_holders; i++)
		if (l->holders[i] == st)
			return;
	l->holders = xrealloc(l->holders, (l->n_holders + 1) * sizeof *l->holders);
	l->holders[l->n_holders++] = st;
}

/* st lets go of l; the last holder closes it.  1 when l was freed. */
static int
let_go(struct listener *l, porch_stage *st)
{
	for (size_t i = 0; i < l->n_holders; i++) {
		if (l->holders[i] == st) {
			l->holders[i] = l->holders[--l->n_holders];
			break;
		}
	}
	if (l->n_holders > 0)
		return 0;
	struct listener **pp = &listeners;
	while (*pp != l)
		pp = &(*pp)->next;
	*pp = l->next;
	close(l->fd);
	free(l->holders);
	free(l->key);
	free(l);
	return 1;
}

int
porch_listener(porch_stage *st, const char *key)
{
	pthread_mutex_lock(&listeners_lock);
	struct listener *l = find(st->g->led->shard, key);
	if (l != NULL)
		hold(l, st);
	pthread_mutex_unlock(&listeners_lock);
	return l != NULL ? l->fd : -1;
}

int
porch_listener_first(porch_stage *st, const char *key)
{
	(void)st;
	pthread_mutex_lock(&listeners_lock);
	struct listener *l = find(0, key);
	int fd = l != NULL ? l->fd : -1;
	pthread_mutex_unlock(&listeners_lock);
	return fd;
}

void
porch_listener_keep(porch_stage *st, const char *key, int fd)
{
	pthread_mutex_lock(&listeners_lock);
	struct listener *l = find(st->g->led->shard, key);
	if (l != NULL && l->fd != fd) {
		/* the stage bound a second socket for a key: the newest wins */
		close(l->fd);
		l->fd = fd;
	}
	if (l == NULL) {
		l = xcalloc(1, sizeof *l);
		l->key = xstrdup(key);
		l->shard = st->g->led->shard;
		l->fd = fd;
		l->next = listeners;
		listeners = l;
	}
	hold(l, st);
	pthread_mutex_unlock(&listeners_lock);
}

void
porch_listener_release(porch_stage *st, const char *key)
{
	pthread_mutex_lock(&listeners_lock);
	struct listener *l = find(st->g->led->shard, key);
	if (l != NULL)
		let_go(l, st);
	pthread_mutex_unlock(&listeners_lock);
}

void
handover_release_graph(struct graph *g)
{
	pthread_mutex_lock(&listeners_lock);
	for (size_t i = 0; i < g->n_stages; i++) {
		porch_stage *st = &g->stages[i];
		for (struct listener *l = listeners, *next; l != NULL; l = next) {
			next = l->next;
			let_go(l, st);
		}
	}
	pthread_mutex_unlock(&listeners_lock);
}

int
porch_stage_handover(porch_stage *st, int fd, const void *bytes, size_t len)
{
	struct graph *to = st->g->led->current;
	if (to == NULL || to == st->g || to->draining)
		return -1;
	for (size_t i = 0; i < to->n_stages; i++) {
		porch_stage *succ = &to->stages[i];
		if (strcmp(succ->name, st->name) != 0)
			continue;
		if (strcmp(succ->d->name, st->d->name) != 0 || succ->d->adopt == NULL ||
		    !succ->inited || succ->finished)
			return -1;
		struct cb_frame saved = CB_STAGE(succ, "adopt", 0);
		int rc = succ->d->adopt(succ, fd, bytes, len);
		cb_leave(saved);
		return rc == 0 ? 0 : -1;
	}
	return -1;
}
