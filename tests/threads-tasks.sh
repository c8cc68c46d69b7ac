#!/bin/sh
# threads-tasks.sh -- tasks with threads="2": a task submitted on one shard
# is found, listed, streamed and cancelled from either (every request here
# is a new connection, which the kernel gives to either shard).
. "$top_srcdir/tests/lib.sh"
heavy

command -v curl > /dev/null || { echo "curl is not installed" >&2; exit 1; }
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

cat > "$T/tasks.xml" <<XML
<?xml version="1.0"?>
<pipeline name="tasks2" version="1" threads="2">
  <worker name="model" plugin="echo"><param name="delay-ms">6s</param></worker>
  <stage name="ingress" plugin="http">
    <param name="listen">127.0.0.1:0</param><param name="port-file">$T/port</param>
  </stage>
  <stage name="infer" plugin="inference" worker="model" concurrency="64"/>
  <stage name="reply" plugin="reply"/>
  <channel from="ingress" to="infer"/>
  <channel from="infer" to="reply"/>
  <channel from="infer:error" to="reply"/>
</pipeline>
XML
"$PORCH" run --pid-file "$T/pid" --stats-json "$T/s.json" "$T/tasks.xml" \
    > /dev/null 2> "$T/err" 8>&- &
bg=$!
watchers=
trap 'kill "$bg" $watchers 2> /dev/null; rm -rf "$T"' EXIT
wait_for 20 test -s "$T/pid" || { fail "porch did not start: $(cat "$T/err")"; finish; }
U="http://127.0.0.1:$(cat "$T/port")"

# 12 tasks, each submitted on a new connection
ids=
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
	curl -s -S "$U/v1/tasks" -d '{"name":"t'$i'","payload":"'"$(printf 'task %s' $i | base64)"'"}' \
	    > "$T/b" 2>&1
	id=$(sed -n 's/.*"task_id":"\([^"]*\)".*/\1/p' "$T/b")
	[ -n "$id" ] && ok || fail "submit $i: $(cat "$T/b")"
	ids="$ids $id"
done
# each one's events, watched from a new connection (either shard)
for id in $ids; do
	curl -s -N --max-time 20 "$U/v1/tasks/$id/events" > "$T/ev.$id" 2>&1 &
	watchers="$watchers $!"
done
# the first 6 cancelled, from new connections
n=0
for id in $ids; do
	n=$((n + 1))
	[ "$n" -le 6 ] || break
	expect_eq "DELETE $id: status" "$(curl -s -o "$T/d" -w '%{http_code}' -X DELETE "$U/v1/tasks/$id")" 200
done
# each one found from 4 new connections: every one answers 200, with it
for id in $ids; do
	for k in 1 2 3 4; do
		code=$(curl -s -o "$T/g" -w '%{http_code}' "$U/v1/tasks/$id")
		[ "$code" = 200 ] && grep -q "\"task_id\":\"$id\"" "$T/g" && ok ||
		    fail "GET $id (try $k): $code $(cat "$T/g")"
	done
done
# the list has all 12, from whichever shard answers it
for k in 1 2 3; do
	curl -s "$U/v1/tasks?limit=100" > "$T/list"
	expect_eq "list (try $k): tasks" "$(grep -o '"task_id":"[^"]*"' "$T/list" | wc -l | tr -d ' ')" 12
done
# every watcher's stream ends with the outcome: 6 failed (cancelled), 6 completed
for w in $watchers; do
	wait "$w"
done
watchers=
n=0
for id in $ids; do
	n=$((n + 1))
	grep -q '^event: outcome' "$T/ev.$id" && ok || fail "events of $id: no outcome: $(cat "$T/ev.$id")"
	if [ "$n" -le 6 ]; then
		grep '^data: .*"type":"outcome"' "$T/ev.$id" | grep -q '"code":"cancelled"' && ok ||
		    fail "events of $id: not cancelled: $(tail -2 "$T/ev.$id")"
	else
		grep '^data: .*"type":"outcome"' "$T/ev.$id" | grep -q '"status":"completed"' && ok ||
		    fail "events of $id: not completed: $(tail -2 "$T/ev.$id")"
	fi
done
kill -TERM "$(cat "$T/pid")"
wait "$bg"
expect_eq "exit status" "$?" 0
python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
assert d["accepted"] == 12 and d["completed"] == 6 and d["failed"] == 6, d
assert all(s["accepted"] > 0 for s in d["shards"]), d["shards"]' "$T/s.json" 2> "$T/py" && ok ||
    fail "the tasks did not spread over both shards, or the books are off: $(cat "$T/py")"

finish
