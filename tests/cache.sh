#!/bin/sh
# cache.sh -- the cache stage: a request asked before is answered without
# the model, whole or streamed as a live answer streams; other settings
# miss; Cache-Control: no-cache and metadata "cache": "no" bypass it;
# failed and cut answers are never stored; ttl; eviction within max-bytes.
#
# porch runs http -> lookup; lookup:miss -> inference (openai worker, no
# retries) -> store -> reply; lookup -> reply, in front of
# tests/fake-upstream, whose statistics file counts the requests that
# reached it: a hit is a request that did not.
. "$top_srcdir/tests/lib.sh"

: "${top_builddir:=$top_srcdir}"
fake=$top_builddir/tests/fake-upstream
if [ ! -x "$fake" ]; then
	echo "tests/fake-upstream is not built: skipping"
	exit 77
fi
command -v curl > /dev/null || { echo "curl is not installed: skipped"; exit 77; }
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

pid=
"$fake" -p "$T/up.port" -s "$T/up.stats" -t 600 &
fake_pid=$!
trap 'kill "$fake_pid" $pid 2> /dev/null; rm -rf "$T"' EXIT
wait_for 10 test -s "$T/up.port" || { fail "the fake upstream did not start"; finish; }
up=$(cat "$T/up.port")

cat > "$T/cache.xml" <<XML
<?xml version="1.0"?>
<pipeline name="cache" version="1">
  <worker name="model" plugin="openai">
    <param name="base-url">http://127.0.0.1:$up/v1</param>
  </worker>
  <stage name="ingress" plugin="http"><param name="listen">127.0.0.1:0</param></stage>
  <stage name="lookup" plugin="cache"><param name="role">lookup</param></stage>
  <stage name="infer" plugin="inference" worker="model"><param name="retries">0</param></stage>
  <stage name="store" plugin="cache"><param name="role">store</param></stage>
  <stage name="reply" plugin="reply"/>
  <channel from="ingress" to="lookup"/>
  <channel from="lookup:miss" to="infer"/>
  <channel from="lookup" to="reply"/>
  <channel from="infer" to="store"/>
  <channel from="store" to="reply"/>
  <channel from="infer:error" to="reply"/>
</pipeline>
XML

# start NAME [--set ...]: porch in the background; sets pid and U
start() {
	name=$1
	shift
	rm -f "$T/$name.port"
	"$PORCH" run --stats-json "$T/$name.json" --pid-file "$T/$name.pid" \
	    --set "ingress.port-file=$T/$name.port" "$@" "$T/cache.xml" > "$T/$name.out" 2> "$T/$name.err" &
	pid=$!
	if ! wait_for 20 test -s "$T/$name.port"; then
		fail "$name: porch did not start: $(cat "$T/$name.err")"
		finish
	fi
	U="http://127.0.0.1:$(cat "$T/$name.port")"
}

stop() {
	kill -TERM "$pid"
	wait "$pid"
	expect_eq "$name: exit status" "$?" 0
	pid=
}

