/*
 * notify.h -- tells a service manager how porch run is doing: systemd's
 * readiness protocol (sd_notify(3)), through libsystemd.
 *
 * Every function is a no-op when NOTIFY_SOCKET is unset (porch was not
 * started by systemd as a Type=notify service), or when porch was built
 * without libsystemd.  A message that cannot be sent is dropped: a service
 * manager that went away must not stop the pipeline.
 */
#ifndef PORCH_NOTIFY_H
#define PORCH_NOTIFY_H

/* 1 when messages are sent (NOTIFY_SOCKET set, libsystemd built in). */
int notify_enabled(void);

/* READY=1 and STATUS=...: every listener is open and the pipeline runs;
 * also the end of a reload (after notify_reloading). */
void notify_ready(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* STATUS=...: one line for systemctl status. */
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* RELOADING=1, MONOTONIC_USEC and STATUS=reloading FILE: a SIGHUP began. */
void notify_reloading(const char *file);

/* STOPPING=1 and STATUS=...: a drain began, or the pipeline ended. */
void notify_stopping(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* PORCH_NOTIFY_H */
