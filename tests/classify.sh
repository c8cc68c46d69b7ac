#!/bin/sh
# classify.sh -- the classify stage: its heuristics' accuracy on the
# labelled prompts in tests/classify (printed: a measurement, with no
# threshold), the stage giving the same labels as the code that measured
# them, and method model: a worker whose answers do not parse (echo), a
# model server that answers labels (tests/fake-upstream, model
# "classify"), its cache, its fallbacks (an error, a timeout, an answer
# that does not parse), a deadline, /metrics, and a client that goes away.
. "$top_srcdir/tests/lib.sh"

: "${top_builddir:=$top_srcdir}"
acc=$top_builddir/tests/classify-accuracy
fake=$top_builddir/tests/fake-upstream
[ -x "$acc" ] || { echo "tests/classify-accuracy is not built" >&2; exit 1; }
SETS="prompts heldout heldout2"

# event NAME FILE: the classify stage's counter NAME in a stats JSON file
event() {
	sed -n "/\"events\"/,/}/s/^ *\"$1\": \([0-9]*\),*$/\1/p" "$2"
}

# ---- 1. the heuristics' accuracy, printed --------------------------------
for set in $SETS; do
	"$acc" "$top_srcdir/tests/classify/$set.tsv" > "$T/acc.$set" 2> "$T/acc.err"
	expect_eq "accuracy on $set: exit status" "$?" 0
	cat "$T/acc.$set"
	grep -q '^category: [0-9]* of [0-9]* right' "$T/acc.$set" && ok ||
	    fail "accuracy on $set: no category line: $(cat "$T/acc.$set" "$T/acc.err")"
	grep -q '^complexity: [0-9]* of [0-9]* right' "$T/acc.$set" && ok ||
	    fail "accuracy on $set: no complexity line"
done
n=$(grep -v '^#' "$top_srcdir/tests/classify/prompts.tsv" | grep -c .)
[ "$n" -ge 60 ] && ok || fail "only $n labelled prompts in prompts.tsv (want 60 or more)"

# ---- 2. the stage labels as the measured code does ------------------------
cat > "$T/h.xml" <<XML
<?xml version="1.0"?>
<pipeline name="classify" version="1">
  <stage name="in" plugin="stdin"/>
  <stage name="classify" plugin="classify"/>
  <stage name="out" plugin="dlq"><param name="path">$T/h.jsonl</param></stage>
  <channel from="in" to="classify"/>
  <channel from="classify" to="out"/>
</pipeline>
XML
: > "$T/all.jsonl"
: > "$T/want"
for set in $SETS; do
	"$acc" -j "$top_srcdir/tests/classify/$set.tsv" >> "$T/all.jsonl"
	"$acc" -l "$top_srcdir/tests/classify/$set.tsv" | tr '\t' ' ' >> "$T/want"
done
total=$(wc -l < "$T/want")
"$PORCH" run -q --stats-json "$T/h.json" "$T/h.xml" < "$T/all.jsonl" 2> "$T/h.err"
expect_eq "heuristic: exit status" "$?" 0
# "line N" of the stdin source, then the labels: in input order
sed -n 's/.*"meta":{"line":"\([0-9]*\)","category":"\([a-z]*\)","complexity":"\([a-z]*\)","classified-by":"heuristic"}.*/\1 \2 \3/p' \
    "$T/h.jsonl" | sort -n | cut -d' ' -f2- > "$T/got"
expect_eq "heuristic: requests labelled" "$(wc -l < "$T/got")" "$total"
checks=$((checks + 1))
cmp -s "$T/got" "$T/want" || fail "heuristic: the stage's labels differ from classify-accuracy's: $(diff "$T/want" "$T/got" | head)"
expect_eq "heuristic: counted" "$(event heuristic "$T/h.json")" "$total"
# the text is not changed: input and text are the same in every record
expect_eq "heuristic: texts unchanged" \
    "$(sed -n 's/.*"input":\(".*"\),"text":\(".*"\),"attempts".*/\1\n\2/p' "$T/h.jsonl" | paste - - |
    awk -F'\t' '$1 != $2' | wc -l)" 0
# method heuristic with a worker named: allowed
sed 's|<stage name="classify" plugin="classify"/>|<worker name="w" plugin="echo"/><stage name="classify" plugin="classify" worker="w"/>|' \
    "$T/h.xml" > "$T/hw.xml"
