#!/bin/sh
# pool.sh -- worker pools (porch.xml(5), POOLS) with echo workers: shares
# by weight, ejection after failures in a row (not for 4xx), retries on
# another member, fallbacks, the context fallback, 503 with Retry-After
# when every member is out, probes, /readyz, and in-flight counts back to
# 0 after failures, timeouts and cancellations.  pipelines/balance.xml
# has its own test, tests/balance.sh.
. "$top_srcdir/tests/lib.sh"

FAILING='<param name="fail-first">1000000</param><param name="fail-status">503</param>'
# pool NAME POOL-ATTRS MEMBERS-AND-PARAMS [WORKERS] [INFERENCE-PARAMS]
# workers a and b answer; c fails (fail-first); big answers too
pool() {
	cat > "$T/$1.xml" <<XML
<?xml version="1.0"?>
<pipeline name="$1" version="1">
  <worker name="a" plugin="echo"/>
  <worker name="b" plugin="echo"/>
  <worker name="big" plugin="echo"/>
  <worker name="c" plugin="echo">${4:-$FAILING}</worker>
  <pool name="model" $2>
$3
  </pool>
  <stage name="in" plugin="stdin"/>
  <stage name="infer" plugin="inference" worker="model"><param name="backoff-ms">0</param>${5:-}</stage>
  <stage name="out" plugin="stdout"/>
  <channel from="in" to="infer"/>
  <channel from="infer" to="out"/>
</pipeline>
XML
}
# run NAME [LINES]: that many lines (20) through it; the statistics table
# and failures in $T/NAME.err
run() {
	seq 1 "${2:-20}" | sed 's/^/hello /' |
	    "$PORCH" run --stats-json "$T/$1.json" "$T/$1.xml" > "$T/$1.out" 2> "$T/$1.err"
	expect_eq "$1: exit status" "$?" 0
}
# calls NAME WORKER: the worker's calls, from the statistics table
calls() {
	sed -n "s/^worker $2 *plugin [a-z]* *calls \([0-9]*\),.*/\1/p" "$T/$1.err"
}
# replica NAME WORKER FIELD: a replica's number (requests, ejections, 5xx,
# 4xx, in flight ...) from the statistics table
replica() {
	sed -n "s/^  replica $2 .*[ (]$3 \([0-9]*\).*/\1/p" "$T/$1.err"
}
# ejected NAME WORKER: yes when the table shows the replica ejected
ejected() {
	grep -q "^  replica $2 .*(ejected)" "$T/$1.err" && echo yes || echo no
}

# ---- weights: smooth weighted round robin gives exact shares ---------------
pool rr 'policy="round-robin"' '<member worker="a" weight="3"/><member worker="b"/>'
run rr 40
expect_eq "rr: completed" "$(json_get "$T/rr.json" completed)" 40
expect_eq "rr: a's calls" "$(calls rr a)" 30
expect_eq "rr: b's calls" "$(calls rr b)" 10
expect_eq "rr: a's requests as a replica" "$(replica rr a requests)" 30

# ---- session: a session's requests stay on one member ---------------------
pool sess 'policy="session"' '<member worker="a"/><member worker="b"/><member worker="big"/>'
for i in $(seq 1 12); do echo '{"text": "hello", "session": "user-1"}'; done |
    "$PORCH" run "$T/sess.xml" > /dev/null 2> "$T/sess.err"
expect_eq "session: exit" "$?" 0
expect_eq "session: one member took them all" \
    "$(for w in a b big; do calls sess $w; done | sort -n | tr '\n' ' ')" "0 0 12 "

# ---- a failing member is ejected; retries go to the others ----------------
pool eject 'policy="round-robin"' '<member worker="a"/><member worker="c"/>
    <param name="failures">3</param><param name="cooldown">1h</param>'
run eject 20
expect_eq "eject: completed" "$(json_get "$T/eject.json" completed)" 20
expect_eq "eject: failed" "$(json_get "$T/eject.json" failed)" 0
expect_eq "eject: c's calls (3 in a row, then out)" "$(calls eject c)" 3
expect_eq "eject: c's ejections" "$(replica eject c ejections)" 1
expect_eq "eject: c's 5xx" "$(replica eject c 5xx)" 3
expect_eq "eject: c ejected at the end" "$(ejected eject c)" yes
expect_eq "eject: in flight" "$(replica eject a 'in flight')$(replica eject c 'in flight')" 00

