#!/bin/sh
# nats-orphan.sh -- the sending node killed (kill -9) while a worker node
# works on its requests: the worker's answers have no one to go home to;
# they are dropped and counted (nats_orphaned on infer/in, in /metrics and
# the statistics), and the worker goes on serving a new front.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/nats-lib.sh"
heavy
nats_start

cat > "$T/c.xml" <<XML
<?xml version="1.0"?>
<pipeline name="no" version="1">
  <worker name="model" plugin="echo"><param name="delay-ms">1500</param></worker>
  <stage name="ingress" plugin="http" node="front">
    <param name="listen">127.0.0.1:0</param>
    <param name="port-file">$T/port</param>
  </stage>
  <stage name="infer" plugin="inference" worker="model" node="worker" concurrency="4"/>
  <stage name="reply" plugin="reply" node="front"/>
  <channel from="ingress" to="infer" capacity="16" transport="nats"/>
  <channel from="infer" to="reply"/>
  <channel from="infer:error" to="reply"/>
</pipeline>
XML
# the worker, with a control listener to see what it holds and counts
"$PORCH" run --node worker --nats-url "$NATS_URL" --control 127.0.0.1:0 \
    --pid-file "$T/w.running" --stats-json "$T/w.json" "$T/c.xml" \
    8>&- > "$T/w.out" 2> "$T/w.err" &
echo $! > "$T/w.pid"
node_wait w
wait_for 20 grep -q "control: listening on 127.0.0.1:" "$T/w.err" ||
    { fail "no control port: $(cat "$T/w.err")"; finish; }
WP=$(sed -n 's/.*control: listening on 127.0.0.1:\([0-9]*\) .*/\1/p' "$T/w.err")
worker_holds() { [ "$(metric "$WP" 'porch_requests_in_flight{pipeline="no"}')" = "$1" ]; }
orphaned() {
	[ "$(metric "$WP" 'porch_stage_events_total{stage="infer/in",event="nats_orphaned"}')" = "$1" ]
}

node_start f1 front "$T/c.xml"
node_wait f1
wait_for 20 test -s "$T/port" || { fail "the front did not start: $(cat "$T/f1.err")"; finish; }
python3 "$top_srcdir/tests/nats-client.py" "$(cat "$T/port")" 4 4 > "$T/client1" 2>&1 &
client=$!
wait_for 20 worker_holds 4 || fail "the worker does not work on the 4: $(curl -s "127.0.0.1:$WP/metrics" | grep in_flight)"
kill -9 "$(cat "$T/f1.pid")"
rm -f "$T/f1.pid" "$T/port"
wait "$client"
expect_eq "the first front's clients: no answer" "$(head -n 1 "$T/client1")" \
    "sent 4 ok 0 shed 0 failed 4 wrong 0"
wait_for 30 orphaned 4 ||
    fail "4 answers not counted orphaned: $(curl -s "127.0.0.1:$WP/metrics" | grep -i "nats\|in_flight")"
wait_for 20 worker_holds 0 || fail "the worker still holds requests"

# a new front: the same worker serves it
node_start f2 front "$T/c.xml"
node_wait f2
wait_for 20 test -s "$T/port" || { fail "the second front did not start: $(cat "$T/f2.err")"; finish; }
expect_eq "the second front is served" \
    "$(python3 "$top_srcdir/tests/nats-client.py" "$(cat "$T/port")" 6 6)" \
    "sent 6 ok 6 shed 0 failed 0 wrong 0"
node_stop f2
node_stop w
expect_eq "worker: orphaned (statistics)" "$(jget "$T/w.json" 'event(s, "infer/in", "nats_orphaned")')" 4
expect_eq "worker: accepted" "$(jget "$T/w.json" 's["accepted"]')" 10
expect_eq "worker: books balance" "$(balanced "$T/w.json")" True
expect_eq "second front: completed" "$(jget "$T/f2.json" 's["completed"]')" 6
expect_eq "second front: books balance" "$(balanced "$T/f2.json")" True
finish
