#!/bin/sh
# openai.sh -- the openai worker against a fake OpenAI-compatible server.
#
# tests/fake-upstream listens on a random 127.0.0.1 port and picks its
# behaviour from each request's "model" (see its header comment), so one
# server serves every scenario.  Each scenario runs the pipeline
#     stdin -> inference (worker openai) -> stdout, inference:error -> null
# and checks the request's outcome, its error type and text (the stdin
# source reports "porch: stage NAME: stdin:LINE: request ID (session S) OUTCOME: ...").
# Then: the API key, start-up and load-time errors, connection reuse,
# max-connections, cancelled calls (a test stage built here), and a mixed
# run of every scenario under valgrind when it is installed.
#
# Every pipeline names the worker's transport: OPENAI_TRANSPORT, native (the
# default here, and auto's choice for http://) or curl; tests/openai-curl.sh
# runs this script with curl.  The connection cases (chunked answers, a kept
# connection the server closed, resets, cancellation and max-connections)
# run with both; a few look at the native client's own choices.
. "$top_srcdir/tests/lib.sh"

transport=${OPENAI_TRANSPORT:-native}
case $transport in
native|curl) ;;
*) echo "OPENAI_TRANSPORT must be native or curl, not '$transport'" >&2; exit 2 ;;
esac
echo "transport: $transport"

: "${top_builddir:=$top_srcdir}"
fake=$top_builddir/tests/fake-upstream
if [ ! -x "$fake" ]; then
	echo "tests/fake-upstream is not built: skipping"
	exit 77
fi

# libcurl honours proxy variables (the native transport reads none): the
# fake upstream is reached directly
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

fake_pids=
trap 'for p in $fake_pids; do kill "$p" 2>/dev/null; done; rm -rf "$T"' EXIT

# start_fake NAME: a fake upstream with its files in $T/NAME.*; sets $port
start_fake() {
	"$fake" -p "$T/$1.port" -s "$T/$1.stats" -l "$T/$1.log" -b "$T/$1.hole" -t 600 &
	fake_pids="$fake_pids $!"
	if ! wait_for 10 test -s "$T/$1.port"; then
		fail "the fake upstream did not start"
		finish
	fi
	port=$(cat "$T/$1.port")
}

# pipeline FILE WORKER-PARAMS [STAGE-PLUGIN [STAGE-PARAMS]]: one attempt per
# request (retries 0) unless STAGE-PARAMS say otherwise; stdout prints
# answers whole, so a cut-off stream leaves no partial line
pipeline() {
	cat > "$1" <<XML
<?xml version="1.0"?>
<pipeline name="openai" version="1">
  <worker name="model" plugin="openai">
    <param name="base-url">http://127.0.0.1:$port/v1</param>$(p transport "$transport")$2
  </worker>
  <stage name="input" plugin="stdin"/>
  <stage name="infer" plugin="${3:-inference}" worker="model" concurrency="${CONC:-16}">${4-$(p retries 0)}</stage>
  <stage name="output" plugin="stdout">$(p stream false)</stage>
  <stage name="dlq" plugin="null"/>
  <channel from="input" to="infer" capacity="64" overflow="block"/>
  <channel from="infer" to="output" capacity="64"/>
  <channel from="infer:error" to="dlq" capacity="64"/>
</pipeline>
XML
}

p() {
	printf '<param name="%s">%s</param>' "$1" "$2"
}

# line TEXT MODEL [MORE-META]: a JSON request line for stdin
line() {
	printf '{"text": "%s", "meta": {"model": "%s"%s}}\n' "$1" "$2" "${3:-}"
}

# run NAME FILE: porch run with $T/NAME.in as input
run() {
	"$PORCH" run -q --stats-json "$T/$1.json" "$2" < "$T/$1.in" > "$T/$1.out" 2> "$T/$1.err"
	echo $? > "$T/$1.status"
}

# expect_answer NAME WANT: one request, completed, with the answer WANT
expect_answer() {
	expect_eq "$1: exit status" "$(cat "$T/$1.status")" 0
	expect_eq "$1: answer" "$(cat "$T/$1.out")" "$(printf 'stdin\t%s' "$2")"
	expect_eq "$1: completed" "$(json_get "$T/$1.json" completed)" 1
	expect_eq "$1: nothing on stderr" "$(cat "$T/$1.err")" ""
}

# expect_failure NAME ERROR-TYPE TEXT-PATTERN: one request, failed so
expect_failure() {
	expect_eq "$1: exit status" "$(cat "$T/$1.status")" 0
	expect_eq "$1: failed" "$(json_get "$T/$1.json" failed)" 1
	expect_eq "$1: no answer" "$(cat "$T/$1.out")" ""
	grep -q "^[^ ]* [a-z]* porch: stage [^ ]*: stdin:1: request [0-9]* (session stdin) failed: $2: $3" "$T/$1.err" && ok ||
	    fail "$1: want 'failed: $2: $3', got: $(cat "$T/$1.err")"
}

# scenario NAME FILE MODEL [MORE-META]: runs one request of MODEL
scenario() {
	line "hello big world" "$3" "${4:-}" > "$T/$1.in"
	run "$1" "$2"
}

start_fake up
pipeline "$T/stream.xml" "$(p read-timeout 700ms)"
pipeline "$T/plain.xml" "$(p stream false; p read-timeout 700ms)"
pipeline "$T/comp.xml" "$(p endpoint completions; p read-timeout 700ms)"
pipeline "$T/comp-plain.xml" "$(p endpoint completions; p stream false)"

