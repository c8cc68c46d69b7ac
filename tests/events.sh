#!/bin/sh
# events.sh -- ABI 1.2 as a source sees it: events about traced requests,
# cancelling a request held by the inference stage, and the metrics text.
. "$top_srcdir/tests/lib.sh"

probe_dir="$top_builddir/tests/plugins/.libs"
[ -f "$probe_dir/probe.so" ] || { echo "no $probe_dir/probe.so" >&2; exit 1; }

# pipeline FILE PROBE-PARAMS WORKER-PARAMS INFERENCE-PARAMS
pipeline() {
	cat > "$1" <<XML
<?xml version="1.0"?>
<pipeline name="events" version="1">
  <worker name="model" plugin="echo">$3</worker>
  <stage name="src" plugin="probe">$2</stage>
  <stage name="infer" plugin="inference" worker="model">$4</stage>
  <stage name="out" plugin="null"/>
  <channel from="src" to="infer" capacity="8" overflow="reject"/>
  <channel from="infer" to="out"/>
</pipeline>
XML
}

p() {
	printf '<param name="%s">%s</param>' "$1" "$2"
}

# 1. events in order; request 2 is cancelled while its call runs: it fails
# as cancelled at once, and the others complete
pipeline "$T/e.xml" "$(p count 3; p cancel 2; p metrics metrics.txt)" "$(p delay-ms 300)" ""
"$PORCH" run -q --plugin-path "$probe_dir" --stats-json "$T/s.json" "$T/e.xml" 2> "$T/err"
expect_eq "cancel: exit status" "$?" 0
grep '^probe: 1 ' "$T/err" > "$T/one"
printf 'probe: 1 enter infer\nprobe: 1 leave infer\nprobe: 1 enter out\nprobe: 1 leave out\nprobe: 1 outcome completed none: \n' > "$T/want"
cmp -s "$T/one" "$T/want" && ok || fail "events of request 1: $(cat "$T/one")"
grep -q "^probe: 2 outcome failed cancelled: the client went away (during attempt 1)$" "$T/err" &&
    ok || fail "cancel: $(grep 'probe: 2' "$T/err")"
expect_eq "cancel: completed" "$(json_get "$T/s.json" completed)" 2
expect_eq "cancel: failed" "$(json_get "$T/s.json" failed)" 1

# 2. the metrics text: totals that add up, a stage's histogram, a worker
m="$T/metrics.txt"
grep -q '^porch_requests_accepted_total{pipeline="events"} 3$' "$m" && ok || fail "metrics: accepted: $(head -20 "$m")"
grep -q '^porch_requests_total{pipeline="events",outcome="completed"} 2$' "$m" && ok || fail "metrics: completed"
grep -q '^porch_requests_total{pipeline="events",outcome="failed"} 1$' "$m" && ok || fail "metrics: failed"
grep -q '^porch_stage_latency_seconds_count{stage="infer"} 3$' "$m" && ok || fail "metrics: infer latency count"
grep -q '^porch_stage_latency_seconds_bucket{stage="infer",le="0.1"} 1$' "$m" && ok ||
    fail "metrics: one request (cancelled after 20 ms) under 0.1 s: $(grep 'infer",le="0.1"' "$m")"
grep -q '^porch_stage_latency_seconds_bucket{stage="infer",le="+Inf"} 3$' "$m" && ok || fail "metrics: +Inf bucket"
grep -q '^porch_channel_capacity{from="src",port="out",to="infer"} 8$' "$m" && ok || fail "metrics: capacity"
grep -q '^porch_worker_calls_total{worker="model"} 3$' "$m" && ok || fail "metrics: worker calls"
grep -q '^# TYPE porch_stage_latency_seconds histogram$' "$m" && ok || fail "metrics: histogram type"
if command -v promtool > /dev/null; then
	promtool check metrics < "$m" > "$T/prom" 2>&1 && ok || fail "promtool: $(cat "$T/prom")"
fi

# 3. a retry is an event, with why and when
pipeline "$T/r.xml" "$(p count 1)" "$(p fail-rate 1)" "$(p retries 1; p backoff-ms 1)"
"$PORCH" run -q --plugin-path "$probe_dir" "$T/r.xml" 2> "$T/err"
grep -Eq '^probe: 1 retry infer attempt 2 in [0-9]+ ms, after upstream: echo: simulated failure$' "$T/err" &&
    ok || fail "retry event: $(cat "$T/err")"
grep -q '^probe: 1 outcome failed upstream: echo: simulated failure (2 attempts, retries exhausted)$' "$T/err" &&
    ok || fail "retry outcome: $(cat "$T/err")"

# 4. shed requests count in the metrics' refusals: 20 into a channel of 8
pipeline "$T/shed.xml" "$(p count 20; p metrics shed.txt)" "$(p delay-ms 10)" ""
"$PORCH" run -q --plugin-path "$probe_dir" "$T/shed.xml" 2> /dev/null
grep -q '^porch_channel_refused_total{from="src",port="out",to="infer",reason="reject"} 12$' "$T/shed.txt" &&
    ok || fail "metrics: refusals $(grep refused "$T/shed.txt")"
grep -q '^porch_requests_total{pipeline="events",outcome="shed"} 12$' "$T/shed.txt" && ok ||
    fail "metrics: shed $(grep requests_total "$T/shed.txt")"

finish
