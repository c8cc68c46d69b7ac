#!/bin/sh
# edges.sh -- rough edges a newcomer met (issue 13): a time parameter takes
# the duration syntax, a bare number of milliseconds too; stdout prints the
# request id when asked; the stats table shows "-" for a stage that saw
# nothing.
. "$top_srcdir/tests/lib.sh"

P="$top_srcdir/pipelines"

# now_ms: wall clock in milliseconds
now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

# 1. durations: the echo worker's delay-ms as "300ms", "300" and "1s"
for v in 300ms 300 1s; do
	t0=$(now_ms)
	out=$(echo hi | "$PORCH" run -q --set model.delay-ms=$v "$P/hello.xml" 2> "$T/err")
	rc=$?
	t1=$(now_ms)
	expect_eq "delay-ms=$v: exit status" "$rc" 0
	expect_eq "delay-ms=$v: answer" "$out" "$(printf 'stdin\thi')"
	case $v in 1s) want=1000 ;; *) want=300 ;; esac
	[ $((t1 - t0)) -ge "$want" ] && ok ||
	    fail "delay-ms=$v: the answer came after $((t1 - t0)) ms, before ${want} ms"
done
"$PORCH" plugins echo > "$T/echo.txt"
grep -Eq '^ *delay-ms +duration' "$T/echo.txt" && ok ||
    fail "porch plugins echo: delay-ms is not a duration: $(grep delay-ms "$T/echo.txt")"
grep -Eq '^ *token-delay-ms +duration' "$T/echo.txt" && ok ||
    fail "porch plugins echo: token-delay-ms is not a duration"
# a bad one: its exact message, exit 2
echo hi | "$PORCH" run -q --set model.token-delay-ms=5sec "$P/hello.xml" > "$T/out" 2> "$T/err"
expect_eq "token-delay-ms=5sec: exit status" "$?" 2
expect_eq "token-delay-ms=5sec: message" "$(cat "$T/err")" \
    "$P/hello.xml: error: worker 'model' (plugin echo): parameter 'token-delay-ms': '5sec' is not a duration (an integer with ms, s, m or h, e.g. 250ms)"

# 2. stdout's request-id: the request's "request-id" metadata, else porch's id
printf '%s\n' '{"text": "one two", "session": "s1", "meta": {"request-id": "q-17"}}' \
    'plain line' > "$T/in"
"$PORCH" run -q --set output.request-id=yes "$P/hello.xml" < "$T/in" > "$T/out" 2> "$T/err"
expect_eq "request-id: exit status" "$?" 0
expect_eq "request-id: lines" "$(sort "$T/out")" "$(printf '2\tstdin\tplain line\nq-17\ts1\tone two')"
"$PORCH" run -q "$P/hello.xml" < "$T/in" > "$T/out" 2> "$T/err"
expect_eq "request-id off (the default): lines" "$(sort "$T/out")" \
    "$(printf 's1\tone two\nstdin\tplain line')"
# streamed answers start with it too (token by token, the line goes live)
"$PORCH" run -q --set output.request-id=on --set model.token-delay-ms=1ms \
    "$P/hello.xml" < "$T/in" > "$T/out" 2> "$T/err"
expect_eq "request-id, streamed: lines" "$(sort "$T/out")" \
    "$(printf '2\tstdin\tplain line\nq-17\ts1\tone two')"

# 3. the stats table: a stage that saw nothing shows "-", not "0ns"
seq 5 | "$PORCH" run --set dead.path="$T/dead.jsonl" --set model.fail-rate=0 \
    "$P/dlq.xml" > "$T/out" 2> "$T/err"
expect_eq "stats: exit status" "$?" 0
line=$(grep '^dead ' "$T/err")
echo "$line" | grep -Eq '^dead +dlq +0 +0 +0 +0 +0 +0 +0 +- +- +-$' && ok ||
    fail "stats: the dlq stage that saw nothing: '$line'"
grep -Eq '^infer .* [0-9.]+(ns|us|ms|s) +[0-9.]+(ns|us|ms|s) +[0-9.]+(ns|us|ms|s)$' "$T/err" && ok ||
    fail "stats: the infer stage shows its latencies: $(grep '^infer ' "$T/err")"

finish
