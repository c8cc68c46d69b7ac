#!/bin/sh
# fanout.sh -- fan-out (copy="true" channels) and join: every request ends
# once, whatever its copies do.
#
# stdin -> copies to two inference stages (echo workers, one fast, one
# slow or failing) -> join -> stdout, in each mode; a join timeout; lost
# copies; and http at 10x overload with copies shed by full channels,
# where the books must still balance.
. "$top_srcdir/tests/lib.sh"
heavy

: "${CC:=cc}"
# score: a stage that sets metadata "score" and appends its own name
mkdir "$T/plugins"
cat > "$T/score.c" <<'C'
#include <string.h>
#include <porch/plugin.h>
static const struct porch_param params[] = {
	{ "score", PORCH_PARAM_STRING, "0", 0, 0, NULL, 0, "the score" },
	{ NULL, 0, NULL, 0, 0, NULL, 0, NULL } };
static void score(porch_stage *st, porch_msg *m) {
	const char *name = porch_stage_name(st);
	porch_msg_set_meta(m, "score", porch_param_str(porch_stage_params(st), "score"));
	porch_msg_append_text(m, " from ", 6);
	porch_msg_append_text(m, name, strlen(name));
	porch_emit(st, m);
}
static const char *const outs[] = { "out", NULL };
const struct porch_plugin porch_plugin = { PORCH_PLUGIN_HEADER, .kind = PORCH_KIND_STAGE,
  .name = "score", .summary = "sets a score", .params = params, .outputs = outs,
  .process = score };
C
# shellcheck disable=SC2086
$CC ${CFLAGS:-} -shared -fPIC -I"$top_srcdir/include" -o "$T/plugins/score.so" "$T/score.c" ||
    { fail "could not build the score test plugin"; finish; }
PORCH_PLUGIN_PATH="$T/plugins:$PORCH_PLUGIN_PATH"
export PORCH_PLUGIN_PATH

# fan NAME JOIN-PARAMS A-WORKER-PARAMS B-WORKER-PARAMS [EXTRA]: a pipeline
fan() {
	cat > "$T/$1.xml" <<XML
<?xml version="1.0"?>
<pipeline name="$1" version="1">
  <worker name="wa" plugin="echo">$3</worker>
  <worker name="wb" plugin="echo">$4</worker>
  <stage name="in" plugin="stdin"/>
  <stage name="a" plugin="inference" worker="wa"/>
  <stage name="b" plugin="inference" worker="wb"/>
  <stage name="sa" plugin="score"><param name="score">0.3</param></stage>
  <stage name="sb" plugin="score"><param name="score">0.9</param></stage>
  <stage name="j" plugin="join">$2</stage>
  <stage name="out" plugin="stdout"/>
  <channel from="in" to="a" copy="true"/>
  <channel from="in" to="b" copy="true"/>
  <channel from="a" to="sa"/>
  <channel from="b" to="sb"/>
  <channel from="sa" to="j"/>
  <channel from="sb" to="j"/>
  <channel from="j" to="out"/>
  ${5:-}
</pipeline>
XML
}
p() { printf '<param name="%s">%s</param>' "$1" "$2"; }

# run NAME: 20 lines through it; stdout sorted in $T/NAME.out
run() {
	seq 1 20 | "$PORCH" run -q --stats-json "$T/$1.json" "$T/$1.xml" > "$T/$1.raw" 2> "$T/$1.err"
	expect_eq "$1: exit status" "$?" 0
	cut -f2- "$T/$1.raw" | sort -n > "$T/$1.out"
	expect_eq "$1: accepted" "$(json_get "$T/$1.json" accepted)" 20
}
# want NAME FORMAT: every line N of 1..20 answered as FORMAT with N for %s
want() {
	for i in $(seq 1 20); do printf '%s\n' "$2" | sed "s/%s/$i/g"; done | sort -n > "$T/$1.want"
	cmp -s "$T/$1.out" "$T/$1.want" && ok ||
	    fail "$1: answers: $(diff "$T/$1.want" "$T/$1.out" | head -n 6)"
}
# stage_field FILE STAGE FIELD: a number from the stats' stages array
stage_field() {
	tr -d ' \n' < "$1" | sed 's/},{/}\n{/g' | grep "\"name\":\"$2\"" |
	    sed -n "s/.*\"$3\":\([0-9]*\).*/\1/p"
}

