# tests/lib.sh -- shared by the shell tests: sourced, not run.
#
# Each test is a script that exits 0 (pass), 1 (fail) or 77 (skip), as
# automake's test driver expects.  Helpers here print what failed and why.

set -u
: "${PORCH:?run through make check, which sets PORCH}"
: "${top_srcdir:=.}"

# porch refuses plugins in files or directories others may write: what the
# tests make must not be group-writable, whatever the caller's umask
umask 022

T=$(mktemp -d "${TMPDIR:-/tmp}/porch-test.XXXXXX")
trap 'rm -rf "$T"' EXIT

fails=0
checks=0

# make install relinks each plugin in place (libtool moves plugins/.libs/X.so
# aside while it links the installed copy), so a test loading plugins while
# tests/install.sh installs may miss one: every test holds this lock shared,
# and install.sh holds it alone while it installs (install_alone).  A
# process a test left running keeps the lock (it inherits the descriptor):
# install.sh waits 60 s at most for it, then installs anyway
if command -v flock > /dev/null; then
	exec 8> "${top_builddir:-$top_srcdir}/tests/install.lock"
	flock -s 8
fi
install_alone() {
	command -v flock > /dev/null && flock -x -w 60 8
}

fail() {
	echo "FAIL: $*" >&2
	fails=$((fails + 1))
}

ok() {
	checks=$((checks + 1))
}

# expect_eq WHAT GOT WANT
expect_eq() {
	checks=$((checks + 1))
	if [ "$2" != "$3" ]; then
		fail "$1: got '$2', want '$3'"
	fi
}

# json_get FILE KEY: a top-level integer from a stats JSON file
json_get() {
	sed -n "s/^  \"$2\": \([0-9][0-9]*\),*$/\1/p" "$1"
}

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds, or fail
wait_for() {
	_limit=$1
	shift
	_i=0
	while ! "$@" 2>/dev/null; do
		_i=$((_i + 1))
		if [ "$_i" -ge $((_limit * 20)) ]; then
			return 1
		fi
		sleep 0.05
	done
	return 0
}

finish() {
	if [ "$fails" -gt 0 ]; then
		echo "$fails of $checks checks failed" >&2
		exit 1
	fi
	if [ "$checks" -eq 0 ]; then
		echo "no checks ran" >&2
		exit 1
	fi
	echo "$checks checks passed"
	exit 0
}

# heavy: the tests that load the machine (wrk, hundreds of clients, 10 MiB
# bodies) take turns, so that one's load is not another's latency: with
# make check -j, a timing bound (stall.sh) must measure porch, not a
# neighbour.  The lock goes when the test exits.
heavy() {
	command -v flock > /dev/null || return 0
	exec 9> "${top_builddir:-$top_srcdir}/tests/heavy.lock"
	flock 9
}

# books_balance METRICS-FILE: once nothing is in flight, a /metrics text's
# accepted equals the sum of its outcomes (and is not 0); else it says both
books_balance() {
	awk '/^porch_requests_accepted_total/ { a = $2 }
	     /^porch_requests_total\{/ { s += $2 }
	     END { if (a == s && a > 0) exit 0; print "accepted " a ", outcomes " s; exit 1 }' "$1"
}