# ---- answers, streamed and not --------------------------------------------------
want="you said: hello big world"
for f in stream plain comp comp-plain; do
	scenario "ok-$f" "$T/$f.xml" ok
	expect_answer "ok-$f" "$want"
done
scenario slow-stream "$T/stream.xml" slow-stream
expect_answer slow-stream "$want"
scenario slow-stream-comp "$T/comp.xml" slow-stream
expect_answer slow-stream-comp "$want"
grep -q '"stream":true' "$T/up.log" && grep -q '"stream":false' "$T/up.log" && ok ||
    fail "stream true/false not both sent: $(cat "$T/up.log")"
grep -q '/v1/completions auth=\[\] {"model":"ok","prompt":"hello big world","stream":true}$' \
    "$T/up.log" && ok || fail "completions body: $(grep /v1/completions "$T/up.log")"

# a server that answers JSON when asked to stream is read all the same
scenario echo-plain "$T/stream.xml" echo-body
grep -q '"stream":true' "$T/echo-plain.out" && ok || fail "echo-plain: $(cat "$T/echo-plain.out")"

# ---- upstream errors: status, Retry-After, the server's message -------------------
for f in stream plain; do
	scenario "429-$f" "$T/$f.xml" 429
	expect_failure "429-$f" upstream \
	    "upstream answered 429 (retry after 2000 ms): Rate limit reached for requests (1 attempt)$"
	scenario "500-$f" "$T/$f.xml" 500
	expect_failure "500-$f" upstream "upstream answered 500: internal boom (1 attempt)$"
	scenario "503-$f" "$T/$f.xml" 503
	expect_failure "503-$f" upstream "upstream answered 503 (retry after 1000 ms): Service Unavailable (1 attempt)$"
done
scenario 429-date "$T/stream.xml" 429-date
expect_failure 429-date upstream "upstream answered 429 (retry after [23][0-9]000 ms): Rate limit reached for tokens (1 attempt)$"

# ---- retries by the inference stage: what can pass is tried again, after
# the upstream's Retry-After; a client error is not
requests() {
	json_get "$T/up.stats" requests
}
pipeline "$T/retry.xml" "" inference "$(p retries 1; p backoff-ms 1)"
before=$(requests)
scenario retry-503 "$T/retry.xml" 503
expect_failure retry-503 upstream "upstream answered 503 (retry after 1000 ms): Service Unavailable (2 attempts, retries exhausted)$"
expect_eq "retry 503: requests the upstream saw" "$(($(requests) - before))" 2
el=$(sed -n 's/^  "elapsed_s": \([0-9]*\)\..*/\1/p' "$T/retry-503.json")
[ "$el" -ge 1 ] && ok || fail "retry 503: the Retry-After of 1 s was not waited ($el s)"
for code in 400 401; do
	before=$(requests)
	scenario "retry-$code" "$T/retry.xml" "$code"
	expect_failure "retry-$code" upstream "upstream answered $code: .* (1 attempt)$"
	expect_eq "retry $code: requests the upstream saw" "$(($(requests) - before))" 1
done
before=$(requests)
scenario retry-bad-json "$T/retry.xml" bad-json
expect_eq "retry bad-json (a 200 that cannot be read): requests" "$(($(requests) - before))" 1
# a stream cut after tokens went out is not tried again
pipeline "$T/retry-stream.xml" "" inference "$(p retries 2; p backoff-ms 1)"
sed -i 's|<param name="stream">false</param>||' "$T/retry-stream.xml"
before=$(requests)
scenario retry-mid "$T/retry-stream.xml" reset-mid-stream
grep -q "failed: transport: .*(1 attempt, not retried: part of the answer was streamed)$" "$T/retry-mid.err" &&
    ok || fail "retry mid-stream: $(cat "$T/retry-mid.err")"
expect_eq "retry mid-stream: requests" "$(($(requests) - before))" 1
grep -q "^stdin	you said" "$T/retry-mid.out" && ok || fail "retry mid-stream: the streamed part: $(cat "$T/retry-mid.out")"

# ---- timeouts and broken connections ---------------------------------------------
for f in stream plain; do
	scenario "stall-$f" "$T/$f.xml" stall
	expect_failure "stall-$f" timeout "first-byte-timeout (read-timeout): no byte of the answer from upstream 700 ms after the request was sent (1 attempt)$"
	scenario "reset-$f" "$T/$f.xml" reset
	expect_failure "reset-$f" transport ".*"
done
scenario stall-mid-stream "$T/stream.xml" stall-mid-stream
expect_failure stall-mid-stream timeout "idle-timeout (read-timeout): upstream silent for 700 ms in the middle of the answer"
scenario reset-mid-stream "$T/stream.xml" reset-mid-stream
expect_failure reset-mid-stream transport ".*[Rr]eset"
pipeline "$T/refused.xml" "$(p connect-timeout 2s)"
sed -i "s|127.0.0.1:$port/|127.0.0.1:1/|" "$T/refused.xml"
scenario refused "$T/refused.xml" ok
expect_failure refused transport ".*"
# a server whose accept queue is full: the connection is never made
pipeline "$T/hole.xml" "$(p connect-timeout 300ms)"
sed -i "s|127.0.0.1:$port/|127.0.0.1:$(cat "$T/up.hole")/|" "$T/hole.xml"
scenario connect-timeout "$T/hole.xml" ok
expect_failure connect-timeout timeout "connect-timeout: "

