/* record.c -- a message as one JSON object, and the file of them the sinks append to. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "record.h"

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t
utf8_valid_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t need;
	unsigned min;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		need = 2; min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 3; min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 4; min = 0x10000;
	} else {
		return 0;
	}
	if (n < need)
		return 0;
	unsigned cp = c & (0x7f >> need);
	for (size_t i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need;
}

/*
 * A JSON string of text that may not be UTF-8 (a model can cut a character
 * in two): bytes that are not valid UTF-8 become U+FFFD, so the record is
 * still written rather than lost.
 */
static json_t *
text_string(const char *text, size_t len)
{
	json_t *j = json_stringn(text, len);
	if (j != NULL)
		return j;
	char *clean = malloc(len * 3 + 1);
	if (clean == NULL)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		size_t k = utf8_valid_len((const unsigned char *)text + i, len - i);
		if (k == 0) {
			memcpy(clean + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		} else {
			memcpy(clean + o, text + i, k);
			o += k;
			i += k;
		}
	}
	j = json_stringn(clean, o);
	free(clean);
	return j;
}

/* x rounded to 1/scale (scale 100: two decimals), for short numbers; x >= 0. */
static double
rounded(double x, double scale)
{
	return x <= 0 ? 0 : (double)(long long)(x * scale + 0.5) / scale;
}

/* Sets key to a new reference, counting failures instead of checking each. */
static void
put(json_t *obj, const char *key, json_t *value, int *bad)
{
	if (value == NULL || json_object_set_new(obj, key, value) != 0)
		(*bad)++;
}

json_t *
record_of(const porch_msg *m, int full)
{
	json_t *r = json_object();
	if (r == NULL)
		return NULL;
	int bad = 0;
	struct timeval tv;
	gettimeofday(&tv, NULL);
	size_t len;
	const char *text;

	put(r, "id", json_integer((json_int_t)porch_msg_id(m)), &bad);
	/* what joins an answer to its question: the client's X-Request-Id (or
	 * the one the http source made), a JSON line's own, else porch's id */
	const char *rid = porch_msg_meta(m, "request-id");
	char num[24];
	if (rid == NULL) {
		snprintf(num, sizeof num, "%llu", (unsigned long long)porch_msg_id(m));
		rid = num;
	}
	put(r, "request_id", text_string(rid, strlen(rid)), &bad);
	put(r, "time", json_real((double)tv.tv_sec + rounded(tv.tv_usec / 1e6, 1000)), &bad);
	const char *session = porch_msg_session(m);
	put(r, "session", text_string(session, strlen(session)), &bad);
	put(r, "outcome", json_string(porch_outcome_name(porch_error_outcome(porch_msg_error(m)))), &bad);
	text = porch_msg_input(m, &len);
	put(r, "input", text_string(text, len), &bad);
	text = porch_msg_text(m, &len);
	put(r, "text", text_string(text, len), &bad);
	if (porch_msg_error(m) != PORCH_ERR_NONE) {
		put(r, "error", json_string(porch_error_name(porch_msg_error(m))), &bad);
		const char *why = porch_msg_error_text(m);
		put(r, "error_text", text_string(why, strlen(why)), &bad);
		put(r, "error_stage", json_string(porch_msg_error_stage(m)), &bad);
		put(r, "status", json_integer(porch_msg_status(m)), &bad);
		if (full && porch_msg_retry_after(m) > 0)
			put(r, "retry_after_ms", json_integer(porch_msg_retry_after(m)), &bad);
	}
	put(r, "attempts", json_integer(porch_msg_attempts(m)), &bad);
	json_t *meta = json_object();
	const char *key, *value;
	for (size_t i = 0; meta != NULL && (key = porch_msg_meta_at(m, i, &value)) != NULL; i++)
		put(meta, key, text_string(value, strlen(value)), &bad);
	put(r, "meta", meta, &bad);
	json_t *timings = json_object();
	const char *stage;
	double ms;
	for (size_t i = 0; timings != NULL && (stage = porch_msg_timing_at(m, i, &ms)) != NULL; i++)
		put(timings, stage, json_real(rounded(ms, 100)), &bad);
	put(r, "timings_ms", timings, &bad);
	if (bad) {
		json_decref(r);
		return NULL;
	}
	return r;
}

