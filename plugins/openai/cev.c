/*
 * cev.c -- libcurl's multi-socket interface driven by a libev loop.
 *
 * libcurl says which sockets to watch, for what (CURLMOPT_SOCKETFUNCTION),
 * and when it next needs to run (CURLMOPT_TIMERFUNCTION); we keep an ev_io
 * per socket and one ev_timer, and call curl_multi_socket_action when one
 * of them fires.  No threads, no polling: an idle worker costs nothing,
 * and every transfer of a worker shares one multi handle, so its
 * connections are reused.
 */
#include <stdlib.h>

#include <ev.h>

#include "cev.h"

/* One socket libcurl asked us to watch; libcurl keeps it as socketp. */
struct cev_sock {
	ev_io io;
	struct cev *cv;
	struct cev_sock *prev, *next;
};

struct cev {
	struct ev_loop *loop;
	CURLM *multi;
	ev_timer timer;
	struct cev_sock *socks;  /* every watcher, for cev_free */
	cev_done_fn *done;
	cev_after_fn *after;
	void *arg;
	int busy;                /* depth of curl_multi_socket_action calls */
};

/* Hands every ended transfer over, then runs the deferred work. */
static void
cev_harvest(struct cev *cv)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(cv->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		/* msg is invalid once its handle is removed: copy first */
		CURL *easy = msg->easy_handle;
		CURLcode result = msg->data.result;
		curl_multi_remove_handle(cv->multi, easy);
		cv->done(cv->arg, easy, result);
	}
	if (cv->after != NULL)
		cv->after(cv->arg);
}

static void
cev_action(struct cev *cv, curl_socket_t fd, int mask)
{
	int running;
	cv->busy++;
	/* an error here is about the multi handle itself; transfers that
	 * suffered from it end through curl_multi_info_read all the same */
	(void)curl_multi_socket_action(cv->multi, fd, mask, &running);
	cv->busy--;
	cev_harvest(cv);
}

static void
cev_on_io(struct ev_loop *loop, ev_io *io, int revents)
{
	struct cev_sock *sk = io->data;
	(void)loop;
	int mask = (revents & EV_READ ? CURL_CSELECT_IN : 0) |
	    (revents & EV_WRITE ? CURL_CSELECT_OUT : 0) |
	    (revents & EV_ERROR ? CURL_CSELECT_ERR : 0);
	cev_action(sk->cv, io->fd, mask);
}

static void
cev_on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	cev_action(t->data, CURL_SOCKET_TIMEOUT, 0);
}

static void
cev_sock_free(struct cev *cv, struct cev_sock *sk)
{
	ev_io_stop(cv->loop, &sk->io);
	if (sk->prev != NULL)
		sk->prev->next = sk->next;
	else
		cv->socks = sk->next;
	if (sk->next != NULL)
		sk->next->prev = sk->prev;
	free(sk);
}

/* CURLMOPT_SOCKETFUNCTION: watch s for `what`, or stop watching it. */
static int
cev_on_socket(CURL *easy, curl_socket_t s, int what, void *arg, void *socketp)
{
	struct cev *cv = arg;
	struct cev_sock *sk = socketp;
	(void)easy;

	if (what == CURL_POLL_REMOVE) {
		/* libcurl forgets socketp itself, and closes s only after this */
		if (sk != NULL)
			cev_sock_free(cv, sk);
		return 0;
	}
	int events = (what & CURL_POLL_IN ? EV_READ : 0) |
	    (what & CURL_POLL_OUT ? EV_WRITE : 0);
	if (sk == NULL) {
		if ((sk = calloc(1, sizeof *sk)) == NULL)
			return -1; /* libcurl fails the transfers on this socket */
		sk->cv = cv;
		sk->next = cv->socks;
		if (cv->socks != NULL)
			cv->socks->prev = sk;
		cv->socks = sk;
		ev_io_init(&sk->io, cev_on_io, s, events);
		sk->io.data = sk;
		if (curl_multi_assign(cv->multi, s, sk) != CURLM_OK) {
			cev_sock_free(cv, sk);
			return -1;
		}
	} else {
		ev_io_stop(cv->loop, &sk->io);
		ev_io_set(&sk->io, s, events);
	}
	if (events != 0)
		ev_io_start(cv->loop, &sk->io);
	return 0;
}

/*
 * CURLMOPT_TIMERFUNCTION: run libcurl in ms milliseconds (0: at the next
 * loop iteration, never from here), or not at all (-1).
 */
static int
cev_on_curl_timer(CURLM *multi, long ms, void *arg)
{
	struct cev *cv = arg;
	(void)multi;
	ev_timer_stop(cv->loop, &cv->timer);
	if (ms >= 0) {
		ev_timer_set(&cv->timer, (double)ms / 1000., 0.);
		ev_timer_start(cv->loop, &cv->timer);
	}
	return 0;
}

struct cev *
cev_new(struct ev_loop *loop, cev_done_fn *done, cev_after_fn *after, void *arg)
{
	struct cev *cv = calloc(1, sizeof *cv);
	if (cv == NULL)
		return NULL;
	if ((cv->multi = curl_multi_init()) == NULL) {
		free(cv);
		return NULL;
	}
	cv->loop = loop;
	cv->done = done;
	cv->after = after;
	cv->arg = arg;
	ev_timer_init(&cv->timer, cev_on_timer, 0., 0.);
	cv->timer.data = cv;
	curl_multi_setopt(cv->multi, CURLMOPT_SOCKETFUNCTION, cev_on_socket);
	curl_multi_setopt(cv->multi, CURLMOPT_SOCKETDATA, cv);
	curl_multi_setopt(cv->multi, CURLMOPT_TIMERFUNCTION, cev_on_curl_timer);
	curl_multi_setopt(cv->multi, CURLMOPT_TIMERDATA, cv);
	return cv;
}

CURLM *
cev_multi(const struct cev *cv)
{
	return cv->multi;
}

int
cev_busy(const struct cev *cv)
{
	return cv->busy > 0;
}

CURLMcode
cev_add(struct cev *cv, CURL *easy)
{
	/* libcurl answers through the timer callback: run it soon */
	return curl_multi_add_handle(cv->multi, easy);
}

void
cev_remove(struct cev *cv, CURL *easy)
{
	curl_multi_remove_handle(cv->multi, easy);
}

void
cev_free(struct cev *cv)
{
	if (cv == NULL)
		return;
	curl_multi_cleanup(cv->multi);
	/* libcurl may not have said CURL_POLL_REMOVE for every socket */
	while (cv->socks != NULL)
		cev_sock_free(cv, cv->socks);
	ev_timer_stop(cv->loop, &cv->timer);
	free(cv);
}
