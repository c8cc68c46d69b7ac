/*
 * health.c -- what generic gRPC tools ask for: porch.v1's HealthCheck,
 * the standard grpc.health.v1.Health (Check, and Watch, which streams a
 * status each time it changes: SERVING, and NOT_SERVING while porch
 * drains or while a worker pool the pipeline calls has no member that can
 * take a call, looked at every HEALTH_POLL seconds while someone watches),
 * and server reflection (grpc.reflection.v1alpha), which lists
 * the services and serves the FileDescriptorProto of each .proto file
 * porch ships (compiled in at build time: descriptors.c, made by protoc-c
 * --descriptor_set_out), so a client needs no .proto file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gsrc.h"
#include "health.pb-c.h"
#include "reflection.pb-c.h"

/* descriptors.c: a FileDescriptorSet of porch.proto, health.proto and
 * reflection.proto */
extern const unsigned char gsrc_descriptors[];
extern const size_t gsrc_descriptors_len;

static const char *const services[] = {
	"porch.v1.Porch", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
	NULL
};

/* How often watchers' readiness is looked at (a pool's members come and
 * go by their health, which tells nobody). */
#define HEALTH_POLL 0.5

/* Serving: not draining, and no pool the pipeline calls out of members. */
static int
serving(const struct gsrc *s, const char **why)
{
	const char *pool = NULL;
	if (s->draining) {
		*why = "draining";
		return 0;
	}
	if (s->st != NULL && !s->stopping && (pool = porch_stage_pipeline_unready(s->st)) != NULL) {
		*why = pool;
		return 0;
	}
	*why = "serving";
	return 1;
}

/* ---- porch.v1 HealthCheck ----------------------------------------------- */

void
health_porch(struct gcall *c, const uint8_t *req, size_t len)
{
	Porch__V1__HealthCheckRequest *r = porch__v1__health_check_request__unpack(NULL, len, req);
	if (r == NULL) {
		call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "the request is not a valid "
		    "porch.v1.HealthCheckRequest");
		return;
	}
	porch__v1__health_check_request__free_unpacked(r, NULL);
	Porch__V1__HealthCheckResponse a = PORCH__V1__HEALTH_CHECK_RESPONSE__INIT;
	const char *why;
	char status[300];
	a.healthy = serving(c->s, &why);
	a.version = (char *)porch_version();
	if (a.healthy || c->s->draining)
		snprintf(status, sizeof status, "%s", why);
	else
		snprintf(status, sizeof status, "not ready: pool '%s' has no member that can "
		    "take a call", why);
	a.status = status;
	call_send(c, &a.base);
	call_finish(c, GRPC_STATUS_OK, NULL);
}

/* ---- grpc.health.v1 ----------------------------------------------------- */

static int
known_service(const char *name)
{
	if (name == NULL || *name == '\0')
		return 1; /* the server as a whole */
	for (size_t i = 0; services[i] != NULL; i++)
		if (strcmp(name, services[i]) == 0)
			return 1;
	return 0;
}

static void
send_status(struct gcall *c)
{
	Grpc__Health__V1__HealthCheckResponse a = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
	const char *why;
	a.status = !c->health_service_known ?
	    GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN :
	    !serving(c->s, &why) ?
	    GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING :
	    GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
	call_send(c, &a.base);
}

/* The service a health request names; -1 after answering. */
static int
service_of(struct gcall *c, const uint8_t *req, size_t len)
{
	Grpc__Health__V1__HealthCheckRequest *r =
	    grpc__health__v1__health_check_request__unpack(NULL, len, req);
	if (r == NULL) {
		call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "the request is not a valid "
		    "grpc.health.v1.HealthCheckRequest");
		return -1;
	}
	c->health_service_known = known_service(r->service);
	grpc__health__v1__health_check_request__free_unpacked(r, NULL);
	return 0;
}

void
health_check(struct gcall *c, const uint8_t *req, size_t len)
{
	if (service_of(c, req, len) != 0)
		return;
	if (!c->health_service_known) {
		call_finish(c, GRPC_STATUS_NOT_FOUND, "unknown service");
		return;
	}
	send_status(c);
	call_finish(c, GRPC_STATUS_OK, NULL);
}

static void
on_health_poll(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	struct gsrc *s = t->data;
	const char *why;
	int now = serving(s, &why);
	if (now != s->health_sent)
		health_changed(s);
}

void
health_watch(struct gcall *c, const uint8_t *req, size_t len)
{
	if (service_of(c, req, len) != 0)
		return;
	struct gsrc *s = c->s;
	const char *why;
	s->health_sent = serving(s, &why);
	send_status(c);
	call_hold(c);
	c->next_watch = s->health_watchers;
	s->health_watchers = c;
	if (!ev_is_active(&s->health_timer)) {
		ev_timer_init(&s->health_timer, on_health_poll, HEALTH_POLL, HEALTH_POLL);
		s->health_timer.data = s;
		ev_timer_start(s->loop, &s->health_timer);
		ev_unref(s->loop); /* watchers alone must not keep porch running */
	}
}

static void
health_poll_stop(struct gsrc *s)
{
	if (s->health_watchers == NULL && ev_is_active(&s->health_timer)) {
		ev_ref(s->loop);
		ev_timer_stop(s->loop, &s->health_timer);
	}
}

void
health_unwatch(struct gcall *c)
{
	for (struct gcall **pp = &c->s->health_watchers; *pp != NULL; pp = &(*pp)->next_watch)
		if (*pp == c) {
			*pp = c->next_watch;
			c->next_watch = NULL;
			health_poll_stop(c->s);
			call_release(c);
			return;
		}
}

