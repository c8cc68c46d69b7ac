/*
 * server.c -- the gRPC C-core server and the bridge from its completion
 * queue to the stage's libev loop.
 *
 * gRPC's C core reports every finished operation (a new call, a message
 * read, a batch of sends written, a call closed) as an event on a
 * completion queue, and it makes I/O progress only while a thread is in
 * grpc_completion_queue_next.  libev, on the other hand, wants every
 * callback on its own loop thread, and porch's API may only be called
 * there.  Two bridges:
 *
 * The loop poller (poller = loop, the default): the loop thread is gRPC's
 * only poller.  gRPC's default polling engine on Linux (epoll1) keeps one
 * epoll set for all its file descriptors, its wakeup fd included; libev
 * watches that epoll set's fd (readable: gRPC has I/O to do), and then,
 * and before the loop blocks after a batch was started on it, the loop
 * calls grpc_completion_queue_next with a deadline in the past until it
 * has nothing more (DRIVE_IDLE rounds without an event): each call does
 * gRPC's I/O for it (a non-blocking epoll_wait) and returns a completion,
 * whose handler runs there and then.  No thread hop: a call costs a
 * quarter to a half less CPU than with the poller thread (bench/grpc,
 * bench/RESULTS.md).
 * The C core gives no handle on its epoll set: its fd is read from the
 * line "grpc epoll fd: N" gRPC logs (at the INFO level) when it makes the
 * set, at grpc_init, with gRPC's log function ours for that call
 * (server_grpc_init).  What wakes no poller: a completion that another
 * of gRPC's threads makes (its timer thread ends a call whose deadline
 * passed) while the loop is not in gRPC finds no poller to kick, and epoll1
 * handles one event of an epoll_wait per call, keeping the others for the
 * next: a SAFETY_S timer, running while calls are open, looks at gRPC
 * for those.  The sources of a process share one completion queue (the
 * handlers of a tag's owner run; while a source stops, the others' events
 * wait in a list), as an epoll set is the process's; the sources are all on
 * the one loop (porch runs one).  Without the log line (another polling
 * engine, GRPC_POLL_STRATEGY) it is the poller thread.
 *
 * The poller thread (poller = thread): one thread per source does nothing
 * but wait in grpc_completion_queue_next; each event it gets (a tag and a
 * success flag) goes into a ring under a mutex, and ev_async_send wakes the
 * loop.  The loop's async callback takes the events out and runs each tag's
 * handler, on the loop thread: the handlers start the next batches
 * (grpc_call_start_batch is thread-safe), make messages and emit them.
 * The poller never touches a call or porch; the loop never blocks on gRPC.
 * Each completion is a hop between the two threads.
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
#include <strings.h>
#include <time.h>

#include <grpc/grpc_security.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include "gsrc.h"

/* Seconds fini lets calls that still have answers to send finish them. */
#define SHUTDOWN_GRACE 5
/* The loop poller: rounds without an event before it lets the loop block,
 * and the period of its look at gRPC while calls are open (seconds). */
#define DRIVE_IDLE 2
#define SAFETY_S 0.005

/* ---- grpc_init and gRPC's epoll set -------------------------------------- */

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static int grpc_epfd = -1;       /* gRPC's epoll set; -1: none seen */
static int log_min = -1;         /* the least severity GRPC_VERBOSITY prints */

static int
env_verbosity(void)
{
	const char *v = getenv("GRPC_VERBOSITY");
	if (v == NULL)
		return GPR_LOG_SEVERITY_ERROR;
	if (strcasecmp(v, "DEBUG") == 0)
		return GPR_LOG_SEVERITY_DEBUG;
	if (strcasecmp(v, "INFO") == 0)
		return GPR_LOG_SEVERITY_INFO;
	if (strcasecmp(v, "NONE") == 0)
		return GPR_LOG_SEVERITY_ERROR + 1;
	return GPR_LOG_SEVERITY_ERROR;
}

/* gRPC's log lines, on stderr as its own function writes them, those
 * GRPC_VERBOSITY asks for (ERROR by default) */
static void
plain_log(gpr_log_func_args *a)
{
	if ((int)a->severity < log_min)
		return;
	fprintf(stderr, "grpc %s %s:%d] %s\n", gpr_log_severity_string(a->severity),
	    a->file, a->line, a->message);
}

/* the same, and the epoll set's fd from the line that reports it */
static void
catch_epfd(gpr_log_func_args *a)
{
	int fd;
	if (sscanf(a->message, "grpc epoll fd: %d", &fd) == 1)
		grpc_epfd = fd;
	else
		plain_log(a);
}

