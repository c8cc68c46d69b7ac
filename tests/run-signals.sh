#!/bin/sh
# run-signals.sh -- SIGTERM drains, a drain deadline expires what is left,
# a second signal exits at once, SIGUSR1 prints the statistics, SIGHUP
# and porch reload swap the pipeline for the file's new contents.
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

# 5. SIGHUP reloads: a valid file replaces the pipeline (the old one's
# requests finish on it), an invalid one changes nothing and its errors are
# logged as porch check gives them; the totals count both pipelines
cp "$T/fast.xml" "$T/hup.xml"
if start hup "$T/hup.xml"; then
	wait_for 10 usr1_shows "accepted [1-9]" hup || fail "hup: nothing accepted"
	kill -HUP "$pid"
	wait_for 10 grep -q "reload: $T/hup.xml loaded; the replaced pipeline finishes its [0-9]* requests in flight" "$T/hup.err" &&
	    ok || fail "hup: $(cat "$T/hup.err")"
	wait_for 10 grep -q "^1 ok " "$T/hup.pid.reload" && ok || fail "hup: no status file"
	sed -i 's/plugin="null"/plugin="nul"/' "$T/hup.xml"
	kill -HUP "$pid"
	wait_for 10 grep -q "reload: $T/hup.xml is not valid (1 error above); the running pipeline goes on unchanged" "$T/hup.err" &&
	    ok || fail "hup invalid: $(cat "$T/hup.err")"
	grep -q "hup.xml:[0-9]*:[0-9]*: error: stage 'sink': unknown plugin 'nul'" "$T/hup.err" && ok ||
	    fail "hup invalid: no FILE:LINE:COL error: $(cat "$T/hup.err")"
	"$PORCH" reload "$T/hup.pid" > "$T/hup.reload" 2>&1
	expect_eq "porch reload of an invalid file: exit status" "$?" 1
	grep -q "porch: reload: $T/hup.xml is not valid" "$T/hup.reload" && ok ||
	    fail "porch reload: $(cat "$T/hup.reload")"
	kill -0 "$pid" && ok || fail "hup: porch stopped"
	wait_for 10 usr1_shows "reloads          1, failed 2" hup || fail "hup: no reload count: $(tail -n 20 "$T/hup.err")"
	kill -TERM "$pid"
	wait "$bg"
	expect_eq "hup: exit status after SIGTERM" "$?" 0
	a=$(json_get "$T/hup.json" accepted)
	expect_eq "hup: every request of both pipelines completed" "$(json_get "$T/hup.json" completed)" "$a"
	expect_eq "hup: reloads" "$(json_get "$T/hup.json" reloads)" 1
	expect_eq "hup: failed reloads" "$(json_get "$T/hup.json" reload_failures)" 2
	[ -e "$T/hup.pid.reload" ] && fail "hup: status file left behind" || ok
fi

# porch reload's own bad input: exit 2 and a message that says what to fix
"$PORCH" reload "$T/nope.pid" > /dev/null 2> "$T/rl.err"
expect_eq "reload, no pid file: exit status" "$?" 2
expect_eq "reload, no pid file: message" "$(cat "$T/rl.err")" \
    "porch: reload: cannot read the pid file $T/nope.pid: No such file or directory (is porch running with --pid-file $T/nope.pid?)"
echo abc > "$T/junk.pid"
"$PORCH" reload "$T/junk.pid" > /dev/null 2> "$T/rl.err"
expect_eq "reload, junk pid file: exit status" "$?" 2
expect_eq "reload, junk pid file: message" "$(cat "$T/rl.err")" "porch: reload: $T/junk.pid does not hold a process id"
"$PORCH" reload --timeout soon "$T/junk.pid" > /dev/null 2> "$T/rl.err"
expect_eq "reload --timeout soon: exit status" "$?" 2
expect_eq "reload --timeout soon: message" "$(cat "$T/rl.err")" \
    "porch: reload: --timeout 'soon' is not a duration (an integer with ms, s, m or h, e.g. 30s)"
"$PORCH" reload > /dev/null 2> "$T/rl.err"
expect_eq "reload without a pid file: exit status" "$?" 2
expect_eq "reload without a pid file: message" "$(head -n 1 "$T/rl.err")" \
    "porch: reload: expected the pid file of a running porch"

