/*
 * log.c -- the lines porch run writes while it runs (log.h).
 *
 * One write(2) a line, so lines from a crash handler or a second process
 * on the same terminal do not interleave inside a line.  The time is the
 * wall clock (CLOCK_REALTIME), not the loop's: a line says when it was
 * written.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "graph.h"
#include "log.h"

static enum log_format format = LOG_TEXT;
static enum porch_log_level max_level = PORCH_LOG_INFO;

static const char *const level_names[] = {
	[PORCH_LOG_ERROR] = "error",
	[PORCH_LOG_WARN] = "warn",
	[PORCH_LOG_INFO] = "info",
	[PORCH_LOG_DEBUG] = "debug",
};

void
log_setup(enum log_format f, enum porch_log_level level)
{
	format = f;
	max_level = level;
}

int
log_enabled(enum porch_log_level level)
{
	return level <= max_level;
}

enum log_format
log_format_now(void)
{
	return format;
}

int
log_parse_format(const char *s, enum log_format *out)
{
	if (strcmp(s, "text") == 0)
		*out = LOG_TEXT;
	else if (strcmp(s, "json") == 0)
		*out = LOG_JSON;
	else
		return -1;
	return 0;
}

int
log_parse_level(const char *s, enum porch_log_level *out)
{
	for (int l = PORCH_LOG_ERROR; l <= PORCH_LOG_DEBUG; l++)
		if (strcmp(s, level_names[l]) == 0) {
			*out = (enum porch_log_level)l;
			return 0;
		}
	return -1;
}

/* "2026-11-30T05:20:00.123Z": RFC 3339, UTC, milliseconds. */
static void
timestamp(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

static void
write_all(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDERR_FILENO, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* nowhere to say so */
		p += w;
		n -= (size_t)w;
	}
}

/* One line, whatever the level set. */
static void
emit(enum porch_log_level level, const char *kind, const char *name,
    uint64_t id, const char *session, const char *fmt, va_list ap)
{
	char when[40], msg[2048];
	timestamp(when, sizeof when);
	vsnprintf(msg, sizeof msg, fmt, ap);
	size_t mlen = strlen(msg);
	while (mlen > 0 && msg[mlen - 1] == '\n')
		msg[--mlen] = '\0';
	if (format == LOG_TEXT) {
		char line[2300];
		int n;
		if (kind != NULL)
			n = snprintf(line, sizeof line, "%s %s porch: %s '%s': %s\n", when,
			    level_names[level], kind, name, msg);
		else
			n = snprintf(line, sizeof line, "%s %s porch: %s\n", when,
			    level_names[level], msg);
		if (n > 0)
			write_all(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
		return;
	}
	json_t *o = json_pack("{s:s, s:s}", "time", when, "level", level_names[level]);
	if (o == NULL)
		return;
	if (kind != NULL && name != NULL)
		json_object_set_new(o, kind, json_string(name));
	if (id != 0) {
		char ids[24];
		snprintf(ids, sizeof ids, "%llu", (unsigned long long)id);
		json_object_set_new(o, "request", json_string(ids));
	}
	if (session != NULL && *session != '\0')
		json_object_set_new(o, "session", json_string(session));
	/* a message that is not UTF-8 (a client's bytes) is kept, escaped */
	json_t *m = json_stringn(msg, mlen);
	if (m == NULL) {
		char safe[sizeof msg];
		size_t k = 0;
		for (size_t i = 0; i < mlen && k + 1 < sizeof safe; i++)
			safe[k++] = (unsigned char)msg[i] < 0x80 ? msg[i] : '?';
		m = json_stringn(safe, k);
	}
	json_object_set_new(o, "msg", m);
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (s == NULL)
		return;
	size_t n = strlen(s);
	s[n] = '\n';
	write_all(s, n + 1);
	free(s);
}

void
log_vline(enum porch_log_level level, const char *kind, const char *name,
    uint64_t id, const char *session, const char *fmt, va_list ap)
{
	if (level < PORCH_LOG_ERROR || level > PORCH_LOG_DEBUG)
		level = PORCH_LOG_INFO;
	if (level <= max_level)
		emit(level, kind, name, id, session, fmt, ap);
}

void
log_asked(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit(PORCH_LOG_INFO, NULL, NULL, 0, NULL, fmt, ap);
	va_end(ap);
}

void
log_line(enum porch_log_level level, const char *kind, const char *name, uint64_t id,
    const char *session, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vline(level, kind, name, id, session, fmt, ap);
	va_end(ap);
}

void
log_value(enum porch_log_level level, const char *msg, const char *key, json_t *value)
{
	if (format != LOG_JSON) {
		json_decref(value);
		return;
	}
	char when[40];
	timestamp(when, sizeof when);
	json_t *o = json_pack("{s:s, s:s, s:s, s:o}", "time", when, "level", level_names[level],
	    "msg", msg, key, value);
	/* 15 digits: 33.852 s, not 33.851999999999997 */
	char *s = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER |
	    JSON_REAL_PRECISION(15)) : NULL;
	json_decref(o);
	if (s == NULL)
		return;
	size_t n = strlen(s);
	s[n] = '\n';
	write_all(s, n + 1);
	free(s);
}

#define RUNTIME_LINE(fn, level) \
	void fn(const char *fmt, ...) \
	{ \
		va_list ap; \
		va_start(ap, fmt); \
		log_vline(level, NULL, NULL, 0, NULL, fmt, ap); \
		va_end(ap); \
	}
RUNTIME_LINE(log_error, PORCH_LOG_ERROR)
RUNTIME_LINE(log_warn, PORCH_LOG_WARN)
RUNTIME_LINE(log_info, PORCH_LOG_INFO)

/* ---- the plugins' side (ABI 1.5; porch_stage_log since 1.0) ------------- */

void
porch_stage_log(const porch_stage *st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	/* the lines plugins wrote before levels said "warning: " themselves */
	enum porch_log_level level = strncmp(fmt, "warning: ", 9) == 0 ?
	    PORCH_LOG_WARN : PORCH_LOG_INFO;
	log_vline(level, "stage", st->name, 0, NULL, fmt, ap);
	va_end(ap);
}

/* A plugin's line: from a stage or a worker, about m or no request. */
static void
plugin_vline(enum porch_log_level level, const char *kind, const char *name,
    const porch_msg *m, const char *fmt, va_list ap)
{
	log_vline(level, name != NULL ? kind : NULL, name, m != NULL ? m->id : 0,
	    m != NULL ? porch_msg_session(m) : NULL, fmt, ap);
}

void
porch_log(const porch_stage *st, enum porch_log_level level, const porch_msg *m,
    const char *fmt, ...)
{
	if (level > max_level)
		return;
	va_list ap;
	va_start(ap, fmt);
	plugin_vline(level, "stage", st != NULL ? st->name : NULL, m, fmt, ap);
	va_end(ap);
}

void
porch_worker_log(const porch_worker *w, enum porch_log_level level, const porch_msg *m,
    const char *fmt, ...)
{
	if (level > max_level)
		return;
	va_list ap;
	va_start(ap, fmt);
	plugin_vline(level, "worker", w != NULL ? w->name : NULL, m, fmt, ap);
	va_end(ap);
}

int
porch_log_enabled(enum porch_log_level level)
{
	return level <= max_level;
}
