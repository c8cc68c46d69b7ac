/*
 * plugin.c -- the grpc source: its descriptor, parameters and callbacks.
 * See gsrc.h for the files that do the work, and the description below
 * for what it does (it becomes the plugin's part of porch-plugins(7)).
 */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gsrc.h"

static const struct porch_param gsrc_params[] = {
	{ "listen", PORCH_PARAM_STRING, "127.0.0.1:50051", 0, -1, NULL, 0,
	  "address to listen on, HOST:PORT or [IPV6]:PORT; port 0 picks a free port" },
	{ "port-file", PORCH_PARAM_PATH, NULL, 0, -1, NULL, 0,
	  "file to write the port to once listening (for port 0)" },
	{ "tls-cert", PORCH_PARAM_PATH, NULL, 0, -1, NULL, 0,
	  "PEM certificate (chain) to serve TLS with; unset: plaintext (h2c)" },
	{ "tls-key", PORCH_PARAM_PATH, NULL, 0, -1, NULL, 0,
	  "PEM private key of tls-cert (with tls-cert only)" },
	{ "max-receive-size", PORCH_PARAM_SIZE, "4M", 1024, 2147483647.0, NULL, 0,
	  "largest request message; a larger one ends its call RESOURCE_EXHAUSTED unread" },
	{ "max-send-size", PORCH_PARAM_SIZE, "64M", 1024, 2147483647.0, NULL, 0,
	  "largest answer message (a streamed token, the final text)" },
	{ "deadline", PORCH_PARAM_DURATION, "0", 0, 86400000, NULL, 0,
	  "time each request has to complete when its client sets no sooner deadline "
	  "(grpc-timeout); 0: the client's only" },
	{ "retry-after", PORCH_PARAM_DURATION, "1s", 1, 3600000, NULL, 0,
	  "the retry delay RESOURCE_EXHAUSTED answers give (retry-after-ms, RetryInfo)" },
	{ "poller", PORCH_PARAM_ENUM, "loop", 0, 0, "loop|thread", 0,
	  "who polls gRPC: the stage's loop itself (on gRPC's epoll set; a thread when "
	  "gRPC's polling engine has none, or with threads above 1), or a poller thread "
	  "handing completions over" },
	{ "task-ttl", PORCH_PARAM_DURATION, "5m", 0, 604800000, NULL, 0,
	  "how long a finished task is kept for GetTask and SubscribeProgress" },
	{ "task-max", PORCH_PARAM_INTEGER, "1000", 0, 10000000, NULL, 0,
	  "most finished tasks kept; the oldest are forgotten first" },
	{ NULL, 0, NULL, 0, 0, NULL, 0, NULL }
};

static int
gsrc_check(const porch_params *p, porch_check *c)
{
	int cert = porch_param_isset(p, "tls-cert"), key = porch_param_isset(p, "tls-key");
	if (cert != key) {
		porch_check_error(c, cert ? "tls-cert" : "tls-key", "tls-cert and tls-key go "
		    "together: set both for TLS, or neither");
		return -1;
	}
	static const char *const files[] = { "tls-cert", "tls-key" };
	for (size_t i = 0; i < 2; i++) {
		const char *path = porch_param_str(p, files[i]);
		if (path != NULL && access(path, R_OK) != 0) {
			porch_check_error(c, files[i], "cannot read '%s': %s", path, strerror(errno));
			return -1;
		}
	}
	const char *listen = porch_param_str(p, "listen");
	const char *colon = listen ? strrchr(listen, ':') : NULL;
	if (colon == NULL || colon == listen || colon[1] == '\0' ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1) || atol(colon + 1) > 65535) {
		porch_check_error(c, "listen", "'%s' is not HOST:PORT (e.g. 127.0.0.1:50051, "
		    "[::1]:50051, 0.0.0.0:0)", listen ? listen : "");
		return -1;
	}
	return 0;
}

static void gsrc_fini(porch_stage *st);

/* Every live instance, newest first, for a reload's lookups of tasks;
 * under the lock, as shards on other threads attach and detach theirs. */
static struct gsrc *instances;
static pthread_mutex_t instances_lock = PTHREAD_MUTEX_INITIALIZER;

int
gsrc_each(struct gsrc *s, int (*fn)(struct gsrc *o, void *arg), void *arg)
{
	int rc = 0;
	pthread_mutex_lock(&instances_lock);
	for (struct gsrc *o = instances; o != NULL && rc == 0; o = o->next_instance)
		if (o->loop == s->loop)
			rc = fn(o, arg);
	pthread_mutex_unlock(&instances_lock);
	return rc;
}

static void
detach(struct gsrc *s)
{
	pthread_mutex_lock(&instances_lock);
	for (struct gsrc **pp = &instances; *pp != NULL; pp = &(*pp)->next_instance)
		if (*pp == s) {
			*pp = s->next_instance;
			break;
		}
	pthread_mutex_unlock(&instances_lock);
}

