/*
 * crash.h -- what was running when porch died: the current plugin callback.
 *
 * Around every call into a plugin the runtime sets a small record (stage or
 * worker, its plugin and file, the callback, the request) and puts the
 * previous one back after: a few stores, no allocation, no system call.
 * A fatal signal (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) prints it on
 * one line and then dies by that signal as it would have (a core dump).
 *
 *	struct cb_frame saved = cb_stage(st, "process", m->id);
 *	st->d->process(st, m);
 *	cb_leave(saved);
 */
#ifndef PORCH_CRASH_H
#define PORCH_CRASH_H

#include <stdint.h>

struct cb_frame {
	const char *kind;      /* "stage", "worker" or "plugin"; NULL: none */
	const char *name;      /* the stage's or worker's name */
	const char *plugin;    /* the plugin's name */
	const char *path;      /* its .so */
	const char *callback;  /* "process", "submit", ... */
	uint64_t request;      /* the request's id, 0: none */
};

/* The loop thread's record: initial-exec TLS, so a store is one
 * instruction and the signal handler reads it without a call. */
extern _Thread_local struct cb_frame cb_now __attribute__((tls_model("initial-exec")));

static inline struct cb_frame
cb_set(const char *kind, const char *name, const char *plugin, const char *path,
    const char *callback, uint64_t request)
{
	struct cb_frame prev = cb_now;
	cb_now.kind = kind;
	cb_now.name = name;
	cb_now.plugin = plugin;
	cb_now.path = path;
	cb_now.callback = callback;
	cb_now.request = request;
	/* the stores must be done before the call they describe */
	__asm__ __volatile__("" ::: "memory");
	return prev;
}

static inline void
cb_leave(struct cb_frame prev)
{
	__asm__ __volatile__("" ::: "memory");
	cb_now = prev;
}

/* Installs the fatal-signal handler (with an alternate stack), once. */
void crash_install(void);

#endif
