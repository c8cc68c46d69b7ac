#!/bin/sh
# man-lint.sh -- the manual pages are clean mdoc and keep up with the code.
#
# 1. mandoc -Tlint -W warning has nothing to say about any page in man/.
# 2. Every long option a subcommand's --help prints is documented in
#    porch(1), written there as "Fl -NAME".
# 3. Every function declared in <porch/plugin.h> is named in porch-plugin(3).
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
	for cmd in run replay check graph plugins; do
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

finish
