#!/bin/sh
# server.sh -- pipelines/server.xml, the whole server: http -> rag ->
# assemble -> inference -> post -> reply, with curl as the client.
. "$top_srcdir/tests/lib.sh"

command -v curl > /dev/null || { echo "curl is not installed" >&2; exit 1; }
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

"$PORCH" run --set ingress.listen=127.0.0.1:0 --set ingress.port-file="$T/port" \
    --stats-json "$T/s.json" "$top_srcdir/pipelines/server.xml" > "$T/out" 2> "$T/err" &
pid=$!
trap 'kill "$pid" 2> /dev/null; rm -rf "$T"' EXIT
wait_for 20 test -s "$T/port" || { fail "server.xml did not start: $(cat "$T/err")"; finish; }
U="http://127.0.0.1:$(cat "$T/port")"

# a question: the answer (the echo worker's) is the prompt, with the
# passages of the corpus that fit the question
q='{"model": "echo", "messages": [{"role": "user", "content": "how do I route failed requests to a dead letter file?"}]}'
curl -s -D "$T/h1" -H 'Content-Type: application/json' -d "$q" "$U/v1/chat/completions" > "$T/a1"
grep -q '^HTTP/1.1 200' "$T/h1" && ok || fail "chat: $(cat "$T/h1")"
grep -q '"object":"chat.completion"' "$T/a1" && ok || fail "chat: object: $(cat "$T/a1")"
grep -q '"content":"Answer the question using the context below. Context: .*error port, which can route failed requests to a dead-letter sink.* Question: how do I route failed requests to a dead letter file?"' "$T/a1" &&
    ok || fail "chat: content: $(cat "$T/a1")"

# streamed: server-sent events, ending with [DONE]
printf '%s' "$q" | sed 's/}$/, "stream": true}/' > "$T/q2"
curl -sN -H 'Content-Type: application/json' --data-binary @"$T/q2" "$U/v1/chat/completions" > "$T/a2"
grep -q '^data: {.*"object":"chat.completion.chunk"' "$T/a2" && ok || fail "stream: $(head -c 300 "$T/a2")"
expect_eq "stream: last event" "$(grep '^data:' "$T/a2" | tail -n 1)" "data: [DONE]"
expect_eq "stream: more than one piece" "$(grep -c '"content":"' "$T/a2" | awk '{ print ($1 > 3) }')" 1

# a question too big for the prompt: assemble fails it, reply answers 400
awk 'BEGIN { printf "{\"model\": \"echo\", \"prompt\": \""; for (i = 0; i < 3000; i++) printf "word%d ", i; printf "\"}" }' > "$T/big"
code=$(curl -s -o "$T/a3" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @"$T/big" "$U/v1/completions")
expect_eq "too big: status" "$code" 400
grep -q '"error":{' "$T/a3" && ok || fail "too big: $(cat "$T/a3")"

# health and metrics
expect_eq "healthz" "$(curl -s -o /dev/null -w '%{http_code}' "$U/healthz")" 200
expect_eq "readyz" "$(curl -s -o /dev/null -w '%{http_code}' "$U/readyz")" 200
curl -s "$U/metrics" > "$T/metrics"
grep -q '^porch_stage_messages_in_total{stage="rag"} [1-9]' "$T/metrics" && ok || fail "metrics: rag"
if command -v promtool > /dev/null; then
	promtool check metrics < "$T/metrics" > "$T/prom" 2>&1 && ok || fail "promtool: $(cat "$T/prom")"
fi

# SIGTERM: drains and exits 0, every request accounted for
kill -TERM "$pid"
wait "$pid"
expect_eq "SIGTERM: exit status" "$?" 0
a=$(json_get "$T/s.json" accepted)
expect_eq "accepted = completed + failed + shed + expired" "$a" \
    "$(($(json_get "$T/s.json" completed) + $(json_get "$T/s.json" failed) + $(json_get "$T/s.json" shed) + $(json_get "$T/s.json" expired)))"
expect_eq "requests" "$a" 3

finish
