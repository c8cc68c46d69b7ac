#!/bin/sh
# http.sh -- the http source and the reply sink end to end, with curl (and
# bash's /dev/tcp for what curl will not send): the OpenAI endpoints whole
# and streamed, /generate, models, tasks and their events, health, metrics,
# bad input of every kind, keys and rate limits, load, cancellation, drain.
. "$top_srcdir/tests/lib.sh"

command -v curl > /dev/null || { echo "curl is not installed: skipped"; exit 77; }
command -v bash > /dev/null || { echo "bash is not installed: skipped"; exit 77; }

p() {
	printf '<param name="%s">%s</param>' "$1" "$2"
}

# pipeline FILE HTTP-PARAMS WORKER-PARAMS [CHANNEL-ATTRS] [INFERENCE-ATTRS] [INFERENCE-PARAMS]
pipeline() {
	_ch=${4:-}
	[ -n "$_ch" ] || _ch='capacity="64" overflow="reject"'
	cat > "$1" <<XML
<?xml version="1.0"?>
<pipeline name="api" version="1">
  <worker name="model" plugin="echo">$3</worker>
  <stage name="ingress" plugin="http">$(p listen 127.0.0.1:0)$2</stage>
  <stage name="inference" plugin="inference" worker="model" ${5:-}>${6:-}</stage>
  <stage name="reply" plugin="reply"/>
  <channel from="ingress" to="inference" $_ch/>
  <channel from="inference" to="reply"/>
  <channel from="inference:error" to="reply"/>
</pipeline>
XML
}

# start NAME FILE: runs porch in the background; sets pid, P (the port), U (base URL)
start() {
	name=$1
	rm -f "$T/$name.port"
	"$PORCH" run --stats-json "$T/$name.json" --set "ingress.port-file=$T/$name.port" "$2" \
	    > "$T/$name.out" 2> "$T/$name.err" &
	pid=$!
	if ! wait_for 20 test -s "$T/$name.port"; then
		fail "$name: porch did not start: $(cat "$T/$name.err")"
		kill -KILL "$pid" 2> /dev/null
		return 1
	fi
	P=$(cat "$T/$name.port")
	U="http://127.0.0.1:$P"
	grep -q "porch: stage 'ingress': listening on 127.0.0.1:$P$" "$T/$name.err" && ok ||
	    fail "$name: no 'listening on' line: $(cat "$T/$name.err")"
}

# stop: SIGTERM, and porch must exit 0
stop() {
	kill -TERM "$pid"
	wait "$pid"
	expect_eq "$name: exit status after SIGTERM" "$?" 0
}

# raw SECONDS: sends standard input on one connection to port $P and prints
# what comes back until the server closes it or SECONDS pass
raw() {
	bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1
		timeout "$1" cat <&3 &
		cat >&3 2> /dev/null
		wait $!' "$P" "$1"
}

# post PATH BODY [HEADER-LINES]: a raw HTTP/1.1 POST with its Content-Length
post() {
	printf 'POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n%s' "$1" "${3:-}" \
	    "$(printf '%s' "$2" | wc -c)" "$2"
}

# req ARGS...: curl printing the status line's code, the headers in $T/h and the body in $T/b
req() {
	curl -s -S --max-time 20 -o "$T/b" -D "$T/h" -w '%{http_code}' "$@" 2> "$T/curl.err"
}

# has FILE TEXT: FILE holds TEXT (fixed string)
has() {
	grep -qF -- "$2" "$1"
}

# check_has WHAT FILE TEXT
check_has() {
	if has "$2" "$3"; then ok; else fail "$1: no '$3' in: $(cat "$2")"; fi
}

json='Content-Type: application/json'

