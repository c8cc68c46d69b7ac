#!/bin/sh
# http-load.sh -- the http source under load from wrk: 10x more clients
# than the pipeline holds.  The excess is answered 503 at once, the server
# stays up, and /metrics adds up: accepted = completed + failed + shed +
# expired once nothing is in flight.
. "$top_srcdir/tests/lib.sh"
heavy

command -v wrk > /dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
command -v curl > /dev/null || { echo "curl is not installed" >&2; exit 1; }
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

cat > "$T/load.xml" <<XML
<?xml version="1.0"?>
<pipeline name="load" version="1" max-inflight="16">
  <worker name="model" plugin="echo"><param name="delay-ms">5</param></worker>
  <stage name="ingress" plugin="http">
    <param name="listen">127.0.0.1:0</param>
    <param name="port-file">$T/port</param>
  </stage>
  <stage name="infer" plugin="inference" worker="model" concurrency="8"/>
  <stage name="reply" plugin="reply"/>
  <channel from="ingress" to="infer" capacity="8" overflow="reject"/>
  <channel from="infer" to="reply"/>
  <channel from="infer:error" to="reply"/>
</pipeline>
XML
"$PORCH" run -q --stats-json "$T/s.json" "$T/load.xml" > /dev/null 2> "$T/err" &
pid=$!
trap 'kill "$pid" 2> /dev/null; rm -rf "$T"' EXIT
wait_for 20 test -s "$T/port" || { fail "porch did not start: $(cat "$T/err")"; finish; }
U="http://127.0.0.1:$(cat "$T/port")"

cat > "$T/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"model":"echo","messages":[{"role":"user","content":"load test"}]}'
wrk.headers["Content-Type"] = "application/json"
LUA
wrk -t2 -c160 -d3s -s "$T/post.lua" "$U/v1/chat/completions" > "$T/wrk" 2>&1
expect_eq "wrk: exit status" "$?" 0
non2xx=$(awk '/Non-2xx/ { print $5 }' "$T/wrk")
total=$(awk '/requests in/ { print $1 }' "$T/wrk")
[ -n "$non2xx" ] && [ "$non2xx" -gt 0 ] && ok || fail "no request was refused: $(cat "$T/wrk")"
[ "$total" -gt "${non2xx:-0}" ] && ok || fail "nothing was answered 200: $(cat "$T/wrk")"
grep -q "Socket errors" "$T/wrk" && fail "socket errors: $(cat "$T/wrk")" || ok

# still up, and the books balance once the last requests are done
expect_eq "healthz after the load" "$(curl -s -o /dev/null -w '%{http_code}' "$U/healthz")" 200
idle() {
	curl -s "$U/metrics" > "$T/m" && grep -q '^porch_requests_in_flight{pipeline="load"} 0$' "$T/m"
}
wait_for 10 idle || fail "requests still in flight: $(grep in_flight "$T/m")"
books_balance "$T/m" &&
    ok || fail "metrics: accepted != completed + failed + shed + expired"
shed=$(sed -n 's/^porch_requests_total{pipeline="load",outcome="shed"} //p' "$T/m")
[ "${shed:-0}" -gt 0 ] && ok || fail "metrics: nothing counted as shed"
n503=$(sed -n 's/^porch_http_requests_total{.*code="503".*} //p' "$T/m" | awk '{ s += $1 } END { print s + 0 }')
[ "$n503" -ge "$shed" ] && ok || fail "metrics: $n503 answers 503 for $shed shed"
if command -v promtool > /dev/null; then
	promtool check metrics < "$T/m" > "$T/prom" 2>&1 && ok || fail "promtool: $(cat "$T/prom")"
fi
kill -TERM "$pid"
wait "$pid"
expect_eq "SIGTERM after the load: exit status" "$?" 0

finish
