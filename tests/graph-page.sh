#!/bin/sh
# graph-page.sh -- the http source's GET /graph in headless Chromium: the
# page is one self-contained document (no resource from elsewhere), it
# draws every stage, channel and worker with their counters, and under
# load the counters move between two readings of its DOM and two
# screenshots differ.
. "$top_srcdir/tests/lib.sh"

command -v curl > /dev/null || { echo "curl is not installed: skipped"; exit 77; }
CHROMIUM=
for c in chromium chromium-browser google-chrome; do
	command -v "$c" > /dev/null && { CHROMIUM=$c; break; }
done
[ -n "$CHROMIUM" ] || { echo "chromium is not installed: skipped"; exit 77; }
# Chromium's start-up loads the machine: not beside a test that measures time
heavy

cat > "$T/p.xml" <<XML
<?xml version="1.0"?>
<pipeline name="graphtest" version="1">
  <worker name="model" plugin="echo"><param name="delay-ms">2</param></worker>
  <stage name="ingress" plugin="http"><param name="listen">127.0.0.1:0</param></stage>
  <stage name="infer-step" plugin="inference" worker="model"/>
  <stage name="tidy" plugin="post"/>
  <stage name="reply" plugin="reply"/>
  <channel from="ingress" to="infer-step" capacity="32" overflow="reject"/>
  <channel from="infer-step" to="tidy" capacity="16"/>
  <channel from="tidy" to="reply"/>
  <channel from="infer-step:error" to="reply"/>
</pipeline>
XML

"$PORCH" run --set "ingress.port-file=$T/port" "$T/p.xml" > "$T/out" 2> "$T/err" &
pid=$!
loads=
cleanup() {
	for l in $loads; do kill "$l" 2> /dev/null; done
	kill "$pid" 2> /dev/null
	rm -rf "$T"
}
trap cleanup EXIT
wait_for 20 test -s "$T/port" || { fail "porch did not start: $(cat "$T/err")"; finish; }
U="http://127.0.0.1:$(cat "$T/port")"

# ---- the page as served ----------------------------------------------------
code=$(curl -s -o "$T/page" -D "$T/h" -w '%{http_code}' "$U/graph")
expect_eq "GET /graph" "$code" 200
grep -qi '^Content-Type: text/html; charset=utf-8' "$T/h" && ok || fail "/graph: $(cat "$T/h")"
grep -qi "^Content-Security-Policy: default-src 'none'" "$T/h" && ok ||
    fail "/graph: no Content-Security-Policy: $(cat "$T/h")"
# nothing from elsewhere: no src, href or url() but of the page's own
# #fragments; its one absolute URL is the SVG namespace, a name and not a
# resource
if grep -Eqi '(src|href) *=|url\([^#]|@import' "$T/page"; then
	fail "/graph loads a resource: $(grep -Ei '(src|href) *=|url\([^#]|@import' "$T/page")"
else
	ok
fi
expect_eq "/graph's absolute URLs" "$(grep -Eo 'https?://[^" ]*' "$T/page" | sort -u)" \
    "http://www.w3.org/2000/svg"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$U/graph")
expect_eq "POST /graph" "$code" 405

# load: two clients asking one after the other until the test ends
for n in 1 2; do
	while :; do
		curl -s --max-time 10 "$U/v1/chat/completions" -H 'Content-Type: application/json' \
		    -d '{"model": "echo", "messages": [{"role": "user", "content": "hi"}]}' \
		    > /dev/null || sleep 0.1
	done &
	loads="$loads $!"
done
wait_for 20 sh -c "curl -s '$U/metrics' | grep -q '^porch_stage_messages_in_total{stage=\"tidy\"} [1-9]'" ||
    fail "no load reached the pipeline"

# chrome ARGS...: headless Chromium with a profile of its own, 60 s at most
chrome() {
	timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run \
	    --user-data-dir="$T/profile" --hide-scrollbars --window-size=1200,800 \
	    --virtual-time-budget=3000 "$@" 2>> "$T/chrome.err"
}

# ---- the DOM, twice --------------------------------------------------------
# in_of DOM STAGE: the stage's "in" counter in the page's table
in_of() {
	sed -n "s|.*<tr data-stage=\"$2\"><td>$2</td><td>[a-z]*</td><td class=\"in\">\([0-9]*\)</td>.*|\1|p" "$1"
}
chrome --dump-dom "$U/graph" > "$T/dom1"
for s in ingress infer-step tidy reply; do
	grep -q "data-stage=\"$s\"" "$T/dom1" && ok || fail "dom: no stage $s: $(head -c 3000 "$T/dom1")"
done
# the boxes' counters and the edges' depths and the worker's calls are drawn
grep -q '<text[^>]*class="sub counters"[^>]*>in [0-9][0-9]* (' "$T/dom1" && ok ||
    fail "dom: no counters on the boxes: $(head -c 3000 "$T/dom1")"
grep -q '>depth [0-9]*/16, refused [0-9]*<' "$T/dom1" && ok ||
    fail "dom: no depth on the infer-step -> tidy edge"
grep -q 'data-channel="infer-step:error&gt;reply"\|data-channel="infer-step:error>reply"' "$T/dom1" && ok ||
    fail "dom: no error edge"
grep -q '>worker model (echo)<' "$T/dom1" && ok || fail "dom: no worker"
grep -q '>[1-9][0-9]* calls, [0-9]* in flight, 0 errors<' "$T/dom1" && ok || fail "dom: no worker calls"
grep -q '<h1 id="title">porch pipeline graphtest</h1>' "$T/dom1" && ok || fail "dom: no title"
grep -q '<div id="status" class="err">' "$T/dom1" && fail "dom: the page could not read /metrics" || ok
first=$(in_of "$T/dom1" tidy)
[ -n "$first" ] && [ "$first" -gt 0 ] && ok || fail "dom: tidy's in is '$first'"
# a second reading while the load runs: the counter moved
wait_for 20 sh -c "curl -s '$U/metrics' | awk -v n='$first' '/^porch_stage_messages_in_total\\{stage=\"tidy\"\\}/ { exit !(\$2 > n + 5) }'" ||
    fail "the load stopped"
chrome --dump-dom "$U/graph" > "$T/dom2"
second=$(in_of "$T/dom2" tidy)
[ -n "$second" ] && [ -n "$first" ] && [ "$second" -gt "$first" ] && ok ||
    fail "dom: tidy's in went from '$first' to '$second'"

# ---- two screenshots ---------------------------------------------------------
chrome --screenshot="$T/s1.png" "$U/graph" > /dev/null
now=$(curl -s "$U/metrics" | sed -n 's/^porch_stage_messages_in_total{stage="tidy"} //p')
wait_for 20 sh -c "curl -s '$U/metrics' | awk -v n='$now' '/^porch_stage_messages_in_total\\{stage=\"tidy\"\\}/ { exit !(\$2 > n + 5) }'" ||
    fail "the load stopped"
chrome --screenshot="$T/s2.png" "$U/graph" > /dev/null
for s in s1 s2; do
	# a PNG, and not a blank page: a drawn 1200x800 page is tens of kilobytes
	if [ "$(head -c 8 "$T/$s.png" 2> /dev/null | od -An -c | tr -d ' \n')" = '211PNG\r\n032\n' ] &&
	    [ "$(wc -c < "$T/$s.png")" -gt 10000 ]; then
		ok
	else
		fail "$s.png is not a drawn page: $(ls -l "$T/$s.png" 2>&1) $(tail -5 "$T/chrome.err")"
	fi
done
cmp -s "$T/s1.png" "$T/s2.png" && fail "the two screenshots are the same" || ok
finish
