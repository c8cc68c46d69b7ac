/*
 * log.h -- the lines porch run writes while it runs: its own and its
 * plugins' (porch_log, porch_stage_log, porch_worker_log).
 *
 * Each line carries the time (RFC 3339, UTC, milliseconds), a level and
 * where it comes from (the runtime, a stage or a worker), in one of two
 * formats: text, the line as porch has always written it after the time
 * and level ("2026-11-30T05:20:00.123Z info porch: stage 'api': listening
 * on ..."), or json, one object a line with the same fields plus the
 * request id and session when the line is about a request.  Lines above
 * the level set are not written (nor formatted).  Diagnostics of a
 * pipeline that does not load (FILE:LINE:COL) are the command's output,
 * not log lines, and keep their form.
 */
#ifndef PORCH_LOG_H
#define PORCH_LOG_H

#include <stdarg.h>
#include <stdint.h>

#include <porch/plugin.h>

enum log_format { LOG_TEXT, LOG_JSON };

/* Sets the format and the highest level written (info by default). */
void log_setup(enum log_format format, enum porch_log_level level);
int log_enabled(enum porch_log_level level);
enum log_format log_format_now(void);

/* Parses "text"/"json" and "error"/"warn"/"info"/"debug": 0, or -1. */
int log_parse_format(const char *s, enum log_format *out);
int log_parse_level(const char *s, enum porch_log_level *out);

/*
 * Writes one line to stderr.  kind is "stage" or "worker" with its name,
 * or NULL for the runtime's own; id and session describe the request the
 * line is about (0 and NULL: none).
 */
void log_vline(enum porch_log_level level, const char *kind, const char *name,
    uint64_t id, const char *session, const char *fmt, va_list ap);
void log_line(enum porch_log_level level, const char *kind, const char *name,
    uint64_t id, const char *session, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* In --log-format json only: a line whose message is msg, with value (a
 * jansson value, taken) under key, whatever the level set.  Nothing in text. */
struct json_t;
void log_value(enum porch_log_level level, const char *msg, const char *key,
    struct json_t *value);

/* An info line the operator asked for (SIGUSR1), whatever the level set. */
void log_asked(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The runtime's own lines. */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* PORCH_LOG_H */
