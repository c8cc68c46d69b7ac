#!/bin/sh
# nats-full.sh -- a channel over NATS of capacity 4, no worker node yet.
# A front holds at most 4 requests out, and 4 more wait in its channel:
# with reject the rest are shed at once (503, counted in the channel's
# rejected and in shed); a second front, finding the stream full, sheds
# what it sends (JetStream's refusal, counted the same); with block the
# source is held back (in flight steady, nothing shed).  Once a worker
# node comes every request that was taken is answered.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/nats-lib.sh"
heavy
nats_start

pipeline() { # NAME OVERFLOW
	cat > "$T/$1.xml" <<XML
<?xml version="1.0"?>
<pipeline name="$1" version="1">
  <worker name="model" plugin="echo"><param name="delay-ms">5</param></worker>
  <stage name="ingress" plugin="http" node="front">
    <param name="listen">127.0.0.1:0</param>
    <param name="port-file">$T/$1.port</param>
  </stage>
  <stage name="infer" plugin="inference" worker="model" node="worker" concurrency="16"/>
  <stage name="reply" plugin="reply" node="front"/>
  <channel from="ingress" to="infer" capacity="4" overflow="$2" transport="nats"/>
  <channel from="infer" to="reply"/>
  <channel from="infer:error" to="reply"/>
</pipeline>
XML
}

# reject: front a keeps 4 in the stream and 4 in its channel, sheds 12
pipeline rej reject
node_start fa front --set "ingress.port-file=$T/a.port" "$T/rej.xml"
node_start fb front --set "ingress.port-file=$T/b.port" "$T/rej.xml"
wait_for 20 test -s "$T/a.port" || { fail "front a did not start: $(cat "$T/fa.err")"; finish; }
node_wait fa
wait_for 20 test -s "$T/b.port" || { fail "front b did not start: $(cat "$T/fb.err")"; finish; }
node_wait fb
python3 "$top_srcdir/tests/nats-client.py" "$(cat "$T/a.port")" 20 20 > "$T/client" &
client=$!
shed12() {
	curl -s "127.0.0.1:$(cat "$T/a.port")/metrics" |
	    grep -q '^porch_requests_total{pipeline="rej",outcome="shed"} 12$'
}
wait_for 20 shed12 || fail "12 requests were not shed: $(curl -s "127.0.0.1:$(cat "$T/a.port")/metrics" | grep requests_total)"
# front b's 4 go to a stream that is full: JetStream refuses them
expect_eq "reject: a full stream" \
    "$(python3 "$top_srcdir/tests/nats-client.py" "$(cat "$T/b.port")" 4 4)" \
    "sent 4 ok 0 shed 4 failed 0 wrong 0"
node_start w1 worker "$T/rej.xml"
wait "$client"
expect_eq "reject: client" "$(cat "$T/client")" "sent 20 ok 8 shed 12 failed 0 wrong 0"
node_stop fa
node_stop fb
node_stop w1
expect_eq "reject: shed" "$(jget "$T/fa.json" 's["shed"]')" 12
expect_eq "reject: rejected by the channel" \
    "$(jget "$T/fa.json" 'chan(s, "ingress", "infer")["rejected"]')" 12
expect_eq "reject: books balance" "$(balanced "$T/fa.json")" True
expect_eq "reject (stream full): shed" "$(jget "$T/fb.json" 's["shed"]')" 4
expect_eq "reject (stream full): rejected by the channel" \
    "$(jget "$T/fb.json" 'chan(s, "ingress", "infer")["rejected"]')" 4
expect_eq "reject (stream full): books balance" "$(balanced "$T/fb.json")" True

# block: the front holds the excess back and sheds nothing
pipeline blk block
node_start front front "$T/blk.xml"
wait_for 20 test -s "$T/blk.port" || { fail "the front did not start: $(cat "$T/front.err")"; finish; }
node_wait front
P=$(cat "$T/blk.port")
python3 "$top_srcdir/tests/nats-client.py" "$P" 40 40 > "$T/client" &
client=$!
in_flight() {
	curl -s "127.0.0.1:$P/metrics" > "$T/m"
	sed -n 's/^porch_requests_in_flight{pipeline="blk"} //p' "$T/m"
}
eight() { [ "$(in_flight)" = 8 ]; }
wait_for 20 eight || fail "not 8 in flight (4 out, 4 waiting): $(in_flight)"
sleep 1 # held, not shed, however long it waits; and no more taken in
expect_eq "block: in flight a second later" "$(in_flight)" 8
grep -q '^porch_requests_total{pipeline="blk",outcome="shed"} [1-9]' "$T/m" &&
    fail "block shed requests" || ok
node_start w1 worker "$T/blk.xml"
wait "$client"
expect_eq "block: client" "$(cat "$T/client")" "sent 40 ok 40 shed 0 failed 0 wrong 0"
node_stop front
node_stop w1
expect_eq "block: shed" "$(jget "$T/front.json" 's["shed"]')" 0
expect_eq "block: books balance" "$(balanced "$T/front.json")" True
finish