void
server_grpc_init(void)
{
	pthread_mutex_lock(&init_lock);
	if (log_min < 0)
		log_min = env_verbosity();
	/* the line is INFO: let it through for this call (gRPC makes the set
	 * at its first grpc_init, and again after a grpc_shutdown that ended
	 * it); plain_log keeps the rest to what GRPC_VERBOSITY asks */
	gpr_set_log_verbosity(GPR_LOG_SEVERITY_DEBUG);
	gpr_set_log_function(catch_epfd);
	grpc_init();
	gpr_set_log_function(plain_log);
	gpr_set_log_verbosity(log_min > GPR_LOG_SEVERITY_ERROR ? GPR_LOG_SEVERITY_ERROR :
	    (gpr_log_severity)log_min);
	pthread_mutex_unlock(&init_lock);
}

/* ---- the loop poller ------------------------------------------------------- */

static struct {
	struct ev_loop *loop;
	grpc_completion_queue *cq;  /* shared by the sources it polls for */
	unsigned users;             /* sources using it */
	unsigned calls;             /* calls open in them */
	int poked;                  /* a batch was started since the last drive */
	ev_io io;                   /* on gRPC's epoll set */
	ev_prepare prepare;
	ev_timer safety;
	struct gevent *later;       /* the others' events while a source stops */
	size_t n_later, cap_later;
	struct gcall *flush;        /* calls with tokens to send (server_flush_later) */
} drv;

static void
run_event(struct gtag *t, int ok)
{
	t->fn(t, ok);
}

/* Runs the events kept for later: all of them, or those of one source. */
static void
run_later(struct gsrc *only)
{
	size_t i = 0;
	while (i < drv.n_later) {
		struct gevent e = drv.later[i];
		if (only != NULL && e.tag->owner != only) {
			i++;
			continue;
		}
		memmove(&drv.later[i], &drv.later[i + 1], (drv.n_later - i - 1) * sizeof e);
		drv.n_later--;
		run_event(e.tag, e.ok);
	}
}

static void
keep_for_later(grpc_event ev)
{
	if (drv.n_later == drv.cap_later) {
		size_t cap = drv.cap_later ? 2 * drv.cap_later : 64;
		struct gevent *e = realloc(drv.later, cap * sizeof *e);
		if (e == NULL) {
			run_event(ev.tag, ev.success); /* rather than lose it */
			return;
		}
		drv.later = e;
		drv.cap_later = cap;
	}
	drv.later[drv.n_later++] = (struct gevent){ ev.tag, ev.success };
}

/* Polls gRPC and runs what completes, until DRIVE_IDLE rounds bring nothing. */
static void
drive(void)
{
	drv.poked = 0;
	if (drv.n_later > 0)
		run_later(NULL);
	int idle = 0;
	while (idle < DRIVE_IDLE && drv.cq != NULL) {
		grpc_event ev = grpc_completion_queue_next(drv.cq,
		    gpr_inf_past(GPR_CLOCK_MONOTONIC), NULL);
		if (ev.type != GRPC_OP_COMPLETE) {
			idle++;
			continue;
		}
		idle = 0;
		run_event(ev.tag, ev.success);
	}
	drv.poked = 0; /* what the handlers started was looked at */
}

static void
on_epfd(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop; (void)w; (void)revents;
	drive();
}

static void
on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
	(void)loop; (void)w; (void)revents;
	while (drv.flush != NULL) {
		struct gcall *c = drv.flush;
		drv.flush = c->next_flush;
		c->next_flush = NULL;
		c->flush_queued = 0;
		call_flush(c);
		call_release(c);
	}
	if (drv.poked)
		drive();
}

int
server_flush_later(struct gcall *c)
{
	if (!c->s->loop_poller)
		return -1;
	if (!c->flush_queued) {
		c->flush_queued = 1;
		call_hold(c);
		c->next_flush = drv.flush;
		drv.flush = c;
	}
	return 0;
}

static void
on_safety(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)revents;
	drive();
	if (drv.calls == 0)
		ev_timer_stop(loop, w);
}

void
server_poke(void)
{
	drv.poked = 1;
}

void
server_call_opened(void)
{
	drv.calls++;
	if (drv.cq != NULL && !ev_is_active(&drv.safety))
		ev_timer_start(drv.loop, &drv.safety);
}

void
server_call_closed(void)
{
	drv.calls--;
}

