#!/bin/sh
# nats.sh -- a channel over NATS JetStream (porch.xml(5) NATS): one front
# node (http -> [nats] -> reply) and two worker nodes pulling the same
# durable consumer.  Both workers get a share, every answer comes back to
# the front's HTTP client, streamed ones piece by piece, also across a
# reload (SIGHUP) of the front and of a worker, and the books balance on
# every node.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/nats-lib.sh"
heavy
nats_start

cat > "$T/c.xml" <<XML
<?xml version="1.0"?>
<pipeline name="nt" version="1">
  <worker name="model" plugin="echo">
    <param name="delay-ms">5</param>
    <param name="token-delay-ms">1</param>
  </worker>
  <stage name="ingress" plugin="http" node="front">
    <param name="listen">127.0.0.1:0</param>
    <param name="port-file">$T/port</param>
  </stage>
  <stage name="infer" plugin="inference" worker="model" node="worker" concurrency="16"/>
  <stage name="reply" plugin="reply" node="front"/>
  <channel from="ingress" to="infer" capacity="256" transport="nats"/>
  <channel from="infer" to="reply"/>
  <channel from="infer:error" to="reply"/>
</pipeline>
XML
"$PORCH" check "$T/c.xml" > /dev/null && ok || fail "porch check refuses the file"
node_start front front "$T/c.xml"
node_start w1 worker "$T/c.xml"
node_start w2 worker "$T/c.xml"
wait_for 20 test -s "$T/port" || { fail "the front did not start: $(cat "$T/front.err")"; finish; }
node_wait front
PORT=$(cat "$T/port")

out=$(python3 "$top_srcdir/tests/nats-client.py" "$PORT" 600 24)
expect_eq "600 answers" "$out" "sent 600 ok 600 shed 0 failed 0 wrong 0"
# a reload of the front and of a worker in the middle of the streamed
# ones: the new graphs connect and pull anew, the old ones finish theirs
wait_for 20 test -s "$T/front.running" || fail "the front does not handle signals"
wait_for 20 test -s "$T/w1.running" || fail "w1 does not handle signals"
python3 "$top_srcdir/tests/nats-client.py" "$PORT" 200 16 --stream --words 6 > "$T/client" &
client=$!
progress() {
	curl -s "127.0.0.1:$PORT/metrics" |
	    awk '/^porch_requests_total\{.*completed/ { if ($2 >= 650) ok = 1 } END { exit !ok }'
}
wait_for 30 progress || fail "no progress before the reload"
kill -HUP "$(cat "$T/front.pid")" "$(cat "$T/w1.pid")"
wait "$client"
expect_eq "200 streamed answers, across reloads" "$(cat "$T/client")" \
    "sent 200 ok 200 shed 0 failed 0 wrong 0"

# a streamed answer comes in pieces, as the model made them: one event a word
n=$(curl -s -N 127.0.0.1:$PORT/v1/chat/completions -H 'Content-Type: application/json' \
    -d '{"model":"m","stream":true,"messages":[{"role":"user","content":"one two three four five"}]}' |
    grep -c '"content":"[ a-z]')
[ "$n" -ge 3 ] && ok || fail "a streamed answer came in $n pieces, want one a word or so"

node_stop front
node_stop w1
node_stop w2
a=$(jget "$T/front.json" 's["accepted"]')
expect_eq "front: accepted" "$a" 801
expect_eq "front: completed" "$(jget "$T/front.json" 's["completed"]')" 801
expect_eq "front: books balance" "$(balanced "$T/front.json")" True
w1=$(jget "$T/w1.json" 'stage(s, "infer")["in"]')
w2=$(jget "$T/w2.json" 'stage(s, "infer")["in"]')
[ $((w1 + w2)) -ge 801 ] && ok || fail "the workers took $w1 + $w2 requests, want 801"
[ "$w1" -ge 80 ] && [ "$w2" -ge 80 ] && ok || fail "one worker did (almost) nothing: $w1 and $w2"
expect_eq "w1: books balance" "$(balanced "$T/w1.json")" True
expect_eq "w2: books balance" "$(balanced "$T/w2.json")" True
expect_eq "front: no late answer" "$(jget "$T/front.json" 'event(s, "infer", "nats_late_answers")')" 0
expect_eq "front: reloaded" "$(jget "$T/front.json" 's["reloads"]')" 1
expect_eq "w1: reloaded" "$(jget "$T/w1.json" 's["reloads"]')" 1
finish
