#!/bin/sh
# http-memory.sh -- max-inflight-bytes: the http source bounds the bytes its
# requests in flight hold and sheds what would pass the bound (issue 9:
# resource exhaustion degrades, never corrupts).
#
# 24 clients at once each send a chat request with an 8 MiB body to
# http -> inference (echo, 1.5 s before it answers) -> reply, under a bound
# of 128 MiB, twice over.  A request holds its body about four times over
# (the body, the message's text and the runtime's copy of it, and
# "openai.request"), so only a few fit: the others must get 503 with
# Retry-After and an OpenAI-style error at once, counted as shed, while the
# few get their whole answer.  porch's resident memory, sampled from
# /proc/PID/status all along, must stay under the bound plus a fixed base of
# 64 MiB (the idle process is about 6 MiB; what the rest allows for is one
# body parsed and one answer written at a time, and the allocator's slack).
# Then a chunked body, whose size is not known at its head, is stopped as it
# grows past a small bound.
. "$top_srcdir/tests/lib.sh"
heavy

command -v curl > /dev/null || { echo "curl is not installed" >&2; exit 1; }
if ! curl --help all 2> /dev/null | grep -q -- --parallel-immediate; then
	echo "this curl has no --parallel-immediate: skipping"
	exit 77
fi
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

CLIENTS=24
BOUND_MB=128
BASE_MB=64
BODY=$((8 * 1024 * 1024))

# the body: a chat request whose one message is 8 MiB of one word (the echo
# worker answers it in one piece)
{
	printf '{"model":"echo","messages":[{"role":"user","content":"'
	head -c $((BODY - 64)) /dev/zero | tr '\0' a
	printf '"}]}'
} > "$T/body.json"

cat > "$T/mem.xml" <<XML
<?xml version="1.0"?>
<pipeline name="mem" version="1">
  <worker name="model" plugin="echo"><param name="delay-ms">1500</param></worker>
  <stage name="ingress" plugin="http">
    <param name="listen">127.0.0.1:0</param>
    <param name="port-file">$T/port</param>
    <param name="max-body">16M</param>
    <param name="max-inflight-bytes">${BOUND_MB}M</param>
  </stage>
  <stage name="infer" plugin="inference" worker="model" concurrency="256"/>
  <stage name="reply" plugin="reply"/>
  <channel from="ingress" to="infer" capacity="256" overflow="reject"/>
  <channel from="infer" to="reply" capacity="256"/>
  <channel from="infer:error" to="reply" capacity="256"/>
</pipeline>
XML

pid=
sampler=
trap 'kill $pid $sampler 2> /dev/null; rm -rf "$T"' EXIT

# rss: porch's resident memory, kB
rss() {
	sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB$/\1/p' "/proc/$pid/status" 2> /dev/null
}

# start [ARGS...]: porch on mem.xml; sets pid and U
start() {
	rm -f "$T/port"
	"$PORCH" run -q "$@" "$T/mem.xml" 2> "$T/err" &
	pid=$!
	wait_for 10 test -s "$T/port" || { fail "porch did not start: $(cat "$T/err")"; finish; }
	U="http://127.0.0.1:$(cat "$T/port")"
}

# stop: SIGTERM, and porch exits 0
stop() {
	kill -TERM "$pid"
	wait "$pid"
	expect_eq "SIGTERM: exit status" "$?" 0
	pid=
}

idle() {
	curl -s "$U/metrics" > "$T/m" &&
	    grep -q '^porch_requests_in_flight{pipeline="mem"} 0$' "$T/m" &&
	    grep -q '^porch_http_inflight_bytes{stage="ingress"} 0$' "$T/m"
}

start
if [ ! -r "/proc/$pid/status" ]; then
	echo "no /proc/PID/status here: skipping"
	exit 77
fi
base=$(rss)
echo "idle: $base kB resident"
# sampled while the clients run (a sampler, not a wait: nothing waits on it)
(while kill -0 "$pid" 2> /dev/null; do rss; sleep 0.02; done) > "$T/rss" &
sampler=$!

i=1
: > "$T/curl.cfg"
while [ "$i" -le "$CLIENTS" ]; do
	[ "$i" -gt 1 ] && echo next >> "$T/curl.cfg"
	cat >> "$T/curl.cfg" <<CFG
silent
output = "$T/out.$i"
dump-header = "$T/head.$i"
write-out = "%{http_code}\\n"
header = "Content-Type: application/json"
data-binary = "@$T/body.json"
url = "$U/v1/chat/completions"
CFG
	i=$((i + 1))
done

