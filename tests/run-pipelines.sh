#!/bin/sh
# run-pipelines.sh -- the example pipelines run, and stdin/stdout behave.
. "$top_srcdir/tests/lib.sh"

hello="$top_srcdir/pipelines/hello.xml"

# plain lines: whitespace-separated tokens come back joined, in order
printf 'hello porch\n  second   line \n\nthird\n' |
    "$PORCH" run -q --stats-json "$T/s.json" "$hello" > "$T/out" 2> "$T/err"
expect_eq "hello: exit status" "$?" 0
printf 'stdin\thello porch\nstdin\tsecond line\nstdin\tthird\n' > "$T/want"
cmp -s "$T/out" "$T/want" && ok || fail "hello: output differs: $(diff "$T/want" "$T/out")"
expect_eq "hello: nothing on stderr" "$(cat "$T/err")" ""
expect_eq "hello: accepted" "$(json_get "$T/s.json" accepted)" 3
expect_eq "hello: completed" "$(json_get "$T/s.json" completed)" 3

# JSON lines carry their own session; a bad line fails as bad-request,
# is reported and counted, and the rest goes on
printf '{"text": "json line", "session": "u1"}\n{"text": 42}\nnot json but fine\n{bad\n' |
    "$PORCH" run -q --stats-json "$T/s.json" "$hello" > "$T/out" 2> "$T/err"
expect_eq "json: exit status" "$?" 0
printf 'u1\tjson line\nstdin\tnot json but fine\n' > "$T/want"
cmp -s "$T/out" "$T/want" && ok || fail "json: output differs: $(diff "$T/want" "$T/out")"
grep -q '^[^ ]* [a-z]* porch: stage [^ ]*: stdin:2: request [0-9]* (session stdin) failed: bad-request: "text" must be a string$' "$T/err" && ok ||
    fail "json: no error for line 2: $(cat "$T/err")"
grep -q '^[^ ]* [a-z]* porch: stage [^ ]*: stdin:4: request [0-9]* (session stdin) failed: bad-request: bad JSON' "$T/err" && ok ||
    fail "json: no error for line 4: $(cat "$T/err")"
expect_eq "json: accepted" "$(json_get "$T/s.json" accepted)" 4
expect_eq "json: failed" "$(json_get "$T/s.json" failed)" 2
expect_eq "json: completed" "$(json_get "$T/s.json" completed)" 2

# --stats-json and --pid-file write through a file that is not a regular
# one (a FIFO here; /dev/null in real use) instead of renaming over it
mkfifo "$T/stats.fifo" "$T/pid.fifo"
cat "$T/stats.fifo" > "$T/stats.got" &
cat_stats=$!
cat "$T/pid.fifo" > "$T/pid.got" &
cat_pid=$!
"$PORCH" run -q --stats-json "$T/stats.fifo" --pid-file "$T/pid.fifo" "$hello" < /dev/null 2> "$T/err"
expect_eq "stats to a FIFO: exit status" "$?" 0
wait "$cat_stats" "$cat_pid"
[ -p "$T/stats.fifo" ] && [ -p "$T/pid.fifo" ] && ok || fail "a FIFO was replaced by a file"
grep -q '"accepted": 0' "$T/stats.got" && ok || fail "stats through a FIFO: $(cat "$T/stats.got") $(cat "$T/err")"
grep -q '^[0-9][0-9]*$' "$T/pid.got" && ok || fail "pid through a FIFO: $(cat "$T/pid.got")"

# empty input: nothing to do, a clean exit, the statistics table on stderr
"$PORCH" run "$hello" < /dev/null > "$T/out" 2> "$T/err"
expect_eq "empty: exit status" "$?" 0
expect_eq "empty: no output" "$(cat "$T/out")" ""
grep -q "accepted 0, completed 0, failed 0, shed 0, expired 0" "$T/err" && ok ||
    fail "empty: no statistics table: $(cat "$T/err")"

