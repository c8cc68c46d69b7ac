/*
 * nats_recheck.c -- is a message still in its stream? (nats_recheck.h)
 *
 * Publishes go out asynchronously and the loop hears only of failures
 * (nats_conn.c): a publish JetStream takes costs nothing more.  That
 * leaves two cases where the sender must know what JetStream did:
 *
 * After the connection was away.  Core NATS is at most once: an answer
 * sent home meanwhile is lost, and the worker node acked the message
 * after sending it, so the stream no longer holds it.  Published again
 * with the same Nats-Msg-Id, such a message is dropped by JetStream's
 * dedupe window (its PubAck says Duplicate, with the stored copy's
 * sequence) and never answered.  So every request still waiting is
 * published again here, synchronously: a new store, or a duplicate whose
 * sequence js_GetMsg still finds, will be answered (HELD); a duplicate
 * whose copy is gone was worked on and its answer lost (GONE): the loop
 * publishes it with a new id, and a second answer that comes anyway is
 * dropped as late.  Gone means acked or deleted: a copy deleted by a
 * drop-oldest sender had its shed outcome sent home and lost too.
 *
 * A blocked sender (overflow block, stream full) holds the source back at
 * its first refused message until that one is stored: it needs to hear a
 * success, one message at a time.
 *
 * Both wait for the server, so they run on a thread of their own per
 * sending end (nats_asker.c), as drop-oldest does (nats_evict.c).
 */
#include <stdlib.h>

#include "nats.h"
#include "nats_asker.h"
#include "nats_conn.h"
#include "nats_recheck.h"
#include "util.h"

/* How long a check waits before asking a server that did not answer again. */
#define RECHECK_AGAIN_MS 250

struct recheck {
	struct conn *c;
	const struct nats_chan *ch;
	struct asker *a;
};

/* One check, into it; 0, or -1 when stopped before the server answered. */
static int
check_one(struct recheck *rc, natsMsg *msg, struct qitem *it)
{
	for (;;) {
		jsPubAck *pa = NULL;
		jsErrCode je = 0;
		natsStatus s = js_PublishMsg(&pa, rc->c->js, msg, NULL, &je);
		if (s == NATS_OK) {
			int dup = pa->Duplicate;
			uint64_t seq = pa->Sequence;
			jsPubAck_Destroy(pa);
			it->st = NATS_OK;
			it->errcode = RECHECK_HELD;
			if (!dup)
				return 0;
			natsMsg *got = NULL;
			s = js_GetMsg(&got, rc->c->js, rc->ch->stream, seq, NULL, &je);
			natsMsg_Destroy(got);
			if (s == NATS_OK)
				return 0;
			if (je == JSNoMessageFoundErr || s == NATS_NOT_FOUND) {
				it->errcode = RECHECK_GONE;
				return 0;
			}
		} else if (je != 0) {
			/* refused (a full stream): the loop's usual ways */
			it->st = s;
			it->errcode = (int)je;
			return 0;
		}
		/* no answer (the server away again, a timeout): again */
		if (asker_stopping(rc->a))
			return -1;
		nats_Sleep(RECHECK_AGAIN_MS);
		if (asker_stopping(rc->a))
			return -1;
	}
}

/* A job of the asker's: one message checked. */
static int
recheck_job(void *ctx, natsMsg *msg, struct qitem *it)
{
	it->kind = Q_CHECKED;
	return check_one(ctx, msg, it);
}

struct recheck *
recheck_new(struct conn *c, const struct nats_chan *ch)
{
	struct recheck *rc = xcalloc(1, sizeof *rc);
	rc->c = c;
	rc->ch = ch;
	if ((rc->a = asker_new(c, recheck_job, rc)) == NULL) {
		free(rc);
		return NULL;
	}
	return rc;
}

void
recheck_ask(struct recheck *rc, uint64_t key, natsMsg *msg)
{
	asker_ask(rc->a, key, msg);
}

void
recheck_free(struct recheck *rc)
{
	if (rc == NULL)
		return;
	asker_free(rc->a);
	free(rc);
}
