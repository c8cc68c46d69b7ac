#!/bin/sh
# http-rfc.sh -- the http source as RFC 9110 and RFC 9112 say, on raw
# sockets (bash's /dev/tcp): HEAD on every GET endpoint, 405 with Allow,
# 505 for versions other than HTTP/1.0 and 1.1, 414 for a long target,
# "Connection: close" on every answer after which the connection closes
# (and then it does: a read gives end of file), and CORS.  No sleeps: every
# read is bounded (read -t, timeout), every wait is for a condition.
[ -n "${BASH_VERSION:-}" ] || { command -v bash > /dev/null && exec bash "$0" "$@"; }
[ -n "${BASH_VERSION:-}" ] || { echo "bash is not installed: skipped"; exit 77; }
. "$top_srcdir/tests/lib.sh"

command -v curl > /dev/null || { echo "curl is not installed: skipped"; exit 77; }
command -v timeout > /dev/null || { echo "timeout is not installed: skipped"; exit 77; }
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
export LC_ALL=C # read -N counts bytes

p() {
	printf '<param name="%s">%s</param>' "$1" "$2"
}

# pipeline FILE HTTP-PARAMS WORKER-PARAMS
pipeline() {
	cat > "$1" <<XML
<?xml version="1.0"?>
<pipeline name="api" version="1">
  <worker name="model" plugin="echo">$3</worker>
  <stage name="ingress" plugin="http">$(p listen 127.0.0.1:0)$2</stage>
  <stage name="inference" plugin="inference" worker="model"/>
  <stage name="reply" plugin="reply"/>
  <channel from="ingress" to="inference" capacity="64" overflow="reject"/>
  <channel from="inference" to="reply"/>
  <channel from="inference:error" to="reply"/>
</pipeline>
XML
}

# start NAME FILE: runs porch in the background; sets pid, P (the port), U (base URL)
start() {
	name=$1
	rm -f "$T/$name.port"
	"$PORCH" run --set "ingress.port-file=$T/$name.port" "$2" > "$T/$name.out" 2> "$T/$name.err" &
	pid=$!
	if ! wait_for 20 test -s "$T/$name.port"; then
		fail "$name: porch did not start: $(cat "$T/$name.err")"
		kill -KILL "$pid" 2> /dev/null
		return 1
	fi
	P=$(cat "$T/$name.port")
	U="http://127.0.0.1:$P"
}

# stop: SIGTERM, and porch must exit 0
stop() {
	kill -TERM "$pid"
	wait "$pid"
	expect_eq "$name: exit status after SIGTERM" "$?" 0
}

# check WHAT TEXT FILE: FILE holds TEXT (a fixed string)
check() {
	if grep -qF -- "$2" "$3"; then ok; else fail "$1: no '$2' in: $(cat "$3")"; fi
}

# ---- raw sockets ----------------------------------------------------------

# conn [FD]: a new connection to port $P on FD (3)
conn() {
	eval "exec ${1:-3}<>/dev/tcp/127.0.0.1/$P"
}

# hangup [FD]: closes our end
hangup() {
	eval "exec ${1:-3}<&-"
}

# send FORMAT ARGS...: printf to fd 3
send() {
	# shellcheck disable=SC2059
	printf "$@" >&3
}

# read_head [FD]: an answer's status line and headers, CR removed, into
# $T/head; STATUS is its code.  Each line must come within 5 s.
read_head() {
	local fd=${1:-3} line
	: > "$T/head"
	STATUS=
	IFS= read -r -t 5 -u "$fd" line || return 1
	line=${line%$'\r'}
	printf '%s\n' "$line" > "$T/head"
	STATUS=$(printf '%s' "$line" | sed -n 's/^HTTP\/1\.[01] \([0-9][0-9][0-9]\) .*/\1/p')
	while IFS= read -r -t 5 -u "$fd" line; do
		line=${line%$'\r'}
		[ -z "$line" ] && return 0
		printf '%s\n' "$line" >> "$T/head"
	done
	return 1
}