# --set overrides a parameter; a bad --set is an invalid command line
printf 'a b c\n' | "$PORCH" run -q --set model.fail-rate=1 "$hello" > "$T/out" 2> "$T/err"
expect_eq "--set: exit status" "$?" 0
expect_eq "--set: the failing request prints nothing" "$(cat "$T/out")" ""
grep -q 'failed: upstream: echo: simulated failure' "$T/err" && ok ||
    fail "--set: failure not reported: $(cat "$T/err")"
"$PORCH" run -q --set model.fail-rate=2 "$hello" < /dev/null 2> "$T/err"
expect_eq "--set out of range: exit status" "$?" 2
"$PORCH" run -q --set model-delay-ms "$hello" < /dev/null 2> "$T/err"
expect_eq "--set malformed: exit status" "$?" 2
expect_eq "--set malformed: message" "$(cat "$T/err")" \
    "porch: run: --set 'model-delay-ms': expected STAGE.PARAM=VALUE"
"$PORCH" run -q --set modle.delay-ms=1 "$hello" < /dev/null 2> "$T/err"
expect_eq "--set unknown target: exit status" "$?" 2
grep -q "did you mean 'model'" "$T/err" && ok || fail "--set: no suggestion: $(cat "$T/err")"
# a name like none of the file's gets no suggestion (not 'input' for 'llm')
"$PORCH" run -q --set llm.delay-ms=1 "$hello" < /dev/null 2> "$T/err"
expect_eq "--set unrelated target: message" "$(cat "$T/err")" \
    "$hello: error: --set llm.delay-ms: no stage, worker or pool named 'llm'"

# --set on the pipeline's own attributes: a channel's capacity and overflow
printf 'a\nb\nc\n' | "$PORCH" run -q --stats-json "$T/s1.json" \
    --set 'input->infer.capacity=3' --set 'infer->output.overflow=reject' "$hello" > /dev/null 2> "$T/err"
expect_eq "--set channel: exit status" "$?" 0
python3 - "$T/s1.json" <<'PY' && ok || fail "--set channel: $(cat "$T/s1.json")"
import json, sys
ch = {(c["from"], c["to"]): c for c in json.load(open(sys.argv[1]))["channels"]}
assert ch[("input", "infer")]["capacity"] == 3, ch
assert ch[("infer", "output")]["overflow"] == "reject", ch
assert ch[("infer", "output")]["capacity"] == 64, ch
PY
# a stage's concurrency and the pipeline's max-inflight: three answers that
# take 300 ms each cannot all be done in less than 900 ms one at a time
for set in infer.concurrency=1 pipeline.max-inflight=1; do
	printf 'a\nb\nc\n' | "$PORCH" run -q --stats-json "$T/s2.json" --set model.delay-ms=300 \
	    --set "$set" "$hello" > /dev/null 2> "$T/err"
	expect_eq "--set $set: exit status" "$?" 0
	el=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["elapsed_s"])' "$T/s2.json")
	awk -v e="$el" 'BEGIN { exit !(e >= 0.9) }' && ok || fail "--set $set: all three in $el s"
done
# ... and three at once with the file's own (16): the same is not serial
printf 'a\nb\nc\n' | "$PORCH" run -q --stats-json "$T/s3.json" --set model.delay-ms=300 \
    "$hello" > /dev/null 2> "$T/err"
el=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["elapsed_s"])' "$T/s3.json")
awk -v e="$el" 'BEGIN { exit !(e < 0.9) }' && ok || echo "# (concurrency 16 took $el s: a loaded machine)"
# bad values, each with its message
setbad() {
	"$PORCH" check --set "$1" "$hello" > /dev/null 2> "$T/err"
	expect_eq "--set $1: exit status" "$?" 2
	expect_eq "--set $1: message" "$(cat "$T/err")" "$2"
}
setbad 'input->infer.capacity=0' "$hello: error: --set input->infer.capacity: '0' is out of range (1 to 1048576)"
setbad 'input->infer.capacity=lots' "$hello: error: --set input->infer.capacity: 'lots' is not an integer (1 to 1048576)"
setbad 'input->infer.overflow=spill' "$hello: error: --set input->infer.overflow: 'spill' is not one of block, reject, drop-oldest"
setbad 'input->infer.colour=red' "$hello: error: --set input->infer.colour: a channel has capacity and overflow, not 'colour'"
setbad 'input->output.capacity=2' "$hello: error: --set input->output.capacity: no channel from 'input' to 'output'"
setbad 'infer.concurrency=-1' "$hello: error: --set infer.concurrency: '-1' is out of range (1 to 1048576)"
setbad 'pipeline.max-inflight=x' "$hello: error: --set pipeline.max-inflight: 'x' is not an integer (1 to 1073741824)"
setbad 'pipeline.capacity=3' "$hello: error: --set pipeline.capacity: the pipeline has max-inflight, not 'capacity'"

