#!/bin/sh
# crash.sh -- a crash says where: a plugin that dies on purpose makes porch
# print which stage or worker callback was running, and the request, and
# porch still dies by the signal (the default action: a core dump).
. "$top_srcdir/tests/lib.sh"

crash_dir="$top_builddir/tests/plugins/.libs"
# no core file left behind by the crashes this test makes on purpose
ulimit -c 0

# stage NAME HOW AT: stdin -> crash (crashes on request AT) -> null
stage_pipe() {
	cat > "$T/$1.xml" <<XML
<?xml version="1.0"?>
<pipeline name="$1" version="1">
  <stage name="src" plugin="stdin"/>
  <stage name="boom" plugin="crash" concurrency="1">
    <param name="how">$2</param><param name="at">$3</param>
  </stage>
  <stage name="sink" plugin="null"/>
  <channel from="src" to="boom"/>
  <channel from="boom" to="sink"/>
</pipeline>
XML
}

# worker_pipe NAME AT: stdin -> inference (worker crash-worker) -> null
worker_pipe() {
	cat > "$T/$1.xml" <<XML
<?xml version="1.0"?>
<pipeline name="$1" version="1">
  <worker name="model" plugin="crash-worker"><param name="at">$2</param></worker>
  <stage name="src" plugin="stdin"/>
  <stage name="infer" plugin="inference" worker="model" concurrency="1"/>
  <stage name="sink" plugin="null"/>
  <channel from="src" to="infer"/>
  <channel from="infer" to="sink"/>
</pipeline>
XML
}

# run NAME: runs the pipeline on three requests; $status and $T/NAME.err
run() {
	printf 'one\ntwo\nthree\n' |
	    "$PORCH" run -q --plugin-path "$crash_dir" "$T/$1.xml" > "$T/$1.out" 2> "$T/$1.err"
	status=$?
}

# expect_line NAME LINE: the crash line is there, exactly once
expect_line() {
	n=$(grep -cxF "$2" "$T/$1.err")
	expect_eq "$1: the crash line ($(cat "$T/$1.err"))" "$n" 1
}

so="$crash_dir/crash.so"
wso="$crash_dir/crash-worker.so"

# 1. a NULL write in a stage's process callback, on the second request
stage_pipe segv segv 2
run segv
expect_eq "segv: porch died by SIGSEGV (128+11)" "$status" 139
expect_line segv "porch: fatal SIGSEGV in stage 'boom' (plugin crash, $so), process callback, request 2"

# 2. abort() there: SIGABRT, named as such
stage_pipe abort abort 1
run abort
expect_eq "abort: porch died by SIGABRT (128+6)" "$status" 134
expect_line abort "porch: fatal SIGABRT in stage 'boom' (plugin crash, $so), process callback, request 1"

# 3. a worker's submit: the worker, not the stage that called it
worker_pipe submit 3
run submit
expect_eq "submit: porch died by SIGSEGV (128+11)" "$status" 139
expect_line submit "porch: fatal SIGSEGV in worker 'model' (plugin crash-worker, $wso), submit callback, request 3"

# 4. no crash when the request never comes: the handler stays quiet
stage_pipe none segv 99
run none
expect_eq "none: exit status" "$status" 0
grep -q 'fatal' "$T/none.err" && fail "none: a crash line: $(cat "$T/none.err")" || ok

# 5. a crash outside any callback: a SIGSEGV sent to a running porch
cat > "$T/idle.xml" <<XML
<?xml version="1.0"?>
<pipeline name="idle" version="1">
  <stage name="src" plugin="stdin"/>
  <stage name="sink" plugin="null"/>
  <channel from="src" to="sink"/>
</pipeline>
XML
mkfifo "$T/fifo"
"$PORCH" run -q --pid-file "$T/idle.pid" "$T/idle.xml" < "$T/fifo" > /dev/null 2> "$T/idle.err" &
bg=$!
exec 3> "$T/fifo"
if wait_for 10 test -s "$T/idle.pid"; then
	kill -SEGV "$(cat "$T/idle.pid")"
	wait "$bg"
	expect_eq "idle: porch died by SIGSEGV (128+11)" "$?" 139
	expect_line idle "porch: fatal SIGSEGV in porch itself (no plugin callback was running)"
else
	fail "idle: porch did not start: $(cat "$T/idle.err")"
	kill "$bg"
fi
exec 3>&-

finish
