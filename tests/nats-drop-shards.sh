#!/bin/sh
# nats-drop-shards.sh -- overflow drop-oldest on a sharded channel over
# NATS (shards="2"): the stream's limit of 8 is over both shards, and what
# is dropped is the oldest message WAITING over every shard, not the
# oldest of one shard.  A stuck worker per shard holds two (r0 r1 on shard
# 0, r2 r3 on shard 1); front a then sends r4 (shard 1), r5 r6 (shard 0),
# r7 (shard 1), which wait: the stream is full.  Front b's q0 q1 (shard 0)
# and q2 (shard 1) drop r4, r5, r6 in that order: the oldest waiting over
# the shards, whichever shard the new one is on.  Then quick workers answer
# the rest once; then a load larger than the stream over 8 sessions: every
# request answered once (ok or shed), and the books balance.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/nats-lib.sh"
heavy
nats_start

pipeline() { # NAME DELAY-MS CONCURRENCY
	cat > "$T/$1.xml" <<XML
<?xml version="1.0"?>
<pipeline name="nds" version="1">
  <worker name="model" plugin="echo"><param name="delay-ms">$2</param></worker>
  <stage name="ingress" plugin="http" node="front">
    <param name="listen">127.0.0.1:0</param>
    <param name="port-file">$T/$1.port</param>
  </stage>
  <stage name="infer" plugin="inference" worker="model" node="worker" concurrency="$3"/>
  <stage name="reply" plugin="reply" node="front"/>
  <channel from="ingress" to="infer" capacity="8" overflow="drop-oldest" transport="nats"
      shards="2" ack-wait="2s"/>
  <channel from="infer" to="reply"/>
  <channel from="infer:error" to="reply"/>
</pipeline>
XML
}
pipeline slow 600000 1
pipeline quick 0 16

