#!/bin/sh
# nats-bad.sh -- nodes and channels over NATS, badly: each a clear error
# (FILE:LINE:COL where the file is at fault) and exit 2; no server needed
# but for one case, a server without JetStream.
. "$top_srcdir/tests/lib.sh"

mk() { # NAME CHANNEL-ATTRIBUTES [PIPELINE-ATTRIBUTES] [INFER-NODE]
	cat > "$T/$1.xml" <<XML
<?xml version="1.0"?>
<pipeline name="b" version="1"${3-}>
  <worker name="model" plugin="echo"/>
  <stage name="src" plugin="gen" node="front"><param name="count">1</param></stage>
  <stage name="infer" plugin="inference" worker="model"${4- node=\"worker\"}/>
  <stage name="out" plugin="stdout" node="front"/>
  <channel from="src" to="infer"$2/>
  <channel from="infer" to="out"/>
</pipeline>
XML
}

# expect_run NAME WANT-IN-STDERR ARGS...: porch run exits 2 and says WANT
expect_run() {
	_n=$1
	_want=$2
	shift 2
	"$PORCH" run -q "$@" > "$T/out" 2> "$T/err" < /dev/null
	expect_eq "$_n: exit status" "$?" 2
	grep -qF -- "$_want" "$T/err" && ok || fail "$_n: no '$_want' in: $(cat "$T/err")"
}

mk noserver ' transport="nats"'
expect_run "no server" "$T/noserver.xml:7:45: error: channel src -> infer is transport=\"nats\" but no NATS server is named" \
    "$T/noserver.xml"
expect_run "no such node" "--node gpu: no stage of pipeline 'b' has node=\"gpu\" (the file's nodes: front, worker)" \
    --node gpu --nats-url nats://127.0.0.1:1 "$T/noserver.xml"
expect_run "unreachable server" "cannot reach the NATS server at nats://127.0.0.1:1" \
    --node front --nats-url nats://127.0.0.1:1 "$T/noserver.xml"
mk url ' transport="nats"' ' nats-url="nats://127.0.0.1:1"'
expect_run "unreachable server (file)" "cannot reach the NATS server at nats://127.0.0.1:1" \
    --node worker "$T/url.xml"

# threads above 1 on a node with channels over NATS run (nats-threads.sh);
# a server that is not there is told at start all the same, whether the
# threads come from the file or the command line
expect_run "threads, unreachable server" "cannot reach the NATS server at nats://127.0.0.1:1" \
    --node front --nats-url nats://127.0.0.1:1 --threads 2 "$T/noserver.xml"
mk thrfile ' transport="nats"' ' threads="3"'
expect_run "threads=, unreachable server" "cannot reach the NATS server at nats://127.0.0.1:1" \
    --node worker --nats-url nats://127.0.0.1:1 "$T/thrfile.xml"
if grep -q "not supported" "$T/err"; then fail "threads= and NATS still refused"; else ok; fi

# a server without JetStream: said at once, and exit 2 (one that is slow
# to answer is asked again, porch(1))
if command -v nats-server > /dev/null; then
	. "$top_srcdir/tests/nats-lib.sh"
	NATS_JS=
	nats_start
	expect_run "no JetStream" "the NATS server at $NATS_URL has no JetStream (start it with nats-server -js)" \
	    --node front --nats-url "$NATS_URL" "$T/noserver.xml"
	nats_stop
fi

# what porch check judges without a server
check_err() { # NAME WANT
	"$PORCH" check "$T/$1.xml" > /dev/null 2> "$T/err"
	expect_eq "$1: check exit status" "$?" 2
	grep -qF -- "$2" "$T/err" && ok || fail "$1: no '$2' in: $(cat "$T/err")"
}
mk transport ' transport="udp"'
check_err transport "$T/transport.xml:7:45: error: transport='udp' is not one of local, nats"
mk dropold ' transport="nats" overflow="drop-oldest"'
"$PORCH" check "$T/dropold.xml" > /dev/null 2> "$T/err"
expect_eq "dropold: drop-oldest over NATS is taken ($(cat "$T/err"))" "$?" 0
mk dropshard ' transport="nats" overflow="drop-oldest" shards="2"'
"$PORCH" check "$T/dropshard.xml" > /dev/null 2> "$T/err"
expect_eq "dropshard: drop-oldest on a sharded channel is taken ($(cat "$T/err"))" "$?" 0
mk ackwait ' transport="nats" ack-wait="soon"'
check_err ackwait "error: ack-wait='soon' is not a duration from 1s to 24h"
mk maxdel ' transport="nats" max-deliver="0"'
check_err maxdel "error: max-deliver='0' is not an integer from 1 to 1000"
mk localack ' ack-wait="5s"'
check_err localack "error: ack-wait applies to a channel with transport=\"nats\" only"
mk joins ''
check_err joins "$T/joins.xml:7:3: error: channel src -> infer joins node 'front' to node 'worker'"
mk nonode ' transport="nats"' '' ''
check_err nonode "give stage 'infer' a node=\"NAME\""
mk badnode '' '' ' node="Worker"'
"$PORCH" check "$T/badnode.xml" > /dev/null 2>&1
expect_eq "node='Worker': check exit status" "$?" 2
finish