# ---- answers that are not what the API returns: upstream, status 200 ---------------
scenario bad-json "$T/plain.xml" bad-json
expect_failure bad-json upstream "malformed answer: not JSON"
scenario no-choices "$T/plain.xml" no-choices
expect_failure no-choices upstream 'malformed answer: no "choices" array (1 attempt)$'
scenario bad-sse "$T/stream.xml" bad-sse
expect_failure bad-sse upstream "malformed stream event: not JSON .*'this is not json' (1 attempt, not retried: part of the answer was streamed)$"
scenario no-done "$T/stream.xml" no-done
expect_failure no-done upstream 'malformed stream: it ended without "data: \[DONE\]" (1 attempt, not retried: part of the answer was streamed)$'
scenario error-event "$T/stream.xml" error-event
expect_failure error-event upstream "upstream sent an error event: model overloaded (1 attempt)$"
pipeline "$T/small.xml" "$(p max-response 16k)"
scenario big "$T/small.xml" big
expect_failure big upstream "the answer is larger than max-response (16384 bytes) (1 attempt)$"

# ---- the request body from the request's settings -------------------------------
scenario body "$T/plain.xml" echo-body ', "temperature": "0.7", "top-p": "0.9", "max-tokens": "12", "stop": "[\"\\n\\n\", \"END\"]", "system": "be brief", "messages": "[{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"yo\"}]"'
body=$(grep 'hello big world' "$T/up.log" | tail -n 1)
for want in '"model":"echo-body"' '"max_tokens":12' '"temperature":0.7' '"top_p":0.9' \
    '"stop":\["\\n\\n","END"\]' '"stream":false' \
    '"messages":\[{"role":"system","content":"be brief"},{"role":"user","content":"hi"},{"role":"assistant","content":"yo"},{"role":"user","content":"hello big world"}\]'; do
	printf '%s\n' "$body" | grep -q "$want" && ok || fail "body: no $want in $body"
done
expect_eq "body: completed" "$(json_get "$T/body.json" completed)" 1
scenario one-stop "$T/plain.xml" ok ', "stop": "END"'
tail -n 1 "$T/up.log" | grep -q '"stop":"END"' && ok || fail "one stop string: $(tail -n 1 "$T/up.log")"
scenario default-model "$T/plain.xml" ""
tail -n 1 "$T/up.log" | grep -q '"model":"default"' && ok || fail "default model: $(tail -n 1 "$T/up.log")"
# (the inference stage checks these before the worker sees them)
for opt in temperature top-p max-tokens; do
	scenario "bad-$opt" "$T/plain.xml" ok ", \"$opt\": \"abc\""
	expect_failure "bad-$opt" bad-request "metadata '$opt' is 'abc': want a"
done
scenario bad-stop "$T/plain.xml" ok ', "stop": "[1, 2]"'
expect_failure bad-stop bad-request 'option "stop": not a JSON array of strings (1 attempt)$'
scenario bad-messages "$T/plain.xml" ok ', "messages": "[{\"content\": \"x\"}]"'
expect_failure bad-messages bad-request 'option "messages": item 1 '

# ---- a client's request forwarded whole ("openai.request") --------------------------
# the body the upstream got last, without the log line's head
last_body() {
	tail -n 1 "$T/up.log" | sed 's/^[^{]*//'
}
# req_line TEXT DOC [MORE-META]: a request line with DOC as "openai.request"
req_line() {
	printf '{"text": "%s", "meta": {"openai.request": "%s"%s}}\n' "$1" \
	    "$(printf '%s' "$2" | sed 's/\\/\\\\/g; s/"/\\"/g')" "${3:-}"
}
# fwd NAME FILE TEXT DOC [MORE-META]: runs one forwarded request
fwd() {
	req_line "$3" "$4" "${5:-}" > "$T/$1.in"
	run "$1" "$2"
}
# every member a client may send, and messages of every kind
doc='{"model":"echo-body","messages":[{"role":"developer","content":"be brief"},{"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA","detail":"low"}}],"name":"ann"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},{"role":"tool","tool_call_id":"call_1","content":"sunny"},{"role":"user","content":"and tomorrow?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],"tool_choice":"auto","parallel_tool_calls":false,"response_format":{"type":"json_object"},"seed":42,"logprobs":true,"top_logprobs":3,"logit_bias":{"50256":-100},"presence_penalty":0.5,"frequency_penalty":-0.25,"user":"u-1","stream":true,"stream_options":{"include_usage":true},"service_tier":"auto","metadata":{"k":"v"},"n":1,"x_vendor_knob":[1,{"a":null}],"max_tokens":64,"temperature":0.7,"top_p":0.9,"stop":["END"]}'
fwd fwd-all "$T/stream.xml" "and tomorrow?" "$doc" ', "system": "be brief", "max-tokens": "64", "temperature": "0.7", "top-p": "0.9", "stop": "[\"END\"]", "stream": "true"'
expect_eq "forwarded: completed" "$(json_get "$T/fwd-all.json" completed)" 1
expect_eq "forwarded: every member as sent" "$(last_body)" "$doc"
# a stage changed the text: the last user message's string, nothing else
fwd fwd-text "$T/stream.xml" "and next week?" "$doc"
expect_eq "forwarded: a new prompt" "$(last_body)" "$(printf '%s' "$doc" | sed 's/and tomorrow?/and next week?/')"
# parts with an image: the same text keeps them; a new one takes the text parts' place
doc='{"model":"echo-body","messages":[{"role":"user","content":[{"type":"text","text":"what is"},{"type":"image_url","image_url":{"url":"http://x/cat.png"}},{"type":"text","text":"this?"}]}],"stream":true}'
fwd fwd-parts "$T/stream.xml" 'what is\nthis?' "$doc"
expect_eq "forwarded: text parts as sent" "$(last_body)" "$doc"
fwd fwd-parts2 "$T/stream.xml" 'describe the cat' "$doc"
expect_eq "forwarded: a new prompt in parts" "$(last_body)" \
    '{"model":"echo-body","messages":[{"role":"user","content":[{"type":"text","text":"describe the cat"},{"type":"image_url","image_url":{"url":"http://x/cat.png"}}]}],"stream":true}'