/* Takes s on; 0, or -1 when it is not for the loop poller. */
static int
drv_attach(struct gsrc *s)
{
	if (s->want_thread || grpc_epfd < 0 || (drv.users > 0 && drv.loop != s->loop))
		return -1;
	if (drv.users == 0) {
		drv.cq = grpc_completion_queue_create_for_next(NULL);
		drv.loop = s->loop;
		ev_io_init(&drv.io, on_epfd, grpc_epfd, EV_READ);
		ev_io_start(drv.loop, &drv.io);
		ev_prepare_init(&drv.prepare, on_prepare);
		ev_prepare_start(drv.loop, &drv.prepare);
		ev_timer_init(&drv.safety, on_safety, SAFETY_S, SAFETY_S);
	}
	drv.users++;
	s->cq = drv.cq;
	s->loop_poller = 1;
	return 0;
}

/* Lets s go; the last source ends the queue and the watchers. */
static void
drv_detach(struct gsrc *s)
{
	if (!s->loop_poller)
		return;
	s->loop_poller = 0;
	s->cq = NULL;
	if (--drv.users > 0)
		return;
	ev_io_stop(drv.loop, &drv.io);
	ev_prepare_stop(drv.loop, &drv.prepare);
	ev_timer_stop(drv.loop, &drv.safety);
	grpc_completion_queue *cq = drv.cq;
	drv.cq = NULL;
	grpc_completion_queue_shutdown(cq);
	while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME),
	    NULL).type != GRPC_QUEUE_SHUTDOWN)
		; /* no source is left to take an event */
	grpc_completion_queue_destroy(cq);
	drv.n_later = 0;
	free(drv.later);
	drv.later = NULL;
	drv.cap_later = 0;
}

/* server_stop's wait: polls gRPC until cond(s) or the time limit, running
 * s's handlers and keeping the other sources' events for later. */
static void
drv_wait(struct gsrc *s, int (*cond)(struct gsrc *), double limit_s)
{
	run_later(s);
	gpr_timespec until = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
	    gpr_time_from_millis((int64_t)(limit_s * 1000), GPR_TIMESPAN));
	while (!cond(s)) {
		grpc_event ev = grpc_completion_queue_next(drv.cq, until, NULL);
		if (ev.type != GRPC_OP_COMPLETE)
			return;
		struct gtag *t = ev.tag;
		if (t->owner == s)
			run_event(t, ev.success);
		else
			keep_for_later(ev);
	}
}

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
	a->tag.owner = s;
	a->s = s;
	a->call = NULL;
	grpc_call_details_init(&a->details);
	grpc_metadata_array_init(&a->md);
	server_poke();
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
	if (drv_attach(s) != 0)
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
		if (s->loop_poller) {
			drv_detach(s);
			return -1;
		}
		grpc_completion_queue_shutdown(s->cq);
		while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME),
		    NULL).type != GRPC_QUEUE_SHUTDOWN)
			;
		grpc_completion_queue_destroy(s->cq);
		s->cq = NULL;
		return -1;
	}
	grpc_server_start(s->server);
	if (s->loop_poller) {
		for (int i = 0; i < GSRC_ACCEPTS; i++)
			server_accept(s, &s->accepts[i]);
		return 0;
	}
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
	s->shutdown_tag.owner = s;
	server_poke();
	grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
}

/* Stops taking calls, once: on_shutdown comes when the open ones ended. */
static void
shutdown_begin(struct gsrc *s)
{
	if (s->shutdown_started)
		return;
	s->shutdown_started = 1;
	s->shutdown_tag.fn = on_shutdown;
	s->shutdown_tag.owner = s;
	grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
}

void
server_stop(struct gsrc *s)
{
	if (s->server == NULL)
		return;
	if (s->loop_poller) {
		health_end_watches(s);
		/* tokens kept for the loop's next turn go now, then */
		for (struct gcall **pp = &drv.flush; *pp != NULL;) {
			struct gcall *c = *pp;
			if (c->s != s) {
				pp = &c->next_flush;
				continue;
			}
			*pp = c->next_flush;
			c->next_flush = NULL;
			c->flush_queued = 0;
			call_flush(c);
			call_release(c);
		}
		/* answers already queued go out first */
		drv_wait(s, no_sends_left, SHUTDOWN_GRACE);
		s->stopping = 1;
		shutdown_begin(s);
		grpc_server_cancel_all_calls(s->server);
		drv_wait(s, is_shut_down, 3600);
		grpc_server_destroy(s->server);
		s->server = NULL;
		drv_detach(s);
		return;
	}
	if (s->poller_running) {
		ev_async_stop(s->loop, &s->async);
		health_end_watches(s);
		/* answers already queued go out first */
		wait_events(s, no_sends_left, SHUTDOWN_GRACE);
		s->stopping = 1;
		shutdown_begin(s);
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
