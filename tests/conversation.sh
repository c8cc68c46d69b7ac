#!/bin/sh
# conversation.sh -- the http source takes OpenAI requests as the API
# defines them, with an echo worker behind it: conversations of any shape
# (tool calls, tool results, content parts), null as "not set", the token
# cap under either name, finish reasons whole and streamed, and n.
. "$top_srcdir/tests/lib.sh"

command -v curl > /dev/null || { echo "curl is not installed: skipped"; exit 77; }

# pipeline FILE [STAGE-XML CHANNELS-XML]: http -> inference (echo) [-> STAGE] -> reply
pipeline() {
	_out='<channel from="inference" to="reply"/>'
	[ -z "${3:-}" ] || _out=$3
	cat > "$1" <<XML
<?xml version="1.0"?>
<pipeline name="conv" version="1">
  <worker name="model" plugin="echo"/>
  <stage name="ingress" plugin="http"><param name="listen">127.0.0.1:0</param></stage>
  <stage name="inference" plugin="inference" worker="model"/>
  ${2:-}
  <stage name="reply" plugin="reply"/>
  <channel from="ingress" to="inference"/>
  $_out
  <channel from="inference:error" to="reply"/>
</pipeline>
XML
}

# start NAME FILE: porch in the background; sets pid and U
start() {
	name=$1
	"$PORCH" run --set "ingress.port-file=$T/$name.port" "$2" > "$T/$name.out" 2> "$T/$name.err" &
	pid=$!
	if ! wait_for 20 test -s "$T/$name.port"; then
		fail "$name: porch did not start: $(cat "$T/$name.err")"
		kill -KILL "$pid" 2> /dev/null
		return 1
	fi
	U="http://127.0.0.1:$(cat "$T/$name.port")"
}

stop() {
	kill -TERM "$pid"
	wait "$pid"
	expect_eq "$name: exit status after SIGTERM" "$?" 0
}

# chat BODY: POST /v1/chat/completions; prints the status, the body in $T/b
chat() {
	curl -s -S --max-time 20 -o "$T/b" -w '%{http_code}' "$U/v1/chat/completions" \
	    -H 'Content-Type: application/json' -d "$1" 2> "$T/curl.err"
}

check_has() {
	if grep -qF -- "$3" "$2"; then ok; else fail "$1: no '$3' in: $(cat "$2")"; fi
}

