#!/bin/sh
# sinks.sh -- no sink loses or garbles an answer while hundreds stream at
# once.  600 requests of 1 to 300 words each, answered by the echo worker
# token by token with a delay between tokens, stream interleaved through
# stdout, jsonl, dlq and reply (the http source's answers, streamed on many
# connections and pipelined on a few); every answer delivered is checked
# byte for byte against the answer the same input gets with streaming off.
. "$top_srcdir/tests/lib.sh"

LC_ALL=C
export LC_ALL

N=600
DELAY=3 # ms between tokens: a 300-word answer streams for 0.9 s

# Request i is the words wi.1 ... wi.L, L from 1 to 300 (each length twice),
# in session si; want is what each answer must be, "si<TAB>TEXT".
awk -v n="$N" -v dir="$T" 'BEGIN {
	for (i = 1; i <= n; i++) {
		L = 1 + (i * 97) % 300
		t = "w" i ".1"
		for (k = 2; k <= L; k++)
			t = t " w" i "." k
		printf "{\"text\": \"%s\", \"session\": \"s%d\"}\n", t, i > (dir "/in.jsonl")
		printf "s%d\t%s\n", i, t > (dir "/want.txt")
		words += L
	}
	# how long the answers take streamed one after another, in seconds
	printf "%d\n", words > (dir "/words")
}'
sort "$T/want.txt" > "$T/want"
serial=$(awk -v d="$DELAY" '{ print $1 * d / 1000 }' "$T/words")

# pipe FILE SINKS CHANNELS [WORKER-PARAMS] [INFERENCE-PARAMS]: stdin ->
# inference (echo, up to 1000 calls at once) -> SINKS
pipe() {
	cat > "$1" <<XML
<?xml version="1.0"?>
<pipeline name="sinks" version="1">
  <worker name="model" plugin="echo"><param name="token-delay-ms">$DELAY</param>${4:-}</worker>
  <stage name="input" plugin="stdin"/>
  <stage name="infer" plugin="inference" worker="model" concurrency="1000">${5:-}</stage>
  $2
  <channel from="input" to="infer" capacity="1000" overflow="block"/>
  $3
</pipeline>
XML
}

# same WHAT FILE: FILE, sorted, is the reference answers, line for line
same() {
	sort "$2" > "$2.sorted"
	if cmp -s "$2.sorted" "$T/ref"; then
		ok
	else
		fail "$1: $(diff "$T/ref" "$2.sorted" | grep -c '^[<>]') lines differ, the first: $(diff "$T/ref" "$2.sorted" | grep '^[<>]' | head -3 | cut -c1-160)"
	fi
}

# an awk function: the string value of a JSON line's member K (one that
# needs no escapes), "?" if it has none
field='
function field(k,   v) {
	if (!match($0, "\"" k "\":\"[^\"]*\""))
		return "?"
	v = substr($0, RSTART, RLENGTH)
	sub("^\"" k "\":\"", "", v)
	return substr(v, 1, length(v) - 1)
}'

# interleaved WHAT STATS-JSON: the run took a small part of the time its
# answers stream for one after another, so hundreds streamed at once
interleaved() {
	_e=$(sed -n 's/^  "elapsed_s": \([0-9.e+-]*\),*$/\1/p' "$2")
	awk -v e="$_e" -v s="$serial" 'BEGIN { exit !(e != "" && e * 20 < s) }' && ok ||
	    fail "$1: the run took ${_e}s, the answers stream for ${serial}s one after another"
}

