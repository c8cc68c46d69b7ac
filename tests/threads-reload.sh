#!/bin/sh
# threads-reload.sh -- with threads above 1: SIGHUP swaps every shard's
# pipeline and an invalid file leaves every shard running; the http
# source's rate-limit holds for the process, not per shard; the rag index
# is built once and shared by the shards, with the same answers; the
# response cache and a pool's health are per shard, as porch(1) says.
. "$top_srcdir/tests/lib.sh"
heavy

command -v curl > /dev/null || { echo "curl is not installed" >&2; exit 1; }
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

# pipeline FILE FAIL-RATE [EXTRA-INGRESS-PARAMS]: http -> echo on 2 shards
pipeline() {
	cat > "$1" <<XML
<?xml version="1.0"?>
<pipeline name="thr" version="1" threads="2">
  <worker name="model" plugin="echo">
    <param name="fail-rate">$2</param><param name="fail-status">500</param>
  </worker>
  <stage name="ingress" plugin="http">
    <param name="listen">127.0.0.1:0</param>
    <param name="port-file">$T/port</param>${3-}
  </stage>
  <stage name="infer" plugin="inference" worker="model" concurrency="8"/>
  <stage name="reply" plugin="reply"/>
  <channel from="ingress" to="infer"/>
  <channel from="infer" to="reply"/>
  <channel from="infer:error" to="reply"/>
</pipeline>
XML
}

body='{"model":"echo","messages":[{"role":"user","content":"hello"}]}'
# codes N: N requests, each on a new connection; their status codes
codes() {
	_i=0
	while [ "$_i" -lt "$1" ]; do
		curl -s -o /dev/null -w '%{http_code}\n' -H 'Content-Type: application/json' \
		    -d "$body" "$U/v1/chat/completions"
		_i=$((_i + 1))
	done
}

# 1. reload: every shard swaps; an invalid file changes nothing
F=$T/thr.xml
pipeline "$F" 0
"$PORCH" run -q --pid-file "$T/pid" --stats-json "$T/s.json" "$F" > /dev/null 2> "$T/err" 8>&- &
bg=$!
trap 'kill "$bg" 2> /dev/null; rm -rf "$T"' EXIT
wait_for 20 test -s "$T/pid" || { fail "porch did not start: $(cat "$T/err")"; finish; }
U="http://127.0.0.1:$(cat "$T/port")"
expect_eq "before the reload: answers" "$(codes 10 | sort -u | tr '\n' ' ')" "200 "
pipeline "$F" 1
"$PORCH" reload "$T/pid" > "$T/reload1" 2>&1
expect_eq "valid reload: porch reload's exit status" "$?" 0
grep -q "loaded on every shard (2)" "$T/reload1" "$T/err" && ok ||
    fail "valid reload: not loaded on every shard: $(cat "$T/reload1")"
# 20 new connections: the kernel spreads them over both shards; every
# one answers as the new file says (fail-rate 1: the worker's 500, answered 502)
expect_eq "after the reload: answers" "$(codes 20 | sort -u | tr '\n' ' ')" "502 "
echo '<pipeline name="thr"' > "$F"
"$PORCH" reload "$T/pid" > "$T/reload2" 2>&1
expect_eq "invalid reload: porch reload's exit status" "$?" 1
grep -q "not valid" "$T/reload2" && ok || fail "invalid reload: no error: $(cat "$T/reload2")"
expect_eq "after the invalid file: answers" "$(codes 20 | sort -u | tr '\n' ' ')" "502 "
kill -TERM "$(cat "$T/pid")"
wait "$bg"
expect_eq "reload: exit status" "$?" 0
expect_eq "reload: reloads counted once" "$(json_get "$T/s.json" reloads)" 1
expect_eq "reload: failed reloads" "$(json_get "$T/s.json" reload_failures)" 1
python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
assert [s["reloads"] for s in d["shards"]] == [1, 1], d["shards"]
assert all(s["accepted"] > 0 for s in d["shards"]), d["shards"]' "$T/s.json" 2> "$T/py" && ok ||
    fail "reload: each shard did not swap once or took nothing: $(cat "$T/py")"

# 2. rate-limit 1/s with bursts of 5 holds for the process: of 20 requests
# from one address on 20 connections (both shards), 5 get through (6 if a
# token came back meanwhile), not 5 per shard
pipeline "$F" 0 '
    <param name="rate-limit">1</param><param name="burst">5</param>'
rm -f "$T/pid" "$T/port"
"$PORCH" run -q --pid-file "$T/pid" --stats-json "$T/r.json" "$F" > /dev/null 2> "$T/err" 8>&- &
bg=$!
wait_for 20 test -s "$T/pid" || { fail "rate: porch did not start: $(cat "$T/err")"; finish; }
U="http://127.0.0.1:$(cat "$T/port")"
codes 20 > "$T/codes"
ok200=$(grep -c '^200$' "$T/codes")
n429=$(grep -c '^429$' "$T/codes")
[ "$ok200" -ge 5 ] && [ "$ok200" -le 6 ] && ok ||
    fail "rate: $ok200 answered 200 of 20 (want 5 or 6): $(sort "$T/codes" | uniq -c)"
