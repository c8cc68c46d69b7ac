#!/bin/sh
# nats-cut.sh -- the front's connection to nats-server cut (through a proxy
# the test controls) while worker nodes, connected directly, work on its
# requests: the answers they send meanwhile go to no one and are lost, and
# the stream no longer holds their messages (acked).  When the front is
# back it checks what it still waits for and publishes again, with a new
# id, each message the stream no longer holds: every request completes,
# with the right text, once, and the books balance.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/nats-lib.sh"
heavy
nats_start

python3 "$top_srcdir/tests/nats-proxy.py" "$T/pp" "$T/pstate" "$NATS_PORT" 8>&- \
    2> "$T/proxy.err" &
echo $! > "$T/proxy.pid"
wait_for 20 test -s "$T/pp" || { fail "the proxy did not start: $(cat "$T/proxy.err")"; finish; }
PP=$(cat "$T/pp")

cat > "$T/c.xml" <<XML
<?xml version="1.0"?>
<pipeline name="nc" version="1">
  <worker name="model" plugin="echo"><param name="delay-ms">300</param></worker>
  <stage name="ingress" plugin="http" node="front">
    <param name="listen">127.0.0.1:0</param>
    <param name="port-file">$T/port</param>
    <param name="deadline">25s</param>
  </stage>
  <stage name="infer" plugin="inference" worker="model" node="worker" concurrency="8"/>
  <stage name="reply" plugin="reply" node="front"/>
  <channel from="ingress" to="infer" capacity="256" transport="nats" ack-wait="10s"/>
  <channel from="infer" to="reply"/>
  <channel from="infer:error" to="reply"/>
</pipeline>
XML
direct=$NATS_URL
NATS_URL="nats://127.0.0.1:$PP"
node_start front front "$T/c.xml"
NATS_URL=$direct
node_start w1 worker "$T/c.xml"
node_start w2 worker "$T/c.xml"
wait_for 20 test -s "$T/port" || { fail "the front did not start: $(cat "$T/front.err")"; finish; }
node_wait front
node_wait w1
node_wait w2
PORT=$(cat "$T/port")

N=300
python3 "$top_srcdir/tests/nats-client.py" "$PORT" $N 24 --ids "$T/ids" --fails "$T/fails" \
    > "$T/client" 2> "$T/client.err" &
client=$!
wait_for 60 completed_at_least "$PORT" 60 || fail "no progress before the cut"
kill -USR1 "$(cat "$T/proxy.pid")"
wait_for 10 grep -q "^cut" "$T/pstate" || fail "the proxy did not cut"
# away longer than the workers take (300 ms): what they had is answered
# and acked meanwhile, its answers lost
sleep 1
kill -USR2 "$(cat "$T/proxy.pid")"
wait_for 10 grep -q "^up" "$T/pstate" || fail "the proxy did not listen again"
wait "$client"
expect_eq "$N answers, none lost" "$(cat "$T/client")" "sent $N ok $N shed 0 failed 0 wrong 0"
test -s "$T/fails" && echo "failed: $(head -3 "$T/fails")"
expect_eq "each request answered once" "$(sort -u "$T/ids" | wc -l | tr -d ' ')" "$N"
node_stop front
node_stop w1
node_stop w2
expect_eq "front: accepted" "$(jget "$T/front.json" 's["accepted"]')" $N
expect_eq "front: completed" "$(jget "$T/front.json" 's["completed"]')" $N
expect_eq "front: books balance" "$(balanced "$T/front.json")" True
rep=$(jget "$T/front.json" 'event(s, "infer", "nats_republished")')
late=$(jget "$T/front.json" 'event(s, "infer", "nats_late_answers")')
echo "front: republished $rep (answers lost while away), late answers $late"
[ "$rep" -ge 1 ] && ok || fail "no answer was lost while the front was away: the test proves nothing"
worked=$(( $(jget "$T/w1.json" 'stage(s, "infer")["in"]') + $(jget "$T/w2.json" 'stage(s, "infer")["in"]') ))
expect_eq "workers: each request worked on once, plus once per republished one" \
    "$worked" "$((N + rep))"
finish
