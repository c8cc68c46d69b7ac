#!/bin/sh
# grpc.sh -- the grpc source end to end with a real gRPC client (Debian's
# python3-grpcio, stubs generated from share/porch/*.proto by
# python3-grpc-tools, driven through tests/grpc-client.py): Generate
# streamed, tasks (submit, subscribe while it runs, get, cancel), health
# (porch.v1 and grpc.health.v1 Check and Watch across a drain), reflection,
# deadlines, a cancelled call, overload (RESOURCE_EXHAUSTED counted as
# shed), malformed and oversized messages, an unknown method, TLS, a port
# in use, and exact totals: accepted = completed + failed + shed + expired.
# POLLER=thread (tests/grpc-thread.sh): all of it with the poller thread
# in place of the loop polling gRPC (the grpc source's poller parameter);
# with the loop, also gRPC's poll engine (no epoll set): a poller thread,
# and --threads 2: a poller thread in each shard.
. "$top_srcdir/tests/lib.sh"
POLLER=${POLLER:-loop}
case $POLLER in
loop) POLLED="polled by the loop";;
*) POLLED="a poller thread";;
esac

[ -f "$top_builddir/plugins/.libs/grpc.so" ] ||
	{ echo "the grpc plugin was not built (no libgrpc-dev, protobuf-c): skipped"; exit 77; }
PY=
for py in python3 /usr/bin/python3; do
	if command -v "$py" > /dev/null &&
	    "$py" -c 'import grpc, grpc_tools.protoc, google.protobuf' 2> /dev/null; then
		PY=$py
		break
	fi
done
[ -n "$PY" ] || { echo "python3-grpcio and python3-grpc-tools are not installed: skipped"; exit 77; }

mkdir -p "$T/stubs"
"$PY" -m grpc_tools.protoc -I"$top_srcdir/share/porch" --python_out="$T/stubs" \
    --grpc_python_out="$T/stubs" porch.proto health.proto reflection.proto ||
	{ fail "grpc_tools.protoc cannot compile share/porch/*.proto"; finish; }

p() {
	printf '<param name="%s">%s</param>' "$1" "$2"
}

