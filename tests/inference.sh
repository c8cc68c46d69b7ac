#!/bin/sh
# inference.sh -- the inference stage: settings, timeouts, deadlines,
# retries, and tokens streamed to the sink as they arrive.
. "$top_srcdir/tests/lib.sh"

# pipeline FILE WORKER-PARAMS INFERENCE-PARAMS
pipeline() {
	cat > "$1" <<XML
<?xml version="1.0"?>
<pipeline name="inf" version="1">
  <worker name="model" plugin="echo">$2</worker>
  <stage name="input" plugin="stdin"/>
  <stage name="infer" plugin="inference" worker="model">$3</stage>
  <stage name="output" plugin="stdout"/>
  <stage name="dead" plugin="dlq"><param name="path">dead.jsonl</param></stage>
  <channel from="input" to="infer"/>
  <channel from="infer" to="output"/>
  <channel from="infer:error" to="dead"/>
</pipeline>
XML
}

p() {
	printf '<param name="%s">%s</param>' "$1" "$2"
}

# 1. a request's deadline passes while the worker works: the call is
# cancelled and the request expires, without waiting for the worker
pipeline "$T/deadline.xml" "$(p delay-ms 5000)" ""
printf '{"text": "slow", "deadline_ms": 100}\n' |
    "$PORCH" run -q --stats-json "$T/s.json" "$T/deadline.xml" > "$T/out" 2> "$T/err"
expect_eq "deadline: exit status" "$?" 0
expect_eq "deadline: expired" "$(json_get "$T/s.json" expired)" 1
grep -q "expired: deadline: the request's deadline passed during attempt 1 at stage 'infer'" "$T/err" &&
    ok || fail "deadline: $(cat "$T/err")"
grep -q '"outcome":"expired".*"error":"deadline".*"attempts":1' "$T/dead.jsonl" && ok ||
    fail "deadline: dead letter $(cat "$T/dead.jsonl")"
el=$(sed -n 's/^  "elapsed_s": \([0-9]*\)\..*/\1/p' "$T/s.json")
expect_eq "deadline: the run did not wait for the worker (whole seconds)" "$el" 0

# 2. each attempt has timeout-ms; a timeout is retried, then fails
rm -f "$T/dead.jsonl"
pipeline "$T/timeout.xml" "$(p delay-ms 5000)" "$(p timeout-ms 50; p retries 2; p backoff-ms 1)"
echo "hello" | "$PORCH" run -q --stats-json "$T/s.json" "$T/timeout.xml" > "$T/out" 2> "$T/err"
expect_eq "timeout: failed" "$(json_get "$T/s.json" failed)" 1
grep -q "failed: timeout: the worker did not answer within 50 ms (3 attempts, retries exhausted)" "$T/err" &&
    ok || fail "timeout: $(cat "$T/err")"
grep -q '"error":"timeout".*"attempts":3' "$T/dead.jsonl" && ok || fail "timeout: $(cat "$T/dead.jsonl")"

# 3. an upstream error is retried up to the limit
rm -f "$T/dead.jsonl"
pipeline "$T/retry.xml" "$(p fail-rate 1)" "$(p retries 3; p backoff-ms 1)"
echo "hello" | "$PORCH" run -q "$T/retry.xml" > "$T/out" 2> "$T/err"
grep -q "failed: upstream: echo: simulated failure (4 attempts, retries exhausted)" "$T/err" &&
    ok || fail "retries: $(cat "$T/err")"
pipeline "$T/noretry.xml" "$(p fail-rate 1)" "$(p retries 0)"
echo "hello" | "$PORCH" run -q "$T/noretry.xml" > "$T/out" 2> "$T/err"
grep -q "failed: upstream: echo: simulated failure (1 attempt)$" "$T/err" &&
    ok || fail "retries 0: $(cat "$T/err")"

# 4. the backoff never outlives the request: a retry that would pass the
# deadline is not made
pipeline "$T/late.xml" "$(p fail-rate 1)" "$(p retries 5; p backoff-ms 10s; p max-backoff-ms 10s)"
printf '{"text": "x", "deadline_ms": 200}\n' | "$PORCH" run -q "$T/late.xml" > "$T/out" 2> "$T/err"
grep -Eq "failed: upstream: echo: simulated failure \(1 attempt, not retried: the request's deadline comes first\)|expired: deadline: the request's deadline passed after attempt 1" "$T/err" &&
    ok || fail "backoff past deadline: $(cat "$T/err")"