answered=0
shed=0
for wave in 1 2; do
	curl -s --parallel --parallel-immediate --parallel-max "$CLIENTS" -K "$T/curl.cfg" \
	    > "$T/codes" 2> "$T/client.err"
	expect_eq "wave $wave: curl's exit status" "$?" 0
	n200=$(grep -c '^200$' "$T/codes")
	n503=$(grep -c '^503$' "$T/codes")
	echo "wave $wave: $n200 answered, $n503 shed"
	expect_eq "wave $wave: every request answered 200 or 503" $((n200 + n503)) "$CLIENTS"
	[ "$n200" -ge 1 ] && ok || fail "wave $wave: no request was answered 200"
	[ "$n503" -ge 1 ] && ok || fail "wave $wave: no request was shed"
	answered=$((answered + n200))
	shed=$((shed + n503))
	i=1
	while [ "$i" -le "$CLIENTS" ]; do
		if grep -q '^HTTP/1.1 200' "$T/head.$i"; then
			# the echo of the 8 MiB word, whole
			size=$(wc -c < "$T/out.$i")
			[ "$size" -gt $((BODY - 64)) ] && grep -q '"finish_reason":"stop"' "$T/out.$i" &&
			    ok || fail "wave $wave: answer $i is cut short ($size bytes)"
		else
			grep -qi '^Retry-After: 1' "$T/head.$i" &&
			    grep -q '"type":"overloaded_error".*"code":"admission"' "$T/out.$i" &&
			    grep -q 'max-inflight-bytes' "$T/out.$i" && ok ||
			    fail "wave $wave: answer $i: $(cat "$T/head.$i" "$T/out.$i" | head -c 600)"
		fi
		i=$((i + 1))
	done
	wait_for 10 idle || fail "wave $wave: requests still in flight: $(grep inflight "$T/m")"
done
kill "$sampler" 2> /dev/null
wait "$sampler" 2> /dev/null
sampler=

# counted as shed, like the pipeline's own refusals, and still serving
expect_eq "metrics: shed" \
    "$(sed -n 's/^porch_requests_total{pipeline="mem",outcome="shed"} //p' "$T/m")" "$shed"
expect_eq "metrics: completed" \
    "$(sed -n 's/^porch_requests_total{pipeline="mem",outcome="completed"} //p' "$T/m")" "$answered"
expect_eq "metrics: the bound" \
    "$(sed -n 's/^porch_http_inflight_bytes_max{stage="ingress"} //p' "$T/m")" $((BOUND_MB << 20))
peak=$(sed -n 's/^porch_http_inflight_bytes_peak{stage="ingress"} //p' "$T/m")
echo "held at most: $peak bytes (bound $((BOUND_MB << 20)))"
[ "${peak:-0}" -gt $((BODY * 2)) ] && ok || fail "metrics: peak held $peak bytes"
expect_eq "healthz after the load" "$(curl -s -o /dev/null -w '%{http_code}' "$U/healthz")" 200

max=$(sort -n "$T/rss" | tail -n 1)
echo "resident at most: $max kB; the bound $((BOUND_MB * 1024)) kB + a base of $((BASE_MB * 1024)) kB"
case " ${CFLAGS:-} " in
*-fsanitize=address*)
	# AddressSanitizer keeps freed memory aside and shadows the rest
	echo "AddressSanitizer build: resident memory not checked" ;;
*)
	[ "${max:-0}" -gt 0 ] && [ "$max" -lt $(((BOUND_MB + BASE_MB) * 1024)) ] && ok ||
	    fail "resident memory $max kB passed $(((BOUND_MB + BASE_MB) * 1024)) kB" ;;
esac
stop

# ---- a chunked body: its size is not known at its head ------------------------
start --set ingress.max-inflight-bytes=4M --set ingress.max-body=4M
code=$(curl -s -o "$T/chunked" -D "$T/chunked.head" -w '%{http_code}' \
    -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' \
    --data-binary "@$T/body.json" "$U/v1/chat/completions")
# 8 MiB under max-body 4M would be 413: it is stopped before, at 4M held
expect_eq "chunked: status" "$code" 503
grep -q '"code":"admission"' "$T/chunked" && grep -qi '^Connection: close' "$T/chunked.head" &&
    ok || fail "chunked: $(cat "$T/chunked.head" "$T/chunked")"
curl -s "$U/metrics" > "$T/m"
expect_eq "chunked: counted as shed" \
    "$(sed -n 's/^porch_requests_total{pipeline="mem",outcome="shed"} //p' "$T/m")" 1
expect_eq "chunked: nothing held after" \
    "$(sed -n 's/^porch_http_inflight_bytes{stage="ingress"} //p' "$T/m")" 0
stop

finish
