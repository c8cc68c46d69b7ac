#!/bin/sh
# logs.sh -- porch run's log and the http source's access log (issue 13).
#
# One pipeline: http (access log to a file) -> inference (echo worker)
# -> reply, and requests for the model "fail" routed to an echo worker
# that fails every call.  Run three times:
#   text   every line on stderr starts with an RFC 3339 time with
#          milliseconds and a level, and names where it comes from; the
#          statistics table follows its summary line;
#   json   every line is one JSON object with time, level and msg; a line
#          about a request has its request id and session; the statistics
#          are one line whose "stats" has the totals;
#   warn   --log-level warn: no info line but the statistics SIGUSR1
#          asks for;
#   debug  --log-level debug: each request's acceptance and outcome, at
#          its stage, with its session (none at info).
# The access log, text and json: one line per request answered, with the
# client, method, target, status, bytes both ways, times, request id,
# model and outcome of each.  Bad values of the options and parameters
# are refused with their message.
. "$top_srcdir/tests/lib.sh"

p() { printf '<param name="%s">%s</param>' "$1" "$2"; }
mkpipe() { # FILE ACCESS-LOG ACCESS-FORMAT
	cat > "$1" <<XML
<?xml version="1.0"?>
<pipeline name="logs" version="1">
  <worker name="model" plugin="echo"/>
  <worker name="broken" plugin="echo">$(p fail-rate 1)</worker>
  <stage name="ingress" plugin="http">$(p listen 127.0.0.1:0)$(p port-file "$T/port")$(p access-log "$2")$(p access-log-format "$3")</stage>
  <stage name="inference" plugin="inference" worker="model">$(p retries 0)</stage>
  <stage name="failing" plugin="inference" worker="broken">$(p retries 0)</stage>
  <stage name="reply" plugin="reply"/>
  <channel from="ingress" to="failing" when="model == 'fail'"/>
  <channel from="ingress" to="inference" otherwise="true"/>
  <channel from="inference" to="reply"/>
  <channel from="inference:error" to="reply"/>
  <channel from="failing" to="reply"/>
  <channel from="failing:error" to="reply"/>
</pipeline>
XML
}

# run NAME FORMAT LEVEL ACCESS-FORMAT: porch with the log options, three
# requests (one that fails, with a session), SIGUSR1, SIGTERM
run() {
	mkpipe "$T/$1.xml" "$T/$1.access" "$4"
	rm -f "$T/port"
	"$PORCH" run --log-format "$2" --log-level "$3" "$T/$1.xml" > "$T/$1.out" 2> "$T/$1.err" &
	pid=$!
	wait_for 20 test -s "$T/port" || { fail "$1: porch did not start: $(cat "$T/$1.err")"; return 1; }
	U="http://127.0.0.1:$(cat "$T/port")"
	curl -s -o /dev/null -H 'X-Request-Id: ok-1' -H 'Content-Type: application/json' \
	    "$U/v1/chat/completions" -d '{"model":"m1","messages":[{"role":"user","content":"hello there"}]}'
	curl -s -o /dev/null -H 'X-Request-Id: bad-2' -H 'X-Session-Id: alice' \
	    "$U/v1/chat/completions" -d '{"model":"fail","messages":[{"role":"user","content":"x"}]}'
	curl -s -o /dev/null -H 'X-Request-Id: health-3' "$U/healthz"
	kill -USR1 "$pid"
	wait_for 10 grep -q "statistics\|pipeline 'logs' after" "$T/$1.err" || fail "$1: SIGUSR1 wrote nothing"
	kill -TERM "$pid"
	wait "$pid"
	expect_eq "$1: exit status" "$?" 0
}

stamp='[0-9]\{4\}-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9][0-9][0-9]Z'

