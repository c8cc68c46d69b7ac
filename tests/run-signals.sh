#!/bin/sh
# run-signals.sh -- SIGTERM drains, a drain deadline expires what is left,
# a second signal exits at once, SIGUSR1 prints the statistics.
. "$top_srcdir/tests/lib.sh"

# slow FILE DELAY-MS: an endless source feeding a slow worker
slow() {
	cat > "$1" <<XML
<?xml version="1.0"?>
<pipeline name="endless" version="1">
  <worker name="model" plugin="echo"><param name="delay-ms">$2</param></worker>
  <stage name="src" plugin="gen"><param name="count">1000000000</param><param name="rate">2000</param></stage>
  <stage name="infer" plugin="inference" worker="model" concurrency="16"/>
  <stage name="sink" plugin="null"/>
  <channel from="src" to="infer" capacity="16"/>
  <channel from="infer" to="sink"/>
</pipeline>
XML
}

# start NAME ARGS...: runs porch in the background, waits until it is up
start() {
	name=$1
	shift
	rm -f "$T/$name.pid"
	"$PORCH" run --pid-file "$T/$name.pid" --stats-json "$T/$name.json" "$@" \
	    > /dev/null 2> "$T/$name.err" &
	bg=$!
	wait_for 10 test -s "$T/$name.pid" || { fail "$name: porch did not start: $(cat "$T/$name.err")"; return 1; }
	pid=$(cat "$T/$name.pid")
}

# usr1_shows PATTERN NAME: after a SIGUSR1, its table matches PATTERN
usr1_shows() {
	kill -USR1 "$pid"
	grep -q "$1" "$T/$2.err"
}

# has_in_flight NAME: SIGUSR1's table shows requests in flight
has_in_flight() {
	kill -USR1 "$pid"
	grep -q "in flight [1-9]" "$T/$1.err"
}

slow "$T/fast.xml" 5
slow "$T/stuck.xml" 60000

# 1. SIGTERM drains: requests in flight finish, exit 0, nothing lost
if start drain "$T/fast.xml"; then
	# each poll asks again: the first table may come before any request
	wait_for 10 usr1_shows "accepted [1-9]" drain || fail "drain: SIGUSR1 printed no table"
	kill -TERM "$pid"
	wait "$bg"
	expect_eq "drain: exit status" "$?" 0
	grep -q "SIGTERM: draining" "$T/drain.err" && ok || fail "drain: no drain message"
	a=$(json_get "$T/drain.json" accepted)
	expect_eq "drain: all completed" "$(json_get "$T/drain.json" completed)" "$a"
	expect_eq "drain: nothing expired" "$(json_get "$T/drain.json" expired)" 0
	expect_eq "drain: in flight" "$(json_get "$T/drain.json" in_flight)" 0
	[ -e "$T/drain.pid" ] && fail "drain: pid file left behind" || ok
fi

# 2. the drain deadline: what cannot finish in time ends as expired
if start deadline --drain-timeout 300ms "$T/stuck.xml"; then
	wait_for 10 has_in_flight deadline || fail "deadline: nothing in flight"
	kill -TERM "$pid"
	wait "$bg"
	expect_eq "deadline: exit status" "$?" 0
	grep -q "drain deadline (0.3s) passed with [1-9][0-9]* requests in flight" "$T/deadline.err" &&
	    ok || fail "deadline: no deadline message: $(cat "$T/deadline.err")"
	a=$(json_get "$T/deadline.json" accepted)
	e=$(json_get "$T/deadline.json" expired)
	[ "$a" -gt 0 ] && ok || fail "deadline: nothing accepted"
	expect_eq "deadline: everything in flight expired" "$e" "$a"
fi

# 3. a second signal exits at once, with status 128 + signal
if start twice "$T/stuck.xml"; then
	wait_for 10 has_in_flight twice || fail "twice: nothing in flight"
	kill -TERM "$pid"
	wait_for 10 grep -q "draining" "$T/twice.err" || fail "twice: first SIGTERM not seen"
	kill -TERM "$pid"
	wait "$bg"
	expect_eq "twice: exit status" "$?" 143
	grep -q "second SIGTERM: exiting at once" "$T/twice.err" && ok || fail "twice: no message"
fi

# 4. SIGINT drains like SIGTERM
if start int "$T/fast.xml"; then
	kill -INT "$pid"
	wait "$bg"
	expect_eq "sigint: exit status" "$?" 0
	grep -q "SIGINT: draining" "$T/int.err" && ok || fail "sigint: no drain message"
fi

# 5. SIGHUP checks the file again and says what it found; the pipeline
# goes on either way, and SIGTERM still drains it
cp "$T/fast.xml" "$T/hup.xml"
if start hup "$T/hup.xml"; then
	kill -HUP "$pid"
	wait_for 10 grep -q "SIGHUP: $T/hup.xml is valid, but this porch cannot swap a running pipeline yet" "$T/hup.err" &&
	    ok || fail "hup: $(cat "$T/hup.err")"
	sed -i 's/plugin="null"/plugin="nul"/' "$T/hup.xml"
	kill -HUP "$pid"
	wait_for 10 grep -q "SIGHUP: $T/hup.xml is not valid (see above); the running pipeline goes on unchanged" "$T/hup.err" &&
	    ok || fail "hup invalid: $(cat "$T/hup.err")"
	grep -q "hup.xml:[0-9]*:[0-9]*: error: stage 'sink': unknown plugin 'nul'" "$T/hup.err" && ok ||
	    fail "hup invalid: no FILE:LINE:COL error: $(cat "$T/hup.err")"
	kill -0 "$pid" && ok || fail "hup: porch stopped"
	kill -TERM "$pid"
	wait "$bg"
	expect_eq "hup: exit status after SIGTERM" "$?" 0
fi

finish