# hdr NAME [FILE]: the value of header NAME in $T/head (or FILE); case does not matter
hdr() {
	sed -n "s/^$1: //Ip" "${2:-$T/head}" | head -n 1
}

# read_body N [FD]: exactly N bytes of body into $T/body, within 5 s
read_body() {
	local body=
	IFS= read -r -N "$1" -t 5 -u "${2:-3}" body
	printf '%s' "$body" > "$T/body"
	[ "${#body}" -eq "$1" ]
}

# at_eof WHAT [FD]: what is left comes, then the server closes: end of file within 5 s
at_eof() {
	timeout 5 cat <&"${2:-3}" > "$T/rest"
	local rc=$?
	if [ "$rc" -eq 0 ]; then ok; else fail "$1: not closed (cat: $rc): $(head -c 300 "$T/rest")"; fi
}

# closes_with WHAT STATUS [FD]: the answer read is STATUS, says Connection:
# close, and the connection then closes with nothing after the answer's body
closes_with() {
	local fd=${3:-3} len
	expect_eq "$1: status" "$STATUS" "$2"
	expect_eq "$1: Connection" "$(hdr Connection)" close
	len=$(hdr Content-Length)
	[ -n "$len" ] && { read_body "$len" "$fd" || fail "$1: body shorter than $len: $(cat "$T/body")"; }
	at_eof "$1: closed after" "$fd"
	expect_eq "$1: nothing after the answer" "$(wc -c < "$T/rest" | tr -d ' ')" 0
}

# raw_close WHAT STATUS: sends standard input on a new connection; the one
# answer is STATUS with Connection: close, then the connection closes
raw_close() {
	conn
	cat >&3
	if read_head; then closes_with "$1" "$2"; else fail "$1: no answer"; fi
	hangup
}

# head_then_get PATH [HEADER-LINES]: HEAD, then GET on the same connection.
# The HEAD's answer is the GET's head with no body: the GET's status line
# is the next thing read, and its Content-Length is the HEAD's.
head_then_get() {
	local path=$1 extra=${2:-} hlen hct hte
	conn
	send 'HEAD %s HTTP/1.1\r\nHost: x\r\n%s\r\n' "$path" "$extra"
	if ! read_head; then
		fail "HEAD $path: no answer"
		hangup
		return
	fi
	HSTATUS=$STATUS
	hlen=$(hdr Content-Length)
	hct=$(hdr Content-Type)
	hte=$(hdr Transfer-Encoding)
	cp "$T/head" "$T/headhead"
	send 'GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s\r\n' "$path" "$extra"
	if ! read_head; then
		fail "GET $path after HEAD: no answer"
		hangup
		return
	fi
	grep -Eq '^HTTP/1\.1 [0-9]{3} ' "$T/head" && ok ||
	    fail "GET $path after HEAD: the next line is not a status line (a body after HEAD's head?): $(head -n 1 "$T/head")"
	expect_eq "HEAD $path: the GET's status" "$HSTATUS" "$STATUS"
	expect_eq "HEAD $path: the GET's Content-Type" "$hct" "$(hdr Content-Type)"
	expect_eq "HEAD $path: the GET's Transfer-Encoding" "$hte" "$(hdr Transfer-Encoding)"
	GLEN=$(hdr Content-Length)
	HLEN=$hlen
	if [ -n "$GLEN" ]; then
		read_body "$GLEN" || fail "GET $path after HEAD: body shorter than $GLEN"
		[ "${3:-}" = "length-varies" ] || expect_eq "HEAD $path: the GET's Content-Length" "$hlen" "$GLEN"
		[ -n "$hlen" ] && ok || fail "HEAD $path: no Content-Length: $(cat "$T/headhead")"
	fi
	at_eof "GET $path after HEAD: closed after"
	[ -n "$GLEN" ] && expect_eq "GET $path after HEAD: nothing after the body" "$(wc -c < "$T/rest" | tr -d ' ')" 0
	hangup
}

