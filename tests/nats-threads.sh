#!/bin/sh
# nats-threads.sh -- nodes with threads over NATS: a front with --threads 2
# and two worker nodes with --threads 2.  Every worker shard pulls from the
# one durable consumer (the work is shared over shards and nodes), every
# front shard has its own home subject (an answer goes back to the shard
# that holds its request): 2000 requests through http, streamed and not,
# each answered once and rightly, the books of each node balance summed
# over its shards, and each worker shard gets a share, across a reload of
# the front and of a worker.  Then the same with a threaded worker killed
# (kill -9) in the middle: nothing is lost.  Last, session affinity with
# threads: over a channel with shards="2", each threaded worker node
# started with --nats-shard K takes exactly shard K's sessions (on either
# of its threads); and SIGTERM drains a threaded worker: it ends what it
# holds, hands back what it pulled and did not start, and exits 0.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/nats-lib.sh"
heavy
nats_start

cat > "$T/c.xml" <<XML
<?xml version="1.0"?>
<pipeline name="nt" version="1">
  <worker name="model" plugin="echo"><param name="delay-ms">5</param></worker>
  <stage name="ingress" plugin="http" node="front">
    <param name="listen">127.0.0.1:0</param>
    <param name="port-file">$T/port</param>
    <param name="deadline">60s</param>
  </stage>
  <stage name="infer" plugin="inference" worker="model" node="worker" concurrency="8"/>
  <stage name="reply" plugin="reply" node="front"/>
  <channel from="ingress" to="infer" capacity="512" transport="nats" ack-wait="2s"/>
  <channel from="infer" to="reply"/>
  <channel from="infer:error" to="reply"/>
</pipeline>
XML

# shard_got NAME K: requests worker NAME's shard K accepted
shard_got() {
	jget "$T/$1.json" "[x for x in s['shards'] if x['shard'] == $2][0]['accepted']"
}

# load N: N plain and N streamed requests at once; checks every answer
load() {
	python3 "$top_srcdir/tests/nats-client.py" "$PORT" "$1" 24 --ids "$T/ids1" \
	    > "$T/client1" 2> "$T/client1.err" &
	_c1=$!
	python3 "$top_srcdir/tests/nats-client.py" "$PORT" "$1" 24 --stream --words 5 \
	    --ids "$T/ids2" > "$T/client2" 2> "$T/client2.err" &
	_c2=$!
}

load_check() { # N
	wait "$_c1"
	wait "$_c2"
	expect_eq "$1 plain answers" "$(cat "$T/client1")" "sent $1 ok $1 shed 0 failed 0 wrong 0"
	expect_eq "$1 streamed answers" "$(cat "$T/client2")" "sent $1 ok $1 shed 0 failed 0 wrong 0"
	expect_eq "no request answered twice" \
	    "$(cat "$T/ids1" "$T/ids2" | sort | uniq -d | wc -l)" 0
	expect_eq "every request answered" "$(cat "$T/ids1" "$T/ids2" | sort -u | wc -l)" $(($1 * 2))
}

# 1. the work is shared over the shards of both workers
node_start front front "$T/c.xml" --threads 2
node_start w1 worker "$T/c.xml" --threads 2
node_start w2 worker "$T/c.xml" --threads 2
wait_for 20 test -s "$T/port" || { fail "the front did not start: $(cat "$T/front.err")"; finish; }
node_wait front
node_wait w1
node_wait w2
PORT=$(cat "$T/port")
load 1000
# a reload of the threaded front and of a threaded worker in the middle:
# each shard's new graph connects and pulls anew, the old ones finish theirs
wait_for 60 completed_at_least "$PORT" 300 || fail "no progress before the reload"
kill -HUP "$(cat "$T/front.pid")" "$(cat "$T/w1.pid")"
load_check 1000
node_stop front
node_stop w1
node_stop w2
for n in front w1; do
	expect_eq "$n: each shard reloaded once" \
	    "$(jget "$T/$n.json" '[x["reloads"] for x in s["shards"]]')" "[1, 1]"
done
expect_eq "front: accepted" "$(jget "$T/front.json" 's["accepted"]')" 2000
expect_eq "front: completed" "$(jget "$T/front.json" 's["completed"]')" 2000
expect_eq "front: books balance" "$(balanced "$T/front.json")" True
expect_eq "front: shards add up" "$(jget "$T/front.json" 'sum(x["accepted"] for x in s["shards"])')" 2000
for k in 0 1; do
	n=$(jget "$T/front.json" "[x for x in s['shards'] if x['shard'] == $k][0]['accepted']")
	[ "$n" -gt 0 ] && ok || fail "front shard $k accepted no request"
done
total=0
for w in w1 w2; do
	expect_eq "$w: books balance" "$(balanced "$T/$w.json")" True
	for k in 0 1; do
		n=$(shard_got "$w" "$k")
		[ "$n" -gt 0 ] && ok || fail "$w shard $k got no share of the work"
	done
	total=$((total + $(jget "$T/$w.json" 's["completed"]')))
