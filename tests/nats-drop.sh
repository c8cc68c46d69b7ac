#!/bin/sh
# nats-drop.sh -- overflow drop-oldest over NATS.  A stream of capacity 8:
# a worker node takes r0 and r1 (concurrency 1: it holds two) and is stuck
# on them; front a sends r2..r7, which wait in the stream (it is full);
# front b's three requests find it full, and the three oldest WAITING (r2,
# r3, r4: not r0 and r1, which a node holds) are dropped from the stream:
# shed at their origin, front a, and counted in its channel's dropped.
# Then the stuck worker is killed and a quick one comes: r0 and r1 are
# given to it after ack-wait, and everything else that was taken is
# answered, once.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/nats-lib.sh"
heavy
nats_start

pipeline() { # NAME DELAY-MS CONCURRENCY
	cat > "$T/$1.xml" <<XML
<?xml version="1.0"?>
<pipeline name="nd" version="1">
  <worker name="model" plugin="echo"><param name="delay-ms">$2</param></worker>
  <stage name="ingress" plugin="http" node="front">
    <param name="listen">127.0.0.1:0</param>
    <param name="port-file">$T/$1.port</param>
  </stage>
  <stage name="infer" plugin="inference" worker="model" node="worker" concurrency="$3"/>
  <stage name="reply" plugin="reply" node="front"/>
  <channel from="ingress" to="infer" capacity="8" overflow="drop-oldest" transport="nats"
      ack-wait="2s"/>
  <channel from="infer" to="reply"/>
  <channel from="infer:error" to="reply"/>
</pipeline>
XML
}
pipeline slow 600000 1
pipeline quick 0 16

# the stuck worker, with a control listener to see what it holds
"$PORCH" run --node worker --nats-url "$NATS_URL" --control 127.0.0.1:0 \
    --pid-file "$T/w1.running" "$T/slow.xml" 8>&- > "$T/w1.out" 2> "$T/w1.err" &
echo $! > "$T/w1.pid"
node_wait w1
wait_for 20 grep -q "control: listening on 127.0.0.1:" "$T/w1.err" ||
    { fail "no control port: $(cat "$T/w1.err")"; finish; }
WP=$(sed -n 's/.*control: listening on 127.0.0.1:\([0-9]*\) .*/\1/p' "$T/w1.err")
node_start fa front --set "ingress.port-file=$T/a.port" "$T/slow.xml"
node_start fb front --set "ingress.port-file=$T/b.port" "$T/slow.xml"
node_wait fa
node_wait fb
wait_for 20 test -s "$T/a.port" || { fail "front a did not start: $(cat "$T/fa.err")"; finish; }
wait_for 20 test -s "$T/b.port" || { fail "front b did not start: $(cat "$T/fb.err")"; finish; }
PA=$(cat "$T/a.port")
PB=$(cat "$T/b.port")

# ask PORT NAME: one chat completion in the background; its status in
# $T/NAME.code, its body in $T/NAME.body
ask() {
	curl -s -o "$T/$2.body" -w '%{http_code}' -H 'Content-Type: application/json' \
	    -d "{\"model\":\"echo\",\"messages\":[{\"role\":\"user\",\"content\":\"$2\"}]}" \
	    "http://127.0.0.1:$1/v1/chat/completions" > "$T/$2.code" &
}
in_flight_is() { [ "$(metric "$1" 'porch_requests_in_flight{pipeline="nd"}')" = "$2" ]; }

# r0 and r1, one after the other, pulled by the stuck worker
for i in 0 1; do
	ask "$PA" "r$i"
	wait_for 20 in_flight_is "$PA" $((i + 1)) || fail "front a did not take r$i"
done
wait_for 20 in_flight_is "$WP" 2 ||
    fail "the worker does not hold r0 and r1: $(curl -s "127.0.0.1:$WP/metrics" | grep in_flight)"
# r2..r7 wait in the stream, in that order: it is full
for i in 2 3 4 5 6 7; do
	ask "$PA" "r$i"
	wait_for 20 in_flight_is "$PA" $((i + 1)) || fail "front a did not take r$i"