# a session of each shard (porch_shard: FNV-1a 64, then Jump Consistent
# Hash, as tests/nats-affinity.sh computes it)
sessions=$(python3 -c '
def shard(s, n):
    h = 14695981039346656037
    for c in s.encode():
        h = ((h ^ c) * 1099511628211) % 2**64
    b, j = -1, 0
    while j < n:
        b = j
        h = (h * 2862933555777941757 + 1) % 2**64
        j = int((b + 1) * (float(1 << 31) / float((h >> 33) + 1)))
    return b
names = ["s%d" % i for i in range(100)]
print(next(s for s in names if shard(s, 2) == 0), next(s for s in names if shard(s, 2) == 1))')
S0=${sessions% *}
S1=${sessions#* }

# the stuck worker of each shard, with a control listener to see what it
# holds
for k in 0 1; do
	"$PORCH" run --node worker --nats-shard $k --nats-url "$NATS_URL" \
	    --control 127.0.0.1:0 --pid-file "$T/w$k.running" "$T/slow.xml" 8>&- \
	    > "$T/w$k.out" 2> "$T/w$k.err" &
	echo $! > "$T/w$k.pid"
done
for k in 0 1; do
	node_wait w$k
	wait_for 20 grep -q "control: listening on 127.0.0.1:" "$T/w$k.err" ||
	    { fail "no control port: $(cat "$T/w$k.err")"; finish; }
done
WP0=$(sed -n 's/.*control: listening on 127.0.0.1:\([0-9]*\) .*/\1/p' "$T/w0.err")
WP1=$(sed -n 's/.*control: listening on 127.0.0.1:\([0-9]*\) .*/\1/p' "$T/w1.err")
node_start fa front --set "ingress.port-file=$T/a.port" "$T/slow.xml"
node_start fb front --set "ingress.port-file=$T/b.port" "$T/slow.xml"
node_wait fa
node_wait fb
wait_for 20 test -s "$T/a.port" || { fail "front a did not start: $(cat "$T/fa.err")"; finish; }
wait_for 20 test -s "$T/b.port" || { fail "front b did not start: $(cat "$T/fb.err")"; finish; }
PA=$(cat "$T/a.port")
PB=$(cat "$T/b.port")

# ask PORT NAME SESSION: one chat completion in the background; its status
# in $T/NAME.code, its body in $T/NAME.body
ask() {
	curl -s -o "$T/$2.body" -w '%{http_code}' -H 'Content-Type: application/json' \
	    -H "X-Session-Id: $3" \
	    -d "{\"model\":\"echo\",\"messages\":[{\"role\":\"user\",\"content\":\"$2\"}]}" \
	    "http://127.0.0.1:$1/v1/chat/completions" > "$T/$2.code" &
}
in_flight_is() { [ "$(metric "$1" 'porch_requests_in_flight{pipeline="nds"}')" = "$2" ]; }
shed_is() { [ "$(metric "$PA" 'porch_requests_total{pipeline="nds",outcome="shed"}')" = "$1" ]; }

# r0 r1 (shard 0) held by w0, r2 r3 (shard 1) held by w1
n=0
for r in r0:$S0:$WP0:1 r1:$S0:$WP0:2 r2:$S1:$WP1:1 r3:$S1:$WP1:2; do
	IFS=: read -r name sess wp held <<EOF2
$r
EOF2
	ask "$PA" "$name" "$sess"
	n=$((n + 1))
	wait_for 20 in_flight_is "$PA" $n || fail "front a did not take $name"
	wait_for 20 in_flight_is "$wp" "$held" ||
	    fail "the worker of $name's shard does not hold it: $(curl -s "127.0.0.1:$wp/metrics" | grep in_flight)"
done
# r4 (shard 1), r5 r6 (shard 0), r7 (shard 1) wait, in that order
for r in r4:$S1 r5:$S0 r6:$S0 r7:$S1; do
	ask "$PA" "${r%%:*}" "${r#*:}"
	n=$((n + 1))
	wait_for 20 in_flight_is "$PA" $n || fail "front a did not take ${r%%:*}"
done
# front b: q0 q1 on shard 0, q2 on shard 1; each drops the oldest waiting
# over both shards: r4 (though q0 is on shard 0), r5, r6
i=0
for r in q0:$S0:r4 q1:$S0:r5 q2:$S1:r6; do
	IFS=: read -r name sess victim <<EOF2
$r
EOF2
	ask "$PB" "$name" "$sess"
	i=$((i + 1))
	wait_for 20 in_flight_is "$PB" $i || fail "front b did not take $name"
	wait_for 20 shed_is $i || fail "front a: not $i shed: $(curl -s "127.0.0.1:$PA/metrics" | grep requests_total)"
	wait_for 20 test -s "$T/$victim.code" || fail "$victim: no answer"
	expect_eq "$name drops $victim (the oldest waiting over the shards)" "$(cat "$T/$victim.code")" 503
	grep -q "overflow drop-oldest" "$T/$victim.body" && ok || fail "$victim: $(cat "$T/$victim.body")"
done
for x in r0 r1 r2 r3 r7 q0 q1 q2; do
	test -s "$T/$x.code" && fail "$x was answered already: $(cat "$T/$x.code")"
done
ok

# the stuck workers die; quick ones answer the rest (r0 to r3 after
# ack-wait)
for k in 0 1; do
	kill -9 "$(cat "$T/w$k.pid")"
	rm -f "$T/w$k.pid"
	node_start q$k worker --nats-shard $k "$T/quick.xml"
done
for x in r0 r1 r2 r3 r7 q0 q1 q2; do
	wait_for 30 test -s "$T/$x.code" || fail "$x: no answer"
	expect_eq "$x: answered" "$(cat "$T/$x.code")" 200
	grep -q "\"content\":\"$x\"" "$T/$x.body" && ok || fail "$x: $(cat "$T/$x.body")"
done

# a load larger than the stream, from both fronts at once, over 8
# sessions of both shards, on a worker per shard that takes 200 ms and
# holds 4: every request is answered once, ok or shed
for k in 0 1; do node_stop q$k; done
pipeline load 200 2
for k in 0 1; do node_start l$k worker --nats-shard $k "$T/load.xml"; done
for k in 0 1; do node_wait l$k; done
python3 "$top_srcdir/tests/nats-client.py" "$PA" 300 24 --sessions 8 --ids "$T/a.ids" \
    > "$T/ca" 2> "$T/ca.err" &
ca=$!
python3 "$top_srcdir/tests/nats-client.py" "$PB" 300 24 --sessions 8 --ids "$T/b.ids" \
    > "$T/cb" 2> "$T/cb.err"
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
for k in 0 1; do node_stop l$k; done
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
