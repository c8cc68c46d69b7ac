#!/bin/sh
# route.sh -- conditional channels: the first channel of a port whose
# condition holds takes the message; when none does, the message fails as
# unrouted out the error port, never dropped in silence.
#
# stdin -> small (complexity simple, or an extraction-like category, or a
# /small prefix) or large (more than 6 words, or a model key set) into
# one jsonl file each; what neither takes goes out stdin's error port to a
# dead-letter file.  Each request's text names where it must end up.
. "$top_srcdir/tests/lib.sh"

cat > "$T/route.xml" <<XML
<?xml version="1.0"?>
<pipeline name="route" version="1">
  <stage name="in" plugin="stdin"/>
  <stage name="small" plugin="jsonl"><param name="path">$T/small.jsonl</param></stage>
  <stage name="large" plugin="jsonl"><param name="path">$T/large.jsonl</param></stage>
  <stage name="dead" plugin="dlq"><param name="path">$T/dead.jsonl</param></stage>
  <channel from="in" to="small"
           when="complexity == 'simple' or category in ('extraction', 'summary')
                 or starts_with(text, '/small')"/>
  <channel from="in" to="large" when="words(text) &gt; 6 or has(model)"/>
  <channel from="in:error" to="dead"/>
</pipeline>
XML
cat > "$T/in.jsonl" <<'EOF2'
{"text":"small 1","meta":{"complexity":"simple"}}
{"text":"small 2","meta":{"complexity":"complex","category":"summary"}}
{"text":"/small 3 with many many words in it"}
{"text":"large 1 has more than six words in it","meta":{"complexity":"complex"}}
{"text":"large 2","meta":{"model":""}}
{"text":"dead 1","meta":{"complexity":"moderate","category":"chat"}}
{"text":"dead 2"}
EOF2
"$PORCH" run -q --stats-json "$T/s.json" "$T/route.xml" < "$T/in.jsonl" > "$T/out" 2> "$T/err"
expect_eq "exit status" "$?" 0
texts() { sed -n 's/.*"text":"\([^"]*\)".*/\1/p' "$1" | sort | tr '\n' '|'; }
expect_eq "small took" "$(texts "$T/small.jsonl")" "/small 3 with many many words in it|small 1|small 2|"
expect_eq "large took" "$(texts "$T/large.jsonl")" "large 1 has more than six words in it|large 2|"
expect_eq "unrouted" "$(texts "$T/dead.jsonl")" "dead 1|dead 2|"
grep -q '"error":"unrouted","error_text":"no channel from port '"'"'in:out'"'"' has a condition that holds for this request"' "$T/dead.jsonl" &&
    ok || fail "dead letters: $(cat "$T/dead.jsonl")"
expect_eq "accepted" "$(json_get "$T/s.json" accepted)" 7
expect_eq "completed" "$(json_get "$T/s.json" completed)" 5
expect_eq "failed" "$(json_get "$T/s.json" failed)" 2

# without an error channel, an unrouted request fails (and is counted)
sed '/in:error/d; /"dead"/d' "$T/route.xml" > "$T/noerr.xml"
"$PORCH" run -q --stats-json "$T/s2.json" "$T/noerr.xml" < "$T/in.jsonl" > /dev/null 2> "$T/err2"
expect_eq "no error channel: exit status" "$?" 0
expect_eq "no error channel: failed" "$(json_get "$T/s2.json" failed)" 2
grep -q "stdin:6: request [0-9]* (session stdin) failed: unrouted: no channel from port 'in:out'" "$T/err2" &&
    ok || fail "no error channel: $(cat "$T/err2")"

# otherwise takes the rest
sed 's#<channel from="in:error" to="dead"/>#<channel from="in" to="dead" otherwise="true"/>#' \
    "$T/route.xml" > "$T/otherwise.xml"
rm -f "$T/dead.jsonl" "$T/small.jsonl" "$T/large.jsonl"
"$PORCH" run -q --stats-json "$T/s3.json" "$T/otherwise.xml" < "$T/in.jsonl" > /dev/null 2> "$T/err3"
expect_eq "otherwise: exit status" "$?" 0
expect_eq "otherwise took" "$(texts "$T/dead.jsonl")" "dead 1|dead 2|"
expect_eq "otherwise: completed" "$(json_get "$T/s3.json" completed)" 7

# porch graph labels the channels with their conditions
"$PORCH" graph "$T/otherwise.xml" > "$T/dot"
grep -q '"in" -> "large" \[label="128, block\\nwhen words(text) > 6 or has(model)"\]' "$T/dot" &&
    ok || fail "graph: $(cat "$T/dot")"
grep -q '"in" -> "dead" \[label="128, block\\notherwise"\]' "$T/dot" && ok || fail "graph: $(cat "$T/dot")"

# a routed port does not stream: the answer made before it goes on whole
command -v curl > /dev/null || { echo "curl is not installed: the streaming part is skipped"; finish; }
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
stream_xml() {
	cat > "$T/$1.xml" <<XML
<?xml version="1.0"?>
<pipeline name="$1" version="1">
  <worker name="model" plugin="echo"><param name="token-delay-ms">1</param></worker>
  <stage name="ingress" plugin="http">
    <param name="listen">127.0.0.1:0</param>
    <param name="port-file">$T/$1.port</param>
  </stage>
  <stage name="infer" plugin="inference" worker="model"/>
  <stage name="reply" plugin="reply"/>
  <channel from="ingress" to="infer"/>
  <channel from="infer" to="reply" $2/>
  <channel from="infer:error" to="reply"/>
</pipeline>
XML
}
stream_xml plain ""
stream_xml routed 'when="length(text) &gt; 0"'
for kind in plain routed; do
	"$PORCH" run -q "$T/$kind.xml" > /dev/null 2> "$T/$kind.err" &
	pid=$!
	wait_for 20 test -s "$T/$kind.port" || fail "$kind: porch did not start: $(cat "$T/$kind.err")"
	curl -s -S -N -H 'Content-Type: application/json' "http://127.0.0.1:$(cat "$T/$kind.port")/v1/chat/completions" \
	    -d '{"model":"echo","stream":true,"messages":[{"role":"user","content":"one two three four five"}]}' \
	    > "$T/$kind.sse"
	grep -c '"content":"[^"]' "$T/$kind.sse" > "$T/$kind.n"
	kill "$pid"
	wait "$pid"
done
[ "$(cat "$T/plain.n")" -gt 3 ] && ok || fail "plain: the answer did not stream: $(cat "$T/plain.sse")"
expect_eq "routed: pieces with content" "$(cat "$T/routed.n")" 1
grep -q '"content":"one two three four five"' "$T/routed.sse" && ok || fail "routed: $(cat "$T/routed.sse")"
grep -q '^data: \[DONE\]' "$T/routed.sse" && ok || fail "routed: no [DONE]: $(cat "$T/routed.sse")"

finish
