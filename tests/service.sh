#!/bin/sh
# service.sh -- the systemd unit make install puts in place
# (dist/porch.service, made from dist/porch.service.in): systemd-analyze
# verify finds nothing to say about it (its porch the build tree's, since
# verify wants an executable), systemd-analyze security rates it OK, and a
# small parser checks the keys that matter: Type=notify, the reload and
# stop signals, a stop timeout that covers the drain, restarts, the user
# and the hardening.  porch accepts the unit's ExecStart options, and no
# part of porch or its plugins needs memory both writable and executable
# (MemoryDenyWriteExecute=yes).
. "$top_srcdir/tests/lib.sh"

: "${top_builddir:?run through make check, which sets top_builddir}"
U=$top_builddir/dist/porch.service
[ -f "$U" ] || { fail "no $U (make builds it)"; finish; }

# key SECTION KEY: the values of KEY in [SECTION], one a line
key() {
	awk -v sec="[$1]" -v key="$2" '
	    /^[[:space:]]*[#;]/ || /^[[:space:]]*$/ { next }
	    /^\[/ { in_sec = ($0 == sec); next }
	    in_sec { i = index($0, "="); if (substr($0, 1, i - 1) == key) print substr($0, i + 1) }' "$U"
}
# expect_key SECTION KEY VALUE: KEY's only value
expect_key() {
	expect_eq "[$1] $2" "$(key "$1" "$2")" "$3"
}

if grep -q '^SERVICE_TYPE = notify' "$top_builddir/Makefile"; then
	expect_key Service Type notify
else
	expect_key Service Type simple
fi
start=$(key Service ExecStart)
case $start in
*/porch\ run\ *) ok ;;
*) fail "ExecStart is not porch run: $start" ;;
esac
case $start in
*" --log-format json "*) ok ;;
*) fail "ExecStart does not log json: $start" ;;
esac
pipeline=${start##* }
case $pipeline in
/*/porch/pipeline.xml) ok ;;
*) fail "ExecStart's pipeline is not SYSCONFDIR/porch/pipeline.xml: $pipeline" ;;
esac
expect_key Service ExecReload '/bin/kill -HUP $MAINPID'
expect_key Service KillSignal SIGTERM
expect_key Service Restart on-failure
# the stop timeout covers the drain (--drain-timeout), and a little more
drain=$(printf '%s\n' "$start" | sed -n 's/.*--drain-timeout \([0-9]*\)s .*/\1/p')
stop=$(key Service TimeoutStopSec | sed -n 's/^\([0-9]*\)s$/\1/p')
[ -n "$drain" ] && [ -n "$stop" ] && [ "$stop" -gt "$drain" ] && ok ||
    fail "TimeoutStopSec ($(key Service TimeoutStopSec)) does not cover --drain-timeout ($drain s)"
expect_key Service DynamicUser yes
for k in NoNewPrivileges ProtectHome PrivateTmp PrivateDevices LockPersonality \
    MemoryDenyWriteExecute ProtectKernelTunables ProtectKernelModules ProtectControlGroups \
    RestrictSUIDSGID RestrictRealtime RestrictNamespaces; do
	expect_key Service "$k" yes
done
expect_key Service ProtectSystem strict
expect_key Service RestrictAddressFamilies "AF_INET AF_INET6 AF_UNIX"
expect_key Service SystemCallFilter @system-service
expect_key Service CapabilityBoundingSet ""
expect_key Install WantedBy multi-user.target

# porch takes the unit's options: run them on hello.xml
opts=$(printf '%s\n' "$start" | sed -e 's/^[^ ]*porch run //' -e 's/ [^ ]*$//' \
    -e "s|--pid-file %t/porch/|--pid-file $T/|")
# shellcheck disable=SC2086 # the options are words
"$PORCH" run $opts "$top_srcdir/pipelines/hello.xml" < /dev/null > "$T/run.out" 2> "$T/run.err"
rc=$?
expect_eq "porch run $opts: exit status ($(head -n 3 "$T/run.err"))" "$rc" 0
head -c 1 "$T/run.err" | grep -q '{' && ok || fail "porch run $opts: no JSON log: $(head -n 3 "$T/run.err")"

# no segment both writable and executable, no executable stack
if command -v readelf > /dev/null; then
	for f in "$top_builddir/src/.libs/porch" "$top_builddir"/src/.libs/libporch.so \
	    "$top_builddir"/plugins/.libs/*.so; do
		[ -f "$f" ] || continue
		if readelf -lW "$f" | awk '$1 ~ /^(LOAD|GNU_STACK)$/ && $(NF-1) ~ /W/ && $(NF-1) ~ /E/ { bad = 1 } END { exit !bad }'; then
			fail "$f has a segment both writable and executable"
		else
			ok
		fi
	done
fi

# systemd's own checks, when systemd-analyze can run here
if command -v systemd-analyze > /dev/null; then
	sed "s|^ExecStart=[^ ]*porch |ExecStart=$PORCH |" "$U" > "$T/porch.service"
	if systemd-analyze verify --man=no "$T/porch.service" > "$T/verify" 2>&1; then
		expect_eq "systemd-analyze verify" "$(cat "$T/verify")" ""
	else
		fail "systemd-analyze verify: $(cat "$T/verify")"
	fi
	if systemd-analyze security --offline=yes "$T/porch.service" > "$T/security" 2>&1; then
		level=$(sed -n 's/.*Overall exposure level for porch.service: \([0-9.]*\) \([A-Z]*\).*/\2/p' "$T/security")
		expect_eq "systemd-analyze security: $(grep Overall "$T/security")" "$level" OK
	else
		echo "systemd-analyze security --offline is not available here: skipped"
	fi
else
	echo "systemd-analyze is not installed (apt-get install systemd): verify skipped"
fi

finish
