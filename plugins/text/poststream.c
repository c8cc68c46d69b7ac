/* poststream.c -- the post stage's transform, whole or streamed: stop, trim, collapse, limit. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <stdlib.h>
#include <string.h>

#include "poststream.h"

int
post_cfg_add_stop(struct post_cfg *c, const char *s, size_t len)
{
	char **stop = realloc(c->stop, (c->n_stop + 1) * sizeof *stop);
	if (stop == NULL)
		return -1;
	c->stop = stop;
	size_t *sl = realloc(c->stop_len, (c->n_stop + 1) * sizeof *sl);
	if (sl == NULL)
		return -1;
	c->stop_len = sl;
	char *copy = malloc(len + 1);
	if (copy == NULL)
		return -1;
	memcpy(copy, s, len);
	copy[len] = '\0';
	c->stop[c->n_stop] = copy;
	c->stop_len[c->n_stop++] = len;
	if (len > c->stop_max)
		c->stop_max = len;
	return 0;
}

void
post_cfg_free(struct post_cfg *c)
{
	for (size_t i = 0; i < c->n_stop; i++)
		free(c->stop[i]);
	free(c->stop);
	free(c->stop_len);
	memset(c, 0, sizeof *c);
}

/* Where the first stop sequence in s begins, or len if none does. */
static size_t
post_first_stop(const struct post_cfg *c, const char *s, size_t len)
{
	size_t first = len;
	for (size_t i = 0; i < c->n_stop; i++) {
		/* only the part before the best so far can hold an earlier one */
		size_t room = first + c->stop_len[i] - 1;
		if (room > len)
			room = len;
		const char *p = memmem(s, room, c->stop[i], c->stop_len[i]);
		if (p != NULL && (size_t)(p - s) < first)
			first = (size_t)(p - s);
	}
	return first;
}

int
post_whole(const struct post_cfg *c, const char *in, size_t len, struct tbuf *out)
{
	size_t n = post_first_stop(c, in, len), i = 0;
	size_t base = out->len;

	if (c->trim)
		while (i < n && text_space((unsigned char)in[i]))
			i++;
	if (tbuf_reserve(out, n - i + 1) != 0) /* + 1: utf8_cut reads one past */
		return -1;
	char *o = out->p + base;
	size_t k = 0;
	for (; i < n; i++) {
		if (c->collapse && text_space((unsigned char)in[i])) {
			o[k++] = ' ';
			while (i + 1 < n && text_space((unsigned char)in[i + 1]))
				i++;
		} else {
			o[k++] = in[i];
		}
	}
	if (c->max_length > 0 && k > c->max_length)
		k = utf8_cut(o, c->max_length);
	if (c->trim)
		while (k > 0 && text_space((unsigned char)o[k - 1]))
			k--;
	out->len = base + k;
	return 0;
}

/* Last step: trailing whitespace is held until something else follows. */
static int
post_tail(const struct post_cfg *c, struct post_stream *s, const char *p, size_t n,
    struct tbuf *out)
{
	if (!c->trim)
		return tbuf_put(out, p, n);
	for (size_t i = 0; i < n; i++) {
		if (text_space((unsigned char)p[i])) {
			if (tbuf_putc(&s->ws, p[i]) != 0)
				return -1;
			continue;
		}
		size_t j = i;
		while (j < n && !text_space((unsigned char)p[j]))
			j++;
		if (tbuf_put(out, s->ws.p, s->ws.len) != 0 || tbuf_put(out, p + i, j - i) != 0)
			return -1;
		s->ws.len = 0;
		i = j - 1;
	}
	return 0;
}

/* The length limit: one byte at a time, holding the last 3 before it. */
static int
post_limit(const struct post_cfg *c, struct post_stream *s, char ch, struct tbuf *out)
{
	size_t max = c->max_length, lo = max >= 3 ? max - 3 : 0;

	if (s->full)
		return 0;
	if (max == 0 || s->count < lo) {
		s->count++;
		return post_tail(c, s, &ch, 1, out);
	}
	if (s->count < max) {
		s->hold[s->n_hold++] = ch;
		s->count++;
		return 0;
	}
	/* the byte past the limit: cut where no character is split */
	char w[4];
	memcpy(w, s->hold, s->n_hold);
	w[s->n_hold] = ch;
	size_t k = utf8_cut(w, s->n_hold);
	s->stopped = s->full = 1;
	s->n_hold = 0;
	return post_tail(c, s, w, k, out);
}

/* Trim (leading) and collapse, then the limit. */
static int
post_space(const struct post_cfg *c, struct post_stream *s, const char *p, size_t n,
    struct tbuf *out)
{
	if (!c->trim && !c->collapse && c->max_length == 0)
		return post_tail(c, s, p, n, out);
	for (size_t i = 0; i < n && !s->stopped; i++) {
		char ch = p[i];
		if (text_space((unsigned char)ch)) {
			if (c->trim && !s->started)
				continue;
			if (c->collapse) {
				if (s->in_space)
					continue;
				s->in_space = 1;
				ch = ' ';
			}
		} else {
			s->started = 1;
			s->in_space = 0;
		}
		if (post_limit(c, s, ch, out) != 0)
			return -1;
	}
	return 0;
}

int
post_feed(const struct post_cfg *c, struct post_stream *s, const char *in, size_t len,
    struct tbuf *out)
{
	if (s->stopped || len == 0)
		return 0;
	if (c->n_stop == 0)
		return post_space(c, s, in, len, out);
	if (tbuf_put(&s->pend, in, len) != 0)
		return -1;
	const char *p = s->pend.p;
	size_t n = s->pend.len;
	size_t stop = post_first_stop(c, p, n);
	/* the first tail that could still become a stop sequence */
	size_t part = n;
	for (size_t j = n >= c->stop_max ? n - c->stop_max + 1 : 0; j < n && part == n; j++)
		for (size_t i = 0; i < c->n_stop; i++)
			if (n - j < c->stop_len[i] && memcmp(p + j, c->stop[i], n - j) == 0) {
				part = j;
				break;
			}
	if (stop < part) {
		/* a whole stop sequence, and nothing before it can start one */
		int rc = post_space(c, s, p, stop, out);
		s->stopped = 1;
		s->pend.len = 0;
		return rc;
	}
	if (post_space(c, s, p, part, out) != 0)
		return -1;
	tbuf_consume(&s->pend, part);
	return 0;
}

int
post_finish(const struct post_cfg *c, struct post_stream *s, struct tbuf *out)
{
	if (!s->stopped && s->pend.len > 0) {
		size_t stop = post_first_stop(c, s->pend.p, s->pend.len);
		if (post_space(c, s, s->pend.p, stop, out) != 0)
			return -1;
	}
	s->pend.len = 0;
	if (!s->full && s->n_hold > 0 && post_tail(c, s, s->hold, s->n_hold, out) != 0)
		return -1;
	s->n_hold = 0;
	s->stopped = s->full = 1;
	s->ws.len = 0; /* trailing: dropped */
	return 0;
}

void
post_stream_reset(struct post_stream *s)
{
	struct tbuf pend = s->pend, ws = s->ws;
	memset(s, 0, sizeof *s);
	pend.len = ws.len = 0;
	s->pend = pend;
	s->ws = ws;
}

void
post_stream_clear(struct post_stream *s)
{
	tbuf_free(&s->pend);
	tbuf_free(&s->ws);
	memset(s, 0, sizeof *s);
}