# a system option that differs, and one where there was none
doc='{"model":"echo-body","messages":[{"role":"system","content":"old"},{"role":"user","content":"q"}]}'
fwd fwd-sys "$T/plain.xml" q "$doc" ', "system": "new"'
expect_eq "forwarded: a new system text" "$(last_body)" \
    '{"model":"echo-body","messages":[{"role":"system","content":"new"},{"role":"user","content":"q"}]}'
fwd fwd-sys2 "$T/plain.xml" q '{"messages":[{"role":"user","content":"q"}]}' ', "system": "sys", "model": "echo-body"'
expect_eq "forwarded: a system message inserted, the model option" "$(last_body)" \
    '{"messages":[{"role":"system","content":"sys"},{"role":"user","content":"q"}],"model":"echo-body"}'
# the token cap under the name the upstream takes
pipeline "$T/mct.xml" "$(p stream false; p max-tokens-field max_completion_tokens)"
fwd fwd-mct "$T/mct.xml" q '{"model":"echo-body","messages":[{"role":"user","content":"q"}],"max_tokens":5}' ', "max-tokens": "12"'
expect_eq "max-tokens-field max_completion_tokens" "$(last_body)" \
    '{"model":"echo-body","messages":[{"role":"user","content":"q"}],"max_completion_tokens":12}'
fwd fwd-mt "$T/plain.xml" q '{"model":"echo-body","messages":[{"role":"user","content":"q"}],"max_completion_tokens":7}'
expect_eq "max-tokens-field as-sent (the default)" "$(last_body)" \
    '{"model":"echo-body","messages":[{"role":"user","content":"q"}],"max_completion_tokens":7}'
pipeline "$T/mt.xml" "$(p stream false; p max-tokens-field max_tokens)"
fwd fwd-mt2 "$T/mt.xml" q '{"model":"echo-body","messages":[{"role":"user","content":"q"}],"max_completion_tokens":7}'
expect_eq "max-tokens-field max_tokens" "$(last_body)" \
    '{"model":"echo-body","messages":[{"role":"user","content":"q"}],"max_tokens":7}'
fwd fwd-null "$T/mct.xml" q '{"model":"echo-body","messages":[{"role":"user","content":"q"}],"max_tokens":null}'
expect_eq "max_tokens null: no cap" "$(last_body)" \
    '{"model":"echo-body","messages":[{"role":"user","content":"q"}]}'
# stream: the client's choice when given, else the worker's; stream_options only with it
doc='{"model":"echo-body","messages":[{"role":"user","content":"q"}],"stream":true,"stream_options":{"include_usage":true}}'
fwd fwd-nostream "$T/stream.xml" q "$doc" ', "stream": "false"'
expect_eq "stream false: no stream_options" "$(last_body)" \
    '{"model":"echo-body","messages":[{"role":"user","content":"q"}],"stream":false}'
expect_answer fwd-nostream '{"model":"echo-body","messages":[{"role":"user","content":"q"}],"stream":false}'
fwd fwd-stream "$T/plain.xml" q "$doc" ', "stream": "true"'
expect_eq "stream true from the client: as sent" "$(last_body)" "$doc"
fwd fwd-default "$T/plain.xml" q "$doc"
expect_eq "no stream option: the worker's" "$(last_body)" \
    '{"model":"echo-body","messages":[{"role":"user","content":"q"}],"stream":false}'
# a chat request /completions cannot carry is refused, not sent altered
fwd fwd-cross "$T/comp.xml" q '{"model":"echo-body","messages":[{"role":"user","content":"q"},{"role":"assistant","content":null,"tool_calls":[{"id":"c"}]},{"role":"user","content":"q"}]}'
expect_failure fwd-cross bad-request 'messages\[1\].tool_calls cannot be sent to /v1/completions (1 attempt)$'
fwd fwd-cross2 "$T/comp-plain.xml" q '{"model":"echo-body","messages":[{"role":"user","content":"q"}],"seed":3}'
expect_eq "plain chat to /completions: from the text" "$(last_body)" \
    '{"model":"echo-body","prompt":"q","stream":false,"seed":3}'