done
# front b sends three: each drops the oldest waiting, a's r2, r3, r4
for i in 0 1 2; do
	ask "$PB" "q$i"
	wait_for 20 in_flight_is "$PB" $((i + 1)) || fail "front b did not take q$i"
	shed_is() { [ "$(metric "$PA" 'porch_requests_total{pipeline="nd",outcome="shed"}')" = "$1" ]; }
	wait_for 20 shed_is $((i + 1)) || fail "front a: not $((i + 1)) shed: $(curl -s "127.0.0.1:$PA/metrics" | grep requests_total)"
done
for i in 2 3 4; do
	wait_for 20 test -s "$T/r$i.code" || fail "r$i: no answer"
	expect_eq "r$i (the oldest waiting) is shed" "$(cat "$T/r$i.code")" 503
	grep -q "overflow drop-oldest" "$T/r$i.body" && ok || fail "r$i: $(cat "$T/r$i.body")"
done
for n in r0 r1 r5 r6 r7 q0 q1 q2; do
	test -s "$T/$n.code" && fail "$n was answered already: $(cat "$T/$n.code")"
done
ok

# the stuck worker dies; a quick one answers the rest (r0 and r1 after
# ack-wait)
kill -9 "$(cat "$T/w1.pid")"
rm -f "$T/w1.pid"
node_start w2 worker "$T/quick.xml"
for n in r0 r1 r5 r6 r7 q0 q1 q2; do
	wait_for 30 test -s "$T/$n.code" || fail "$n: no answer"
	expect_eq "$n: answered" "$(cat "$T/$n.code")" 200
	grep -q "\"content\":\"$n\"" "$T/$n.body" && ok || fail "$n: $(cat "$T/$n.body")"
done

# a load larger than the stream: both fronts at once on a worker that
# takes 200 ms and holds 4; every request is answered once, ok or shed,
# and what is shed was dropped (from the stream or the front's channel)
node_stop w2
pipeline load 200 2
node_start w3 worker "$T/load.xml"
node_wait w3
python3 "$top_srcdir/tests/nats-client.py" "$PA" 300 24 --ids "$T/a.ids" > "$T/ca" 2> "$T/ca.err" &
ca=$!
python3 "$top_srcdir/tests/nats-client.py" "$PB" 300 24 --ids "$T/b.ids" > "$T/cb" 2> "$T/cb.err"
wait "$ca"
for c in ca cb; do
	case "$(cat "$T/$c")" in
	"sent 300 ok "*" shed "*" failed 0 wrong 0") ok ;;
	*) fail "$c: $(cat "$T/$c" "$T/$c.err")" ;;
	esac
done
expect_eq "load: some were shed" "$(cat "$T/ca" "$T/cb" | awk '{ s += $6 } END { print (s > 0) }')" 1
nd() { curl -s "127.0.0.1:$1/metrics" | awk '/nats_dropped/ { s += $2 } END { print s + 0 }'; }
echo "load: $(cat "$T/ca") / $(cat "$T/cb"); dropped from the stream: a $(nd "$PA") b $(nd "$PB") (3 before)"
expect_eq "load: some were dropped from the stream" "$(($(nd "$PA") + $(nd "$PB") > 3))" 1
for f in a b; do
	expect_eq "load: front $f answered each once (distinct ids)" "$(sort "$T/$f.ids" | uniq -d | wc -l)" 0
done
node_stop fa
node_stop fb
node_stop w3
# the first part's 8 and 3, and the load's 300 each: the client's counts
for f in a b; do
	n=$([ $f = a ] && echo 8 || echo 3)
	sh=$([ $f = a ] && echo 3 || echo 0)
	lok=$(awk '{ print $4 }' "$T/c$f")
	lshed=$(awk '{ print $6 }' "$T/c$f")
	expect_eq "front $f: accepted" "$(jget "$T/f$f.json" 's["accepted"]')" $((n + 300))
	expect_eq "front $f: completed" "$(jget "$T/f$f.json" 's["completed"]')" $((n - sh + lok))
	expect_eq "front $f: shed" "$(jget "$T/f$f.json" 's["shed"]')" $((sh + lshed))
	expect_eq "front $f: every shed one was dropped (stream or channel)" \
	    "$(jget "$T/f$f.json" 'chan(s, "ingress", "infer")["dropped_oldest"]')" $((sh + lshed))
	expect_eq "front $f: books balance" "$(balanced "$T/f$f.json")" True
done
finish