pipeline "$T/conv.xml"
if start conv "$T/conv.xml"; then
	# an agent's conversation: user (text and image parts), assistant with
	# tool calls and no content, and a tool result last
	expect_eq "ends with a tool message: status" "$(chat '{"messages":[
	    {"role":"system","content":"be brief"},
	    {"role":"user","content":[{"type":"text","text":"what is"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}},{"type":"text","text":"in the picture"}]},
	    {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"look","arguments":"{}"}}]},
	    {"role":"tool","tool_call_id":"call_1","content":"a cat"}]}')" 200
	# the text is the last user message's text parts (joined by a newline,
	# which the echo worker's words turn into a space)
	check_has "ends with a tool message: text" "$T/b" '"content":"what is in the picture"'

	expect_eq "a part without a type" "$(chat '{"messages":[{"role":"user","content":[{"type":"text","text":"x"},{"image_url":{"url":"u"}}]}]}')" 400
	check_has "a part without a type: param" "$T/b" '"param":"messages[0].content[1]"'
	expect_eq "a text part without text" "$(chat '{"messages":[{"role":"user","content":[{"type":"text"}]}]}')" 400
	check_has "a text part without text: param" "$T/b" '"param":"messages[0].content[0].text"'
	expect_eq "content of the wrong type" "$(chat '{"messages":[{"role":"user","content":5}]}')" 400
	check_has "content of the wrong type: param" "$T/b" '"param":"messages[0].content"'

	# null is "not set", for every optional field
	expect_eq "nulls: status" "$(chat '{"model":null,"messages":[{"role":"user","content":"a b c"}],
	    "max_tokens":null,"max_completion_tokens":null,"temperature":null,"top_p":null,"stop":null,
	    "stream":null,"stream_options":null,"user":null,"n":null,"tools":null,"seed":null}')" 200
	check_has "nulls: whole answer" "$T/b" '"content":"a b c"},"finish_reason":"stop"'

	# the token cap: max_completion_tokens is max_tokens' newer name
	chat '{"messages":[{"role":"user","content":"a b c d"}],"max_tokens":null,"max_completion_tokens":2}' > /dev/null
	check_has "max_completion_tokens: cut with length" "$T/b" '"content":"a b"},"finish_reason":"length"'
	chat '{"messages":[{"role":"user","content":"a b c d"}],"max_tokens":1,"max_completion_tokens":3}' > /dev/null
	check_has "both names: the newer wins" "$T/b" '"content":"a b c"},"finish_reason":"length"'
	chat '{"messages":[{"role":"user","content":"a b c d"}],"max_tokens":4}' > /dev/null
	check_has "a cap not reached: stop" "$T/b" '"content":"a b c d"},"finish_reason":"stop"'
	chat '{"messages":[{"role":"user","content":"a b c d"}],"max_tokens":2,"stream":true}' > /dev/null
	check_has "streamed cut: length" "$T/b" '"delta":{},"logprobs":null,"finish_reason":"length"}'
	grep -c '"delta":{"content"' "$T/b" > "$T/n"
	expect_eq "streamed cut: two pieces" "$(cat "$T/n")" 2
	curl -s -S --max-time 20 -o "$T/b" "$U/v1/completions" -d '{"prompt":"x y z","max_tokens":1}'
	check_has "completions cut: length" "$T/b" '"text":"x","finish_reason":"length"'

	# n: whole answers only
	expect_eq "n 2 streamed" "$(chat '{"messages":[{"role":"user","content":"x"}],"n":2,"stream":true}')" 400
	check_has "n 2 streamed: param" "$T/b" '"param":"n"'
	expect_eq "n 0" "$(chat '{"messages":[{"role":"user","content":"x"}],"n":0}')" 400
	expect_eq "n 2 whole" "$(chat '{"messages":[{"role":"user","content":"x"}],"n":2}')" 200
	stop
fi

# a stage that edits answers after inference: n > 1 cannot be kept in step
pipeline "$T/post.xml" '<stage name="post" plugin="post"/>' \
    '<channel from="inference" to="post"/><channel from="post" to="reply"/>'
if start post "$T/post.xml"; then
	expect_eq "n 2 behind post" "$(chat '{"messages":[{"role":"user","content":"x"}],"n":2}')" 400
	check_has "n 2 behind post: why" "$T/b" "stage that edits answers"
	expect_eq "n 1 behind post" "$(chat '{"messages":[{"role":"user","content":"x"}],"n":1}')" 200
	stop
fi

# stages that rewrite the prompt, in front of the openai worker: what the
# model server gets (fake-upstream's echo-body answers with the body it got)
fake=$top_builddir/tests/fake-upstream
if [ -x "$fake" ]; then
	"$fake" -p "$T/up.port" -t 120 &
	fake_pid=$!
	wait_for 10 test -s "$T/up.port" || fail "the fake upstream did not start"
	cat > "$T/rewrite.xml" <<XML
<?xml version="1.0"?>
<pipeline name="rewrite" version="1">
  <worker name="model" plugin="openai">
    <param name="base-url">http://127.0.0.1:$(cat "$T/up.port")/v1</param>
    <param name="stream">false</param>
  </worker>
  <stage name="ingress" plugin="http"><param name="listen">127.0.0.1:0</param></stage>
  <stage name="redact" plugin="redact"/>
  <stage name="assemble" plugin="assemble"><param name="template">Q: {{input}}</param></stage>
  <stage name="inference" plugin="inference" worker="model"/>
  <stage name="reply" plugin="reply"/>
  <channel from="ingress" to="redact"/>
  <channel from="redact" to="assemble"/>
  <channel from="assemble" to="inference"/>
  <channel from="inference" to="reply"/>
  <channel from="inference:error" to="reply"/>
