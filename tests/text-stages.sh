#!/bin/sh
# text-stages.sh -- assemble, post and redact end to end: exact answers
# through stdin -> assemble -> inference (echo) -> post -> redact -> stdout,
# the chat form, the prompt limits, streamed answers through post and
# redact, and porch check's errors for bad parameters.
#
# Streams: two test plugins are built here.  "chunker" passes each message
# on after streaming its text downstream in pieces of `size` bytes, as the
# inference stage does with tokens; "collect" gathers the pieces it is
# streamed and, when the message arrives, sets its text to
# "stream=[PIECES] text=[TEXT]", and adds " system=[VALUE]" when the
# message has the metadata "system".
. "$top_srcdir/tests/lib.sh"

: "${CC:=cc}"

D="$T/plugins"
mkdir -p "$D"
cat > "$T/chunker.c" <<'EOF'
#include <porch/plugin.h>
static const struct porch_param params[] = {
	{ "size", PORCH_PARAM_INTEGER, "1", 1, 1000000, NULL, 0, "bytes per piece" },
	{ NULL, 0, NULL, 0, 0, NULL, 0, NULL },
};
static void
process(porch_stage *st, porch_msg *m)
{
	size_t len, size = (size_t)porch_param_int(porch_stage_params(st), "size");
	const char *text = porch_msg_text(m, &len);
	for (size_t i = 0; i < len; i += size)
		if (porch_stream(st, m, text + i, len - i < size ? len - i : size) != 0)
			break;
	porch_emit(st, m);
}
static const char *const outs[] = { "out", NULL };
const struct porch_plugin porch_plugin = { PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_STAGE, .name = "chunker",
	.summary = "streams each message's text in pieces, then passes it on",
	.outputs = outs, .params = params, .process = process };
EOF
cat > "$T/collect.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <porch/plugin.h>
struct acc { char *p; size_t len; };
static void
chunk(porch_stage *st, porch_msg *m, const char *text, size_t len)
{
	struct acc *a = porch_msg_local(st, m);
	if (a == NULL) {
		a = calloc(1, sizeof *a);
		porch_msg_set_local(st, m, a);
	}
	a->p = realloc(a->p, a->len + len + 1);
	memcpy(a->p + a->len, text, len);
	a->len += len;
}
static void
forget(porch_stage *st, porch_msg *m, void *local)
{
	struct acc *a = local;
	(void)st; (void)m;
	free(a->p);
	free(a);
}
static void
process(porch_stage *st, porch_msg *m)
{
	struct acc *a = porch_msg_local(st, m);
	size_t len;
	const char *text = porch_msg_text(m, &len);
	const char *system = porch_msg_meta(m, "system");
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);
	fprintf(f, "stream=[%.*s] text=[%.*s]", a ? (int)a->len : 0, a ? a->p : "",
	    (int)len, text);
	if (system != NULL)
		fprintf(f, " system=[%s]", system);
	fclose(f);
	if (a != NULL) {
		porch_msg_set_local(st, m, NULL);
		forget(st, m, a);
	}
	porch_msg_set_text(m, out, n);
	free(out);
	porch_emit(st, m);
}
static const char *const outs[] = { "out", NULL };
const struct porch_plugin porch_plugin = { PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_STAGE, .name = "collect",
	.summary = "gathers streamed pieces and shows them with the text",
	.outputs = outs, .process = process, .chunk = chunk, .forget = forget };
EOF
for p in chunker collect; do
	# shellcheck disable=SC2086
	if ! $CC ${CFLAGS:-} -shared -fPIC -I"$top_srcdir/include" -o "$D/$p.so" "$T/$p.c"; then
		fail "could not build the $p test plugin"
	fi
done
PORCH_PLUGIN_PATH="$D${PORCH_PLUGIN_PATH:+:$PORCH_PLUGIN_PATH}"
export PORCH_PLUGIN_PATH