# lines WHAT OUT ERR [FAILED]: OUT, stdout's output, holds every answer
# whole, once, except for the sessions listed in FAILED (whose requests
# failed elsewhere), which have none; any other line is the beginning of an
# answer that stdout cut off, and a note on ERR says so, with the number of
# bytes the line shows.  Prints the number of such lines.
lines() {
	awk -v what="$1" -v reff="$T/ref" -v errf="$3" -v failedf="${4:-/dev/null}" '
	function bad(why) {
		if (++bads <= 5)
			print "FAIL: " what ": " why > "/dev/stderr"
	}
	BEGIN {
		while ((getline l < reff) > 0) {
			i = index(l, "\t")
			ref[substr(l, 1, i - 1)] = substr(l, i + 1)
		}
		while ((getline l < failedf) > 0)
			failed[l] = 1
		while ((getline l < errf) > 0) {
			if (!match(l, /\(session [^)]*\) was cut off/))
				continue
			s = substr(l, RSTART + 9, RLENGTH - 22)
			if (match(l, /cut off after [0-9]+ bytes/))
				k = substr(l, RSTART + 14, RLENGTH - 20)
			else if (match(l, /its line shows the first [0-9]+ bytes/))
				k = substr(l, RSTART + 25, RLENGTH - 31)
			else {
				bad("a note without a byte count: " l)
				continue
			}
			notes[s, k + 0]++
			nnotes++
		}
	}
	{
		i = index($0, "\t")
		s = substr($0, 1, i - 1)
		t = substr($0, i + 1)
		if (!(s in ref)) {
			bad("a line of no request: " substr($0, 1, 120))
			next
		}
		if (t == ref[s] && !(s in failed) && !seen[s]++)
			next
		if (index(ref[s], t) != 1 || notes[s, length(t)] == 0) {
			bad("neither a whole answer nor a beginning cut off with a note: " substr($0, 1, 120))
			next
		}
		notes[s, length(t)]--
		cut++
	}
	END {
		for (s in ref)
			if (!(s in failed) && !seen[s])
				bad("no whole answer for " s)
		if (cut != nnotes)
			bad(nnotes + 0 " notes of lines cut off, " cut + 0 " lines cut off")
		if (bads > 5)
			print "FAIL: " what ": and " bads - 5 " more" > "/dev/stderr"
		print cut + 0
		exit (bads > 0)
	}' "$2"
}

# ==== the reference: streaming off ===========================================
pipe "$T/stdout.xml" '<stage name="output" plugin="stdout"/>' \
    '<channel from="infer" to="output" capacity="1000"/>'
"$PORCH" run -q --set infer.stream=false --set model.token-delay-ms=0 "$T/stdout.xml" \
    < "$T/in.jsonl" > "$T/ref.out" 2> "$T/err"
expect_eq "reference: exit status" "$?" 0
sort "$T/ref.out" > "$T/ref"
cmp -s "$T/ref" "$T/want" && ok || fail "reference: not the echo of the input: $(diff "$T/want" "$T/ref" | head -5 | cut -c1-160)"

# ==== stdout =================================================================
# the issue's example: two answers streaming at once, both whole
hello="$top_srcdir/pipelines/hello.xml"
printf 'a b c\n1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20\n' |
    "$PORCH" run -q --set model.token-delay-ms=5 "$hello" > "$T/two" 2> "$T/err"
expect_eq "two streams: exit status" "$?" 0
printf 'stdin\t1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20\nstdin\ta b c\n' > "$T/two.want"
sort "$T/two" | cmp -s - "$T/two.want" && ok || fail "two streams: $(cat "$T/two")"

# every answer whole, once, with nothing to say on stderr
"$PORCH" run -q --stats-json "$T/s.json" "$T/stdout.xml" < "$T/in.jsonl" > "$T/stdout.out" 2> "$T/err"
expect_eq "stdout: exit status" "$?" 0
expect_eq "stdout: completed" "$(json_get "$T/s.json" completed)" "$N"
interleaved stdout "$T/s.json"
same stdout "$T/stdout.out"
expect_eq "stdout: nothing on stderr" "$(cut -c1-300 "$T/err")" ""

# a hold too small for the lines that wait behind the live one: the live
# line is cut off with a note, and its answer follows whole
"$PORCH" run -q --set output.hold=4k "$T/stdout.xml" < "$T/in.jsonl" > "$T/hold.out" 2> "$T/hold.err"
expect_eq "stdout, hold 4k: exit status" "$?" 0
cuts=$(lines "stdout, hold 4k" "$T/hold.out" "$T/hold.err")
expect_eq "stdout, hold 4k: every line accounted for" "$?" 0
[ "${cuts:-0}" -ge 1 ] && ok || fail "stdout, hold 4k: no line was cut off: $(head -3 "$T/hold.err")"
expect_eq "stdout, hold 4k: stderr has the notes only" \
    "$(grep -v "^[^ ]* [a-z]* porch: stage 'output': the answer to request [0-9]* (session s[0-9]*) was cut off after [0-9]* bytes: " "$T/hold.err" | head -3)" ""

