/*
 * server.c -- the gRPC C-core server and the bridge from its completion
 * queue to the stage's libev loop.
 *
 * gRPC's C core reports every finished operation (a new call, a message
 * read, a batch of sends written, a call closed) as an event on a
 * completion queue, and it makes I/O progress only while a thread waits in
 * grpc_completion_queue_next.  libev, on the other hand, wants every
 * callback on its own loop thread, and porch's API may only be called
 * there.  The bridge: one poller thread per source does nothing but wait
 * in grpc_completion_queue_next; each event it gets (a tag and a success
 * flag) goes into a ring under a mutex, and ev_async_send wakes the loop.
 * The loop's async callback takes the events out and runs each tag's
 * handler, on the loop thread: the handlers start the next batches
 * (grpc_call_start_batch is thread-safe), make messages and emit them.
 * The poller never touches a call or porch; the loop never blocks on gRPC.
 *
 * A reload (server_retire): grpc_server_shutdown_and_notify at once, so
 * the port's new connections go to the new pipeline's server (both listen
 * on it with SO_REUSEPORT), while the calls open here run to their end.
 *
 * Shutdown (server_stop, from the fini callback): the watchers of health
 * are ended, grpc_server_shutdown_and_notify stops taking calls and waits
 * for those open to end (ended at once with grpc_server_cancel_all_calls
 * after a grace of SHUTDOWN_GRACE seconds, so answers already queued go
 * out), the loop's handlers run here meanwhile (the loop is not running),
 * then the queue is shut down, the thread joined, and the server
 * destroyed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "gsrc.h"

/* Seconds fini lets calls that still have answers to send finish them. */
#define SHUTDOWN_GRACE 5

