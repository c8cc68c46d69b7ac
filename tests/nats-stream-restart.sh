#!/bin/sh
# nats-stream-restart.sh -- the NATS server stopped and started again while
# answers stream home token by token: pieces that were on their way may be
# lost (core NATS is at most once), and the home node finds out (each
# piece is numbered, the end says how many were sent): every client's
# streamed text is the whole answer, or its request failed with a typed
# error; never a stream with a gap.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/nats-lib.sh"
heavy
nats_start

cat > "$T/c.xml" <<XML
<?xml version="1.0"?>
<pipeline name="ns" version="1">
  <worker name="model" plugin="echo"><param name="token-delay-ms">15</param></worker>
  <stage name="ingress" plugin="http" node="front">
    <param name="listen">127.0.0.1:0</param>
    <param name="port-file">$T/port</param>
    <param name="deadline">30s</param>
  </stage>
  <stage name="infer" plugin="inference" worker="model" node="worker" concurrency="32"/>
  <stage name="reply" plugin="reply" node="front"/>
  <channel from="ingress" to="infer" capacity="512" transport="nats" ack-wait="5s"/>
  <channel from="infer" to="reply"/>
  <channel from="infer:error" to="reply"/>
</pipeline>
XML
node_start front front "$T/c.xml"
node_start w1 worker "$T/c.xml"
wait_for 20 test -s "$T/port" || { fail "the front did not start: $(cat "$T/front.err")"; finish; }
node_wait front
node_wait w1
PORT=$(cat "$T/port")

python3 "$top_srcdir/tests/nats-client.py" "$PORT" 400 32 --stream --words 30 \
    --fails "$T/fails" > "$T/client" 2> "$T/client.err" &
client=$!
wait_for 60 completed_at_least "$PORT" 60 || fail "no progress before the restart"
kill -9 "$nats_pid" # abruptly: what it had on its way is lost
wait "$nats_pid" 2> /dev/null
sleep 1 # the server is away for a while, in the middle of streams
nats_start "$NATS_PORT"
wait "$client"
echo "client: $(cat "$T/client"); failures: $(sort "$T/fails" | cut -c1-120 | uniq -c | head -5)"
expect_eq "no stream with a gap" "$(awk '{ print $10 }' "$T/client")" 0
expect_eq "every request answered" "$(awk '{ print $4 + $8 }' "$T/client")" 400
# each failure is typed: an error with its code
expect_eq "every failure typed" "$(grep -vc '"code":"[a-z_]*"' "$T/fails")" 0
node_stop front
node_stop w1
expect_eq "front: accepted" "$(jget "$T/front.json" 's["accepted"]')" 400
expect_eq "front: books balance" "$(balanced "$T/front.json")" True
echo "front: holes mended $(jget "$T/front.json" 'event(s, "infer", "nats_pieces_mended")'), lost $(jget "$T/front.json" 'event(s, "infer", "nats_pieces_lost")')"
finish
