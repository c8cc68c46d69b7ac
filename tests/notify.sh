#!/bin/sh
# notify.sh -- porch run under a service manager (sd_notify, without
# systemd): a datagram socket stands in for systemd's NOTIFY_SOCKET and
# records what porch sends.  READY=1 comes only once the http listener
# answers (the recorder probes /healthz the moment it arrives), a SIGHUP
# is RELOADING=1 then READY=1 (an invalid file too: the old pipeline goes
# on), the STATUS= line is refreshed, SIGTERM is STOPPING=1 with a
# "draining" status, a pipeline that ends on its own says STOPPING=1 too,
# and with NOTIFY_SOCKET unset (or naming no socket) porch runs as before.
. "$top_srcdir/tests/lib.sh"

: "${top_builddir:?run through make check, which sets top_builddir}"
grep -q '^SERVICE_TYPE = notify' "$top_builddir/Makefile" || {
	echo "porch was built without libsystemd: no sd_notify to test" >&2
	exit 77
}
command -v python3 > /dev/null || { echo "python3 is not installed" >&2; exit 77; }
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
unset NOTIFY_SOCKET

# recorder SOCKET LOG PORT-FILE: each datagram as one line of LOG (its
# newlines as " | "); on the first READY=1, at once, the line "probe: ..."
# with what GET /healthz on the port in PORT-FILE answered
cat > "$T/recorder.py" <<'PY'
import http.client, os, socket, sys
path, log, portfile = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path + ".tmp")
os.rename(path + ".tmp", path)  # bound before the test sees it
out = open(log, "a", buffering=1)
ready = False
while True:
    msg = s.recv(4096).decode()
    out.write(msg.replace("\n", " | ") + "\n")
    if "READY=1" in msg.split("\n") and not ready:
        ready = True
        try:
            port = int(open(portfile).read())
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/healthz")
            out.write("probe: %d\n" % c.getresponse().status)
        except Exception as e:
            out.write("probe: failed: %r\n" % e)
PY

pids=
trap 'for p in $pids; do kill "$p" 2> /dev/null; done; rm -rf "$T"' EXIT

# record NAME: a recorder on $T/NAME.sock writing $T/NAME.log
record() {
	python3 "$T/recorder.py" "$T/$1.sock" "$T/$1.log" "$T/$1.port" &
	pids="$pids $!"
	wait_for 10 test -S "$T/$1.sock" || { fail "$1: the recorder did not start"; return 1; }
	: > "$T/$1.log"
}

# count NAME PATTERN: lines of NAME's log matching PATTERN
count() {
	grep -c "$2" "$T/$1.log"
}
seen() {
	[ "$(count "$1" "$2")" -ge "$3" ]
}

cat > "$T/http.xml" <<XML
<?xml version="1.0"?>
<pipeline name="svc" version="1">
  <worker name="model" plugin="echo"/>
  <stage name="ingress" plugin="http">
    <param name="listen">127.0.0.1:0</param>
    <param name="port-file">$T/svc.port</param>
  </stage>
  <stage name="inference" plugin="inference" worker="model"/>
  <stage name="reply" plugin="reply"/>
  <channel from="ingress" to="inference"/>
  <channel from="inference" to="reply"/>
  <channel from="inference:error" to="reply"/>
</pipeline>
XML
cp "$T/http.xml" "$T/svc.xml"

