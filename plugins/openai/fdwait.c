/*
 * fdwait.c -- no descriptor free for a connection: the call waits and
 * tries again, rather than failing as a transport error.
 *
 * A process at its ulimit -n (EMFILE), a system out of file table slots
 * (ENFILE) or of socket memory (ENOBUFS, ENOMEM) cannot open a socket now,
 * but will as soon as a connection somewhere in porch closes: a client's
 * answer written, a kept upstream connection dropped.  The server did
 * nothing wrong, and a retry by the stage (after its backoff, and counted
 * as a failed attempt) would be the wrong answer to a wait of a few
 * milliseconds.  So the worker waits: one timer for all its calls, 10 ms at
 * first, doubling to 200 ms while the shortage lasts, and then the calls
 * that found no descriptor try again, in the order they came (each
 * transport's retry).  A call gives up, failed as internal ("a bug or
 * resource exhaustion in porch", plugin.h), once it has waited
 * connect-timeout, the longest the worker waits for a connection; the
 * request's deadline, or the stage's timeout, cancels it sooner.
 *
 * The waits are counted (porch_worker_count: "fd_wait", and "fd_gave_up"
 * for calls that waited connect-timeout in vain), in the statistics and
 * /metrics, and logged, "porch: worker 'NAME': ...", at the first wait, at
 * most every 10 s while they go on, and in a total when the worker stops.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "call.h"

/* The first wait, and the longest: short, since a descriptor frees soon. */
#define OAI_FD_WAIT_MIN 0.010
#define OAI_FD_WAIT_MAX 0.200
/* Seconds between two lines in the log about waits that go on. */
#define OAI_FD_LOG_EVERY 10.0

int
oai_fd_short(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

static const char *
oai_errno_name(int err)
{
	switch (err) {
	case EMFILE: return "EMFILE";
	case ENFILE: return "ENFILE";
	case ENOBUFS: return "ENOBUFS";
	case ENOMEM: return "ENOMEM";
	}
	return "?";
}

/* What was short, for the log and the failure's text. */
static void
oai_fd_what(const struct oai *o, int err, char *out, size_t len)
{
	if (err == EMFILE) {
		struct rlimit rl;
		char lim[32] = "?";
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
			snprintf(lim, sizeof lim, "%llu", (unsigned long long)rl.rlim_cur);
		snprintf(out, len, "no file descriptor free for a connection to %s: EMFILE "
		    "(ulimit -n %s)", o->where, lim);
	} else if (err == ENFILE) {
		snprintf(out, len, "no file descriptor free for a connection to %s: ENFILE "
		    "(the system's file table is full)", o->where);
	} else {
		snprintf(out, len, "no memory for a socket to %s: %s (%s)", o->where,
		    oai_errno_name(err), strerror(err));
	}
}

static void
oai_on_fd_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct oai *o = t->data;
	(void)loop;
	(void)revents;
	o->io->retry(o);
}

void
oai_fd_init(struct oai *o)
{
	ev_init(&o->fd_timer, oai_on_fd_timer);
	o->fd_timer.data = o;
	o->fd_delay = OAI_FD_WAIT_MIN;
}

void
oai_fd_ok(struct oai *o)
{
	o->fd_delay = OAI_FD_WAIT_MIN;
}

int
oai_fd_wait(struct oai_call *cl, int err)
{
	struct oai *o = cl->o;
	ev_tstamp now = ev_now(o->loop);
	char what[400];
	/* the others that wait try again in any case; one timer for all, so
	 * the delay grows with each wait the shortage outlasts, not per call */
	if (!ev_is_active(&o->fd_timer)) {
		ev_timer_set(&o->fd_timer, o->fd_delay, 0.);
		ev_timer_start(o->loop, &o->fd_timer);
		o->fd_delay = o->fd_delay * 2 < OAI_FD_WAIT_MAX ? o->fd_delay * 2 : OAI_FD_WAIT_MAX;
	}
	if (cl->nofd_since == 0)
		cl->nofd_since = now;
	double waited = now - cl->nofd_since;
	oai_fd_what(o, err, what, sizeof what);
	if (waited * 1000. >= (double)o->connect_timeout_ms) {
		o->fd_gave_up++;
		porch_worker_count(o->w, "fd_gave_up", 1);
		oai_call_end(cl, PORCH_ERR_INTERNAL, "%s; waited %.0f ms (connect-timeout)", what,
		    waited * 1000.);
		return -1;
	}
	o->fd_waits++;
	porch_worker_count(o->w, "fd_wait", 1);
	if (o->fd_logged == 0 || now - o->fd_logged >= OAI_FD_LOG_EVERY) {
		o->fd_logged = now;
		porch_worker_log(o->w, PORCH_LOG_WARN, NULL, "%s; calls wait and try again "
		    "(%llu waits so far)", what,
		    (unsigned long long)o->fd_waits);
	}
	return 0;
}

void
oai_fd_fini(struct oai *o)
{
	ev_timer_stop(o->loop, &o->fd_timer);
	if (o->fd_waits > 0 || o->fd_gave_up > 0)
		porch_worker_log(o->w, PORCH_LOG_INFO, NULL, "%llu connections waited for a free "
		    "descriptor; %llu calls gave up after connect-timeout",
		    (unsigned long long)o->fd_waits,
		    (unsigned long long)o->fd_gave_up);
}

/* ---- curl's list of calls waiting ----------------------------------------- */

void
oai_fdq_push(struct oai_call *cl)
{
	struct oai *o = cl->o;
	cl->state = OAI_NOFD;
	cl->qnext = NULL;
	if (o->ftail != NULL)
		o->ftail->qnext = cl;
	else
		o->fhead = cl;
	o->ftail = cl;
}

struct oai_call *
oai_fdq_pop(struct oai *o)
{
	struct oai_call *cl = o->fhead;
	if (cl == NULL)
		return NULL;
	o->fhead = cl->qnext;
	if (o->fhead == NULL)
		o->ftail = NULL;
	cl->qnext = NULL;
	return cl;
}

void
oai_fdq_remove(struct oai_call *cl)
{
	struct oai *o = cl->o;
	struct oai_call **pp = &o->fhead, *prev = NULL;
	while (*pp != NULL && *pp != cl) {
		prev = *pp;
		pp = &(*pp)->qnext;
	}
	if (*pp == NULL)
		return;
	*pp = cl->qnext;
	if (o->ftail == cl)
		o->ftail = prev;
	cl->qnext = NULL;
}
