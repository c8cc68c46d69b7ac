#!/bin/sh
# dlq.sh -- failures become dead letters, nothing is lost, and replay brings
# them back: pipelines/dlq.xml, the dlq and jsonl sinks, porch replay.
. "$top_srcdir/tests/lib.sh"

dlq="$top_srcdir/pipelines/dlq.xml"

# 1. A failing worker: every request ends once, and every failure is a
# dead letter with its input, error and attempts.  Lines 1-300 as plain
# text, and ten JSON lines with a deadline shorter than the worker's delay.
seq 1 300 > "$T/in"
for i in 1 2 3 4 5 6 7 8 9 10; do
	printf '{"text": "late %d", "session": "s%d", "deadline_ms": 20}\n' "$i" "$i" >> "$T/in"
done
"$PORCH" run -q --set model.fail-rate=0.5 --set model.delay-ms=30 \
    --set dead.path="$T/dead.jsonl" --stats-json "$T/s.json" "$dlq" < "$T/in" > "$T/out" 2> "$T/err"
expect_eq "failing worker: exit status" "$?" 0
accepted=$(json_get "$T/s.json" accepted)
completed=$(json_get "$T/s.json" completed)
failed=$(json_get "$T/s.json" failed)
shed=$(json_get "$T/s.json" shed)
expired=$(json_get "$T/s.json" expired)
expect_eq "failing worker: accepted" "$accepted" 310
expect_eq "failing worker: accepted = completed + failed + shed + expired" \
    "$accepted" "$((completed + failed + shed + expired))"
# at 0.5 and two attempts about a quarter fail for good
[ "$failed" -gt 30 ] && [ "$failed" -lt 130 ] && ok || fail "failing worker: $failed failed"
expect_eq "failing worker: completed = lines printed" "$(wc -l < "$T/out" | tr -d ' ')" "$completed"
expect_eq "every failed request is a dead letter" \
    "$(grep -c '"outcome":"failed"' "$T/dead.jsonl")" "$failed"
expect_eq "every expired request is a dead letter" \
    "$(grep -c '"outcome":"expired"' "$T/dead.jsonl")" "$expired"
expect_eq "dead letters: one per failure or expiry" \
    "$(wc -l < "$T/dead.jsonl" | tr -d ' ')" "$((failed + expired))"
# nothing lost, nothing twice: printed answers and dead letters' inputs
# together are the input, each once
{ cut -f2 "$T/out"; sed 's/.*"input":"\([^"]*\)".*/\1/' "$T/dead.jsonl"; } | sort > "$T/seen"
sed 's/^{"text": "\([^"]*\)".*/\1/' "$T/in" | sort > "$T/want"
cmp -s "$T/seen" "$T/want" && ok || fail "answers + dead letters differ from the input: $(diff "$T/want" "$T/seen" | head)"
# a failed letter says what failed, where, and after how many attempts
grep '"outcome":"failed"' "$T/dead.jsonl" | head -n 1 > "$T/one"
for field in '"error":"upstream"' '"error_stage":"infer"' '"attempts":2' \
    '"error_text":"echo: simulated failure (2 attempts, retries exhausted)"' \
    '"meta":{"line":"' '"timings_ms":{"infer":'; do
	grep -qF "$field" "$T/one" && ok || fail "dead letter lacks $field: $(cat "$T/one")"
done
grep '"input":"late 3"' "$T/dead.jsonl" | grep -q '"session":"s3".*"outcome":"expired".*"error":"deadline"' &&
    ok || fail "expired letter: $(grep 'late 3' "$T/dead.jsonl")"

# 2. porch replay: the dead letters, against a worker that is well again,
# all complete, with their own sessions
"$PORCH" replay -q --set model.fail-rate=0 --set dead.path="$T/dead2.jsonl" \
    --stats-json "$T/r.json" "$T/dead.jsonl" "$dlq" > "$T/rout" 2> "$T/rerr"
expect_eq "replay: exit status" "$?" 0
expect_eq "replay: accepted" "$(json_get "$T/r.json" accepted)" "$((failed + expired))"
expect_eq "replay: completed" "$(json_get "$T/r.json" completed)" "$((failed + expired))"
grep -q '^s3	late 3$' "$T/rout" && ok || fail "replay: 'late 3' not answered in session s3"
sed 's/.*"session":"\([^"]*\)".*"input":"\([^"]*\)".*/\1	\2/' "$T/dead.jsonl" | sort > "$T/want"
sort "$T/rout" > "$T/got"
cmp -s "$T/got" "$T/want" && ok || fail "replay output: $(diff "$T/want" "$T/got" | head)"
[ ! -s "$T/dead2.jsonl" ] && ok || fail "replay: new dead letters: $(head -n 2 "$T/dead2.jsonl")"

# 3. replaying into the same file while everything fails again: each record
# is read once, so it ends, and the file has doubled
n=$(wc -l < "$T/dead.jsonl" | tr -d ' ')
"$PORCH" replay -q --set model.fail-rate=1 --set dead.path="$T/dead.jsonl" \
    "$T/dead.jsonl" "$dlq" > /dev/null 2>&1
expect_eq "replay into itself: exit status" "$?" 0
expect_eq "replay into itself: records" "$(wc -l < "$T/dead.jsonl" | tr -d ' ')" "$((n * 2))"

# 4. replay's own errors
"$PORCH" replay "$T/missing.jsonl" "$dlq" > /dev/null 2> "$T/err"
expect_eq "replay missing file: exit status" "$?" 1
grep -q "replay: cannot open $T/missing.jsonl: No such file or directory" "$T/err" && ok ||
    fail "replay missing file: $(cat "$T/err")"
