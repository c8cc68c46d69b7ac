#!/bin/sh
# nats-cluster.sh -- pipelines/cluster.xml as shipped, on a NATS server of
# its own: a front node and two queue-worker nodes.  Short prompts are
# answered by the front's model, long ones by the workers (each gets a
# share), streamed; every answer is right and the books balance.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/nats-lib.sh"
heavy
nats_start
X="$top_srcdir/pipelines/cluster.xml"
node_start front front --set ingress.listen=127.0.0.1:0 --set "ingress.port-file=$T/port" "$X"
node_start w1 worker "$X"
node_start w2 worker "$X"
wait_for 20 test -s "$T/port" || { fail "the front did not start: $(cat "$T/front.err")"; finish; }
node_wait front
P=$(cat "$T/port")
out=$(python3 "$top_srcdir/tests/nats-client.py" "$P" 300 16 --words 4)
expect_eq "300 short prompts" "$out" "sent 300 ok 300 shed 0 failed 0 wrong 0"
out=$(python3 "$top_srcdir/tests/nats-client.py" "$P" 300 32 --words 20 --stream)
expect_eq "300 long prompts, streamed" "$out" "sent 300 ok 300 shed 0 failed 0 wrong 0"
node_stop front
node_stop w1
node_stop w2
expect_eq "front: local took the short ones" "$(jget "$T/front.json" 'stage(s, "local")["in"]')" 300
expect_eq "front: the queue's stand-in took the long ones" \
    "$(jget "$T/front.json" 'stage(s, "queue")["in"]')" 300
expect_eq "front: completed" "$(jget "$T/front.json" 's["completed"]')" 600
expect_eq "front: books balance" "$(balanced "$T/front.json")" True
w1=$(jget "$T/w1.json" 'stage(s, "queue")["in"]')
w2=$(jget "$T/w2.json" 'stage(s, "queue")["in"]')
expect_eq "workers: every long one" "$((w1 + w2))" 300
[ "$w1" -ge 30 ] && [ "$w2" -ge 30 ] && ok || fail "one worker did (almost) nothing: $w1 and $w2"
finish
