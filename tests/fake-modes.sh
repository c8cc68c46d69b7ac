#!/bin/sh
# fake-modes.sh -- tests/fake-upstream's own options, which make one
# instance of several (replicas behind a pool) slow, failing or stalling
# whatever the requests' model:
#   - GET /v1/models answers 200 with a list of models, counted as "models"
#     in the stats, not as a request;
#   - -d MS delays every answer, /v1/models included, by at least MS;
#   - -w MS spaces streamed words MS apart;
#   - -m 500 answers 500 to every request and to /v1/models; -m stall
#     answers neither; -m reset resets;
#   - the control file (-c) switches the mode at run time: "mode 500" fails
#     the replica, "mode none" brings it back, its removal goes back to the
#     command line's; "delay MS" there delays answers;
#   - slow-first-N sends the head at once and the body N ms later.
# Bounds are lower bounds (a delay is at least what was asked), or generous
# upper ones (a stall is a stall for a second).
. "$top_srcdir/tests/lib.sh"

command -v curl > /dev/null || { echo "curl is not installed: skipped"; exit 77; }
: "${top_builddir:=$top_srcdir}"
fake=$top_builddir/tests/fake-upstream
[ -x "$fake" ] || { echo "tests/fake-upstream is not built: skipped"; exit 77; }
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

pids=
trap 'for p in $pids; do kill "$p" 2>/dev/null; done; rm -rf "$T"' EXIT

# start NAME OPTIONS...: an instance with its files in $T/NAME.*
start() {
	name=$1
	shift
	"$fake" -p "$T/$name.port" -s "$T/$name.stats" -t 120 "$@" 2> "$T/$name.err" &
	pids="$pids $!"
	wait_for 10 test -s "$T/$name.port" || { fail "$name: the fake upstream did not start"; finish; }
}

url() {
	echo "http://127.0.0.1:$(cat "$T/$1.port")/v1"
}

# chat NAME [MODEL [STREAM]]: POST /chat/completions; prints
# "STATUS TIME-TO-FIRST-BYTE TOTAL-TIME", the body in $T/NAME.body
chat() {
	curl -s --max-time 10 -o "$T/$1.body" -w '%{http_code} %{time_starttransfer} %{time_total}' \
	    "$(url "$1")/chat/completions" -H 'Content-Type: application/json' \
	    -d "{\"model\":\"${2:-ok}\",\"stream\":${3:-false},\"messages\":[{\"role\":\"user\",\"content\":\"one two three four\"}]}"
}

# models NAME: GET /models; prints "STATUS TOTAL-TIME", the body in $T/NAME.body
models() {
	curl -s --max-time 10 -o "$T/$1.body" -w '%{http_code} %{time_total}' "$(url "$1")/models"
}

# at_least WHAT SECONDS MIN: SECONDS (curl's, a decimal) is MIN or more
at_least() {
	awk -v t="$2" -v m="$3" 'BEGIN { exit !(t + 0 >= m + 0) }' && ok ||
	    fail "$1: took $2 s, want at least $3 s"
}
below() {
	awk -v t="$2" -v m="$3" 'BEGIN { exit !(t + 0 < m + 0) }' && ok ||
	    fail "$1: took $2 s, want less than $3 s"
}

# swap NAME TEXT: the control file of NAME, written whole (a rename)
swap() {
	printf '%s\n' "$2" > "$T/$1.ctl.tmp"
	mv "$T/$1.ctl.tmp" "$T/$1.ctl"
}

# ---- a plain instance: GET /v1/models, not a request -----------------------
start plain
set -- $(models plain)
expect_eq "models: status" "$1" 200
grep -q '"object":"list","data":\[{"id":"fake","object":"model"' "$T/plain.body" && ok ||
    fail "models: body $(cat "$T/plain.body")"
set -- $(chat plain)
expect_eq "plain: status" "$1" 200
grep -q '"content":"you said: one two three four"' "$T/plain.body" && ok ||
    fail "plain: body $(cat "$T/plain.body")"
expect_eq "plain: models counted" "$(json_get "$T/plain.stats" models)" 1
expect_eq "plain: requests counted" "$(json_get "$T/plain.stats" requests)" 1