# ---- 4xx is the request's fault, not the member's: no ejection ------------
pool four 'policy="round-robin"' '<member worker="a"/><member worker="c"/>
    <param name="failures">2</param>' \
    '<param name="fail-first">1000000</param><param name="fail-status">400</param>'
run four 20
expect_eq "4xx: c's calls" "$(calls four c)" 10
expect_eq "4xx: failed (400 is not retried)" "$(json_get "$T/four.json" failed)" 10
expect_eq "4xx: c's ejections" "$(replica four c ejections)" 0
expect_eq "4xx: c's 4xx" "$(replica four c 4xx)" 10
expect_eq "4xx: c not ejected" "$(ejected four c)" no

# ---- a member that recovers: back after its cooldown, on probation --------
# (one request at a time, a taking 2 ms: the 1 ms cooldown passes)
pool recover 'policy="round-robin"' '<member worker="a"/><member worker="c"/>
    <param name="failures">2</param><param name="cooldown">1ms</param>' \
    '<param name="fail-first">2</param>'
sed -i 's#<worker name="a" plugin="echo"/>#<worker name="a" plugin="echo"><param name="delay-ms">2</param></worker>#;
    s#<stage name="infer" #<stage name="infer" concurrency="1" #' "$T/recover.xml"
run recover 30
expect_eq "recover: completed" "$(json_get "$T/recover.json" completed)" 30
expect_eq "recover: c ejected once" "$(replica recover c ejections)" 1
c=$(calls recover c)
[ "$c" -gt 3 ] && ok || fail "recover: c took $c calls: it never came back"

# ---- every member out: fails at once, 503 with the time until one returns -
pool out '' '<member worker="c"/>
    <param name="failures">1</param><param name="cooldown">1h</param>
    <param name="max-ejected-percent">100</param>' '' '<param name="retries">0</param>'
run out 5
expect_eq "all out: failed" "$(json_get "$T/out.json" failed)" 5
expect_eq "all out: c's calls" "$(calls out c)" 1
grep -q "failed: upstream: pool 'model': every member is ejected (the first returns in [0-9]* ms)" \
    "$T/out.err" && ok || fail "all out: $(cat "$T/out.err")"
n=$(sed -n 's/^pool model .*unavailable \([0-9]*\).*/\1/p' "$T/out.err")
expect_eq "all out: unavailable" "$n" 4

# ---- an ejection lasts longer each time the member fails again: the
# cooldown (100 ms) doubles, up to max-cooldown.  Two requests at once,
# the pause of the first cooldown, two more: the second of each pair finds
# the member out, and says when it returns
pool grow '' '<member worker="c"/>
    <param name="failures">1</param><param name="cooldown">100ms</param>
    <param name="max-cooldown">10s</param><param name="max-ejected-percent">100</param>' \
    '' '<param name="retries">0</param>'
sed -i 's#<stage name="infer" #<stage name="infer" concurrency="1" #' "$T/grow.xml"
{ printf 'one\ntwo\n'; sleep 0.4; printf 'three\nfour\n'; } |
    "$PORCH" run --stats-json "$T/grow.json" "$T/grow.xml" > /dev/null 2> "$T/grow.err"
expect_eq "grow: exit status" "$?" 0
back() { sed -n "s/.*stdin:$1: .*every member is ejected (the first returns in \([0-9]*\) ms).*/\1/p" "$T/grow.err"; }
b2=$(back 2)
b4=$(back 4)
# (the milliseconds left are rounded up)
[ -n "$b2" ] && [ "$b2" -le 101 ] && ok || fail "grow: the first ejection: '$b2' ms: $(cat "$T/grow.err")"
[ -n "$b4" ] && [ "$b4" -gt 101 ] && [ "$b4" -le 201 ] && ok ||
    fail "grow: the second ejection lasts 200 ms: '$b4' ms left: $(cat "$T/grow.err")"
expect_eq "grow: c's ejections" "$(replica grow c ejections)" 2