static void *
poller_main(void *arg)
{
	struct gsrc *s = arg;
	for (;;) {
		grpc_event ev = grpc_completion_queue_next(s->cq,
		    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		pthread_mutex_lock(&s->lock);
		if (s->ev_n == s->ev_cap) {
			/* grow the ring: unwrap it into a larger array */
			size_t cap = s->ev_cap ? 2 * s->ev_cap : 256;
			struct gevent *e = malloc(cap * sizeof *e);
			if (e == NULL) {
				/* cannot drop an event: its call would never end */
				pthread_mutex_unlock(&s->lock);
				struct timespec ts = { 0, 1000000 };
				nanosleep(&ts, NULL);
				pthread_mutex_lock(&s->lock);
				if (s->ev_n == s->ev_cap) {
					pthread_mutex_unlock(&s->lock);
					continue; /* lost; gRPC out of memory soon too */
				}
			} else {
				for (size_t i = 0; i < s->ev_n; i++)
					e[i] = s->events[(s->ev_head + i) % s->ev_cap];
				free(s->events);
				s->events = e;
				s->ev_head = 0;
				s->ev_cap = cap;
			}
		}
		s->events[(s->ev_head + s->ev_n) % s->ev_cap] =
		    (struct gevent){ ev.tag, ev.success };
		s->ev_n++;
		pthread_cond_signal(&s->cond);
		pthread_mutex_unlock(&s->lock);
		ev_async_send(s->loop, &s->async);
	}
	return NULL;
}

/* Runs the handlers of the events that are waiting; returns how many. */
static size_t
dispatch(struct gsrc *s)
{
	size_t n = 0;
	for (;;) {
		pthread_mutex_lock(&s->lock);
		if (s->ev_n == 0) {
			pthread_mutex_unlock(&s->lock);
			return n;
		}
		struct gevent e = s->events[s->ev_head];
		s->ev_head = (s->ev_head + 1) % s->ev_cap;
		s->ev_n--;
		pthread_mutex_unlock(&s->lock);
		e.tag->fn(e.tag, e.ok);
		n++;
	}
}

static void
on_async(struct ev_loop *loop, ev_async *w, int revents)
{
	(void)loop;
	(void)revents;
	dispatch(w->data);
}

/* ---- new calls ----------------------------------------------------------- */

static void
on_accept(struct gtag *t, int ok)
{
	struct gaccept *a = (struct gaccept *)t;
	struct gsrc *s = a->s;
	if (!ok || a->call == NULL) {
		/* the server is shutting down */
		grpc_call_details_destroy(&a->details);
		grpc_metadata_array_destroy(&a->md);
		return;
	}
	grpc_call *call = a->call;
	struct gcall *c = s->stopping ? NULL : call_new(s, call, &a->details);
	if (c == NULL) {
		grpc_call_cancel_with_status(call, GRPC_STATUS_UNAVAILABLE,
		    "porch is shutting down", NULL);
		grpc_call_unref(call);
	}
	grpc_call_details_destroy(&a->details);
	grpc_metadata_array_destroy(&a->md);
	if (!s->stopping)
		server_accept(s, a);
}

void
server_accept(struct gsrc *s, struct gaccept *a)
{
	a->tag.fn = on_accept;
	a->s = s;
	a->call = NULL;
	grpc_call_details_init(&a->details);
	grpc_metadata_array_init(&a->md);
	grpc_call_error e = grpc_server_request_call(s->server, &a->call, &a->details, &a->md,
	    s->cq, s->cq, &a->tag);
	if (e != GRPC_CALL_OK) {
		porch_stage_log(s->st, "cannot ask gRPC for new calls (error %d)", (int)e);
		grpc_call_details_destroy(&a->details);
		grpc_metadata_array_destroy(&a->md);
	}
}

static void
on_shutdown(struct gtag *t, int ok)
{
	(void)ok;
	struct gsrc *s = (struct gsrc *)((char *)t - offsetof(struct gsrc, shutdown_tag));
	s->shutdown_done = 1;
}

/* ---- start and stop ------------------------------------------------------ */

/* The whole of a small file, NUL-ended and malloc'ed; NULL and err if not. */
static char *
read_file(const char *path, const char *what, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, errlen, "%s '%s': %s", what, path, strerror(errno));
		return NULL;
	}
	size_t cap = 4096, len = 0;
	char *p = malloc(cap);
	while (p != NULL) {
		if (len + 1 >= cap) {
			char *q = cap < (1u << 20) ? realloc(p, cap * 2) : NULL;
			if (q == NULL) {
				free(p);
				p = NULL;
				break;
			}
			p = q;
			cap *= 2;
		}
		size_t n = fread(p + len, 1, cap - 1 - len, f);
		len += n;
		if (n == 0)
			break;
	}
	int bad = ferror(f);
	fclose(f);
	if (p == NULL || bad) {
		free(p);
		snprintf(err, errlen, "%s '%s': %s", what, path, bad ? "read error" :
		    "too large (at most 1 MiB)");
		return NULL;
	}
	p[len] = '\0';
	if (strstr(p, "-----BEGIN ") == NULL) {
		free(p);
		snprintf(err, errlen, "%s '%s': not a PEM file (no -----BEGIN line)", what, path);
		return NULL;
	}
	return p;
}

