/*
 * crash.c -- a fatal signal says which plugin callback was running.
 *
 * The handler runs on its own stack (a stack overflow is a SIGSEGV too),
 * uses write(2) alone and formats numbers by hand: nothing that allocates
 * or locks, as the heap may be what broke.  SA_RESETHAND puts the default
 * action back on entry, and the signal raised again ends the process as it
 * would have without the handler, core dump included.
 */
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "crash.h"

_Thread_local struct cb_frame cb_now __attribute__((tls_model("initial-exec")));

/* A fixed size: SIGSTKSZ is not a constant in newer C libraries. */
static char alt_stack[64 * 1024];

struct line {
	char buf[1024];
	size_t len;
};

static void
put(struct line *l, const char *s)
{
	if (s == NULL)
		s = "?";
	while (*s && l->len < sizeof l->buf - 1)
		l->buf[l->len++] = *s++;
}

static void
put_u64(struct line *l, uint64_t v)
{
	char digits[20];
	int n = 0;
	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	while (n > 0 && l->len < sizeof l->buf - 1)
		l->buf[l->len++] = digits[--n];
}

static const char *
signal_name(int sig)
{
	switch (sig) {
	case SIGSEGV: return "SIGSEGV";
	case SIGBUS: return "SIGBUS";
	case SIGFPE: return "SIGFPE";
	case SIGILL: return "SIGILL";
	case SIGABRT: return "SIGABRT";
	}
	return "signal";
}

static void
on_fatal(int sig)
{
	struct cb_frame f = cb_now;
	struct line l;
	l.len = 0;
	put(&l, "porch: fatal ");
	put(&l, signal_name(sig));
	if (f.kind == NULL) {
		put(&l, " in porch itself (no plugin callback was running)");
	} else {
		/* "in stage 'crash' (plugin crash, /path/crash.so), process
		 * callback, request 42" */
		put(&l, " in ");
		put(&l, f.kind);
		put(&l, " '");
		put(&l, f.name);
		put(&l, "' (plugin ");
		put(&l, f.plugin);
		put(&l, ", ");
		put(&l, f.path);
		put(&l, "), ");
		put(&l, f.callback);
		put(&l, " callback");
		if (f.request != 0) {
			put(&l, ", request ");
			put_u64(&l, f.request);
		}
	}
	l.buf[l.len++] = '\n';
	const char *p = l.buf;
	size_t left = l.len;
	while (left > 0) {
		ssize_t n = write(STDERR_FILENO, p, left);
		if (n <= 0)
			break;
		p += n;
		left -= (size_t)n;
	}
	/* the action is the default again (SA_RESETHAND): the signal, blocked
	 * while this runs, is delivered on return and ends the process */
	raise(sig);
}

void
crash_install(void)
{
	static int installed;
	if (installed)
		return;
	installed = 1;
	stack_t ss;
	memset(&ss, 0, sizeof ss);
	ss.ss_sp = alt_stack;
	ss.ss_size = sizeof alt_stack;
	int onstack = sigaltstack(&ss, NULL) == 0;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_fatal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESETHAND | (onstack ? SA_ONSTACK : 0);
	static const int sigs[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT };
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaction(sigs[i], &sa, NULL);
}
