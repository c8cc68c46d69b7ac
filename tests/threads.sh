#!/bin/sh
# threads.sh -- threads="N": N shards, each a thread, a loop and a copy of
# the graph.  The books balance summed over shards (also at 10x overload),
# each shard's share is shown, a session's requests keep their order,
# the http source listens on every shard (one port, SO_REUSEPORT), SIGUSR1
# prints the sum, SIGTERM drains every shard, and bad values are refused.
. "$top_srcdir/tests/lib.sh"
heavy

command -v curl > /dev/null || { echo "curl is not installed" >&2; exit 1; }
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

# sum_shards FILE KEY: KEY added up over the "shards" array of a stats file
sum_shards() {
	python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(sum(s[sys.argv[2]] for s in d["shards"]))' "$1" "$2"
}
# shard_values FILE KEY: KEY of each shard, space-separated
shard_values() {
	python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(" ".join(str(s[sys.argv[2]]) for s in d["shards"]))' "$1" "$2"
}
# balanced FILE: accepted = completed + failed + shed + expired, in flight 0
balanced() {
	a=$(json_get "$1" accepted)
	s=$(( $(json_get "$1" completed) + $(json_get "$1" failed) + $(json_get "$1" shed) + \
	    $(json_get "$1" expired) ))
	[ "$a" -gt 0 ] && [ "$a" = "$s" ] && [ "$(json_get "$1" in_flight)" = 0 ]
}

# 1. bad values: FILE:LINE:COL and exit 2, or a usage error and exit 2
for v in 0 x -3 100000; do
	cat > "$T/bad.xml" <<XML
<?xml version="1.0"?>
<pipeline name="bad" version="1" threads="$v">
  <stage name="src" plugin="gen"/>
  <stage name="sink" plugin="null"/>
  <channel from="src" to="sink"/>
</pipeline>
XML
	"$PORCH" run "$T/bad.xml" > /dev/null 2> "$T/bad.err"
	expect_eq "threads=\"$v\": exit status" "$?" 2
	grep -q "bad.xml:2:[0-9]*: error: threads='$v'" "$T/bad.err" && ok ||
	    fail "threads=\"$v\": no FILE:LINE:COL error: $(cat "$T/bad.err")"
done
for v in 0 two 1025 ""; do
	"$PORCH" run --threads "$v" "$top_srcdir/pipelines/hello.xml" > /dev/null 2> "$T/bad.err"
	expect_eq "--threads '$v': exit status" "$?" 2
	grep -q -- "--threads '$v'" "$T/bad.err" && ok ||
	    fail "--threads '$v': no usage error: $(cat "$T/bad.err")"
done

# 2. gen through 4 shards: every shard has its sessions' requests, the sum
# is the whole, and --threads overrides the file
cat > "$T/gen.xml" <<XML
<?xml version="1.0"?>
<pipeline name="gen4" version="1" threads="1">
  <stage name="src" plugin="gen"><param name="count">20000</param><param name="sessions">64</param></stage>
  <stage name="pass" plugin="pass"/>
  <stage name="sink" plugin="null"/>
  <channel from="src" to="pass" capacity="16"/>
  <channel from="pass" to="sink" capacity="16"/>
</pipeline>
XML
"$PORCH" run -q --threads 4 --stats-json "$T/gen.json" "$T/gen.xml" 2> "$T/gen.err"
expect_eq "gen: exit status" "$?" 0
expect_eq "gen: accepted" "$(json_get "$T/gen.json" accepted)" 20000
expect_eq "gen: completed" "$(json_get "$T/gen.json" completed)" 20000
expect_eq "gen: threads" "$(json_get "$T/gen.json" threads)" 4
expect_eq "gen: shards' accepted" "$(sum_shards "$T/gen.json" accepted)" 20000
expect_eq "gen: shards' completed" "$(sum_shards "$T/gen.json" completed)" 20000
for n in $(shard_values "$T/gen.json" accepted); do
	[ "$n" -gt 0 ] && ok || fail "gen: a shard took no request: $(shard_values "$T/gen.json" accepted)"
