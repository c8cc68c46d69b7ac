#!/bin/sh
# top.sh -- porch top against a running pipeline under load: --once (and a
# stdout that is not a terminal) prints one frame with every stage, channel
# and worker and rates that are not zero; in a real terminal (tmux, fixed
# size) the frame is redrawn, a counter moves between two captures, 'q'
# quits; an unreachable URL or a server that is not porch is exit 1 with a
# clear message, bad arguments exit 2.
. "$top_srcdir/tests/lib.sh"

command -v curl > /dev/null || { echo "curl is not installed: skipped"; exit 77; }
# its clients load the machine: not beside a test that measures time
heavy

cat > "$T/p.xml" <<XML
<?xml version="1.0"?>
<pipeline name="toptest" version="1">
  <worker name="model" plugin="echo"><param name="delay-ms">2</param></worker>
  <stage name="ingress" plugin="http"><param name="listen">127.0.0.1:0</param></stage>
  <stage name="infer-step" plugin="inference" worker="model"/>
  <stage name="reply" plugin="reply"/>
  <channel from="ingress" to="infer-step" capacity="32" overflow="reject"/>
  <channel from="infer-step" to="reply"/>
  <channel from="infer-step:error" to="reply"/>
</pipeline>
XML

"$PORCH" run --set "ingress.port-file=$T/port" "$T/p.xml" > "$T/out" 2> "$T/err" &
pid=$!
loads=
cleanup() {
	for l in $loads; do kill "$l" 2> /dev/null; done
	kill "$pid" 2> /dev/null
	command -v tmux > /dev/null && tmux -S "$T/tmux" kill-server 2> /dev/null
	rm -rf "$T"
}
trap cleanup EXIT
wait_for 20 test -s "$T/port" || { fail "porch did not start: $(cat "$T/err")"; finish; }
U="http://127.0.0.1:$(cat "$T/port")"

# load: two clients asking one after the other until the test ends
for n in 1 2; do
	while :; do
		curl -s --max-time 10 "$U/v1/chat/completions" -H 'Content-Type: application/json' \
		    -d '{"model": "echo", "messages": [{"role": "user", "content": "hi"}]}' \
		    > /dev/null || sleep 0.1
	done &
	loads="$loads $!"
done

# ---- --once, and a stdout that is not a terminal ---------------------------
"$PORCH" top --once "$U" > "$T/once" 2> "$T/once.err"
expect_eq "top --once: exit status" "$?" 0
for want in "pipeline toptest" "STAGE" "CHANNEL" "WORKER" "ingress" "infer-step" \
    "reply" "ingress -> infer-step" "infer-step:error -> reply" "0/128" "reject" "model"; do
	grep -qF -- "$want" "$T/once" && ok || fail "top --once: no '$want' in: $(cat "$T/once")"
done
# the inference stage's row: IN/s above zero and a p50 latency under load
row=$(grep '^infer-step  *inference ' "$T/once")
rate=$(echo "$row" | awk '{ print $5 }')
awk -v r="$rate" 'BEGIN { exit !(r + 0 > 0) }' && ok || fail "top --once: IN/s of infer-step is '$rate': $row"
p50=$(echo "$row" | awk '{ print $8 }')
case $p50 in *ms|*us|*s) ok ;; *) fail "top --once: p50 of infer-step is '$p50': $row" ;; esac
# no escape sequence when stdout is not a terminal
if grep -q "$(printf '\033')" "$T/once"; then fail "top --once printed escapes"; else ok; fi
# with stdout a pipe, one frame without --once too; --interval is honoured
"$PORCH" top --interval 200ms "$U/" | grep -q '^infer-step  *inference ' && ok ||
    fail "top with stdout a pipe printed no frame"