# ---- the answer whole: metadata and, on errors, the upstream's error object -----------
# rec_pipeline FILE WORKER-PARAMS: answers and failures both go to a dlq
# stage, whose records show each request's metadata
rec_pipeline() {
	cat > "$1" <<XML
<?xml version="1.0"?>
<pipeline name="openai" version="1">
  <worker name="model" plugin="openai">
    <param name="base-url">http://127.0.0.1:$port/v1</param>$(p transport "$transport")$2
  </worker>
  <stage name="input" plugin="stdin"/>
  <stage name="infer" plugin="inference" worker="model">$(p retries 0)</stage>
  <stage name="rec" plugin="dlq">$(p path "$1.jsonl")</stage>
  <channel from="input" to="infer" capacity="64" overflow="block"/>
  <channel from="infer" to="rec" capacity="64"/>
  <channel from="infer:error" to="rec" capacity="64"/>
</pipeline>
XML
}
rec_pipeline "$T/rec-s.xml" ""
rec_pipeline "$T/rec-p.xml" "$(p stream false)"
for f in s p; do
	line "call a tool" tool-stream > "$T/rec-$f.in"
	line "refused" 400 >> "$T/rec-$f.in"
	line "limited" 429 >> "$T/rec-$f.in"
	run "rec-$f" "$T/rec-$f.xml"
	expect_eq "answer metadata ($f): completed" "$(json_get "$T/rec-$f.json" completed)" 1
	r=$(grep '"input":"call a tool"' "$T/rec-$f.xml.jsonl")
	for want in '"text":"ok"' '"finish-reason":"tool_calls"' \
	    '"usage":"{\"prompt_tokens\":3,\"completion_tokens\":9,\"total_tokens\":12,\"completion_tokens_details\":{\"reasoning_tokens\":0}}"' \
	    '"openai.extra":"{\"system_fingerprint\":\"fp_t\"}"' \
	    '"openai.choice":"{\"logprobs\":{\"content\":[{\"token\":\"ok\",\"logprob\":-0.5}]}}"'; do
		printf '%s\n' "$r" | grep -qF "$want" && ok || fail "answer metadata ($f): no $want in $r"
	done
	case $f in
	s) want='"openai.message":"{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]}"' ;;
	p) want='"openai.message":"{\"refusal\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]}"' ;;
	esac
	printf '%s\n' "$r" | grep -qF "$want" && ok || fail "answer metadata ($f): no $want in $r"
	grep '"input":"refused"' "$T/rec-$f.xml.jsonl" | grep -qF \
	    '"status":400,' && grep '"input":"refused"' "$T/rec-$f.xml.jsonl" | grep -qF \
	    '"openai.error":"{\"message\":\"bad request\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}"' &&
	    ok || fail "openai.error 400 ($f): $(grep '"input":"refused"' "$T/rec-$f.xml.jsonl")"
	grep '"input":"limited"' "$T/rec-$f.xml.jsonl" | grep -qF '"status":429,"retry_after_ms":2000' &&
	    grep '"input":"limited"' "$T/rec-$f.xml.jsonl" | grep -qF \
	    '"openai.error":"{\"message\":\"Rate limit reached for requests\",\"type\":\"requests\",\"param\":null,\"code\":\"rate_limit_exceeded\"}"' &&
	    ok || fail "openai.error 429 ($f): $(grep '"input":"limited"' "$T/rec-$f.xml.jsonl")"
done
line "overloaded" error-event > "$T/rec-e.in"
run rec-e "$T/rec-s.xml"
grep '"input":"overloaded"' "$T/rec-s.xml.jsonl" | grep -qF \
    '"openai.error":"{\"message\":\"model overloaded\",\"code\":503}"' && ok ||
    fail "openai.error of an error event: $(grep '"input":"overloaded"' "$T/rec-s.xml.jsonl")"

# ---- the API key: from the environment, to the server, nowhere else -------------------
key="sk-porch-test-$$-SECRETKEY"
pipeline "$T/key.xml" "$(p api-key-env PORCH_TEST_OPENAI_KEY)"
{ line "with a key" ok; line "refused with a key" 429; } > "$T/key.in"
PORCH_TEST_OPENAI_KEY=$key "$PORCH" run --stats-json "$T/key.json" "$T/key.xml" \
    < "$T/key.in" > "$T/key.out" 2> "$T/key.err"
expect_eq "key: exit status" "$?" 0
expect_eq "key: completed" "$(json_get "$T/key.json" completed)" 1
grep -q "auth=\[Bearer $key\] .*with a key" "$T/up.log" && ok ||
    fail "key: the server did not get 'Authorization: Bearer KEY'"
if grep -q SECRETKEY "$T/key.out" "$T/key.err" "$T/key.xml" "$T/key.json"; then
	fail "key: the API key appears in porch's output or files"
else
	ok
fi
# an unset or empty variable: porch run stops at start, naming it
PORCH_TEST_OPENAI_KEY= "$PORCH" run -q "$T/key.xml" < /dev/null > /dev/null 2> "$T/nokey.err"
expect_eq "empty key: exit status" "$?" 1
grep -q "PORCH_TEST_OPENAI_KEY.*is empty" "$T/nokey.err" && ok || fail "empty key: $(cat "$T/nokey.err")"
(unset PORCH_TEST_OPENAI_KEY; "$PORCH" run -q "$T/key.xml" < /dev/null > /dev/null 2> "$T/nokey.err")
expect_eq "unset key: exit status" "$?" 1
grep -q "api-key-env: the environment variable PORCH_TEST_OPENAI_KEY.* is not set" "$T/nokey.err" && ok ||
    fail "unset key: $(cat "$T/nokey.err")"

# ---- load-time checks: porch check refuses bad parameters --------------------------
"$PORCH" check "$T/stream.xml" > /dev/null 2>&1
expect_eq "porch check of a good file: exit status" "$?" 0
for url in "ftp://127.0.0.1/v1" "127.0.0.1:8000/v1" "http://127.0.0.1:8000/v1?x=1" "http://[::1/v1"; do
	pipeline "$T/badurl.xml" ""
	sed -i "s|http://127.0.0.1:$port/v1|$url|" "$T/badurl.xml"
	"$PORCH" check "$T/badurl.xml" > /dev/null 2> "$T/badurl.err"
	expect_eq "base-url $url: porch check exit status" "$?" 2
	grep -q "badurl.xml:4:[0-9]*: error: " "$T/badurl.err" && grep -qF "'$url'" "$T/badurl.err" && ok ||
	    fail "base-url $url: $(cat "$T/badurl.err")"
	case $url in
	ftp:*) grep -q "must start with http:// or https://" "$T/badurl.err" && ok ||
		fail "base-url $url: $(cat "$T/badurl.err")" ;;
	esac
