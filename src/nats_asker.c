/*
 * nats_asker.c -- a thread for the calls that wait for the server
 * (nats_asker.h).
 */
#include <pthread.h>
#include <stdlib.h>

#include "nats_asker.h"
#include "nats_conn.h"
#include "util.h"

struct ask {
	struct ask *next;
	uint64_t key;
	natsMsg *msg;
};

struct asker {
	struct conn *c;
	asker_job fn;
	void *ctx;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct ask *head, *tail;
	int stop;
};

int
asker_stopping(struct asker *a)
{
	pthread_mutex_lock(&a->mu);
	int stop = a->stop;
	pthread_mutex_unlock(&a->mu);
	return stop;
}

static void *
asker_main(void *arg)
{
	struct asker *a = arg;
	for (;;) {
		pthread_mutex_lock(&a->mu);
		while (a->head == NULL && !a->stop)
			pthread_cond_wait(&a->cv, &a->mu);
		struct ask *k = a->stop ? NULL : a->head;
		if (k != NULL) {
			a->head = k->next;
			if (a->head == NULL)
				a->tail = NULL;
		}
		pthread_mutex_unlock(&a->mu);
		if (k == NULL)
			break;
		struct qitem *it = xcalloc(1, sizeof *it);
		it->key = k->key;
		if (a->fn(a->ctx, k->msg, it) == 0)
			conn_push(a->c, it);
		else
			free(it);
		natsMsg_Destroy(k->msg);
		free(k);
	}
	return NULL;
}

struct asker *
asker_new(struct conn *c, asker_job fn, void *ctx)
{
	struct asker *a = xcalloc(1, sizeof *a);
	a->c = c;
	a->fn = fn;
	a->ctx = ctx;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	if (pthread_create(&a->th, NULL, asker_main, a) != 0) {
		pthread_mutex_destroy(&a->mu);
		pthread_cond_destroy(&a->cv);
		free(a);
		return NULL;
	}
	return a;
}

void
asker_ask(struct asker *a, uint64_t key, natsMsg *msg)
{
	struct ask *k = xcalloc(1, sizeof *k);
	k->key = key;
	k->msg = msg;
	pthread_mutex_lock(&a->mu);
	if (a->tail)
		a->tail->next = k;
	else
		a->head = k;
	a->tail = k;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

void
asker_free(struct asker *a)
{
	if (a == NULL)
		return;
	pthread_mutex_lock(&a->mu);
	a->stop = 1;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
	pthread_join(a->th, NULL);
	for (struct ask *k = a->head, *next; k != NULL; k = next) {
		next = k->next;
		natsMsg_Destroy(k->msg);
		free(k);
	}
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->cv);
	free(a);
}
