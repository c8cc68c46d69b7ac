#!/bin/sh
# secrets.sh -- no API key, Authorization header or key-file line ever
# appears in porch's output: stderr (its json log at level debug, SIGUSR1's table
# included), stdout, --stats-json, /metrics, the access log (json, a file),
# the dead-letter file and the
# answers clients get, their headers included.
#
# One pipeline: the http source with an api-keys-file, the openai worker
# with its key in an environment variable (api-key-env) against
# tests/fake-upstream, failures (the upstream's 500 and 401, retried) going
# to a dead-letter sink.  Clients send good keys, a wrong key, a malformed
# header and none.  Then every output is searched for every secret used:
# zero hits.  The fake upstream's own log is the one place the worker's
# key must be (it was sent), and no client key may reach it.
. "$top_srcdir/tests/lib.sh"

: "${top_builddir:=$top_srcdir}"
fake=$top_builddir/tests/fake-upstream
[ -x "$fake" ] || { echo "tests/fake-upstream is not built: skipped"; exit 77; }
command -v curl > /dev/null || { echo "curl is not installed: skipped"; exit 77; }

unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

pids=
trap 'for p in $pids; do kill "$p" 2>/dev/null; done; rm -rf "$T"' EXIT

# the secrets: two client keys, a commented-out line of the keys file, a
# wrong key a client tries, and the upstream's key
key1=sk-client-one-Q7f3kVb9Lm2Xw8Rt
key2=sk-client-two-H4pZ6nYc1Jd5Gs0E
commented=sk-retired-old-key-T2vB8qN5xW
wrong=sk-guessed-wrong-U9mK3rL7pF2a
upkey=sk-upstream-secret-A1b2C3d4E5f6G7h8
secrets="$key1 $key2 $commented $wrong $upkey"

printf '# keys for the secrets test\n%s\n# %s\n\n  %s  \n' "$key1" "$commented" "$key2" > "$T/keys"
chmod 600 "$T/keys"

"$fake" -p "$T/up.port" -l "$T/up.log" -t 600 &
pids="$pids $!"
wait_for 10 test -s "$T/up.port" || { fail "the fake upstream did not start"; finish; }
up=$(cat "$T/up.port")

p() {
	printf '<param name="%s">%s</param>' "$1" "$2"
}
cat > "$T/p.xml" <<XML
<?xml version="1.0"?>
<pipeline name="secrets" version="1">
  <worker name="upstream" plugin="openai">
    $(p base-url "http://127.0.0.1:$up/v1")$(p api-key-env PORCH_TEST_UPSTREAM_KEY)$(p read-timeout 5s)
  </worker>
  <stage name="ingress" plugin="http">
    $(p listen 127.0.0.1:0)$(p port-file "$T/port")$(p api-keys-file "$T/keys")$(p access-log "$T/access.jsonl")$(p access-log-format json)
  </stage>
  <stage name="inference" plugin="inference" worker="upstream">$(p retries 1)$(p backoff-ms 1ms)</stage>
  <stage name="reply" plugin="reply"/>
  <stage name="dead" plugin="dlq">$(p path "$T/dead.jsonl")</stage>
  <channel from="ingress" to="inference"/>
  <channel from="inference" to="reply"/>
  <channel from="inference:error" to="dead"/>
</pipeline>
XML

PORCH_TEST_UPSTREAM_KEY=$upkey "$PORCH" run --log-format json --log-level debug \
    --stats-json "$T/stats.json" "$T/p.xml" \
    > "$T/porch.out" 2> "$T/porch.err" &
pid=$!
pids="$pids $pid"
wait_for 20 test -s "$T/port" || { fail "porch did not start: $(cat "$T/porch.err")"; finish; }
U="http://127.0.0.1:$(cat "$T/port")"

mkdir "$T/answers"
n=0
# ask WHAT WANT-STATUS CURL-ARGS...: one request; its headers and body kept
# (WHAT names it: a failure message must not show the keys either)
ask() {
	what=$1
	want=$2
	shift 2
	n=$((n + 1))
	got=$(curl -s -S --max-time 20 -D "$T/answers/$n.h" -o "$T/answers/$n.b" \
	    -w '%{http_code}' "$@" 2> "$T/answers/$n.curl")
	expect_eq "request $n, $what: status" "$got" "$want"
}
chat() {
	printf '{"model":"%s","messages":[{"role":"user","content":"hi"}]%s}' "$1" "${2:-}"
}
j='Content-Type: application/json'

