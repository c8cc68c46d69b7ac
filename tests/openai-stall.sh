#!/bin/sh
# openai-stall.sh -- the openai worker's stall limits, with both transports.
#
# first-byte-timeout bounds the wait from the request sent to the first
# byte of the answer's body; idle-timeout every silence after that;
# read-timeout, the older single limit, is the value of both where they are
# not given.  Against tests/fake-upstream (its modes are picked by the
# request's "model"), for the native transport and then libcurl's:
#   - stall (the request read, never answered), streamed and not, fails at
#     first-byte-timeout, which the failure names with its value;
#   - stall-mid-stream (a word, then silence) fails at idle-timeout, long
#     before first-byte-timeout (the timer is set again when the body
#     begins);
#   - slow-first-N (the head at once, the body N ms later), N above
#     idle-timeout and below first-byte-timeout, completes, streamed and
#     not; so does a stream whose words come 20 ms apart for longer than
#     idle-timeout in all;
#   - read-timeout alone gives both limits its value, and is named; with
#     idle-timeout given too, that one is the idle limit;
#   - one stalled request does not hold up 30 others sent with it: their
#     answers are all out while the stalled one still waits, and it fails
#     at its limit after them;
#   - bad values of the three are refused by porch check, each with its
#     exact error.
. "$top_srcdir/tests/lib.sh"

: "${top_builddir:=$top_srcdir}"
fake=$top_builddir/tests/fake-upstream
if [ ! -x "$fake" ]; then
	echo "tests/fake-upstream is not built: skipping"
	exit 77
fi
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

pids=
trap 'for p in $pids; do kill "$p" 2>/dev/null; done; rm -rf "$T"' EXIT

"$fake" -p "$T/up.port" -t 600 &
pids="$pids $!"
wait_for 10 test -s "$T/up.port" || { fail "the fake upstream did not start"; finish; }
port=$(cat "$T/up.port")

p() {
	printf '<param name="%s">%s</param>' "$1" "$2"
}

# pipeline FILE WORKER-PARAMS: stdin -> inference (one attempt) -> stdout
pipeline() {
	cat > "$1" <<XML
<?xml version="1.0"?>
<pipeline name="stall" version="1">
  <worker name="model" plugin="openai">
    $(p base-url "http://127.0.0.1:$port/v1")$(p transport "$transport")$2
  </worker>
  <stage name="input" plugin="stdin"/>
  <stage name="infer" plugin="inference" worker="model" concurrency="64">$(p retries 0)</stage>
  <stage name="output" plugin="stdout">$(p stream false)</stage>
  <stage name="dlq" plugin="null"/>
  <channel from="input" to="infer" capacity="64" overflow="block"/>
  <channel from="infer" to="output" capacity="64"/>
  <channel from="infer:error" to="dlq" capacity="64"/>
</pipeline>
XML
}

# line TEXT MODEL [MORE-META]: a JSON request line for stdin
line() {
	printf '{"text": "%s", "meta": {"model": "%s"%s}}\n' "$1" "$2" "${3:-}"
}

# scenario NAME FILE MODEL [MORE-META]: porch run with one request of MODEL
scenario() {
	line "hello big world" "$3" "${4:-}" > "$T/$1.in"
	"$PORCH" run -q --stats-json "$T/$1.json" "$2" < "$T/$1.in" > "$T/$1.out" 2> "$T/$1.err"
	echo $? > "$T/$1.status"
}

# elapsed NAME: the run's whole seconds
elapsed() {
	sed -n 's/^  "elapsed_s": \([0-9]*\)\..*/\1/p' "$T/$1.json"
}

expect_answer() {
	expect_eq "$1: exit status" "$(cat "$T/$1.status")" 0
	expect_eq "$1: answer" "$(cat "$T/$1.out")" "$(printf 'stdin\t%s' "$2")"
	expect_eq "$1: completed" "$(json_get "$T/$1.json" completed)" 1
	expect_eq "$1: nothing on stderr" "$(cat "$T/$1.err")" ""
}

# expect_failure NAME ERROR-TYPE TEXT-PATTERN
expect_failure() {
	expect_eq "$1: exit status" "$(cat "$T/$1.status")" 0
	expect_eq "$1: failed" "$(json_get "$T/$1.json" failed)" 1
	grep -q "^[^ ]* [a-z]* porch: stage [^ ]*: stdin:1: request [0-9]* (session stdin) failed: $2: $3" "$T/$1.err" && ok ||
	    fail "$1: want 'failed: $2: $3', got: $(cat "$T/$1.err")"
}

# ---- bad values: each with its exact error -----------------------------------
transport=native
# bad NAME VALUE ERROR: porch check of a file with <param name=NAME>VALUE
bad() {
	pipeline "$T/bad.xml" "$(p "$1" "$2")"
	"$PORCH" check "$T/bad.xml" > /dev/null 2> "$T/bad.err"
	expect_eq "bad $1 $2: exit status" "$?" 2
	expect_eq "bad $1 $2: error" "$(sed "s|^$T/bad.xml:4:[0-9]*: ||" "$T/bad.err")" \
	    "error: worker 'model' (plugin openai): $3"
}
bad first-byte-timeout 0ms "parameter 'first-byte-timeout': '0ms' is out of range (1 to 86400000ms)"
bad idle-timeout soon "parameter 'idle-timeout': 'soon' is not a duration (an integer with ms, s, m or h, e.g. 250ms)"
bad read-timeout 2d "parameter 'read-timeout': '2d' is not a duration (an integer with ms, s, m or h, e.g. 250ms)"
bad idle-timout 1s "unknown parameter 'idle-timout'; did you mean 'idle-timeout'?"

