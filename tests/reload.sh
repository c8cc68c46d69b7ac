#!/bin/sh
# reload.sh -- the pipeline changes under load without dropping a request.
#
# pipelines/server.xml serves wrk's steady load (non-streamed chat
# completions on keep-alive connections) and a client that streams answers
# one after the other, while the file is changed and reloaded 20 times:
# valid changes (SIGHUP, waited on through the pid file's .reload status)
# alternate with an invalid file (porch reload, which must say it failed).
# Required: wrk saw no socket error and no non-2xx answer, every streamed
# answer is whole and equal to the non-streamed one, the totals add up
# (accepted = completed + failed + shed + expired; what failed is what
# wrk cancelled by leaving at its end, and nothing expired), the
# metrics count the reloads, and the process holds as many descriptors
# after the reloads as before, with about as much memory.
. "$top_srcdir/tests/lib.sh"
heavy

command -v wrk > /dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
command -v curl > /dev/null || { echo "curl is not installed" >&2; exit 1; }
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

# the example as it is, beside the corpus its relative path names
mkdir "$T/pipelines"
ln -s "$(cd "$top_srcdir" && pwd)/share" "$T/share"
F=$T/pipelines/server.xml
sed 's#127.0.0.1:8080#127.0.0.1:0#' "$top_srcdir/pipelines/server.xml" > "$F.good"
cp "$F.good" "$F"
grep -q '<param name="max-length">16k</param>' "$F" ||
    { fail "pipelines/server.xml no longer sets post's max-length to 16k"; finish; }

"$PORCH" run -q --set "ingress.port-file=$T/port" --pid-file "$T/pid" \
    --stats-json "$T/s.json" "$F" > /dev/null 2> "$T/err" &
pid=$!
pids=$pid
trap 'for p in $pids; do kill "$p" 2> /dev/null; done; rm -rf "$T"' EXIT
wait_for 20 test -s "$T/pid" || { fail "porch did not start: $(cat "$T/err")"; finish; }
wait_for 20 test -s "$T/port" || { fail "porch did not listen: $(cat "$T/err")"; finish; }
U="http://127.0.0.1:$(cat "$T/port")"

body='{"model":"echo","messages":[{"role":"user","content":"what is a dead letter?"}]'
curl -s -S -H 'Content-Type: application/json' -d "$body}" "$U/v1/chat/completions" > "$T/whole"
want=$(sed -n 's/.*"message":{"role":"assistant","content":"\([^"]*\)".*/\1/p' "$T/whole")
[ -n "$want" ] && ok || { fail "no answer before the reloads: $(cat "$T/whole")"; finish; }