void
gsrc_maybe_finished(struct gsrc *s)
{
	if (s->retiring && !s->finished && s->wait_head == NULL) {
		s->finished = 1;
		porch_stage_finished(s->st);
	}
}

/*
 * gRPC's C core runs threads of its own (timers, resolvers) that outlive
 * grpc_shutdown briefly: unloading it under them would crash.  The
 * plugin's file, and with it libgrpc, stays mapped once loaded.
 */
static void
pin_self(void)
{
	Dl_info info;
	if (dladdr((void *)&pin_self, &info) != 0 && info.dli_fname != NULL)
		(void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

static int
gsrc_init_stage(porch_stage *st)
{
	const porch_params *p = porch_stage_params(st);
	struct gsrc *s = calloc(1, sizeof *s);
	if (s == NULL) {
		porch_stage_error(st, "out of memory");
		return -1;
	}
	pin_self();
	s->st = st;
	s->loop = porch_stage_loop(st);
	s->name = porch_stage_name(st);
	s->deadline_ms = porch_param_int(p, "deadline");
	s->retry_after_ms = porch_param_int(p, "retry-after");
	s->task_ttl = (double)porch_param_int(p, "task-ttl") / 1000.0;
	s->task_max = (unsigned)porch_param_int(p, "task-max");
	s->max_recv = (size_t)porch_param_int(p, "max-receive-size");
	s->max_send = (size_t)porch_param_int(p, "max-send-size");
	s->want_thread = strcmp(porch_param_str(p, "poller"), "thread") == 0;
	/* the loop poller is the process's one (gRPC's epoll set and one
	 * completion queue, driven by one loop): with threads, each shard's
	 * copy of the source has a poller thread and a queue of its own */
	unsigned shards = 1;
	(void)porch_stage_shard(st, &shards);
	if (shards > 1)
		s->want_thread = 1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	porch_stage_set_data(st, s);

	/* the threads gRPC starts, and the poller, take no signals: porch's
	 * SIGTERM, SIGHUP and SIGINT are the loop's (they inherit this mask) */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	server_grpc_init();
	char err[600];
	const char *listen = porch_param_str(p, "listen");
	/* threads: every shard listens (gRPC sets SO_REUSEPORT); with port 0
	 * the shards after the first take the port the first one was given */
	char same[300];
	const char *colon = strrchr(listen, ':');
	if (porch_stage_shard(st, NULL) > 0 && colon != NULL && strcmp(colon, ":0") == 0) {
		int port = 0;
		pthread_mutex_lock(&instances_lock);
		for (struct gsrc *o = instances; o != NULL; o = o->next_instance)
			if (strcmp(o->name, s->name) == 0 && porch_stage_shard(o->st, NULL) == 0)
				port = o->port;
		pthread_mutex_unlock(&instances_lock);
		if (port > 0) {
			snprintf(same, sizeof same, "%.*s:%d", (int)(colon - listen), listen, port);
			listen = same;
		}
	}
	int rc = server_start(s, listen, porch_param_str(p, "tls-cert"),
	    porch_param_str(p, "tls-key"), err, sizeof err);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		porch_stage_error(st, "%s", err);
		gsrc_fini(st);
		return -1;
	}
	const char *port_file = porch_param_str(p, "port-file");
	if (port_file != NULL) {
		FILE *f = fopen(port_file, "w");
		if (f == NULL || fprintf(f, "%d\n", s->port) < 0 || fclose(f) != 0) {
			porch_stage_error(st, "port-file '%s': %s", port_file, strerror(errno));
			gsrc_fini(st);
			return -1;
		}
	}
	char host[300];
	snprintf(host, sizeof host, "%.*s", (int)(strrchr(listen, ':') - listen), listen);
	porch_stage_log(st, "listening on %s:%d (gRPC%s, %s)", host, s->port,
	    porch_param_isset(p, "tls-cert") ? ", TLS" : "",
	    s->loop_poller ? "polled by the loop" : "a poller thread");
	pthread_mutex_lock(&instances_lock);
	s->next_instance = instances;
	instances = s;
	pthread_mutex_unlock(&instances_lock);
	return 0;
}

static void
gsrc_start(porch_stage *st)
{
	struct gsrc *s = porch_stage_data(st);
	s->started = 1;
}

static void
gsrc_resume(porch_stage *st)
{
	gen_resume(porch_stage_data(st));
}

static void
gsrc_drain(porch_stage *st)
{
	struct gsrc *s = porch_stage_data(st);
	uint64_t max;
	uint64_t n = porch_stage_inflight(st, &max);
	porch_stage_log(st, "draining: new calls are refused UNAVAILABLE, health says "
	    "NOT_SERVING; %u calls open, %llu requests in flight", s->n_calls,
	    (unsigned long long)n);
	s->draining = 1;
	gen_drain(s);
	health_changed(s);
}

/* A reload replaced the pipeline: the new one's stage takes the port's new
 * connections; the calls open here, and the requests waiting for room,
 * finish here. */
static void
gsrc_retire(porch_stage *st)
{
	struct gsrc *s = porch_stage_data(st);
	uint64_t max;
	uint64_t n = porch_stage_inflight(st, &max);
	porch_stage_log(st, "retiring (reload): no new calls here; %u calls open, %llu "
	    "requests in flight finish on the replaced pipeline", s->n_calls,
	    (unsigned long long)n);
	s->retiring = 1;
	s->draining = 1;
	server_retire(s);
	gsrc_maybe_finished(s);
}

static void
gsrc_outcome(porch_stage *st, porch_msg *m, enum porch_outcome o)
{
	(void)st;
	struct http_origin *origin = http_origin_of(m);
	if (origin == NULL)
		return;
	if (origin->ops == &gen_ops)
		gen_outcome((struct gcall *)origin, m, o);
	else if (origin->ops == &task_ops)
		tasks_outcome((struct gtask *)origin, m, o);
}

static void
gsrc_event(porch_stage *st, porch_msg *m, enum porch_event e, const char *stage,
    const char *detail)
{
	(void)st;
	struct http_origin *origin = http_origin_of(m);
	if (origin != NULL && origin->ops == &task_ops)
		tasks_event((struct gtask *)origin, m, e, stage, detail);
}

static void
gsrc_fini(porch_stage *st)
{
	struct gsrc *s = porch_stage_data(st);
	if (s == NULL)
		return;
	detach(s);
	server_stop(s);
	/* calls whose requests never ended (porch was stopped at once) */
	while (s->calls != NULL) {
		struct gcall *c = s->calls;
		c->refs = 1;
		call_release(c);
	}
	while (s->wait_head != NULL) {
		struct gwait *w = s->wait_head;
		s->wait_head = w->next;
		free(w);
	}
	tasks_fini(s);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s);
	porch_stage_set_data(st, NULL);
	grpc_shutdown();
}

