/*
 * notify.c -- sd_notify(3) for porch run: READY=1 once the pipeline's
 * listeners are open, RELOADING=1 and READY=1 around a reload,
 * STOPPING=1 when it drains, and STATUS= lines for systemctl status.
 *
 * Built on libsystemd when configure found it (HAVE_LIBSYSTEMD); without
 * it every function does nothing.  sd_notify itself returns at once when
 * NOTIFY_SOCKET is unset; the check here also spares the formatting.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "notify.h"

int
notify_enabled(void)
{
#ifdef HAVE_LIBSYSTEMD
	const char *sock = getenv("NOTIFY_SOCKET");
	return sock != NULL && *sock != '\0';
#else
	return 0;
#endif
}

/*
 * Sends head (a "KEY=VALUE\n..." block, or "") followed by STATUS= and
 * the formatted text.  unset_environment is 0: porch notifies again
 * (reloads, the drain), so NOTIFY_SOCKET must stay.  Errors are dropped.
 */
static void
send_status(const char *head, const char *fmt, va_list ap)
{
#ifdef HAVE_LIBSYSTEMD
	char status[512];
	vsnprintf(status, sizeof status, fmt, ap);
	/* a newline would end the STATUS= assignment early */
	for (char *p = status; *p != '\0'; p++)
		if (*p == '\n')
			*p = ' ';
	(void)sd_notifyf(0, "%sSTATUS=%s", head, status);
#else
	(void)head; (void)fmt; (void)ap;
#endif
}

void
notify_ready(const char *fmt, ...)
{
	if (!notify_enabled())
		return;
	va_list ap;
	va_start(ap, fmt);
	send_status("READY=1\n", fmt, ap);
	va_end(ap);
}

void
notify_status(const char *fmt, ...)
{
	if (!notify_enabled())
		return;
	va_list ap;
	va_start(ap, fmt);
	send_status("", fmt, ap);
	va_end(ap);
}

/* systemd 253 and later want MONOTONIC_USEC with RELOADING=1 (the time
 * the reload began, CLOCK_MONOTONIC); older ones ignore it. */
static void
reloading_status(const char *fmt, ...)
{
	char head[96];
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(head, sizeof head, "RELOADING=1\nMONOTONIC_USEC=%llu\n",
	    (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
	va_list ap;
	va_start(ap, fmt);
	send_status(head, fmt, ap);
	va_end(ap);
}

void
notify_reloading(const char *file)
{
	if (!notify_enabled())
		return;
	reloading_status("reloading %s", file);
}

void
notify_stopping(const char *fmt, ...)
{
	if (!notify_enabled())
		return;
	va_list ap;
	va_start(ap, fmt);
	send_status("STOPPING=1\n", fmt, ap);
	va_end(ap);
}