done
"$PORCH" run -q --threads auto --stats-json "$T/auto.json" "$T/gen.xml" 2> "$T/auto.err"
expect_eq "gen, --threads auto: exit status" "$?" 0
expect_eq "gen, --threads auto: threads" "$(json_get "$T/auto.json" threads)" \
    "$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc)"

# 3. stdin with threads=4: each session's requests come out in the order
# they went in, though the sessions are spread over the shards
cat > "$T/order.xml" <<XML
<?xml version="1.0"?>
<pipeline name="order" version="1" threads="4">
  <stage name="in" plugin="stdin"/>
  <stage name="pass" plugin="pass"/>
  <stage name="out" plugin="stdout"/>
  <channel from="in" to="pass" capacity="4"/>
  <channel from="pass" to="out" capacity="4"/>
</pipeline>
XML
awk 'BEGIN { for (i = 0; i < 20000; i++) { k = i % 37;
	printf "{\"text\": \"s%d %d\", \"session\": \"s%d\"}\n", k, i, k } }' > "$T/order.in"
"$PORCH" run -q --stats-json "$T/order.json" "$T/order.xml" < "$T/order.in" \
    > "$T/order.out" 2> "$T/order.err"
expect_eq "order: exit status" "$?" 0
expect_eq "order: lines out" "$(wc -l < "$T/order.out" | tr -d ' ')" 20000
# "SESSION<TAB>sK I": I grows within each session
expect_eq "order: out of order" "$(awk -F'\t' '{ split($2, a, " ");
	if ((a[1] in last) && a[2] + 0 < last[a[1]]) bad++; last[a[1]] = a[2] + 0 }
	END { print bad + 0 }' "$T/order.out")" 0
busy=0
for n in $(shard_values "$T/order.json" accepted); do
	[ "$n" -gt 0 ] && busy=$((busy + 1))
done
expect_eq "order: shards that took requests" "$busy" 4
# and the lines did not come out in input order (the shards ran side by side)
awk -F'\t' '{ split($2, a, " "); if (a[2] + 0 != NR - 1) { moved = 1; exit } }
    END { exit !moved }' "$T/order.out" && ok ||
    echo "note: the shards' output happened to keep the input order" >&2

# 4. gen at 10x what the pipeline takes on 2 shards (each makes its
# sessions' requests) over channels that reject: exact books
cat > "$T/over.xml" <<XML
<?xml version="1.0"?>
<pipeline name="over" version="1" threads="2">
  <worker name="model" plugin="echo"><param name="delay-ms">2</param></worker>
  <stage name="src" plugin="gen">
    <param name="count">20000</param><param name="sessions">100</param><param name="rate">40000</param>
  </stage>
  <stage name="infer" plugin="inference" worker="model" concurrency="4"/>
  <stage name="sink" plugin="null"/>
  <channel from="src" to="infer" capacity="8" overflow="reject"/>
  <channel from="infer" to="sink"/>
  <channel from="infer:error" to="sink"/>
</pipeline>
XML
"$PORCH" run -q --stats-json "$T/over.json" "$T/over.xml" 2> "$T/over.err"
expect_eq "overload: exit status" "$?" 0
expect_eq "overload: accepted" "$(json_get "$T/over.json" accepted)" 20000
balanced "$T/over.json" && ok || fail "overload: the books do not balance: $(cat "$T/over.json")"
[ "$(json_get "$T/over.json" shed)" -gt 10000 ] && ok ||
    fail "overload: too little shed for 10x: $(json_get "$T/over.json" shed)"
for k in accepted completed shed; do
	expect_eq "overload: shards' $k" "$(sum_shards "$T/over.json" $k)" \
	    "$(json_get "$T/over.json" $k)"
done