done
[ "$total" -ge 2000 ] && ok || fail "the workers completed $total requests, want >= 2000"
echo "shares: w1 $(shard_got w1 0)+$(shard_got w1 1), w2 $(shard_got w2 0)+$(shard_got w2 1)"

# 2. a threaded worker killed in the middle of the load loses nothing (a
# slower model: the load lasts well past the kill)
rm -f "$T/port" "$T"/*.running "$T"/*.json "$T"/ids*
sed 's|<param name="delay-ms">5</param>|<param name="delay-ms">20</param>|;
    s|name="nt"|name="ntk"|' "$T/c.xml" > "$T/k.xml"
node_start front front "$T/k.xml" --threads 2
node_start w1 worker "$T/k.xml" --threads 2
node_start w2 worker "$T/k.xml" --threads 2
wait_for 20 test -s "$T/port" || { fail "the front did not start: $(cat "$T/front.err")"; finish; }
node_wait front
node_wait w1
node_wait w2
PORT=$(cat "$T/port")
load 1000
wait_for 60 completed_at_least "$PORT" 300 || fail "no progress before the kill"
busy() { # w1's statistics table (SIGUSR1): infer holds some
	kill -USR1 "$(cat "$T/w1.pid")"
	sleep 0.05
	awk '$1 == "infer" && $2 == "inference" { h = $9 } END { exit !(h >= 4) }' "$T/w1.err"
}
wait_for 30 busy || fail "w1 never held requests: $(tail -n 5 "$T/w1.err")"
w1=$(cat "$T/w1.pid")
kill -9 "$w1"
rm -f "$T/w1.pid"
wait "$w1" 2> /dev/null # no "Killed" from the shell
expect_eq "w1 was killed" "$?" 137
load_check 1000
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

# 3. shards="2" with threads: node affinity holds
rm -f "$T/port" "$T"/*.running "$T"/*.json
sed 's|ack-wait="2s"/>|ack-wait="2s" shards="2"/>|; s|name="nt"|name="nta"|' \
    "$T/c.xml" > "$T/a.xml"
node_start front front "$T/a.xml" --threads 2
node_start w0 worker "$T/a.xml" --threads 2 --nats-shard 0
node_start w1 worker "$T/a.xml" --threads 2 --nats-shard 1
wait_for 20 test -s "$T/port" || { fail "the front did not start: $(cat "$T/front.err")"; finish; }
node_wait front
node_wait w0
node_wait w1
out=$(python3 "$top_srcdir/tests/nats-client.py" "$(cat "$T/port")" 400 16 --sessions 40)
expect_eq "400 answers of 40 sessions" "$out" "sent 400 ok 400 shed 0 failed 0 wrong 0"
node_stop front
node_stop w0
node_stop w1
# porch_shard (FNV-1a 64, then Jump Consistent Hash), as nats-affinity.sh
want0=$(python3 -c '
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
print(sum(1 for i in range(400) if shard("s%d" % (i % 40), 2) == 0))')
expect_eq "w0 took exactly shard 0's sessions" "$(jget "$T/w0.json" 'stage(s, "infer")["in"]')" "$want0"
expect_eq "w1 took exactly shard 1's sessions" "$(jget "$T/w1.json" 'stage(s, "infer")["in"]')" \
    "$((400 - want0))"
expect_eq "front: books balance" "$(balanced "$T/front.json")" True

# 4. SIGTERM drains a threaded worker in the middle of slow requests; a
# second worker started afterwards takes what it handed back
rm -f "$T/port" "$T"/*.running "$T"/*.json
sed 's|<param name="delay-ms">5</param>|<param name="delay-ms">300</param>|;
    s|name="nt"|name="ntd"|' "$T/c.xml" > "$T/d.xml"
node_start front front "$T/d.xml" --threads 2
node_start w1 worker "$T/d.xml" --threads 2
wait_for 20 test -s "$T/port" || { fail "the front did not start: $(cat "$T/front.err")"; finish; }
node_wait front
node_wait w1
python3 "$top_srcdir/tests/nats-client.py" "$(cat "$T/port")" 100 40 > "$T/client" &
client=$!
wait_for 30 busy || fail "w1 never held requests: $(tail -n 5 "$T/w1.err")"
node_stop w1
node_start w2 worker "$T/d.xml" --threads 2
wait "$client"
expect_eq "100 answers across a drained worker" "$(cat "$T/client")" \
    "sent 100 ok 100 shed 0 failed 0 wrong 0"
node_stop front
node_stop w2
expect_eq "w1: books balance" "$(balanced "$T/w1.json")" True
n=$(jget "$T/w1.json" 's["completed"]')
[ "$n" -gt 0 ] && ok || fail "w1 ended none of what it held"
expect_eq "front: books balance" "$(balanced "$T/front.json")" True
finish