</pipeline>
XML
	if start rewrite "$T/rewrite.xml"; then
		expect_eq "rewritten conversation: status" "$(chat '{"model":"echo-body","seed":7,
		    "tools":[{"type":"function","function":{"name":"f","parameters":{}}}],
		    "messages":[{"role":"user","content":"mail me at ann@example.com"},
		    {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
		    {"role":"tool","tool_call_id":"c1","content":"done"},
		    {"role":"user","content":[{"type":"image_url","image_url":{"url":"data:x"}},{"type":"text","text":"my key sk-ABCDEFGHIJKLMNOPQRSTUV123"}]}]}')" 200
		# the body the server got, as the answer's (JSON-escaped) content
		check_has "redact masks an earlier turn" "$T/b" '{\"role\":\"user\",\"content\":\"mail me at [REDACTED:email]\"}'
		check_has "tool calls and results go as sent" "$T/b" '{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"done\"}'
		check_has "assemble's prompt replaces the text part, the image stays" "$T/b" '\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:x\"}},{\"type\":\"text\",\"text\":\"Q: my key [REDACTED:key]\"}]'
		check_has "other fields go as sent" "$T/b" '\"seed\":7'
		check_has "tools go as sent" "$T/b" '\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{}}}]'
		if grep -qF 'ann@example.com' "$T/b"; then fail "a secret reached the model server: $(cat "$T/b")"; else ok; fi
		# a retried 429 with an error object, then a 400 without one: the
		# client gets the 400 with its own words, not the 429's object
		expect_eq "429 then 400: status" "$(chat '{"model":"429-then-400","messages":[{"role":"user","content":"x"}]}')" 400
		check_has "429 then 400: the last answer's words" "$T/b" "upstream answered 400"
		if grep -qF 'Rate limit' "$T/b"; then fail "an earlier attempt's error object came back: $(cat "$T/b")"; else ok; fi
		stop
	fi
	# nothing changed on the way: the request goes to the model server as
	# the client wrote it (the same bytes: spaces, 1.0, \u00e9 and all);
	# a setting a stage adds (inference's max-tokens) makes it rebuilt
	for cap in "" 9; do
		capxml=
		[ -z "$cap" ] || capxml="<param name=\"max-tokens\">$cap</param>"
		cat > "$T/asis.xml" <<XML
<?xml version="1.0"?>
<pipeline name="asis" version="1">
  <worker name="model" plugin="openai">
    <param name="base-url">http://127.0.0.1:$(cat "$T/up.port")/v1</param>
  </worker>
  <stage name="ingress" plugin="http"><param name="listen">127.0.0.1:0</param></stage>
  <stage name="inference" plugin="inference" worker="model">$capxml</stage>
  <stage name="reply" plugin="reply"/>
  <channel from="ingress" to="inference"/>
  <channel from="inference" to="reply"/>
  <channel from="inference:error" to="reply"/>
</pipeline>
XML
		if start "asis$cap" "$T/asis.xml"; then
			expect_eq "as sent (cap '$cap'): status" "$(chat '{ "model" : "echo-body", "temperature": 1.0,
			    "messages": [ {"role":"user", "content":"caf\u00e9 au lait"} ] , "stream" :false }')" 200
			if [ -z "$cap" ]; then
				check_has "as sent: the same bytes" "$T/b" '{ \"model\" : \"echo-body\", \"temperature\": 1.0,'
				check_has "as sent: escapes as written" "$T/b" '\"content\":\"caf\\u00e9 au lait\"} ] , \"stream\" :false }'
			else
				check_has "a stage's cap: rebuilt" "$T/b" '{\"model\":\"echo-body\",\"temperature\":1.0,\"messages\":[{\"role\":\"user\",\"content\":\"caf\u00E9 au lait\"}],\"stream\":false,\"max_tokens\":9}'
			fi
			stop
		fi
	done
	kill "$fake_pid"
	wait "$fake_pid" 2> /dev/null
else
	echo "tests/fake-upstream is not built: the rewriting checks are skipped"
fi

finish