"$PORCH" replay "$dlq" 2> "$T/err"
expect_eq "replay one argument: exit status" "$?" 2
cat > "$T/two.xml" <<XML
<?xml version="1.0"?>
<pipeline name="two" version="1">
  <stage name="a" plugin="gen"/>
  <stage name="b" plugin="gen"/>
  <stage name="sink" plugin="null"/>
  <channel from="a" to="sink"/>
  <channel from="b" to="sink"/>
</pipeline>
XML
"$PORCH" replay "$T/dead.jsonl" "$T/two.xml" 2> "$T/err"
expect_eq "replay two sources: exit status" "$?" 2
grep -q "two.xml:2:1: error: the pipeline has 2 source stages; name the one to feed with --source STAGE" "$T/err" &&
    ok || fail "replay two sources: $(cat "$T/err")"
"$PORCH" replay -q --source b "$T/dead.jsonl" "$T/two.xml" > /dev/null 2>&1
expect_eq "replay --source: exit status" "$?" 0

# 5. a bad record is a failed request, reported with its line
printf '{"input": "fine"}\n{"text": "no input"}\n{not json\n' > "$T/bad.jsonl"
"$PORCH" replay -q --set model.fail-rate=0 --set dead.path="$T/dead3.jsonl" \
    --stats-json "$T/b.json" "$T/bad.jsonl" "$dlq" > "$T/out" 2> "$T/err"
expect_eq "bad records: completed" "$(json_get "$T/b.json" completed)" 1
expect_eq "bad records: failed" "$(json_get "$T/b.json" failed)" 2
grep -q 'stdin:2: request [0-9]* (session stdin) failed: bad-request: "input" is missing' "$T/err" &&
    ok || fail "bad records: $(cat "$T/err")"

# 6. the jsonl sink: one object per request with outcome and timings
cat > "$T/jsonl.xml" <<XML
<?xml version="1.0"?>
<pipeline name="j" version="1">
  <worker name="model" plugin="echo"/>
  <stage name="input" plugin="stdin"/>
  <stage name="infer" plugin="inference" worker="model"/>
  <stage name="log" plugin="jsonl"><param name="path">log.jsonl</param></stage>
  <channel from="input" to="infer"/>
  <channel from="infer" to="log"/>
  <channel from="infer:error" to="log"/>
</pipeline>
XML
printf '{"text": "hello  there", "session": "u7", "meta": {"request-id": "q-7"}}\n{"text": "x", "meta": {"temperature": "hot"}}\n' |
    "$PORCH" run -q "$T/jsonl.xml" 2> "$T/err"
expect_eq "jsonl: exit status" "$?" 0
expect_eq "jsonl: records (relative path: next to the pipeline)" "$(wc -l < "$T/log.jsonl" | tr -d ' ')" 2
# the request id, session, input and metadata join the answer to its
# question; times are short: the millisecond, and 0.01 ms for timings
head -n 1 "$T/log.jsonl" | grep -Eq '^\{"id":1,"request_id":"q-7","time":[0-9]+(\.[0-9]{1,3})?,"session":"u7","outcome":"completed","input":"hello  there","text":"hello there","attempts":1,"meta":\{"request-id":"q-7","line":"1","finish-reason":"stop"\},"timings_ms":\{"infer":[0-9]+\.[0-9]{1,2}\}\}$' &&
    ok || fail "jsonl record: $(head -n 1 "$T/log.jsonl")"
sed -n 2p "$T/log.jsonl" | grep -qF '"request_id":"2",' &&
    ok || fail "jsonl failed record, no request-id: porch's id: $(sed -n 2p "$T/log.jsonl")"
sed -n 2p "$T/log.jsonl" | grep -qF '"outcome":"failed","input":"x","text":"x","error":"bad-request","error_text":"metadata '"'"'temperature'"'"' is '"'"'hot'"'"': want a number from 0 to 2","error_stage":"infer"' &&
    ok || fail "jsonl failed record: $(sed -n 2p "$T/log.jsonl")"

# 7. a sink's file in a directory that does not exist: porch check says so
sed "s|log.jsonl|$T/nodir/log.jsonl|" "$T/jsonl.xml" > "$T/nodir.xml"
"$PORCH" check "$T/nodir.xml" 2> "$T/err"
expect_eq "jsonl no directory: exit status" "$?" 2
expect_eq "jsonl no directory: message" "$(cat "$T/err")" \
    "$T/nodir.xml:6:55: error: stage 'log' (plugin jsonl): path '$T/nodir/log.jsonl': directory '$T/nodir' does not exist"

# 8. a record that cannot be written is not lost without a word: jsonl
# fails the request, dlq says so and the request still counts as failed
if [ -w /dev/full ]; then
	printf 'one\n' | "$PORCH" run -q --set log.path=/dev/full --stats-json "$T/full.json" \
	    "$T/jsonl.xml" > /dev/null 2> "$T/err"
	expect_eq "jsonl on a full disk: failed" "$(json_get "$T/full.json" failed)" 1
	grep -q "failed: internal: cannot write to /dev/full: No space left on device" "$T/err" &&
	    ok || fail "jsonl on a full disk: $(cat "$T/err")"
	printf 'one\n' | "$PORCH" run -q --set model.fail-rate=1 --set dead.path=/dev/full \
	    --stats-json "$T/full2.json" "$dlq" > /dev/null 2> "$T/err"
	expect_eq "dlq on a full disk: failed" "$(json_get "$T/full2.json" failed)" 1
	grep -q "stage 'dead': cannot write request 1 to /dev/full: No space left on device" "$T/err" &&
	    ok || fail "dlq on a full disk: $(cat "$T/err")"
fi

finish