expect_eq "heuristic with a worker: porch check" "$("$PORCH" check "$T/hw.xml" 2>&1)" "$T/hw.xml: ok"

# ---- 3. method model, a worker whose answers do not parse ----------------
# echo answers with the prompt: never a JSON object of labels
cat > "$T/echo.xml" <<XML
<?xml version="1.0"?>
<pipeline name="classify" version="1">
  <worker name="echo" plugin="echo"/>
  <stage name="in" plugin="stdin"/>
  <stage name="classify" plugin="classify" worker="echo" concurrency="1">
    <param name="method">model</param>
  </stage>
  <stage name="out" plugin="dlq"><param name="path">$T/echo.jsonl</param></stage>
  <channel from="in" to="classify"/>
  <channel from="classify" to="out"/>
</pipeline>
XML
printf '%s\n' '{"text":"Write a haiku about autumn rain."}' '{"text":"Write a haiku about autumn rain."}' \
    > "$T/two.jsonl"
"$PORCH" run -q --stats-json "$T/echo.json" "$T/echo.xml" < "$T/two.jsonl" 2> "$T/echo.err"
expect_eq "echo: exit status" "$?" 0
expect_eq "echo: labelled by the heuristics" \
    "$(grep -c '"category":"creative","complexity":"simple","classified-by":"heuristic-fallback"' "$T/echo.jsonl")" 2
expect_eq "echo: text unchanged, no attempt counted" \
    "$(grep -c '"input":"Write a haiku about autumn rain.","text":"Write a haiku about autumn rain.","attempts":0,' "$T/echo.jsonl")" 2
expect_eq "echo: fallback" "$(event fallback "$T/echo.json")" 2
expect_eq "echo: fallback_unparsed" "$(event fallback_unparsed "$T/echo.json")" 2
# a fallback is not cached: the model is asked again
expect_eq "echo: cache_miss" "$(event cache_miss "$T/echo.json")" 2
expect_eq "echo: cache_hit" "$(event cache_hit "$T/echo.json")" ""
expect_eq "echo: logged once" "$(grep -c 'counted as fallback_unparsed, logged once' "$T/echo.err")" 1
expect_eq "echo: the worker's calls" \
    "$(sed -n '/"workers"/,$s/^ *"calls": \([0-9]*\),*$/\1/p' "$T/echo.json")" 2

# ---- 4. method model against a model server ------------------------------
[ -x "$fake" ] || { echo "tests/fake-upstream is not built: the rest is skipped"; finish; }
pid=
"$fake" -p "$T/up.port" -j "$T/up.json" -t 600 &
fake_pid=$!
trap 'kill "$fake_pid" $pid 2> /dev/null; rm -rf "$T"' EXIT
wait_for 10 test -s "$T/up.port" || { fail "the fake upstream did not start"; finish; }
up=$(cat "$T/up.port")

# model XML-NAME STAGE-PARAMS [EXTRA]: stdin -> classify (model) -> dlq
model() {
	cat > "$T/$1.xml" <<XML
<?xml version="1.0"?>
<pipeline name="classify" version="1">
  <worker name="up" plugin="openai">
    <param name="base-url">http://127.0.0.1:$up/v1</param>
    <param name="model">classify</param>
  </worker>
  <stage name="in" plugin="stdin"/>
  <stage name="classify" plugin="classify" worker="up" concurrency="1">
    <param name="method">model</param>$2
  </stage>
  <stage name="out" plugin="dlq"><param name="path">$T/$1.jsonl</param></stage>
  <channel from="in" to="classify"/>
  <channel from="classify" to="out"/>
  ${3:-}
</pipeline>
XML
}
model up ""
# the heuristics would say creative: the model (code, simple) is heard; a
# request's own settings do not reach the classification's call
cat > "$T/four.jsonl" <<'EOF'
{"text":"Write a haiku about autumn rain.","meta":{"system":"be brief","max-tokens":"5","model":"nope"}}
{"text":"Write a haiku about autumn rain."}
{"text":"Write a haiku about autumn rain."}
{"text":"Tell me a joke about programmers."}
EOF
"$PORCH" run -q --stats-json "$T/up-s.json" "$T/up.xml" < "$T/four.jsonl" 2> "$T/up.err"
expect_eq "model: exit status" "$?" 0
expect_eq "model: labelled by the model" \
    "$(grep -c '"category":"code","complexity":"simple","classified-by":"model"' "$T/up.jsonl")" 4