# ---- ... and starts again from cooldown after a success: a member on a
# fake upstream switched to failing, to answering, and to failing again;
# its second ejection lasts 100 ms, not 200
fake=${top_builddir:-$top_srcdir}/tests/fake-upstream
if [ -x "$fake" ]; then
	ctl() { printf 'mode %s\n' "$1" > "$T/r.ctl.tmp"; mv "$T/r.ctl.tmp" "$T/r.ctl"; }
	ctl 500
	"$fake" -p "$T/r.port" -c "$T/r.ctl" -t 60 2> /dev/null &
	rpid=$!
	wait_for 10 test -s "$T/r.port" || fail "reset: the fake upstream did not start"
	cat > "$T/reset.xml" <<XML
<?xml version="1.0"?>
<pipeline name="reset" version="1">
  <worker name="r" plugin="openai">
    <param name="base-url">http://127.0.0.1:$(cat "$T/r.port")/v1</param>
    <param name="stream">false</param>
  </worker>
  <pool name="model"><member worker="r"/>
    <param name="failures">1</param><param name="cooldown">100ms</param>
    <param name="max-ejected-percent">100</param>
  </pool>
  <stage name="in" plugin="stdin"/>
  <stage name="infer" plugin="inference" worker="model" concurrency="1">
    <param name="retries">0</param></stage>
  <stage name="out" plugin="stdout"/>
  <channel from="in" to="infer"/>
  <channel from="infer" to="out"/>
</pipeline>
XML
	mkfifo "$T/r.in"
	"$PORCH" run "$T/reset.xml" < "$T/r.in" > "$T/reset.out" 2> "$T/reset.err" &
	pid=$!
	exec 6> "$T/r.in"
	echo one >&6                                  # fails: out for 100 ms
	wait_for 10 grep -q "stdin:1: .*failed" "$T/reset.err" || fail "reset: one did not fail"
	ctl none
	sleep 0.2                                     # the cooldown passes
	echo two >&6                                  # answered: the count resets
	wait_for 10 grep -q "two" "$T/reset.out" || fail "reset: two: $(cat "$T/reset.err")"
	ctl 500
	printf 'three\nfour\n' >&6                  # three fails; four finds it out
	wait_for 10 grep -q "stdin:4: " "$T/reset.err" || fail "reset: four: $(cat "$T/reset.err")"
	exec 6>&-
	wait "$pid"
	b=$(sed -n 's/.*stdin:4: .*every member is ejected (the first returns in \([0-9]*\) ms).*/\1/p' "$T/reset.err")
	[ -n "$b" ] && [ "$b" -le 101 ] && ok ||
	    fail "reset: after a success the ejection lasts the cooldown again: '$b' ms: $(cat "$T/reset.err")"
	kill "$rpid" 2> /dev/null
	wait "$rpid" 2> /dev/null
fi

# ---- at most max-ejected-percent of the pool out at once: of four members
# that all fail, two (50%) are ejected; the other two take the calls
cat > "$T/cap.xml" <<XML
<?xml version="1.0"?>
<pipeline name="cap" version="1">
  <worker name="f1" plugin="echo">$FAILING</worker>
  <worker name="f2" plugin="echo">$FAILING</worker>
  <worker name="f3" plugin="echo">$FAILING</worker>
  <worker name="f4" plugin="echo">$FAILING</worker>
  <pool name="model" policy="round-robin">
    <member worker="f1"/><member worker="f2"/><member worker="f3"/><member worker="f4"/>
    <param name="failures">1</param><param name="cooldown">1h</param>
    <param name="max-ejected-percent">50</param>
  </pool>
  <stage name="in" plugin="stdin"/>
  <stage name="infer" plugin="inference" worker="model"><param name="retries">0</param></stage>
  <stage name="out" plugin="stdout"/>
  <channel from="in" to="infer"/>
  <channel from="infer" to="out"/>
</pipeline>
XML
run cap 20
expect_eq "cap: failed" "$(json_get "$T/cap.json" failed)" 20
expect_eq "cap: ejected at the end" "$(grep -c '^  replica f[1-4] .*(ejected)' "$T/cap.err")" 2
n=0
for w in f1 f2 f3 f4; do n=$((n + $(replica cap $w ejections))); done
expect_eq "cap: ejections" "$n" 2

