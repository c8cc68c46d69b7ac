#!/bin/sh
# stall.sh -- nothing one request does holds the loop for long.
#
# http -> inference (openai worker -> tests/fake-upstream) -> reply, while
# /healthz is probed every 20 ms: 3 answers of 10 MiB streamed as one
# server-sent event (model "huge", stream true), 3 as one JSON body (stream
# false) and 3 requests with 10 MiB bodies, one after the other.  Every
# probe must take under 100 ms (curl's time_total; 300 ms in a build with
# sanitizers, which run ~3x slower: STALL_BOUND_MS overrides both), and the
# answers must be whole: their text, put together from the events of a
# stream (porch passes a long text on in slices), is the upstream's to the
# byte.  The worst probe is printed.  By hand:
#   PORCH=src/porch PORCH_PLUGIN_PATH=plugins/.libs top_srcdir=. sh tests/stall.sh
. "$top_srcdir/tests/lib.sh"
heavy

command -v curl > /dev/null || { echo "curl is not installed: skipped"; exit 77; }
: "${top_builddir:=$top_srcdir}"
fake=$top_builddir/tests/fake-upstream
[ -x "$fake" ] || { echo "tests/fake-upstream is not built: skipped"; exit 77; }
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

case "${CFLAGS:-}" in
*-fsanitize*) bound_ms=${STALL_BOUND_MS:-300} ;;
*) bound_ms=${STALL_BOUND_MS:-100} ;;
esac

pids=
trap 'for p in $pids; do kill "$p" 2>/dev/null; done; rm -rf "$T"' EXIT

"$fake" -p "$T/up.port" -t 300 > /dev/null 2>&1 &
pids="$pids $!"
wait_for 10 test -s "$T/up.port" || { fail "the fake upstream did not start"; finish; }
cat > "$T/stall.xml" <<XML
<?xml version="1.0"?>
<pipeline name="stall" version="1">
  <worker name="upstream" plugin="openai">
    <param name="base-url">http://127.0.0.1:$(cat "$T/up.port")/v1</param>
    <param name="read-timeout">60s</param>
    <param name="max-response">64M</param>
  </worker>
  <stage name="ingress" plugin="http">
    <param name="listen">127.0.0.1:0</param>
    <param name="max-body">64M</param>
  </stage>
  <stage name="inference" plugin="inference" worker="upstream"/>
  <stage name="reply" plugin="reply"/>
  <channel from="ingress" to="inference"/>
  <channel from="inference" to="reply"/>
  <channel from="inference:error" to="reply"/>
</pipeline>
XML
"$PORCH" run --set "ingress.port-file=$T/porch.port" "$T/stall.xml" > "$T/porch.out" 2> "$T/porch.err" &
pid=$!
pids="$pids $pid"
wait_for 20 test -s "$T/porch.port" || { fail "porch did not start: $(cat "$T/porch.err")"; finish; }
U="http://127.0.0.1:$(cat "$T/porch.port")"

# a request body of 10 MiB: "you said: " and its text come back
{
	printf '{"model":"ok","messages":[{"role":"user","content":"'
	head -c 10485760 /dev/zero | tr '\0' a
	printf '"}]}'
} > "$T/big.json"

# the prober: /healthz every 20 ms until $T/stop exists; a line per probe
(
	while [ ! -e "$T/stop" ]; do
		curl -s -o /dev/null --max-time 10 -w '%{http_code} %{time_total}\n' "$U/healthz"
		sleep 0.02
	done
) > "$T/probes" 2>&1 &
prober=$!
pids="$pids $prober"
sleep 0.3

# req NAME DATA: POST /v1/chat/completions; prints "STATUS SIZE"
req() {
	curl -s -S --max-time 60 -o "$T/$1.body" -w '%{http_code} %{size_download}' \
	    "$U/v1/chat/completions" -H 'Content-Type: application/json' --data-binary "$2" \
	    2> "$T/$1.curl"
}

# in range WHAT GOT LOW HIGH
in_range() {
	checks=$((checks + 1))
	if [ "$2" -lt "$3" ] || [ "$2" -gt "$4" ]; then
		fail "$1: $2 bytes, want $3 to $4"
	fi
}

# The fake upstream's "huge" text as JSON escapes it: "abc...z" repeated,
# a '\"' and a '\n' every 64 bytes (its period: 832 bytes, 12603 times and
# 64 bytes more make 10 MiB; those 64 are 66 escaped)
huge_escaped() {
	awk 'BEGIN {
		for (k = 0; k < 832; k++)
			p = p (k % 64 == 62 ? "\\\"" : k % 64 == 63 ? "\\n" : sprintf("%c", 97 + k % 26))
		for (i = 0; i < 12603; i++)
			printf "%s", p
		printf "%s", substr(p, 1, 66)
	}'
}

