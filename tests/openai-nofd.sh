#!/bin/sh
# openai-nofd.sh -- the openai worker when porch has no descriptor free for
# a connection (issue 9: resource exhaustion degrades, never corrupts).
#
# porch runs as a gateway (http -> inference -> reply, no retries by the
# stage) under ulimit -n 64, in front of tests/fake-upstream answering
# after 300 ms, and 200 clients send a request each at once.  The http
# source keeps a few descriptors for the worker (accepting pauses), far
# fewer than the calls in flight want: many calls find none (EMFILE), and
# must wait for one and go on, not fail as transport errors.  Every client
# gets 200 and its own answer, and the worker's count of waits, logged when
# it stops, is not 0.  Once with each transport, native and curl.
. "$top_srcdir/tests/lib.sh"
heavy

: "${top_builddir:=$top_srcdir}"
fake=$top_builddir/tests/fake-upstream
if [ ! -x "$fake" ]; then
	echo "tests/fake-upstream is not built: skipping"
	exit 77
fi
command -v curl > /dev/null || { echo "curl is not installed" >&2; exit 1; }
# 200 clients at once from one process: curl 7.68 or later
if ! curl --help all 2> /dev/null | grep -q -- --parallel-immediate; then
	echo "this curl has no --parallel-immediate: skipping"
	exit 77
fi
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

CLIENTS=200
NOFILE=64

pid=
"$fake" -p "$T/up.port" -l "$T/up.log" -t 600 &
fake_pid=$!
trap 'kill "$fake_pid" $pid 2> /dev/null; rm -rf "$T"' EXIT
wait_for 10 test -s "$T/up.port" || { fail "the fake upstream did not start"; finish; }
up=$(cat "$T/up.port")

# the requests, as a curl config (one option a line, blocks apart by
# "next"): client N asks the upstream's slow-300 model "hello N", closing
# its connection once answered, as separate clients would
i=1
: > "$T/args"
while [ "$i" -le "$CLIENTS" ]; do
	[ "$i" -gt 1 ] && echo next >> "$T/args"
	cat >> "$T/args" <<CFG
silent
output = "$T/out.$i"
write-out = "%{http_code}\\n"
header = "Content-Type: application/json"
header = "Connection: close"
data = "{\\"model\\":\\"slow-300\\",\\"messages\\":[{\\"role\\":\\"user\\",\\"content\\":\\"hello $i\\"}]}"
url = "URL"
CFG
	i=$((i + 1))
done

for transport in native curl; do
	rm -f "$T/port" "$T"/out.*
	cat > "$T/$transport.xml" <<XML
<?xml version="1.0"?>
<pipeline name="nofd" version="1">
  <worker name="model" plugin="openai">
    <param name="base-url">http://127.0.0.1:$up/v1</param>
    <param name="transport">$transport</param>
    <param name="stream">false</param>
  </worker>
  <stage name="ingress" plugin="http">
    <param name="listen">127.0.0.1:0</param>
    <param name="port-file">$T/port</param>
  </stage>
  <stage name="infer" plugin="inference" worker="model" concurrency="1024">
    <param name="retries">0</param>
  </stage>
  <stage name="reply" plugin="reply"/>
  <channel from="ingress" to="infer" capacity="1024" overflow="reject"/>
  <channel from="infer" to="reply" capacity="1024"/>
  <channel from="infer:error" to="reply" capacity="1024"/>
</pipeline>
XML
	(ulimit -n "$NOFILE" && exec "$PORCH" run -q "$T/$transport.xml") 2> "$T/porch-$transport.err" &
	pid=$!
	wait_for 10 test -s "$T/port" || { fail "$transport: porch did not start: $(cat "$T/porch-$transport.err")"; break; }
	U="http://127.0.0.1:$(cat "$T/port")"
	sed "s|URL|$U/v1/chat/completions|" "$T/args" > "$T/curl.cfg"
	curl -s --parallel --parallel-immediate --parallel-max "$CLIENTS" -K "$T/curl.cfg" \
	    > "$T/codes" 2> "$T/client.err"
	expect_eq "$transport: curl's exit status" "$?" 0
	expect_eq "$transport: answers 200" "$(grep -c '^200$' "$T/codes")" "$CLIENTS"
	# each its own answer, whole
	i=1
	wrong=0
	while [ "$i" -le "$CLIENTS" ]; do
		grep -q "\"content\":\"you said: hello $i\"" "$T/out.$i" 2> /dev/null || wrong=$((wrong + 1))
		i=$((i + 1))
	done
	expect_eq "$transport: wrong or missing answers" "$wrong" 0
	curl -s "$U/metrics" > "$T/metrics"
	expect_eq "$transport: completed" \
	    "$(sed -n 's/^porch_requests_total{pipeline="nofd",outcome="completed"} //p' "$T/metrics")" \
	    "$CLIENTS"
	mwaits=$(sed -n 's/^porch_worker_events_total{worker="model",event="fd_wait"} //p' "$T/metrics")
	[ "${mwaits:-0}" -gt 0 ] && ok || fail "$transport: /metrics counts no fd_wait: $(grep events "$T/metrics")"
	kill -TERM "$pid"
	wait "$pid"
	expect_eq "$transport: porch's exit status" "$?" 0
	pid=
	# the waits: counted, and none gave up
	waits=$(sed -n "s/^[^ ]* [a-z]* porch: worker 'model': \([0-9]*\) connections waited for a free descriptor; 0 calls gave up.*/\1/p" \
	    "$T/porch-$transport.err")
	[ "${waits:-0}" -gt 0 ] && ok ||
	    fail "$transport: no waits for a descriptor counted: $(tail -n 5 "$T/porch-$transport.err")"
	echo "$transport: $waits connections waited for a descriptor"
	[ "${waits:-0}" -ge "${mwaits:-0}" ] && ok || fail "$transport: /metrics counted $mwaits waits, the log $waits"
	grep -q "EMFILE (ulimit -n $NOFILE); calls wait and try again" "$T/porch-$transport.err" && ok ||
	    fail "$transport: no line about the first wait: $(head -n 5 "$T/porch-$transport.err")"
	grep -q "failed: " "$T/porch-$transport.err" &&
	    fail "$transport: requests failed: $(grep 'failed: ' "$T/porch-$transport.err" | head -n 3)" || ok
done

finish