done
# the native transport speaks no TLS
pipeline "$T/badtls.xml" ""
sed -i "s|http://127.0.0.1:$port/v1|https://127.0.0.1:$port/v1|; s|<param name=\"transport\">[a-z]*</param>|<param name=\"transport\">native</param>|" "$T/badtls.xml"
"$PORCH" check "$T/badtls.xml" > /dev/null 2> "$T/badtls.err"
expect_eq "transport native with https: porch check exit status" "$?" 2
grep -q "native speaks plain http:// only" "$T/badtls.err" && ok || fail "native with https: $(cat "$T/badtls.err")"
pipeline "$T/badenv.xml" "$(p api-key-env 'sk-abc 123')"
"$PORCH" check "$T/badenv.xml" > /dev/null 2> "$T/badenv.err"
expect_eq "api-key-env not a name: exit status" "$?" 2
grep -q "is not an environment variable name" "$T/badenv.err" && ok || fail "api-key-env: $(cat "$T/badenv.err")"

# ---- connection reuse: sequential requests share one connection ------------------------
before=$(json_get "$T/up.stats" connections)
for i in $(seq 1 20); do line "request $i" ok; done > "$T/reuse.in"
CONC=1 pipeline "$T/reuse.xml" "$(p stream false)"
run reuse "$T/reuse.xml"
expect_eq "reuse: completed" "$(json_get "$T/reuse.json" completed)" 20
after=$(json_get "$T/up.stats" connections)
[ $((after - before)) -le 2 ] && ok || fail "reuse: 20 requests took $((after - before)) connections"
for i in $(seq 1 20); do line "streamed $i" ok; done > "$T/reuse-s.in"
CONC=1 pipeline "$T/reuse-s.xml" ""
run reuse-s "$T/reuse-s.xml"
expect_eq "reuse streamed: completed" "$(json_get "$T/reuse-s.json" completed)" 20
before=$after
after=$(json_get "$T/up.stats" connections)
[ $((after - before)) -le 2 ] && ok || fail "reuse streamed: 20 requests took $((after - before)) connections"

# ---- max-connections: requests beyond wait for a connection, not for a timeout ------------
start_fake maxc
for i in $(seq 1 12); do line "slow $i" slow-150; done > "$T/maxc.in"
pipeline "$T/maxc.xml" "$(p max-connections 2; p read-timeout 1s; p connect-timeout 300ms)"
run maxc "$T/maxc.xml"
expect_eq "max-connections: completed" "$(json_get "$T/maxc.json" completed)" 12
expect_eq "max-connections: most connections open at once" "$(json_get "$T/maxc.stats" max_open)" 2
expect_eq "max-connections: requests served" "$(json_get "$T/maxc.stats" requests)" 12

# ---- cancelled calls: the worker forgets them, from anywhere ------------------------------
cc=${CC:-cc}
mkdir "$T/plugins"
if $cc -shared -fPIC -g -O1 -I"$top_srcdir/include" -o "$T/plugins/canceler.so" \
    "$top_srcdir/tests/openai-canceler.c" > "$T/cc.log" 2>&1; then
	for m in slow-stream ok stall; do
		for i in 1 2 3; do line "cancel me $i" "$m"; done
	done > "$T/cancel.in"
	for mode in first-token restart after; do
		pipeline "$T/cancel-$mode.xml" "$(p read-timeout 2s)" canceler "$(p mode "$mode"; p after-ms 300)"
		"$PORCH" run -q --plugin-path "$T/plugins" --stats-json "$T/cancel-$mode.json" \
		    "$T/cancel-$mode.xml" < "$T/cancel.in" > "$T/cancel-$mode.out" 2> "$T/cancel-$mode.err"
		expect_eq "cancel $mode: exit status" "$?" 0
		expect_eq "cancel $mode: accepted" "$(json_get "$T/cancel-$mode.json" accepted)" 9
	done
	expect_eq "cancel first-token: cancelled" "$(grep -c 'failed: cancelled: cancelled at the first token' \
	    "$T/cancel-first-token.err")" 6
	expect_eq "cancel restart: completed" "$(json_get "$T/cancel-restart.json" completed)" 6
	expect_eq "cancel restart: whole answers" "$(grep -c "	you said: cancel me [123]$" \
	    "$T/cancel-restart.out")" 6
	expect_eq "cancel after: cancelled" "$(grep -c 'failed: cancelled: cancelled after a delay' \
	    "$T/cancel-after.err")" 3
	expect_eq "cancel after: completed" "$(json_get "$T/cancel-after.json" completed)" 6
	# a cancelled call gives its connection up: with max-connections 1, the
	# call waiting behind it goes through then, not after the read-timeout
	{ line "cancel me" stall; line "let me pass" ok; } > "$T/cancel-slot.in"
	pipeline "$T/cancel-slot.xml" "$(p max-connections 1; p read-timeout 5s)" canceler \
	    "$(p mode after; p after-ms 300; p match "cancel me")"
	"$PORCH" run -q --plugin-path "$T/plugins" --stats-json "$T/cancel-slot.json" \
	    "$T/cancel-slot.xml" < "$T/cancel-slot.in" > "$T/cancel-slot.out" 2> "$T/cancel-slot.err"
	expect_eq "cancel frees the slot: exit status" "$?" 0
	expect_eq "cancel frees the slot: completed" "$(json_get "$T/cancel-slot.json" completed)" 1
	expect_eq "cancel frees the slot: the answer" "$(cat "$T/cancel-slot.out")" \
	    "$(printf 'stdin\tyou said: let me pass')"
	expect_eq "cancel frees the slot: cancelled" \
	    "$(grep -c 'failed: cancelled: cancelled after a delay' "$T/cancel-slot.err")" 1
	el=$(sed -n 's/^  "elapsed_s": \([0-9]*\)\..*/\1/p' "$T/cancel-slot.json")
	[ "$el" -lt 3 ] && ok || fail "cancel frees the slot: took $el s (the read-timeout is 5 s)"
	# cancelled from inside the parser (the first token), a new call at once:
	# it waits for the one connection, which the cancelled call gives up
	for i in 1 2 3; do line "restart me $i" slow-stream; done > "$T/cancel-slot2.in"
	pipeline "$T/cancel-slot2.xml" "$(p max-connections 1; p read-timeout 5s)" canceler "$(p mode restart)"
	"$PORCH" run -q --plugin-path "$T/plugins" --stats-json "$T/cancel-slot2.json" \
	    "$T/cancel-slot2.xml" < "$T/cancel-slot2.in" > "$T/cancel-slot2.out" 2> "$T/cancel-slot2.err"
	expect_eq "cancel inside the parser, one connection: completed" \
	    "$(json_get "$T/cancel-slot2.json" completed)" 3
	expect_eq "cancel inside the parser, one connection: whole answers" \
	    "$(grep -c "	you said: restart me [123]$" "$T/cancel-slot2.out")" 3
