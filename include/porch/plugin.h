/*
 * porch/plugin.h -- the whole interface between porch and its plugins.
 *
 * A plugin is a shared object that exports one symbol, PORCH_PLUGIN_SYMBOL
 * ("porch_plugin"), of type `const struct porch_plugin`.  The descriptor
 * says what the plugin is (a stage or a worker), which ports and parameters
 * it has, and which callbacks it implements.  Everything the runtime owns
 * (stages, workers, messages, calls, parameters) is an opaque pointer
 * reached through the functions below, so the runtime can change without
 * breaking plugins that are already built.
 *
 * Versioning: PORCH_ABI_MAJOR changes when an existing field or function
 * changes meaning; a plugin built for another major is refused.  MINOR grows
 * when fields are appended to struct porch_plugin or functions are added; a
 * plugin whose minor is above the host's is refused.  The descriptor records
 * its own size, so a host reads only the fields the plugin knows about.
 *
 * Threading: every callback runs on the loop thread of the stage or worker
 * it belongs to.  Callbacks must not block; use the loop (porch_*_loop)
 * for timers and I/O and complete messages later.  With threads="N" (ABI
 * 1.6) N loops run at once, each with its own instance of every stage and
 * worker: instance state needs nothing, but a plugin's global state is
 * shared by the threads and must be locked (or built once and only read:
 * porch_shared).
 *
 * See porch-plugin(3) for a complete example.
 */
#ifndef PORCH_PLUGIN_H
#define PORCH_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PORCH_ABI_MAJOR 1
#define PORCH_ABI_MINOR 6

#define PORCH_PLUGIN_SYMBOL "porch_plugin"

/* Fills the header fields of a descriptor: use it first in the initializer. */
#define PORCH_PLUGIN_HEADER \
	.abi_major = PORCH_ABI_MAJOR, .abi_minor = PORCH_ABI_MINOR, \
	.size = sizeof(struct porch_plugin)

typedef struct porch_stage porch_stage;   /* a stage instance */
typedef struct porch_worker porch_worker; /* a worker instance */
typedef struct porch_msg porch_msg;       /* one request in flight */
typedef struct porch_call porch_call;     /* one inference call */
typedef struct porch_params porch_params; /* an instance's parsed parameters */
typedef struct porch_check porch_check;   /* a load-time check in progress (1.1) */
struct ev_loop;

enum porch_kind {
	PORCH_KIND_STAGE = 1,
	PORCH_KIND_WORKER = 2,
};

/* Stage flags. */
#define PORCH_STAGE_SOURCE      0x1u /* takes no input; creates requests */
#define PORCH_STAGE_NEEDS_WORKER 0x2u /* its <stage> must name a worker= */
/* ABI 1.3: may rewrite the message text; after a worker's stage that
 * means the answer (see porch_stage_answers_edited) */
#define PORCH_STAGE_EDITS_TEXT   0x4u
/* ABI 1.4: joins the copies a fan-out made (porch_join); its inputs must
 * come from one fan-out, which porch check verifies */
#define PORCH_STAGE_JOINS        0x8u
/* ABI 1.4: its <stage> may name a worker= or not; the check callback
 * learns which with porch_check_worker (a stage that calls a worker only
 * for some settings: see porch_infer_aside) */
#define PORCH_STAGE_OPTIONAL_WORKER 0x10u
/* ABI 1.6: a source that runs on every shard (threads="N"), each copy
 * taking its own requests, which stay on its shard (the http source: one
 * listener per shard).  Without it a source runs on shard 0 only, and
 * each request it makes goes to the shard its session hashes to
 * (porch_shard), so one session's requests keep their order. */
#define PORCH_STAGE_EVERY_SHARD     0x20u

/* ---- parameters -------------------------------------------------------- */

enum porch_param_type {
	PORCH_PARAM_INTEGER = 1, /* decimal integer, within [min, max]        */
	PORCH_PARAM_DURATION,    /* "250ms", "2s", "1m", "1h"; read in ms      */
	PORCH_PARAM_SIZE,        /* "512", "4k", "16M", "1G"; read in bytes    */
	PORCH_PARAM_BOOLEAN,     /* true/false, yes/no, on/off, 1/0            */
	PORCH_PARAM_STRING,      /* any text                                   */
	PORCH_PARAM_PATH,        /* a file path, relative to the pipeline file */
	PORCH_PARAM_ENUM,        /* one of `choices`, a '|'-separated list     */
	PORCH_PARAM_LIST,        /* comma-separated strings                    */
	PORCH_PARAM_NUMBER,      /* decimal fraction, within [min, max]        */
};