static const char *const gsrc_outputs[] = { "out", NULL };

const struct porch_plugin porch_plugin = {
	PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_STAGE,
	.name = "grpc",
	.summary = "source: a gRPC API (porch.v1 tasks and Generate, grpc.health.v1, "
	    "server reflection)",
	.params = gsrc_params,
	.flags = PORCH_STAGE_SOURCE | PORCH_STAGE_EVERY_SHARD,
	.outputs = gsrc_outputs,
	.init = gsrc_init_stage,
	.start = gsrc_start,
	.resume = gsrc_resume,
	.drain = gsrc_drain,
	.retire = gsrc_retire,
	.outcome = gsrc_outcome,
	.event = gsrc_event,
	.fini = gsrc_fini,
	.check = gsrc_check,
	.description =
	    "A gRPC server (HTTP/2, plaintext or TLS with tls-cert and tls-key) serving "
	    "porch.v1.Porch, the service of the porch.proto file porch installs (in "
	    "share/porch/ under the installation prefix, with health.proto and "
	    "reflection.proto): SubmitTask (name, description, payload bytes, "
	    "timeout_secs, max_retries, session, metadata) answers at once with the "
	    "task's id and timestamp; SubscribeProgress streams the task's progress (its "
	    "history, then live: stage entered and left, retry, tokens as they stream, "
	    "and the outcome with its typed error), then ends OK; GetTask reports it "
	    "(status, result or error, attempts, per-stage timings); CancelTask cancels "
	    "it; HealthCheck answers healthy and porch's version; Generate (text, "
	    "session, metadata, generation settings: model, max_tokens, temperature, "
	    "top_p, stop) streams the answer's tokens, then a final message with done, "
	    "the finish reason, the usage (the worker's, else words counted) and the "
	    "whole text. A token message carries one token, or all those that came "
	    "in one turn of porch's loop (with poller loop: they go as the loop "
	    "turns, before it waits) or while the previous message was still being "
	    "sent (gRPC takes one send at a time), in order: the pieces put "
	    "together are the answer; tokens that come apart go apart. The pipeline ends in the reply sink, which answers gRPC "
	    "requests as it answers HTTP ones, through the source's function table "
	    "(see reply).\n\n"
	    "Generic tools work without a .proto file: grpc.health.v1.Health answers "
	    "Check and Watch (SERVING; NOT_SERVING while porch drains or while a "
	    "worker pool the pipeline calls has no member that can take a call, "
	    "which Watch learns within half a second; porch.v1's HealthCheck then "
	    "says healthy false and names the pool; an unknown "
	    "service is NOT_FOUND for Check and SERVICE_UNKNOWN for Watch) and "
	    "grpc.reflection.v1alpha.ServerReflection lists the three services and "
	    "serves the FileDescriptorProto of each file (compiled in at build time "
	    "with protoc-c --descriptor_set_out). An unknown method is UNIMPLEMENTED.\n\n"
	    "gRPC semantics: the client's deadline (grpc-timeout) is the request's "
	    "deadline (or deadline, when sooner); a call the client cancels, or whose "
	    "deadline passes, cancels its request and its model call. A request's "
	    "outcome is its status: completed OK, shed RESOURCE_EXHAUSTED (with the "
	    "trailing metadata retry-after-ms and a google.rpc.RetryInfo in "
	    "grpc-status-details-bin, from retry-after), expired DEADLINE_EXCEEDED, "
	    "bad request INVALID_ARGUMENT, upstream and transport UNAVAILABLE (or the "
	    "model server's own meaning: 429 RESOURCE_EXHAUSTED, 400 INVALID_ARGUMENT, "
	    "401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 NOT_FOUND), cancelled "
	    "CANCELLED, internal INTERNAL. A malformed request message is "
	    "INVALID_ARGUMENT; one larger than max-receive-size RESOURCE_EXHAUSTED. "
	    "Every request made ends in exactly one outcome, counted as the http "
	    "source's are. Behind a full 'block' channel a request waits with its call "
	    "open (resume emits it); at the pipeline's max-inflight it is shed at "
	    "once. On SIGTERM new calls are refused UNAVAILABLE, health turns "
	    "NOT_SERVING, and the streams in flight run to their end before porch "
	    "exits. On a reload (SIGHUP) the new pipeline's stage listens on the same "
	    "port beside the old one (gRPC sets SO_REUSEPORT) and the old one stops "
	    "listening at once (grpc_server_shutdown_and_notify), so new connections "
	    "reach the new pipeline while the calls open on the old one, streams and "
	    "watched tasks included, finish there; its tasks are found through the new "
	    "stage of the same name, and its finished ones go over to it when it ends. "
	    "A Health Watch on the old stage ends (UNAVAILABLE), for its client to "
	    "watch again. With port 0 the new stage picks a new port (port-file has "
	    "it). A port another socket holds without SO_REUSEPORT is in use: the "
	    "stage does not start.\n\n"
	    "How gRPC's completion queue meets the libev loop: gRPC's C core reports "
	    "each finished operation as an event on a completion queue, and makes I/O "
	    "progress only while a thread is in grpc_completion_queue_next. With "
	    "poller loop (the default) that thread is the loop's own: gRPC's polling "
	    "engine on Linux (epoll1) keeps its file descriptors in one epoll set, "
	    "whose fd gRPC logs when it makes it (porch reads it from that line at "
	    "grpc_init); the loop watches it, and when it is readable, and before the "
	    "loop blocks after a batch was started, calls grpc_completion_queue_next "
	    "without waiting until nothing more comes, doing gRPC's reads and writes "
	    "and running each completion's handler there: no other thread is woken, "
	    "so a call costs a quarter to a half less CPU than with a poller thread "
	    "(bench/grpc). While "
	    "calls are open a 5 ms timer looks at gRPC too, for what its own threads "
	    "complete (a call whose deadline passed, ended by gRPC's timer thread, "
	    "kicks no poller while the loop is elsewhere). The grpc stages of a "
	    "process share one completion queue. With poller thread, or when gRPC "
	    "logs no epoll set (another polling engine: GRPC_POLL_STRATEGY), one "
	    "poller thread per stage waits in grpc_completion_queue_next; each event "
	    "(a tag and a success flag) goes into a mutex-protected queue and ev_async "
	    "wakes the loop, whose callback runs each tag's handler on the loop "
	    "thread: each completion is a hop between two threads. Either way every "
	    "porch call, and every grpc_call_start_batch, happens on the loop thread, "
	    "and the loop never blocks on gRPC; the stage's 'listening on' line says "
	    "which poller it has. A pipeline's grpc stages should have the same "
	    "poller: a poller thread does the I/O of all of gRPC's sockets, and the "
	    "loop's calls then learn of theirs from the 5 ms timer.\n\n"
	    "Tasks are the grpc source's own, not shared with an http source in the "
	    "same pipeline: the http source keeps its tasks inside its own plugin file "
	    "(struct task in plugins/http/tasks.c, reached only through the http "
	    "source's instance list), and no part of the plugin interface lets one "
	    "source find another's tasks or route a traced request's events and "
	    "outcome to a source that did not make it (events and outcomes go to the "
	    "source whose porch_msg_new made the message). Sharing them needs either "
	    "an interface addition (a store of tasks in the runtime) or one plugin "
	    "serving both protocols; until then a task submitted over gRPC is watched "
	    "over gRPC, and one submitted over HTTP over HTTP.",
};
