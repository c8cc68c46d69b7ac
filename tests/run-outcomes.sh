#!/bin/sh
# run-outcomes.sh -- every accepted request ends in exactly one outcome.
#
# Drives pipelines at 10x what their slowest stage can take, with each
# overflow policy, deadlines, failures and dead letters, and checks from
# --stats-json that accepted = completed + failed + shed + expired and that
# the per-channel and per-stage counters moved where they should.
. "$top_srcdir/tests/lib.sh"

# pipeline FILE OVERFLOW GEN-PARAMS ECHO-PARAMS CONCURRENCY [EXTRA-CHANNELS]
pipeline() {
	cat > "$1" <<XML
<?xml version="1.0"?>
<pipeline name="overload" version="1" max-inflight="${MAXIN:-65536}">
  <worker name="model" plugin="echo">$4</worker>
  <stage name="src" plugin="gen">$3</stage>
  <stage name="slow" plugin="inference" worker="model" concurrency="$5">${INF:-}</stage>
  <stage name="sink" plugin="null"/>
  <stage name="dlq" plugin="null"/>
  <channel from="src" to="slow" capacity="${CAP:-32}" overflow="$2"/>
  <channel from="slow" to="sink" capacity="64"/>
  <channel from="slow:error" to="dlq" capacity="64"/>
</pipeline>
XML
}

p() {
	printf '<param name="%s">%s</param>' "$1" "$2"
}

# totals FILE: "accepted completed failed shed expired in_flight"
totals() {
	echo "$(json_get "$1" accepted) $(json_get "$1" completed) $(json_get "$1" failed)" \
	    "$(json_get "$1" shed) $(json_get "$1" expired) $(json_get "$1" in_flight)"
}

# invariant NAME FILE WANT-ACCEPTED
invariant() {
	set -- "$1" "$2" "$3" $(totals "$2")
	expect_eq "$1: accepted" "$4" "$3"
	expect_eq "$1: accepted = completed + failed + shed + expired" \
	    "$4" "$(($5 + $6 + $7 + $8))"
	expect_eq "$1: in flight at exit" "$9" 0
}

# channel_field FILE FROM KEY: a field of the channel leaving stage FROM
channel_field() {
	tr -d ' \n' < "$1" | sed 's/},{/}\n{/g' | grep "\"from\":\"$2\"" | grep '"rejected"' |
	    sed -n "s/.*\"$3\":\([0-9]*\).*/\1/p" | head -n 1
}

# stage_field FILE STAGE KEY
stage_field() {
	tr -d ' \n' < "$1" | sed 's/"latency":{[^}]*}//g; s/},{/}\n{/g' |
	    grep "\"name\":\"$2\"" | sed -n "s/.*\"$3\":\([0-9]*\).*/\1/p" | head -n 1
}

# 1. reject at 10x: the slow stage takes 4 x 100/s = 400/s; gen offers 4000/s.
pipeline "$T/reject.xml" reject "$(p count 4000; p rate 4000)" "$(p delay-ms 10)" 4
"$PORCH" run -q --stats-json "$T/reject.json" "$T/reject.xml" || fail "reject run exited $?"
invariant reject "$T/reject.json" 4000
shed=$(json_get "$T/reject.json" shed)
[ "$shed" -gt 2000 ] && ok || fail "reject: only $shed shed at 10x overload"
expect_eq "reject: channel refusals = shed" "$(channel_field "$T/reject.json" src rejected)" "$shed"
expect_eq "reject: shed counted at the refusing stage" "$(stage_field "$T/reject.json" slow shed)" "$shed"
completed=$(json_get "$T/reject.json" completed)
[ "$completed" -gt 100 ] && ok || fail "reject: only $completed completed"

# 2. drop-oldest at 10x
pipeline "$T/drop.xml" drop-oldest "$(p count 4000; p rate 4000)" "$(p delay-ms 10)" 4
"$PORCH" run -q --stats-json "$T/drop.json" "$T/drop.xml" || fail "drop-oldest run exited $?"
invariant drop-oldest "$T/drop.json" 4000
shed=$(json_get "$T/drop.json" shed)
[ "$shed" -gt 2000 ] && ok || fail "drop-oldest: only $shed shed"
expect_eq "drop-oldest: channel drops = shed" \
    "$(channel_field "$T/drop.json" src dropped_oldest)" "$shed"
