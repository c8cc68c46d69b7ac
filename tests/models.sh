#!/bin/sh
# models.sh -- per-model settings on the stage that calls a model: a context
# limit that sends too long a prompt to a larger model (or fails it,
# naming the sizes), and the thinking switch as the upstream sees it.
. "$top_srcdir/tests/lib.sh"

# 1. context-limit: small takes what fits, long sends the rest to large
cat > "$T/ctx.xml" <<XML
<?xml version="1.0"?>
<pipeline name="ctx" version="1">
  <worker name="w" plugin="echo"/>
  <stage name="in" plugin="stdin"/>
  <stage name="small" plugin="inference" worker="w">
    <param name="context-limit">12</param>
    <param name="max-tokens">4</param>
  </stage>
  <stage name="large" plugin="inference" worker="w">
    <param name="max-tokens">100</param>
  </stage>
  <stage name="s" plugin="dlq"><param name="path">$T/small.jsonl</param></stage>
  <stage name="l" plugin="dlq"><param name="path">$T/large.jsonl</param></stage>
  <stage name="dead" plugin="dlq"><param name="path">$T/dead.jsonl</param></stage>
  <channel from="in" to="small"/>
  <channel from="small" to="s"/>
  <channel from="small:long" to="large"/>
  <channel from="large" to="l"/>
  <channel from="small:error" to="dead"/>
</pipeline>
XML
# 32 bytes: 8 tokens + 4 = 12 fits; 33 bytes: 9 + 4 = 13 does not; with
# max-tokens 1 in its metadata the second fits again
printf '%s\n' '{"text":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}' '{"text":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}' \
    '{"text":"ccccccccccccccccccccccccccccccccc","meta":{"max-tokens":"1"}}' > "$T/in"
"$PORCH" run -q --stats-json "$T/ctx.json" "$T/ctx.xml" < "$T/in" > /dev/null 2> "$T/ctx.err"
expect_eq "ctx: exit status" "$?" 0
texts() { sed -n 's/.*"text":"\([^"]*\)".*/\1/p' "$1" 2> /dev/null | sort | tr '\n' ' '; }
expect_eq "ctx: small" "$(texts "$T/small.jsonl")" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa ccccccccccccccccccccccccccccccccc "
expect_eq "ctx: large" "$(texts "$T/large.jsonl")" "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb "
# the larger model's own max-tokens, not the small one's
grep -q '"max-tokens":"100"' "$T/large.jsonl" && ok || fail "ctx: large's settings: $(cat "$T/large.jsonl")"
# the stats' stages, one a line: the small one counted a fallback
tr -d ' \n' < "$T/ctx.json" | sed 's/},{"completed"/}\n{"completed"/g' | grep '"name":"small"' |
    grep -q '"events":{"context_fallback":1}' && ok || fail "ctx: no context_fallback counted"
# without a long channel: bad-request, with the sizes
sed '/small:long/d; /name="large"/,/<\/stage>/d; /from="large"/d; /name="l"/d' "$T/ctx.xml" > "$T/nolong.xml"
"$PORCH" run -q "$T/nolong.xml" < "$T/in" > /dev/null 2> "$T/nolong.err"
expect_eq "nolong: exit status" "$?" 0
grep -q '"error":"bad-request","error_text":"the prompt is about 9 tokens (33 bytes at 4 a token) and max-tokens is 4: more than context-limit 12 of stage '"'"'small'"'"'"' "$T/dead.jsonl" &&
    ok || fail "nolong: $(cat "$T/dead.jsonl")"

# 2. thinking: the stage's switch, and a request's own, reach the upstream
fake=${top_builddir:-$top_srcdir}/tests/fake-upstream
if [ -x "$fake" ]; then
	"$fake" -p "$T/up.port" -j "$T/up.jsonl" -t 120 > /dev/null 2>&1 &
	up=$!
	trap 'kill "$up" 2> /dev/null; rm -rf "$T"' EXIT
	wait_for 10 test -s "$T/up.port" || fail "the fake upstream did not start"
	cat > "$T/think.xml" <<XML
<?xml version="1.0"?>
<pipeline name="think" version="1">
  <worker name="llm" plugin="openai">
    <param name="base-url">http://127.0.0.1:$(cat "$T/up.port")/v1</param>
  </worker>
  <stage name="in" plugin="stdin"/>
  <stage name="infer" plugin="inference" worker="llm"><param name="thinking">off</param></stage>
  <stage name="out" plugin="stdout"/>
  <channel from="in" to="infer"/>
  <channel from="infer" to="out"/>
</pipeline>
XML
	printf '%s\n' '{"text":"one"}' '{"text":"two","meta":{"thinking":"true"}}' |
	    "$PORCH" run -q "$T/think.xml" > "$T/think.out" 2> "$T/think.err"
	expect_eq "think: exit status" "$?" 0
	grep '"body":{' "$T/up.jsonl" | grep -q '"content":"one".*"chat_template_kwargs":{"enable_thinking":false}\|"chat_template_kwargs":{"enable_thinking":false}.*"content":"one"' &&
	    ok || fail "think: the stage's switch did not reach the upstream: $(cat "$T/up.jsonl")"
	grep '"body":{' "$T/up.jsonl" | grep -q '"content":"two".*"enable_thinking":true\|"enable_thinking":true.*"content":"two"' &&
	    ok || fail "think: the request's switch did not reach the upstream: $(cat "$T/up.jsonl")"
fi

# 3. --set NAME.plugin=PLUGIN: the echo worker becomes an openai one
"$PORCH" check --set w.plugin=openai --set w.base-url=http://127.0.0.1:9/v1 "$T/ctx.xml" \
    > "$T/check.out" 2>&1
expect_eq "--set w.plugin=openai: porch check" "$?" 0
# its parameters are the new plugin's: echo's delay-ms is not one of them
"$PORCH" check --set w.plugin=openai --set w.delay-ms=5 "$T/ctx.xml" > "$T/check.out" 2>&1
expect_eq "--set w.plugin=openai with an echo parameter: exit status" "$?" 2
grep -q "ctx.xml: error: worker 'w' (plugin openai): unknown parameter 'delay-ms'; its parameters are: base-url," "$T/check.out" &&
    ok || fail "--set plugin: $(cat "$T/check.out")"
"$PORCH" check --set w.plugin=opena "$T/ctx.xml" > "$T/check.out" 2>&1
expect_eq "--set w.plugin=opena: exit status" "$?" 2
grep -q "ctx.xml: error: worker 'w': unknown plugin 'opena'; did you mean 'openai'?" "$T/check.out" &&
    ok || fail "--set plugin: $(cat "$T/check.out")"

finish