#define PORCH_PARAM_REQUIRED   0x1u /* must be given in the pipeline file   */
#define PORCH_PARAM_RELOADABLE 0x2u /* may change on SIGHUP without restart */

/*
 * One row of a plugin's parameter table; the table ends with a row whose
 * name is NULL.  Bounds apply to integer, duration (ms), size (bytes) and
 * number; min > max means unbounded.  The default is written as a user would
 * write the value, and is validated like one.
 */
struct porch_param {
	const char *name;
	enum porch_param_type type;
	const char *default_value; /* NULL: no default */
	double min, max;
	const char *choices;       /* enum only: "a|b|c" */
	unsigned flags;            /* PORCH_PARAM_* */
	const char *doc;           /* one line, for porch plugins and man pages */
};

/* Typed reads of a parsed parameter; the name must be in the table. */
int64_t porch_param_int(const porch_params *p, const char *name);   /* integer, duration (ms), size (bytes), boolean */
double porch_param_number(const porch_params *p, const char *name);
const char *porch_param_str(const porch_params *p, const char *name); /* string, path, enum, list; NULL if unset */
int porch_param_isset(const porch_params *p, const char *name);    /* given in the file or by --set */

/* ---- outcomes and errors ----------------------------------------------- */

enum porch_outcome {
	PORCH_COMPLETED = 1,
	PORCH_FAILED,
	PORCH_SHED,
	PORCH_EXPIRED,
};

/* Typed reasons for a failure, reported with the message. */
enum porch_error {
	PORCH_ERR_NONE = 0,
	PORCH_ERR_BAD_REQUEST, /* the request itself is malformed */
	PORCH_ERR_TIMEOUT,     /* a call took longer than allowed */
	PORCH_ERR_UPSTREAM,    /* the model server answered with an error */
	PORCH_ERR_TRANSPORT,   /* connection or protocol failure */
	PORCH_ERR_CANCELLED,   /* the call was cancelled */
	PORCH_ERR_INTERNAL,    /* a bug or resource exhaustion in porch */
	PORCH_ERR_FULL,        /* refused by a full channel (shed) */
	PORCH_ERR_ADMISSION,   /* refused by the pipeline's in-flight bound */
	PORCH_ERR_DEADLINE,    /* the request's deadline passed */
	PORCH_ERR_UNROUTED,    /* emitted to a port with no channel */
};

const char *porch_outcome_name(enum porch_outcome o); /* "completed", ... */
/* ABI 1.2: the outcome a request ending with this error has: completed
 * (none), expired (deadline), shed (full, admission) or failed. */
enum porch_outcome porch_error_outcome(enum porch_error e);
const char *porch_error_name(enum porch_error e);     /* "timeout", ...   */

/* ---- messages ---------------------------------------------------------- */

/*
 * A source makes a request with porch_msg_new, fills it, and hands it to the
 * graph with porch_emit.  Other stages receive messages in their process
 * callback and must end their hold on each one exactly once, then or later,
 * with porch_emit/porch_emit_port (pass it on), porch_done (a sink is
 * finished with it) or porch_fail.  After that the stage must not touch it.
 */
porch_msg *porch_msg_new(porch_stage *source);
/*
 * The strings the accessors below return (text, session, metadata, input)
 * are the message's: valid until it changes them or the stage's hold on it
 * ends.  A fan-out's copy reads its request's until a stage changes it, and
 * gets bytes of its own when the join decides without it: a stage that
 * holds a message across loop iterations asks for them again rather than
 * keeping a pointer.
 */