# first: the fast copy wins, the slow one is cancelled with its model call
fan first "$(p mode first)" "$(p delay-ms 1)" "$(p delay-ms 2000)"
run first
want first "%s from sa"
expect_eq "first: completed" "$(json_get "$T/first.json" completed)" 20
expect_eq "first: discarded" "$(stage_field "$T/first.json" j discarded)" 20
expect_eq "first: slow stage passed nothing on" "$(stage_field "$T/first.json" b out)" 0

# all: both texts, in channel order, with the separator
fan all "$(p mode all; p separator '::')" "$(p delay-ms 1)" "$(p delay-ms 30)"
run all
want all "%s from sa::%s from sb"
expect_eq "all: completed" "$(json_get "$T/all.json" completed)" 20
expect_eq "all: discarded" "$(stage_field "$T/all.json" j discarded)" 0

# best: the highest score wins, whichever came first
fan best "$(p mode best; p key score)" "$(p delay-ms 1)" "$(p delay-ms 30)"
run best
want best "%s from sb"

# the timeout: what arrived in time is combined; the rest is discarded
fan timeout "$(p mode all; p timeout 100ms)" "$(p delay-ms 1)" "$(p delay-ms 3000)"
run timeout
want timeout "%s from sa"
expect_eq "timeout: timeouts" "$(stage_field "$T/timeout.json" j timeouts)" 20
expect_eq "timeout: completed" "$(json_get "$T/timeout.json" completed)" 20

# a lost copy (its branch fails to a dead-letter sink) counts against the join
fan lost "$(p mode all)" "$(p delay-ms 1)" "$(p fail-rate 1)" \
    "<stage name=\"dead\" plugin=\"dlq\"><param name=\"path\">$T/dead.jsonl</param></stage>
  <channel from=\"b:error\" to=\"dead\"/>"
run lost
want lost "%s from sa"
expect_eq "lost: completed" "$(json_get "$T/lost.json" completed)" 20
expect_eq "lost: the copies reached the dead-letter sink" "$(wc -l < "$T/dead.jsonl")" 20

# every copy lost: the request fails, with the first copy's error
fan none "$(p mode all)" "$(p fail-rate 1)" "$(p fail-rate 1)"
run none
expect_eq "none: answers" "$(wc -l < "$T/none.out")" 0
expect_eq "none: failed" "$(json_get "$T/none.json" failed)" 20
grep -q "stdin:1: request [0-9]* (session stdin) failed: upstream: every copy failed; the first: upstream" "$T/none.err" &&
    ok || fail "none: $(head -n 3 "$T/none.err")"

# copy on write: a copy reads its request's text and metadata until a
# stage changes it; one branch changes its copy, the other goes straight
# to the join unchanged, and neither sees the other's change
cow() {
	cat > "$T/$1.xml" <<XML
<?xml version="1.0"?>
<pipeline name="$1" version="1">
  <stage name="in" plugin="stdin"/>
  <stage name="sa" plugin="score"><param name="score">0.3</param></stage>
  <stage name="j" plugin="join">$2</stage>
  <stage name="out" plugin="stdout"/>
  <channel from="in" to="j" copy="true"/>
  <channel from="in" to="sa" copy="true"/>
  <channel from="sa" to="j"/>
  <channel from="j" to="out"/>
</pipeline>
XML
}
cow cow-all "$(p mode all; p separator '::')"
run cow-all
want cow-all "%s::%s from sa"
cow cow-best "$(p mode best; p key score)"
run cow-best
want cow-best "%s from sa"

# 10x overload over http: copies are shed by full channels (lost), the
# pipeline's bound sheds requests, and still every request ends once
if command -v wrk > /dev/null && command -v curl > /dev/null; then
	unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
	cat > "$T/load.xml" <<XML
<?xml version="1.0"?>
<pipeline name="load" version="1" max-inflight="16">
  <worker name="wa" plugin="echo"><param name="delay-ms">2</param></worker>
  <worker name="wb" plugin="echo"><param name="delay-ms">5</param></worker>
  <stage name="ingress" plugin="http">
    <param name="listen">127.0.0.1:0</param>
    <param name="port-file">$T/port</param>
  </stage>
  <stage name="a" plugin="inference" worker="wa" concurrency="4"/>
  <stage name="b" plugin="inference" worker="wb" concurrency="4"/>
  <stage name="j" plugin="join"><param name="mode">all</param></stage>
  <stage name="reply" plugin="reply"/>
  <channel from="ingress" to="a" copy="true" capacity="4" overflow="reject"/>
  <channel from="ingress" to="b" copy="true" capacity="2" overflow="reject"/>
  <channel from="a" to="j"/>
  <channel from="b" to="j"/>
  <channel from="j" to="reply"/>
  <channel from="j:error" to="reply"/>