# pipeline FILE GRPC-PARAMS WORKER-PARAMS [CHANNEL-ATTRS] [INFERENCE-ATTRS] [INFERENCE-PARAMS]
pipeline() {
	_ip=${6:-$(p retries 0)}
	cat > "$1" <<XML
<?xml version="1.0"?>
<pipeline name="g" version="1">
  <worker name="model" plugin="echo">$3</worker>
  <stage name="ingress" plugin="grpc">$(p listen 127.0.0.1:0)$2</stage>
  <stage name="inference" plugin="inference" worker="model" ${5:-}>$_ip</stage>
  <stage name="reply" plugin="reply"/>
  <channel from="ingress" to="inference" ${4:-capacity=\"64\" overflow=\"reject\"}/>
  <channel from="inference" to="reply"/>
  <channel from="inference:error" to="reply"/>
</pipeline>
XML
}

# start NAME FILE [ARGS]: porch in the background; sets pid and P (the port)
start() {
	name=$1
	f=$2
	shift 2
	rm -f "$T/$name.port"
	"$PORCH" run --stats-json "$T/$name.json" --set "ingress.port-file=$T/$name.port" \
	    --set "ingress.poller=$POLLER" "$@" "$f" > "$T/$name.out" 2> "$T/$name.err" &
	pid=$!
	if ! wait_for 20 test -s "$T/$name.port"; then
		fail "$name: porch did not start: $(cat "$T/$name.err")"
		kill -KILL "$pid" 2> /dev/null
		return 1
	fi
	P=$(cat "$T/$name.port")
	grep -q "porch: stage 'ingress': listening on 127.0.0.1:$P (gRPC.*, $POLLED)" \
	    "$T/$name.err" && ok || fail "$name: no 'listening on ... $POLLED' line: $(cat "$T/$name.err")"
}

# stop: SIGTERM; porch exits 0 and its totals balance
stop() {
	kill -TERM "$pid"
	wait "$pid"
	expect_eq "$name: exit status after SIGTERM" "$?" 0
	balance "$name"
}

# balance NAME: accepted = completed + failed + shed + expired (and > 0)
balance() {
	_a=$(json_get "$T/$1.json" accepted)
	_s=$(($(json_get "$T/$1.json" completed) + $(json_get "$T/$1.json" failed) + \
	    $(json_get "$T/$1.json" shed) + $(json_get "$T/$1.json" expired)))
	[ -n "$_a" ] && [ "$_a" -gt 0 ] && [ "$_a" = "$_s" ] && ok ||
	    fail "$1: accepted $_a, outcomes $_s"
}

# client ARGS...: the client's output in $T/c
client() {
	"$PY" "$top_srcdir/tests/grpc-client.py" --stubs "$T/stubs" --port "$P" "$@" > "$T/c" 2>&1
}

# has TEXT: the client's output has the line TEXT
has() {
	grep -qxF -- "$1" "$T/c" && ok || fail "${what:-client}: no line '$1' in: $(cat "$T/c")"
}

stat() {
	json_get "$T/$name.json" "$1"
}

# ---- 1. the API: Generate, tasks, health, reflection, bad input -------------
# tokens 10 ms apart: a client that keeps up gets one message per token
# (the tokens that come while a send is in flight go as one message: with
# 1 ms, a send delayed on a busy machine merged two)
pipeline "$T/a.xml" "$(p max-receive-size 2k)" "$(p token-delay-ms 10)"
start a "$T/a.xml" || finish

what=health client health
has "healthy=True"
has "version=$("$PORCH" --version | sed 's/^porch \([^ ]*\).*/\1/')"
has "state=serving"

what=generate client generate "one two three four"
has "text=one two three four"
has "tokens=4"
has "finish=stop"
has "usage=4,4,8"
has "status=OK"
grep -q "^first-request-id=grpc-" "$T/c" && ok || fail "generate: no request id: $(cat "$T/c")"

what="generate max_tokens" client generate "one two three four" max_tokens=2
has "text=one two"
has "finish=length"

what=task client task "a b c"
has "outcome=COMPLETED"
has "result=a b c"
has "progress=STAGE_ENTERED:inference TOKEN TOKEN TOKEN STAGE_LEFT:inference STAGE_ENTERED:reply STAGE_LEFT:reply OUTCOME"
has "get-status=COMPLETED"
has "get-name=nightly"
has "get-result=a b c"
has "get-attempts=1"
has "get-timings=inference,reply"
grep -q "^timestamp=20[0-9-]*T[0-9:.]*Z$" "$T/c" && ok || fail "task: timestamp: $(cat "$T/c")"

what="get unknown" client get task-nope
has "status=NOT_FOUND"
what="empty payload" client submit ""
has "status=INVALID_ARGUMENT"
what="max_retries" client submit "x" max_retries=101
has "status=INVALID_ARGUMENT"
what="empty text" client generate ""
has "status=INVALID_ARGUMENT"
what="temperature" client generate "x" temperature=3
has "status=INVALID_ARGUMENT"
what="reserved metadata" client generate "x" request-id=mine
has "status=INVALID_ARGUMENT"
has "details=metadata 'request-id': that metadata key is porch's own (set it with the request's fields)"
# not a protobuf message: field 1, length 100, then 2 bytes
what=malformed client raw /porch.v1.Porch/Generate 0a64ffff
has "status=INVALID_ARGUMENT"
what=unknown client raw /porch.v1.Porch/Nope 00
has "status=UNIMPLEMENTED"
what=unknown-service client raw /other.Service/Call 00
has "status=UNIMPLEMENTED"
# larger than max-receive-size (2k)
big=$(head -c 3000 /dev/zero | tr '\0' 'x')
what=oversized client generate "$big"
has "status=RESOURCE_EXHAUSTED"

what=hcheck client hcheck
has "health=SERVING"
what="hcheck porch" client hcheck porch.v1.Porch
has "health=SERVING"
what="hcheck unknown" client hcheck no.such.Service
has "status=NOT_FOUND"

what=reflect client reflect
has "services=porch.v1.Porch,grpc.health.v1.Health,grpc.reflection.v1alpha.ServerReflection"
has "file=porch.proto service=porch.v1.Porch methods=SubmitTask,SubscribeProgress,GetTask,CancelTask,HealthCheck,Generate"
has "file=health.proto service=grpc.health.v1.Health methods=Check,Watch"
has "error=5"

stop
# two Generate calls and the task completed; the bad ones never became requests
expect_eq "a: completed" "$(stat completed)" 3
expect_eq "a: accepted" "$(stat accepted)" 3

# ---- 2. deadlines and cancellation: a slow model ---------------------------
pipeline "$T/b.xml" "" "$(p token-delay-ms 100)"
start b "$T/b.xml" || finish

# the client's deadline (0.5 s) is the request's: 20 tokens take 2 s
what=deadline client generate "$(seq 20 | tr '\n' ' ')" timeout=0.5
has "status=DEADLINE_EXCEEDED"

# a call cancelled after its first token cancels its request and model call
what=cancel-call client cancel-call "$(seq 30 | tr '\n' ' ')"
has "status=CANCELLED"
wait_for 10 grep -q "Generate failed: cancelled" "$T/b.err" && ok ||
    fail "cancel-call: the request was not cancelled: $(cat "$T/b.err")"

# CancelTask on a running task: it fails as cancelled; again: too late
what=cancel-task client cancel-task "$(seq 30 | tr '\n' ' ')"
has "cancelled=True"
has "outcome=FAILED"
has "error=cancelled:1"
has "get-status=FAILED"
has "get-error=cancelled"
has "again-cancelled=False"

# a task's own timeout_secs is its deadline: expired
what="task timeout" client task "$(seq 30 | tr '\n' ' ')" 0.3
has "outcome=EXPIRED"
has "error=deadline:4"

stop
[ "$(stat expired)" -ge 1 ] && ok || fail "b: expired $(stat expired)"
[ "$(stat failed)" -ge 2 ] && ok || fail "b: failed $(stat failed)"

# ---- 2b. a failing model: UNAVAILABLE, and a task's retry and typed error;
# a prompt past context-limit: INVALID_ARGUMENT ---------------------------
pipeline "$T/f.xml" "" "$(p fail-rate 1)" "" "" \
    "$(p retries 1)$(p backoff-ms 5ms)$(p context-limit 20)"
start f "$T/f.xml" || finish
what="upstream" client generate "x"
has "status=UNAVAILABLE"
grep -q "^details=failed: upstream: echo: simulated failure" "$T/c" && ok ||
    fail "upstream: $(cat "$T/c")"
what="upstream task" client task "x"
has "outcome=FAILED"
has "error=upstream:14"
has "progress=STAGE_ENTERED:inference RETRY STAGE_LEFT:inference STAGE_ENTERED:reply STAGE_LEFT:reply OUTCOME"
has "get-attempts=2"
# the pipeline's own bad request (longer than context-limit): INVALID_ARGUMENT
what="bad request" client generate "$(seq 100 | tr '\n' ' ')"
has "status=INVALID_ARGUMENT"
grep -q "^details=failed: bad-request: the prompt is about" "$T/c" && ok ||
    fail "bad request: $(cat "$T/c")"
stop
expect_eq "f: failed" "$(stat failed)" 3

# ---- 3. overload: a full channel sheds, RESOURCE_EXHAUSTED with a delay ----
pipeline "$T/c.xml" "$(p retry-after 2500ms)" "$(p delay-ms 400)" \
    'capacity="1" overflow="reject"' 'concurrency="1"'
start c "$T/c.xml" || finish
what=overload client many 8 "x y"
ex=$(sed -n 's/^RESOURCE_EXHAUSTED=//p' "$T/c")
okn=$(sed -n 's/^OK=//p' "$T/c")
[ -n "$ex" ] && [ "$ex" -ge 1 ] && [ -n "$okn" ] && [ "$okn" -ge 1 ] && ok ||
    fail "overload: $(cat "$T/c")"
has "retry-after-ms=2500"
has "retry-info=yes"
stop
expect_eq "c: shed = RESOURCE_EXHAUSTED answers" "$(stat shed)" "$ex"
expect_eq "c: completed" "$(stat completed)" "$okn"

# ---- 4. SIGTERM: health turns NOT_SERVING, new calls are refused, the
# stream in flight runs to its end ------------------------------------------
pipeline "$T/d.xml" "" "$(p token-delay-ms 100)"
start d "$T/d.xml" || finish
"$PY" "$top_srcdir/tests/grpc-client.py" --stubs "$T/stubs" --port "$P" hwatch \
    > "$T/watch" 2>&1 &
wpid=$!
wait_for 10 grep -q "^health=SERVING" "$T/watch" && ok || fail "watch: $(cat "$T/watch")"
# 60 tokens, 6 s: the stream outlasts the checks made while porch drains
"$PY" "$top_srcdir/tests/grpc-client.py" --stubs "$T/stubs" --port "$P" generate \
    "$(seq 60 | tr '\n' ' ')" > "$T/stream" 2>&1 &
spid=$!
wait_for 10 grep -q "^first-request-id=" "$T/stream" && ok || fail "stream: $(cat "$T/stream")"
kill -TERM "$pid"
wait_for 10 grep -q "draining" "$T/d.err" && ok || fail "drain: $(cat "$T/d.err")"
what="hcheck draining" client hcheck
has "health=NOT_SERVING"
what="health draining" client health
has "healthy=False"
has "state=draining"
what="generate draining" client generate "x"
has "status=UNAVAILABLE"
wait "$spid"
what=stream
cp "$T/stream" "$T/c"
has "status=OK"
has "tokens=60"
wait "$pid"
expect_eq "d: exit status after SIGTERM" "$?" 0
wait "$wpid"
expect_eq "watch: statuses" "$(grep '^health=' "$T/watch" | tr '\n' ' ')" \
    "health=SERVING health=NOT_SERVING "
balance d
expect_eq "d: completed" "$(json_get "$T/d.json" completed)" 1

# ---- 4b. SIGHUP: the new pipeline's server listens on the same port (both
# set SO_REUSEPORT) and the old one stops listening at once; a stream and a
# task in flight finish on the old pipeline, the task is found through the
# new one, during the swap and after ---------------------------------------
fp=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
pipeline "$T/r0.xml" "" "$(p token-delay-ms 100)"
sed "s|127.0.0.1:0|127.0.0.1:$fp|" "$T/r0.xml" > "$T/r.xml"
start r "$T/r.xml" --pid-file "$T/r.pid" || finish
what="submit before reload" client submit "$(seq 30 | tr '\n' ' ')"
has "status=OK"
task=$(sed -n 's/^task=//p' "$T/c")
"$PY" "$top_srcdir/tests/grpc-client.py" --stubs "$T/stubs" --port "$P" generate \
    "$(seq 30 | tr '\n' ' ')" > "$T/stream" 2>&1 &
spid=$!
wait_for 10 grep -q "^first-request-id=" "$T/stream" && ok || fail "stream: $(cat "$T/stream")"
"$PORCH" reload "$T/r.pid" > "$T/reload.out" 2>&1
expect_eq "reload: exit status" "$?" 0
grep -q "retiring (reload)" "$T/r.err" && ok || fail "reload: $(cat "$T/r.err")"
for i in 1 2 3; do
	what="after reload $i" client generate "after $i"
	has "text=after $i"
done
what="old task through the new pipeline" client watch "$task"
has "outcome=COMPLETED"
wait "$spid"
cp "$T/stream" "$T/c"
what="stream across the reload"
has "status=OK"
has "tokens=30"
# the old pipeline has ended: its finished task went over to the new one
wait_for 10 grep -q "its 1 finished tasks go over to the new one" "$T/r.err" && ok ||
    fail "pass on: $(cat "$T/r.err")"
what="old task after the swap" client get "$task"
has "get-status=COMPLETED"
stop
expect_eq "r: completed" "$(stat completed)" 5

# ---- 4d. grpc.health.v1 says NOT_SERVING while the pool the pipeline calls
# has no member that can take a call, and SERVING again when it has
cat > "$T/pool.xml" <<XML
<?xml version="1.0"?>
<pipeline name="g" version="1">
  <worker name="bad" plugin="echo">$(p fail-rate 1)</worker>
  <pool name="model" policy="round-robin"><member worker="bad"/>
    $(p failures 1)$(p cooldown 2s)</pool>
  <stage name="ingress" plugin="grpc">$(p listen 127.0.0.1:0)</stage>
  <stage name="inference" plugin="inference" worker="model">$(p retries 0)</stage>
  <stage name="reply" plugin="reply"/>
  <channel from="ingress" to="inference"/>
  <channel from="inference" to="reply"/>
  <channel from="inference:error" to="reply"/>
</pipeline>
XML
start pool "$T/pool.xml" || finish
"$PY" "$top_srcdir/tests/grpc-client.py" --stubs "$T/stubs" --port "$P" --timeout 8 hwatch \
    > "$T/hw" 2>&1 &
hw=$!
wait_for 10 grep -q "health=SERVING" "$T/hw" || fail "pool: the watch did not start: $(cat "$T/hw")"
what="pool: check" client hcheck
has "health=SERVING"
what="pool: the failing call" client generate "x"
has "status=UNAVAILABLE"
what="pool: check, every member out" client hcheck
has "health=NOT_SERVING"
what="pool: porch.v1 health" client health
has "healthy=False"
has "state=not ready: pool 'model' has no member that can take a call"
# the member's cooldown ends: serving again, and the watcher was told both
wait_for 10 sh -c "'$PY' '$top_srcdir/tests/grpc-client.py' --stubs '$T/stubs' --port $P hcheck | grep -qx health=SERVING" ||
    fail "pool: not serving again after the cooldown"
wait_for 10 sh -c "grep -c health= '$T/hw' | grep -qx 3" || fail "pool: the watch: $(cat "$T/hw")"
expect_eq "pool: the watch saw" "$(grep health= "$T/hw" | tr '\n' ' ')" \
    "health=SERVING health=NOT_SERVING health=SERVING "
kill "$hw" 2> /dev/null
wait "$hw" 2> /dev/null
stop

# ---- 4c. pipelines/grpc.xml as shipped (on a port of its own): a question
# answered through rag, assemble, the echo worker and post
start example "$top_srcdir/pipelines/grpc.xml" --set ingress.listen=127.0.0.1:0 || finish
what="grpc.xml" client generate "what is a dead letter?"
has "status=OK"
has "finish=stop"
grep -q "^text=..*dead letter" "$T/c" && ok || fail "grpc.xml: the answer: $(cat "$T/c")"
stop

# ---- 5. TLS with a self-signed certificate --------------------------------
if command -v openssl > /dev/null; then
	openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
	    -addext subjectAltName=DNS:localhost -keyout "$T/key.pem" -out "$T/cert.pem" \
	    > /dev/null 2>&1 || fail "openssl cannot make a certificate"
	pipeline "$T/t.xml" "$(p tls-cert "$T/cert.pem")$(p tls-key "$T/key.pem")" ""
	start t "$T/t.xml" || finish
	what=tls client --tls "$T/cert.pem" generate "over tls"
	has "text=over tls"
	has "status=OK"
	# plaintext to a TLS port: no answer
	what="plain to tls" client --timeout 2 health
	grep -q "UNAVAILABLE\|DEADLINE_EXCEEDED" "$T/c" && ok || fail "plain to tls: $(cat "$T/c")"
	stop
fi

# ---- 6. bad setup: each with its error ---------------------------------------
pipeline "$T/e.xml" "$(p tls-cert "$T/nope.pem")$(p tls-key "$T/nope.pem")" ""
"$PORCH" check "$T/e.xml" > /dev/null 2> "$T/e.err"
expect_eq "bad cert: exit status" "$?" 2
grep -q "^$T/e.xml:4:[0-9]*: error: stage 'ingress' (plugin grpc): cannot read '$T/nope.pem': No such file or directory$" "$T/e.err" && ok ||
    fail "bad cert: $(cat "$T/e.err")"
# a file that is not PEM: refused when the server starts
pipeline "$T/e.xml" "$(p tls-cert "$T/a.xml")$(p tls-key "$T/a.xml")" ""
"$PORCH" run "$T/e.xml" > /dev/null 2> "$T/e.err"
expect_eq "not PEM: exit status" "$?" 1
grep -q "tls-cert '$T/a.xml': not a PEM file" "$T/e.err" && ok || fail "not PEM: $(cat "$T/e.err")"
pipeline "$T/e.xml" "$(p tls-cert "$T/cert.pem")" ""
"$PORCH" check "$T/e.xml" > /dev/null 2> "$T/e.err"
grep -q "tls-cert and tls-key go together" "$T/e.err" && ok || fail "cert without key: $(cat "$T/e.err")"
sed 's|127.0.0.1:0|nonsense|' "$T/a.xml" > "$T/e.xml"
"$PORCH" check "$T/e.xml" > /dev/null 2> "$T/e.err"
grep -q "'nonsense' is not HOST:PORT" "$T/e.err" && ok || fail "bad listen: $(cat "$T/e.err")"
# a port another socket holds
"$PY" -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1]); sys.stdout.flush(); time.sleep(30)' > "$T/held" &
hpid=$!
wait_for 10 test -s "$T/held"
sed "s|127.0.0.1:0|127.0.0.1:$(cat "$T/held")|" "$T/a.xml" > "$T/e.xml"
"$PORCH" run "$T/e.xml" > /dev/null 2> "$T/e.err"
expect_eq "port in use: exit status" "$?" 1
grep -q "cannot listen on 127.0.0.1:$(cat "$T/held"): the address is in use" "$T/e.err" && ok ||
    fail "port in use: $(cat "$T/e.err")"