int
record_file_open(struct record_file *rf, porch_stage *st, const char *path)
{
	rf->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
	if (rf->fd < 0) {
		porch_stage_error(st, "cannot open %s for appending: %s", path, strerror(errno));
		return -1;
	}
	rf->torn = 0;
	rf->path = strdup(path);
	if (rf->path == NULL) {
		close(rf->fd);
		rf->fd = -1;
		porch_stage_error(st, "out of memory");
		return -1;
	}
	return 0;
}

/* write(2) until all of p is out; the bytes written, which are fewer on error. */
static size_t
write_all(int fd, const char *p, size_t n)
{
	size_t done = 0;
	while (done < n) {
		ssize_t w = write(fd, p + done, n - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			break;
		}
		done += (size_t)w;
	}
	return done;
}

int
record_file_write(struct record_file *rf, json_t *record)
{
	/* ENSURE_ASCII escapes every control character: the record is one line */
	/* 15 significant digits: the rounded times print short (68.23, not
	 * 68.230000000000004) */
	char *text = json_dumps(record, JSON_COMPACT | JSON_ENSURE_ASCII |
	    JSON_REAL_PRECISION(15));
	if (text == NULL) {
		errno = ENOMEM;
		return -1;
	}
	size_t len = strlen(text);
	/* a record torn by an earlier failure must not run into this one */
	size_t lead = rf->torn ? 1 : 0;
	char *line = malloc(lead + len + 1);
	if (line == NULL) {
		free(text);
		errno = ENOMEM;
		return -1;
	}
	line[0] = '\n';
	memcpy(line + lead, text, len);
	line[lead + len] = '\n';
	free(text);
	size_t n = lead + len + 1;

	/* one write, with O_APPEND: the line lands whole at the end of the file */
	size_t done = write_all(rf->fd, line, n);
	free(line);
	if (done == n) {
		rf->torn = 0;
		return 0;
	}
	int e = errno ? errno : EIO;
	if (done > lead) {
		/* part of the record is in the file (a full disk): take it out
		 * again, so that the file holds whole records only; the newline
		 * that ended a torn one stays */
		off_t end = lseek(rf->fd, 0, SEEK_CUR);
		off_t part = (off_t)(done - lead);
		rf->torn = !(end >= part && ftruncate(rf->fd, end - part) == 0);
	} else if (done == lead) {
		rf->torn = 0; /* the torn line is ended now; this record is not in */
	}
	errno = e;
	return -1;
}

void
record_file_close(struct record_file *rf)
{
	if (rf->fd >= 0)
		close(rf->fd);
	free(rf->path);
	rf->fd = -1;
	rf->path = NULL;
}

int
record_check_path(const porch_params *p, porch_check *c)
{
	const char *path = porch_param_str(p, "path");
	if (path == NULL)
		return 0;
	struct stat sb;
	if (stat(path, &sb) == 0) {
		if (S_ISDIR(sb.st_mode)) {
			porch_check_error(c, "path", "path '%s' is a directory; name a file in it",
			    path);
			return -1;
		}
		if (access(path, W_OK) != 0) {
			porch_check_error(c, "path", "path '%s' is not writable: %s", path,
			    strerror(errno));
			return -1;
		}
		return 0;
	}
	char *copy = strdup(path);
	if (copy == NULL)
		return 0;
	const char *dir = dirname(copy);
	int rc = 0;
	if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		porch_check_error(c, "path", "path '%s': directory '%s' does not exist", path, dir);
		rc = -1;
	} else if (access(dir, W_OK | X_OK) != 0) {
		porch_check_error(c, "path", "path '%s': directory '%s' is not writable: %s",
		    path, dir, strerror(errno));
		rc = -1;
	}
	free(copy);
	return rc;
}

int
record_sink_init(porch_stage *st)
{
	struct record_file *rf = calloc(1, sizeof *rf);
	if (rf == NULL) {
		porch_stage_error(st, "out of memory");
		return -1;
	}
	if (record_file_open(rf, st, porch_param_str(porch_stage_params(st), "path")) != 0) {
		free(rf);
		return -1;
	}
	porch_stage_set_data(st, rf);
	return 0;
}

void
record_sink_fini(porch_stage *st)
{
	struct record_file *rf = porch_stage_data(st);
	if (rf == NULL)
		return;
	record_file_close(rf);
	free(rf);
	porch_stage_set_data(st, NULL);
}
