/*
 * completion.c -- what every completion object shares, whole (openai.c) or
 * streamed (stream.c): its opening {"id","object","created","model" and
 * its usage, counted in words when the worker gives none.
 */
#include <string.h>

#include "answer.h"

/*
 * The white space among the 8 bytes of v (read little-endian), as the high
 * bit of each byte: ' ', and '\t' to '\r' (0x09-0x0d).  Exact: each byte is
 * tested on its low 7 bits, where no sum carries into the next byte, and
 * bytes from 0x80 are none.
 */
static inline uint64_t
spaces8(uint64_t v)
{
	const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
	uint64_t x = v & ~high, y = x ^ (ones * 0x20);
	uint64_t sp = ~(y + ones * 0x7f) & high;                 /* x == 0x20 */
	uint64_t ctl = (x + ones * (0x80 - 0x09)) & ~(x + ones * (0x80 - 0x0e)) & high;
	return (sp | ctl) & ~v;
}

/* Whitespace-separated words of p[0..len): porch's own, approximate, token
 * count.  A word at a time (a 10 MB prompt is counted in a millisecond):
 * a word begins at each byte that is not white space after one that is. */
uint64_t
count_words(const char *p, size_t len)
{
	uint64_t n = 0;
	int in_word = 0;
	size_t i = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
	uint64_t before = high; /* the byte before the first: "white space" */
	for (; len - i >= 8; i += 8) {
		uint64_t v;
		memcpy(&v, p + i, 8);
		/* inside a word, 8 bytes above ' ' (and below 0x80) begin none */
		if ((before >> 63) == 0 && (((v - ones * 0x21) | v) & high) == 0)
			continue;
		uint64_t s = spaces8(v);
		/* each byte's predecessor's flag, the last word's top byte first */
		uint64_t prev = s << 8 | before >> 56;
		uint64_t starts = ~s & prev & high;
		n += ((starts >> 7) * ones) >> 56;
		before = s;
	}
	in_word = (before & (1ull << 63)) == 0;
#endif
	for (; i < len; i++) {
		char ch = p[i];
		int space = ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' ||
		    ch == '\v' || ch == '\f';
		if (!space && !in_word)
			n++;
		in_word = !space;
	}
	return n;
}

/*
 * The answer's usage: the worker's (metadata "usage", a JSON object, the
 * upstream's own counts) when it gave one, else porch's count of
 * whitespace-separated words of the prompt and of the answer.
 */
void
json_put_usage(struct buf *b, const struct hreq *h, const char *usage, const char *text,
    size_t len)
{
	if (usage != NULL && usage[0] == '{') {
		buf_add(b, usage, strlen(usage));
		return;
	}
	uint64_t completion = count_words(text, len);
	buf_lit(b, "{\"prompt_tokens\":");
	buf_u64(b, h->prompt_words);
	buf_lit(b, ",\"completion_tokens\":");
	buf_u64(b, completion);
	buf_lit(b, ",\"total_tokens\":");
	buf_u64(b, h->prompt_words + completion);
	buf_lit(b, "}");
}

/*
 * An OpenAI object's opening, {"id","object","created","model" (no comma
 * after): the id is "chatcmpl-RID" for chat, else "cmpl-RID".
 */
void
json_put_object_open(struct buf *b, const struct hreq *h, int chat, const char *object)
{
	if (chat)
		buf_lit(b, "{\"id\":\"chatcmpl-");
	else
		buf_lit(b, "{\"id\":\"cmpl-");
	json_put_esc(b, h->w.id, strlen(h->w.id));
	buf_lit(b, "\",\"object\":");
	json_put_cstr(b, object);
	buf_lit(b, ",\"created\":");
	buf_i64(b, h->created);
	buf_lit(b, ",\"model\":");
	json_put_cstr(b, h->model ? h->model : "");
}