# ---- fallbacks: an ordered list, used when the pool has nowhere to go -----
pool fb 'fallback="spare, big"' '<member worker="c"/>
    <param name="failures">1</param><param name="max-ejected-percent">100</param>
    <param name="cooldown">1h</param>'
sed -i 's#<stage name="in"#<pool name="spare"><member worker="c"/><param name="failures">1</param><param name="max-ejected-percent">100</param><param name="cooldown">1h</param></pool>\n  <stage name="in"#' "$T/fb.xml"
run fb 10
expect_eq "fallback: completed" "$(json_get "$T/fb.json" completed)" 10
expect_eq "fallback: big's calls" "$(calls fb big)" 10
n=$(sed -n 's/^pool model .*fallbacks \([0-9]*\),.*/\1/p' "$T/fb.err")
# the first request: c in model fails, then c in spare (health is kept
# per pool), then big; the nine others go to big at once
expect_eq "fallback: counted" "$n" 11

# porch graph shows the pools, their members and fallbacks
"$PORCH" graph "$T/fb.xml" > "$T/fb.dot"
expect_eq "graph: exit" "$?" 0
for edge in '"pool:model" \[shape=component, label="model\\n(pool, least-loaded)"\];' \
    '"pool:model" -> "worker:c" \[style=dotted, arrowhead=none, label="weight 1"\];' \
    '"pool:model" -> "pool:spare" \[style=dashed, label="fallback 1"\];' \
    '"pool:model" -> "worker:big" \[style=dashed, label="fallback 2"\];' \
    '"infer" -> "pool:model" \[style=dotted, arrowhead=none\];'; do
	grep -q "^	$edge\$" "$T/fb.dot" && ok || fail "graph: no $edge in $(cat "$T/fb.dot")"
done

# ... and after every member failed a request
pool fb2 'fallback="big"' '<member worker="c"/><member worker="b"/>
    <param name="failures">100</param>' \
    '<param name="fail-first">1000000</param><param name="fail-status">503</param>' \
    '<param name="retries">2</param>'
sed -i 's#<member worker="b"/>#<member worker="c2"/>#; s#<worker name="b" plugin="echo"/>#<worker name="c2" plugin="echo"><param name="fail-first">1000000</param></worker>#' "$T/fb2.xml"
run fb2 6
expect_eq "fallback after failures: completed" "$(json_get "$T/fb2.json" completed)" 6
expect_eq "fallback after failures: big's calls" "$(calls fb2 big)" 6
expect_eq "fallback after failures: c's and c2's calls" "$(calls fb2 c) $(calls fb2 c2)" "6 6"

# ---- context fallback: a prompt over a member's context-limit goes elsewhere
pool ctx 'policy="round-robin"' '<member worker="a" context-limit="4"/><member worker="b"/>'
{ seq 1 10 | sed 's/^/hi /'; seq 1 10 | sed 's/^/a prompt well over sixteen bytes long /'; } |
    "$PORCH" run --stats-json "$T/ctx.json" "$T/ctx.xml" > "$T/ctx.out" 2> "$T/ctx.err"
expect_eq "context: exit" "$?" 0
expect_eq "context: completed" "$(json_get "$T/ctx.json" completed)" 20
expect_eq "context: a's calls (short prompts only)" "$(calls ctx a)" 5
expect_eq "context: b's calls" "$(calls ctx b)" 15
pool ctx2 '' '<member worker="a" context-limit="4"/>' '' '<param name="retries">0</param>'
echo "a prompt well over sixteen bytes long" |
    "$PORCH" run -q --stats-json "$T/ctx2.json" "$T/ctx2.xml" > /dev/null 2> "$T/ctx2.err"
grep -q "failed: bad-request: the prompt is about 10 tokens (with max-tokens): more than the context-limit of every member of pool 'model'" \
    "$T/ctx2.err" && ok || fail "context, no fallback: $(cat "$T/ctx2.err")"

# ---- --set reaches a pool's parameters ------------------------------------
(cd "$T" && "$PORCH" check --set model.failure=2 ctx.xml) > /dev/null 2> "$T/set.err"
expect_eq "--set: exit" "$?" 2
expect_eq "--set: message" "$(grep error "$T/set.err")" \
    "ctx.xml: error: pool 'model': unknown parameter 'failure'; did you mean 'failures'?"