# ---- slow-first-N: the head at once, the body later ------------------------
set -- $(chat plain slow-first-600 true)
expect_eq "slow-first: status" "$1" 200
below "slow-first: the head" "$2" 0.5
at_least "slow-first: the body" "$3" 0.6
grep -q 'data: \[DONE\]' "$T/plain.body" && ok || fail "slow-first: stream $(cat "$T/plain.body")"

# ---- -d: every answer later ------------------------------------------------
start slow -d 400
set -- $(chat slow)
expect_eq "-d: status" "$1" 200
at_least "-d: chat" "$3" 0.4
set -- $(models slow)
expect_eq "-d: models status" "$1" 200
at_least "-d: models" "$2" 0.4

# ---- -w: streamed words apart ---------------------------------------------
start words -w 150
set -- $(chat words ok true)
expect_eq "-w: status" "$1" 200
# "you said: one two three four": 6 words, 5 gaps
at_least "-w: stream" "$3" 0.75
grep -q 'data: \[DONE\]' "$T/words.body" && ok || fail "-w: stream $(cat "$T/words.body")"

# ---- -m: one mode whatever the model ----------------------------------------
start failing -m 500
set -- $(chat failing ok)
expect_eq "-m 500: chat status" "$1" 500
grep -q '"message":"internal boom"' "$T/failing.body" && ok || fail "-m 500: $(cat "$T/failing.body")"
set -- $(chat failing ok true)
expect_eq "-m 500: streamed chat status" "$1" 500
set -- $(models failing)
expect_eq "-m 500: models status" "$1" 500

start stalling -m stall
code=$(curl -s --max-time 1 -o /dev/null -w '%{http_code}' "$(url stalling)/models"; echo " $?")
expect_eq "-m stall: models (status, curl's exit)" "$code" "000 28"
code=$(curl -s --max-time 1 -o /dev/null -w '%{http_code}' "$(url stalling)/chat/completions" \
    -d '{"model":"ok","messages":[{"role":"user","content":"hi"}]}'; echo " $?")
expect_eq "-m stall: chat (status, curl's exit)" "$code" "000 28"

start resetting -m reset
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$(url resetting)/models"; echo " $?")
expect_eq "-m reset: models (status, curl's exit: receive failure)" "$code" "000 56"

# ---- -c: the mode switched at run time --------------------------------------
start ctl -c "$T/ctl.ctl"
set -- $(chat ctl)
expect_eq "-c, no file yet: chat" "$1" 200
swap ctl "mode 500"
set -- $(chat ctl)
expect_eq "-c mode 500: chat" "$1" 500
set -- $(models ctl)
expect_eq "-c mode 500: models" "$1" 500
swap ctl "mode none"
set -- $(chat ctl)
expect_eq "-c mode none: chat" "$1" 200
set -- $(models ctl)
expect_eq "-c mode none: models" "$1" 200
swap ctl "# slower now
delay 300"
set -- $(chat ctl)
expect_eq "-c delay: chat" "$1" 200
at_least "-c delay 300" "$3" 0.3
swap ctl "mode 503"
set -- $(chat ctl)
expect_eq "-c mode 503: chat" "$1" 503
rm "$T/ctl.ctl"
set -- $(chat ctl)
expect_eq "-c removed: chat" "$1" 200
expect_eq "-c: nothing said on stderr" "$(cat "$T/ctl.err")" ""

# on top of -m: the file overrides it, its removal restores it
start both -m 500 -c "$T/both.ctl"
set -- $(chat both)
expect_eq "-m 500 -c: chat" "$1" 500
swap both "mode none"
set -- $(chat both)
expect_eq "-m 500, file mode none: chat" "$1" 200
swap both "bogus line"
set -- $(chat both)
expect_eq "-m 500, a file without mode: chat" "$1" 500
grep -q "both.ctl:1: want \"mode MODE\", \"delay MS\" or \"word-delay MS\", not: bogus line" \
    "$T/both.err" && ok || fail "a bad control line: $(cat "$T/both.err")"

finish