# The text of a stream's chunks put together, as written (escaped)
stream_text() {
	awk 'index($0, "data: {") == 1 {
		i = index($0, "\"delta\":{\"content\":\"")
		if (i == 0)
			next
		s = substr($0, i + 20)
		j = index(s, "\"},\"logprobs\"")
		if (j > 0)
			printf "%s", substr(s, 1, j - 1)
	}' "$1"
}

# The text of a whole chat answer, as written: a quote in it is escaped, so
# the first unescaped "}," after it is its end
whole_text() {
	awk '{
		i = index($0, "\"content\":\"")
		s = substr($0, i + 11)
		j = index(s, "\"},\"finish_reason\"")
		if (i > 0 && j > 0)
			printf "%s", substr(s, 1, j - 1)
	}' "$1"
}

# the text, escaped in JSON: 10 MiB and a '\"' and a '\n' per 64 bytes
esc=$((10485760 + 2 * 10485760 / 64))
huge=$(huge_escaped | cksum)
echo_text=$({ printf 'you said: '; head -c 10485760 /dev/zero | tr '\0' a; } | cksum)
for i in 1 2 3; do
	set -- $(req "stream$i" '{"model":"huge","stream":true,"messages":[{"role":"user","content":"x"}]}')
	expect_eq "streamed event $i: status" "$1" 200
	# each slice is an event of its own, with its chunk's JSON around it
	in_range "streamed event $i: size" "$2" "$esc" $((esc + 65536))
	expect_eq "streamed event $i: the text" "$(stream_text "$T/stream$i.body" | cksum)" "$huge"
	tail -c 100 "$T/stream$i.body" | grep -q 'data: \[DONE\]' && ok ||
	    fail "streamed event $i: no [DONE] at the end"
done
for i in 1 2 3; do
	set -- $(req "whole$i" '{"model":"huge","messages":[{"role":"user","content":"x"}]}')
	expect_eq "whole answer $i: status" "$1" 200
	in_range "whole answer $i: size" "$2" "$esc" $((esc + 4096))
	expect_eq "whole answer $i: the text" "$(whole_text "$T/whole$i.body" | cksum)" "$huge"
done
for i in 1 2 3; do
	set -- $(req "body$i" "@$T/big.json")
	expect_eq "10 MiB body $i: status" "$1" 200
	in_range "10 MiB body $i: size" "$2" $((10485760 + 10)) $((10485760 + 10 + 4096))
	expect_eq "10 MiB body $i: the text" "$(whole_text "$T/body$i.body" | cksum)" "$echo_text"
done

# clients that leave in the middle of a long answer, streamed and whole:
# what is left of it stops (slices and all), and porch goes on
for body in '{"model":"huge","stream":true,"messages":[{"role":"user","content":"x"}]}' \
    '{"model":"huge","messages":[{"role":"user","content":"x"}]}'; do
	curl -s -N --max-time 60 "$U/v1/chat/completions" -H 'Content-Type: application/json' \
	    --data-binary "$body" 2> /dev/null | head -c 300000 > /dev/null
done
set -- $(req "after" '{"model":"ok","messages":[{"role":"user","content":"x"}]}')
expect_eq "after clients left: status" "$1" 200

touch "$T/stop"
wait "$prober"
n=$(wc -l < "$T/probes")
[ "$n" -ge 10 ] && ok || fail "only $n probes ran"
bad=$(grep -vc '^200 ' "$T/probes")
expect_eq "probes not answered 200" "$bad" 0
worst=$(awk '{ if ($2 > w) w = $2 } END { printf "%d", w * 1000 }' "$T/probes")
echo "$n probes, the worst took $worst ms (bound $bound_ms ms)"
[ "$worst" -lt "$bound_ms" ] && ok || fail "a /healthz probe took $worst ms, over $bound_ms ms"

# the loop's lag is in /metrics
curl -s "$U/metrics" > "$T/metrics"
c=$(sed -n 's/^porch_loop_lag_seconds_count{pipeline="stall"} \([0-9]*\)$/\1/p' "$T/metrics")
[ "${c:-0}" -ge 1 ] && ok || fail "no porch_loop_lag_seconds_count: $(grep loop_lag "$T/metrics")"

kill -TERM "$pid"
wait "$pid"
expect_eq "exit status after SIGTERM" "$?" 0
grep -q '^loop lag ' "$T/porch.err" && ok || fail "no loop lag line in the stats: $(cat "$T/porch.err")"
finish
