/*
 * json_plain.h -- the bytes of a JSON string that need no escape and no
 * unescape, found a word at a time.  Header only (inline: it is on the
 * gateway path of every request and answer); shared by the http source's
 * request parser and answer writer (plugins/http) and the openai worker's
 * answer scanner (plugins/openai), which are separate plugins.
 */
#ifndef PORCH_JSON_PLAIN_H
#define PORCH_JSON_PLAIN_H

#include <stdint.h>
#include <string.h>

/*
 * The 8 bytes at p that do not go out as they are in a JSON string, or
 * do not read as they are: those outside ASCII 0x20-0x7f, '"' and '\\',
 * tested as one word.  A mask with the high bit of each such byte set;
 * the first such byte in memory is flagged exactly (a later one may be
 * flagged falsely, by a borrow), so the lowest byte of the mask (little
 * endian) is where the first one is.  0: all 8 are plain.
 */
static inline uint64_t
json_special8(const void *p)
{
	const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
	uint64_t v, q, b;
	memcpy(&v, p, 8);
	q = v ^ (ones * '"');
	b = v ^ (ones * '\\');
	return (v | ((v - ones * 0x20) & ~v) | ((q - ones) & ~q) | ((b - ones) & ~b)) & high;
}

/*
 * The first byte from p on (before end) that is not plain (json_special8),
 * or end.  A word at a time (a 10 MB prompt is one string), and the
 * special byte of the last word found from its mask, not byte by byte:
 * most strings of a request are short.
 */
static inline const unsigned char *
json_skip_plain(const unsigned char *p, const unsigned char *end)
{
	for (; end - p >= 8; p += 8) {
		uint64_t m = json_special8(p);
		if (m != 0) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
			return p + (__builtin_ctzll(m) >> 3);
#else
			break;
#endif
		}
	}
	while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
		p++;
	return p;
}

#endif