# run NAME FILE: runs the pipeline on $T/in; output in $T/out, $T/err, $T/s.json
run() {
	"$PORCH" run -q --stats-json "$T/s.json" "$2" < "$T/in" > "$T/out" 2> "$T/err"
	expect_eq "$1: exit status" "$?" 0
}

# same NAME: $T/out must equal $T/want
same() {
	checks=$((checks + 1))
	if ! cmp -s "$T/out" "$T/want"; then
		fail "$1: output differs (- expected, + got):"
		diff -u "$T/want" "$T/out" | sed -n '3,$p' >&2
		[ -s "$T/err" ] && sed 's/^/  stderr: /' "$T/err" >&2
	fi
}

# ---- the whole path: assemble -> echo -> post -> redact ----------------------
cat > "$T/full.xml" <<'EOF'
<?xml version="1.0"?>
<pipeline name="full" version="1">
  <worker name="model" plugin="echo"/>
  <stage name="input" plugin="stdin"/>
  <stage name="assemble" plugin="assemble">
    <param name="template">[{{ session }}] {{#context}}ctx: {{context}} | {{/context}}q: {{input}} {{{{lang}}={{meta.lang}}</param>
    <param name="max-context-bytes">30</param>
  </stage>
  <stage name="infer" plugin="inference" worker="model"/>
  <stage name="post" plugin="post">
    <param name="stop">STOP, \n\n</param>
    <param name="max-length">120</param>
  </stage>
  <stage name="redact" plugin="redact"/>
  <stage name="output" plugin="stdout"/>
  <channel from="input" to="assemble"/>
  <channel from="assemble" to="infer"/>
  <channel from="infer" to="post"/>
  <channel from="post" to="redact"/>
  <channel from="redact" to="output"/>
</pipeline>
EOF
cat > "$T/in" <<'EOF'
hello   world
{"text": "who is bob@example.com?", "session": "s1", "meta": {"lang": "en"}}
{"text": "sum up", "session": "s2", "meta": {"context": "First passage here.\n\nSecond passage is too long to fit."}}
{"text": "one STOP two", "session": "s3"}
{"text": "key sk-proj-Ab12Cd34Ef56Gh78Ij90 and call +1 202 555 0143", "session": "s4"}
{"text": "x", "session": "s5", "meta": {"context": "a single passage that is longer than thirty bytes"}}
EOF
cat > "$T/want" <<'EOF'
stdin	[stdin] q: hello world {{lang}}=
s1	[s1] q: who is [REDACTED:email]? {{lang}}=en
s2	[s2] ctx: First passage here. | q: sum up {{lang}}=
s3	[s3] q: one
s4	[s4] q: key [REDACTED:key] and call [REDACTED:phone] {{lang}}=
s5	[s5] ctx: a single passage that is longe | q: x {{lang}}=
EOF
run full "$T/full.xml"
same full
expect_eq "full: completed" "$(json_get "$T/s.json" completed)" 6

# max-length cuts the answer (echo joins the prompt's words with spaces)
printf 'aaaa bbbb cccc dddd eeee\n' > "$T/in"
"$PORCH" run -q --set post.max-length=20 "$T/full.xml" < "$T/in" > "$T/out" 2> "$T/err"
expect_eq "max-length: exit status" "$?" 0
expect_eq "max-length: answer" "$(cat "$T/out")" "$(printf 'stdin\t[stdin] q: aaaa bbbb')"

# ---- the default template ----------------------------------------------------
cat > "$T/default.xml" <<'EOF'
<?xml version="1.0"?>
<pipeline name="default" version="1">
  <stage name="input" plugin="stdin"/>
  <stage name="assemble" plugin="assemble"/>
  <stage name="collect" plugin="collect"/>
  <stage name="output" plugin="stdout"/>
  <channel from="input" to="assemble"/>
  <channel from="assemble" to="collect"/>
  <channel from="collect" to="output"/>
</pipeline>
EOF
cat > "$T/in" <<'EOF'
no context
{"text": "with context", "meta": {"context": "C1.\n\nC2."}}
EOF
cat > "$T/want" <<'EOF'
stdin	stream=[] text=[no context]
stdin	stream=[] text=[Answer the question using the context below.

Context:
C1.

C2.

Question: with context]
EOF
run default "$T/default.xml"
same default

# ---- the chat form -------------------------------------------------------------
cat > "$T/chat.xml" <<'EOF'
<?xml version="1.0"?>
<pipeline name="chat" version="1">
  <stage name="input" plugin="stdin"/>
  <stage name="assemble" plugin="assemble">
    <param name="form">chat</param>
    <param name="system">You answer in {{meta.lang}}.{{#context}} Context: {{context}}{{/context}}</param>
    <param name="template">Q: {{input}}</param>
  </stage>
  <stage name="collect" plugin="collect"/>
  <stage name="output" plugin="stdout"/>
  <channel from="input" to="assemble"/>
  <channel from="assemble" to="collect"/>
  <channel from="collect" to="output"/>
</pipeline>
EOF
cat > "$T/in" <<'EOF'
{"text": "why?", "session": "c1", "meta": {"lang": "French", "context": "Because."}}
{"text": "and?", "session": "c2", "meta": {"lang": "German"}}
EOF
cat > "$T/want" <<'EOF'
c1	stream=[] text=[Q: why?] system=[You answer in French. Context: Because.]
c2	stream=[] text=[Q: and?] system=[You answer in German.]
EOF
run chat "$T/chat.xml"
same chat

# the chat form's default system message: only when there is a context
sed -e '/name="system"/d' -e '/name="template"/d' "$T/chat.xml" > "$T/chat-default.xml"
cat > "$T/want" <<'EOF'
c1	stream=[] text=[why?] system=[Answer the question using the context below.

Context:
Because.]
c2	stream=[] text=[and?]
EOF
run chat-default "$T/chat-default.xml"
same chat-default

# ---- max-prompt-bytes: the context gives way, the question never --------------
cat > "$T/limit.xml" <<'EOF'
<?xml version="1.0"?>
<pipeline name="limit" version="1">
  <stage name="input" plugin="stdin"/>
  <stage name="assemble" plugin="assemble">
    <param name="template">{{#context}}C: {{context}}
{{/context}}Q: {{input}}</param>
    <param name="max-prompt-bytes">24</param>
  </stage>
  <stage name="collect" plugin="collect"/>
  <stage name="output" plugin="stdout"/>
  <channel from="input" to="assemble"/>
  <channel from="assemble" to="collect"/>
  <channel from="collect" to="output"/>
</pipeline>
EOF
cat > "$T/in" <<'EOF'
{"text": "short", "meta": {"context": "p1.\n\np2."}}
{"text": "short", "meta": {"context": "p1 is long.\n\np2 is long."}}
{"text": "short", "meta": {"context": "one passage, far too long"}}
{"text": "a question of 21 byte", "meta": {"context": "p1."}}
{"text": "a question that is too long to fit at all"}
EOF
# "C: " + ctx + "\nQ: short" is 12 bytes with the context: 12 bytes left for it
cat > "$T/want" <<'EOF'
stdin	stream=[] text=[C: p1.

p2.
Q: short]
stdin	stream=[] text=[C: p1 is long.
Q: short]
stdin	stream=[] text=[C: one passage,
Q: short]
stdin	stream=[] text=[Q: a question of 21 byte]
EOF
run limit "$T/limit.xml"
same limit
grep -q "failed: bad-request: the prompt is 44 bytes without any context, more than max-prompt-bytes (24)$" "$T/err" &&
    ok || fail "limit: no bad-request error: $(cat "$T/err")"
expect_eq "limit: failed" "$(json_get "$T/s.json" failed)" 1
expect_eq "limit: completed" "$(json_get "$T/s.json" completed)" 4

# a template file
printf 'From file: {{input}}\n' > "$T/prompt.txt"
sed -e 's|<param name="template">.*|<param name="template-file">prompt.txt</param>|' \
    -e '/^{{\/context}}/d' -e '/max-prompt-bytes/d' "$T/limit.xml" > "$T/file.xml"
printf 'hi\n' > "$T/in"
printf 'stdin\tstream=[] text=[From file: hi\n]\n' > "$T/want"
run template-file "$T/file.xml"
same template-file

# ---- streamed answers through post and redact --------------------------------
# chunker -> post -> redact -> collect: the pieces joined equal the text
cat > "$T/stream.xml" <<'EOF'
<?xml version="1.0"?>
<pipeline name="stream" version="1">
  <stage name="input" plugin="stdin"/>
  <stage name="chunker" plugin="chunker"/>
  <stage name="post" plugin="post">
    <param name="stop">\n\nUser:</param>
    <param name="collapse-whitespace">true</param>
  </stage>
  <stage name="redact" plugin="redact"/>
  <stage name="collect" plugin="collect"/>
  <stage name="output" plugin="stdout"/>
  <channel from="input" to="chunker"/>
  <channel from="chunker" to="post"/>
  <channel from="post" to="redact"/>
  <channel from="redact" to="collect"/>
  <channel from="collect" to="output"/>
</pipeline>
EOF
cat > "$T/in" <<'EOF'
{"text": "  Sure:  mail ada@example.org  or\tuse AKIAIOSFODNN7EXAMPLE \n\nUser: sk-proj-Ab12Cd34Ef56Gh78Ij90", "session": "t1"}
{"text": "Authorization: Bearer abcdefghijklmnop0123 and 9f86d081884c7d659a2feaa0c55ad015 done  ", "session": "t2"}
{"text": "   ", "session": "t3"}
EOF
cat > "$T/want" <<'EOF'
t1	stream=[Sure: mail [REDACTED:email] or use [REDACTED:key]] text=[Sure: mail [REDACTED:email] or use [REDACTED:key]]
t2	stream=[Authorization: Bearer [REDACTED:bearer] and [REDACTED:hex] done] text=[Authorization: Bearer [REDACTED:bearer] and [REDACTED:hex] done]
t3	stream=[] text=[]
EOF
for size in 1 2 3 7 1000; do
	"$PORCH" run -q --set chunker.size=$size "$T/stream.xml" < "$T/in" > "$T/out" 2> "$T/err"
	expect_eq "stream in $size-byte pieces: exit status" "$?" 0
	same "stream in $size-byte pieces"
done

# a stage without a chunk callback downstream ends the stream: post still
# answers with the whole text
sed -e 's|<stage name="collect" plugin="collect"/>|<stage name="collect" plugin="pass"/>|' \
    "$T/stream.xml" > "$T/nochunk.xml"
cat > "$T/want" <<'EOF'
t1	Sure: mail [REDACTED:email] or use [REDACTED:key]
t2	Authorization: Bearer [REDACTED:bearer] and [REDACTED:hex] done
t3	
EOF
run no-chunk "$T/nochunk.xml"
same no-chunk

# a streamed message shed after its first pieces: the stage's state for it
# is handed to its forget callback (the sanitizer build sees any leak)
cat > "$T/shed.xml" <<'EOF'
<?xml version="1.0"?>
<pipeline name="shed" version="1">
  <stage name="input" plugin="stdin"/>
  <stage name="chunker" plugin="chunker"/>
  <stage name="post" plugin="post"/>
  <stage name="redact" plugin="redact"/>
  <stage name="collect" plugin="collect"/>
  <stage name="output" plugin="stdout"/>
  <channel from="input" to="chunker" capacity="256"/>
  <channel from="chunker" to="post" capacity="1" overflow="reject"/>
  <channel from="post" to="redact"/>
  <channel from="redact" to="collect"/>
  <channel from="collect" to="output"/>
</pipeline>
EOF
i=0
: > "$T/in"
while [ "$i" -lt 50 ]; do
	i=$((i + 1))
	echo "  answer $i for a@b.io  " >> "$T/in"
done
"$PORCH" run -q --stats-json "$T/s.json" "$T/shed.xml" < "$T/in" > "$T/out" 2> "$T/err"
expect_eq "shed: exit status" "$?" 0
c=$(json_get "$T/s.json" completed)
sh=$(json_get "$T/s.json" shed)
expect_eq "shed: accepted" "$(json_get "$T/s.json" accepted)" 50
[ -n "$c" ] && [ -n "$sh" ] && [ "$sh" -ge 1 ] && [ $((c + sh)) -eq 50 ] && ok ||
    fail "shed: completed '$c', shed '$sh' of 50"
expect_eq "shed: answers printed" "$(grep -c . "$T/out")" "$c"
expect_eq "shed: answers not streamed whole" \
    "$(grep -cv '^stdin	stream=\[answer [0-9]* for \[REDACTED:email\]\] text=\[answer [0-9]* for \[REDACTED:email\]\]$' "$T/out")" 0

# redact in front of the model: the prompt is masked before the worker sees it
cat > "$T/prompt.xml" <<'EOF'
<?xml version="1.0"?>
<pipeline name="prompt" version="1">
  <worker name="model" plugin="echo"/>
  <stage name="input" plugin="stdin"/>
  <stage name="redact" plugin="redact">
    <param name="kinds">email</param>
    <param name="mask">&lt;%s&gt;</param>
  </stage>
  <stage name="infer" plugin="inference" worker="model"/>
  <stage name="output" plugin="stdout"/>
  <channel from="input" to="redact"/>
  <channel from="redact" to="infer"/>
  <channel from="infer" to="output"/>
</pipeline>
EOF
printf 'mail a@b.io, not +1 202 555 0143\n' > "$T/in"
printf 'stdin\tmail <email>, not +1 202 555 0143\n' > "$T/want"
run redact-prompt "$T/prompt.xml"
same redact-prompt

# ---- porch check: exact errors, exit status 2 --------------------------------
# (more cases are in tests/bad: assemble-*, post-stop, redact-kinds)
(cd "$T" && "$PORCH" check --set assemble.template='Q: {{ question }}' full.xml) > "$T/out" 2> "$T/err"
expect_eq "check --set template: exit status" "$?" 2
expect_eq "check --set template: message" "$(cat "$T/err")" \
    "full.xml: error: --set assemble.template: stage 'assemble' (plugin assemble): at offset 3: unknown placeholder '{{ question }}'; known: {{input}}, {{context}}, {{session}}, {{meta.KEY}}"
(cd "$T" && "$PORCH" check --set assemble.template-file=prompt.txt full.xml) > "$T/out" 2> "$T/err"
expect_eq "check template and template-file: exit status" "$?" 2
expect_eq "check template and template-file: message" "$(cat "$T/err")" \
    "full.xml: error: --set assemble.template-file: stage 'assemble' (plugin assemble): give template or template-file, not both"
(cd "$T" && "$PORCH" check --set redact.kinds=email,credit-card full.xml) > "$T/out" 2> "$T/err"
expect_eq "check redact kinds: exit status" "$?" 2
expect_eq "check redact kinds: message" "$(cat "$T/err")" \
    "full.xml: error: --set redact.kinds: stage 'redact' (plugin redact): unknown kind 'credit-card'; known: email, phone, key, bearer, hex, base64"
# and porch run refuses the same, before reading any input
"$PORCH" run -q --set redact.kinds=ssn "$T/full.xml" < /dev/null > "$T/out" 2> "$T/err"
expect_eq "run with a bad kind: exit status" "$?" 2
grep -q "unknown kind 'ssn'" "$T/err" && ok || fail "run with a bad kind: $(cat "$T/err")"

finish
