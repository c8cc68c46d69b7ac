#!/bin/sh
# nats-block.sh -- overflow block with a stream other senders filled.
# Front a fills the stream (capacity 4, no worker node yet); front b,
# overflow block, finds it full: its stand-in holds the one refused (tried again
# and again, counted once in held_back) and takes no other, as a full
# local channel with block holds its producer back at the first refused
# message; 4 more wait in its channel, and once that is full its http
# source stops reading.  Nothing is shed; when a worker node comes and
# makes room every request completes.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/nats-lib.sh"
heavy
nats_start

cat > "$T/c.xml" <<XML
<?xml version="1.0"?>
<pipeline name="nb" version="1">
  <worker name="model" plugin="echo"><param name="delay-ms">5</param></worker>
  <stage name="ingress" plugin="http" node="front">
    <param name="listen">127.0.0.1:0</param>
    <param name="port-file">$T/port</param>
  </stage>
  <stage name="infer" plugin="inference" worker="model" node="worker" concurrency="4"/>
  <stage name="reply" plugin="reply" node="front"/>
  <channel from="ingress" to="infer" capacity="4" overflow="block" transport="nats"/>
  <channel from="infer" to="reply"/>
  <channel from="infer:error" to="reply"/>
</pipeline>
XML
node_start fa front --set "ingress.port-file=$T/a.port" "$T/c.xml"
node_start fb front --set "ingress.port-file=$T/b.port" "$T/c.xml"
node_wait fa
node_wait fb
wait_for 20 test -s "$T/a.port" || { fail "front a did not start: $(cat "$T/fa.err")"; finish; }
wait_for 20 test -s "$T/b.port" || { fail "front b did not start: $(cat "$T/fb.err")"; finish; }
PA=$(cat "$T/a.port")
PB=$(cat "$T/b.port")
in_flight_is() { [ "$(metric "$1" 'porch_requests_in_flight{pipeline="nb"}')" = "$2" ]; }
HB='porch_channel_held_back_total{from="ingress",port="out",to="infer"}'
held_back_is() { [ "$(metric "$1" "$HB")" = "$2" ]; }

# front a: 4, the stream's capacity; it holds them (no worker node yet)
python3 "$top_srcdir/tests/nats-client.py" "$PA" 4 4 > "$T/ca" 2>&1 &
ca=$!
wait_for 20 in_flight_is "$PA" 4 || fail "front a does not hold 4"
# front b: its first request is refused by the full stream and held in
# the stand-in, which takes no other until that one is stored (counted
# once however often it is refused); 4 more wait in its channel
python3 "$top_srcdir/tests/nats-client.py" "$PB" 1 1 > "$T/cb0" 2>&1 &
b0=$!
wait_for 20 held_back_is "$PB" 1 || fail "front b: not held back: $(curl -s "127.0.0.1:$PB/metrics" | grep held_back)"
python3 "$top_srcdir/tests/nats-client.py" "$PB" 7 7 > "$T/cb1" 2>&1 &
b1=$!
wait_for 20 in_flight_is "$PB" 5 || fail "front b does not hold 5: $(metric "$PB" 'porch_requests_in_flight{pipeline="nb"}')"
# the channel is full: the source stops reading, later clients wait
python3 "$top_srcdir/tests/nats-client.py" "$PB" 2 2 > "$T/cb2" 2>&1 &
b2=$!
sleep 1 # held, not shed, however long it waits: refused again and again
expect_eq "front b: in flight a second later (the last clients not read)" \
    "$(metric "$PB" 'porch_requests_in_flight{pipeline="nb"}')" 5
expect_eq "front b: held back: the first refused only, once" "$(metric "$PB" "$HB")" 1
shed=$(metric "$PB" 'porch_requests_total{pipeline="nb",outcome="shed"}')
expect_eq "front b: nothing shed" "${shed:-0}" 0
for c in cb0 cb1 cb2; do
	test -s "$T/$c" && fail "$c was answered while the stream was full: $(cat "$T/$c")"
done
ok

# a worker node makes room: every request completes
node_start w worker "$T/c.xml"
wait "$ca" "$b0" "$b1" "$b2"
expect_eq "front a's clients" "$(cat "$T/ca")" "sent 4 ok 4 shed 0 failed 0 wrong 0"
expect_eq "front b's clients" "$(cat "$T/cb0" "$T/cb1" "$T/cb2")" "sent 1 ok 1 shed 0 failed 0 wrong 0
sent 7 ok 7 shed 0 failed 0 wrong 0
sent 2 ok 2 shed 0 failed 0 wrong 0"
node_stop fa
node_stop fb
node_stop w
expect_eq "front b: completed" "$(jget "$T/fb.json" 's["completed"]')" 10
expect_eq "front b: shed" "$(jget "$T/fb.json" 's["shed"]')" 0
expect_eq "front b: books balance" "$(balanced "$T/fb.json")" True
expect_eq "front a: completed" "$(jget "$T/fa.json" 's["completed"]')" 4
expect_eq "front a: books balance" "$(balanced "$T/fa.json")" True
finish