expect_eq "rate: 200 and 429" "$((ok200 + n429))" 20
kill -TERM "$(cat "$T/pid")"
wait "$bg"
python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
assert sum(s["accepted"] for s in d["shards"]) == d["accepted"], d' "$T/r.json" 2> "$T/py" && ok ||
    fail "rate: the shards do not add up: $(cat "$T/py")"

# 3. rag on 2 shards: one index, built once; the same answers as one thread
mkdir "$T/pipelines"
ln -s "$(cd "$top_srcdir" && pwd)/share" "$T/share"
cp "$top_srcdir/pipelines/rag.xml" "$T/pipelines/rag.xml"
awk 'BEGIN { for (i = 0; i < 40; i++) printf "{\"text\": \"how do I route failed requests to a dead letter file? %d\", \"session\": \"u%d\"}\n", i, i }' > "$T/q"
"$PORCH" run -q --threads 2 "$T/pipelines/rag.xml" < "$T/q" > "$T/rag2.out" 2> "$T/rag2.err"
expect_eq "rag, 2 threads: exit status" "$?" 0
"$PORCH" run -q "$T/pipelines/rag.xml" < "$T/q" > "$T/rag1.out" 2> "$T/rag1.err"
expect_eq "rag, 1 thread: exit status" "$?" 0
expect_eq "rag, 2 threads: indexes built" "$(grep -c "stage 'rag': indexed" "$T/rag2.err")" 1
expect_eq "rag, 2 threads: indexes shared" \
    "$(grep -c "stage 'rag': shares the index" "$T/rag2.err")" 1
[ -s "$T/rag1.out" ] && sort "$T/rag1.out" > "$T/a" && sort "$T/rag2.out" > "$T/b" &&
    cmp -s "$T/a" "$T/b" && ok || fail "rag: 2 threads answered otherwise than 1"


# 4. the response cache is per shard: gen makes 60 requests of one text over
# 64 sessions (both shards); each shard's store misses the first it sees
cat > "$T/cache.xml" <<XML
<?xml version="1.0"?>
<pipeline name="cache2" version="1" threads="2">
  <worker name="model" plugin="echo"/>
  <stage name="src" plugin="gen">
    <param name="count">60</param><param name="sessions">64</param><param name="rate">100</param>
  </stage>
  <stage name="lookup" plugin="cache"><param name="role">lookup</param></stage>
  <stage name="infer" plugin="inference" worker="model"/>
  <stage name="store" plugin="cache"><param name="role">store</param></stage>
  <stage name="sink" plugin="null"/>
  <channel from="src" to="lookup"/>
  <channel from="lookup" to="sink"/>
  <channel from="lookup:miss" to="infer"/>
  <channel from="infer" to="store"/>
  <channel from="store" to="sink"/>
</pipeline>
XML
"$PORCH" run -q --stats-json "$T/c.json" "$T/cache.xml" 2> "$T/c.err"
expect_eq "cache: exit status" "$?" 0
python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
ev = [s for s in d["stages"] if s["name"] == "lookup"][0]["events"]
assert d["completed"] == 60, d
assert ev["miss"] >= 2 and ev["hit"] + ev["miss"] == 60, ev
assert all(s["accepted"] > 0 for s in d["shards"]), d["shards"]' "$T/c.json" 2> "$T/py" && ok ||
    fail "cache: not a store per shard: $(cat "$T/py")"

# 5. a pool's health is per shard: member a always fails (500) and is
# ejected at its first failure for an hour, once by each shard that calls it
cat > "$T/pool.xml" <<XML
<?xml version="1.0"?>
<pipeline name="pool2" version="1" threads="2">
  <worker name="a" plugin="echo"><param name="fail-rate">1</param><param name="fail-status">500</param></worker>
  <worker name="b" plugin="echo"/>
  <pool name="model" policy="round-robin"><member worker="a"/><member worker="b"/>
    <param name="failures">1</param><param name="cooldown">1h</param>
    <param name="max-ejected-percent">50</param>
  </pool>
  <stage name="src" plugin="gen"><param name="count">200</param><param name="sessions">64</param></stage>
  <stage name="infer" plugin="inference" worker="model"><param name="backoff-ms">0</param></stage>
  <stage name="sink" plugin="null"/>
  <channel from="src" to="infer"/>
  <channel from="infer" to="sink"/>
  <channel from="infer:error" to="sink"/>
</pipeline>
XML
"$PORCH" run -q --stats-json "$T/p.json" "$T/pool.xml" 2> "$T/p.err"
expect_eq "pool: exit status" "$?" 0
python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
a = [r for r in d["pools"][0]["replicas"] if r["name"] == "a"][0]
assert d["accepted"] == 200 and d["in_flight"] == 0, d
assert a["ejections"] == 2, a
assert all(s["accepted"] > 0 for s in d["shards"]), d["shards"]' "$T/p.json" 2> "$T/py" && ok ||
    fail "pool: not ejected once per shard: $(cat "$T/py")"

finish
