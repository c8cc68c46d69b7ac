/*
 * http-parsers.c -- the measurement behind the http source's choice of
 * parser (bench/http-parsers runs it).
 *
 *   parse    ns to parse the benchmark's request (request line, headers,
 *            a 108-byte JSON body) with http-parser 2.9 (libhttp-parser),
 *            the parser porch uses, repeated N times on one buffer.
 *   mhd      a whole HTTP server on libmicrohttpd (its own epoll thread,
 *            as MHD runs when it owns the sockets), answering every POST
 *            with the same chat.completion JSON as nginx in bench/http:
 *            `http-parsers mhd PORTFILE` serves until killed.  bench/http-parsers
 *            drives it with wrk exactly as bench/http drives nginx and porch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <http_parser.h>
#include <microhttpd.h>

static const char request[] =
    "POST /v1/chat/completions HTTP/1.1\r\n"
    "Host: 127.0.0.1:8080\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 108\r\n"
    "\r\n"
    "{\"model\":\"echo\",\"messages\":[{\"role\":\"user\",\"content\":\"hello from wrk, say something back\"}],\"max_tokens\":16}";

static const char answer[] =
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"echo\","
    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
    "\"hello from wrk, say something back\"},\"finish_reason\":\"stop\"}],"
    "\"usage\":{\"prompt_tokens\":6,\"completion_tokens\":6,\"total_tokens\":12}}";

static int done;

static int on_complete(http_parser *p) { (void)p; done++; return 0; }
static int on_data(http_parser *p, const char *at, size_t len) { (void)p; (void)at; (void)len; return 0; }

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
parse(long n)
{
	http_parser_settings s;
	memset(&s, 0, sizeof s);
	s.on_url = on_data;
	s.on_header_field = on_data;
	s.on_header_value = on_data;
	s.on_body = on_data;
	s.on_message_complete = on_complete;
	http_parser p;
	double t0 = now();
	for (long i = 0; i < n; i++) {
		http_parser_init(&p, HTTP_REQUEST);
		if (http_parser_execute(&p, &s, request, sizeof request - 1) != sizeof request - 1)
			return 1;
	}
	double t = now() - t0;
	if (done != n)
		return 1;
	printf("http-parser %s: %.0f ns per request (%zu bytes), %ld requests\n",
	    "2.9", t * 1e9 / n, sizeof request - 1, n);
	return 0;
}

/* POST bodies are read and dropped; the answer is the same for all. */
static enum MHD_Result
handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload, size_t *upload_size, void **state)
{
	(void)cls; (void)url; (void)method; (void)version; (void)upload;
	if (*state == NULL) {
		*state = c;
		return MHD_YES;
	}
	if (*upload_size > 0) {
		*upload_size = 0;
		return MHD_YES;
	}
	struct MHD_Response *r = MHD_create_response_from_buffer(sizeof answer - 1,
	    (void *)answer, MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(r, "Content-Type", "application/json");
	enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

static int
serve(const char *portfile)
{
	struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL,
	    0, NULL, NULL, handle, NULL, MHD_OPTION_CONNECTION_LIMIT, 4096,
	    MHD_OPTION_CONNECTION_TIMEOUT, 60, MHD_OPTION_END);
	if (d == NULL)
		return 1;
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	FILE *f = fopen(portfile, "w");
	if (f == NULL)
		return 1;
	fprintf(f, "%u\n", info->port);
	fclose(f);
	for (;;)
		pause();
}

int
main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "mhd") == 0)
		return serve(argv[2]);
	if (argc == 3 && strcmp(argv[1], "parse") == 0)
		return parse(atol(argv[2]));
	fprintf(stderr, "usage: http-parsers parse N | http-parsers mhd PORTFILE\n");
	return 2;
}