# ---- text ---------------------------------------------------------------------
run text text info text
# every line is a log line, or a line of a statistics table after its summary
python3 - "$T/text.err" <<'PY' && ok || fail "text: not all log lines: $(cat "$T/text.err")"
import re, sys
line = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (error|warn|info|debug) porch: ")
table = False
for l in open(sys.argv[1]).read().splitlines():
    if line.match(l):
        table = " porch: pipeline 'logs' after " in l
        continue
    assert table, "not a log line: " + l
PY
grep -q "^$stamp info porch: stage 'ingress': listening on 127.0.0.1:" "$T/text.err" && ok ||
    fail "text: the listening line: $(head -3 "$T/text.err")"
grep -q "^$stamp info porch: stage 'ingress': request [0-9]* (session alice, request-id bad-2): /v1/chat/completions failed: " "$T/text.err" &&
    ok || fail "text: the failed request's line: $(grep bad-2 "$T/text.err")"
grep -q "^$stamp info porch: SIGTERM: draining" "$T/text.err" && ok || fail "text: the drain line"
expect_eq "text: two statistics tables (SIGUSR1, exit)" "$(grep -c '^stage  *plugin  *in' "$T/text.err")" 2
# the access log, text: the combined format's start, then porch's fields
a="$T/text.access"
expect_eq "access text: one line per request" "$(wc -l < "$a" | tr -d ' ')" 3
grep -q '^127\.0\.0\.1 - - \[[0-9][0-9]/[A-Z][a-z][a-z]/[0-9]\{4\}:[0-9:]*\.[0-9][0-9][0-9] +0000\] "POST /v1/chat/completions HTTP/1\.1" 200 [1-9][0-9]* [1-9][0-9]* [0-9.]* [0-9.]* ok-1 m1 completed$' "$a" &&
    ok || fail "access text: the good request: $(cat "$a")"
grep -q '"POST /v1/chat/completions HTTP/1\.1" 502 [0-9]* [0-9]* [0-9.]* [0-9.]* bad-2 fail failed$' "$a" &&
    ok || fail "access text: the failed request: $(cat "$a")"
grep -q '"GET /healthz HTTP/1\.1" 200 [0-9]* [0-9]* [0-9.]* [0-9.]* health-3 - -$' "$a" &&
    ok || fail "access text: the probe: $(cat "$a")"

# ---- json ----------------------------------------------------------------------
run json json info json
python3 - "$T/json.err" "$T/json.access" <<'PY' && ok || fail "json: $(cat "$T/json.err")"
import json, re, sys
stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
lines = open(sys.argv[1]).read().splitlines()
objs = [json.loads(l) for l in lines]          # every line is JSON
for o in objs:
    assert stamp.match(o["time"]), o
    assert o["level"] in ("error", "warn", "info", "debug"), o
    assert isinstance(o["msg"], str), o
listen = [o for o in objs if o["msg"].startswith("listening on")]
assert listen and listen[0]["stage"] == "ingress", listen
bad = [o for o in objs if "request-id bad-2" in o["msg"]]
assert bad and bad[0]["session"] == "alice" and bad[0]["request"].isdigit(), bad
stats = [o for o in objs if o["msg"] == "statistics"]
assert len(stats) == 2 and stats[-1]["stats"]["accepted"] == 2, stats
assert stats[-1]["stats"]["completed"] == 1 and stats[-1]["stats"]["failed"] == 1
acc = [json.loads(l) for l in open(sys.argv[2]).read().splitlines()]
assert len(acc) == 3, acc
by = {a["request_id"]: a for a in acc}
g = by["ok-1"]
assert g["client"] == "127.0.0.1" and g["method"] == "POST" and g["target"] == "/v1/chat/completions"
assert g["status"] == 200 and g["model"] == "m1" and g["outcome"] == "completed"
assert g["bytes_in"] > 90 and g["bytes_out"] > 100 and 0 <= g["ttfb_ms"] <= g["time_ms"], g
assert g["level"] == "info" and g["stage"] == "ingress" and g["msg"] == "access" and stamp.match(g["time"])
assert by["bad-2"]["status"] == 502 and by["bad-2"]["outcome"] == "failed", by["bad-2"]
assert by["health-3"]["status"] == 200 and by["health-3"]["outcome"] is None and by["health-3"]["model"] is None
PY