uint64_t porch_msg_id(const porch_msg *m);
const char *porch_msg_session(const porch_msg *m);
int porch_msg_set_session(porch_msg *m, const char *session, size_t len);
const char *porch_msg_text(const porch_msg *m, size_t *len);
int porch_msg_set_text(porch_msg *m, const char *text, size_t len);
int porch_msg_append_text(porch_msg *m, const char *text, size_t len);
const char *porch_msg_meta(const porch_msg *m, const char *key);
int porch_msg_set_meta(porch_msg *m, const char *key, const char *value);
/* Iterate metadata: i from 0 until it returns NULL. */
const char *porch_msg_meta_at(const porch_msg *m, size_t i, const char **value);
void porch_msg_set_deadline(porch_msg *m, int64_t ms_from_now); /* <= 0: none */
double porch_msg_deadline(const porch_msg *m); /* loop time, 0: none */
unsigned porch_msg_attempts(const porch_msg *m);
void porch_msg_add_attempt(porch_msg *m);
enum porch_error porch_msg_error(const porch_msg *m);
const char *porch_msg_error_text(const porch_msg *m); /* "" if none */
void *porch_msg_origin_data(const porch_msg *m);   /* set by the source */
void porch_msg_set_origin_data(porch_msg *m, void *data);

/* ABI 1.1 */
/* The text as its source first emitted it (the request's input). */
const char *porch_msg_input(const porch_msg *m, size_t *len);
/* The stage that failed the message, or "" (for dead letters). */
const char *porch_msg_error_stage(const porch_msg *m);
/* The last worker call's upstream status (e.g. HTTP 429), 0 if none. */
int porch_msg_status(const porch_msg *m);
/* How long the upstream asked to wait before retrying (ms), 0 if it did not. */
int64_t porch_msg_retry_after(const porch_msg *m);
/*
 * The stages the message has passed, in order: i from 0 until it returns
 * NULL.  *ms is the time the stage held it (loop clock, so a stage that
 * answers at once shows 0).
 */
const char *porch_msg_timing_at(const porch_msg *m, size_t i, double *ms);
/*
 * A stage's own pointer for one message, e.g. the state of a stream it is
 * filtering; NULL until set.  When the message ends while the pointer is
 * set, the stage's forget callback gets it (to free it); a stage that frees
 * it itself sets it back to NULL first.
 */
void *porch_msg_local(const porch_stage *st, const porch_msg *m);
void porch_msg_set_local(porch_stage *st, porch_msg *m, void *local);

/* Return codes of porch_emit and porch_emit_port. */
#define PORCH_OK        0  /* queued (or held back by a full 'block' channel) */
#define PORCH_REFUSED  -1  /* refused; the request has ended (shed/failed)   */

