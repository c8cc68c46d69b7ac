#!/bin/sh
# control.sh -- porch run --control HOST:PORT: the runtime's own listener,
# for a pipeline with no http stage (pipelines/hello.xml reads stdin):
# GET and HEAD of /metrics, /graph and /healthz, 404 and 405 otherwise,
# porch top --once reading it, a client that keeps its connection open
# does not keep a finished run alive, and bad values of the option.
. "$top_srcdir/tests/lib.sh"

command -v curl > /dev/null || { echo "curl is not installed: skipped"; exit 77; }
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
hello="$top_srcdir/pipelines/hello.xml"
pids=
trap 'for p in $pids; do kill "$p" 2>/dev/null; done; rm -rf "$T"' EXIT

# stdin stays open until $T/go exists, so the pipeline runs meanwhile
mkfifo "$T/in"
"$PORCH" run --control 127.0.0.1:0 --stats-json "$T/s.json" "$hello" < "$T/in" \
    > "$T/out" 2> "$T/err" &
pid=$!
pids="$pids $pid"
exec 8> "$T/in"
wait_for 20 grep -q "control: listening on 127.0.0.1:" "$T/err" ||
    { fail "porch did not start: $(cat "$T/err")"; finish; }
grep -q "^[0-9T:.-]*Z info porch: control: listening on 127.0.0.1:[0-9]* (/metrics, /graph, /healthz)$" \
    "$T/err" && ok || fail "the listening line: $(cat "$T/err")"
CP=$(sed -n 's/.*control: listening on 127.0.0.1:\([0-9]*\) .*/\1/p' "$T/err")
U="http://127.0.0.1:$CP"

echo "one two" >&8
wait_for 10 grep -q "one two" "$T/out" || fail "no answer: $(cat "$T/out")"

code() { curl -s -o "$T/b" -D "$T/h" -w '%{http_code}' "$@"; }
expect_eq "/metrics" "$(code "$U/metrics")" 200
grep -q '^porch_stage_info{stage="infer",plugin="inference",' "$T/b" && ok ||
    fail "/metrics: no stage info: $(head -5 "$T/b")"
grep -q '^porch_requests_accepted_total{pipeline="hello"} 1$' "$T/b" && ok ||
    fail "/metrics: accepted: $(grep accepted "$T/b")"
expect_eq "/graph" "$(code "$U/graph")" 200
grep -qi '^Content-Type: text/html' "$T/h" && ok || fail "/graph: type: $(cat "$T/h")"
grep -qi "^Content-Security-Policy: default-src 'none'" "$T/h" && ok || fail "/graph: no CSP"
grep -q '<svg\|<canvas\|porch_stage_info' "$T/b" && ok || fail "/graph: not the graph page"
expect_eq "/healthz" "$(code "$U/healthz")" 200
grep -q '"healthy": true' "$T/b" && ok || fail "/healthz: $(cat "$T/b")"
expect_eq "HEAD /metrics: status, body bytes" \
    "$(curl -s -I -o /dev/null -w '%{http_code} %{size_download}' "$U/metrics")" "200 0"
expect_eq "/nothing" "$(code "$U/nothing")" 404
expect_eq "POST /metrics" "$(code -X POST "$U/metrics")" 405
grep -qi '^Allow: GET, HEAD' "$T/h" && ok || fail "405 without Allow: $(cat "$T/h")"

# porch top reads it as it reads an http stage's /metrics
"$PORCH" top --once --interval 200ms "$U" > "$T/top" 2> "$T/top.err"
expect_eq "porch top --once: exit" "$?" 0
grep -q "^infer  *inference " "$T/top" && ok || fail "porch top: $(cat "$T/top" "$T/top.err")"

# a client holding a connection open does not keep the run alive
python3 -c 'import socket,sys,time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
open(sys.argv[2], "w").write("open"); time.sleep(30)' "$CP" "$T/conn" 8>&- &
client=$!
pids="$pids $client"
wait_for 10 test -s "$T/conn" || fail "could not connect"
exec 8>&-
wait_for 10 sh -c "! kill -0 $pid 2> /dev/null" || fail "the run did not end with a control connection open"
wait "$pid"
expect_eq "exit status" "$?" 0
kill "$client" 2> /dev/null
expect_eq "accepted" "$(json_get "$T/s.json" accepted)" 1

# bad values
"$PORCH" run --control nonsense "$hello" < /dev/null > /dev/null 2> "$T/e1"
expect_eq "--control nonsense: exit" "$?" 1
expect_eq "--control nonsense: message" "$(grep -c "porch: --control 'nonsense': expected HOST:PORT (e.g. 127.0.0.1:9090)" "$T/e1")" 1
# a port past 65535 is refused, not taken modulo 65536 (99999 was 34463)
"$PORCH" run --control 127.0.0.1:99999 "$hello" < /dev/null > /dev/null 2> "$T/e3"
expect_eq "--control 127.0.0.1:99999: exit" "$?" 1
expect_eq "--control 127.0.0.1:99999: message" "$(grep -c "porch: --control '127.0.0.1:99999': the port is not a number from 0 to 65535" "$T/e3")" 1
python3 -c 'import socket,sys,time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
open(sys.argv[1], "w").write(str(s.getsockname()[1])); sys.stdout.flush(); time.sleep(30)' "$T/held" &
holder=$!
pids="$pids $holder"
wait_for 10 test -s "$T/held" || fail "could not hold a port"
"$PORCH" run --control "127.0.0.1:$(cat "$T/held")" "$hello" < /dev/null > /dev/null 2> "$T/e2"
expect_eq "--control in use: exit" "$?" 1
grep -q "porch: --control '127.0.0.1:$(cat "$T/held")': cannot listen: Address already in use" "$T/e2" &&
    ok || fail "--control in use: $(cat "$T/e2")"
kill "$holder" 2> /dev/null
finish
