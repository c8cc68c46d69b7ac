/*
 * completion.c -- what every completion object shares, whole (openai.c) or
 * streamed (stream.c): its opening {"id","object","created","model" and
 * its usage, counted in words when the worker gives none.
 */
#include <string.h>

#include "answer.h"

/* Whitespace-separated words of p[0..len): porch's own, approximate, token count. */
uint64_t
count_words(const char *p, size_t len)
{
	uint64_t n = 0;
	int in_word = 0;
	for (size_t i = 0; i < len; i++) {
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