# ==== jsonl ==================================================================
pipe "$T/jsonl.xml" "<stage name=\"output\" plugin=\"jsonl\"><param name=\"path\">$T/out.jsonl</param></stage>" \
    '<channel from="infer" to="output" capacity="1000"/>'
"$PORCH" run -q --stats-json "$T/s.json" "$T/jsonl.xml" < "$T/in.jsonl" > "$T/out" 2> "$T/err"
expect_eq "jsonl: exit status" "$?" 0
expect_eq "jsonl: completed" "$(json_get "$T/s.json" completed)" "$N"
interleaved jsonl "$T/s.json"
expect_eq "jsonl: records" "$(wc -l < "$T/out.jsonl" | tr -d ' ')" "$N"
expect_eq "jsonl: every record one whole line" "$(grep -v '^{"id":[0-9]*,.*"outcome":"completed",.*}$' "$T/out.jsonl" | head -3)" ""
# "si<TAB>TEXT" from each record (these texts need no escapes in JSON)
awk "$field"'{ print field("session") "\t" field("text") }' "$T/out.jsonl" > "$T/jsonl.got"
same jsonl "$T/jsonl.got"

# a file size limit (8 KiB) that most records pass: a record that does not
# fit whole is not in the file at all (the part written is taken back), and
# its request fails; the file holds whole records only
head -100 "$T/in.jsonl" > "$T/in100"
(ulimit -f 16 && trap '' XFSZ && exec "$PORCH" run -q --set "output.path=$T/small.jsonl" \
    "$T/jsonl.xml" < "$T/in100" > /dev/null) 2>&1 | cat > "$T/err"
w=$(wc -l < "$T/small.jsonl" | tr -d ' ')
e=$(grep -c "failed: internal: cannot write to $T/small.jsonl: " "$T/err")
expect_eq "jsonl, file size limit: every request written or failed" "$((w + e))" 100
[ "$e" -ge 1 ] && [ "$w" -ge 1 ] && ok || fail "jsonl, file size limit: $w records, $e failures: $(head -3 "$T/err")"
expect_eq "jsonl, file size limit: every record one whole line" "$(grep -v '^{"id":[0-9]*,.*"outcome":"completed",.*}$' "$T/small.jsonl" | head -3 | cut -c1-160)" ""
awk "$field"'{ print field("session") "\t" field("text") }' "$T/small.jsonl" | sort > "$T/small.got"
expect_eq "jsonl, file size limit: each record the answer" "$(comm -13 "$T/ref" "$T/small.got" | head -3 | cut -c1-160)" ""

# ==== dlq ====================================================================
# one call in five fails before it streams, and answers of more than 200
# words take longer than the timeout (600 ms, at 3 ms a word) and fail while
# they stream: the failed go to the dead-letter file, the rest to stdout
pipe "$T/dlq.xml" "<stage name=\"output\" plugin=\"stdout\"/>
  <stage name=\"dead\" plugin=\"dlq\"><param name=\"path\">$T/dead.jsonl</param></stage>" \
    '<channel from="infer" to="output" capacity="1000"/>
  <channel from="infer:error" to="dead" capacity="1000"/>' \
    '<param name="fail-rate">0.2</param><param name="seed">7</param>' \
    '<param name="retries">0</param><param name="timeout-ms">600ms</param>'
