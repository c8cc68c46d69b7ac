#!/bin/sh
# nats-probe.sh -- a node probes only the pools its own stages call.
#
# A deployment over NATS: the front (http, reply) and a worker node whose
# inference stage calls the pool "backend" (an openai worker on a port
# nothing listens on, probed every 50 ms).  Every node reads the whole
# file, pools and all; the worker node's probes fail (its replica counts
# transport errors), the front, which calls no pool, sends none.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/nats-lib.sh"
heavy
nats_start

# a port nothing listens on: bound, then closed
dead=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$T/p.xml" <<XML
<?xml version="1.0"?>
<pipeline name="np" version="1">
  <worker name="m1" plugin="openai">
    <param name="base-url">http://127.0.0.1:$dead/v1</param>
  </worker>
  <pool name="backend" policy="round-robin">
    <member worker="m1"/>
    <param name="probe-interval">50ms</param>
  </pool>
  <stage name="ingress" plugin="http" node="front">
    <param name="listen">127.0.0.1:0</param>
    <param name="port-file">$T/port</param>
  </stage>
  <stage name="infer" plugin="inference" worker="backend" node="worker"/>
  <stage name="reply" plugin="reply" node="front"/>
  <channel from="ingress" to="infer" transport="nats"/>
  <channel from="infer" to="reply"/>
  <channel from="infer:error" to="reply"/>
</pipeline>
XML
node_start front front "$T/p.xml"
node_start w1 worker "$T/p.xml"
node_wait front
node_wait w1
# the worker node has probed (and failed) 5 times: the front, up as long,
# would have by now
probed5() {
	kill -USR1 "$(cat "$T/w1.pid")"
	sleep 0.1
	awk '$1 == "replica" && $2 == "m1" {
		for (i = 3; i < NF; i++) if ($i == "transport") n = $(i + 1) + 0
	} END { exit !(n >= 5) }' "$T/w1.err"
}
wait_for 20 probed5 || fail "the worker node did not probe: $(grep replica "$T/w1.err" | tail -1)"
node_stop front
node_stop w1
expect_eq "front: probes sent" "$(jget "$T/front.json" 's["pools"][0]["replicas"][0]["transport_errors"]')" 0
jget "$T/w1.json" 's["pools"][0]["replicas"][0]["transport_errors"] >= 5' > "$T/w1probes"
expect_eq "worker: probes sent, at least 5" "$(cat "$T/w1probes")" True
finish