int porch_emit(porch_stage *st, porch_msg *m);                /* port "out" */
int porch_emit_port(porch_stage *st, int port, porch_msg *m); /* by index  */
void porch_done(porch_stage *st, porch_msg *m);
void porch_fail(porch_stage *st, porch_msg *m, enum porch_error why,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ---- cancellation, events and logs (ABI 1.2) ------------------------- */

/*
 * The origin's client has gone (a closed connection): the request is no
 * longer wanted.  One waiting in a channel ends there as failed/cancelled;
 * one held by a stage with a cancel_msg callback is handed to it, and the
 * stage ends it soon (porch_fail with PORCH_ERR_CANCELLED); one held by a
 * stage without the callback ends when that stage lets it go.
 */
void porch_msg_cancel(porch_msg *m, const char *why);
int porch_msg_cancelled(const porch_msg *m);

/* What happened to a traced request, for its origin's event callback. */
enum porch_event {
	PORCH_EVENT_ENTER = 1,  /* a stage took it */
	PORCH_EVENT_LEAVE,      /* a stage passed it on */
	PORCH_EVENT_RETRY,      /* a stage tries again (detail says why) */
	PORCH_EVENT_FALLBACK,   /* ABI 1.5: a pool sent a call to its fallback */
};
const char *porch_event_name(enum porch_event e); /* "enter", ... */
/* The origin asks for events about m, through its event callback. */
void porch_msg_set_traced(porch_msg *m, int traced);
/* A stage reports an event about m (PORCH_EVENT_RETRY), if m is traced. */
void porch_msg_event(porch_stage *st, porch_msg *m, enum porch_event e,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* One line on stderr about m: "porch: stage 'S': request ID (session X
 * [, request-id R]): ..." -- request-id is m's "request-id" metadata. */
void porch_msg_log(const porch_stage *st, const porch_msg *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- the pipeline, seen from a stage (ABI 1.2) ------------------------ */

const char *porch_version(void);  /* porch's version, e.g. "0.1.0" */
/* The pipeline's statistics in the Prometheus text format (version 0.0.4),
 * malloc'ed; the caller frees it.  NULL when out of memory. */
char *porch_metrics_text(const porch_stage *st);
/* The pipeline's workers: i from 0 until it returns NULL. */
porch_worker *porch_stage_pipeline_worker(const porch_stage *st, size_t i);
/* A worker's "model" parameter when its plugin has one, else its name. */
const char *porch_worker_model(const porch_worker *w);
/* Requests in flight in the whole pipeline, and its bound (max-inflight). */
uint64_t porch_stage_inflight(const porch_stage *st, uint64_t *max);
/* ABI 1.5: the name of a pool that a stage of the pipeline calls and that
 * cannot take a call now (every member ejected, no fallback that can),
 * or NULL when there is none: the pipeline is not ready (/readyz). */
const char *porch_stage_pipeline_unready(const porch_stage *st);

/* ---- streaming (ABI 1.1) ------------------------------------------------ */

/*
 * Passes a piece of m's answer downstream before m itself goes on: st is
 * the stage holding m (inference, as tokens arrive) or a stage passing on a
 * piece it got in its chunk callback.  The piece goes to the stage at the
 * end of the channel of st's first output port, at once, through that
 * stage's piece callback (ABI 1.3) or else its chunk callback; a stage with
 * neither ends the stream there (it sees the whole text when m arrives).
 * The message arriving through process() ends its stream.
 * Returns 0 if a stage took the piece, -1 if none did (stop streaming).
 */
int porch_stream(porch_stage *st, porch_msg *m, const char *text, size_t len);

/* ---- answers beyond their text (ABI 1.3) -------------------------------- */

/*
 * What a streamed piece of an answer carries besides its text, placed as
 * OpenAI's chat completion chunk places it (the lingua franca of model
 * servers).  Each member is NULL or a JSON object's text, e.g.
 * {"tool_calls":[...]}, whose members go into that place of the chunk a
 * client gets; the piece's owner keeps them, valid during the call only.
 */
struct porch_piece {
	const char *chunk;   /* top level: system_fingerprint, service_tier, ... */
	const char *choice;  /* choices[0]: logprobs, ... */
	const char *delta;   /* choices[0].delta: tool_calls, refusal, ... */
};

/*
 * Metadata a worker sets on the answer (porch_call_set_meta), for the
 * stages after it and the source that answers the client:
 *   "finish-reason"   why the answer ended: stop, length, tool_calls,
 *                     content_filter (as the upstream said, or the worker)
 *   "usage"           token counts, a JSON object as OpenAI's "usage"
 *                     (prompt_tokens, completion_tokens, total_tokens and
 *                     any *_details), when the worker knows them
 *   "openai.extra"    top-level members of the upstream's answer beyond
 *                     id, object, created, model, choices and usage
 *   "openai.choice"   members of choices[0] beyond index, message or text
 *                     or delta, and finish_reason (logprobs ...)
 *   "openai.message"  members of choices[0].message beyond role and
 *                     content (tool_calls, refusal, annotations ...); for a
 *                     streamed answer, its deltas put together
 *   "openai.choices"  choices[1] onwards (n > 1), a JSON array
 *   "openai.error"    the upstream's error object, when it refused
 * (JSON object texts, as struct porch_piece's).  A source that received
 * the request in OpenAI's form passes it on in "openai.request" (the
 * request body, JSON), and a worker that speaks that form forwards it.
 */

/* Streams a piece with its extras, as porch_stream; pc may be NULL.  A
 * stage with a piece callback gets all of it; one with only a chunk
 * callback gets the text (nothing, for a piece without text, though the
 * stream goes on). */
int porch_stream_piece(porch_stage *st, porch_msg *m, const char *text, size_t len,
    const struct porch_piece *pc);
/*
 * 1 when, on some path from st, a stage that edits text (PORCH_STAGE_EDITS_TEXT)
 * comes after a stage that calls a worker: the answer st gets back may not
 * be the worker's (so n > 1 choices cannot be kept in step), else 0.
 */
int porch_stage_answers_edited(const porch_stage *st);

/* ---- stages ------------------------------------------------------------ */

const char *porch_stage_name(const porch_stage *st);
const porch_params *porch_stage_params(const porch_stage *st);
struct ev_loop *porch_stage_loop(const porch_stage *st);
void *porch_stage_data(const porch_stage *st);
void porch_stage_set_data(porch_stage *st, void *data);
/* Index of a declared output port by name, -1 if none ("error" included). */
int porch_stage_port(const porch_stage *st, const char *port);
/*
 * For sources: how many requests the graph can take now without queueing
 * behind a full 'block' channel or passing the pipeline's in-flight bound.
 * When it is 0, stop reading; the resume callback says when to go on.
 */
size_t porch_stage_ready(const porch_stage *st);
/* For sources: no more requests will come (end of input).  */
void porch_stage_finished(porch_stage *st);
/* Report why init failed; shown to the user with the stage's name. */
void porch_stage_error(porch_stage *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A line in porch's log at level info, from st (porch_log). */
void porch_stage_log(const porch_stage *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- the log (ABI 1.5) -------------------------------------------------- */

enum porch_log_level {
	PORCH_LOG_ERROR = 1, /* something failed that an operator must see   */
	PORCH_LOG_WARN,      /* something is wrong or about to be            */
	PORCH_LOG_INFO,      /* what happened: start, drain, reload          */
	PORCH_LOG_DEBUG,     /* detail for finding a fault                   */
};

/*
 * Writes one line to porch's log (stderr), with the time, the level and
 * the stage (porch_log) or worker (porch_worker_log) it comes from; m, or
 * NULL, is the request the line is about (its id and session go with the
 * line in --log-format json).  A level above --log-level writes nothing.
 * Never put a secret (an API key, a key file's contents) in a line.
 */
void porch_log(const porch_stage *st, enum porch_log_level level, const porch_msg *m,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void porch_worker_log(const porch_worker *w, enum porch_log_level level,
    const porch_msg *m, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* 1 when a line at level would be written (to skip costly formatting). */
int porch_log_enabled(enum porch_log_level level);

/* ---- inference calls (stage side) -------------------------------------- */

/* tokens arrive in order; end comes once, with PORCH_ERR_NONE on success */
typedef void porch_token_fn(void *ctx, const char *token, size_t len);
typedef void porch_end_fn(void *ctx, enum porch_error err, const char *why);

/*
 * Starts a call to the stage's worker with the message's text as prompt and
 * its metadata as generation settings (model, max-tokens, temperature,
 * top-p, stop; since ABI 1.4 response-format: "json" asks for an answer
 * that is one JSON object, where the worker can ask its model for that).  The callbacks may run before this returns.  Returns NULL
 * (and calls nothing) only when no call could be made.
 */
porch_call *porch_infer(porch_stage *st, porch_msg *m,
    porch_token_fn *on_token, porch_end_fn *on_end, void *ctx);
/* ABI 1.3: a piece of the answer with its extras (pc may be NULL). */
typedef void porch_piece_fn(void *ctx, const char *text, size_t len,
    const struct porch_piece *pc);
/* As porch_infer, with pieces: the worker's extras reach on_piece. */
porch_call *porch_infer_pieces(porch_stage *st, porch_msg *m,
    porch_piece_fn *on_piece, porch_end_fn *on_end, void *ctx);
/* Cancels a call that has not ended; its end callback is not called. */
void porch_infer_cancel(porch_call *call);
/* ABI 1.5: cancels a call the stage gives up on for a reason of the
 * worker's making (PORCH_ERR_TIMEOUT: it did not answer in time), which
 * counts against the health of the pool member that had it (porch.xml(5),
 * POOLS); porch_infer_cancel is for calls no longer wanted. */
void porch_infer_abandon(porch_call *call, enum porch_error why);

/* ---- inference calls (worker side) ------------------------------------- */

const char *porch_call_prompt(const porch_call *c, size_t *len);
const char *porch_call_option(const porch_call *c, const char *key);
const char *porch_call_session(const porch_call *c);
void *porch_call_data(const porch_call *c);
void porch_call_set_data(porch_call *c, void *data);
void porch_call_token(porch_call *c, const char *token, size_t len);
void porch_call_done(porch_call *c);
void porch_call_fail(porch_call *c, enum porch_error why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* ABI 1.1: call before porch_call_fail; read back with porch_msg_status
 * and porch_msg_retry_after by the stage, which decides on retries. */
void porch_call_set_status(porch_call *c, int status);
void porch_call_set_retry_after(porch_call *c, int64_t ms);
/* ABI 1.3: a piece of the answer with extras (pc may be NULL); a stage that
 * asked for tokens only gets the text. */
void porch_call_piece(porch_call *c, const char *text, size_t len,
    const struct porch_piece *pc);
/* ABI 1.3: sets metadata of the call's message, e.g. the answer's
 * "finish-reason" and "usage" (see above); value NULL removes nothing
 * and is ignored.  Call before porch_call_done or porch_call_fail. */
void porch_call_set_meta(porch_call *c, const char *key, const char *value);
/* ABI 1.3: the request's input, the text as its source first emitted it
 * (porch_msg_input): for an http chat request, the last user message's text. */
const char *porch_call_input(const porch_call *c, size_t *len);

/* ---- workers ----------------------------------------------------------- */

const char *porch_worker_name(const porch_worker *w);
const porch_params *porch_worker_params(const porch_worker *w);
struct ev_loop *porch_worker_loop(const porch_worker *w);
void *porch_worker_data(const porch_worker *w);
void porch_worker_set_data(porch_worker *w, void *data);
void porch_worker_error(porch_worker *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* ABI 1.5: the answer to a probe (the probe callback): 1 healthy, 0 not. */
void porch_worker_probed(porch_worker *w, int healthy);

/* ---- session affinity --------------------------------------------------- */

/*
 * The shard (0 to shards - 1) a session belongs to, or -1 when shards is 0.
 * Stable everywhere and forever: the 64-bit FNV-1a hash of the session's
 * bytes, mapped by Jump Consistent Hash (Lamping and Veach, 2014), so
 * growing from N to N+1 shards moves only 1/(N+1) of the sessions.
 */
int64_t porch_shard(const char *session, size_t len, uint32_t shards);

/*
 * ABI 1.6: threads.  The shard st runs on, from 0 to *shards - 1, with
 * *shards (when not NULL) set to how many there are: the pipeline's
 * threads, 1 without.  Each shard has its own copy of every stage and
 * worker, on its own loop and thread.
 */
unsigned porch_stage_shard(const porch_stage *st, unsigned *shards);

/*
 * ABI 1.6: read-only state built once per process and shared by every copy
 * of a stage (one per shard, and the copies a reload makes), e.g. a search
 * index.  The first call for key runs build(arg, err, errlen) on the
 * caller's thread (other callers of the key wait) and keeps its result;
 * later calls return the same pointer.  Each call holds a reference for
 * st, dropped when st's pipeline is freed; the last one runs release(obj)
 * (when not NULL).  The object is read by several threads at once and must
 * not change after build returns.  key must name everything the state is
 * built from (a reload with the same key shares it).  NULL, with err
 * filled, when build failed or returned NULL (the next call tries again).
 * Call it from init.
 */
typedef void *porch_shared_build_fn(void *arg, char *err, size_t errlen);
typedef void porch_shared_free_fn(void *obj);
void *porch_shared(porch_stage *st, const char *key, porch_shared_build_fn *build,
    porch_shared_free_fn *release, void *arg, char *err, size_t errlen);

/* ---- reload (ABI 1.4) --------------------------------------------------- */

/*
 * Listening sockets the runtime keeps across reloads, so that no connection
 * is refused while one graph replaces another (porch(1), RELOAD).  A key
 * names a socket (the http source uses its listen parameter's text): the
 * same key is the same socket, whichever stage of whichever graph asks.
 *
 * porch_listener: the socket kept under key, which st holds from now on,
 * or -1 when there is none; then st binds one itself and gives it to the
 * runtime with porch_listener_keep (st holds it).  A stage never closes a
 * kept socket: porch_listener_release says it stops listening, and the
 * runtime closes the socket when no stage holds it any more (a graph being
 * freed lets go of whatever its stages still hold).
 */
int porch_listener(porch_stage *st, const char *key);
void porch_listener_keep(porch_stage *st, const char *key, int fd);
void porch_listener_release(porch_stage *st, const char *key);
/*
 * ABI 1.6: with threads, each shard keeps its own sockets (the same key on
 * two shards is two sockets).  porch_listener_first: the socket shard 0
 * keeps under key (borrowed: never closed by the caller), or -1; a copy
 * of a source on another shard binds its own socket to the same address
 * and port (SO_REUSEPORT, which it sets when porch_stage_shard says there
 * are several), so port 0 means the port shard 0 was given.
 */
int porch_listener_first(porch_stage *st, const char *key);

/*
 * A retiring source (its retire callback ran) hands a connection with
 * nothing in flight to the stage of the same name and plugin in the graph
 * that replaced st's, through that stage's adopt callback, with the len
 * bytes already read from it but not used (copied; may be 0).  Returns 0
 * when taken (fd is the new stage's now), -1 when st keeps fd: there is no
 * newer graph, no such stage, or it refused.
 */
int porch_stage_handover(porch_stage *st, int fd, const void *bytes, size_t len);

/* ---- a plugin's own counters (ABI 1.4) --------------------------------- */

/*
 * Adds n to the stage's (or worker's) counter called name, [a-z][a-z0-9_]*
 * (e.g. "cache_hit"; a name that is not is ignored), made at 0 when first
 * counted.  The statistics show them, and /metrics as
 * porch_stage_events_total{stage, event} and porch_worker_events_total
 * {worker, event}.  They go on across reloads, as the runtime's do.
 */
void porch_stage_count(porch_stage *st, const char *name, uint64_t n);
/* ABI 1.4: 1 when the stage's port (porch_stage_port) feeds a channel, so
 * a stage can choose between sending a message there and failing it. */
int porch_stage_port_used(const porch_stage *st, int port);
void porch_worker_count(porch_worker *w, const char *name, uint64_t n);

/* ---- a stage's own calls (ABI 1.4) ------------------------------------- */

/*
 * A call to the stage's worker for the stage's own use, not for m's answer
 * (a classifier asking a model about the request, say).  The prompt is
 * text (len bytes, copied) and the generation settings are options: key,
 * value, key, value ..., ended by a NULL key ({"max-tokens", "64", NULL};
 * NULL: none), not m's metadata.  m, which may be NULL, lends only its
 * session and id (for logs): its text, metadata, attempts and status are
 * not touched, and what the worker sets with porch_call_set_meta goes
 * nowhere.  Pieces and the end come as for porch_infer_pieces (on_piece
 * may be NULL); porch_infer_cancel cancels it.  NULL, calling nothing,
 * when no call could be made: the stage has no worker, on_end is NULL or
 * the worker did not start it.
 */
porch_call *porch_infer_aside(porch_stage *st, const porch_msg *m,
    const char *text, size_t len, const char *const *options,
    porch_piece_fn *on_piece, porch_end_fn *on_end, void *ctx);

/* ---- fan-out and join (ABI 1.4) ---------------------------------------- */

/*
 * A port whose channels have copy="true" sends each message to all of them
 * as copies; the request waits, counted once, until a join stage combines
 * the copies (porch.xml(5), FAN-OUT AND JOIN).  A join stage's process
 * callback hands each copy it takes to porch_join with how to combine.
 */
enum porch_join_mode {
	PORCH_JOIN_FIRST = 1, /* the first copy to arrive; the others are cancelled */
	PORCH_JOIN_ALL,       /* every copy's text, in channel order, separated */
	PORCH_JOIN_BEST,      /* the copy with the highest number in metadata key */
};

struct porch_join {
	enum porch_join_mode mode;
	int64_t timeout_ms;      /* after the first copy arrives; 0: none */
	const char *separator;   /* all: between texts (not copied: keep it) */
	const char *key;         /* best: the metadata key (not copied: keep it) */
};

/* Takes m, a copy, for its request; a message that is no copy goes on
 * unchanged.  The request leaves the stage (out, or error when no copy
 * came) once decided. */
void porch_join(porch_stage *st, porch_msg *m, const struct porch_join *j);
/* A copy's index (its channel's place among the port's copy channels,
 * from 0), or -1 for a message that is no copy. */
int porch_msg_copy_index(const porch_msg *m);

/* ---- load-time checks (ABI 1.1) ----------------------------------------- */

/*
 * Reports a problem found by a plugin's check callback, shown like every
 * other pipeline error: FILE:LINE:COL of the parameter's value (param not
 * NULL) or of the stage or worker element.  The pipeline does not load.
 */
void porch_check_error(porch_check *c, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* ABI 1.4: the worker the stage's element names (worker=), or NULL when it
 * names none (and in a worker's check). */
const char *porch_check_worker(const porch_check *c);
/*
 * ABI 1.5: as porch_check_error, about byte offset of param's value (its
 * text after leading white space is trimmed, as the plugin gets it): the
 * error points at that byte's own line and column in the file (entity
 * references and CDATA read as the parser reads them).  A value set with
 * --set says "at offset N" instead.
 */
void porch_check_error_at(porch_check *c, const char *param, size_t offset,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ---- the descriptor ---------------------------------------------------- */

struct porch_plugin {
	uint16_t abi_major;
	uint16_t abi_minor;
	uint32_t size;           /* sizeof(struct porch_plugin) when built */
	enum porch_kind kind;
	const char *name;        /* [a-z][a-z0-9_-]*, as used in plugin="" */
	const char *summary;     /* one line */
	const struct porch_param *params; /* NULL or ended by a NULL name */

	/* stages */
	unsigned flags;          /* PORCH_STAGE_* */
	const char *const *outputs; /* NULL-ended port names; NULL: a sink */
	int (*init)(porch_stage *st);     /* 0, or -1 after porch_stage_error */
	void (*start)(porch_stage *st);   /* the graph runs: sources begin   */
	void (*process)(porch_stage *st, porch_msg *m);
	void (*resume)(porch_stage *st);  /* sources: room again downstream */
	void (*drain)(porch_stage *st);   /* sources: stop taking requests  */
	/* sources: a request they made has ended; runs once per request */
	void (*outcome)(porch_stage *st, porch_msg *m, enum porch_outcome o);
	void (*fini)(porch_stage *st);

	/* workers */
	int (*worker_init)(porch_worker *w);
	int (*submit)(porch_worker *w, porch_call *c); /* 0, or -1: not started */
	void (*cancel)(porch_worker *w, porch_call *c);
	void (*worker_fini)(porch_worker *w);

	/* ABI 1.1 */
	const char *description;  /* paragraphs for the manual, or NULL */
	/* Checks parameters beyond their types (a corpus that must exist, a
	 * template's placeholders) when the pipeline is loaded, by porch check
	 * as well as porch run.  0: fine, -1 after porch_check_error. */
	int (*check)(const porch_params *p, porch_check *c);
	/* stages: a streamed piece of m's answer, before m arrives (porch_stream) */
	void (*chunk)(porch_stage *st, porch_msg *m, const char *text, size_t len);
	/* stages: m ended while st's local pointer for it was set */
	void (*forget)(porch_stage *st, porch_msg *m, void *local);

	/* ABI 1.2 */
	/* stages: m, which st holds, was cancelled (porch_msg_cancel) */
	void (*cancel_msg)(porch_stage *st, porch_msg *m);
	/* sources: an event about a traced request it made */
	void (*event)(porch_stage *st, porch_msg *m, enum porch_event e,
	    const char *stage, const char *detail);

	/* ABI 1.3 */
	/* stages: a streamed piece with its extras (porch_stream_piece); when
	 * set, it gets every piece, porch_stream's too (pc NULL), not chunk */
	void (*piece)(porch_stage *st, porch_msg *m, const char *text, size_t len,
	    const struct porch_piece *pc);

	/* ABI 1.4 */
	/* sources: a reload replaced the graph.  Stop taking new work (a kept
	 * listener: porch_listener_release), hand what can go on over
	 * (porch_stage_handover), finish what was taken, and call
	 * porch_stage_finished once nothing more will be emitted.  Without
	 * it, a reload drains the source as SIGTERM does. */
	void (*retire)(porch_stage *st);
	/* sources: a connection the stage this one replaces handed over, with
	 * bytes read from it but not used.  0: taken; -1: refused (the old
	 * stage closes it). */
	int (*adopt)(porch_stage *st, int fd, const void *bytes, size_t len);

	/* ABI 1.5 */
	/* workers: checks the worker's server without a request (a pool's
	 * active health check, porch.xml(5) POOLS) and reports the answer with
	 * porch_worker_probed, then or later, once.  NULL: never probed. */
	void (*probe)(porch_worker *w);
};

#ifdef __cplusplus
}
#endif
#endif /* PORCH_PLUGIN_H */