pool set 'policy="round-robin"' '<member worker="a"/><member worker="c"/>'
seq 1 20 | "$PORCH" run --set model.failures=1 --set model.cooldown=1h "$T/set.xml" \
    > /dev/null 2> "$T/set.err"
expect_eq "--set: c's calls with failures 1" "$(sed -n 's/^worker c *plugin [a-z]* *calls \([0-9]*\),.*/\1/p' "$T/set.err")" 1

# ---- over http: 503 with Retry-After, /readyz, probes, in-flight counts ---
if command -v curl > /dev/null; then
	unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
	cat > "$T/http.xml" <<XML
<?xml version="1.0"?>
<pipeline name="h" version="1">
  <worker name="good" plugin="echo"><param name="delay-ms">20</param></worker>
  <worker name="slow" plugin="echo"><param name="delay-ms">3000</param></worker>
  <worker name="bad" plugin="echo"><param name="fail-first">1000000</param><param name="delay-ms">10</param></worker>
  <worker name="flaky" plugin="echo"><param name="fail-first">1</param></worker>
  <worker name="hung" plugin="echo"><param name="delay-ms">5000</param></worker>
  <pool name="hang"><member worker="hung"/></pool>
  <pool name="mixed" policy="round-robin">
    <member worker="good"/><member worker="slow"/><member worker="bad"/>
    <param name="failures">1000</param>
  </pool>
  <pool name="lone">
    <member worker="flaky"/>
    <param name="failures">1</param><param name="cooldown">1h</param>
    <param name="max-ejected-percent">100</param>
  </pool>
  <stage name="ingress" plugin="http">
    <param name="listen">127.0.0.1:0</param>
    <param name="port-file">$T/port</param>
  </stage>
  <stage name="m" plugin="inference" worker="mixed">
    <param name="retries">0</param><param name="timeout-ms">300</param>
  </stage>
  <stage name="l" plugin="inference" worker="lone"><param name="retries">0</param></stage>
  <stage name="h" plugin="inference" worker="hang"><param name="retries">0</param></stage>
  <stage name="reply" plugin="reply"/>
  <channel from="ingress" to="m" when="model == 'mixed'"/>
  <channel from="ingress" to="h" when="model == 'hang'"/>
  <channel from="ingress" to="l" otherwise="true"/>
  <channel from="m" to="reply"/>
  <channel from="l" to="reply"/>
  <channel from="m:error" to="reply"/>
  <channel from="l:error" to="reply"/>
  <channel from="h" to="reply"/>
  <channel from="h:error" to="reply"/>