expect_eq "model: the request's metadata kept, no answer's added" \
    "$(grep -c '"meta":{"system":"be brief","max-tokens":"5","model":"nope","line":"1","category":"code","complexity":"simple","classified-by":"model"}' "$T/up.jsonl")" 1
expect_eq "model: no attempt counted" "$(grep -c '"attempts":0,' "$T/up.jsonl")" 4
expect_eq "model: model" "$(event model "$T/up-s.json")" 2
expect_eq "model: cache_miss" "$(event cache_miss "$T/up-s.json")" 2
expect_eq "model: cache_hit" "$(event cache_hit "$T/up-s.json")" 2
expect_eq "model: fallback" "$(event fallback "$T/up-s.json")" ""
# what the upstream got: two calls, the built-in instructions as the only
# message, the worker's model, JSON asked for, nothing of the request's
expect_eq "model: calls upstream" "$(grep -c . "$T/up.json")" 2
expect_eq "model: the calls' bodies" \
    "$(grep -c '"body":{"model":"classify","messages":\[{"role":"user","content":"Classify the request below; do not answer it.[^]]*The request:\\n[^"]*"}\],"max_tokens":64,"temperature":0.0,"stream":false,"response_format":{"type":"json_object"}}' "$T/up.json")" 2
grep -q '"content":"Classify the request below[^]]*The request:\\nTell me a joke about programmers."' "$T/up.json" && ok ||
    fail "model: the prefix is not in the prompt: $(cat "$T/up.json")"

# the stage's own settings: model, max-tokens, a prompt with {text}
model own '
    <param name="model">classify</param>
    <param name="max-tokens">16</param>
    <param name="prompt">Label this: {text} (JSON)</param>
    <param name="cache-entries">0</param>'
: > "$T/up.json"
printf '%s\n' '{"text":"hello"}' '{"text":"hello"}' |
    "$PORCH" run -q --stats-json "$T/own-s.json" --set up.model=ok "$T/own.xml" 2> "$T/own.err"
expect_eq "own settings: exit status" "$?" 0
expect_eq "own settings: bodies" \
    "$(grep -c '"body":{"model":"classify","messages":\[{"role":"user","content":"Label this: hello (JSON)"}\],"max_tokens":16,' "$T/up.json")" 2
expect_eq "own settings: no cache" "$(event cache_miss "$T/own-s.json")$(event cache_hit "$T/own-s.json")" ""
expect_eq "own settings: model" "$(event model "$T/own-s.json")" 2