# 6. a reload's drain deadline: what the replaced pipeline cannot finish
# in time ends as expired, and the new one runs on
if start hupstuck --drain-timeout 300ms "$T/stuck.xml"; then
	wait_for 10 has_in_flight hupstuck || fail "hupstuck: nothing in flight"
	"$PORCH" reload "$T/hupstuck.pid" > "$T/hupstuck.reload" 2>&1
	expect_eq "hupstuck: porch reload's exit status" "$?" 0
	wait_for 10 grep -q "reload: the replaced pipeline still has [1-9][0-9]* requests in flight after 0.3s" "$T/hupstuck.err" &&
	    ok || fail "hupstuck: no deadline message: $(cat "$T/hupstuck.err")"
	kill -0 "$pid" && ok || fail "hupstuck: porch stopped"
	kill -TERM "$pid"
	wait "$bg"
	expect_eq "hupstuck: exit status" "$?" 0
	a=$(json_get "$T/hupstuck.json" accepted)
	e=$(json_get "$T/hupstuck.json" expired)
	expect_eq "hupstuck: every request expired (two deadlines)" "$e" "$a"
fi

# 7. standard input goes over to the new pipeline where the old one
# stopped: every line is answered once, through three reloads
cat > "$T/lines.xml" <<XML
<?xml version="1.0"?>
<pipeline name="lines" version="1">
  <worker name="model" plugin="echo"><param name="delay-ms">2</param></worker>
  <stage name="in" plugin="stdin"/>
  <stage name="infer" plugin="inference" worker="model" concurrency="4"/>
  <stage name="out" plugin="stdout"/>
  <channel from="in" to="infer" capacity="4"/>
  <channel from="infer" to="out"/>
</pipeline>
XML
mkfifo "$T/fifo"
"$PORCH" run -q --pid-file "$T/lines.pid" "$T/lines.xml" < "$T/fifo" > "$T/lines.out" 2> "$T/lines.err" &
bg=$!
exec 3> "$T/fifo"
seq 1 500 >&3
wait_for 10 test -s "$T/lines.pid" || fail "lines: porch did not start"
for i in 1 2 3; do
	"$PORCH" reload "$T/lines.pid" > /dev/null 2>&1 || fail "lines: reload $i: $(tail -n 3 "$T/lines.err")"
	seq $((i * 500 + 1)) $((i * 500 + 500)) >&3
done
exec 3>&-
wait "$bg"
expect_eq "lines: exit status" "$?" 0
expect_eq "lines: answers" "$(wc -l < "$T/lines.out")" 2000
# each line "SESSION<TAB>ANSWER", the answer being the line itself
cut -f2 "$T/lines.out" | sort -n | uniq > "$T/lines.got"
seq 1 2000 > "$T/lines.want"
cmp -s "$T/lines.got" "$T/lines.want" && ok ||
    fail "lines: not every line answered once: $(diff "$T/lines.want" "$T/lines.got" | head -n 5)"

# 8. a plugin whose file changed on disk is loaded anew: a stage built
# twice, tagging each line "v1" then "v2"
: "${CC:=cc}"
mkdir "$T/plugins"
build_tag() {
	cat > "$T/tag.c" <<C
#include <porch/plugin.h>
static void tag(porch_stage *st, porch_msg *m) { porch_msg_append_text(m, " $1", 3); porch_emit(st, m); }
static const char *const outs[] = { "out", NULL };
const struct porch_plugin porch_plugin = { PORCH_PLUGIN_HEADER, .kind = PORCH_KIND_STAGE,
  .name = "tag", .summary = "appends a version", .outputs = outs, .process = tag };
C
	# shellcheck disable=SC2086
	$CC ${CFLAGS:-} -shared -fPIC -I"$top_srcdir/include" -o "$T/plugins/tag.so.new" "$T/tag.c" &&
	    mv "$T/plugins/tag.so.new" "$T/plugins/tag.so" || fail "could not build tag.so $1"
}
build_tag v1
cat > "$T/tag.xml" <<XML
<?xml version="1.0"?>
<pipeline name="tag" version="1">
  <stage name="in" plugin="stdin"/>
  <stage name="tag" plugin="tag"/>
  <stage name="out" plugin="stdout"/>
  <channel from="in" to="tag"/>
  <channel from="tag" to="out"/>
</pipeline>
XML
mkfifo "$T/tagfifo"
"$PORCH" run -q --plugin-path "$T/plugins" --pid-file "$T/tag.pid" "$T/tag.xml" \
    < "$T/tagfifo" > "$T/tag.out" 2> "$T/tag.err" &
bg=$!
exec 3> "$T/tagfifo"
echo one >&3
wait_for 10 grep -q "one v1" "$T/tag.out" || fail "tag: no answer from v1: $(cat "$T/tag.err")"
build_tag v2
"$PORCH" reload "$T/tag.pid" > /dev/null 2>&1 || fail "tag: reload: $(tail -n 3 "$T/tag.err")"
echo two >&3
wait_for 10 grep -q "two v2" "$T/tag.out" && ok || fail "tag: the changed plugin was not loaded: $(cat "$T/tag.out")"
exec 3>&-
wait "$bg"
expect_eq "tag: exit status" "$?" 0

finish