</pipeline>
XML
	"$PORCH" run -q "$T/http.xml" > /dev/null 2> "$T/http.err" &
	pid=$!
	wait_for 20 test -s "$T/port" || fail "http: porch did not start: $(cat "$T/http.err")"
	U="http://127.0.0.1:$(cat "$T/port")"
	chat() { # MODEL [CURL-ARGS]
		_m=$1
		shift
		curl -s "$@" -H 'Content-Type: application/json' \
		    -d '{"model":"'"$_m"'","messages":[{"role":"user","content":"hi there"}]}' \
		    "$U/v1/chat/completions"
	}
	code=$(curl -s -o /dev/null -w '%{http_code}' "$U/readyz")
	expect_eq "http: ready at first" "$code" 200
	# flaky fails once: ejected, and lone has no other member
	chat lone -o /dev/null
	curl -s -i -H 'Content-Type: application/json' \
	    -d '{"model":"lone","messages":[{"role":"user","content":"hi"}]}' \
	    "$U/v1/chat/completions" > "$T/503"
	head -n 1 "$T/503" | grep -q " 503" && ok || fail "http: all ejected: $(head -n 1 "$T/503")"
	grep -qi "^retry-after: [0-9]" "$T/503" && ok || fail "http: no Retry-After: $(cat "$T/503")"
	curl -s -o "$T/readyz" -w '%{http_code}' "$U/readyz" > "$T/code"
	expect_eq "http: /readyz while lone is out" "$(cat "$T/code")" 503
	grep -q '"pool": *"lone"' "$T/readyz" && ok || fail "http: /readyz: $(cat "$T/readyz")"

	# mixed: answers, failures, timeouts (slow, 300 ms) and cancellations
	for i in 1 2 3 4 5 6 7 8 9; do chat mixed -o /dev/null & done
	for i in 1 2 3; do chat mixed -o /dev/null --max-time 0.1 & done
	# hang's member answers in 5 s: these three are cancelled by their clients
	for i in 1 2 3; do chat hang -o /dev/null --max-time 0.3 & done
	wait_for 5 sh -c "curl -s '$U/metrics' | grep -q '^porch_replica_requests_total{pool=\"mixed\",replica=\"slow\"} [1-9]'"
	sleep_until_idle() {
		curl -s "$U/metrics" > "$T/m" &&
		    grep -q '^porch_requests_in_flight{pipeline="h"} 0$' "$T/m" &&
		    ! grep -q '^porch_replica_in_flight{.*} [1-9]' "$T/m"
	}
	wait_for 15 sleep_until_idle || fail "http: still in flight: $(grep in_flight "$T/m")"
	for r in good slow bad; do
		expect_eq "http: $r's in flight at the end" \
		    "$(sed -n "s/^porch_replica_in_flight{pool=\"mixed\",replica=\"$r\"} //p" "$T/m")" 0
	done
	expect_eq "http: hung's calls" \
	    "$(sed -n 's/^porch_replica_requests_total{pool="hang",replica="hung"} //p' "$T/m")" 3
	expect_eq "http: hung's in flight after 3 cancellations" \
	    "$(sed -n 's/^porch_replica_in_flight{pool="hang",replica="hung"} //p' "$T/m")" 0
	# held about 0.3 s each, until their clients left, not the 5 s of an answer
	awk '/^porch_stage_latency_seconds_sum\{stage="h"\}/ { exit !($2 < 4) }' "$T/m" &&
	    ok || fail "http: hang's requests were not cancelled: $(grep 'stage="h"' "$T/m")"
	expect_eq "http: cancellations are no errors" \
	    "$(sed -n 's/^porch_replica_errors_total{pool="hang",replica="hung",kind="[a-z0-9]*"} //p' "$T/m" | sort -u)" 0
	n=$(sed -n 's/^porch_replica_errors_total{pool="mixed",replica="slow",kind="timeout"} //p' "$T/m")
	[ "${n:-0}" -ge 1 ] && ok || fail "http: slow's timeouts: $n"
	n=$(sed -n 's/^porch_replica_errors_total{pool="mixed",replica="bad",kind="5xx"} //p' "$T/m")
	[ "${n:-0}" -ge 1 ] && ok || fail "http: bad's 5xx: $n"
	grep -q '^porch_replica_ejected{pool="lone",replica="flaky"} 1$' "$T/m" &&
	    ok || fail "http: flaky not shown ejected: $(grep flaky "$T/m")"
	grep -q '^porch_pool_unavailable_total{pool="lone"} [1-9]' "$T/m" &&
	    ok || fail "http: unavailable not counted"
	grep -q '^porch_replica_ttft_seconds_count{pool="mixed",replica="good"} [1-9]' "$T/m" &&
	    ok || fail "http: no time to first token for good"
	books_balance "$T/m" && ok || fail "http: the books do not balance"
	kill "$pid"
	wait "$pid"

	# probes bring an ejected member back before its cooldown is over
	sed 's#<param name="max-ejected-percent">100</param>#&<param name="probe-interval">50ms</param>#' \
	    "$T/http.xml" > "$T/probe.xml"
	rm -f "$T/port"
	"$PORCH" run -q "$T/probe.xml" > /dev/null 2> "$T/probe.err" &
	pid=$!
	wait_for 20 test -s "$T/port" || fail "probe: porch did not start: $(cat "$T/probe.err")"
	U="http://127.0.0.1:$(cat "$T/port")"
	chat lone -o /dev/null
	back() { curl -s "$U/metrics" | grep -q '^porch_replica_ejected{pool="lone",replica="flaky"} 0$'; }
	ejections() { curl -s "$U/metrics" | sed -n 's/^porch_replica_ejections_total{pool="lone",replica="flaky"} //p'; }
	expect_eq "probe: flaky ejected once" "$(ejections)" 1
	wait_for 5 back && ok || fail "probe: flaky did not come back"
	chat lone > "$T/answer"
	grep -q '"content":"hi there"' "$T/answer" && ok || fail "probe: after: $(cat "$T/answer")"
	kill "$pid"
	wait "$pid"

	# a fallback step is a trace event; counters go on across a reload
	cat > "$T/ev.xml" <<XML
