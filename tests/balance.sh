#!/bin/sh
# balance.sh -- pipelines/balance.xml as shipped (http -> middle -> a
# least-loaded pool of three openai replicas), its replicas pointed with
# --set at three tests/fake-upstream instances (20 ms an answer), under
# load from curl's parallel mode (16 at a time):
#   1. the spread: each replica takes a fair share of 300 requests;
#   2. a replica switched to failing (its control file: mode 500) is
#      ejected (porch_replica_ejected 1), takes no more requests while the
#      others take them all, and no client request fails (its failures are
#      retried on the others);
#   3. back to mode none, its probe (GET /v1/models, every second) brings
#      it back, and it takes requests again;
#   4. a replica killed with SIGKILL mid-load (600 requests) loses no
#      request: every answer is 200, the calls it held are asked again of
#      the others, it is ejected, and --stats-json shows accepted =
#      completed + failed + shed + expired with failed 0;
#   5. -s backend.policy=random (the multistage example's "random" mode)
#      answers all and spreads over the three.
# Every wait is a bounded wait on a condition; the fakes and porch listen
# on ports the kernel picks and are stopped by pid.
. "$top_srcdir/tests/lib.sh"

command -v curl > /dev/null || { echo "curl is not installed: skipped"; exit 77; }
: "${top_builddir:=$top_srcdir}"
fake=$top_builddir/tests/fake-upstream
[ -x "$fake" ] || { echo "tests/fake-upstream is not built: skipped"; exit 77; }
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
heavy

pids=
trap 'for p in $pids; do kill "$p" 2>/dev/null; done; rm -rf "$T"' EXIT

# start NAME: a fake replica, its files in $T/NAME.*, its pid in $T/NAME.pid
start() {
	rm -f "$T/$1.port" "$T/$1.stats"
	"$fake" -p "$T/$1.port" -s "$T/$1.stats" -c "$T/$1.ctl" -d 20 -t 300 2> "$T/$1.err" &
	echo $! > "$T/$1.pid"
	pids="$pids $!"
	wait_for 10 test -s "$T/$1.port" || { fail "$1: the fake upstream did not start"; finish; }
}

# requests NAME: what the fake replica has been asked (0 before any)
requests() {
	n=$(json_get "$T/$1.stats" requests 2> /dev/null)
	echo "${n:-0}"
}

# mode NAME MODE: the replica's control file, written whole (a rename)
mode() {
	printf 'mode %s\n' "$2" > "$T/$1.ctl.tmp"
	mv "$T/$1.ctl.tmp" "$T/$1.ctl"
}

# porch_start NAME SETS...: pipelines/balance.xml on the three replicas
porch_start() {
	_n=$1
	shift
	rm -f "$T/port"
	"$PORCH" run -q --stats-json "$T/$_n.json" -s ingress.listen=127.0.0.1:0 \
	    -s ingress.port-file="$T/port" \
	    -s b1.base-url="http://127.0.0.1:$(cat "$T/r1.port")/v1" \
	    -s b2.base-url="http://127.0.0.1:$(cat "$T/r2.port")/v1" \
	    -s b3.base-url="http://127.0.0.1:$(cat "$T/r3.port")/v1" \
	    "$@" "$top_srcdir/pipelines/balance.xml" > /dev/null 2> "$T/$_n.err" &
	ppid=$!
	pids="$pids $ppid"
	wait_for 20 test -s "$T/port" || { fail "$_n: porch did not start: $(cat "$T/$_n.err")"; finish; }
	U="http://127.0.0.1:$(cat "$T/port")"
}

# porch_stop NAME: SIGTERM, and its exit status checked
porch_stop() {
	kill "$ppid"
	wait "$ppid"
	expect_eq "$1: porch's exit status" "$?" 0
}

# load N OUT: N chat requests, 16 at a time, one curl; their statuses in OUT
load() {
	: > "$T/load.cfg"
	for _i in $(seq "$1"); do
		printf 'url = "%s/v1/chat/completions"\noutput = "/dev/null"\n' "$U" >> "$T/load.cfg"
	done
	curl -s -Z --parallel-max 16 -K "$T/load.cfg" --max-time 30 \
	    -H 'Content-Type: application/json' \
	    -d '{"model":"balance","messages":[{"role":"user","content":"hello there"}]}' \
	    -w '%{http_code}\n' > "$2" 2> /dev/null
}

# all_ok WHAT FILE COUNT: COUNT statuses in FILE, every one 200
all_ok() {
	expect_eq "$1: answers" "$(wc -l < "$2" | tr -d ' ')" "$3"
	expect_eq "$1: every answer 200" "$(sort -u "$2" | tr '\n' ' ')" "200 "
}

metric() { curl -s "$U/metrics" | sed -n "s/^$1 //p"; }
ejected() { metric "porch_replica_ejected{pool=\"backend\",replica=\"$1\"}"; }

# between WHAT N LO HI
between() {
	[ "$2" -ge "$3" ] && [ "$2" -le "$4" ] && ok || fail "$1: $2, want $3 to $4"
}

