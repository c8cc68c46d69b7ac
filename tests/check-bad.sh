#!/bin/sh
# check-bad.sh -- porch check on malformed pipelines: exact messages, exit 2.
#
# Every tests/bad/NAME.xml is checked from inside tests/bad, so messages
# start "NAME.xml:LINE:COL:"; its stderr must equal tests/bad/NAME.err
# exactly, its stdout must be empty and its exit status 2.  The plugin
# search path, which depends on the build, is written @SEARCH_PATH@ in the
# .err files.  Then every example in pipelines/ must pass, and several files
# in one run must each be reported.
#
# A few files use plugin "typed", built here (no built-in plugin has
# boolean, enum or required parameters), so run them through this script.
. "$top_srcdir/tests/lib.sh"

: "${CC:=cc}"
BAD="$top_srcdir/tests/bad"

# ---- the "typed" test plugin --------------------------------------------
D="$T/plugins"
mkdir -p "$D"
cat > "$T/typed.c" <<'EOF'
#include <porch/plugin.h>
static void pass(porch_stage *st, porch_msg *m) { porch_emit(st, m); }
static const char *const outs[] = { "out", NULL };
static const struct porch_param params[] = {
	{ "corpus", PORCH_PARAM_PATH, NULL, 1, 0, NULL, PORCH_PARAM_REQUIRED,
	  "the documents to search" },
	{ "verbose", PORCH_PARAM_BOOLEAN, "no", 1, 0, NULL, 0, "log every match" },
	{ "mode", PORCH_PARAM_ENUM, "fast", 1, 0, "fast|exact", 0, "how to match" },
	{ NULL, 0, NULL, 0, 0, NULL, 0, NULL },
};
const struct porch_plugin porch_plugin = { PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_STAGE, .name = "typed", .summary = "typed parameters",
	.outputs = outs, .params = params, .process = pass };
EOF
# shellcheck disable=SC2086
if ! $CC ${CFLAGS:-} -shared -fPIC -I"$top_srcdir/include" -o "$D/typed.so" "$T/typed.c"; then
	fail "could not build the typed test plugin"
fi
PORCH_PLUGIN_PATH="$D${PORCH_PLUGIN_PATH:+:$PORCH_PLUGIN_PATH}"
export PORCH_PLUGIN_PATH

# The search path as porch prints it, from a lookup that must fail.
search=$("$PORCH" plugins no-such-plugin-zz 2>&1 >/dev/null |
    sed -n "s/^porch: unknown plugin 'no-such-plugin-zz': no no-such-plugin-zz\.so in //p")
[ -n "$search" ] && ok || fail "cannot learn the plugin search path from porch plugins"

# normalize: the build's search path becomes @SEARCH_PATH@
normalize() {
	if [ -n "$search" ]; then
		awk -v s="$search" '{
			out = ""
			while ((i = index($0, s)) > 0) {
				out = out substr($0, 1, i - 1) "@SEARCH_PATH@"
				$0 = substr($0, i + length(s))
			}
			print out $0
		}'
	else
		cat
	fi
}

# ---- the corpus ------------------------------------------------------------
n=0
for xml in "$BAD"/*.xml; do
	name=$(basename "$xml" .xml)
	n=$((n + 1))
	if [ ! -f "$BAD/$name.err" ]; then
		fail "$name.xml has no $name.err"
		continue
	fi
	(cd "$BAD" && "$PORCH" check "$name.xml") > "$T/out" 2> "$T/err.raw"
	status=$?
	normalize < "$T/err.raw" > "$T/err"
	expect_eq "$name: exit status" "$status" 2
	expect_eq "$name: stdout" "$(cat "$T/out")" ""
	checks=$((checks + 1))
	if ! cmp -s "$T/err" "$BAD/$name.err"; then
		fail "$name: stderr differs from $name.err (- expected, + got):"
		diff -u "$BAD/$name.err" "$T/err" | sed -n '3,$p' >&2
	fi
	# one message a line, each FILE:LINE:COL: (error|warning): ...
	if grep -Ev "^$name\.xml:[1-9][0-9]*:[1-9][0-9]*: (error|warning): ." "$T/err" > "$T/odd"; then
		fail "$name: lines without FILE:LINE:COL: $(cat "$T/odd")"
	else
		ok
	fi
done
for err in "$BAD"/*.err; do
	[ -f "${err%.err}.xml" ] && ok || fail "$(basename "$err") has no .xml"
done
[ "$n" -ge 30 ] && ok || fail "only $n malformed pipelines in tests/bad (want 30 or more)"

# ---- the examples are valid --------------------------------------------------
for xml in "$top_srcdir"/pipelines/*.xml; do
	name=pipelines/$(basename "$xml")
	(cd "$top_srcdir" && "$PORCH" check "$name") > "$T/out" 2> "$T/err"
	expect_eq "$name: exit status" "$?" 0
	expect_eq "$name: stdout" "$(cat "$T/out")" "$name: ok"
	expect_eq "$name: stderr" "$(cat "$T/err")" ""
done

# ---- several files: each is checked, each problem reported -----------------
good=pipelines/hello.xml
(cd "$top_srcdir" && "$PORCH" check "$good" tests/bad/cycle.xml tests/bad/many-errors.xml) \
    > "$T/out" 2> "$T/err"
expect_eq "good+bad: exit status" "$?" 2
expect_eq "good+bad: stdout" "$(cat "$T/out")" "$good: ok"
{
	sed 's|^|tests/bad/|' "$BAD/cycle.err"
	sed 's|^|tests/bad/|' "$BAD/many-errors.err"
} > "$T/want"
checks=$((checks + 1))
if ! cmp -s "$T/err" "$T/want"; then
	fail "good+bad: stderr (- expected, + got):"
	diff -u "$T/want" "$T/err" | sed -n '3,$p' >&2
fi

# a bad file first does not stop the good one after it
(cd "$top_srcdir" && "$PORCH" check tests/bad/unreachable.xml "$good") > "$T/out" 2> "$T/err"
expect_eq "bad+good: exit status" "$?" 2
expect_eq "bad+good: stdout" "$(cat "$T/out")" "$good: ok"
expect_eq "bad+good: stderr" "$(cat "$T/err")" "$(sed 's|^|tests/bad/|' "$BAD/unreachable.err")"

# all good: 0
(cd "$top_srcdir" && "$PORCH" check "$good" "$good") > "$T/out" 2> "$T/err"
expect_eq "good+good: exit status" "$?" 0
expect_eq "good+good: stdout" "$(cat "$T/out")" "$good: ok
$good: ok"

# a file that does not exist is an error too, and does not stop the rest
(cd "$top_srcdir" && "$PORCH" check tests/bad/no-such-file.xml "$good") > "$T/out" 2> "$T/err"
expect_eq "missing+good: exit status" "$?" 2
expect_eq "missing+good: stdout" "$(cat "$T/out")" "$good: ok"
grep -q "^tests/bad/no-such-file.xml: error: cannot open: No such file or directory$" "$T/err" &&
    ok || fail "missing file: $(cat "$T/err")"

finish