ask "chat" 200 -H "Authorization: Bearer $key1" -H "$j" -d "$(chat ok)" "$U/v1/chat/completions"
ask "chat, streamed" 200 -H "Authorization: Bearer $key2" -H "$j" -d "$(chat ok ',"stream":true')" "$U/v1/chat/completions"
ask "completions" 200 -H "Authorization: Bearer $key2" -H "$j" -d '{"model":"ok","prompt":"hi"}' "$U/v1/completions"
# the upstream fails: retried, then a dead letter, and an error answer
ask "upstream 500" 502 -H "Authorization: Bearer $key1" -H "$j" -d "$(chat 500)" "$U/v1/chat/completions"
ask "upstream 500, streamed" 502 -H "Authorization: Bearer $key1" -H "$j" -d "$(chat 500 ',"stream":true')" "$U/v1/chat/completions"
# the upstream refuses the worker's key (as if it were wrong)
ask "upstream 401" 401 -H "Authorization: Bearer $key2" -H "$j" -d "$(chat 401)" "$U/v1/chat/completions"
# an upstream that quotes the key it refused, in its error message: the
# worker masks it before the message goes anywhere
ask "upstream quotes the key" 401 -H "Authorization: Bearer $key1" -H "$j" -d "$(chat 401-key)" "$U/v1/chat/completions"
ask "upstream quotes the key, streamed" 401 -H "Authorization: Bearer $key1" -H "$j" -d "$(chat 401-key ',"stream":true')" "$U/v1/chat/completions"
# porch refuses the client: a wrong key, a malformed header, none
ask "wrong key" 401 -H "Authorization: Bearer $wrong" -H "$j" -d "$(chat ok)" "$U/v1/chat/completions"
ask "wrong key, models" 401 -H "Authorization: Bearer $wrong" "$U/v1/models"
ask "no Bearer" 401 -H "Authorization: $key1" -H "$j" -d "$(chat ok)" "$U/v1/chat/completions"
ask "Basic" 401 -H "Authorization: Basic $key2" -H "$j" -d "$(chat ok)" "$U/v1/chat/completions"
ask "no key" 401 -H "$j" -d "$(chat ok)" "$U/v1/chat/completions"
# a good key with a bad request, and on other endpoints
ask "bad JSON" 400 -H "Authorization: Bearer $key1" -H "$j" -d '{"model":' "$U/v1/chat/completions"
ask "models" 200 -H "Authorization: Bearer $key1" "$U/v1/models"
ask "generate" 200 -H "Authorization: Bearer $key2" -H "$j" -d '{"text":"hi"}' "$U/generate"
ask "metrics" 200 -H "Authorization: Bearer $wrong" "$U/metrics"
ask "healthz" 200 -H "Authorization: Bearer $wrong" "$U/healthz"

# the statistics table (SIGUSR1), then a drain (SIGTERM): porch ends
kill -USR1 "$pid"
wait_for 10 grep -q 'accepted' "$T/porch.err" || fail "SIGUSR1 printed no table"
kill -TERM "$pid"
wait "$pid"
expect_eq "porch: exit status after SIGTERM" "$?" 0

# the outputs hold what they should: else a search in them proves nothing
test -s "$T/dead.jsonl" && ok || fail "no dead letters were written"
grep -q '"method":"POST","target":"/v1/chat/completions","http":"1.1","status":401,' "$T/access.jsonl" && ok ||
    fail "the access log has no 401: $(cat "$T/access.jsonl")"
grep -q 'porch_http_requests_total' "$T/answers/17.b" && ok || fail "/metrics: $(cat "$T/answers/17.b")"
grep -qF 'Incorrect API key provided: [api key]' "$T/answers/7.b" && ok ||
    fail "the quoted key is not masked in the answer: $(cat "$T/answers/7.b")"
test -s "$T/stats.json" && ok || fail "no --stats-json file"
grep -qF "auth=[Bearer $upkey]" "$T/up.log" && ok ||
    fail "the worker's key did not reach the upstream: $(head -3 "$T/up.log")"

# ---- zero hits ---------------------------------------------------------------------
outputs="$T/porch.err $T/porch.out $T/stats.json $T/dead.jsonl $T/access.jsonl $T/answers"
for s in $secrets; do
	# the key itself, and any 8 bytes of it past its common prefix
	hits=$(grep -rlF -- "$s" $outputs)
	expect_eq "secret $s appears in" "$hits" ""
	tail=$(printf '%s' "$s" | sed 's/.*-//')
	hits=$(grep -rlF -- "$(printf '%s' "$tail" | cut -c1-8)" $outputs)
	expect_eq "a part of secret $s appears in" "$hits" ""
done
# no client key (nor the Authorization line a client sent) reached the upstream
for s in $key1 $key2 $commented $wrong; do
	grep -qF -- "$s" "$T/up.log" && fail "client secret $s reached the upstream" || ok
done

finish
