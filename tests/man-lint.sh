#!/bin/sh
# man-lint.sh -- the manual pages are clean mdoc and keep up with the code.
#
# 1. mandoc -Tlint -W warning has nothing to say about any page in man/.
# 2. Every long option a subcommand's --help prints is documented in
#    porch(1), written there as "Fl -NAME".
# 3. Every function declared in <porch/plugin.h> is named in porch-plugin(3).
# 4. porch(1)'s example of --version is what porch --version prints.
# 5. porch-plugins(7) has every plugin's description, stdin's input format
#    (JSON lines with text, session, meta and deadline_ms) among them.
#
# Skipped (77) when mandoc is not installed.

. "$top_srcdir/tests/lib.sh"

if ! command -v mandoc >/dev/null 2>&1; then
	echo "mandoc not found: skipping the manual page checks"
	exit 77
fi

# ---- 1. lint ---------------------------------------------------------------
pages=0
for page in "$top_srcdir"/man/*.[1-9]; do
	[ -f "$page" ] || continue
	pages=$((pages + 1))
	out=$(mandoc -Tlint -W warning "$page" 2>&1)
	if [ -n "$out" ]; then
		fail "mandoc -Tlint -W warning $page:
$out"
	else
		ok
	fi
done
if [ "$pages" -eq 0 ]; then
	fail "no manual pages in $top_srcdir/man"
fi

# ---- 2. every long option of every subcommand is in porch(1) ---------------
porch1="$top_srcdir/man/porch.1"
if [ ! -f "$porch1" ]; then
	fail "$porch1 is missing"
else
	for cmd in run replay check graph plugins reload top; do
		if ! "$PORCH" "$cmd" --help >"$T/help" 2>&1; then
			fail "porch $cmd --help failed: $(cat "$T/help")"
			continue
		fi
		opts=$(grep -o -- '--[a-z][a-z0-9-]*' "$T/help" | sort -u)
		if [ -z "$opts" ]; then
			fail "porch $cmd --help prints no long option"
			continue
		fi
		for opt in $opts; do
			name=${opt#--}
			if grep -Eq "Fl -$name( |\$)" "$porch1"; then
				ok
			else
				fail "porch $cmd --help prints --$name, but man/porch.1 has no 'Fl -$name'"
			fi
		done
	done
fi

# ---- 3. every function of plugin.h is in porch-plugin(3) --------------------
plugin3="$top_srcdir/man/porch-plugin.3"
header="$top_srcdir/include/porch/plugin.h"
if [ ! -f "$plugin3" ]; then
	fail "$plugin3 is missing"
else
	funcs=$(grep -o 'porch_[a-z_]*(' "$header" | tr -d '(' | sort -u)
	if [ -z "$funcs" ]; then
		fail "found no function in $header"
	fi
	for fn in $funcs; do
		if grep -Eq "(^|[^a-z_])$fn([^a-z_]|\$)" "$plugin3"; then
			ok
		else
			fail "$fn is declared in include/porch/plugin.h but not named in man/porch-plugin.3"
		fi
	done
fi

# ---- 4. the version example ----------------------------------------------
expect_eq "porch(1): the --version example" \
    "$(sed -n 's/^\.Dq \(porch [^ ]* (plugin ABI [0-9.]*)\) \.$/\1/p' "$porch1")" \
    "$("$PORCH" --version)"

# ---- 5. every plugin's description, and stdin's input, in porch-plugins(7) --
plugins7="${top_builddir:-$top_srcdir}/man/porch-plugins.7"
if [ ! -f "$plugins7" ]; then
	fail "$plugins7 is missing"
else
	for name in $("$PORCH" plugins | awk '{ print $1 }' | sed 's/:$//'); do
		# its part opens with the summary, then a paragraph of description
		# before "Kind:" (a plugin without one goes straight to "Kind:")
		if awk -v n="$name" '$0 == ".Ss " n { on = 1; next } on && /^\.Ss / { exit }
		    on && pp == 1 { found = $0 !~ /^Kind: /; exit }
		    on && /^\.Pp$/ { pp++ } END { exit !found }' "$plugins7"; then
			ok
		else
			fail "porch-plugins(7): plugin $name has no description"
		fi
	done
	for word in '"text"' '"session"' '"meta"' '"deadline_ms"' 'request-id'; do
		if awk '$0 == ".Ss stdin" { on = 1; next } on && /^\.Ss / { exit } on { print }' \
		    "$plugins7" | grep -qF -- "$word"; then
			ok
		else
			fail "porch-plugins(7): stdin's input format does not name $word"
		fi
	done
fi

finish