# refused_connect: a new connection is refused (the listener is closed)
refused_connect() {
	! (exec 4<>"/dev/tcp/127.0.0.1/$P") 2> /dev/null
}

# ==== 1. HTTP: HEAD, 405, 505, 414, closing answers (CORS off) ================
pipeline "$T/rfc.xml" "$(p max-body 1k; p header-timeout 500ms; p body-timeout 500ms)" ""
if start rfc "$T/rfc.xml"; then
	# a finished task, for its HEADs
	curl -s -o "$T/task" "$U/v1/tasks" -d '{"payload":"'"$(printf 'a task' | base64)"'"}'
	id=$(sed -n 's/.*"task_id":"\([^"]*\)".*/\1/p' "$T/task")
	[ -n "$id" ] && ok || fail "task: $(cat "$T/task")"
	wait_for 10 sh -c "curl -s '$U/v1/tasks/$id' | grep -q '\"status\":\"completed\"'" || fail "task did not complete"

	# HEAD on every GET endpoint: GET's status and headers, no body
	for path in /healthz /readyz /v1/models "/v1/tasks/$id" /v1/tasks/task-none; do
		head_then_get "$path"
	done
	head_then_get /metrics "" length-varies
	expect_eq "HEAD /metrics: status" "$HSTATUS" 200
	head_then_get "/v1/tasks/$id/events"
	expect_eq "HEAD events: status" "$HSTATUS" 200
	check "HEAD events: chunked, as GET's" "Transfer-Encoding: chunked" "$T/headhead"
	check "GET events: the stream's end" "event: outcome" "$T/rest"
	head_then_get /nowhere
	expect_eq "HEAD /nowhere" "$HSTATUS" 404
	# a HEAD of a POST endpoint is a method not allowed: 405, no body either
	head_then_get /v1/chat/completions "" length-varies # the message names the method
	expect_eq "HEAD on a POST endpoint" "$HSTATUS" 405
	check "HEAD on a POST endpoint: Allow" "Allow: POST" "$T/headhead"

	# HTTP/1.0 HEAD of a stream: no body, and the connection stays open
	conn
	send 'HEAD /v1/tasks/%s/events HTTP/1.0\r\nConnection: keep-alive\r\n\r\n' "$id"
	read_head
	expect_eq "HTTP/1.0 HEAD of events: status" "$STATUS" 200
	expect_eq "HTTP/1.0 HEAD of events: kept alive" "$(hdr Connection)" keep-alive
	send 'GET /healthz HTTP/1.0\r\n\r\n'
	read_head
	expect_eq "HTTP/1.0 GET after HEAD: status line next" "$(head -n 1 "$T/head")" "HTTP/1.0 200 OK"
	closes_with "HTTP/1.0 GET without keep-alive" 200
	hangup

	# Node's http module, if node is here: HEAD then GET on a kept-alive socket
	if command -v node > /dev/null; then
		timeout 20 node -e '