"$PORCH" run -q --stats-json "$T/s.json" "$T/dlq.xml" < "$T/in.jsonl" > "$T/dlq.out" 2> "$T/dlq.err"
expect_eq "dlq: exit status" "$?" 0
c=$(json_get "$T/s.json" completed)
f=$(json_get "$T/s.json" failed)
expect_eq "dlq: every request completed or failed" "$((c + f))" "$N"
interleaved dlq "$T/s.json"
expect_eq "dlq: a record per failure" "$(wc -l < "$T/dead.jsonl" | tr -d ' ')" "$f"
# "si<TAB>ERROR<TAB>INPUT<TAB>TEXT" from each record
awk "$field"'
/^\{"id":[0-9]*,.*"outcome":"failed",.*\}$/ {
	print field("session") "\t" field("error") "\t" field("input") "\t" field("text")
	next
}
{ print "bad record\t" substr($0, 1, 120) }' "$T/dead.jsonl" > "$T/dead.got"
cut -f1 "$T/dead.got" | sort > "$T/dead.sessions"
awk -F'\t' -v reff="$T/ref" '
BEGIN { while ((getline l < reff) > 0) { i = index(l, "\t"); ref[substr(l, 1, i - 1)] = substr(l, i + 1) } }
!($1 in ref) || $3 != ref[$1] || $4 != ref[$1] || ($2 != "upstream" && $2 != "timeout") || seen[$1]++ {
	print substr($0, 1, 160)
}' "$T/dead.got" > "$T/dead.bad"
expect_eq "dlq: every record whole, its input and text the request's" "$(head -3 "$T/dead.bad")" ""
up=$(grep -c '	upstream	' "$T/dead.got")
to=$(grep -c '	timeout	' "$T/dead.got")
[ "$up" -ge 1 ] && [ "$to" -ge 1 ] && [ "$c" -ge 1 ] && ok ||
    fail "dlq: want failures before and while streaming, and answers: $up upstream, $to timeouts, $c completed"
# stdout: the answers of the rest whole; the lines of streams cut off by
# their failure are beginnings, with a note
lines "dlq: stdout" "$T/dlq.out" "$T/dlq.err" "$T/dead.sessions" > /dev/null
expect_eq "dlq: stdout's lines accounted for" "$?" 0

# ==== reply ==================================================================
command -v curl > /dev/null || { echo "curl is not installed: reply skipped"; finish; }
command -v bash > /dev/null || { echo "bash is not installed: reply skipped"; finish; }
curl --help all 2> /dev/null | grep -q -- --parallel-max ||
    { echo "curl has no --parallel (curl 7.66 or later): reply skipped"; finish; }

cat > "$T/http.xml" <<XML
<?xml version="1.0"?>
<pipeline name="api" version="1">
  <worker name="model" plugin="echo"><param name="token-delay-ms">$DELAY</param></worker>
  <stage name="ingress" plugin="http"><param name="listen">127.0.0.1:0</param><param name="max-pipeline">64</param></stage>
  <stage name="inference" plugin="inference" worker="model" concurrency="1000"/>
  <stage name="reply" plugin="reply"/>
  <channel from="ingress" to="inference" capacity="1000" overflow="block"/>
  <channel from="inference" to="reply" capacity="1000"/>
  <channel from="inference:error" to="reply" capacity="1000"/>
</pipeline>
XML
"$PORCH" run -q --set "ingress.port-file=$T/port" "$T/http.xml" > "$T/http.out" 2> "$T/http.err" &
pid=$!
if ! wait_for 20 test -s "$T/port"; then
	fail "reply: porch did not start: $(cat "$T/http.err")"
	kill -KILL "$pid" 2> /dev/null
	finish
fi
U="http://127.0.0.1:$(cat "$T/port")"

# a chat request per input, streamed (r/i.sse) and whole (r/i.json), each
# in a curl config: up to 300 at once, each on a connection of its own
mkdir "$T/q" "$T/r"
awk -F'\t' -v dir="$T" -v url="$U/v1/chat/completions" '{
	i = substr($1, 2)
	for (stream = 0; stream <= 1; stream++) {
		q = dir "/q/" i (stream ? ".s" : ".w")
		printf "{\"model\":\"echo\",\"stream\":%s,\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}", stream ? "true" : "false", $2 > q
		close(q)
		cfg = dir (stream ? "/streamed.cfg" : "/whole.cfg")
		if (NR > 1)
			print "next" > cfg
		printf "url = \"%s\"\nheader = \"Content-Type: application/json\"\ndata-binary = \"@%s\"\noutput = \"%s/r/%d.%s\"\nmax-time = 60\n", url, q, dir, i, stream ? "sse" : "json" > cfg
	}
}' "$T/want.txt"

