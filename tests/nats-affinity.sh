#!/bin/sh
# nats-affinity.sh -- session affinity across nodes: a channel over NATS
# with shards="2" puts each request on the subject of its session's shard
# (porch_shard, as threads use it), and each worker node, started with
# --nats-shard K, pulls only shard K: every request of a session is worked
# on by one node, the one its shard names.  A node of a sharded channel
# without --nats-shard is refused.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/nats-lib.sh"
heavy
nats_start

cat > "$T/c.xml" <<XML
<?xml version="1.0"?>
<pipeline name="na" version="1">
  <worker name="model" plugin="echo"><param name="delay-ms">2</param></worker>
  <stage name="ingress" plugin="http" node="front">
    <param name="listen">127.0.0.1:0</param>
    <param name="port-file">$T/port</param>
  </stage>
  <stage name="infer" plugin="inference" worker="model" node="worker" concurrency="16"/>
  <stage name="reply" plugin="reply" node="front"/>
  <channel from="ingress" to="infer" capacity="256" transport="nats" shards="2"/>
  <channel from="infer" to="reply"/>
  <channel from="infer:error" to="reply"/>
</pipeline>
XML
"$PORCH" run -q --node worker --nats-url "$NATS_URL" "$T/c.xml" > /dev/null 2> "$T/err"
expect_eq "no --nats-shard: exit status" "$?" 2
grep -qF "$T/c.xml:10:78: error: channel ingress -> infer has shards=\"2\": start each node of 'infer' with --nats-shard K, K from 0 to 1" "$T/err" &&
    ok || fail "no --nats-shard: $(cat "$T/err")"
"$PORCH" run -q --node worker --nats-shard 2 --nats-url "$NATS_URL" "$T/c.xml" > /dev/null 2> "$T/err"
expect_eq "--nats-shard 2 of 2: exit status" "$?" 2

node_start front front "$T/c.xml"
node_start w0 worker --nats-shard 0 "$T/c.xml"
node_start w1 worker --nats-shard 1 "$T/c.xml"
wait_for 20 test -s "$T/port" || { fail "the front did not start: $(cat "$T/front.err")"; finish; }
node_wait front
out=$(python3 "$top_srcdir/tests/nats-client.py" "$(cat "$T/port")" 400 16 --sessions 40)
expect_eq "400 answers of 40 sessions" "$out" "sent 400 ok 400 shed 0 failed 0 wrong 0"
node_stop front
node_stop w0
node_stop w1
# the shard of each session, as porch_shard computes it (FNV-1a 64, then
# Jump Consistent Hash): request i has session s<i mod 40>
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
w0=$(jget "$T/w0.json" 'stage(s, "infer")["in"]')
w1=$(jget "$T/w1.json" 'stage(s, "infer")["in"]')
expect_eq "w0 took exactly shard 0's sessions" "$w0" "$want0"
expect_eq "w1 took exactly shard 1's sessions" "$w1" "$((400 - want0))"
[ "$want0" -gt 0 ] && [ "$want0" -lt 400 ] && ok || fail "the sessions all hash to one shard"
expect_eq "front: books balance" "$(balanced "$T/front.json")" True
finish
