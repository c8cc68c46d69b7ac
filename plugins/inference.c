/* inference.c -- stage: asks the stage's worker for a completion of the message text. */
#include <stdlib.h>
#include <string.h>

#include <porch/plugin.h>

/* Contexts allocated at a time when the free list is empty. */
#define HELD_PER_SLAB 64

/* An answer buffer larger than this is freed, not kept, when a call ends. */
#define ANSWER_KEEP (64 * 1024)

struct inference;

/*
 * One message held while its call runs.  The answer is gathered here and
 * becomes the message text only when the call succeeds: the prompt (the
 * message text) stays untouched while the worker may still be reading it,
 * and a failed message keeps its prompt, e.g. for a retry or a dead letter.
 */
struct held {
	struct held *next;      /* in the free list */
	struct inference *in;
	porch_msg *m;
	char *answer;
	size_t len, cap;
	int oom;                /* the answer could not be stored */
};

struct slab {
	struct slab *next;
	struct held held[HELD_PER_SLAB];
};

struct inference {
	porch_stage *st;
	struct held *free;      /* contexts ready for reuse */
	struct slab *slabs;     /* every context, for fini */
};

static struct held *
held_get(struct inference *in)
{
	if (in->free == NULL) {
		struct slab *sl = calloc(1, sizeof *sl);
		if (sl == NULL)
			return NULL;
		sl->next = in->slabs;
		in->slabs = sl;
		for (size_t i = 0; i < HELD_PER_SLAB; i++) {
			sl->held[i].in = in;
			sl->held[i].next = in->free;
			in->free = &sl->held[i];
		}
	}
	struct held *h = in->free;
	in->free = h->next;
	h->next = NULL;
	h->len = 0;
	h->oom = 0;
	return h;
}

static void
held_put(struct held *h)
{
	struct inference *in = h->in;
	if (h->cap > ANSWER_KEEP) {
		free(h->answer);
		h->answer = NULL;
		h->cap = 0;
	}
	h->m = NULL;
	h->next = in->free;
	in->free = h;
}

static void
inference_on_token(void *ctx, const char *token, size_t len)
{
	struct held *h = ctx;
	if (h->oom || len == 0)
		return;
	if (h->cap - h->len < len) {
		size_t cap = h->cap ? h->cap : 256;
		while (cap - h->len < len) {
			if (cap > (size_t)-1 / 2) {
				h->oom = 1;
				return;
			}
			cap *= 2;
		}
		char *a = realloc(h->answer, cap);
		if (a == NULL) {
			h->oom = 1;
			return;
		}
		h->answer = a;
		h->cap = cap;
	}
	memcpy(h->answer + h->len, token, len);
	h->len += len;
}

static void
inference_on_end(void *ctx, enum porch_error err, const char *why)
{
	struct held *h = ctx;
	porch_stage *st = h->in->st;
	porch_msg *m = h->m;

	if (err != PORCH_ERR_NONE) {
		held_put(h);
		porch_fail(st, m, err, "%s", why && *why ? why : porch_error_name(err));
		return;
	}
	/* no tokens: the answer is empty */
	int failed = h->oom || porch_msg_set_text(m, h->answer ? h->answer : "", h->len) != 0;
	held_put(h);
	if (failed) {
		porch_fail(st, m, PORCH_ERR_INTERNAL, "could not store the answer (out of memory)");
		return;
	}
	/* PORCH_REFUSED: the message has ended (shed or failed) and was counted */
	(void)porch_emit(st, m);
}

static void
inference_process(porch_stage *st, porch_msg *m)
{
	struct inference *in = porch_stage_data(st);
	struct held *h = held_get(in);
	if (h == NULL) {
		porch_fail(st, m, PORCH_ERR_INTERNAL, "out of memory");
		return;
	}
	h->m = m;
	/* the callbacks may run, and h be reused, before porch_infer returns */
	if (porch_infer(st, m, inference_on_token, inference_on_end, h) == NULL) {
		held_put(h);
		porch_fail(st, m, PORCH_ERR_INTERNAL, "could not start a call to the worker");
	}
}

static int
inference_init(porch_stage *st)
{
	struct inference *in = calloc(1, sizeof *in);
	if (in == NULL) {
		porch_stage_error(st, "out of memory");
		return -1;
	}
	in->st = st;
	porch_stage_set_data(st, in);
	return 0;
}

static void
inference_fini(porch_stage *st)
{
	struct inference *in = porch_stage_data(st);
	if (in == NULL)
		return;
	while (in->slabs != NULL) {
		struct slab *sl = in->slabs;
		in->slabs = sl->next;
		for (size_t i = 0; i < HELD_PER_SLAB; i++)
			free(sl->held[i].answer);
		free(sl);
	}
	free(in);
	porch_stage_set_data(st, NULL);
}

static const char *const inference_outputs[] = { "out", NULL };

const struct porch_plugin porch_plugin = {
	PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_STAGE,
	.name = "inference",
	.summary = "asks the stage's worker for a completion of the message text",
	.params = NULL,
	.flags = PORCH_STAGE_NEEDS_WORKER,
	.outputs = inference_outputs,
	.init = inference_init,
	.process = inference_process,
	.fini = inference_fini,
};
