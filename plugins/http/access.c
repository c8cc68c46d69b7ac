/*
 * access.c -- the access log: one line for each request the source
 * answered, written when both its answer and its outcome are done (so the
 * line has the status, the bytes, the times and how it ended).
 *
 * The access-log parameter says where: off, stderr, or a file opened for
 * appending (O_APPEND: a line is one write(2), so lines from two porch
 * processes sharing a file do not interleave).  A reload opens the file
 * again, which is how a rotated file is let go.  The format is json, one
 * object a line, or text, the common log format followed by
 * porch's fields:
 *
 *   ADDR - - [TIME] "METHOD TARGET HTTP/1.x" STATUS BYTES-OUT BYTES-IN
 *       TTFB-S TOTAL-S REQUEST-ID MODEL OUTCOME
 *
 * In porch's log (access-log stderr) a text line is a log line ("TIME info
 * porch: stage 'NAME': access: ..."); a json line has the log's time,
 * level, stage and msg ("access") first, wherever it goes.
 *
 * TTFB is from the first byte of the request read to the first byte of the
 * answer written; 499 is the status of a request whose client closed the
 * connection before its answer was complete (as nginx logs it).  No header
 * is logged, so no API key is.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http.h"

int
access_open(struct http_src *s, const char *spec, const char *format, char *err,
    size_t errlen)
{
	s->access_fd = -1;
	s->access_json = format != NULL && strcmp(format, "json") == 0;
	if (spec == NULL || strcmp(spec, "off") == 0 || strcmp(spec, "false") == 0)
		return 0;
	if (strcmp(spec, "stderr") == 0 || strcmp(spec, "true") == 0) {
		s->access_fd = STDERR_FILENO;
		return 0;
	}
	int fd = open(spec, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		snprintf(err, errlen, "access-log: cannot open %s for appending: %s", spec,
		    strerror(errno));
		return -1;
	}
	s->access_fd = fd;
	s->access_owned = 1;
	return 0;
}

void
access_close(struct http_src *s)
{
	if (s->access_owned && s->access_fd >= 0)
		close(s->access_fd);
	s->access_fd = -1;
	s->access_owned = 0;
}

/* The request target, with what would break the line's form escaped. */
static void
clean(char *out, size_t outlen, const char *in, size_t len)
{
	size_t k = 0;
	for (size_t i = 0; i < len && k + 5 < outlen; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c < 0x21 || c >= 0x7f || c == '"' || c == '\\')
			k += (size_t)snprintf(out + k, outlen - k, "\\x%02x", c);
		else
			out[k++] = (char)c;
	}
	out[k] = '\0';
}

void
access_write(struct http_src *s, const struct hreq *h)
{
	if (s->access_fd < 0)
		return;
	const struct wreq *r = &h->w;
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	double now = ev_now(s->w.loop);
	double total = r->t0 > 0 ? now - r->t0 : 0;
	double ttfb = r->t_first > 0 && r->t0 > 0 ? r->t_first - r->t0 : -1;
	int status = h->client_gone && !r->complete ? 499 : r->status;
	const char *outcome = h->outcome_known ? porch_outcome_name(h->outcome) : "-";
	char target[1024], model[256];
	clean(target, sizeof target, r->url.len ? r->url.p : "-", r->url.len ? r->url.len : 1);
	clean(model, sizeof model, h->model ? h->model : "-", h->model ? strlen(h->model) : 1);
	const char *method = http_method_str((enum http_method)r->method);
	const char *addr = wire_addr(r);
	char line[2048];
	int n;
	if (s->access_json) {
		char when[40];
		size_t w = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(when + w, sizeof when - w, ".%03ldZ", ts.tv_nsec / 1000000);
		char ttfbs[32];
		if (ttfb >= 0)
			snprintf(ttfbs, sizeof ttfbs, "%.3f", ttfb * 1000);
		else
			snprintf(ttfbs, sizeof ttfbs, "null");
		/* every string was cleaned to printable ASCII without " or \ */
		n = snprintf(line, sizeof line, "{\"time\":\"%s\",\"level\":\"info\",\"stage\":"
		    "\"%s\",\"msg\":\"access\",\"client\":\"%s\",\"method\":\"%s\","
		    "\"target\":\"%s\",\"http\":\"1.%d\",\"status\":%d,\"bytes_in\":%llu,"
		    "\"bytes_out\":%llu,\"ttfb_ms\":%s,\"time_ms\":%.3f,\"request_id\":\"%s\","
		    "\"model\":%s%s%s,\"outcome\":%s%s%s}\n", when, s->name, addr, method, target,
		    r->http_minor, status, (unsigned long long)r->bytes_in,
		    (unsigned long long)r->bytes_out, ttfbs, total * 1000, r->id,
		    h->model ? "\"" : "", h->model ? model : "null", h->model ? "\"" : "",
		    h->outcome_known ? "\"" : "", h->outcome_known ? outcome : "null",
		    h->outcome_known ? "\"" : "");
	} else {
		char when[64];
		strftime(when, sizeof when, "%d/%b/%Y:%H:%M:%S", &tm);
		char ttfbs[32];
		if (ttfb >= 0)
			snprintf(ttfbs, sizeof ttfbs, "%.3f", ttfb);
		else
			snprintf(ttfbs, sizeof ttfbs, "-");
		n = snprintf(line, sizeof line, "%s - - [%s.%03ld +0000] \"%s %s HTTP/1.%d\" %d %llu "
		    "%llu %s %.3f %s %s %s\n", addr, when, ts.tv_nsec / 1000000, method, target,
		    r->http_minor, status, (unsigned long long)r->bytes_out,
		    (unsigned long long)r->bytes_in, ttfbs, total, r->id, model, outcome);
	}
	if (n <= 0)
		return;
	if (!s->access_json && s->access_fd == STDERR_FILENO) {
		/* in porch's log: a log line, with its time and level first */
		line[strcspn(line, "\n")] = '\0';
		porch_log(s->st, PORCH_LOG_INFO, NULL, "access: %s", line);
		return;
	}
	size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
	if (write(s->access_fd, line, len) < 0 && !s->access_failed) {
		s->access_failed = 1; /* said once: the log may be full for long */
		porch_log(s->st, PORCH_LOG_ERROR, NULL, "access-log: cannot write: %s",
		    strerror(errno));
	}
}
