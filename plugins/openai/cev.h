/* cev.h -- libcurl's multi-socket interface driven by a libev loop. */
#ifndef PORCH_OPENAI_CEV_H
#define PORCH_OPENAI_CEV_H

#include <curl/curl.h>

struct ev_loop;
struct cev;

/*
 * A transfer has ended with `result`.  The easy handle is out of the multi
 * handle already, and libcurl is not running: the callee may add and
 * remove handles, and free this one.
 */
typedef void cev_done_fn(void *arg, CURL *easy, CURLcode result);

/*
 * Runs after every batch of libcurl work, once the ended transfers have
 * been handed to cev_done_fn: for what had to wait until libcurl returned
 * (adding or removing a handle asked for from inside a libcurl callback).
 */
typedef void cev_after_fn(void *arg);

/*
 * One multi handle on `loop`: an ev_io watcher per socket libcurl asks to
 * watch, one ev_timer for its timeouts.  NULL when out of memory.
 */
struct cev *cev_new(struct ev_loop *loop, cev_done_fn *done, cev_after_fn *after,
    void *arg);

/* The multi handle, for its options (connection limits). */
CURLM *cev_multi(const struct cev *cv);

/*
 * Whether libcurl is running (one of its callbacks is on the stack): then
 * adding or removing an easy handle must wait for cev_after_fn.
 */
int cev_busy(const struct cev *cv);

/* Starts a transfer; not while cev_busy.  CURLM_OK or libcurl's error. */
CURLMcode cev_add(struct cev *cv, CURL *easy);

/* Stops a transfer that has not ended; not while cev_busy. */
void cev_remove(struct cev *cv, CURL *easy);

/*
 * Frees the multi handle and the watchers.  Every easy handle must have
 * been removed; idle connections are closed.
 */
void cev_free(struct cev *cv);

#endif /* PORCH_OPENAI_CEV_H */