# books WHAT NAME: the run's --stats-json balances, nothing failed
books() {
	a=$(json_get "$T/$2.json" accepted)
	c=$(json_get "$T/$2.json" completed)
	f=$(json_get "$T/$2.json" failed)
	s=$(json_get "$T/$2.json" shed)
	e=$(json_get "$T/$2.json" expired)
	expect_eq "$1: accepted = completed + failed + shed + expired" \
	    "$a" "$((c + f + s + e))"
	expect_eq "$1: failed" "$f" 0
}

start r1
start r2
start r3
porch_start ll

# ---- 1. the spread under least-loaded -------------------------------------
load 300 "$T/spread.codes"
all_ok spread "$T/spread.codes" 300
for r in r1 r2 r3; do
	# equal replicas, 16 in flight: least-loaded keeps them within a few
	# calls of each other; a third is 100
	between "spread: $r's requests of 300" "$(requests $r)" 60 140
done

# ---- 2. a failing replica is ejected, no request fails --------------------
mode r3 500
load 60 "$T/fail.codes"
all_ok "r3 failing" "$T/fail.codes" 60
wait_for 10 sh -c "[ \"\$(curl -s '$U/metrics' | sed -n 's/^porch_replica_ejected{pool=\"backend\",replica=\"b3\"} //p')\" = 1 ]" &&
    ok || fail "r3 failing: b3 not ejected: $(curl -s "$U/metrics" | grep replica_ejected)"
n3=$(requests r3)
n12=$(($(requests r1) + $(requests r2)))
load 150 "$T/out.codes"
all_ok "r3 out" "$T/out.codes" 150
# out for 5 s: none of these reached it (one may, if the cooldown ended
# on a slow machine: on probation, it fails once and is out again)
between "r3 out: its requests meanwhile" "$(($(requests r3) - n3))" 0 1
between "r3 out: r1's and r2's" "$(($(requests r1) + $(requests r2) - n12))" 150 151
expect_eq "r3 out: b3 ejected" "$(ejected b3)" 1

# ---- 3. back after recovery: the probe brings it back ---------------------
mode r3 none
wait_for 10 sh -c "[ \"\$(curl -s '$U/metrics' | sed -n 's/^porch_replica_ejected{pool=\"backend\",replica=\"b3\"} //p')\" = 0 ]" &&
    ok || fail "r3 recovered: b3 still ejected"
n3=$(requests r3)
load 150 "$T/back.codes"
all_ok "r3 back" "$T/back.codes" 150
between "r3 back: its requests of 150" "$(($(requests r3) - n3))" 20 100
expect_eq "r3 back: b3 ejected" "$(ejected b3)" 0
books_balance_now() { curl -s "$U/metrics" > "$T/m" && books_balance "$T/m"; }
wait_for 10 books_balance_now && ok || fail "ll: the books do not balance: $(grep porch_requests "$T/m")"
porch_stop ll
books ll ll

# ---- 4. a replica killed with SIGKILL mid-load loses no request ----------
porch_start kill
before=$(requests r2)
n1=$(requests r1)
n3=$(requests r3)
load 600 "$T/kill.codes" &
loadpid=$!
# some of the load has reached r2: it dies with calls in flight
wait_for 20 sh -c "n=\$(sed -n 's/^  \"requests\": \([0-9]*\),*\$/\1/p' '$T/r2.stats'); [ \"\${n:-0}\" -ge $((before + 20)) ]" ||
    fail "kill: r2 took no load"
kill -0 "$loadpid" 2> /dev/null && ok || fail "kill: the load was over before the kill"
kill -KILL "$(cat "$T/r2.pid")"
wait "$loadpid"
all_ok "r2 killed" "$T/kill.codes" 600
# the replicas were asked for every request once, and for the calls r2
# held when it died (about a third of 16) once more, on r1 or r3; r2's
# stats file stays as it died
between "r2 killed: calls to the three" \
    "$(($(requests r1) - n1 + $(requests r2) - before + $(requests r3) - n3))" 601 700
expect_eq "r2 killed: b2 ejected" "$(ejected b2)" 1
wait_for 10 books_balance_now && ok || fail "kill: the books do not balance: $(grep porch_requests "$T/m")"
n=$(metric 'porch_replica_errors_total{pool="backend",replica="b2",kind="transport"}')
[ "${n:-0}" -ge 1 ] && ok || fail "kill: b2's transport errors: ${n:-none}"
porch_stop kill
books "r2 killed" kill
start r2

# ---- 5. random, as the parameter switches it ------------------------------
porch_start random -s backend.policy=random
n1=$(requests r1)
n2=$(requests r2)
n3=$(requests r3)
load 150 "$T/random.codes"
all_ok random "$T/random.codes" 150
for r in r1 r2 r3; do
	eval "was=\$n${r#r}"
	between "random: $r's requests of 150" "$(($(requests $r) - was))" 20 100
done
porch_stop random
books random random

finish