void
health_changed(struct gsrc *s)
{
	const char *why;
	s->health_sent = serving(s, &why);
	for (struct gcall *c = s->health_watchers; c != NULL; c = c->next_watch)
		if (c->health_service_known)
			send_status(c);
}

void
health_end_watches(struct gsrc *s)
{
	while (s->health_watchers != NULL) {
		struct gcall *c = s->health_watchers;
		s->health_watchers = c->next_watch;
		c->next_watch = NULL;
		call_finish(c, GRPC_STATUS_UNAVAILABLE, "porch is shutting down");
		call_release(c);
	}
	health_poll_stop(s);
}

/* ---- reflection ----------------------------------------------------------- */

/* A protobuf varint at *p (< end); -1 when malformed. */
static int
varint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; *p < end && shift < 64; shift += 7) {
		unsigned char b = *(*p)++;
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return 0;
	}
	return -1;
}

/* A string field (name = 1, package = 2) of a FileDescriptorProto. */
static int
file_field(const unsigned char *p, size_t n, unsigned want, const char **s, size_t *len)
{
	const unsigned char *end = p + n;
	while (p < end) {
		uint64_t key, v;
		if (varint(&p, end, &key) != 0)
			return -1;
		switch (key & 7) {
		case 0:
			if (varint(&p, end, &v) != 0)
				return -1;
			break;
		case 2:
			if (varint(&p, end, &v) != 0 || v > (uint64_t)(end - p))
				return -1;
			if ((key >> 3) == want) {
				*s = (const char *)p;
				*len = (size_t)v;
				return 0;
			}
			p += v;
			break;
		case 1: p += 8; break;
		case 5: p += 4; break;
		default: return -1;
		}
	}
	return -1;
}

/*
 * The FileDescriptorProto of the file named name (by_symbol 0), or of the
 * file whose package holds the symbol name (by_symbol 1): its bytes in
 * *out and *outlen; -1 when there is none.
 */
static int
find_file(const char *name, int by_symbol, const unsigned char **out, size_t *outlen)
{
	const unsigned char *p = gsrc_descriptors, *end = p + gsrc_descriptors_len;
	size_t nlen = strlen(name);
	while (p < end) {
		uint64_t key, len;
		if (varint(&p, end, &key) != 0 || varint(&p, end, &len) != 0 ||
		    len > (uint64_t)(end - p))
			return -1;
		const char *s;
		size_t slen;
		if (key == ((1 << 3) | 2) && file_field(p, len, by_symbol ? 2 : 1, &s, &slen) == 0) {
			int match = by_symbol ?
			    nlen > slen && memcmp(name, s, slen) == 0 && name[slen] == '.' :
			    nlen == slen && memcmp(name, s, slen) == 0;
			if (match) {
				*out = p;
				*outlen = (size_t)len;
				return 0;
			}
		}
		p += len;
	}
	return -1;
}

void
reflect_message(struct gcall *c, const uint8_t *req, size_t len)
{
	Grpc__Reflection__V1alpha__ServerReflectionRequest *r =
	    grpc__reflection__v1alpha__server_reflection_request__unpack(NULL, len, req);
	if (r == NULL) {
		call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "the request is not a valid "
		    "grpc.reflection.v1alpha.ServerReflectionRequest");
		return;
	}
	Grpc__Reflection__V1alpha__ServerReflectionResponse a =
	    GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__INIT;
	Grpc__Reflection__V1alpha__ListServiceResponse ls =
	    GRPC__REFLECTION__V1ALPHA__LIST_SERVICE_RESPONSE__INIT;
	Grpc__Reflection__V1alpha__ServiceResponse sr[3];
	Grpc__Reflection__V1alpha__ServiceResponse *srp[3];
	Grpc__Reflection__V1alpha__FileDescriptorResponse fd =
	    GRPC__REFLECTION__V1ALPHA__FILE_DESCRIPTOR_RESPONSE__INIT;
	Grpc__Reflection__V1alpha__ErrorResponse er =
	    GRPC__REFLECTION__V1ALPHA__ERROR_RESPONSE__INIT;
	ProtobufCBinaryData file;
	a.valid_host = r->host ? r->host : (char *)"";
	a.original_request = r;
	const unsigned char *bytes;
	size_t blen;
	switch (r->message_request_case) {
	case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
		for (size_t i = 0; i < 3; i++) {
			grpc__reflection__v1alpha__service_response__init(&sr[i]);
			sr[i].name = (char *)services[i];
			srp[i] = &sr[i];
		}
		ls.n_service = 3;
		ls.service = srp;
		a.message_response_case =
		    GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
		a.list_services_response = &ls;
		break;
	case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
	case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL: {
		int by_symbol = r->message_request_case ==
		    GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
		const char *name = by_symbol ? r->file_containing_symbol : r->file_by_filename;
		if (name != NULL && find_file(name, by_symbol, &bytes, &blen) == 0) {
			file.data = (uint8_t *)bytes;
			file.len = blen;
			fd.n_file_descriptor_proto = 1;
			fd.file_descriptor_proto = &file;
			a.message_response_case =
			    GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
			a.file_descriptor_response = &fd;
			break;
		}
		er.error_code = GRPC_STATUS_NOT_FOUND;
		er.error_message = (char *)(by_symbol ? "symbol not found" : "file not found");
		a.message_response_case =
		    GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
		a.error_response = &er;
		break;
	}
	default:
		er.error_code = GRPC_STATUS_UNIMPLEMENTED;
		er.error_message = (char *)"porch's protos declare no extensions";
		a.message_response_case =
		    GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
		a.error_response = &er;
		break;
	}
	call_send(c, &a.base);
	grpc__reflection__v1alpha__server_reflection_request__free_unpacked(r, NULL);
	call_recv(c); /* the next request, or the client's end */
}
