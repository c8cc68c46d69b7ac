#!/bin/sh
# gateway-clients.sh -- porch as an OpenAI-compatible gateway, proved with
# real clients: the official openai npm package and the Vercel AI SDK (ai,
# @ai-sdk/openai-compatible, zod), installed with npm at test time (skipped,
# saying why, when npm cannot install them).
#
#   client -> porch (http -> inference with the openai worker -> reply,
#             inference:error -> reply) -> tests/fake-upstream
#
# The node scripts tests/gateway/openai.mjs and tests/gateway/aisdk.mjs run
# each scenario twice: straight against the fake upstream's /v1 (model
# "strict", which checks requests and answers as OpenAI does: this half
# proves the fake and the scripts), then through porch's /v1, which must give
# the same results and pass every field the client sent to the upstream
# unchanged (read back from the upstream's GET /v1/_requests).  Each half of
# each scenario is one check here; the FAIL lines before it say what
# differed (the assertion, got and want).
#
# GATEWAY_DIRECT_ONLY=1 runs the direct half only (no porch).
# GATEWAY_NODE_MODULES=DIR uses the packages already installed in DIR
# (DIR/node_modules) instead of installing them.
. "$top_srcdir/tests/lib.sh"

: "${top_builddir:=$top_srcdir}"
fake=$top_builddir/tests/fake-upstream
[ -x "$fake" ] || { echo "tests/fake-upstream is not built: skipped"; exit 77; }
command -v node > /dev/null || { echo "node is not installed: skipped"; exit 77; }
command -v timeout > /dev/null || { echo "timeout is not installed: skipped"; exit 77; }

fake_pid=
porch_pid=
trap 'for p in $porch_pid $fake_pid; do kill "$p" 2>/dev/null; done; rm -rf "$T"' EXIT

# ---- the clients: installed now, in $T/js ------------------------------------
packages=${GATEWAY_NPM_PACKAGES:-openai@6 ai@6 @ai-sdk/openai-compatible@2 zod@4}
mkdir -p "$T/js"
if [ -n "${GATEWAY_NODE_MODULES:-}" ]; then
	ln -s "$GATEWAY_NODE_MODULES/node_modules" "$T/js/node_modules"
else
	command -v npm > /dev/null || { echo "npm is not installed: skipped"; exit 77; }
	echo '{"private": true, "type": "module"}' > "$T/js/package.json"
	# shellcheck disable=SC2086 # the package list is words
	if ! (cd "$T/js" && timeout 300 npm install --no-audit --no-fund --loglevel=error \
	    $packages > npm.log 2>&1); then
		echo "npm could not install $packages: skipped"
		tail -n 5 "$T/js/npm.log"
		exit 77
	fi
fi
cp "$top_srcdir"/tests/gateway/*.mjs "$T/js/"
(cd "$T/js" && node -e 'const fs = require("fs");
for (const p of ["openai", "ai", "@ai-sdk/openai-compatible", "zod"])
	console.log(p + " " + JSON.parse(fs.readFileSync("node_modules/" + p + "/package.json")).version)') \
    > "$T/versions" 2>&1 ||
	{ echo "the installed packages cannot be loaded: skipped"; cat "$T/versions"; exit 77; }
echo "clients: $(tr '\n' ' ' < "$T/versions")"

# ---- the fake upstream -----------------------------------------------------------
"$fake" -p "$T/up.port" -s "$T/up.stats" -l "$T/up.log" -j "$T/up.jsonl" -t 900 &
fake_pid=$!
wait_for 10 test -s "$T/up.port" || { fail "the fake upstream did not start"; finish; }
up="http://127.0.0.1:$(cat "$T/up.port")/v1"

# ---- porch in front of it ------------------------------------------------------------
# pipelines/gateway.xml, pointed at the fake upstream
gateway="$top_srcdir/pipelines/gateway.xml"
gw=-
if [ "${GATEWAY_DIRECT_ONLY:-0}" = 1 ]; then
	echo "GATEWAY_DIRECT_ONLY=1: the direct half only"
else
	# libcurl honours proxy variables: the fake upstream is reached directly
	env -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY -u all_proxy -u ALL_PROXY \
	    "$PORCH" run --stats-json "$T/porch.json" -s "upstream.base-url=$up" \
	    -s ingress.listen=127.0.0.1:0 -s "ingress.port-file=$T/porch.port" "$gateway" \
	    > "$T/porch.out" 2> "$T/porch.err" &
	porch_pid=$!
	if wait_for 20 test -s "$T/porch.port"; then
		gw="http://127.0.0.1:$(cat "$T/porch.port")/v1"
	else
		fail "porch did not start: $(cat "$T/porch.err")"
		finish
	fi
fi

# ---- the scenarios ----------------------------------------------------------------------
# client NAME: runs tests/gateway/NAME.mjs into $T/NAME.out
client() {
	(cd "$T/js" && timeout 600 node "$1.mjs" "$up" "$gw") > "$T/$1.out" 2>&1
	echo $? > "$T/$1.status"
}
client openai
client aisdk
# the summaries first (a log read from its head says what failed), then
# the failures and notes; each RESULT line is a check
porch_failed=
for c in openai aisdk; do
	grep "^$c: " "$T/$c.out" || echo "$c: no summary: $(tail -n 5 "$T/$c.out")"
done
for c in openai aisdk; do
	grep -v '^RESULT .* pass$' "$T/$c.out" | grep -v "^$c: "
	st=$(cat "$T/$c.status")
	case $st in
	0 | 1) ok ;;
	124) fail "$c.mjs: did not end within 600 s" ;;
	*) fail "$c.mjs: exit status $st" ;;
	esac
	grep -q '^RESULT ' "$T/$c.out" || fail "$c.mjs: no scenario ran"
	while read -r _ half scenario result; do
		if [ "$result" = pass ]; then
			ok
		else
			fail "$c $scenario, $half: see the 'FAIL $half $scenario' lines above"
			[ "$half" = porch ] && porch_failed="$porch_failed $c:$scenario"
		fi
	done <<EOF
$(grep '^RESULT ' "$T/$c.out")
EOF
done

# the upstream's record: a JSON object per line, each request's exact body
# (the "raw" of each line is its body's bytes; its "body", parsed, is what
# the scripts compared)
(cd "$T/js" && node -e '
const fs = require("fs");
const lines = fs.readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean);
let bad = 0;
for (const l of lines) {
	const r = JSON.parse(l);
	if (r.body !== null && JSON.stringify(JSON.parse(r.raw)) !== JSON.stringify(r.body)) bad++;
}
console.log(lines.length + " " + bad);' "$T/up.jsonl") > "$T/jsonl.check" 2>&1
expect_eq "the upstream's JSON lines: requests, and lines whose body is not their raw bytes" \
    "$(cat "$T/jsonl.check")" "$(json_get "$T/up.stats" requests) 0"

if [ -n "$porch_pid" ]; then
	kill -TERM "$porch_pid"
	wait "$porch_pid"
	expect_eq "porch: exit status after SIGTERM" "$?" 0
	porch_pid=
	if [ -n "$porch_failed" ]; then
		echo "through porch, failed:$porch_failed"
		echo "(porch's log is below; GATEWAY_DIRECT_ONLY=1 runs the direct half only)"
		tail -n 40 "$T/porch.err"
	fi
fi
finish