# 5. settings: parameters fill what a request does not give; bad values
# fail as bad-request and are not sent
rm -f "$T/dead.jsonl"
pipeline "$T/settings.xml" "$(p fail-rate 1)" \
    "$(p retries 0; p model m1; p max-tokens 64; p temperature 0.5; p top-p 0.9; p stop 'END,"q"')"
printf '{"text": "a", "meta": {"temperature": "0.1"}}\n{"text": "b", "meta": {"max-tokens": "0"}}\n' |
    "$PORCH" run -q "$T/settings.xml" > "$T/out" 2> "$T/err"
head -n 1 "$T/dead.jsonl" | grep -qF '"meta":{"temperature":"0.1","line":"1","model":"m1","max-tokens":"64","top-p":"0.9","stop":"[\"END\",\"\\\"q\\\"\"]"}' &&
    ok || fail "settings: $(head -n 1 "$T/dead.jsonl")"
grep -q "stdin:2: request [0-9]* (session stdin) failed: bad-request: metadata 'max-tokens' is '0': want an integer from 1 to 1.04858e+06" "$T/err" &&
    ok || fail "bad setting: $(cat "$T/err")"
sed -n 2p "$T/dead.jsonl" | grep -q '"attempts":0' && ok || fail "bad setting was sent: $(sed -n 2p "$T/dead.jsonl")"

# 6. streaming: the first tokens are on stdout while the answer is still
# being written (five tokens 300 ms apart)
pipeline "$T/stream.xml" "$(p token-delay-ms 300)" ""
mkfifo "$T/fifo"
"$PORCH" run -q "$T/stream.xml" < "$T/fifo" > "$T/out" 2> "$T/err" &
pid=$!
exec 3> "$T/fifo"
echo "one two three four five" >&3
partial() {
	grep -q '^stdin	one two' "$T/out" && ! grep -q 'five' "$T/out"
}
wait_for 10 partial && ok || fail "stream: no partial answer: $(cat "$T/out")"
kill -0 "$pid" && ok || fail "stream: porch ended before the answer did"
exec 3>&-
wait "$pid"
expect_eq "stream: exit status" "$?" 0
expect_eq "stream: the whole line at the end" "$(cat "$T/out")" "stdin	one two three four five"

# 7. a streamed answer cut off by the deadline: the line is ended, the
# sink says why, and the request expires once (no retry after streaming)
rm -f "$T/dead.jsonl"
pipeline "$T/cut.xml" "$(p token-delay-ms 200)" "$(p retries 3)"
printf '{"text": "one two three four five six", "deadline_ms": 500}\n' |
    "$PORCH" run -q --stats-json "$T/s.json" "$T/cut.xml" > "$T/out" 2> "$T/err"
expect_eq "cut off: expired" "$(json_get "$T/s.json" expired)" 1
grep -q '^stdin	one two' "$T/out" && ! grep -q six "$T/out" && ok || fail "cut off: output $(cat "$T/out")"
expect_eq "cut off: one line" "$(wc -l < "$T/out" | tr -d ' ')" 1
grep -q "stage 'output': the answer to request 1 (session stdin) was cut off: the request ended before it was complete (deadline: the request's deadline passed during attempt 1 at stage 'infer')" "$T/err" &&
    ok || fail "cut off: $(cat "$T/err")"
grep -q '"attempts":1' "$T/dead.jsonl" && ok || fail "cut off: retried: $(cat "$T/dead.jsonl")"

# 8. stream off: the answer is printed whole, once
pipeline "$T/nostream.xml" "$(p token-delay-ms 1)" "$(p stream false)"
printf 'one two\nthree\n' | "$PORCH" run -q "$T/nostream.xml" 2> "$T/err" | sort > "$T/out"
printf 'stdin\tone two\nstdin\tthree\n' > "$T/want"
cmp -s "$T/out" "$T/want" && ok || fail "stream off: $(cat "$T/out")"

finish
