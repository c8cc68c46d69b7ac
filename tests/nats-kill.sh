#!/bin/sh
# nats-kill.sh -- a worker node killed (kill -9) in the middle of 2000
# requests over NATS: its unacked requests go to the other worker after
# ack-wait, and none is lost: every request is answered once, rightly, and
# the front's books balance (accepted = completed + failed + shed + expired).
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/nats-lib.sh"
heavy
nats_start

cat > "$T/c.xml" <<XML
<?xml version="1.0"?>
<pipeline name="nk" version="1">
  <worker name="model" plugin="echo"><param name="delay-ms">20</param></worker>
  <stage name="ingress" plugin="http" node="front">
    <param name="listen">127.0.0.1:0</param>
    <param name="port-file">$T/port</param>
    <param name="deadline">60s</param>
  </stage>
  <stage name="infer" plugin="inference" worker="model" node="worker" concurrency="16"/>
  <stage name="reply" plugin="reply" node="front"/>
  <channel from="ingress" to="infer" capacity="512" transport="nats" ack-wait="2s"/>
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

python3 "$top_srcdir/tests/nats-client.py" "$PORT" 2000 48 > "$T/client" 2> "$T/client.err" &
client=$!
# kill w1 once it has done some work and holds more
wait_for 60 completed_at_least "$PORT" 300 || fail "no progress before the kill"
node_wait w1
# w1's statistics table (SIGUSR1), read from the table printed after the
# signal (an older one may show requests w1 no longer holds): infer holds some
table_after() {
	tail -n +"$(($1 + 1))" "$T/w1.err" | grep -q '^infer  *inference'
}
busy() {
	n=$(wc -l < "$T/w1.err")
	kill -USR1 "$(cat "$T/w1.pid")"
	wait_for 5 table_after "$n" || return 1
	tail -n +"$((n + 1))" "$T/w1.err" |
	    awk '$1 == "infer" && $2 == "inference" { h = $9 } END { exit !(h >= 4) }'
}
wait_for 30 busy || fail "w1 never held requests: $(tail -n 5 "$T/w1.err")"
kill -9 "$(cat "$T/w1.pid")"
rm -f "$T/w1.pid"
wait "$client"
expect_eq "2000 answers, none lost" "$(cat "$T/client")" "sent 2000 ok 2000 shed 0 failed 0 wrong 0"
node_stop front
node_stop w2
expect_eq "front: accepted" "$(jget "$T/front.json" 's["accepted"]')" 2000
expect_eq "front: completed" "$(jget "$T/front.json" 's["completed"]')" 2000
expect_eq "front: books balance" "$(balanced "$T/front.json")" True
r=$(jget "$T/w2.json" 'event(s, "infer/in", "nats_redelivered")')
[ "$r" -gt 0 ] && ok || fail "w2 got nothing w1 had held (redelivered $r)"
expect_eq "w2: books balance" "$(balanced "$T/w2.json")" True
echo "w2 took $r of w1's requests again; the front dropped" \
    "$(jget "$T/front.json" 'event(s, "infer", "nats_late_answers")') late answers"
finish