# 4b. stdin at far more than the pipeline takes: shard 0 reads as fast as
# it can and hands requests over; with a reject channel a full hand-off
# queue sheds (counted on shard 0), the channel sheds on each shard, and
# the books balance exactly
sed -e 's/plugin="gen">/plugin="stdin">/' -e '/<param name="count">/d' \
    -e 's/name="over"/name="overin"/' "$T/over.xml" > "$T/overin.xml"
awk 'BEGIN { for (i = 0; i < 30000; i++) printf "{\"text\": \"x %d\", \"session\": \"u%d\"}\n", i, i % 100 }' \
    > "$T/overin.in"
"$PORCH" run -q --stats-json "$T/overin.json" "$T/overin.xml" < "$T/overin.in" 2> "$T/overin.err"
expect_eq "stdin overload: exit status" "$?" 0
expect_eq "stdin overload: accepted" "$(json_get "$T/overin.json" accepted)" 30000
balanced "$T/overin.json" && ok ||
    fail "stdin overload: the books do not balance: $(cat "$T/overin.json")"
[ "$(json_get "$T/overin.json" shed)" -gt 15000 ] && ok ||
    fail "stdin overload: too little shed: $(json_get "$T/overin.json" shed)"
for k in accepted completed shed; do
	expect_eq "stdin overload: shards' $k" "$(sum_shards "$T/overin.json" $k)" \
	    "$(json_get "$T/overin.json" $k)"
done

# 4c. max-inflight bounds the process, not each shard: 40 requests on 2
# shards to a model that takes 300 ms, max-inflight 4.  gen waits for room
# (porch_stage_ready); two shards offering the last place at once shed one
# (admission).  With 4 at a time over the process, the completed ones take
# at least 300 ms per 4: a bound per shard (8 at a time) would take half
cat > "$T/bound.xml" <<XML
<?xml version="1.0"?>
<pipeline name="bound" version="1" threads="2" max-inflight="4">
  <worker name="model" plugin="echo"><param name="delay-ms">300</param></worker>
  <stage name="src" plugin="gen"><param name="count">40</param><param name="sessions">64</param></stage>
  <stage name="infer" plugin="inference" worker="model" concurrency="64"/>
  <stage name="sink" plugin="null"/>
  <channel from="src" to="infer"/>
  <channel from="infer" to="sink"/>
  <channel from="infer:error" to="sink"/>
</pipeline>
XML
"$PORCH" run -q --stats-json "$T/bound.json" "$T/bound.xml" 2> "$T/bound.err"
expect_eq "max-inflight: exit status" "$?" 0
c=$(json_get "$T/bound.json" completed)
expect_eq "max-inflight: completed + shed" "$((c + $(json_get "$T/bound.json" shed)))" 40
[ "$c" -ge 20 ] && ok || fail "max-inflight: only $c completed"
python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
rounds = (d["completed"] + 3) // 4
assert d["elapsed_s"] >= 0.3 * rounds * 0.95, (d["elapsed_s"], rounds)
assert all(s["accepted"] > 0 for s in d["shards"]), d["shards"]' "$T/bound.json" 2> "$T/py" && ok ||
    fail "max-inflight: more than 4 at a time over the shards: $(cat "$T/py")"

# 5. http on 2 shards, one port (port 0: the first shard's, reused), 10x
# overload from 160 clients against max-inflight 16; /metrics sums the
# shards and shows each; SIGUSR1 prints the sum; SIGTERM drains both
cat > "$T/http.xml" <<XML
<?xml version="1.0"?>
<pipeline name="load" version="1" max-inflight="16" threads="2">
  <worker name="model" plugin="echo"><param name="delay-ms">5</param></worker>
  <stage name="ingress" plugin="http">
    <param name="listen">127.0.0.1:0</param>
    <param name="port-file">$T/port</param>
  </stage>
  <stage name="infer" plugin="inference" worker="model" concurrency="8"/>
  <stage name="reply" plugin="reply"/>
  <channel from="ingress" to="infer" capacity="8" overflow="reject"/>
  <channel from="infer" to="reply"/>
  <channel from="infer:error" to="reply"/>
