#!/bin/sh
# nats-deliver.sh -- what travels with a message over NATS: its delivery
# count and its deadline.  A request delivered more than max-deliver times
# (its worker node killed twice over) fails typed (transport), through the
# stage's error port at the front, while a job a live node holds for
# several ack waits is renewed in time and never redelivered; a request
# whose deadline passed while it waited in the stream is not worked on by
# the node that pulls it, and ends expired.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/nats-lib.sh"
heavy
nats_start

pipeline() { # NAME CHANNEL-ATTRIBUTES INGRESS-DEADLINE
	cat > "$T/$1.xml" <<XML
<?xml version="1.0"?>
<pipeline name="$1" version="1">
  <worker name="model" plugin="echo"><param name="delay-ms">5</param></worker>
  <stage name="ingress" plugin="http" node="front">
    <param name="listen">127.0.0.1:0</param>
    <param name="port-file">$T/$1.port</param>
    <param name="deadline">$3</param>
  </stage>
  <stage name="infer" plugin="inference" worker="model" node="worker" concurrency="4"/>
  <stage name="reply" plugin="reply" node="front"/>
  <channel from="ingress" to="infer" capacity="16" transport="nats"$2/>
  <channel from="infer" to="reply"/>
  <channel from="infer:error" to="reply"/>
</pipeline>
XML
}

# ---- max-deliver 1: a slow worker holds 3 requests and is killed; the
# node that gets them next fails them, as delivered twice
pipeline md ' ack-wait="1s" max-deliver="1"' 30s
node_start front front "$T/md.xml"
node_start w1 worker --set model.delay-ms=60000 "$T/md.xml"
wait_for 20 test -s "$T/md.port" || { fail "the front did not start: $(cat "$T/front.err")"; finish; }
node_wait front
python3 "$top_srcdir/tests/nats-client.py" "$(cat "$T/md.port")" 3 3 > "$T/client" &
client=$!
wait_for 20 test -s "$T/w1.running" || fail "w1 did not start: $(cat "$T/w1.err")"
holds3() { # w1's statistics table (SIGUSR1): infer holds 3
	kill -USR1 "$(cat "$T/w1.pid")"
	sleep 0.1
	awk '$1 == "infer" && $2 == "inference" { h = $9 } END { exit h != 3 }' "$T/w1.err"
}
wait_for 20 holds3 || fail "w1 never held the 3 requests: $(tail -5 "$T/w1.err")"
kill -9 "$(cat "$T/w1.pid")"
rm -f "$T/w1.pid"
node_start w2 worker "$T/md.xml"
wait "$client"
expect_eq "max-deliver: client" "$(cat "$T/client")" "sent 3 ok 0 shed 0 failed 3 wrong 0"
node_stop front
node_stop w2
expect_eq "max-deliver: front failed" "$(jget "$T/front.json" 's["failed"]')" 3
expect_eq "max-deliver: front books" "$(balanced "$T/front.json")" True
expect_eq "max-deliver: counted on w2" "$(jget "$T/w2.json" 'event(s, "infer/in", "nats_max_deliver")')" 3
expect_eq "max-deliver: w2 did not work on them" "$(jget "$T/w2.json" 'stage(s, "infer")["in"]')" 0
grep -q "transport.*delivered 2 times over NATS" "$T/front.err" && ok ||
    fail "the front did not say why: $(grep -i deliver "$T/front.err")"
# the file changed (ack-wait, capacity): a worker starts on the consumer
# and the stream that exist, and brings them to the file's values
sed 's/ack-wait="1s"/ack-wait="2s"/; s/capacity="16"/capacity="32"/' "$T/md.xml" > "$T/md2.xml"
node_start w4 worker "$T/md2.xml"
wait_for 20 test -s "$T/w4.running" || fail "w4 did not start: $(cat "$T/w4.err")"
node_stop w4

# ---- a job held for 3 ack waits is renewed in time: with max-deliver 1
# a redelivery would fail it, so all 3 complete, once each
pipeline lh ' ack-wait="1s" max-deliver="1"' 30s
node_start front front "$T/lh.xml"
node_start w5 worker --set model.delay-ms=3500 "$T/lh.xml"
wait_for 20 test -s "$T/lh.port" || { fail "the front did not start: $(cat "$T/front.err")"; finish; }
node_wait front
node_wait w5
python3 "$top_srcdir/tests/nats-client.py" "$(cat "$T/lh.port")" 3 3 > "$T/client"
expect_eq "held 3.5 s: client" "$(cat "$T/client")" "sent 3 ok 3 shed 0 failed 0 wrong 0"
node_stop front
node_stop w5
expect_eq "held 3.5 s: no redelivery" "$(jget "$T/w5.json" 'event(s, "infer/in", "nats_max_deliver")')" 0
expect_eq "held 3.5 s: worked on once each" "$(jget "$T/w5.json" 'stage(s, "infer")["in"]')" 3

# ---- a deadline of 1 s passes while the requests wait in the stream (no
# worker node yet): the front ends them as expired, and the node that
# pulls them later does not work on them
pipeline dl '' 1s
node_start front front "$T/dl.xml"
wait_for 20 test -s "$T/dl.port" || { fail "the front did not start: $(cat "$T/front.err")"; finish; }
node_wait front
P=$(cat "$T/dl.port")
python3 "$top_srcdir/tests/nats-client.py" "$P" 3 3 > "$T/client"
expect_eq "deadline: client" "$(cat "$T/client")" "sent 3 ok 0 shed 0 failed 3 wrong 0"
node_start w3 worker "$T/dl.xml"
wait_for 20 test -s "$T/w3.running" || fail "w3 did not start: $(cat "$T/w3.err")"
expired3() { # w3 pulled them and ended them expired
	kill -USR1 "$(cat "$T/w3.pid")"
	sleep 0.1
	grep -q "after .*accepted 3, completed 0, failed 0, shed 0, expired 3, in flight 0" "$T/w3.err"
}
wait_for 20 expired3 || fail "w3 did not expire the 3: $(tail -3 "$T/w3.err")"
node_stop front
node_stop w3
expect_eq "deadline: front expired" "$(jget "$T/front.json" 's["expired"]')" 3
expect_eq "deadline: front books" "$(balanced "$T/front.json")" True
expect_eq "deadline: w3 expired" "$(jget "$T/w3.json" 's["expired"]')" 3
expect_eq "deadline: w3 did not work on them" "$(jget "$T/w3.json" 'stage(s, "infer")["in"]')" 0
finish