# every example pipeline runs to completion on one line of input; those that
# need more (a dead-letter file, a model server) have tests of their own
for f in "$top_srcdir"/pipelines/*.xml; do
	case "$(basename "$f")" in
	dlq.xml|openai.xml|server.xml|gateway.xml|route.xml|balance.xml|grpc.xml|cluster.xml)
		continue ;; # tests of their own (cluster.xml: tests/nats-cluster.sh)
	esac
	echo "one two three" | "$PORCH" run -q --stats-json "$T/p.json" "$f" > /dev/null 2> "$T/err"
	expect_eq "$(basename "$f"): exit status" "$?" 0
	a=$(json_get "$T/p.json" accepted)
	c=$(json_get "$T/p.json" completed)
	[ -n "$a" ] && [ "$a" -ge 1 ] && [ "$a" = "$c" ] && ok ||
	    fail "$(basename "$f"): accepted '$a', completed '$c': $(cat "$T/err")"
done

# rag.xml, the five stages: the answer (the echoed prompt) carries the
# passages of the corpus that fit the question, and the question
echo "how do I route failed requests to a dead letter file?" |
    "$PORCH" run -q "$top_srcdir/pipelines/rag.xml" > "$T/out" 2> "$T/err"
expect_eq "rag.xml: exit status" "$?" 0
grep -q "^stdin	Answer the question using the context below\. Context: .*error port, which can route failed requests to a dead-letter sink\..* Question: how do I route failed requests to a dead letter file?$" "$T/out" &&
    ok || fail "rag.xml: $(cat "$T/out")"

# porch graph: valid DOT with every stage and channel
"$PORCH" graph "$hello" > "$T/g.dot"
expect_eq "graph: exit status" "$?" 0
grep -q '"input" -> "infer" \[label="64, block"\];' "$T/g.dot" && ok || fail "graph: edge missing: $(cat "$T/g.dot")"
grep -q '"infer" -> "worker:model"' "$T/g.dot" && ok || fail "graph: worker edge missing"
# a source has no concurrency to show; other stages do
grep -q '"input" \[shape=invhouse, label="input\\n(stdin)"\];' "$T/g.dot" && ok ||
    fail "graph: the source's label: $(grep '"input" \[' "$T/g.dot")"
grep -q '"infer" \[shape=box, label="infer\\n(inference, concurrency 16)"\];' "$T/g.dot" && ok ||
    fail "graph: a stage's label: $(grep '"infer" \[' "$T/g.dot")"
# --set: drawn as porch run would run it
"$PORCH" graph --set 'input->infer.capacity=3' "$hello" | grep -q '"input" -> "infer" \[label="3, block"\];' &&
    ok || fail "graph --set: the channel's capacity"
"$PORCH" graph --set 'inptu->infer.capacity=3' "$hello" > /dev/null 2> "$T/err"
expect_eq "graph --set on no channel: exit" "$?" 2
# three stages in a row are drawn left to right; six (server.xml), top to bottom
grep -q 'rankdir=LR;' "$T/g.dot" && ok || fail "graph: hello.xml not left to right"
"$PORCH" graph "$top_srcdir/pipelines/server.xml" | grep -q 'rankdir=TB;' && ok ||
    fail "graph: server.xml not top to bottom"
if command -v dot > /dev/null; then
	dot -Tsvg "$T/g.dot" > "$T/g.svg" && grep -q '<svg' "$T/g.svg" && ok || fail "graph: dot rejects it"
fi

finish