# stream: one streamed answer; its content deltas joined, "(unfinished)"
# unless it ended with finish_reason stop and [DONE]
stream() {
	curl -s -S -N -H 'Content-Type: application/json' -d "$body,\"stream\":true}" \
	    "$U/v1/chat/completions" | awk '
	/^data: \{/ {
		if (match($0, /"delta":\{("role":"assistant",)?"content":"[^"]*"/)) {
			v = substr($0, RSTART, RLENGTH)
			sub(/^"delta":\{("role":"assistant",)?"content":"/, "", v)
			text = text substr(v, 1, length(v) - 1)
		}
		if (index($0, "\"finish_reason\":\"stop\""))
			done = 1
	}
	/^data: \[DONE\]$/ { if (done == 1) done = 2 }
	END { print (done == 2 ? "" : "(unfinished) ") text }'
}

fds() { ls "/proc/$pid/fd" | wc -l; }
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status"; }
# status N: the pid file's reload status reached attempt N
status() { [ "$(cut -d' ' -f1 "$T/pid.reload" 2> /dev/null)" = "$1" ]; }

cat > "$T/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body}'
wrk.headers["Content-Type"] = "application/json"
LUA

# warm up: load, and two reloads, so what is made once is made
wrk -t1 -c16 -d2s -s "$T/post.lua" "$U/v1/chat/completions" > "$T/wrk0" 2>&1
kill -HUP "$pid"
wait_for 20 status 1 || fail "the first SIGHUP got no answer: $(cat "$T/err")"
"$PORCH" reload "$T/pid" > "$T/reload.out" 2>&1 || fail "porch reload: $(cat "$T/reload.out")"
idle() {
	curl -s "$U/metrics" > "$T/m" && grep -q '^porch_requests_in_flight{pipeline="server"} 0$' "$T/m"
}
wait_for 10 idle || fail "requests still in flight after the warm-up"
fds0=$(fds)
rss0=$(rss)

wrk -t2 -c32 -d20s -s "$T/post.lua" "$U/v1/chat/completions" > "$T/wrk" 2>&1 &
wrk_pid=$!
pids="$pids $wrk_pid"
: > "$T/streams"
( while [ ! -e "$T/stop" ]; do stream >> "$T/streams"; done ) &
streamer=$!
pids="$pids $streamer"
# the load runs before the first reload, and the streams too
wait_for 10 test -s "$T/streams" || fail "no stream ended before the reloads"

n=2
for i in 1 2 3 4 5 6 7 8 9 10; do
	# a valid change: post's max-length, which the answers fit either way
	sed "s#<param name=\"max-length\">16k#<param name=\"max-length\">$((16 - i % 2))k#" \
	    "$F.good" > "$F.new" && mv "$F.new" "$F"
	n=$((n + 1))
	kill -HUP "$pid"
	wait_for 30 status "$n" || fail "reload $n got no answer"
	grep -q "^$n ok " "$T/pid.reload" && ok || fail "reload $n: $(cat "$T/pid.reload")"
	# an invalid file: refused, and the running pipeline goes on
	sed 's#<param name="top-k">2#<param name="top-k">two#' "$F.good" > "$F.new" && mv "$F.new" "$F"
	n=$((n + 1))
	"$PORCH" reload --timeout 30s "$T/pid" > "$T/reload.out" 2>&1
	expect_eq "reload $n (an invalid file): porch reload's exit status" "$?" 1
	grep -q "is not valid" "$T/reload.out" && ok || fail "reload $n: $(cat "$T/reload.out")"
	# and the error itself, at its place, not only "1 error above"
	grep -q "^$F:[0-9]*:[0-9]*: error: .*top-k" "$T/reload.out" && ok ||
	    fail "reload $n: porch reload does not print the file's error: $(cat "$T/reload.out")"
done
kill -0 "$wrk_pid" 2> /dev/null && ok ||
    fail "the 20 reloads outlasted wrk's 20 s: they were not under load"
wait "$wrk_pid"
expect_eq "wrk: exit status" "$?" 0
touch "$T/stop"
wait "$streamer"
grep -q "Socket errors" "$T/wrk" && fail "wrk: $(cat "$T/wrk")" || ok
grep -q "Non-2xx" "$T/wrk" && fail "wrk: $(cat "$T/wrk")" || ok
total=$(awk '/requests in/ { print $1 }' "$T/wrk")
[ "${total:-0}" -gt 100 ] && ok || fail "wrk made few requests: $(cat "$T/wrk")"
nstreams=$(wc -l < "$T/streams")
[ "$nstreams" -ge 10 ] && ok || fail "only $nstreams streams during the reloads"
bad=$(grep -c -v -x -F -e "$want" "$T/streams")
expect_eq "streamed answers not whole or not equal to the non-streamed one" "$bad" 0

# the file's error reached the log as porch check gives it
grep -q "server.xml:[0-9]*:[0-9]*: error: stage 'rag' (plugin rag): parameter 'top-k'" "$T/err" &&
    ok || fail "the invalid file's error is not in the log: $(tail -n 5 "$T/err")"

wait_for 30 idle || fail "requests still in flight after the load"
grep -q '^porch_reloads_total{pipeline="server",result="ok"} 12$' "$T/m" && ok ||
    fail "metrics: $(grep reloads_total "$T/m")"
grep -q '^porch_reloads_total{pipeline="server",result="failed"} 10$' "$T/m" && ok ||
    fail "metrics: $(grep reloads_total "$T/m")"
# wrk leaves with requests in flight, which fail as cancelled (499):
# nothing else may fail
n499=$(sed -n 's/^porch_http_requests_total{.*code="499".*} //p' "$T/m" | awk '{ s += $1 } END { print s + 0 }')
[ "$n499" -le 48 ] && ok || fail "$n499 requests whose client left: more than wrk's 16 + 32 connections"
# the replaced pipelines are freed: their descriptors close
back() { [ "$(fds)" -le "$fds0" ]; }
wait_for 20 back || fail "descriptors: $fds0 before the reloads, $(fds) after: $(ls -l /proc/$pid/fd)"
rss1=$(rss)
case "${CFLAGS:-}" in
*-fsanitize=address*) ;; # ASan keeps freed memory in quarantine: RSS says nothing
*) [ "$rss1" -le $((rss0 + 4096)) ] && ok ||
    fail "memory grew from $rss0 kB to $rss1 kB over 20 reloads" ;;
esac
echo "descriptors $fds0 -> $(fds), RSS $rss0 kB -> $rss1 kB, $total requests, $nstreams streams"

kill -TERM "$pid"
wait "$pid"
expect_eq "SIGTERM: exit status" "$?" 0
accepted=$(json_get "$T/s.json" accepted)
sum=$(( $(json_get "$T/s.json" completed) + $(json_get "$T/s.json" failed) + \
    $(json_get "$T/s.json" shed) + $(json_get "$T/s.json" expired) ))
expect_eq "accepted = completed + failed + shed + expired" "$sum" "$accepted"
expect_eq "failed (only the requests wrk left)" "$(json_get "$T/s.json" failed)" "$n499"
expect_eq "expired" "$(json_get "$T/s.json" expired)" 0
[ "$accepted" -ge "$total" ] && ok || fail "accepted $accepted < wrk's $total"

# tasks go on across a reload: one submitted before it is found after it,
# its events stream to the end, and once the old pipeline is gone the new
# one still answers for it
cat > "$T/tasks.xml" <<XML
<?xml version="1.0"?>
<pipeline name="tasks" version="1">
  <worker name="model" plugin="echo"><param name="delay-ms">1500</param></worker>
  <stage name="ingress" plugin="http">
    <param name="listen">127.0.0.1:0</param>
    <param name="port-file">$T/tport</param>
  </stage>
  <stage name="infer" plugin="inference" worker="model"/>
  <stage name="reply" plugin="reply"/>
  <channel from="ingress" to="infer"/>
  <channel from="infer" to="reply"/>
  <channel from="infer:error" to="reply"/>
</pipeline>
XML
"$PORCH" run -q --pid-file "$T/tpid" "$T/tasks.xml" > /dev/null 2> "$T/terr" &
tpid=$!
pids="$pids $tpid"
wait_for 20 test -s "$T/tport" || { fail "tasks: porch did not start: $(cat "$T/terr")"; finish; }
wait_for 20 test -s "$T/tpid" || fail "tasks: no pid file"
TU="http://127.0.0.1:$(cat "$T/tport")"
curl -s -S -d "{\"payload\":\"$(printf 'across a reload' | base64)\"}" "$TU/v1/tasks" > "$T/task"
tid=$(sed -n 's/.*"task_id":"\([^"]*\)".*/\1/p' "$T/task")
[ -n "$tid" ] && ok || fail "tasks: no task id: $(cat "$T/task")"
"$PORCH" reload "$T/tpid" > "$T/treload" 2>&1 || fail "tasks: reload: $(cat "$T/treload")"
grep -q "finishes its 1 requests in flight" "$T/treload" && ok ||
    fail "tasks: the task was not in flight at the reload: $(cat "$T/treload")"
curl -s -S "$TU/v1/tasks/$tid" > "$T/task"
grep -q '"status":"running"' "$T/task" && ok || fail "tasks: after the reload: $(cat "$T/task")"
curl -s -S -N --max-time 10 "$TU/v1/tasks/$tid/events" > "$T/tev"
grep -q '"type":"outcome","status":"completed"' "$T/tev" && ok || fail "tasks: events: $(cat "$T/tev")"
# the old pipeline ends with its task; the task stays
sleep_until_freed() { curl -s "$TU/metrics" | grep -q '^porch_requests_in_flight{pipeline="tasks"} 0$'; }
wait_for 10 sleep_until_freed || fail "tasks: still in flight"
"$PORCH" reload "$T/tpid" > /dev/null 2>&1 || fail "tasks: second reload"
curl -s -S "$TU/v1/tasks/$tid" > "$T/task"
grep -q '"status":"completed".*"result":"across a reload"' "$T/task" && ok ||
    fail "tasks: after the old pipeline ended: $(cat "$T/task")"
kill -TERM "$tpid"
wait "$tpid"
expect_eq "tasks: exit status" "$?" 0

finish