</pipeline>
XML
"$PORCH" run --pid-file "$T/http.pid" --stats-json "$T/http.json" "$T/http.xml" \
    > /dev/null 2> "$T/http.err" 8>&- &
bg=$!
trap 'kill "$bg" 2> /dev/null; rm -rf "$T"' EXIT
wait_for 20 test -s "$T/http.pid" || { fail "http: porch did not start: $(cat "$T/http.err")"; finish; }
U="http://127.0.0.1:$(cat "$T/port")"
port=$(cat "$T/port")
# listening sockets (state 0A) on 127.0.0.1:port, from /proc/net/tcp
expect_eq "http: sockets listening on the port" "$(python3 -c 'import sys
want = "0100007F:%04X" % int(sys.argv[1])
print(sum(1 for l in open("/proc/net/tcp").readlines()[1:]
          if l.split()[1] == want and l.split()[3] == "0A"))' "$port")" 2
python3 - "$port" > "$T/load.out" 2>&1 <<'PY'
# 160 clients at once, each posting requests back to back for 2 s
import http.client, sys, threading, time
port = int(sys.argv[1])
body = '{"model":"echo","messages":[{"role":"user","content":"load test"}]}'
codes = {}
lock = threading.Lock()
def client():
    end = time.time() + 2
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    while time.time() < end:
        try:
            c.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            st = r.status
        except Exception as e:
            st = type(e).__name__
            c.close()
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        with lock:
            codes[st] = codes.get(st, 0) + 1
ts = [threading.Thread(target=client) for _ in range(160)]
for t in ts: t.start()
for t in ts: t.join()
print(" ".join("%s=%d" % (k, v) for k, v in sorted(codes.items(), key=str)))
PY
grep -q "200=" "$T/load.out" && ok || fail "http: nothing answered 200: $(cat "$T/load.out")"
grep -q "503=" "$T/load.out" && ok || fail "http: nothing refused at 10x: $(cat "$T/load.out")"
idle() {
	curl -s "$U/metrics" > "$T/m" && grep -q '^porch_requests_in_flight{pipeline="load"} 0$' "$T/m"
}
wait_for 10 idle || fail "http: requests still in flight: $(grep in_flight "$T/m")"
books_balance "$T/m" && ok || fail "http: /metrics: accepted != the sum of the outcomes"
for k in 0 1; do
	grep -q "^porch_shard_requests_accepted_total{pipeline=\"load\",shard=\"$k\"} [1-9]" "$T/m" &&
	    ok || fail "http: shard $k took no request: $(grep porch_shard_ "$T/m")"
done
sum=$(awk '/^porch_shard_requests_accepted_total/ { s += $2 } END { print s }' "$T/m")
expect_eq "http: /metrics: shards' accepted" "$sum" \
    "$(awk '/^porch_requests_accepted_total/ { print $2 }' "$T/m")"
pid=$(cat "$T/http.pid")
usr1() {
	kill -USR1 "$pid"
	grep -q "^shard 1 .*accepted [1-9]" "$T/http.err"
}
wait_for 10 usr1 && ok || fail "http: SIGUSR1 printed no shard lines: $(tail -5 "$T/http.err")"
grep -q "pipeline 'load' after .*accepted [1-9]" "$T/http.err" && ok ||
    fail "http: SIGUSR1 printed no sum: $(tail -5 "$T/http.err")"
kill -TERM "$pid"
wait "$bg"
expect_eq "http: SIGTERM: exit status" "$?" 0
grep -q "SIGTERM: draining .* on 2 shards" "$T/http.err" && ok ||
    fail "http: no drain message: $(tail -3 "$T/http.err")"
balanced "$T/http.json" && ok || fail "http: the books do not balance: $(cat "$T/http.json")"
expect_eq "http: shards' accepted" "$(sum_shards "$T/http.json" accepted)" \
    "$(json_get "$T/http.json" accepted)"

finish
