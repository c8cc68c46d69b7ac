/*
 * sig.h -- "openai.sig": what a source that passes a client's request on
 * ("openai.request") derived from it, so that the openai worker can tell,
 * without reading the document, that it would forward it unchanged (its
 * fast path: the document's bytes go to the upstream as they are).
 *
 * Written by the http source (plugins/http/openai.c) and read by the openai
 * worker (request.c); both include this file, so the format is one.  Its
 * text, every part of which must match for the fast path:
 *
 *   "1" KIND CAP ":" LEN ":" HASH ";" FIELD x 7
 *
 *   KIND  'c': the document has "messages" and the source read it as a
 *         chat; 'p': it has none and the source read it as a completion.
 *   CAP   which token cap members the document has: 'N' neither, 'T'
 *         max_tokens alone (not null), 'C' max_completion_tokens alone
 *         (not null); with any other mix there is no signature.
 *   LEN   the document's length in bytes, decimal; HASH its oai_sig_hash,
 *         16 hex digits: a stage that rewrites the document (redact does)
 *         makes it no longer the one the fields describe.
 *   FIELD per option, in this order: model, max-tokens, temperature,
 *         top-p, stop, system, stream: "-;" when the source set none, else
 *         its decimal length, ":", the option's bytes and ";" (so any byte
 *         may occur in it).
 *
 * A source writes one only when forwarding the document as it is means
 * what it says: the document names a model (else the worker adds its
 * own), and its "stream" is what the "stream" option says.  The worker
 * takes the fast path only when every option is still what the source
 * set, the prompt is still the request's input (porch_call_input), and
 * the document is of its endpoint's kind with the cap under the name it
 * sends (see oai_request_fast in request.c).
 *
 * Not a security boundary: a source that lets its input set any metadata
 * could let it forge one, and the stdin source refuses the key for that
 * reason.
 */
#ifndef PORCH_OPENAI_SIG_H
#define PORCH_OPENAI_SIG_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OAI_SIG_KEY "openai.sig"
#define OAI_SIG_FIELDS 7

/* The options a signature records, in its order. */
static const char *const oai_sig_options[OAI_SIG_FIELDS] = {
	"model", "max-tokens", "temperature", "top-p", "stop", "system", "stream"
};

/* A quick 64-bit hash of n bytes, eight at a time: it tells documents
 * apart, against accidents, not adversaries.  Four lanes of 8 bytes take
 * 32 bytes a round, their multiplies not waiting on one another: a 10 MB
 * document costs the source and the worker a millisecond each, not 3. */
static inline uint64_t
oai_sig_hash(const char *p, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15u ^ (uint64_t)n, w;
	uint64_t lane[4] = { h, h ^ 0xbf58476d1ce4e5b9u, h ^ 0x94d049bb133111ebu,
	    h ^ 0xd6e8feb86659fd93u };
	if (n >= 32) {
		for (; n >= 32; p += 32, n -= 32) {
			for (int i = 0; i < 4; i++) {
				memcpy(&w, p + 8 * i, 8);
				lane[i] = (lane[i] ^ w) * 0xff51afd7ed558ccdu;
				lane[i] ^= lane[i] >> 32;
			}
		}
		for (int i = 0; i < 4; i++) {
			h = (h ^ lane[i]) * 0xff51afd7ed558ccdu;
			h ^= h >> 32;
		}
	}
	for (; n >= 8; p += 8, n -= 8) {
		memcpy(&w, p, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdu;
		h ^= h >> 32;
	}
	w = 0;
	memcpy(&w, p, n);
	h = (h ^ w) * 0xc4ceb9fe1a85ec53u;
	return h ^ (h >> 29);
}

/* Writes v in decimal at o; returns the end.  (snprintf costs a thousand
 * instructions a call: this runs on every request, a few times.) */
static inline char *
oai_sig_dec(char *o, size_t v)
{
	char t[24];
	int n = 0;
	do
		t[n++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	while (n > 0)
		*o++ = t[--n];
	return o;
}

/* ":LEN:HASH;" of document doc at o (at most 40 bytes); returns the end. */
static inline char *
oai_sig_len_hash(char *o, const char *doc, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	uint64_t h = oai_sig_hash(doc, len);
	*o++ = ':';
	o = oai_sig_dec(o, len);
	*o++ = ':';
	for (int i = 15; i >= 0; i--)
		*o++ = hex[(h >> (4 * i)) & 0xf];
	*o++ = ';';
	return o;
}

/*
 * The signature of document doc (len bytes) of kind ('c' or 'p') and cap
 * ('N', 'T' or 'C'), with the options' values (NULL: not set) in
 * oai_sig_options' order: malloc'ed, NULL when out of memory.
 */
static inline char *
oai_sig_make(char kind, char cap, const char *doc, size_t len,
    const char *const value[OAI_SIG_FIELDS])
{
	size_t n = 64;
	for (int i = 0; i < OAI_SIG_FIELDS; i++)
		n += value[i] != NULL ? strlen(value[i]) + 24 : 2;
	char *s = malloc(n), *o = s;
	if (s == NULL)
		return NULL;
	*o++ = '1';
	*o++ = kind;
	*o++ = cap;
	o = oai_sig_len_hash(o, doc, len);
	for (int i = 0; i < OAI_SIG_FIELDS; i++) {
		if (value[i] == NULL) {
			memcpy(o, "-;", 2);
			o += 2;
			continue;
		}
		size_t k = strlen(value[i]);
		o = oai_sig_dec(o, k);
		*o++ = ':';
		memcpy(o, value[i], k);
		o += k;
		*o++ = ';';
	}
	*o = '\0';
	return s;
}

/*
 * 1 when sig is the signature of document doc (len bytes) of kind and
 * with the options value[] (NULL: not set) now, and *cap its CAP; else 0.
 */
static inline int
oai_sig_match(const char *sig, char kind, const char *doc, size_t len,
    const char *const value[OAI_SIG_FIELDS], char *cap)
{
	char head[64];
	if (sig[0] != '1' || sig[1] != kind)
		return 0;
	*cap = sig[2];
	if (*cap != 'N' && *cap != 'T' && *cap != 'C')
		return 0;
	size_t hn = (size_t)(oai_sig_len_hash(head, doc, len) - head);
	sig += 3;
	if (strncmp(sig, head, hn) != 0)
		return 0;
	sig += hn;
	for (int i = 0; i < OAI_SIG_FIELDS; i++) {
		if (sig[0] == '-' && sig[1] == ';') {
			if (value[i] != NULL)
				return 0;
			sig += 2;
			continue;
		}
		if (value[i] == NULL || sig[0] < '0' || sig[0] > '9')
			return 0;
		char *end;
		unsigned long long k = strtoull(sig, &end, 10);
		if (*end != ':' || strlen(value[i]) != k || strncmp(end + 1, value[i], k) != 0 ||
		    end[1 + k] != ';')
			return 0;
		sig = end + 2 + k;
	}
	return *sig == '\0';
}

#endif /* PORCH_OPENAI_SIG_H */