# 1. start-up: READY=1 once the listener answers, with a status line
if record svc; then
	NOTIFY_SOCKET=$T/svc.sock "$PORCH" run -q "$T/svc.xml" > /dev/null 2> "$T/svc.err" &
	porch=$!
	pids="$pids $porch"
	wait_for 20 seen svc '^READY=1' 1 || fail "start: no READY=1: $(cat "$T/svc.log") $(cat "$T/svc.err")"
	wait_for 5 seen svc '^probe:' 1 || fail "start: the recorder did not probe"
	expect_eq "start: /healthz the moment READY=1 arrived" "$(sed -n 's/^probe: //p' "$T/svc.log")" 200
	grep -q '^READY=1 | STATUS=running svc: 0 requests in flight$' "$T/svc.log" && ok ||
	    fail "start: READY=1 without its status: $(cat "$T/svc.log")"
	expect_eq "start: nothing but READY=1 before it" "$(head -n 1 "$T/svc.log" | cut -c1-7)" "READY=1"

	# 2. SIGHUP: RELOADING=1 (with MONOTONIC_USEC), then READY=1
	kill -HUP "$porch"
	wait_for 10 seen svc '^READY=1' 2 || fail "reload: no second READY=1: $(cat "$T/svc.log")"
	grep -v '^probe:' "$T/svc.log" | sed -n '2,3p' | sed 's/MONOTONIC_USEC=[0-9][0-9]*/MONOTONIC_USEC=N/' > "$T/reload"
	printf '%s\n' "RELOADING=1 | MONOTONIC_USEC=N | STATUS=reloading $T/svc.xml" \
	    "READY=1 | STATUS=running svc: reloaded; 0 requests in flight" > "$T/reload.want"
	cmp -s "$T/reload" "$T/reload.want" && ok ||
	    fail "reload: got $(cat "$T/reload"), want $(cat "$T/reload.want")"
	port=$(cat "$T/svc.port")
	curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz" > "$T/code"
	expect_eq "reload: still answers" "$(cat "$T/code")" 200

	# an invalid file: RELOADING=1, READY=1 again, and the status says so
	echo '<pipeline' > "$T/svc.xml"
	kill -HUP "$porch"
	wait_for 10 seen svc '^READY=1' 3 || fail "bad reload: no third READY=1: $(cat "$T/svc.log")"
	expect_eq "bad reload: RELOADING=1 twice" "$(count svc '^RELOADING=1 |')" 2
	grep -q '^READY=1 | STATUS=running svc: reload failed, the pipeline goes on unchanged; ' "$T/svc.log" &&
	    ok || fail "bad reload: no failed status: $(cat "$T/svc.log")"
	cp "$T/http.xml" "$T/svc.xml"

	# the status line, refreshed every 5 s alone
	wait_for 10 seen svc '^STATUS=running svc: 0 requests in flight, [0-9]* accepted$' 1 &&
	    ok || fail "no refreshed status line: $(cat "$T/svc.log")"

	# 3. SIGTERM: STOPPING=1 with the drain in the status, exit 0
	kill -TERM "$porch"
	wait "$porch"
	expect_eq "stop: exit status" "$?" 0
	wait_for 5 seen svc '^STOPPING=1' 1 || fail "stop: no STOPPING=1: $(cat "$T/svc.log")"
	grep -q '^STOPPING=1 | STATUS=draining 0 requests in flight (SIGTERM; deadline 30s)$' "$T/svc.log" &&
	    ok || fail "stop: no draining status: $(cat "$T/svc.log")"
	expect_eq "stop: STOPPING=1 once" "$(count svc '^STOPPING=1')" 1
	expect_eq "stop: READY=1 thrice in all" "$(count svc '^READY=1')" 3
fi

# 4. a pipeline that ends on its own: READY=1, then STOPPING=1
cat > "$T/hello.xml" <<XML
<?xml version="1.0"?>
<pipeline name="hello" version="1">
  <worker name="model" plugin="echo"/>
  <stage name="in" plugin="stdin"/>
  <stage name="infer" plugin="inference" worker="model"/>
  <stage name="out" plugin="stdout"/>
  <channel from="in" to="infer"/>
  <channel from="infer" to="out"/>
</pipeline>
XML
if record end; then
	echo hi | NOTIFY_SOCKET=$T/end.sock "$PORCH" run -q "$T/hello.xml" > "$T/end.out" 2> "$T/end.err"
	rc=$?
	expect_eq "end: exit status ($(cat "$T/end.err"))" "$rc" 0
	wait_for 5 seen end '^STOPPING=1' 1 || fail "end: no STOPPING=1: $(cat "$T/end.log")"
	expect_eq "end: what was sent" "$(grep -v '^probe:' "$T/end.log")" \
	    "$(printf '%s\n' 'READY=1 | STATUS=running hello: 0 requests in flight' \
	        'STOPPING=1 | STATUS=stopping hello: the pipeline ended')"
fi

# 5. NOTIFY_SOCKET unset: nothing is sent; naming no socket: runs the same
if record none; then
	echo hi | "$PORCH" run -q "$T/hello.xml" > "$T/none.out" 2> "$T/none.err"
	expect_eq "unset: exit status" "$?" 0
	expect_eq "unset: the answer" "$(cat "$T/none.out")" "$(cat "$T/end.out")"
	echo hi | NOTIFY_SOCKET=$T/nothing.sock "$PORCH" run -q "$T/hello.xml" > "$T/gone.out" 2> "$T/gone.err"
	expect_eq "no socket: exit status" "$?" 0
	expect_eq "no socket: the answer" "$(cat "$T/gone.out")" "$(cat "$T/end.out")"
	expect_eq "no socket: stderr" "$(cat "$T/gone.err")" ""
	# datagrams keep their order: once this one is in, none came before it
	python3 -c 'import socket, sys
socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"END", sys.argv[1])' "$T/none.sock"
	wait_for 5 seen none '^END$' 1 || fail "unset: the recorder lost the end mark"
	expect_eq "unset: nothing sent" "$(cat "$T/none.log")" "END"
fi

finish