# ---- warn -------------------------------------------------------------------------
run warn text warn text
expect_eq "warn: no info line but what SIGUSR1 asked for" \
    "$(grep ' info porch: ' "$T/warn.err" | grep -vc " porch: pipeline 'logs' after ")" 0
expect_eq "warn: the statistics table on SIGUSR1 only" "$(grep -c '^stage ' "$T/warn.err")" 1

# ---- debug: each request's acceptance and outcome ----------------------------------
expect_eq "text at info: no debug line" "$(grep -c ' debug porch: ' "$T/text.err")" 0
run debug json debug json
python3 - "$T/debug.err" <<'PY' && ok || fail "debug: $(grep '"debug"' "$T/debug.err" | head -n 8)"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
dbg = [o for o in lines if o["level"] == "debug"]
acc = [o for o in dbg if o["msg"].startswith("request ") and " accepted " in o["msg"]]
assert len(acc) == 2, acc                       # /healthz is not a pipeline request
assert all(o["stage"] == "ingress" for o in acc), acc
done = [o for o in dbg if o["msg"].endswith(" completed")]
assert len(done) == 1 and done[0]["stage"] == "reply", done
failed = [o for o in dbg if " failed " in o["msg"]]
assert len(failed) == 1 and " in stage failing: " in failed[0]["msg"], failed
assert failed[0].get("session") == "alice", failed
PY

# ---- access log to stderr: log lines --------------------------------------------
mkpipe "$T/se.xml" stderr text
rm -f "$T/port"
"$PORCH" run -q "$T/se.xml" 2> "$T/se.err" &
pid=$!
wait_for 20 test -s "$T/port" || fail "se: porch did not start"
curl -s -o /dev/null -H 'X-Request-Id: se-1' "http://127.0.0.1:$(cat "$T/port")/healthz"
wait_for 10 grep -q 'se-1' "$T/se.err" || fail "se: no access line"
kill -TERM "$pid"; wait "$pid"
grep -q "^$stamp info porch: stage 'ingress': access: 127\.0\.0\.1 - - \[.*\] \"GET /healthz HTTP/1\.1\" 200 .* se-1 - -$" "$T/se.err" &&
    ok || fail "se: the access line: $(grep se-1 "$T/se.err")"

# ---- bad values ----------------------------------------------------------------------
"$PORCH" run --log-format xml "$T/text.xml" > /dev/null 2> "$T/e1"
expect_eq "--log-format xml: exit" "$?" 2
expect_eq "--log-format xml: message" "$(head -1 "$T/e1")" "porch: run: --log-format 'xml': expected text or json"
"$PORCH" run --log-level loud "$T/text.xml" > /dev/null 2> "$T/e2"
expect_eq "--log-level loud: exit" "$?" 2
expect_eq "--log-level loud: message" "$(head -1 "$T/e2")" "porch: run: --log-level 'loud': expected error, warn, info or debug"
mkpipe "$T/noacc.xml" "$T/no/such/dir/access.log" text
"$PORCH" run "$T/noacc.xml" > /dev/null 2> "$T/e3"
expect_eq "access-log in a missing directory: exit" "$?" 1
grep -qF "access-log: cannot open $T/no/such/dir/access.log for appending: No such file or directory" "$T/e3" &&
    ok || fail "access-log in a missing directory: $(cat "$T/e3")"
mkpipe "$T/badfmt.xml" stderr xml
"$PORCH" check "$T/badfmt.xml" > /dev/null 2> "$T/e4"
expect_eq "access-log-format xml: exit" "$?" 2
grep -q "access-log-format" "$T/e4" && ok || fail "access-log-format xml: $(cat "$T/e4")"
finish