# chat OUT MODEL CONTENT [STREAM [MORE-JSON [CURL-ARGS...]]]: a chat request;
# the body in $T/OUT, the status in $T/OUT.code
chat() {
	_out=$1 _model=$2 _content=$3 _stream=${4:-false} _more=${5:-}
	if [ $# -gt 5 ]; then shift 5; else shift $#; fi
	curl -s -S -N -o "$T/$_out" -w '%{http_code}' -H 'Content-Type: application/json' "$@" \
	    -d "{\"model\":\"$_model\",\"stream\":$_stream$_more,\"messages\":[{\"role\":\"user\",\"content\":\"$_content\"}]}" \
	    "$U/v1/chat/completions" > "$T/$_out.code"
}

# upstream: requests the fake upstream has had
upstream() {
	json_get "$T/up.stats" requests
}

# event STAGE NAME: a stage's counter from /metrics (0 when not counted yet)
event() {
	curl -s "$U/metrics" > "$T/metrics"
	_v=$(sed -n "s/^porch_stage_events_total{stage=\"$1\",event=\"$2\"} //p" "$T/metrics")
	echo "${_v:-0}"
}

# norm FILE: the answer without what differs from answer to answer (id, created)
norm() {
	sed -e 's/"id":"chatcmpl-[0-9a-f]*",//g' -e 's/"created":[0-9]*,//g' "$T/$1"
}

# content FILE: a whole answer's message content
content() {
	sed -n 's/.*"message":{"role":"assistant","content":"\([^"]*\)".*/\1/p' "$T/$1"
}

start main

# ---- a hit: the same answer, and no call to the model ------------------------
chat a1 ok "hello cache"
expect_eq "first: status" "$(cat "$T/a1.code")" 200
expect_eq "first: content" "$(content a1)" "you said: hello cache"
expect_eq "first: upstream requests" "$(upstream)" 1
chat a2 ok "hello cache"
expect_eq "again: status" "$(cat "$T/a2.code")" 200
expect_eq "again: upstream requests" "$(upstream)" 1
expect_eq "again: the same answer" "$(norm a2)" "$(norm a1)"
expect_eq "lookup: hits" "$(event lookup hit)" 1
expect_eq "lookup: misses" "$(event lookup miss)" 1
expect_eq "store: stored" "$(event store store)" 1
# another member's order or spacing is the same request
curl -s -S -o "$T/a3" -H 'Content-Type: application/json' "$U/v1/chat/completions" \
    -d '{ "messages": [ {"content": "hello cache", "role": "user"} ], "stream": false, "model": "ok" }'
expect_eq "reordered: upstream requests" "$(upstream)" 1
expect_eq "reordered: the same answer" "$(norm a3)" "$(norm a1)"

# ---- streamed: a cached answer streams as the live one did ----------------------
opts=',"stream_options":{"include_usage":true}'
chat s1 ok "one two three four five" true "$opts"
expect_eq "stream live: upstream requests" "$(upstream)" 2
chat s2 ok "one two three four five" true "$opts"
expect_eq "stream cached: status" "$(cat "$T/s2.code")" 200
expect_eq "stream cached: upstream requests" "$(upstream)" 2
n=$(grep -c '"delta":{"content":"[^"]' "$T/s2")
[ "$n" -ge 5 ] && ok || fail "stream cached: $n pieces with text, want several: $(cat "$T/s2")"
expect_eq "stream cached: the same events as live" "$(norm s2)" "$(norm s1)"
expect_eq "stream cached: ends with [DONE]" "$(grep -v '^$' "$T/s2" | tail -n 1)" "data: [DONE]"
# whole, the same request is the same entry
chat s3 ok "one two three four five"
expect_eq "whole after streamed: upstream requests" "$(upstream)" 2
expect_eq "whole after streamed: content" "$(content s3)" "you said: one two three four five"
# tool calls, logprobs and a system fingerprint stream again with their pieces
chat t1 tool-stream "weather" true ',"logprobs":true,"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]'
chat t2 tool-stream "weather" true ',"logprobs":true,"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]'
expect_eq "tool stream: upstream requests" "$(upstream)" 3
grep -q '"tool_calls":\[{"index":0' "$T/t2" && ok || fail "tool stream: no tool call deltas: $(cat "$T/t2")"
expect_eq "tool stream: the same events as live" "$(norm t2)" "$(norm t1)"

# ---- other settings are another entry -------------------------------------------
chat b1 ok "hello cache" false ',"temperature":0.5'
expect_eq "temperature: upstream requests" "$(upstream)" 4
chat b2 ok "hello cache" false ',"temperature":0.5'
expect_eq "temperature again: upstream requests" "$(upstream)" 4
chat b3 strict "hello cache" false ',"max_tokens":1'
expect_eq "max_tokens: upstream requests" "$(upstream)" 5
expect_eq "max_tokens: cut by length" "$(content b3)" "you"
grep -q '"finish_reason":"length"' "$T/b3" && ok || fail "max_tokens: $(cat "$T/b3")"
chat b4 strict "hello cache" false ',"max_tokens":1'
expect_eq "max_tokens again: upstream requests" "$(upstream)" 5
expect_eq "max_tokens again: the same answer" "$(norm b4)" "$(norm b3)"

# ---- Cache-Control: no-cache and no-store bypass it --------------------------------
chat c1 ok "hello cache" false "" -H 'Cache-Control: no-cache'
expect_eq "no-cache: status" "$(cat "$T/c1.code")" 200
expect_eq "no-cache: upstream requests" "$(upstream)" 6
expect_eq "lookup: bypasses" "$(event lookup bypass)" 1
chat c2 ok "not kept" false "" -H 'Cache-Control: max-age=0, No-Store'
expect_eq "no-store: upstream requests" "$(upstream)" 7
chat c3 ok "not kept" false
expect_eq "after a bypass: not stored, a miss" "$(upstream)" 8
chat c4 ok "not kept" false "" -H 'Cache-Control: max-age=60'
expect_eq "max-age alone: a hit" "$(upstream)" 8
expect_eq "lookup: bypasses" "$(event lookup bypass)" 2

# ---- failed and cut answers are never stored -----------------------------------------
stored=$(event store store)
chat f1 500 "fails"
expect_eq "500: status" "$(cat "$T/f1.code")" 502
chat f2 500 "fails"
expect_eq "500 again: status" "$(cat "$T/f2.code")" 502
expect_eq "500 again: asked again" "$(upstream)" 10
chat f3 reset-mid-stream "cut" true
chat f4 reset-mid-stream "cut" true
expect_eq "cut again: asked again" "$(upstream)" 12
grep -q '"error"' "$T/f4" && ok || fail "cut again: no error event: $(cat "$T/f4")"
expect_eq "failures: nothing stored" "$(event store store)" "$stored"

expect_eq "lookup: hits" "$(event lookup hit)" 8
expect_eq "lookup: misses" "$(event lookup miss)" 10

# ---- a reload keeps the store ---------------------------------------------------------
"$PORCH" reload "$T/main.pid" > "$T/reload.out" 2>&1 || fail "reload: $(cat "$T/reload.out")"
chat r1 ok "hello cache"
expect_eq "after a reload: still a hit" "$(upstream)" 12
expect_eq "after a reload: the same answer" "$(norm r1)" "$(norm a1)"
expect_eq "lookup: hits" "$(event lookup hit)" 9
stop
grep -q '"hit": 9' "$T/main.json" && ok || fail "stats JSON: no hit count: $(cat "$T/main.json")"

# ---- ttl: an answer is given out for ttl, then asked anew -----------------------------
start ttl --set lookup.ttl=1s
before=$(upstream)
chat d1 ok "short lived"
chat d2 ok "short lived"
expect_eq "ttl: within it, a hit" "$(upstream)" $((before + 1))
# past it, the next request misses (each try before then is a hit)
aged() {
	chat d3 ok "short lived"
	[ "$(upstream)" -eq $((before + 2)) ]
}
wait_for 10 aged && ok || fail "ttl: still a hit 10 s after a 1 s ttl"
expect_eq "ttl: past it, the same answer" "$(norm d3)" "$(norm d1)"
size=$(event store bytes_stored)
expect_eq "ttl: the aged answer is replaced" "$(event store bytes_evicted)" $((size / 2))
stop

# ---- eviction: within max-bytes, the least recently used answer goes ---------------------
# an entry's size, from a store of one (the answers below are all this size)
start size
chat e0 ok "entry a"
size=$(event store bytes_stored)
stop
[ "${size:-0}" -gt 0 ] && ok || fail "size: nothing stored"
max=$((size * 2 + size / 2))
start lru --set "lookup.max-bytes=$max"
before=$(upstream)
chat e1 ok "entry a"
chat e2 ok "entry b"
chat e3 ok "entry a"
expect_eq "lru: a and b stored, a a hit" "$(upstream)" $((before + 2))
chat e4 ok "entry c"
expect_eq "lru: c stored" "$(upstream)" $((before + 3))
expect_eq "lru: one evicted for c" "$(event store eviction)" 1
expect_eq "lru: bytes evicted" "$(event store bytes_evicted)" "$size"
chat e5 ok "entry a"
expect_eq "lru: a, used last, is kept" "$(upstream)" $((before + 3))
chat e6 ok "entry b"
expect_eq "lru: b, the least recently used, was evicted" "$(upstream)" $((before + 4))
held=$(($(event store bytes_stored) - $(event store bytes_evicted)))
[ "$held" -le "$max" ] && ok || fail "lru: $held bytes held, over max-bytes $max"
stop

# ---- metadata "cache": "no" from another source --------------------------------------
cat > "$T/stdin.xml" <<XML
<?xml version="1.0"?>
<pipeline name="meta" version="1" max-inflight="1">
  <worker name="model" plugin="echo"/>
  <stage name="in" plugin="stdin"/>
  <stage name="lookup" plugin="cache"><param name="role">lookup</param></stage>
  <stage name="infer" plugin="inference" worker="model"/>
  <stage name="store" plugin="cache"><param name="role">store</param></stage>
  <stage name="out" plugin="stdout"/>
  <channel from="in" to="lookup"/>
  <channel from="lookup:miss" to="infer"/>
  <channel from="lookup" to="out"/>
  <channel from="infer" to="store"/>
  <channel from="store" to="out"/>
</pipeline>
XML
cat > "$T/in.jsonl" <<'EOF'
{"text": "x", "meta": {"cache": "no"}}
{"text": "x"}
{"text": "x"}
{"text": "x", "meta": {"cache": "no"}}
{"text": "x", "meta": {"temperature": "0.5"}}
EOF
"$PORCH" run -q --stats-json "$T/meta.json" "$T/stdin.xml" < "$T/in.jsonl" > "$T/meta.out" 2> "$T/meta.err"
expect_eq "stdin: exit status" "$?" 0
expect_eq "stdin: answers" "$(cut -f2 "$T/meta.out" | tr '\n' '|')" "x|x|x|x|x|"
tr -d ' \n' < "$T/meta.json" | grep -q '"events":{"bypass":2,"hit":1,"miss":2}' && ok ||
    fail "stdin: lookup's events: $(cat "$T/meta.json")"
tr -d ' \n' < "$T/meta.json" | grep -q '"workers":\[{"calls":4,' && ok ||
    fail "stdin: the model should have had 4 calls: $(cat "$T/meta.json")"

finish
