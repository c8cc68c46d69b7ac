#!/bin/sh
# nats-restart.sh -- the NATS server stopped and started again (same port,
# same store) in the middle of a load: the nodes reconnect, the publishes
# the server missed are sent again (deduplicated by Nats-Msg-Id), answers
# it missed are sent home again, and no request is lost.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/nats-lib.sh"
heavy
nats_start

cat > "$T/c.xml" <<XML
<?xml version="1.0"?>
<pipeline name="nr" version="1">
  <worker name="model" plugin="echo"><param name="delay-ms">5</param></worker>
  <stage name="ingress" plugin="http" node="front">
    <param name="listen">127.0.0.1:0</param>
    <param name="port-file">$T/port</param>
    <param name="deadline">60s</param>
  </stage>
  <stage name="infer" plugin="inference" worker="model" node="worker" concurrency="16"/>
  <stage name="reply" plugin="reply" node="front"/>
  <channel from="ingress" to="infer" capacity="512" transport="nats" ack-wait="5s"/>
  <channel from="infer" to="reply"/>
  <channel from="infer:error" to="reply"/>
</pipeline>
XML
node_start front front "$T/c.xml"
node_start w1 worker "$T/c.xml"
node_start w2 worker "$T/c.xml"
wait_for 20 test -s "$T/port" || { fail "the front did not start: $(cat "$T/front.err")"; finish; }
node_wait front
PORT=$(cat "$T/port")

python3 "$top_srcdir/tests/nats-client.py" "$PORT" 1500 32 > "$T/client" 2> "$T/client.err" &
client=$!
wait_for 60 completed_at_least "$PORT" 300 || fail "no progress before the restart"
nats_stop
sleep 1 # the server is away for a while: what is sent meanwhile waits
nats_start "$NATS_PORT"
wait "$client"
expect_eq "1500 answers, none lost" "$(cat "$T/client")" "sent 1500 ok 1500 shed 0 failed 0 wrong 0"
node_stop front
node_stop w1
node_stop w2
expect_eq "front: accepted" "$(jget "$T/front.json" 's["accepted"]')" 1500
expect_eq "front: completed" "$(jget "$T/front.json" 's["completed"]')" 1500
expect_eq "front: books balance" "$(balanced "$T/front.json")" True
grep -q "nats\|NATS" "$T/front.err" && echo "front said: $(grep -i nats "$T/front.err" | head -3)"
finish