expect_eq "drop-oldest: nothing rejected" "$(channel_field "$T/drop.json" src rejected)" 0

# 3. block: nothing is shed, the source waits; the channel never passes capacity
pipeline "$T/block.xml" block "$(p count 4000; p rate 40000)" "$(p delay-ms 1)" 4
"$PORCH" run -q --stats-json "$T/block.json" "$T/block.xml" || fail "block run exited $?"
invariant block "$T/block.json" 4000
expect_eq "block: completed" "$(json_get "$T/block.json" completed)" 4000
hw=$(channel_field "$T/block.json" src high_water)
[ "$hw" -le 32 ] && ok || fail "block: channel high water $hw above capacity 32"

# 4. deadlines: requests that wait past 50 ms expire instead of running late
CAP=256 pipeline "$T/expire.xml" block "$(p count 300; p deadline 50ms)" "$(p delay-ms 10)" 1
"$PORCH" run -q --stats-json "$T/expire.json" "$T/expire.xml" || fail "expire run exited $?"
invariant expire "$T/expire.json" 300
expired=$(json_get "$T/expire.json" expired)
[ "$expired" -gt 100 ] && ok || fail "expire: only $expired expired"
completed=$(json_get "$T/expire.json" completed)
[ "$completed" -gt 0 ] && ok || fail "expire: nothing completed"

# 5. failures go out the error port to the dead-letter sink, deterministically
INF=$(p retries 0) pipeline "$T/fail.xml" block "$(p count 2000)" "$(p fail-rate 0.25; p seed 7)" 8
"$PORCH" run -q --stats-json "$T/fail1.json" "$T/fail.xml" || fail "fail run exited $?"
"$PORCH" run -q --stats-json "$T/fail2.json" "$T/fail.xml" || fail "fail run 2 exited $?"
invariant fail "$T/fail1.json" 2000
failed=$(json_get "$T/fail1.json" failed)
[ "$failed" -gt 400 ] && [ "$failed" -lt 600 ] && ok || fail "fail: $failed failed of 2000 at rate 0.25"
expect_eq "fail: same seed, same failures" "$(json_get "$T/fail2.json" failed)" "$failed"
expect_eq "fail: every failure reached the dead-letter sink" \
    "$(stage_field "$T/fail1.json" dlq failed)" "$failed"
expect_eq "fail: the sink completed the rest" \
    "$(stage_field "$T/fail1.json" sink completed)" "$((2000 - failed))"

# 5b. with retries, an upstream error that passes is tried again: at a
# failure rate of 0.25 and 2 retries about 0.25^3 = 1.6% fail for good
INF=$(p retries 2; p backoff-ms 1) pipeline "$T/retry.xml" block "$(p count 2000)" \
    "$(p fail-rate 0.25; p seed 7)" 8
"$PORCH" run -q --stats-json "$T/retry.json" "$T/retry.xml" || fail "retry run exited $?"
invariant retry "$T/retry.json" 2000
failed=$(json_get "$T/retry.json" failed)
[ "$failed" -gt 5 ] && [ "$failed" -lt 80 ] && ok ||
    fail "retry: $failed of 2000 failed after 2 retries at rate 0.25"

# 6. max-inflight bounds what piles up, even in front of a roomy channel
MAXIN=8 CAP=1024 pipeline "$T/admit.xml" block "$(p count 500)" "$(p delay-ms 1)" 64
"$PORCH" run -q --stats-json "$T/admit.json" "$T/admit.xml" || fail "admission run exited $?"
invariant admission "$T/admit.json" 500
expect_eq "admission: completed" "$(json_get "$T/admit.json" completed)" 500
hw=$(channel_field "$T/admit.json" src high_water)
[ "$hw" -le 8 ] && ok || fail "admission: $hw requests queued with max-inflight 8"

finish