kill "$hpid"

# ---- 7. gRPC on a polling engine with no epoll set: the loop cannot poll
# it, the stage takes a poller thread (and says so) and serves all the same
if [ "$POLLER" = loop ]; then
	pipeline "$T/f.xml" "" ""
	POLLED="a poller thread"
	GRPC_POLL_STRATEGY=poll
	export GRPC_POLL_STRATEGY
	start f "$T/f.xml"
	unset GRPC_POLL_STRATEGY
	what="generate, poll engine" client generate "one two three"
	has "text=one two three"
	has "status=OK"
	stop
fi

# ---- 8. threads: each shard's copy of the source listens on the one port,
# with a poller thread of its own (the loop poller is the process's one)
if [ "$POLLER" = loop ]; then
	pipeline "$T/t.xml" "" ""
	POLLED="a poller thread"
	start t "$T/t.xml" --threads 2
	expect_eq "threads 2: both shards listen" \
	    "$(grep -c "porch: stage 'ingress': listening on 127.0.0.1:$P (gRPC.*, a poller thread)" "$T/t.err")" 2
	for i in 1 2 3 4 5 6; do
		what="generate $i, threads 2" client generate "word$i again"
		has "text=word$i again"
		has "status=OK"
	done
	what="health, threads 2" client health
	has "healthy=True"
	stop
	expect_eq "threads 2: completed" "$(stat completed)" 6
fi

finish