<?xml version="1.0"?>
<pipeline name="ev" version="1">
  <worker name="big" plugin="echo"/>
  <worker name="c" plugin="echo">$FAILING</worker>
  <pool name="model" fallback="big">
    <member worker="c"/>
    <param name="failures">1</param><param name="max-ejected-percent">100</param>
    <param name="cooldown">1h</param>
  </pool>
  <stage name="ingress" plugin="http">
    <param name="listen">127.0.0.1:0</param>
    <param name="port-file">$T/evport</param>
  </stage>
  <stage name="m" plugin="inference" worker="model"><param name="backoff-ms">0</param></stage>
  <stage name="reply" plugin="reply"/>
  <channel from="ingress" to="m"/>
  <channel from="m" to="reply"/>
</pipeline>
XML
	"$PORCH" run -q --pid-file "$T/ev.pid" "$T/ev.xml" > /dev/null 2> "$T/ev.err" &
	pid=$!
	wait_for 20 test -s "$T/evport" || fail "events: porch did not start: $(cat "$T/ev.err")"
	U="http://127.0.0.1:$(cat "$T/evport")"
	curl -s -o "$T/task" "$U/v1/tasks" -d '{"payload":"'"$(printf 'a task' | base64)"'"}'
	id=$(sed -n 's/.*"task_id":"\([^"]*\)".*/\1/p' "$T/task")
	wait_for 10 sh -c "curl -s '$U/v1/tasks/$id' | grep -q '\"status\":\"completed\"'" ||
	    fail "events: the task did not complete: $(curl -s "$U/v1/tasks/$id")"
	curl -s "$U/v1/tasks/$id/events" > "$T/events"
	grep -q "pool 'model' -> worker 'big'" "$T/events" && ok ||
	    fail "events: no fallback event: $(cat "$T/events")"
	grep -q '^event: fallback' "$T/events" && ok || fail "events: $(cat "$T/events")"
	metric() { curl -s "$U/metrics" | sed -n "s/^$1 //p"; }
	expect_eq "reload: requests before" "$(metric 'porch_replica_requests_total{pool="model",replica="c"}')" 1
	kill -HUP "$(cat "$T/ev.pid")"
	reloaded() { [ "$(metric 'porch_reloads_total{pipeline="ev",result="ok"}')" = 1 ]; }
	wait_for 10 reloaded || fail "reload: not reloaded: $(cat "$T/ev.err")"
	chat x -o /dev/null
	# c, ejected for an hour before the reload, is still out after it
	expect_eq "reload: c stays out" "$(metric 'porch_replica_ejected{pool="model",replica="c"}')" 1
	expect_eq "reload: c's requests" "$(metric 'porch_replica_requests_total{pool="model",replica="c"}')" 1
	expect_eq "reload: fallbacks go on" "$(metric 'porch_pool_fallbacks_total{pool="model"}')" 2
	expect_eq "reload: ejections" "$(metric 'porch_replica_ejections_total{pool="model",replica="c"}')" 1
	kill "$pid"
	wait "$pid"

	# the openai worker's probe: GET base-url + health-path; a member whose
	# server is down is out before any request pays for it
	fake=${top_builddir:-$top_srcdir}/tests/fake-upstream
	if [ -x "$fake" ]; then
		"$fake" -p "$T/fake.port" -t 120 &
		fpid=$!
		wait_for 10 test -s "$T/fake.port" || fail "probe: the fake upstream did not start"
		fport=$(cat "$T/fake.port")
		cat > "$T/oprobe.xml" <<XML
