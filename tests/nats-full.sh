#!/bin/sh
# nats-full.sh -- a full stream (capacity 4, no worker node yet) applies the
# sender's overflow policy as a full local channel does: reject sheds the
# excess (503, counted in the channel's rejected and in shed); block holds
# the source back (nothing shed, counted in held_back), and once a worker
# node comes every request is answered.
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

# reject: 4 fit in the stream, 16 are shed at once
pipeline rej reject
node_start front front "$T/rej.xml"
wait_for 20 test -s "$T/rej.port" || { fail "the front did not start: $(cat "$T/front.err")"; finish; }
python3 "$top_srcdir/tests/nats-client.py" "$(cat "$T/rej.port")" 20 20 > "$T/client" &
client=$!
shed16() {
	curl -s "127.0.0.1:$(cat "$T/rej.port")/metrics" |
	    grep -q '^porch_requests_total{pipeline="rej",outcome="shed"} 16$'
}
wait_for 20 shed16 || fail "16 requests were not shed: $(curl -s "127.0.0.1:$(cat "$T/rej.port")/metrics" | grep requests_total)"
node_start w1 worker "$T/rej.xml"
wait "$client"
expect_eq "reject: client" "$(cat "$T/client")" "sent 20 ok 4 shed 16 failed 0 wrong 0"
node_stop front
node_stop w1
expect_eq "reject: shed" "$(jget "$T/front.json" 's["shed"]')" 16
expect_eq "reject: rejected by the channel" \
    "$(jget "$T/front.json" 'chan(s, "ingress", "infer")["rejected"]')" 16
expect_eq "reject: books balance" "$(balanced "$T/front.json")" True

# block: the front holds the excess back and sheds nothing
pipeline blk block
node_start front front "$T/blk.xml"
wait_for 20 test -s "$T/blk.port" || { fail "the front did not start: $(cat "$T/front.err")"; finish; }
P=$(cat "$T/blk.port")
python3 "$top_srcdir/tests/nats-client.py" "$P" 40 40 > "$T/client" &
client=$!
held() {
	curl -s "127.0.0.1:$P/metrics" > "$T/m" &&
	    awk '/^porch_channel_held_back_total\{.*from="ingress".*to="infer"/ { if ($2 >= 1) ok = 1 }
	         END { exit !ok }' "$T/m"
}
wait_for 20 held || fail "nothing was held back: $(grep channel "$T/m")"
in_flight() { sed -n 's/^porch_requests_in_flight{pipeline="blk"} //p' "$T/m"; }
sleep 0.5
curl -s "127.0.0.1:$P/metrics" > "$T/m"
before=$(in_flight)
sleep 1 # held, not shed, however long it waits; and no more taken in
curl -s "127.0.0.1:$P/metrics" > "$T/m"
after=$(in_flight)
[ "${after:-40}" -lt 40 ] && [ "$before" = "$after" ] && ok ||
    fail "the source was not held back: $before, then $after of 40 in flight"
grep -q '^porch_requests_total{pipeline="blk",outcome="shed"} [1-9]' "$T/m" &&
    fail "block shed requests" || ok
node_start w1 worker "$T/blk.xml"
wait "$client"
expect_eq "block: client" "$(cat "$T/client")" "sent 40 ok 40 shed 0 failed 0 wrong 0"
node_stop front
node_stop w1
expect_eq "block: shed" "$(jget "$T/front.json" 's["shed"]')" 0
h=$(jget "$T/front.json" 'chan(s, "ingress", "infer")["held_back"]')
[ "$h" -ge 1 ] && ok || fail "block: held_back $h"
expect_eq "block: books balance" "$(balanced "$T/front.json")" True
finish
