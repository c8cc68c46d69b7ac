#!/bin/sh
# route-pipeline.sh -- pipelines/route.xml, the routing orchestrator, as
# shipped: prompts of each kind go to the model their class says, a
# repeated one is answered from the cache, a prompt too long for the small
# model goes to the large one, and when the classifier model is down the
# heuristics stand in and every request is still answered.
. "$top_srcdir/tests/lib.sh"

command -v curl > /dev/null || { echo "curl is not installed: skipped"; exit 77; }
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

pid=
trap 'kill $pid 2> /dev/null; rm -rf "$T"' EXIT
# start NAME ARGS...: route.xml on a port of its own
start() {
	name=$1
	shift
	rm -f "$T/$name.port"
	"$PORCH" run -q -s ingress.listen=127.0.0.1:0 -s "ingress.port-file=$T/$name.port" "$@" \
	    "$top_srcdir/pipelines/route.xml" > /dev/null 2> "$T/$name.err" &
	pid=$!
	wait_for 20 test -s "$T/$name.port" || { fail "$name: porch did not start: $(cat "$T/$name.err")"; finish; }
	U="http://127.0.0.1:$(cat "$T/$name.port")"
}
# metric NAME: its value in /metrics now (0 when absent)
metric() {
	curl -s "$U/metrics" | awk -v k="$1" 'index($0, k " ") == 1 { v = $2 } END { print v + 0 }'
}
in_of() { metric "porch_stage_messages_in_total{stage=\"$1\"}"; }
# ask TEXT: one chat request; its answer's content in $T/content, status in $T/code
ask() {
	printf '{"model":"auto","messages":[{"role":"user","content":"%s"}]}' "$1" > "$T/body"
	curl -s -o "$T/answer" -w '%{http_code}' -H 'Content-Type: application/json' \
	    --data-binary @"$T/body" "$U/v1/chat/completions" > "$T/code"
	sed -n 's/.*"content":"\([^"]*\)".*/\1/p' "$T/answer" > "$T/content"
}
# routed TEXT WANT: the request went to stage WANT's model, and came back
routed() {
	s0=$(in_of small-model)
	l0=$(in_of large-model)
	ask "$1"
	what=$(printf '%.40s' "$1")
	expect_eq "'$what': status" "$(cat "$T/code")" 200
	expect_eq "'$what': answer" "$(cat "$T/content")" "$1"
	s1=$(in_of small-model)
	l1=$(in_of large-model)
	case $2 in
	small) expect_eq "'$what': small and large took" "$((s1 - s0)) $((l1 - l0))" "1 0" ;;
	large) expect_eq "'$what': small and large took" "$((s1 - s0)) $((l1 - l0))" "0 1" ;;
	none) expect_eq "'$what': small and large took" "$((s1 - s0)) $((l1 - l0))" "0 0" ;;
	# the small model's stage took it, and sent it on out its long port
	small-long) expect_eq "'$what': small and large took" "$((s1 - s0)) $((l1 - l0))" "1 1" ;;
	esac
}

start main
routed "hi there, how are you?" small
routed "Extract all the email addresses from the following text: write to ann at example.com" small
routed "Summarize this article in three sentences: The city council met on Tuesday." small
routed "Write a short poem about the sea at night." small
routed "Design and implement a distributed rate limiter in Go, with a sliding window shared across nodes through Redis; explain the trade-offs step by step and give the code with unit tests." large
# asked again: from the cache, neither model called
hits0=$(metric 'porch_stage_events_total{stage="lookup",event="hit"}')
routed "Summarize this article in three sentences: The city council met on Tuesday." none
routed "Design and implement a distributed rate limiter in Go, with a sliding window shared across nodes through Redis; explain the trade-offs step by step and give the code with unit tests." none
expect_eq "cache hits" "$(( $(metric 'porch_stage_events_total{stage="lookup",event="hit"}') - hits0 ))" 2
kill "$pid"
wait "$pid"

# a prompt too long for the small model's context goes to the large one
start ctx -s small-model.context-limit=600
long="Summarize this article:"
i=0
while [ "$i" -lt 120 ]; do long="$long The council met again on Tuesday."; i=$((i + 1)); done
routed "$long" small-long
expect_eq "context fallbacks" "$(metric 'porch_stage_events_total{stage="small-model",event="context_fallback"}')" 1
kill "$pid"
wait "$pid"

# the classifier model down (nothing listens on port 1): the heuristics
# classify, every request is answered, the fallbacks are counted
start down -s classifier.plugin=openai -s classifier.base-url=http://127.0.0.1:1/v1 \
    -s classify.method=model
routed "hi there, how are you?" small
routed "Design and implement a distributed rate limiter in Go, with a sliding window shared across nodes through Redis; explain the trade-offs step by step and give the code with unit tests." large
expect_eq "classifier fallbacks" "$(metric 'porch_stage_events_total{stage="classify",event="fallback"}')" 2
kill "$pid"
wait "$pid"
pid=

finish
