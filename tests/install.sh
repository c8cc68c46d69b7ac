#!/bin/sh
# install.sh -- make install into a staging root (DESTDIR), then the
# installed porch, with its installed library and plugins, checks every
# installed example pipeline from where it is (their corpus paths work
# there) and runs one; make uninstall takes them away again.
. "$top_srcdir/tests/lib.sh"

: "${top_builddir:?run through make check, which sets top_builddir}"
: "${MAKE:=make}"
D=$T/stage
install_alone

if ! $MAKE -s -C "$top_builddir" install DESTDIR="$D" > "$T/install.log" 2>&1; then
	fail "make install DESTDIR=$D failed: $(tail -n 20 "$T/install.log")"
	finish
fi
flock -u 8 2> /dev/null # installed: the other tests may go on
ok
bin=$(find "$D" -path '*/bin/porch' -type f)
lib=$(dirname "$(find "$D" -name 'libporch.so.0' | head -n 1)")
plugins=$(dirname "$(find "$D" -name 'echo.so' | head -n 1)")
pipelines=$(find "$D" -type d -path '*/share/porch/pipelines')
[ -x "$bin" ] && ok || fail "no installed bin/porch under $D"
[ -n "$pipelines" ] && ok || { fail "no share/porch/pipelines under $D"; finish; }
[ -d "$pipelines/../corpus" ] && ok || fail "no corpus beside the installed pipelines"

# every example pipeline is installed
expect_eq "installed pipelines" "$(cd "$pipelines" && ls *.xml | tr '\n' ' ')" \
    "$(cd "$top_srcdir/pipelines" && ls *.xml | tr '\n' ' ')"

# the installed porch, its library and plugins only (not the build tree's)
installed() {
	(cd "$T" && env LD_LIBRARY_PATH="$lib" PORCH_PLUGIN_PATH="$plugins" "$bin" "$@")
}
expect_eq "installed porch --version" "$(installed --version)" "$("$PORCH" --version)"
for f in "$pipelines"/*.xml; do
	out=$(installed check "$f" 2>&1)
	expect_eq "installed porch check $(basename "$f")" "$out" "$f: ok"
done
# their corpus is ../corpus, from where they are
grep -l '<param name="corpus">' "$pipelines"/*.xml > "$T/with-corpus"
[ -s "$T/with-corpus" ] && ok || fail "no installed pipeline names a corpus"
while read -r f; do
	expect_eq "$(basename "$f"): corpus path" \
	    "$(sed -n 's|.*<param name="corpus">\(.*\)</param>.*|\1|p' "$f")" "../corpus"
done < "$T/with-corpus"
# and the quick start runs from the installed copy, its answer built on the corpus
echo "how do I route failed requests to a dead letter file?" |
    installed run -q "$pipelines/rag.xml" > "$T/rag.out" 2> "$T/rag.err"
expect_eq "installed rag.xml: exit status" "$?" 0
grep -q '^stdin	Answer the question using the context below. Context: .*dead-letter' "$T/rag.out" && ok ||
    fail "installed rag.xml: no answer from the corpus: $(head -c 300 "$T/rag.out") $(cat "$T/rag.err")"

# the systemd unit, naming the installed porch, and the bash completion
# (unless configure was told --without-systemdsystemunitdir or
# --without-bashcompletiondir)
if grep -q '^systemdsystemunit_DATA = ' "$top_builddir/Makefile"; then
	unit=$(find "$D" -path '*/systemd/system/porch.service' -type f)
	if [ -n "$unit" ]; then
		ok
		expect_eq "porch.service: ExecStart's porch" \
		    "$(sed -n 's|^ExecStart=\([^ ]*\) .*|\1|p' "$unit")" "${bin#"$D"}"
	else
		fail "no systemd/system/porch.service under $D"
	fi
fi
if grep -q '^bashcompletion_DATA = ' "$top_builddir/Makefile"; then
	[ -n "$(find "$D" -path '*/completions/porch' -type f)" ] && ok ||
	    fail "no bash-completion/completions/porch under $D"
fi

# make uninstall takes the pipelines away again
if $MAKE -s -C "$top_builddir" uninstall DESTDIR="$D" > "$T/uninstall.log" 2>&1; then
	expect_eq "after make uninstall: pipelines left" "$(find "$D" -name '*.xml' | wc -l | tr -d ' ')" 0
	expect_eq "after make uninstall: unit and completion left" \
	    "$(find "$D" -name porch.service -o -path '*/completions/porch' | wc -l | tr -d ' ')" 0
else
	fail "make uninstall DESTDIR=$D failed: $(tail -n 20 "$T/uninstall.log")"
fi

finish