# fallbacks: an upstream error, a timeout, an answer that is no JSON
printf '%s\n' '{"text":"Write a haiku about autumn rain."}' > "$T/one.jsonl"
for case in "500 error" "stall timeout" "ok unparsed"; do
	m=${case% *}
	why=${case#* }
	"$PORCH" run -q --stats-json "$T/fb-$m.json" --set classify.model="$m" \
	    --set classify.timeout-ms=300ms "$T/up.xml" < "$T/one.jsonl" 2> "$T/fb-$m.err"
	expect_eq "fallback $why: exit status" "$?" 0
	expect_eq "fallback $why: counted" "$(event fallback "$T/fb-$m.json") $(event "fallback_$why" "$T/fb-$m.json")" "1 1"
	expect_eq "fallback $why: completed" "$(json_get "$T/fb-$m.json" completed)" 1
	grep -q "counted as fallback_$why, logged once" "$T/fb-$m.err" && ok ||
	    fail "fallback $why: not logged: $(cat "$T/fb-$m.err")"
	expect_eq "fallback $why: labels" \
	    "$(grep -c '"category":"creative","complexity":"simple","classified-by":"heuristic-fallback"' "$T/up.jsonl")" 1
	rm -f "$T/up.jsonl"
done
grep -q "the call failed: upstream: .*500" "$T/fb-500.err" && ok || fail "fallback error: $(cat "$T/fb-500.err")"

# a deadline that passes while the model is asked: expired, out the error port
model late '' '<channel from="classify:error" to="out"/>'
printf '%s\n' '{"text":"late","deadline_ms":200}' |
    "$PORCH" run -q --stats-json "$T/late-s.json" --set classify.model=stall "$T/late.xml" 2> "$T/late.err"
expect_eq "deadline: exit status" "$?" 0
expect_eq "deadline: expired" "$(json_get "$T/late-s.json" expired)" 1
grep -q '"error":"deadline","error_text":"the request'"'"'s deadline passed while the model classified it at stage '"'"'classify'"'"'"' \
    "$T/late.jsonl" && ok || fail "deadline: $(cat "$T/late.jsonl")"

# ---- 5. over HTTP: /metrics, and a client that goes away ------------------
command -v curl > /dev/null || { echo "curl is not installed: the HTTP part is skipped"; finish; }
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
cat > "$T/http.xml" <<XML
<?xml version="1.0"?>
<pipeline name="classify" version="1">
  <worker name="up" plugin="openai">
    <param name="base-url">http://127.0.0.1:$up/v1</param>
    <param name="model">classify</param>
  </worker>
  <stage name="ingress" plugin="http">
    <param name="listen">127.0.0.1:0</param>
    <param name="port-file">$T/http.port</param>
  </stage>
  <stage name="classify" plugin="classify" worker="up">
    <param name="method">model</param>
    <param name="timeout-ms">10s</param>
  </stage>
  <stage name="reply" plugin="reply"/>
  <channel from="ingress" to="classify"/>
  <channel from="classify" to="reply"/>
  <channel from="classify:error" to="reply"/>
</pipeline>
XML
"$PORCH" run -q "$T/http.xml" > /dev/null 2> "$T/http.err" &
pid=$!
wait_for 20 test -s "$T/http.port" || { fail "http: porch did not start: $(cat "$T/http.err")"; finish; }
U="http://127.0.0.1:$(cat "$T/http.port")"
: > "$T/up.json"
for i in 1 2; do
	curl -s -S -H 'Content-Type: application/json' "$U/v1/chat/completions" \
	    -d '{"model":"client-model","messages":[{"role":"system","content":"sys"},{"role":"user","content":"Write a haiku about autumn rain."}]}' \
	    > "$T/http.$i" 2>> "$T/http.err"
	grep -q '"content":"Write a haiku about autumn rain."' "$T/http.$i" && ok || fail "http: answer $i: $(cat "$T/http.$i")"
done
curl -s "$U/metrics" > "$T/metrics"
for ev in "cache_miss 1" "cache_hit 1" "model 1"; do
	grep -q "^porch_stage_events_total{stage=\"classify\",event=\"${ev% *}\"} ${ev#* }$" "$T/metrics" && ok ||
	    fail "http: /metrics has no $ev: $(grep events_total "$T/metrics")"
done
# the client's request went nowhere: the call is the stage's own
expect_eq "http: calls upstream" "$(grep -c . "$T/up.json")" 1
grep -q '"client-model"\|"sys"' "$T/up.json" && fail "http: the client's request reached the upstream: $(cat "$T/up.json")" || ok

kill -TERM "$pid"
wait "$pid"
expect_eq "http: porch's exit status" "$?" 0

# a client that goes away while the model is asked: the request fails,
# cancelled, at once (the model stalls)
rm -f "$T/http.port"
"$PORCH" run -q --set up.model=stall "$T/http.xml" > /dev/null 2> "$T/http2.err" &
pid=$!
wait_for 20 test -s "$T/http.port" || { fail "http: porch did not start: $(cat "$T/http2.err")"; finish; }
U="http://127.0.0.1:$(cat "$T/http.port")"
curl -s -m 1 -H 'Content-Type: application/json' "$U/v1/chat/completions" \
    -d '{"messages":[{"role":"user","content":"something new"}]}' > /dev/null 2>&1
cancelled() {
	curl -s "$U/metrics" > "$T/metrics2"
	grep -q '^porch_requests_total{pipeline="classify",outcome="failed"} 1$' "$T/metrics2"
}
wait_for 10 cancelled && ok || fail "http: the request whose client went away: $(grep requests_total "$T/metrics2")"
kill -TERM "$pid"
wait "$pid"
expect_eq "http: porch's exit status, after a cancel" "$?" 0
pid=
grep -q "failed: cancelled: the client closed the connection (while the model classified it)$" "$T/http2.err" &&
    ok || fail "http: no cancel by the stage: $(cat "$T/http2.err")"
finish