else
	echo "could not build the test stage: skipping the cancel tests" >&2
	cat "$T/cc.log" >&2
fi

# ---- connections: chunked answers, kept connections the server closed, resets ----------
# (one request at a time, on one kept connection, in the order given)
start_fake conn
cstats() {
	json_get "$T/conn.stats" "$1"
}
CONC=1 pipeline "$T/conn-s.xml" "$(p read-timeout 2s)"
CONC=1 pipeline "$T/conn-p.xml" "$(p stream false; p read-timeout 2s)"
# a whole answer in chunks (Transfer-Encoding: chunked), read across reads
for f in s p; do
	scenario "chunked-$f" "$T/conn-$f.xml" chunked
	expect_answer "chunked-$f" "you said: hello big world"
done
# a whole answer that ends with the connection (no length, no chunks); interim
# 1xx answers before the real one; heads cut mid-line across reads
scenario no-length "$T/conn-p.xml" no-length
expect_answer no-length "you said: hello big world"
scenario interim "$T/conn-p.xml" interim
expect_answer interim "you said: hello big world"
scenario 429-ms "$T/conn-p.xml" 429-ms
expect_failure 429-ms upstream "upstream answered 429 (retry after 1501 ms): Rate limit reached (1 attempt)$"
# the server closes after answering: the next request still goes through
for i in 1 2; do line "close $i" close; line "after close $i" ok; done > "$T/close.in"
run close "$T/conn-p.xml"
expect_eq "close: completed" "$(json_get "$T/close.json" completed)" 4
expect_eq "close: answers" "$(grep -c '^stdin	you said: .*close [12]$' "$T/close.out")" 4
# the server closes a kept connection as the next request comes (EOF before
# a byte of the answer): sent again once, on a new connection
for f in s p; do
	r0=$(cstats requests)
	c0=$(cstats connections)
	{ line "stale 1" drop-next; line "stale 2" ok; line "stale 3" ok; } > "$T/stale-$f.in"
	run "stale-$f" "$T/conn-$f.xml"
	expect_eq "stale ($f): completed" "$(json_get "$T/stale-$f.json" completed)" 3
	expect_eq "stale ($f): nothing on stderr" "$(cat "$T/stale-$f.err")" ""
	expect_eq "stale ($f): requests the upstream saw" "$(($(cstats requests) - r0))" 4
	expect_eq "stale ($f): connections" "$(($(cstats connections) - c0))" 2
done
# reset before a byte of the answer on a kept connection: sent again once
# (to a fresh connection, which is reset too); never twice
r0=$(cstats requests)
{ line "warm" ok; line "reset twice" reset; } > "$T/reset-kept.in"
run reset-kept "$T/conn-p.xml"
expect_eq "reset on a kept connection: completed" "$(json_get "$T/reset-kept.json" completed)" 1
expect_eq "reset on a kept connection: failed" "$(json_get "$T/reset-kept.json" failed)" 1
expect_eq "reset on a kept connection: requests (sent again once)" "$(($(cstats requests) - r0))" 3
# reset after the first bytes of the answer: not sent again
for f in s p; do
	r0=$(cstats requests)
	{ line "warm" ok; line "cut" reset-mid-stream; } > "$T/reset-late-$f.in"
	run "reset-late-$f" "$T/conn-$f.xml"
	expect_eq "reset mid-answer ($f): failed" "$(json_get "$T/reset-late-$f.json" failed)" 1
	grep -q "failed: transport: .*[Rr]eset" "$T/reset-late-$f.err" && ok ||
	    fail "reset mid-answer ($f): $(cat "$T/reset-late-$f.err")"
	expect_eq "reset mid-answer ($f): requests (not sent again)" "$(($(cstats requests) - r0))" 2
done

# ---- every call ends once: many at once, through few connections ------------------------
start_fake many
many_models="ok slow-stream 429 503 stall reset reset-mid-stream bad-json no-done
    error-event big close drop-next chunked slow-50"
i=0
for k in 1 2 3; do
	for m in $many_models; do
		i=$((i + 1))
		line "many $i" "$m"
	done
done > "$T/many.in"
many=$i
pipeline "$T/many.xml" "$(p max-connections 3; p read-timeout 700ms; p max-response 16k)"
sed -i "s|127.0.0.1:$port/|127.0.0.1:$(cat "$T/many.port")/|" "$T/many.xml"
run many "$T/many.xml"
expect_eq "many: exit status" "$(cat "$T/many.status")" 0
expect_eq "many: accepted" "$(json_get "$T/many.json" accepted)" "$many"
expect_eq "many: every request ended" \
    "$(($(json_get "$T/many.json" completed) + $(json_get "$T/many.json" failed)))" "$many"