int
server_start(struct gsrc *s, const char *listen, const char *cert, const char *key,
    char *err, size_t errlen)
{
	grpc_arg args[3];
	size_t n_args = 0;
	args[n_args].type = GRPC_ARG_INTEGER;
	args[n_args].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	args[n_args++].value.integer = (int)s->max_recv;
	args[n_args].type = GRPC_ARG_INTEGER;
	args[n_args].key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
	args[n_args++].value.integer = (int)s->max_send;
	grpc_channel_args cargs = { n_args, args };

	grpc_server_credentials *creds;
	if (cert != NULL) {
		char *c = read_file(cert, "tls-cert", err, errlen);
		char *k = c ? read_file(key, "tls-key", err, errlen) : NULL;
		if (k == NULL) {
			free(c);
			return -1;
		}
		grpc_ssl_pem_key_cert_pair pair = { k, c };
		creds = grpc_ssl_server_credentials_create(NULL, &pair, 1, 0, NULL);
		free(c);
		free(k);
		if (creds == NULL) {
			snprintf(err, errlen, "tls-cert '%s' and tls-key '%s': gRPC refused them",
			    cert, key);
			return -1;
		}
	} else {
		creds = grpc_insecure_server_credentials_create();
	}
	s->cq = grpc_completion_queue_create_for_next(NULL);
	s->server = grpc_server_create(&cargs, NULL);
	grpc_server_register_completion_queue(s->server, s->cq, NULL);
	s->port = grpc_server_add_http2_port(s->server, listen, creds);
	grpc_server_credentials_release(creds);
	if (s->port <= 0) {
		snprintf(err, errlen, "cannot listen on %s: the address is in use, not local "
		    "or not HOST:PORT%s", listen, cert ? ", or the certificate and key do not "
		    "match or are not valid PEM" : "");
		grpc_server_destroy(s->server);
		s->server = NULL;
		grpc_completion_queue_shutdown(s->cq);
		while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME),
		    NULL).type != GRPC_QUEUE_SHUTDOWN)
			;
		grpc_completion_queue_destroy(s->cq);
		s->cq = NULL;
		return -1;
	}
	grpc_server_start(s->server);
	ev_async_init(&s->async, on_async);
	s->async.data = s;
	ev_async_start(s->loop, &s->async);
	if (pthread_create(&s->poller, NULL, poller_main, s) != 0) {
		snprintf(err, errlen, "cannot start the poller thread: %s", strerror(errno));
		ev_async_stop(s->loop, &s->async);
		server_stop(s);
		return -1;
	}
	s->poller_running = 1;
	for (int i = 0; i < GSRC_ACCEPTS; i++)
		server_accept(s, &s->accepts[i]);
	return 0;
}

/* Waits for events until cond(s) or the time limit; runs their handlers. */
static void
wait_events(struct gsrc *s, int (*cond)(struct gsrc *), double limit_s)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)limit_s;
	while (!cond(s)) {
		pthread_mutex_lock(&s->lock);
		int timed_out = 0;
		while (s->ev_n == 0 && !timed_out)
			timed_out = pthread_cond_timedwait(&s->cond, &s->lock, &until) == ETIMEDOUT;
		pthread_mutex_unlock(&s->lock);
		dispatch(s);
		if (timed_out)
			return;
	}
}

static int
no_sends_left(struct gsrc *s)
{
	for (struct gcall *c = s->calls; c != NULL; c = c->next)
		if (c->status_set && !c->status_sent && !c->closed)
			return 0;
	return 1;
}

static int
is_shut_down(struct gsrc *s)
{
	return s->shutdown_done;
}

void
server_retire(struct gsrc *s)
{
	if (s->server == NULL || s->shutdown_started)
		return;
	/* a watcher sees its stream end, and watches the new pipeline */
	health_end_watches(s);
	s->shutdown_started = 1;
	s->shutdown_tag.fn = on_shutdown;
	grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
}

void
server_stop(struct gsrc *s)
{
	if (s->server == NULL)
		return;
	if (s->poller_running) {
		ev_async_stop(s->loop, &s->async);
		health_end_watches(s);
		/* answers already queued go out first */
		wait_events(s, no_sends_left, SHUTDOWN_GRACE);
		s->stopping = 1;
		if (!s->shutdown_started) {
			s->shutdown_started = 1;
			s->shutdown_tag.fn = on_shutdown;
			grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
		}
		grpc_server_cancel_all_calls(s->server);
		wait_events(s, is_shut_down, 3600);
	}
	grpc_server_destroy(s->server);
	s->server = NULL;
	grpc_completion_queue_shutdown(s->cq);
	if (s->poller_running) {
		pthread_join(s->poller, NULL);
		s->poller_running = 0;
		dispatch(s);
	}
	grpc_completion_queue_destroy(s->cq);
	s->cq = NULL;
	free(s->events);
	s->events = NULL;
	s->ev_n = s->ev_cap = 0;
}