<?xml version="1.0"?>
<pipeline name="o" version="1">
  <worker name="up" plugin="openai">
    <param name="base-url">http://127.0.0.1:$fport/v1</param>
    <param name="health-path">/_requests</param>
  </worker>
  <worker name="down" plugin="openai">
    <param name="base-url">http://127.0.0.1:1/v1</param>
    <param name="health-path">/_requests</param>
  </worker>
  <pool name="model" policy="round-robin">
    <member worker="up"/><member worker="down"/>
    <param name="probe-interval">50ms</param>
  </pool>
  <stage name="ingress" plugin="http">
    <param name="listen">127.0.0.1:0</param>
    <param name="port-file">$T/oport</param>
  </stage>
  <stage name="m" plugin="inference" worker="model"><param name="retries">0</param></stage>
  <stage name="reply" plugin="reply"/>
  <channel from="ingress" to="m"/>
  <channel from="m" to="reply"/>
  <channel from="m:error" to="reply"/>
</pipeline>
XML
		"$PORCH" run -q "$T/oprobe.xml" > /dev/null 2> "$T/oprobe.err" &
		pid=$!
		wait_for 20 test -s "$T/oport" || fail "openai probe: porch did not start: $(cat "$T/oprobe.err")"
		U="http://127.0.0.1:$(cat "$T/oport")"
		down_out() { curl -s "$U/metrics" | grep -q '^porch_replica_ejected{pool="model",replica="down"} 1$'; }
		wait_for 5 down_out && ok || fail "openai probe: down not ejected: $(curl -s "$U/metrics" | grep replica_ejected)"
		for i in 1 2 3 4; do
			chat model -o /dev/null -w '%{http_code}\n'
		done > "$T/codes"
		expect_eq "openai probe: answers" "$(sort -u "$T/codes")" 200
		curl -s "$U/metrics" > "$T/m"
		grep -q '^porch_replica_requests_total{pool="model",replica="down"} 0$' "$T/m" &&
		    ok || fail "openai probe: down took requests: $(grep requests_total "$T/m")"
		grep -q '^porch_replica_ejected{pool="model",replica="up"} 0$' "$T/m" &&
		    ok || fail "openai probe: up ejected: $(grep replica_ejected "$T/m")"
		kill "$pid"
		wait "$pid"
		kill "$fpid"
	fi

	# a pool whose every member fails is not ready, even when
	# max-ejected-percent keeps one of them in (it takes calls all the same)
	cat > "$T/capped.xml" <<XML
<?xml version="1.0"?>
<pipeline name="capped" version="1">
  <worker name="x" plugin="echo"><param name="fail-first">1000000</param></worker>
  <worker name="y" plugin="echo"><param name="fail-first">1000000</param></worker>
  <pool name="two" policy="round-robin">
    <member worker="x"/><member worker="y"/>
    <param name="failures">1</param><param name="cooldown">1h</param>
    <param name="max-ejected-percent">50</param>
  </pool>
  <stage name="ingress" plugin="http">
    <param name="listen">127.0.0.1:0</param>
    <param name="port-file">$T/cport</param>
  </stage>
  <stage name="m" plugin="inference" worker="two"><param name="retries">0</param></stage>
  <stage name="reply" plugin="reply"/>
  <channel from="ingress" to="m"/>
  <channel from="m" to="reply"/>
  <channel from="m:error" to="reply"/>
</pipeline>
XML
	"$PORCH" run -q "$T/capped.xml" > /dev/null 2> "$T/capped.err" &
	pid=$!
	wait_for 20 test -s "$T/cport" || fail "capped: porch did not start: $(cat "$T/capped.err")"
	U="http://127.0.0.1:$(cat "$T/cport")"
	expect_eq "capped: ready at first" "$(curl -s -o /dev/null -w '%{http_code}' "$U/readyz")" 200
	for i in 1 2 3 4; do chat two -o /dev/null; done
	curl -s "$U/metrics" > "$T/cm"
	expect_eq "capped: one ejected (50%)" \
	    "$(grep -c '^porch_replica_ejected{pool="two",replica="[xy]"} 1$' "$T/cm")" 1
	curl -s -o "$T/creadyz" -w '%{http_code}' "$U/readyz" > "$T/ccode"
	expect_eq "capped: not ready, the member left in failing" "$(cat "$T/ccode")" 503
	grep -q '"pool": *"two"' "$T/creadyz" && ok || fail "capped: /readyz: $(cat "$T/creadyz")"
	kill "$pid"
	wait "$pid"
fi

finish