const http = require("http");
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const port = +process.argv[1];
function go(method, path) {
	return new Promise((resolve, reject) => {
		const r = http.request({ host: "127.0.0.1", port, method, path, agent }, (res) => {
			let n = 0;
			res.on("data", (d) => { n += d.length; });
			res.on("end", () => resolve(`${method} ${path} ${res.statusCode} ${res.headers["content-length"]} ${n} ${r.reusedSocket}`));
		});
		r.on("error", reject);
		r.end();
	});
}
(async () => {
	for (const [m, p] of [["HEAD", "/healthz"], ["GET", "/healthz"], ["HEAD", "/v1/models"],
	    ["HEAD", "/v1/chat/completions"], ["GET", "/readyz"]])
		console.log(await go(m, p));
	agent.destroy();
})().catch((e) => { console.log("error: " + e.message); process.exit(1); });
' "$P" > "$T/node" 2>&1
		sed -n 1p "$T/node" | grep -q '^HEAD /healthz 200 [1-9][0-9]* 0 false$' && ok || fail "node: HEAD /healthz: $(cat "$T/node")"
		sed -n 2p "$T/node" | grep -q '^GET /healthz 200 [1-9][0-9]* [1-9][0-9]* true$' && ok || fail "node: GET after HEAD: $(cat "$T/node")"
		hl=$(sed -n '1s/^HEAD \/healthz 200 \([0-9]*\) .*/\1/p' "$T/node")
		gl=$(sed -n '2s/^GET \/healthz 200 \([0-9]*\) \([0-9]*\) .*/\2/p' "$T/node")
		expect_eq "node: HEAD's Content-Length is GET's body" "$hl" "$gl"
		sed -n 3p "$T/node" | grep -q '^HEAD /v1/models 200 [1-9][0-9]* 0 true$' && ok || fail "node: HEAD /v1/models: $(cat "$T/node")"
		sed -n 4p "$T/node" | grep -q '^HEAD /v1/chat/completions 405 [1-9][0-9]* 0 true$' && ok || fail "node: HEAD 405: $(cat "$T/node")"
		sed -n 5p "$T/node" | grep -q '^GET /readyz 200 [1-9][0-9]* [1-9][0-9]* true$' && ok || fail "node: GET /readyz: $(cat "$T/node")"
	else
		echo "node is not installed: Node's http client not tried"
	fi

	# 405: Allow lists what is allowed, HEAD with GET; OPTIONS without CORS is one more method
	for m in DELETE PUT OPTIONS; do
		conn
		send '%s /healthz HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: GET\r\n\r\n' "$m"
		read_head
		expect_eq "$m /healthz: status" "$STATUS" 405
		expect_eq "$m /healthz: Allow" "$(hdr Allow)" "GET, HEAD"
		has_cors=$(grep -ci '^access-control-' "$T/head")
		expect_eq "$m /healthz: no CORS headers when CORS is off" "$has_cors" 0
		read_body "$(hdr Content-Length)"
		# the connection goes on
		send 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
		read_head
		closes_with "GET after $m" 200
		hangup
	done
	conn
	send 'GET /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
	read_head
	expect_eq "GET on a POST endpoint: Allow" "$(hdr Allow)" POST
	closes_with "405 with Connection: close asked" 405
	hangup

	# 505: any version but HTTP/1.x, or none (HTTP/0.9); HTTP/2's preface
	for v in HTTP/2.0 HTTP/3.0 HTTP/0.9 HTTP/9.9; do
		printf 'GET /healthz %s\r\nHost: x\r\n\r\n' "$v" | raw_close "$v" 505
		check "$v: says why" '"code":"http_version_not_supported"' "$T/body"
		check "$v: answered in HTTP/1.1" "HTTP/1.1 505 HTTP Version Not Supported" "$T/head"
	done
	printf 'GET /healthz\r\n' | raw_close "HTTP/0.9 request line" 505
	printf 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n' | raw_close "HTTP/2 preface" 505
	# the versions spoken still are, and a later 1.x is read as 1.1 (RFC 9112, 2.3)
	for v in 1.0 1.1 1.2; do
		printf 'GET /healthz HTTP/%s\r\nHost: x\r\nConnection: close\r\n\r\n' "$v" | raw_close "HTTP/$v" 200
	done
	check "HTTP/1.2: answered in HTTP/1.1" "HTTP/1.1 200 OK" "$T/head"

	# 414: a target longer than max-url-size (8k by default); one as long is fine
	long=$(head -c 8191 /dev/zero | tr '\0' 'a')
	conn
	send 'GET /%s HTTP/1.1\r\nHost: x\r\n\r\n' "$long"
	read_head
	expect_eq "a target of 8192 bytes: status" "$STATUS" 404
	expect_eq "a target of 8192 bytes: kept alive" "$(hdr Connection)" ""
	read_body "$(hdr Content-Length)"
	send 'GET /%sa HTTP/1.1\r\nHost: x\r\n\r\n' "$long"
	read_head
	closes_with "a target of 8193 bytes" 414
	check "414: says why" '"code":"url_too_long"' "$T/body"
	hangup
	printf 'GET /v1/models?q=%s HTTP/1.1\r\nHost: x\r\n\r\n' "$long" | raw_close "a long query" 414

	# every answer after which porch closes says Connection: close, then closes
	printf 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' | raw_close "asked to close" 200
	printf 'GET /healthz HTTP/1.0\r\n\r\n' | raw_close "HTTP/1.0 without keep-alive" 200
	printf 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\n\r\n' |
	    raw_close "a request after one that asked to close" 200
	printf 'BREW /pot HTTP/1.1\r\n\r\n' | raw_close "400 malformed" 400
	printf 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n' | raw_close "400 bad Content-Length" 400
	printf 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n' |
	    raw_close "400 bad chunk" 400
	printf 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n' | raw_close "413 by Content-Length" 413
	{ printf 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n'
	  printf '800\r\n%s\r\n800\r\n%s\r\n' "${long:0:2048}" "${long:0:2048}"; } | raw_close "413 chunked" 413
	printf 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: %s%s\r\n\r\n' "$long" "$long" | raw_close "431" 431
	printf 'POST /nowhere HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n' |
	    raw_close "refused before a body awaited with 100-continue" 404
	# 408: a head, a body that do not come (header-timeout, body-timeout 500 ms)
	printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n' | raw_close "408 head" 408
	printf 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n{"pro' | raw_close "408 body" 408

	# the statuses counted
	curl -s "$U/metrics" > "$T/m"
	check "metrics: 505" 'porch_http_requests_total{stage="ingress",endpoint="other",code="505"} 6' "$T/m"
	check "metrics: 414" 'porch_http_requests_total{stage="ingress",endpoint="other",code="414"} 2' "$T/m"
	check "metrics: HEAD counted as its endpoint" 'porch_http_requests_total{stage="ingress",endpoint="/healthz",code="200"}' "$T/m"
	grep -q 'code="other"' "$T/m" && fail "metrics: a status counted as other: $(grep 'code="other"' "$T/m")" || ok
	stop
fi

# ==== 2. closing paths: max-connections, drain ================================
pipeline "$T/full.xml" "$(p max-connections 1)" ""
if start full "$T/full.xml"; then
	# one connection served, so accepted; the next is refused: 503,
	# Connection: close, closed
	conn 5
	printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' >&5
	read_head 5 && read_body "$(hdr Content-Length)" 5
	expect_eq "the first connection is served" "$STATUS" 200
	conn 7
	read_head 7
	closes_with "over max-connections" 503 7
	check "over max-connections: says why" '"code":"max_connections"' "$T/body"
	hangup 7
	hangup 5
	stop
fi

pipeline "$T/drain.xml" "" "$(p token-delay-ms 50)"
if start drain "$T/drain.xml"; then
	# HEAD of a running task's events: no body, and the task ending later
	# finds no watcher left behind
	curl -s -o "$T/task" "$U/v1/tasks" -d '{"payload":"'"$(printf '1 2 3 4 5 6 7 8 9 10' | base64)"'"}'
	id=$(sed -n 's/.*"task_id":"\([^"]*\)".*/\1/p' "$T/task")
	head_then_get "/v1/tasks/$id/events"
	expect_eq "HEAD of a running task's events" "$HSTATUS" 200
	check "GET of a running task's events: to its end" "event: outcome" "$T/rest"

	# a kept-alive connection, idle when the drain begins
	conn 5
	printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' >&5
	read_head 5 && read_body "$(hdr Content-Length)" 5
	expect_eq "an idle connection: served first" "$STATUS" 200

	# drain: a stream in flight on a connection, SIGTERM, then a request on
	# it: answered after the stream, with Connection: close, then closed
	conn
	body='{"text":"1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20"}'
	send 'POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s' "${#body}" "$body"
	read_head
	expect_eq "drain: the stream began" "$STATUS" 200
	kill -TERM "$pid"
	wait_for 10 refused_connect || fail "drain: still listening"
	send 'GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n'
	at_eof "drain: closed after the last answer"
	check "drain: the stream finished" '"done":true' "$T/rest"
	# the answer after the stream
	sed -n '/^HTTP\/1.1 /,$p' "$T/rest" | tr -d '\r' > "$T/last"
	check "drain: readyz answered" "HTTP/1.1 503 Service Unavailable" "$T/last"
	check "drain: readyz says close" "Connection: close" "$T/last"
	check "drain: readyz says why" '"reason":"draining"' "$T/last"
	hangup
	# the idle connection is closed, without an answer
	at_eof "drain: idle connection closed" 5
	expect_eq "drain: nothing on the idle connection" "$(wc -c < "$T/rest" | tr -d ' ')" 0
	hangup 5
	wait "$pid"
	expect_eq "drain: exit status" "$?" 0
fi

# ==== 3. CORS: listed origins =================================================
printf 'sk-test\n' > "$T/keys"
chmod 600 "$T/keys"
pipeline "$T/cors.xml" "$(p cors-origins 'https://app.example, http://localhost:3000'; p api-keys-file "$T/keys")" ""
if start cors "$T/cors.xml"; then
	# an allowed origin: its answers say so (401 too, so a script can read it)
	conn
	send 'GET /healthz HTTP/1.1\r\nHost: x\r\nOrigin: http://localhost:3000\r\n\r\n'
	read_head
	expect_eq "CORS: status" "$STATUS" 200
	expect_eq "CORS: Allow-Origin echoed" "$(hdr Access-Control-Allow-Origin)" "http://localhost:3000"
	expect_eq "CORS: Vary" "$(hdr Vary)" Origin
	expect_eq "CORS: Expose-Headers" "$(hdr Access-Control-Expose-Headers)" "X-Request-Id, Retry-After"
	read_body "$(hdr Content-Length)"
	send 'GET /v1/models HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n\r\n'
	read_head
	expect_eq "CORS: 401 without a key" "$STATUS" 401
	expect_eq "CORS: 401 carries Allow-Origin" "$(hdr Access-Control-Allow-Origin)" "https://app.example"
	read_body "$(hdr Content-Length)"
	# a preflight needs no key, answers 204 without a body, and the connection goes on
	send 'OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization, content-type, x-stainless-os\r\n\r\n'
	read_head
	cp "$T/head" "$T/pre"
	expect_eq "preflight: status" "$STATUS" 204
	expect_eq "preflight: no Content-Length" "$(hdr Content-Length)" ""
	expect_eq "preflight: Allow-Origin" "$(hdr Access-Control-Allow-Origin)" "https://app.example"
	expect_eq "preflight: Allow-Methods" "$(hdr Access-Control-Allow-Methods)" POST
	expect_eq "preflight: Allow-Headers" "$(hdr Access-Control-Allow-Headers)" \
	    "Authorization, Content-Type, X-Request-Id, X-Session-Id, x-stainless-os"
	expect_eq "preflight: Max-Age" "$(hdr Access-Control-Max-Age)" 600
	expect_eq "preflight: Allow" "$(hdr Allow)" "POST, OPTIONS"
	body='{"messages":[{"role":"user","content":"hi"}]}'
	send 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\nAuthorization: Bearer sk-test\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' "${#body}" "$body"
	read_head
	expect_eq "after a preflight: the request" "$STATUS" 200
	expect_eq "after a preflight: Allow-Origin" "$(hdr Access-Control-Allow-Origin)" "https://app.example"
	read_body "$(hdr Content-Length)"
	check "after a preflight: the answer" '"content":"hi"' "$T/body"
	# a preflight of a GET endpoint; a header list that is not one is not echoed
	send 'OPTIONS /v1/tasks/task-x/events HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: a b:c\r\n\r\n'
	read_head
	expect_eq "preflight of a GET endpoint: Allow-Methods" "$(hdr Access-Control-Allow-Methods)" "GET, HEAD"
	expect_eq "preflight: a bad header list is not echoed" "$(hdr Access-Control-Allow-Headers)" \
	    "Authorization, Content-Type, X-Request-Id, X-Session-Id"
	# an origin not listed: no CORS headers at all
	send 'OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\nAccess-Control-Request-Method: POST\r\n\r\n'
	read_head
	expect_eq "preflight, origin not allowed: status" "$STATUS" 204
	expect_eq "preflight, origin not allowed: no CORS headers" "$(grep -ci '^access-control-' "$T/head")" 0
	send 'GET /healthz HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example.evil\r\n\r\n'
	read_head
	expect_eq "origin not allowed: no CORS headers" "$(grep -ci '^access-control-' "$T/head")" 0
	expect_eq "origin not allowed: Vary all the same" "$(hdr Vary)" Origin
	read_body "$(hdr Content-Length)"
	# OPTIONS that is not a preflight: 204 with Allow; 405 lists OPTIONS
	send 'OPTIONS /healthz HTTP/1.1\r\nHost: x\r\n\r\n'
	read_head
	expect_eq "OPTIONS: status" "$STATUS" 204
	expect_eq "OPTIONS: Allow" "$(hdr Allow)" "GET, HEAD, OPTIONS"
	send 'DELETE /healthz HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\nConnection: close\r\n\r\n'
	read_head
	expect_eq "405 with CORS: Allow" "$(hdr Allow)" "GET, HEAD, OPTIONS"
	expect_eq "405 with CORS: Allow-Origin" "$(hdr Access-Control-Allow-Origin)" "https://app.example"
	closes_with "405 with CORS, asked to close" 405
	hangup
	# a preflight of a path that is not an endpoint
	printf 'OPTIONS /nowhere HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: GET\r\nConnection: close\r\n\r\n' |
	    raw_close "preflight of no endpoint" 404
	curl -s "$U/metrics" > "$T/m"
	check "metrics: 204" 'porch_http_requests_total{stage="ingress",endpoint="/v1/chat/completions",code="204"} 2' "$T/m"
	stop
fi

# ==== 4. CORS: every origin ('*'); a bad origin is refused ====================
pipeline "$T/any.xml" "$(p cors-origins '*')" ""
if start any "$T/any.xml"; then
	conn
	send 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'
	read_head
	expect_eq "CORS *: Allow-Origin" "$(hdr Access-Control-Allow-Origin)" "*"
	expect_eq "CORS *: no Vary" "$(hdr Vary)" ""
	expect_eq "CORS *: Expose-Headers" "$(hdr Access-Control-Expose-Headers)" "X-Request-Id, Retry-After"
	read_body "$(hdr Content-Length)"
	send 'OPTIONS /v1/completions HTTP/1.1\r\nHost: x\r\nOrigin: https://anyone.example\r\nAccess-Control-Request-Method: POST\r\nConnection: close\r\n\r\n'
	read_head
	expect_eq "CORS *: preflight" "$STATUS" 204
	expect_eq "CORS *: preflight Allow-Origin" "$(hdr Access-Control-Allow-Origin)" "*"
	expect_eq "CORS *: preflight Allow-Methods" "$(hdr Access-Control-Allow-Methods)" POST
	expect_eq "CORS *: preflight Allow-Headers" "$(hdr Access-Control-Allow-Headers)" \
	    "Authorization, Content-Type, X-Request-Id, X-Session-Id"
	closes_with "CORS *: preflight asked to close" 204
	hangup
	stop
fi
pipeline "$T/bad.xml" "$(p cors-origins 'https://app.example/')" ""
"$PORCH" check "$T/bad.xml" > /dev/null 2> "$T/bad.err" && fail "a cors origin with a path passes check" || ok
check "cors origin with a path: which" "'https://app.example/' has a path" "$T/bad.err"
"$PORCH" plugins http > "$T/doc" 2>&1
check "porch plugins http: max-url-size" "max-url-size" "$T/doc"
check "porch plugins http: cors-origins" "cors-origins" "$T/doc"

finish