# ---- errors ------------------------------------------------------------------
"$PORCH" top 2> "$T/e"; expect_eq "top without a URL" "$?" 2
"$PORCH" top a b 2> "$T/e"; expect_eq "top with two URLs" "$?" 2
"$PORCH" top --interval 5x "$U" 2> "$T/e"; expect_eq "top --interval 5x" "$?" 2
grep -q "not a duration" "$T/e" && ok || fail "top --interval 5x: $(cat "$T/e")"
"$PORCH" top --bogus "$U" 2> "$T/e"; expect_eq "top --bogus" "$?" 2
"$PORCH" top ftp://127.0.0.1/ 2> "$T/e"; expect_eq "top ftp://" "$?" 2
# a port nothing listens on: take one porch had, after porch let it go
"$PORCH" top --once http://127.0.0.1:1 > /dev/null 2> "$T/e"
expect_eq "top on a closed port: exit status" "$?" 1
grep -q "^porch: top: cannot read http://127.0.0.1:1/metrics: " "$T/e" && ok ||
    fail "top on a closed port: $(cat "$T/e")"
# porch, but not /metrics: a 404
"$PORCH" top --once "$U/v1/models" > /dev/null 2> "$T/e"
expect_eq "top on porch's /v1/models: exit status" "$?" 1
grep -q "/v1/models is not .*: not a porch's /metrics" "$T/e" && ok || fail "top on /v1/models: $(cat "$T/e")"
"$PORCH" top --once "$U/nothing" > /dev/null 2> "$T/e"
expect_eq "top on a 404: exit status" "$?" 1
grep -q "answered HTTP 404: not a porch's /metrics" "$T/e" && ok || fail "top on a 404: $(cat "$T/e")"

# ---- in a terminal: tmux ---------------------------------------------------
if ! command -v tmux > /dev/null; then
	echo "tmux is not installed: the terminal checks are skipped"
	finish
fi
tm() { tmux -S "$T/tmux" "$@"; }
# the frame's IN total of infer-step, from a capture
in_total() { tm capture-pane -p -t top | awk '$1 == "infer-step" { print $3 }'; }
tm new-session -d -s top -x 132 -y 30 "TERM=xterm $PORCH top $U; echo top-exited-\$?; sleep 30"
if wait_for 20 sh -c "tmux -S '$T/tmux' capture-pane -p -t top | grep -q '^infer-step '"; then
	ok
else
	fail "tmux: no frame: $(tm capture-pane -p -t top)"
fi
tm capture-pane -p -t top > "$T/cap1"
for want in "pipeline toptest" "(q quits)" "ingress" "infer-step" "reply" \
    "ingress -> infer-step" "model"; do
	grep -qF -- "$want" "$T/cap1" && ok || fail "tmux: no '$want' in: $(cat "$T/cap1")"
done
first=$(in_total)
# redrawn every second while load runs: the count moves
if wait_for 20 sh -c "n=\$(tmux -S '$T/tmux' capture-pane -p -t top | awk '\$1 == \"infer-step\" { print \$3 }'); [ -n \"\$n\" ] && [ \"\$n\" != '$first' ]"; then
	ok
else
	fail "tmux: infer-step's IN stayed at '$first': $(tm capture-pane -p -t top)"
fi
# the rate shows once there are two readings
wait_for 10 sh -c "tmux -S '$T/tmux' capture-pane -p -t top | awk '\$1 == \"infer-step\" { exit !(\$5 + 0 > 0) }'" && ok ||
    fail "tmux: no rate: $(tm capture-pane -p -t top)"
# q quits, exit 0, and the terminal is back from the alternate screen
tm send-keys -t top q
wait_for 10 sh -c "tmux -S '$T/tmux' capture-pane -p -t top | grep -q top-exited-0" && ok ||
    fail "tmux: 'q' did not end porch top with 0: $(tm capture-pane -p -t top)"
tm capture-pane -p -t top | grep -q '^infer-step ' &&
    fail "tmux: the frame is still on the screen after q: the alternate screen was not left" || ok
# Ctrl-C quits too
tm new-session -d -s top2 -x 132 -y 30 "TERM=xterm $PORCH top $U; echo top-exited-\$?; sleep 30"
wait_for 20 sh -c "tmux -S '$T/tmux' capture-pane -p -t top2 | grep -q '^infer-step '" && ok ||
    fail "tmux (2): no frame: $(tm capture-pane -p -t top2)"
tm send-keys -t top2 C-c
wait_for 10 sh -c "tmux -S '$T/tmux' capture-pane -p -t top2 | grep -q top-exited-0" && ok ||
    fail "tmux: Ctrl-C did not end porch top with 0: $(tm capture-pane -p -t top2)"
finish
