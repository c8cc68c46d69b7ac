# tests/nats-lib.sh -- for the NATS tests: sourced after lib.sh, not run.
#
# nats_start [PORT]: nats-server -js on 127.0.0.1 (without JetStream when
# NATS_JS is set and empty), on a port it picks (or
# PORT, to start it again where it was), its store in $T/sd; sets NATS_URL,
# NATS_PORT and nats_pid.  Skips the test (77) where nats-server cannot run.
# node_start NAME NODE FILE [ARGS...]: porch run --node NODE, pid in
# $T/NAME.pid, statistics in $T/NAME.json when it exits; $T/NAME.running
# once it handles signals.  Every process is
# stopped by its pid when the test exits.

command -v python3 > /dev/null || { echo "python3 is not installed" >&2; exit 1; }
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

NATS_PIDS=""
nats_cleanup() {
	for _f in "$T"/*.pid; do
		[ -f "$_f" ] && kill -9 "$(cat "$_f")" 2> /dev/null
	done
	for _p in $NATS_PIDS; do
		kill -9 "$_p" 2> /dev/null
	done
	[ -n "${NATS_KEEP:-}" ] && echo "kept $T" >&2 || rm -rf "$T"
}
trap nats_cleanup EXIT

nats_start() {
	if ! command -v nats-server > /dev/null; then
		echo "SKIP: nats-server is not installed (apt-get install nats-server)" >&2
		exit 77
	fi
	mkdir -p "$T/nsports"
	rm -f "$T"/nsports/*
	nats-server ${NATS_JS--js} -a 127.0.0.1 -p "${1:--1}" -sd "$T/sd" \
	    --ports_file_dir "$T/nsports" -l "$T/nats.log" 8>&- > /dev/null 2>&1 &
	nats_pid=$!
	NATS_PIDS="$NATS_PIDS $nats_pid"
	if ! wait_for 20 test -s "$T/nsports/nats-server_$nats_pid.ports"; then
		echo "SKIP: nats-server cannot run here: $(tail -3 "$T/nats.log" 2> /dev/null)" >&2
		exit 77
	fi
	NATS_URL=$(sed -n 's|.*"\(nats://[^"]*\)".*|\1|p' "$T/nsports/nats-server_$nats_pid.ports")
	NATS_PORT=${NATS_URL##*:}
}

nats_stop() {
	kill "$nats_pid" 2> /dev/null
	wait "$nats_pid" 2> /dev/null
}

node_start() {
	_name=$1
	_node=$2
	shift 2
	"$PORCH" run -q --node "$_node" --nats-url "$NATS_URL" --pid-file "$T/$_name.running" \
	    --stats-json "$T/$_name.json" "$@" 8>&- > "$T/$_name.out" 2> "$T/$_name.err" &
	echo $! > "$T/$_name.pid"
}

# node_stop NAME: SIGTERM, waits for it (its statistics are written) and
# checks that it exited 0 with no sanitizer report
node_stop() {
	_p=$(cat "$T/$1.pid")
	kill "$_p" 2> /dev/null
	_i=0
	while kill -0 "$_p" 2> /dev/null && [ "$_i" -lt 600 ]; do
		sleep 0.05
		_i=$((_i + 1))
	done
	kill -0 "$_p" 2> /dev/null && { fail "$1 did not exit in 30 s"; kill -9 "$_p"; }
	wait "$_p"
	_rc=$?
	[ "$_rc" = 0 ] && ok || fail "$1: exit status $_rc: $(tail -n 5 "$T/$1.err")"
	grep -q "Sanitizer\|runtime error" "$T/$1.err" &&
	    fail "$1: $(grep -m3 -A5 "Sanitizer\|runtime error" "$T/$1.err")" || ok
	rm -f "$T/$1.pid"
}

# node_wait NAME: until it runs (its graph made: connected, its streams and
# consumers ready), or fail with what it said
node_wait() {
	wait_for 30 test -s "$T/$1.running" && return 0
	fail "$1 is not running: $(tail -n 5 "$T/$1.err")"
	finish
}

# jget FILE PYTHON-EXPRESSION: a value from a --stats-json file (s), e.g.
# jget f.json 's["accepted"]' or jget f.json 'stage(s, "infer")["in"]'
jget() {
	python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
def stage(s, n):
    return [x for x in s["stages"] if x["name"] == n][0]
def chan(s, f, t):
    return [x for x in s["channels"] if x["from"] == f and x["to"] == t][0]
def event(s, n, e):
    return stage(s, n).get("events", {}).get(e, 0)
print(eval(sys.argv[2]))' "$1" "$2"
}

# balanced FILE: accepted = completed + failed + shed + expired, none in flight
balanced() {
	jget "$1" 's["accepted"] == s["completed"] + s["failed"] + s["shed"] + s["expired"] and s["in_flight"] == 0'
}

# metric PORT NAME: a value of a node's /metrics (the first line that
# starts with NAME)
metric() {
	curl -s "127.0.0.1:$1/metrics" | awk -v n="$2" 'index($0, n) == 1 { print $2; exit }'
}

# completed_at_least PORT N: a node's /metrics count N requests completed
completed_at_least() {
	curl -s "127.0.0.1:$1/metrics" |
	    awk -v n="$2" '/^porch_requests_total\{.*completed/ { if ($2 >= n) ok = 1 } END { exit !ok }'
}
