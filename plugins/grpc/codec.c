/*
 * codec.c -- protobuf-c messages to and from gRPC byte buffers, porch's
 * outcomes and errors to gRPC status codes, and the retry delay of a shed
 * request as google.rpc.Status with google.rpc.RetryInfo.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>

#include "gsrc.h"

grpc_byte_buffer *
codec_pack(const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	grpc_slice sl = grpc_slice_malloc(len);
	protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(sl));
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
	grpc_slice_unref(sl);
	return bb;
}

uint8_t *
codec_bytes(grpc_byte_buffer *bb, size_t *len)
{
	grpc_byte_buffer_reader r;
	if (!grpc_byte_buffer_reader_init(&r, bb))
		return NULL;
	grpc_slice sl = grpc_byte_buffer_reader_readall(&r);
	grpc_byte_buffer_reader_destroy(&r);
	*len = GRPC_SLICE_LENGTH(sl);
	uint8_t *p = malloc(*len + 1);
	if (p != NULL)
		memcpy(p, GRPC_SLICE_START_PTR(sl), *len);
	grpc_slice_unref(sl);
	return p;
}

/*
 * The status a request that ended with outcome o and error e gets: shed
 * RESOURCE_EXHAUSTED, expired DEADLINE_EXCEEDED, bad request
 * INVALID_ARGUMENT, cancelled CANCELLED, internal INTERNAL; upstream and
 * transport UNAVAILABLE, unless the model server's own status says more
 * (429 RESOURCE_EXHAUSTED, 400 INVALID_ARGUMENT, 401 UNAUTHENTICATED,
 * 403 PERMISSION_DENIED, 404 NOT_FOUND).
 */
grpc_status_code
codec_status(enum porch_outcome o, enum porch_error e, int upstream)
{
	if (o == PORCH_COMPLETED)
		return GRPC_STATUS_OK;
	if (o == PORCH_SHED)
		return GRPC_STATUS_RESOURCE_EXHAUSTED;
	if (o == PORCH_EXPIRED)
		return GRPC_STATUS_DEADLINE_EXCEEDED;
	switch (e) {
	case PORCH_ERR_BAD_REQUEST:
		return GRPC_STATUS_INVALID_ARGUMENT;
	case PORCH_ERR_TIMEOUT:
	case PORCH_ERR_DEADLINE:
		return GRPC_STATUS_DEADLINE_EXCEEDED;
	case PORCH_ERR_UPSTREAM:
		switch (upstream) {
		case 400: return GRPC_STATUS_INVALID_ARGUMENT;
		case 401: return GRPC_STATUS_UNAUTHENTICATED;
		case 403: return GRPC_STATUS_PERMISSION_DENIED;
		case 404: return GRPC_STATUS_NOT_FOUND;
		case 429: return GRPC_STATUS_RESOURCE_EXHAUSTED;
		default: return GRPC_STATUS_UNAVAILABLE;
		}
	case PORCH_ERR_TRANSPORT:
		return GRPC_STATUS_UNAVAILABLE;
	case PORCH_ERR_CANCELLED:
		return GRPC_STATUS_CANCELLED;
	case PORCH_ERR_FULL:
	case PORCH_ERR_ADMISSION:
		return GRPC_STATUS_RESOURCE_EXHAUSTED;
	default:
		return GRPC_STATUS_INTERNAL;
	}
}

const char *
codec_status_name(grpc_status_code c)
{
	static const char *const names[] = {
		"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
		"NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
		"FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
		"UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
	};
	return (unsigned)c < sizeof names / sizeof names[0] ? names[c] : "UNKNOWN";
}

/* ---- a little protobuf writer, for the two google.rpc messages ---------- */

struct pw {
	uint8_t *p;
	size_t len, cap;
	int bad;
};

static void
pw_byte(struct pw *w, uint8_t b)
{
	if (w->len == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 64;
		uint8_t *p = realloc(w->p, cap);
		if (p == NULL) {
			w->bad = 1;
			return;
		}
		w->p = p;
		w->cap = cap;
	}
	w->p[w->len++] = b;
}

static void
pw_varint(struct pw *w, uint64_t v)
{
	do {
		pw_byte(w, (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0)));
		v >>= 7;
	} while (v != 0);
}

static void
pw_bytes(struct pw *w, unsigned field, const void *p, size_t n)
{
	pw_varint(w, (uint64_t)field << 3 | 2);
	pw_varint(w, n);
	for (size_t i = 0; i < n; i++)
		pw_byte(w, ((const uint8_t *)p)[i]);
}

/*
 * google.rpc.Status { int32 code = 1; string message = 2; repeated
 * google.protobuf.Any details = 3; } with one Any { string type_url = 1;
 * bytes value = 2; } holding google.rpc.RetryInfo { Duration retry_delay
 * = 1; }, Duration { int64 seconds = 1; int32 nanos = 2; }.
 */
uint8_t *
codec_retry_status(int code, const char *msg, int64_t retry_ms, size_t *len)
{
	struct pw dur = { 0 }, info = { 0 }, any = { 0 }, st = { 0 };
	pw_varint(&dur, 1 << 3);
	pw_varint(&dur, (uint64_t)(retry_ms / 1000));
	if (retry_ms % 1000) {
		pw_varint(&dur, 2 << 3);
		pw_varint(&dur, (uint64_t)(retry_ms % 1000) * 1000000);
	}
	pw_bytes(&info, 1, dur.p, dur.len);
	static const char url[] = "type.googleapis.com/google.rpc.RetryInfo";
	pw_bytes(&any, 1, url, sizeof url - 1);
	pw_bytes(&any, 2, info.p, info.len);
	pw_varint(&st, 1 << 3);
	pw_varint(&st, (uint64_t)code);
	pw_bytes(&st, 2, msg, strlen(msg));
	pw_bytes(&st, 3, any.p, any.len);
	int bad = dur.bad || info.bad || any.bad || st.bad;
	free(dur.p);
	free(info.p);
	free(any.p);
	if (bad) {
		free(st.p);
		return NULL;
	}
	*len = st.len;
	return st.p;
}

double
codec_wall(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

void
codec_rfc3339(double t, char *out, size_t len)
{
	time_t secs = (time_t)t;
	struct tm tm;
	gmtime_r(&secs, &tm);
	char base[32];
	strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, len, "%s.%03dZ", base, (int)((t - (double)secs) * 1000) % 1000);
}