curl -s -S --parallel --parallel-max 300 -K "$T/streamed.cfg" 2> "$T/curl.err"
expect_eq "reply, streamed: curl's exit status" "$?" 0
# each stream: its content deltas joined, and it ends with finish_reason and [DONE]
for f in "$T"/r/*.sse; do printf '%s\n' "$f"; done > "$T/sse.list"
awk '
function flush() {
	if (name != "")
		print name "\t" (done == 2 ? "" : "(unfinished) ") text
}
FNR == 1 { flush(); name = FILENAME; sub(/.*\//, "", name); sub(/\.sse$/, "", name); name = "s" name; text = ""; done = 0 }
/^data: \{/ {
	if (match($0, /"delta":\{("role":"assistant",)?"content":"[^"]*"/)) {
		v = substr($0, RSTART, RLENGTH)
		sub(/.*"content":"/, "", v)
		text = text substr(v, 1, length(v) - 1)
	}
	if (index($0, "\"finish_reason\":\"stop\""))
		done = 1
}
/^data: \[DONE\]$/ { if (done == 1) done = 2 }
END { flush() }' $(cat "$T/sse.list") > "$T/sse.got"
same "reply, streamed" "$T/sse.got"

curl -s -S --parallel --parallel-max 300 -K "$T/whole.cfg" 2> "$T/curl.err"
expect_eq "reply, whole: curl's exit status" "$?" 0
# each answer's message content
for f in "$T"/r/*.json; do printf '%s\n' "$f"; done > "$T/json.list"
awk '{
	name = FILENAME
	sub(/.*\//, "", name)
	sub(/\.json$/, "", name)
	v = "(no message)"
	if (match($0, /"message":\{"role":"assistant","content":"[^"]*"\}/)) {
		v = substr($0, RSTART, RLENGTH - 2)
		sub(/.*"content":"/, "", v)
	}
	print "s" name "\t" v
}' $(cat "$T/json.list") > "$T/whole.got"
same "reply, whole" "$T/whole.got"

# pipelined: 4 connections, each with 40 streamed /generate requests in one
# write, answered in order, each whole: its tokens joined are its text
raw() {
	bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1
		timeout "$1" cat <&3 &
		cat >&3 2> /dev/null
		wait $!' "${U##*:}" "$1"
}
pids=
for conn in 1 2 3 4; do
	awk -F'\t' -v conn="$conn" '
	NR > (conn - 1) * 40 && NR <= conn * 40 {
		body = sprintf("{\"text\":\"%s\",\"request_id\":\"%s\"}", $2, $1)
		printf "POST /generate HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n%s",
		    NR == conn * 40 ? "Connection: close\r\n" : "", length(body), body
	}' "$T/want.txt" | raw 30 > "$T/pipe$conn" &
	pids="$pids $!"
done
# each ends when porch closes its connection after the last answer, or in 30 s
wait $pids
for conn in 1 2 3 4; do
	tr -d '\r' < "$T/pipe$conn" | awk -F'\t' -v reff="$T/want.txt" -v conn="$conn" "$field"'
	BEGIN {
		while ((getline l < reff) > 0) {
			n++
			if (n > (conn - 1) * 40 && n <= conn * 40) {
				i = index(l, "\t")
				order[++want] = substr(l, 1, i - 1)
				ref[substr(l, 1, i - 1)] = substr(l, i + 1)
			}
		}
	}
	/^\{"request_id":/ {
		id = field("request_id")
		if (index($0, "\"done\":true")) {
			got++
			if (id != order[got])
				print "answer " got " is " id ", want " order[got]
			else if (field("text") != ref[id] || tokens[id] != ref[id])
				print id ": tokens \"" substr(tokens[id], 1, 60) "\", text \"" substr(field("text"), 1, 60) "\""
		} else {
			tokens[id] = tokens[id] field("token")
		}
	}
	END { if (got != want) print got + 0 " answers of " want }' > "$T/pipe$conn.bad"
	expect_eq "reply, pipelined on connection $conn" "$(head -3 "$T/pipe$conn.bad")" ""
done

kill -TERM "$pid"
wait "$pid"
expect_eq "reply: exit status after SIGTERM" "$?" 0

finish