expect_eq "many: completed" "$(json_get "$T/many.json" completed)" 18
# each request's outcome once: its answer or its failure, never both, never twice
bad=0
for n in $(seq 1 "$many"); do
	a=$(grep -c "^stdin	you said: many $n\$" "$T/many.out")
	e=$(grep -c "^[^ ]* [a-z]* porch: stage [^ ]*: stdin:$n: request [0-9]* (session stdin) failed: " "$T/many.err")
	[ $((a + e)) = 1 ] || { bad=$((bad + 1)); echo "many $n: $a answers, $e failures" >&2; }
done
expect_eq "many: requests without exactly one outcome" "$bad" 0

# ---- every scenario at once, and under valgrind when it is there ---------------------
models="ok slow-stream 429 500 503 stall stall-mid-stream reset reset-mid-stream bad-json
    no-choices bad-sse no-done error-event big close echo-body tool-stream"
for m in $models; do line "mixed $m" "$m"; line "mixed $m" "$m" ', "temperature": "x"'; done > "$T/mixed.in"
req_line "mixed q" '{"model":"tool-stream","messages":[{"role":"user","content":[{"type":"text","text":"q"},{"type":"image_url","image_url":{"url":"u"}}]}],"tools":[]}' >> "$T/mixed.in"
pipeline "$T/mixed.xml" "$(p read-timeout 700ms; p max-response 16k)"
run mixed "$T/mixed.xml"
expect_eq "mixed: exit status" "$(cat "$T/mixed.status")" 0
expect_eq "mixed: accepted" "$(json_get "$T/mixed.json" accepted)" 37
expect_eq "mixed: completed" "$(json_get "$T/mixed.json" completed)" 6
expect_eq "mixed: failed" "$(json_get "$T/mixed.json" failed)" 31
expect_eq "mixed: bad requests" "$(grep -c "failed: bad-request: metadata 'temperature'" "$T/mixed.err")" 18

case " ${CFLAGS:-} " in
*-fsanitize=*) vg= ;; # the sanitizers check this build already
*) vg=$(command -v valgrind) ;;
esac
if [ -n "$vg" ]; then
	for f in mixed cancel-restart cancel-first-token; do
		[ -f "$T/$f.xml" ] || continue
		in=$T/mixed.in
		[ "$f" = mixed ] || in=$T/cancel.in
		"$top_builddir/libtool" --mode=execute "$vg" -q --leak-check=full \
		    --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
		    "$PORCH" run -q --plugin-path "$T/plugins" "$T/$f.xml" < "$in" > /dev/null 2> "$T/vg-$f.err"
		st=$?
		expect_eq "valgrind $f: exit status" "$st" 0
		[ "$st" = 0 ] || sed -n '/==[0-9]*==/p' "$T/vg-$f.err" | head -n 40 >&2
	done
else
	echo "valgrind not installed, or a sanitizer build: no valgrind run"
fi

# ---- pipelines/openai.xml: the five stages against the fake server --------------
echo "how do I route failed requests to a dead letter file?" |
    "$PORCH" run -q --set llm.base-url="http://127.0.0.1:$port/v1" --set llm.model=ok \
    --set llm.transport="$transport" \
    --set dead.path="$T/openai-dead.jsonl" --stats-json "$T/ex.json" \
    "$top_srcdir/pipelines/openai.xml" > "$T/ex.out" 2> "$T/ex.err"
expect_eq "openai.xml: exit status" "$?" 0
expect_eq "openai.xml: completed" "$(json_get "$T/ex.json" completed)" 1
grep -q '^stdin	you said: how do I route failed requests to a dead letter file?$' "$T/ex.out" &&
    ok || fail "openai.xml: answer $(cat "$T/ex.out") $(cat "$T/ex.err")"
cat "$T"/*.log | grep 'how do I route failed requests' > "$T/ex.req"
grep -q '"messages":\[{"role":"system","content":"Answer the question using the context below' "$T/ex.req" && ok ||
    fail "openai.xml: no system message: $(cat "$T/ex.req")"
grep -q '"max_tokens":512,"temperature":0.2' "$T/ex.req" && ok ||
    fail "openai.xml: settings: $(cat "$T/ex.req")"
echo "how do I route failed requests to a dead letter file?" |
    "$PORCH" run -q --set llm.base-url="http://127.0.0.1:1/v1" --set infer.backoff-ms=1 \
    --set llm.transport="$transport" \
    --set dead.path="$T/openai-dead.jsonl" --stats-json "$T/ex2.json" \
    "$top_srcdir/pipelines/openai.xml" > "$T/ex2.out" 2> "$T/ex2.err"
expect_eq "openai.xml down: failed" "$(json_get "$T/ex2.json" failed)" 1
grep -q '"outcome":"failed","input":"how do I route failed requests to a dead letter file?".*"error":"transport".*"attempts":3' "$T/openai-dead.jsonl" &&
    ok || fail "openai.xml down: dead letter $(cat "$T/openai-dead.jsonl")"
grep -qF '"system":"Answer the question using the context below.\n\nContext:\n' "$T/openai-dead.jsonl" &&
    grep -qF 'Every stage also has an error port' "$T/openai-dead.jsonl" && ok ||
    fail "openai.xml: the retrieved context is not in the prompt: $(cat "$T/openai-dead.jsonl")"

finish