fb_text="no byte of the answer from upstream"
idle_text="upstream silent for"

for transport in native curl; do
	echo "transport: $transport"
	t=$transport
	# first byte: a short limit, and a long idle one that must not be it
	pipeline "$T/fb-$t.xml" "$(p first-byte-timeout 800ms; p idle-timeout 30s)"
	pipeline "$T/fb-plain-$t.xml" "$(p first-byte-timeout 800ms; p idle-timeout 30s; p stream false)"
	# idle: a short limit, and a first-byte one far above it
	pipeline "$T/idle-$t.xml" "$(p first-byte-timeout 20s; p idle-timeout 400ms)"
	pipeline "$T/idle-plain-$t.xml" "$(p first-byte-timeout 20s; p idle-timeout 400ms; p stream false)"

	for f in fb fb-plain; do
		scenario "stall-$f-$t" "$T/$f-$t.xml" stall
		expect_failure "stall-$f-$t" timeout \
		    "first-byte-timeout: $fb_text 800 ms after the request was sent (1 attempt)$"
		el=$(elapsed "stall-$f-$t")
		[ "${el:-99}" -lt 10 ] && ok || fail "stall-$f-$t: ended after $el s, not at 800 ms"
	done

	scenario "mid-$t" "$T/idle-$t.xml" stall-mid-stream
	expect_failure "mid-$t" timeout \
	    "idle-timeout: $idle_text 400 ms in the middle of the answer (1 attempt, not retried: part of the answer was streamed)$"
	el=$(elapsed "mid-$t")
	[ "${el:-99}" -lt 10 ] && ok ||
	    fail "mid-$t: ended after $el s: idle-timeout (400 ms) was not what ended it"

	# the first byte after 1.2 s: more than idle-timeout, less than first-byte
	want="you said: hello big world"
	for f in idle idle-plain; do
		scenario "slow-first-$f-$t" "$T/$f-$t.xml" slow-first-1200
		expect_answer "slow-first-$f-$t" "$want"
	done
	# 30 words 20 ms apart: 600 ms of stream, each silence under 400 ms
	words="w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16 w17 w18 w19 w20 w21 w22 w23 w24 w25 w26 w27 w28 w29 w30"
	line "$words" slow-stream > "$T/long-$t.in"
	"$PORCH" run -q --stats-json "$T/long-$t.json" "$T/idle-$t.xml" < "$T/long-$t.in" \
	    > "$T/long-$t.out" 2> "$T/long-$t.err"
	expect_eq "long stream ($t): answer" "$(cat "$T/long-$t.out")" "$(printf 'stdin\tyou said: %s' "$words")"
	expect_eq "long stream ($t): stderr" "$(cat "$T/long-$t.err")" ""

	# read-timeout, as files written before the two limits have it
	pipeline "$T/rt-$t.xml" "$(p read-timeout 500ms)"
	scenario "rt-stall-$t" "$T/rt-$t.xml" stall
	expect_failure "rt-stall-$t" timeout \
	    "first-byte-timeout (read-timeout): $fb_text 500 ms after the request was sent (1 attempt)$"
	scenario "rt-mid-$t" "$T/rt-$t.xml" stall-mid-stream
	expect_failure "rt-mid-$t" timeout \
	    "idle-timeout (read-timeout): $idle_text 500 ms in the middle of the answer"
	pipeline "$T/rt-idle-$t.xml" "$(p read-timeout 20s; p idle-timeout 300ms)"
	scenario "rt-idle-$t" "$T/rt-idle-$t.xml" stall-mid-stream
	expect_failure "rt-idle-$t" timeout "idle-timeout: $idle_text 300 ms in the middle of the answer"

	# one stalled request and 30 quick ones with it: the quick ones are
	# all answered while the stalled one waits out its 8 s
	pipeline "$T/mix-$t.xml" "$(p first-byte-timeout 8s; p idle-timeout 1s)"
	{
		line "stuck" stall
		i=0
		while [ $i -lt 30 ]; do
			i=$((i + 1))
			line "quick $i" ok
		done
	} > "$T/mix-$t.in"
	"$PORCH" run -q --stats-json "$T/mix-$t.json" "$T/mix-$t.xml" < "$T/mix-$t.in" \
	    > "$T/mix-$t.out" 2> "$T/mix-$t.err" &
	mix=$!
	pids="$pids $mix"
	answered() {
		[ "$(grep -c '^stdin	you said: quick' "$T/mix-$t.out")" -eq 30 ]
	}
	if wait_for 7 answered; then
		ok
		# nothing of the stalled one yet: porch still runs, no failure said
		kill -0 "$mix" 2>/dev/null && ! grep -q failed "$T/mix-$t.err" && ok ||
		    fail "mix ($t): the stalled request ended before the quick ones were all answered"
	else
		fail "mix ($t): the quick requests were not all answered within 7 s: $(cat "$T/mix-$t.out")"
	fi
	gone() {
		! kill -0 "$mix"
	}
	if wait_for 20 gone; then
		wait "$mix"
		expect_eq "mix ($t): exit status" "$?" 0
		expect_eq "mix ($t): completed" "$(json_get "$T/mix-$t.json" completed)" 30
		expect_eq "mix ($t): failed" "$(json_get "$T/mix-$t.json" failed)" 1
		grep -q "failed: timeout: first-byte-timeout: $fb_text 8000 ms after the request was sent" \
		    "$T/mix-$t.err" && ok || fail "mix ($t): the stalled one: $(cat "$T/mix-$t.err")"
	else
		fail "mix ($t): porch still runs 20 s after the quick answers"
		kill "$mix"
	fi
done

finish