</pipeline>
XML
	"$PORCH" run -q "$T/load.xml" > /dev/null 2> "$T/load.err" &
	pid=$!
	wait_for 20 test -s "$T/port" || fail "load: porch did not start: $(cat "$T/load.err")"
	U="http://127.0.0.1:$(cat "$T/port")"
	cat > "$T/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"model":"echo","messages":[{"role":"user","content":"copies"}]}'
wrk.headers["Content-Type"] = "application/json"
LUA
	wrk -t2 -c160 -d3s -s "$T/post.lua" "$U/v1/chat/completions" > "$T/wrk" 2>&1
	expect_eq "load: wrk's exit status" "$?" 0
	grep -q "Socket errors" "$T/wrk" && fail "load: $(cat "$T/wrk")" || ok
	idle() {
		curl -s "$U/metrics" > "$T/m" && grep -q '^porch_requests_in_flight{pipeline="load"} 0$' "$T/m"
	}
	wait_for 10 idle || fail "load: requests still in flight: $(grep in_flight "$T/m")"
	books_balance "$T/m" &&
	    ok || fail "load: accepted != completed + failed + shed + expired"
	shed=$(sed -n 's/^porch_requests_total{pipeline="load",outcome="shed"} //p' "$T/m")
	[ "${shed:-0}" -gt 0 ] && ok || fail "load: nothing shed at 10x overload"
	completed=$(sed -n 's/^porch_requests_total{pipeline="load",outcome="completed"} //p' "$T/m")
	[ "${completed:-0}" -gt 0 ] && ok || fail "load: nothing completed"
	# copies shed by the small channel b were lost: their requests got a's alone
	rej=$(sed -n 's/^porch_channel_refused_total{from="ingress",port="out",to="b",reason="reject"} //p' "$T/m")
	[ "${rej:-0}" -gt 0 ] && ok || fail "load: no copy was shed: $(grep refused "$T/m")"
	curl -s -H 'Content-Type: application/json' -d '{"model":"echo","messages":[{"role":"user","content":"hi"}]}' \
	    "$U/v1/chat/completions" > "$T/one"
	grep -q '"content":"hi\\n\\nhi"' "$T/one" && ok || fail "load: one answer after it: $(cat "$T/one")"
	kill "$pid"
	wait "$pid"
fi

# (that a join's inputs come from one fan-out is checked in tests/bad/join-*)

# a port with more copies than a fan-out carries (1024): porch check says
# where, at the first one too many; 1024 are taken
wide() { # NAME COPIES
	{
		printf '<?xml version="1.0"?>\n<pipeline name="%s" version="1">\n' "$1"
		printf '  <worker name="w" plugin="echo"/>\n  <stage name="in" plugin="stdin"/>\n'
		i=1
		while [ "$i" -le "$2" ]; do
			printf '  <stage name="c%d" plugin="inference" worker="w"/>\n' "$i"
			i=$((i + 1))
		done
		printf '  <stage name="j" plugin="join"/>\n  <stage name="out" plugin="stdout"/>\n'
		i=1
		while [ "$i" -le "$2" ]; do
			printf '  <channel from="in" to="c%d" copy="true"/>\n' "$i"
			printf '  <channel from="c%d" to="j"/>\n' "$i"
			i=$((i + 1))
		done
		printf '  <channel from="j" to="out"/>\n</pipeline>\n'
	} > "$T/$1.xml"
}
wide wide1024 1024
"$PORCH" check "$T/wide1024.xml" > "$T/wide1024.out" 2>&1
expect_eq "1024 copies: porch check" "$?" 0
wide wide1025 1025
"$PORCH" check "$T/wide1025.xml" > "$T/wide1025.out" 2>&1
expect_eq "1025 copies: porch check" "$?" 2
# the 1025th copy channel: after 4 lines, 1025 stages, 2 more and two
# lines for each copy before it
line=$((4 + 1025 + 2 + 2 * 1024 + 1))
grep -q "wide1025.xml:$line:[0-9]*: error: port 'in:out' has more than 1024 copy=\"true\" channels" \
    "$T/wide1025.out" && ok || fail "1025 copies: $(head -c 600 "$T/wide1025.out")"
finish