# ==== 1. the API, answered by an echo worker ==================================
pipeline "$T/api.xml" "$(p access-log true)" "$(p token-delay-ms 10)"
if start api "$T/api.xml"; then
	# health and readiness, each with a request id
	expect_eq "healthz: status" "$(req "$U/healthz")" 200
	expect_eq "healthz: body" "$(cat "$T/b")" '{"healthy":true,"version":"'"$("$PORCH" --version | sed -n 's/^porch \([^ ]*\).*/\1/p')"'"}'
	grep -Eq '^X-Request-Id: [0-9a-f]{16}' "$T/h" && ok || fail "healthz: no X-Request-Id: $(cat "$T/h")"
	expect_eq "readyz: status" "$(req "$U/readyz")" 200
	expect_eq "readyz: body" "$(cat "$T/b")" '{"ready":true}'

	# X-Request-Id: a client's comes back and is in the log lines about the request
	req -H 'X-Request-Id: client-id-42' "$U/healthz" > /dev/null
	check_has "request id echoed" "$T/h" "X-Request-Id: client-id-42"
	req -H 'X-Request-Id: bad id "x"' "$U/healthz" > /dev/null
	grep -Eq '^X-Request-Id: [0-9a-f]{16}' "$T/h" && ok || fail "an invalid request id is replaced: $(cat "$T/h")"
	grep -q "info porch: stage 'ingress': access: 127.0.0.1 - - \[.*\] \"GET /healthz HTTP/1.1\" 200 [0-9]* [0-9]* [0-9.]* [0-9.]* client-id-42 - -$" "$T/api.err" &&
	    ok || fail "access log names the request id: $(grep access "$T/api.err")"

	# chat, whole: the last user message is the text; system and history go as metadata
	expect_eq "chat: status" "$(req -H "$json" -H 'X-Request-Id: c1' "$U/v1/chat/completions" \
	    -d '{"model":"m1","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"first"},{"role":"assistant","content":"ok"},{"role":"user","content":"hello porch world"}],"max_tokens":50,"temperature":0.5,"top_p":0.9,"stop":"zz"}')" 200
	sed 's/"created":[0-9]*/"created":0/' "$T/b" > "$T/chat"
	expect_eq "chat: body" "$(cat "$T/chat")" '{"id":"chatcmpl-c1","object":"chat.completion","created":0,"model":"m1","choices":[{"index":0,"message":{"role":"assistant","content":"hello porch world"},"finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}'
	check_has "chat: JSON content type" "$T/h" "Content-Type: application/json"

	# chat, streamed: the exact server-sent events, ending with [DONE]
	expect_eq "chat stream: status" "$(req -N -H 'X-Request-Id: s1' "$U/v1/chat/completions" \
	    -d '{"messages":[{"role":"user","content":"one two three"}],"stream":true}')" 200
	check_has "chat stream: content type" "$T/h" "Content-Type: text/event-stream"
	check_has "chat stream: chunked" "$T/h" "Transfer-Encoding: chunked"
	sed 's/"created":[0-9]*/"created":0/' "$T/b" > "$T/sse"
	c='data: {"id":"chatcmpl-s1","object":"chat.completion.chunk","created":0,"model":"model","choices":[{"index":0,'
	printf '%s\n\n' \
	    "$c"'"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}' \
	    "$c"'"delta":{"content":"one"},"logprobs":null,"finish_reason":null}]}' \
	    "$c"'"delta":{"content":" two"},"logprobs":null,"finish_reason":null}]}' \
	    "$c"'"delta":{"content":" three"},"logprobs":null,"finish_reason":null}]}' \
	    "$c"'"delta":{},"logprobs":null,"finish_reason":"stop"}]}' \
	    'data: [DONE]' > "$T/want"
	cmp -s "$T/sse" "$T/want" && ok || fail "chat stream: events differ: $(diff "$T/want" "$T/sse")"

	# usage in a stream when asked
	req -N "$U/v1/chat/completions" -d '{"messages":[{"role":"user","content":"a b"}],"stream":true,"stream_options":{"include_usage":true}}' > /dev/null
	grep -q '"choices":\[\],"usage":{"prompt_tokens":2,"completion_tokens":2,"total_tokens":4}}$' "$T/b" &&
	    ok || fail "stream usage: $(cat "$T/b")"

	# completions, whole and streamed
	expect_eq "completions: status" "$(req -H 'X-Request-Id: p1' "$U/v1/completions" -d '{"prompt":"say this","model":"m2"}')" 200
	sed 's/"created":[0-9]*/"created":0/' "$T/b" > "$T/cmpl"
	expect_eq "completions: body" "$(cat "$T/cmpl")" '{"id":"cmpl-p1","object":"text_completion","created":0,"model":"m2","choices":[{"index":0,"text":"say this","finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":2,"completion_tokens":2,"total_tokens":4}}'
	req -N -H 'X-Request-Id: p2' "$U/v1/completions" -d '{"prompt":["x y"],"stream":true}' > /dev/null
	sed 's/"created":[0-9]*/"created":0/' "$T/b" > "$T/sse"
	c='data: {"id":"cmpl-p2","object":"text_completion","created":0,"model":"model","choices":[{"index":0,'
	printf '%s\n\n' "$c"'"text":"x","logprobs":null,"finish_reason":null}]}' \
	    "$c"'"text":" y","logprobs":null,"finish_reason":null}]}' \
	    "$c"'"text":"","logprobs":null,"finish_reason":"stop"}]}' 'data: [DONE]' > "$T/want"
	cmp -s "$T/sse" "$T/want" && ok || fail "completions stream: $(diff "$T/want" "$T/sse")"

	# /generate: newline-delimited JSON
	expect_eq "generate: status" "$(req -N "$U/generate" -d '{"text":"a b c","request_id":"g1"}')" 200
	check_has "generate: content type" "$T/h" "Content-Type: application/x-ndjson"
	printf '%s\n' '{"request_id":"g1","token":"a"}' '{"request_id":"g1","token":" b"}' \
	    '{"request_id":"g1","token":" c"}' \
	    '{"request_id":"g1","done":true,"text":"a b c","finish_reason":"stop","usage":{"prompt_tokens":3,"completion_tokens":3,"total_tokens":6}}' > "$T/want"
	cmp -s "$T/b" "$T/want" && ok || fail "generate: $(diff "$T/want" "$T/b")"

	# models: the pipeline's workers
	expect_eq "models: status" "$(req "$U/v1/models")" 200
	expect_eq "models: body" "$(cat "$T/b")" '{"object":"list","data":[{"id":"model","object":"model","created":0,"owned_by":"porch"}]}'

	# pipelining: two requests in one write; the slow one is answered first
	{ post /v1/completions '{"prompt":"slow one two three"}'
	  printf 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'; } | raw 10 > "$T/pipe"
	tr -d '\r' < "$T/pipe" | grep '^HTTP/1.1' > "$T/lines"
	expect_eq "pipelining: two answers" "$(wc -l < "$T/lines" | tr -d ' ')" 2
	grep -n 'text_completion' "$T/pipe" | grep -q '^[0-9]*:' && ok || fail "pipelining: no completion: $(cat "$T/pipe")"
	a=$(grep -n '"text":"slow one two three"' "$T/pipe" | cut -d: -f1)
	b=$(grep -n '"healthy":true' "$T/pipe" | cut -d: -f1)
	[ -n "$a" ] && [ -n "$b" ] && [ "$a" -lt "$b" ] && ok || fail "pipelining: answers out of order: $(cat "$T/pipe")"

	# a request refused by its head (404) while its body is still on the way:
	# answered, its body read and dropped, and the connection goes on
	{ printf 'POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n'; sleep 0.3
	  printf '{"prompt":"later"}  '; sleep 0.2
	  printf 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'; } | raw 5 > "$T/early"
	tr -d '\r' < "$T/early" | grep '^HTTP/1.1' | tr '\n' ' ' > "$T/lines"
	expect_eq "refused by its head, then the next request" "$(cat "$T/lines")" \
	    "HTTP/1.1 404 Not Found HTTP/1.1 200 OK "

	# a chunked request body; HTTP/1.0 clients (a stream ends by closing)
	expect_eq "chunked request body" "$(req -H 'Transfer-Encoding: chunked' "$U/v1/completions" -d '{"prompt":"chunked body"}')" 200
	check_has "chunked request body: answer" "$T/b" '"text":"chunked body"'
	expect_eq "HTTP/1.0 stream: status" "$(req -0 -N "$U/v1/chat/completions" -d '{"messages":[{"role":"user","content":"old client"}],"stream":true}')" 200
	check_has "HTTP/1.0 stream: status line" "$T/h" "HTTP/1.0 200 OK"
	check_has "HTTP/1.0 stream: closes" "$T/h" "Connection: close"
	check_has "HTTP/1.0 stream: [DONE]" "$T/b" "data: [DONE]"

	# keep-alive: several requests on one connection
	curl -s -S --max-time 10 "$U/healthz" "$U/readyz" "$U/v1/models" -o /dev/null -o /dev/null -o /dev/null \
	    -w '%{num_connects}\n' > "$T/ka"
	expect_eq "keep-alive: connections made for 3 requests" "$(tr '\n' ' ' < "$T/ka")" "1 0 0 "

	# ==== 2. bad input ============================================================
	expect_eq "bad JSON: status" "$(req "$U/v1/chat/completions" -d '{"messages": [')" 400
	grep -q '^{"error":{"message":"the body is not valid JSON: .*","type":"invalid_request_error","param":null,"code":"invalid_json"}}$' "$T/b" &&
	    ok || fail "bad JSON: $(cat "$T/b")"
	expect_eq "wrong type: status" "$(req "$U/v1/chat/completions" -d '{"messages":[{"role":"user","content":"x"}],"max_tokens":"ten"}')" 400
	expect_eq "wrong type: error" "$(cat "$T/b")" '{"error":{"message":"'"'"'max_tokens'"'"' must be an integer, not a string","type":"invalid_request_error","param":"max_tokens","code":"invalid_type"}}'
	req "$U/v1/chat/completions" -d '{"messages":[{"role":"user","content":"x"}],"temperature":5}' > /dev/null
	check_has "out of range: param" "$T/b" '"param":"temperature","code":"invalid_value"'
	req "$U/v1/chat/completions" -d '{"model":"m"}' > /dev/null
	check_has "missing messages" "$T/b" '"param":"messages","code":"missing_required_parameter"'
	req "$U/v1/chat/completions" -d '{"messages":[{"role":"user","content":"x"},{"role":"wizard","content":"y"}]}' > /dev/null
	check_has "bad role" "$T/b" '"param":"messages[1].role"'
	req "$U/v1/chat/completions" -d '{"messages":[{"role":"user","content":"x"}],"stop":["a",1]}' > /dev/null
	check_has "bad stop" "$T/b" '"param":"stop[1]"'
	req "$U/v1/chat/completions" -d '{"messages":[{"role":"user","content":"x"}],"stream":"yes"}' > /dev/null
	check_has "bad stream" "$T/b" '"param":"stream","code":"invalid_type"'
	expect_eq "completions without prompt" "$(req "$U/v1/completions" -d '{}')" 400
	check_has "completions without prompt: param" "$T/b" '"param":"prompt"'
	expect_eq "generate with a number" "$(req "$U/generate" -d '{"text":5}')" 400
	check_has "generate: param" "$T/b" '"param":"text","code":"invalid_type"'
	expect_eq "a JSON array body" "$(req "$U/v1/completions" -d '[1]')" 400
	expect_eq "unknown path" "$(req "$U/v2/nothing")" 404
	check_has "unknown path: error" "$T/b" '{"error":{"message":"no such endpoint: /v2/nothing","type":"invalid_request_error","param":null,"code":"not_found"}}'
	expect_eq "wrong method" "$(req "$U/v1/chat/completions")" 405
	check_has "wrong method: Allow" "$T/h" "Allow: POST"
	expect_eq "wrong method on healthz" "$(req -X DELETE "$U/healthz")" 405
	check_has "wrong method: Allow GET" "$T/h" "Allow: GET"

	# malformed HTTP: 400, and the connection is closed
	printf 'BREW /pot HTCPCP/1.0\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n' | raw 5 > "$T/mal"
	head -1 "$T/mal" | grep -q '^HTTP/1.1 400 Bad Request' && ok || fail "malformed: $(cat "$T/mal")"
	check_has "malformed: closes" "$T/mal" "Connection: close"
	check_has "malformed: says why" "$T/mal" "malformed HTTP request"
	has "$T/mal" '"healthy"' && fail "malformed: a request after it was answered" || ok

	# metrics: the pipeline's and ours, valid for Prometheus
	expect_eq "metrics: status" "$(req "$U/metrics")" 200
	check_has "metrics: pipeline" "$T/b" 'porch_requests_accepted_total{pipeline="api"}'
	check_has "metrics: chat 200" "$T/b" 'porch_http_requests_total{stage="ingress",endpoint="/v1/chat/completions",code="200"} 4'
	check_has "metrics: 404" "$T/b" 'porch_http_requests_total{stage="ingress",endpoint="other",code="404"} 2'
	check_has "metrics: 405" "$T/b" 'porch_http_requests_total{stage="ingress",endpoint="/v1/chat/completions",code="405"} 1'
	check_has "metrics: 400 malformed" "$T/b" 'porch_http_requests_total{stage="ingress",endpoint="other",code="400"} 1'
	grep -q '^porch_http_connections_open{stage="ingress"} [1-9]' "$T/b" && ok || fail "metrics: connections open"
	grep -q '^porch_http_sent_bytes_total{stage="ingress"} [1-9]' "$T/b" && ok || fail "metrics: bytes"
	if command -v promtool > /dev/null; then
		promtool check metrics < "$T/b" > "$T/prom" 2>&1 && ok || fail "promtool: $(cat "$T/prom")"
	else
		echo "promtool not installed: metrics format not checked"
	fi
	stop
fi

# ==== 3. limits: bodies, headers, slow clients, connections ====================
pipeline "$T/lim.xml" "$(p max-body 1k; p max-header-size 1k; p header-timeout 500ms; p body-timeout 500ms; p max-connections 3; p retry-after 7s)" ""
head -c 3000 /dev/zero | tr '\0' 'a' > "$T/big"
printf '{"prompt":"%s"}' "$(cat "$T/big")" > "$T/bigbody"
if start lim "$T/lim.xml"; then
	expect_eq "413 by Content-Length" "$(req -H 'Expect:' "$U/v1/completions" --data-binary @"$T/bigbody")" 413
	check_has "413: error" "$T/b" '"code":"request_too_large"'
	check_has "413: closes" "$T/h" "Connection: close"
	expect_eq "413 with Expect: 100-continue" "$(req "$U/v1/completions" --data-binary @"$T/bigbody")" 413
	expect_eq "413 chunked" "$(req -H 'Transfer-Encoding: chunked' "$U/v1/completions" --data-binary @"$T/bigbody")" 413
	expect_eq "a body within the limit" "$(req "$U/v1/completions" -d '{"prompt":"fits"}')" 200
	expect_eq "431" "$(req -H "X-Big: $(cat "$T/big")" "$U/healthz")" 431
	check_has "431: error" "$T/b" '"code":"headers_too_large"'
	# slowloris: a head that never ends, a body that never comes
	{ printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n'; sleep 2; } | raw 5 > "$T/slow"
	head -1 "$T/slow" | grep -q '^HTTP/1.1 408 Request Timeout' && ok || fail "slow headers: $(cat "$T/slow")"
	{ printf 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n{"pro'; sleep 2; } | raw 5 > "$T/slow"
	head -1 "$T/slow" | grep -q '^HTTP/1.1 408 Request Timeout' && ok || fail "slow body: $(cat "$T/slow")"
	check_has "slow body: closes" "$T/slow" "Connection: close"
	# max-connections: 3 held open, the 4th is refused, the 3 still work
	held=
	rm -f "$T"/held?
	for i in 1 2 3; do
		(printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'; sleep 1.5; printf 'GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n') |
		    raw 5 > "$T/held$i" &
		held="$held $!"
	done
	wait_for 5 sh -c "grep -q healthy '$T/held1' && grep -q healthy '$T/held2' && grep -q healthy '$T/held3'" ||
	    fail "3 connections not open"
	expect_eq "over max-connections" "$(req "$U/healthz")" 503
	check_has "over max-connections: error" "$T/b" '"code":"max_connections"'
	# the configured Retry-After and the type of every overload answer
	check_has "over max-connections: Retry-After" "$T/h" "Retry-After: 7"
	check_has "over max-connections: its type" "$T/b" '"type":"overloaded_error"'
	wait $held
	for i in 1 2 3; do
		grep -q '"ready":true' "$T/held$i" && ok || fail "held connection $i: $(cat "$T/held$i")"
	done
	stop
fi

# ==== 4. failures and their statuses ==========================================
pipeline "$T/fail.xml" "$(p access-log true)" "$(p fail-rate 1)" "" "" "$(p retries 0)"
if start fail "$T/fail.xml"; then
	expect_eq "upstream failure: status" "$(req -H 'X-Request-Id: f1' "$U/v1/chat/completions" -d '{"messages":[{"role":"user","content":"x"}]}')" 502
	expect_eq "upstream failure: error" "$(cat "$T/b")" '{"error":{"message":"failed: upstream: echo: simulated failure (1 attempt)","type":"upstream_error","param":null,"code":"upstream"}}'
	grep -q "request [0-9]* (request-id f1): /v1/chat/completions failed: upstream" "$T/fail.err" &&
	    ok || fail "failure log line with request id: $(cat "$T/fail.err")"
	expect_eq "stream failure before a piece: status" "$(req -N "$U/v1/chat/completions" -d '{"messages":[{"role":"user","content":"x"}],"stream":true}')" 502
	expect_eq "generate failure: status" "$(req -N "$U/generate" -d '{"text":"x","request_id":"g9"}')" 502
	check_has "generate failure: error line" "$T/b" '"request_id":"g9"'
	# the session: X-Session-Id, else the body's "user"
	req -H 'X-Request-Id: s1' "$U/v1/chat/completions" -d '{"user":"alice","messages":[{"role":"user","content":"x"}]}' > /dev/null
	req -H 'X-Request-Id: s2' -H 'X-Session-Id: bob' "$U/v1/chat/completions" -d '{"user":"alice","messages":[{"role":"user","content":"x"}]}' > /dev/null
	grep -q "request [0-9]* (session alice, request-id s1): /v1/chat/completions failed" "$T/fail.err" &&
	    ok || fail "session from user: $(grep s1 "$T/fail.err")"
	grep -q "request [0-9]* (session bob, request-id s2): /v1/chat/completions failed" "$T/fail.err" &&
	    ok || fail "session from X-Session-Id: $(grep s2 "$T/fail.err")"
	stop
fi
pipeline "$T/exp.xml" "$(p deadline 200ms)" "$(p delay-ms 2000)"
if start exp "$T/exp.xml"; then
	expect_eq "deadline passed: status" "$(req "$U/v1/completions" -d '{"prompt":"x"}')" 504
	check_has "deadline passed: code" "$T/b" '"code":"deadline"'
	stop
fi

# ==== 5. keys and rate limits ==================================================
printf '# keys\nsk-one\n\nsk-two\n' > "$T/keys"
pipeline "$T/keys.xml" "$(p api-keys-file "$T/keys"; p rate-limit 0.5; p burst 2)" ""
# a keys file others may read is refused, by check as by run, naming its mode
chmod 0644 "$T/keys"
"$PORCH" check "$T/keys.xml" 2> "$T/keys.err"
expect_eq "keys file 0644: check's exit status" "$?" 2
check_has "keys file 0644: check's error" "$T/keys.err" "error: stage 'ingress' (plugin http): api-keys-file '$T/keys' is readable by group and others (mode 0644), but API keys are secrets: make it private to its owner with chmod 600 $T/keys"
"$PORCH" run "$T/keys.xml" > /dev/null 2> "$T/keys.err"
expect_eq "keys file 0644: run's exit status" "$?" 2
check_has "keys file 0644: run's error" "$T/keys.err" "api-keys-file '$T/keys' is readable by group and others (mode 0644)"
chmod 0620 "$T/keys"
"$PORCH" check "$T/keys.xml" 2> "$T/keys.err"
check_has "keys file 0620: error" "$T/keys.err" "api-keys-file '$T/keys' is writable by its group (mode 0620)"
chmod 0600 "$T/keys"
"$PORCH" check "$T/keys.xml" > /dev/null 2> "$T/keys.err"
expect_eq "keys file 0600: accepted by check: $(cat "$T/keys.err")" "$?" 0
if start keys "$T/keys.xml"; then
	expect_eq "no key" "$(req "$U/v1/completions" -d '{"prompt":"x"}')" 401
	check_has "no key: error" "$T/b" '"type":"authentication_error","param":null,"code":"invalid_api_key"'
	expect_eq "wrong key" "$(req -H 'Authorization: Bearer sk-on' "$U/v1/completions" -d '{"prompt":"x"}')" 401
	expect_eq "a key" "$(req -H 'Authorization: Bearer sk-two' "$U/v1/completions" -d '{"prompt":"x"}')" 200
	expect_eq "health needs no key" "$(req "$U/healthz")" 200
	expect_eq "burst: second" "$(req -H 'Authorization: Bearer sk-two' "$U/v1/models")" 200
	expect_eq "rate limit" "$(req -H 'Authorization: Bearer sk-two' "$U/v1/models")" 429
	grep -q '^Retry-After: [12]' "$T/h" && ok || fail "429 without Retry-After: $(cat "$T/h")"
	check_has "429: error" "$T/b" '"type":"rate_limit_error"'
	expect_eq "another key has its own bucket" "$(req -H 'Authorization: Bearer sk-one' "$U/v1/models")" 200
	stop
fi
pipeline "$T/open.xml" "$(p listen 0.0.0.0:0)" ""
sed -i 's|<param name="listen">127.0.0.1:0</param>||' "$T/open.xml"
"$PORCH" run --set "ingress.port-file=$T/open.port" "$T/open.xml" 2> "$T/open.err" &
opid=$!
wait_for 20 test -s "$T/open.port" || fail "open: did not start"
kill -TERM "$opid"
wait "$opid"
check_has "every interface without keys: warning" "$T/open.err" "warning: listening on every interface without API keys"

# ==== 6. load: refused at once, or held back by TCP ============================
pipeline "$T/shed.xml" "" "$(p delay-ms 600)" 'capacity="1" overflow="reject"' 'concurrency="1"'
if start shed "$T/shed.xml"; then
	for i in 1 2 3 4 5; do
		curl -s --max-time 10 -o "$T/shed$i.b" -D "$T/shed$i.h" -w '%{http_code}\n' "$U/v1/completions" \
		    -d '{"prompt":"x"}' > "$T/shed$i.code" &
		curls="${curls:-} $!"
	done
	wait $curls
	curls=
	cat "$T"/shed?.code | sort | uniq -c > "$T/codes"
	n503=$(cat "$T"/shed?.code | grep -c 503)
	n200=$(cat "$T"/shed?.code | grep -c 200)
	[ "$n503" -ge 1 ] && [ "$n200" -ge 1 ] && [ $((n503 + n200)) -eq 5 ] && ok || fail "reject channel: $(cat "$T/codes")"
	for i in 1 2 3 4 5; do
		if grep -q 503 "$T/shed$i.code"; then
			check_has "503 has Retry-After" "$T/shed$i.h" "Retry-After: 1"
			check_has "503 says shed" "$T/shed$i.b" '"code":"full"'
			break
		fi
	done
	stop
fi
pipeline "$T/block.xml" "" "$(p delay-ms 200)" 'capacity="1" overflow="block"' 'concurrency="1"'
if start block "$T/block.xml"; then
	for i in 1 2 3 4; do
		curl -s --max-time 20 -o /dev/null -w '%{http_code}\n' "$U/v1/completions" -d '{"prompt":"x"}' > "$T/block$i.code" &
		curls="${curls:-} $!"
	done
	wait $curls
	curls=
	expect_eq "block channel: every request answered 200" "$(cat "$T"/block?.code | tr '\n' ' ')" "200 200 200 200 "
	stop
	expect_eq "block channel: nothing shed" "$(json_get "$T/block.json" shed)" 0
fi

# while a block channel is full, a request for the pipeline waits in the
# source and its connection reads no more: what the client sends after it
# stays in the kernel (the server socket's receive queue is not empty) and
# is read and answered once there is room.  Other connections go on: the
# probes and /metrics answer at once (issue 13: a probe took 2.3 s).
pipeline "$T/tcp.xml" "" "$(p delay-ms 3000)" 'capacity="1" overflow="block"' 'concurrency="1"'
if start tcp "$T/tcp.xml"; then
	for i in 1 2; do
		curl -s --max-time 20 -o /dev/null -w '%{http_code}\n' "$U/v1/completions" -d '{"prompt":"fill"}' > "$T/fill$i.code" &
		curls="${curls:-} $!"
	done
	# both taken: one in the worker, one in the channel
	wait_for 10 sh -c "curl -s '$U/metrics' | grep -q '^porch_channel_depth{from=\"ingress\",port=\"out\",to=\"inference\"} 1'" ||
	    fail "backpressure: the channel did not fill"
	hexport=$(printf '%04X' "$P")
	# rx_queue of the server's sockets (local port P) in /proc/net/tcp
	unread() {
		awk -v p=":$hexport" '$2 ~ p"$" { split($5, q, ":"); if (q[2] != "00000000") found = 1 } END { exit !found }' /proc/net/tcp
	}
	# one connection: a request that waits, then a second one of 900 kB
	# sent behind it, which the source does not read while the first waits
	head -c 900000 /dev/zero | tr '\0' 'a' > "$T/big.txt"
	{ post /v1/completions '{"prompt":"late one"}'
	  printf 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n' $((900000 + 13))
	  printf '{"prompt":"'; cat "$T/big.txt"; printf '"}'; } | raw 30 > "$T/late.raw" &
	curls="$curls $!"
	wait_for 10 unread && ok || fail "backpressure: every byte was read at once, none left in the kernel"
	# a second client's request waits too
	curl -s --max-time 30 -o "$T/late2.b" -w '%{http_code}\n' "$U/v1/completions" -d '{"prompt":"late two"}' > "$T/late2.code" &
	curls="$curls $!"
	wait_for 10 sh -c "curl -s '$U/metrics' | grep -q '^porch_http_requests_waiting{[^}]*} 2$'" ||
	    fail "backpressure: the two late requests are not waiting: $(curl -s "$U/metrics" | grep _waiting)"
	# the probes and the metrics, each on a connection of its own, while
	# the worker holds its request for 3 s: each within 50 ms, as the
	# issue asks (300 ms in a build with sanitizers; PROBE_BOUND_MS
	# overrides both); before, they waited for the whole 3 s
	case "${CFLAGS:-}" in
	*-fsanitize*) probe_ms=${PROBE_BOUND_MS:-300} ;;
	*) probe_ms=${PROBE_BOUND_MS:-50} ;;
	esac
	for path in healthz readyz metrics; do
		t=$(curl -s --max-time 5 -o "$T/probe.$path" -w '%{http_code} %{time_total}' "$U/$path")
		echo "# probe /$path during backpressure: $t"
		expect_eq "backpressure: /$path answers" "${t%% *}" 200
		awk -v t="${t#* }" -v b="$probe_ms" 'BEGIN { exit !(t * 1000 < b) }' && ok ||
		    fail "backpressure: /$path took ${t#* } s, over $probe_ms ms"
	done
	wait $curls
	curls=
	grep -c "^HTTP/1.1 200" "$T/late.raw" | grep -qx 2 && ok ||
	    fail "backpressure: the held connection's two requests: $(grep '^HTTP' "$T/late.raw")"
	grep -q '"text":"late one"' "$T/late.raw" && ok || fail "backpressure: the first answer"
	expect_eq "backpressure: the other client answered" "$(cat "$T/late2.code")" 200
	check_has "backpressure: its answer" "$T/late2.b" '"text":"late two"'
	stop
	expect_eq "backpressure: nothing shed" "$(json_get "$T/tcp.json" shed)" 0
fi

# the pipeline's in-flight bound refuses at once: 503, admission
sed 's|<pipeline name="api" version="1">|<pipeline name="api" version="1" max-inflight="1">|' "$T/block.xml" > "$T/adm.xml"
if start adm "$T/adm.xml"; then
	for i in 1 2 3; do
		curl -s --max-time 10 -o "$T/adm$i.b" -w '%{http_code}\n' "$U/v1/completions" -d '{"prompt":"x"}' > "$T/adm$i.code" &
		curls="${curls:-} $!"
	done
	wait $curls
	curls=
	n503=$(cat "$T"/adm?.code | grep -c 503)
	[ "$n503" -ge 1 ] && ok || fail "max-inflight: no 503: $(cat "$T"/adm?.code)"
	cat "$T"/adm?.b | grep -q '"code":"admission"' && ok || fail "max-inflight: no admission error: $(cat "$T"/adm?.b)"
	stop
fi

# ==== 7. a client that leaves cancels its request ==============================
pipeline "$T/cancel.xml" "" "$(p delay-ms 5000)"
if start cancel "$T/cancel.xml"; then
	t0=$(date +%s)
	curl -s --max-time 0.5 "$U/v1/completions" -d '{"prompt":"x"}' > /dev/null 2>&1
	wait_for 5 sh -c "curl -s '$U/metrics' | grep -q '^porch_requests_total{pipeline=\"api\",outcome=\"failed\"} 1$'" &&
	    ok || fail "cancel: no failed request: $(curl -s "$U/metrics" | grep requests_total)"
	[ $(($(date +%s) - t0)) -lt 4 ] && ok || fail "cancel: the call was not cancelled at once"
	curl -s "$U/metrics" > "$T/m"
	check_has "cancel: 499 counted" "$T/m" 'porch_http_requests_total{stage="ingress",endpoint="/v1/completions",code="499"} 1'
	check_has "cancel: logged" "$T/cancel.err" "failed: cancelled: the client closed the connection"
	stop
fi
pipeline "$T/cstream.xml" "" "$(p token-delay-ms 100)"
if start cstream "$T/cstream.xml"; then
	curl -s -N --max-time 0.5 "$U/generate" -d '{"text":"1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20"}' > "$T/cut" 2>&1
	check_has "cancel mid-stream: pieces came" "$T/cut" '"token":" 2"'
	wait_for 5 sh -c "curl -s '$U/metrics' | grep -q '^porch_requests_total{pipeline=\"api\",outcome=\"failed\"} 1$'" &&
	    ok || fail "cancel mid-stream: not failed: $(curl -s "$U/metrics" | grep requests_total)"
	stop
	check_has "cancel mid-stream: cancelled" "$T/cstream.err" "failed: cancelled: the client closed the connection"
fi

# ==== 8. tasks ==================================================================
pipeline "$T/tasks.xml" "$(p task-ttl 4s)" "$(p delay-ms 1500; p fail-rate 0)" "" 'concurrency="1"' "$(p backoff-ms 1)"
if start tasks "$T/tasks.xml"; then
	payload=$(printf 'task one two' | base64)
	expect_eq "task: 202" "$(req "$U/v1/tasks" -d '{"name":"t","description":"d","payload":"'"$payload"'","timeout_secs":10,"max_retries":1}')" 202
	grep -q '^{"task_id":"task-[0-9a-f]*","timestamp":"[0-9-]*T[0-9:.]*Z","status":"queued"}$' "$T/b" && ok || fail "task: 202 body: $(cat "$T/b")"
	id1=$(sed 's/.*"task_id":"\([^"]*\)".*/\1/' "$T/b")
	req "$U/v1/tasks" -d '{"payload":"'"$(printf 'second' | base64)"'"}' > /dev/null
	id2=$(sed 's/.*"task_id":"\([^"]*\)".*/\1/' "$T/b")
	# the first runs, the second waits its turn (concurrency 1; each takes
	# 1.5 s, room enough for a sanitizer build to ask before the first ends)
	req "$U/v1/tasks/$id1" > /dev/null
	check_has "task 1 running" "$T/b" '"status":"running"'
	req "$U/v1/tasks/$id2" > /dev/null
	check_has "task 2 queued" "$T/b" '"status":"queued"'
	# the events of task 2: history, then live, then the end
	curl -s -N --max-time 10 "$U/v1/tasks/$id2/events" > "$T/ev"
	grep '^event:' "$T/ev" | tr '\n' ' ' > "$T/evnames"
	expect_eq "task events" "$(cat "$T/evnames")" "event: enter event: leave event: enter event: leave event: outcome "
	check_has "task events: outcome" "$T/ev" '"type":"outcome","status":"completed","attempts":1'
	req "$U/v1/tasks/$id1" > /dev/null
	check_has "task 1 completed" "$T/b" '"status":"completed"'
	check_has "task 1 result" "$T/b" '"result":"task one two"'
	check_has "task 1 name" "$T/b" '"name":"t","description":"d"'
	grep -q '"timings":{"inference":[0-9.]*,"reply":[0-9.]*}' "$T/b" && ok || fail "task timings: $(cat "$T/b")"
	# events of a finished task: its history, then the stream ends
	curl -s -N --max-time 5 "$U/v1/tasks/$id1/events" > "$T/ev1"
	expect_eq "finished task events" "$(grep -c '^event:' "$T/ev1")" 5
	# bad tasks
	expect_eq "task without payload" "$(req "$U/v1/tasks" -d '{"name":"x"}')" 400
	check_has "task without payload: param" "$T/b" '"param":"payload"'
	expect_eq "task with bad base64" "$(req "$U/v1/tasks" -d '{"payload":"!!"}')" 400
	expect_eq "task with bad retries" "$(req "$U/v1/tasks" -d '{"payload":"eA==","max_retries":-1}')" 400
	check_has "task with bad retries: param" "$T/b" '"param":"max_retries"'
	expect_eq "unknown task" "$(req "$U/v1/tasks/task-nope")" 404
	# finished tasks are forgotten after task-ttl (4 s)
	wait_for 10 sh -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' '$U/v1/tasks/$id1')\" = 404 ]" &&
	    ok || fail "task not forgotten after task-ttl"
	req "$U/v1/tasks/$id1" > /dev/null
	check_has "forgotten: error" "$T/b" '"code":"task_not_found"'
	stop
fi
# at most task-max finished tasks are kept: the oldest goes first
pipeline "$T/tmax.xml" "$(p task-max 1)" ""
if start tmax "$T/tmax.xml"; then
	req "$U/v1/tasks" -d '{"payload":"YQ=="}' > /dev/null
	ida=$(sed 's/.*"task_id":"\([^"]*\)".*/\1/' "$T/b")
	wait_for 5 sh -c "curl -s '$U/v1/tasks/$ida' | grep -q completed" || fail "task-max: first task did not complete"
	req "$U/v1/tasks" -d '{"payload":"Yg=="}' > /dev/null
	idb=$(sed 's/.*"task_id":"\([^"]*\)".*/\1/' "$T/b")
	wait_for 5 sh -c "curl -s '$U/v1/tasks/$idb' | grep -q completed" || fail "task-max: second task did not complete"
	expect_eq "task-max: the older is forgotten" "$(req "$U/v1/tasks/$ida")" 404
	expect_eq "task-max: the newer is kept" "$(req "$U/v1/tasks/$idb")" 200
	stop
fi
# timeout_secs is the task's deadline: a worker slower than it makes the
# task expire, and the call is cancelled at the deadline, not waited for
pipeline "$T/tslow.xml" "" "$(p delay-ms 30000)" ""
if start tslow "$T/tslow.xml"; then
	req "$U/v1/tasks" -d '{"payload":"eA==","timeout_secs":1}' > /dev/null
	id=$(sed 's/.*"task_id":"\([^"]*\)".*/\1/' "$T/b")
	wait_for 10 sh -c "curl -s '$U/v1/tasks/$id' | grep -q '\"status\":\"expired\"'" &&
	    ok || fail "timeout_secs: task not expired: $(curl -s "$U/v1/tasks/$id")"
	stop
fi
pipeline "$T/tfail.xml" "" "$(p fail-rate 1)" "" "" "$(p backoff-ms 1)"
if start tfail "$T/tfail.xml"; then
	req "$U/v1/tasks" -d '{"payload":"eA==","max_retries":2}' > /dev/null
	id=$(sed 's/.*"task_id":"\([^"]*\)".*/\1/' "$T/b")
	curl -s -N --max-time 10 "$U/v1/tasks/$id/events" > "$T/ev"
	expect_eq "failing task: retries" "$(grep -c '^event: retry' "$T/ev")" 2
	grep -q '"type":"retry","stage":"inference","attempt":2,"detail":"attempt 2 in [0-9]* ms, after upstream: echo: simulated failure"' "$T/ev" &&
	    ok || fail "retry event: $(cat "$T/ev")"
	req "$U/v1/tasks/$id" > /dev/null
	check_has "failing task: status" "$T/b" '"status":"failed"'
	check_has "failing task: attempts" "$T/b" '"attempts":3'
	check_has "failing task: error" "$T/b" '"code":"upstream"'
	stop
fi

# ==== 9. SIGTERM: the listener closes, a stream in flight finishes =============
pipeline "$T/drain.xml" "" "$(p token-delay-ms 150)"
if start drain "$T/drain.xml"; then
	{
		post /generate '{"text":"a b c d e f","request_id":"d"}'
		sleep 0.4
		kill -TERM "$pid"
		sleep 0.2
		curl -s --max-time 2 "$U/healthz" > "$T/after" 2>&1 && echo "connected" >> "$T/after"
		printf 'GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n'
	} | raw 10 > "$T/dr"
	wait "$pid"
	expect_eq "drain: exit status" "$?" 0
	check_has "drain: the stream finished" "$T/dr" '{"request_id":"d","done":true,"text":"a b c d e f"'
	check_has "drain: readyz on the open connection" "$T/dr" '{"ready":false,"reason":"draining"}'
	check_has "drain: readyz 503" "$T/dr" "HTTP/1.1 503 Service Unavailable"
	check_has "drain: connection closed after" "$T/dr" "Connection: close"
	has "$T/after" connected && fail "drain: a new connection was accepted" || ok
	expect_eq "drain: completed" "$(json_get "$T/drain.json" completed)" 1
fi

# ==== 10. the official openai client (npm), if it can be installed =============
if command -v npm > /dev/null && command -v node > /dev/null; then
	mkdir -p "$T/npm"
	if (cd "$T/npm" && timeout 180 npm install --silent --no-audit --no-fund openai@4 > npm.log 2>&1); then
		pipeline "$T/sdk.xml" "" "$(p token-delay-ms 5)"
		if start sdk "$T/sdk.xml"; then
			cat > "$T/npm/t.mjs" <<'JS'
import OpenAI from "openai";
const client = new OpenAI({ baseURL: process.argv[2], apiKey: "unused", maxRetries: 0 });
const whole = await client.chat.completions.create({
	model: "model", messages: [{ role: "user", content: "hello from the sdk" }] });
console.log("whole:" + whole.choices[0].message.content + ":" + whole.choices[0].finish_reason);
const stream = await client.chat.completions.create({
	model: "model", stream: true, messages: [{ role: "user", content: "streamed words here" }] });
let text = "", n = 0;
for await (const chunk of stream) { text += chunk.choices[0]?.delta?.content ?? ""; n++; }
console.log("stream:" + text + ":" + n);
const c = await client.completions.create({ model: "model", prompt: "a completion" });
console.log("completion:" + c.choices[0].text);
try {
	await client.chat.completions.create({ model: "model", messages: [] });
} catch (e) { console.log("error:" + e.status + ":" + e.param); }
JS
			(cd "$T/npm" && timeout 60 node t.mjs "$U/v1") > "$T/sdk.log" 2>&1
			check_has "openai sdk: whole" "$T/sdk.log" "whole:hello from the sdk:stop"
			check_has "openai sdk: stream" "$T/sdk.log" "stream:streamed words here:5"
			check_has "openai sdk: completion" "$T/sdk.log" "completion:a completion"
			check_has "openai sdk: error" "$T/sdk.log" "error:400:messages"
			stop
		fi
	else
		echo "npm could not install the openai package: SDK checks skipped ($(tail -1 "$T/npm/npm.log"))"
	fi
else
	echo "npm or node is not installed: SDK checks skipped"
fi

finish
