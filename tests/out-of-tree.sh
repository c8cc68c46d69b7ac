#!/bin/sh
# out-of-tree.sh -- a third party's plugin, built the way porch-plugin(3)
# says, works with an installed porch.
#
# Configures, builds and installs porch into a temporary prefix (one build,
# with the CC and CFLAGS the test suite got), checks that the installed tree
# has what plugin authors and users need, extracts the example plugin from
# man/porch-plugin.3, builds it with nothing but
#     cc -shared -fPIC -o upper.so upper.c $(pkg-config --cflags --libs porch)
# and runs it with the installed porch and its installed defaults (no
# PORCH_PLUGIN_PATH, no PORCH_SCHEMA).

. "$top_srcdir/tests/lib.sh"

: "${top_builddir:=$top_srcdir}"
unset PORCH_PLUGIN_PATH PORCH_SCHEMA

for tool in make pkg-config sed; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "$tool not found: skipping the out-of-tree plugin test"
		exit 77
	fi
done
cc=cc
command -v cc >/dev/null 2>&1 || cc=${CC:-}
if [ -z "$cc" ]; then
	echo "no C compiler (cc or \$CC): skipping the out-of-tree plugin test"
	exit 77
fi

# show_log WHAT FILE: the end of a log, for a failure message
show_log() {
	echo "---- $1 (last 40 lines) ----" >&2
	tail -n 40 "$2" >&2 2>/dev/null
}

# ---- one fresh build, installed into $T/prefix --------------------------------
prefix=$T/prefix
src=$top_srcdir
if [ -f "$top_srcdir/config.status" ]; then
	# configured in the source tree itself: configure refuses to build
	# elsewhere from it, so build from a clean copy of the distributed files
	src=$T/src
	if ! (cd "$top_builddir" && unset MAKEFLAGS MFLAGS MAKELEVEL &&
	    make distdir distdir="$src" top_distdir="$src") >"$T/distdir.log" 2>&1; then
		fail "make distdir in $top_builddir failed"
		show_log "make distdir" "$T/distdir.log"
		finish
	fi
fi

# sanitizer flags in CFLAGS must reach the link too
ldflags=
for f in ${CFLAGS:-}; do
	case $f in
	-fsanitize=*|-fno-sanitize*|-fno-omit-frame-pointer) ldflags="$ldflags $f" ;;
	esac
done

mkdir "$T/build"
if ! (cd "$T/build" && unset MAKEFLAGS MFLAGS MAKELEVEL DESTDIR &&
    CC=${CC:-cc} CFLAGS=${CFLAGS:-} LDFLAGS="${LDFLAGS:-}$ldflags" \
    "$src/configure" --prefix="$prefix" --libdir="$prefix/lib") >"$T/configure.log" 2>&1; then
	fail "configure --prefix=$prefix failed"
	show_log configure "$T/configure.log"
	finish
fi
if ! (cd "$T/build" && unset MAKEFLAGS MFLAGS MAKELEVEL DESTDIR &&
    make -j2 && make install) >"$T/make.log" 2>&1; then
	fail "make && make install failed"
	show_log make "$T/make.log"
	finish
fi

# ---- the installed tree ---------------------------------------------------------
# the built-in plugins, as Makefile.am lists them (pkglib_LTLIBRARIES = and +=)
plugins=$(awk '/^pkglib_LTLIBRARIES/ { on = 1 } on { print; if ($0 !~ /\\$/) on = 0 }' "$src/Makefile.am" |
    grep -o 'plugins/[a-z0-9_-]*\.la' | sed 's|plugins/||; s|\.la$||')
expect_installed() {
	if [ -e "$prefix/$1" ]; then
		ok
	else
		fail "make install did not install $1"
	fi
}
for f in bin/porch lib/libporch.so include/porch/plugin.h lib/pkgconfig/porch.pc \
    share/porch/porch.rng share/man/man1/porch.1 share/man/man5/porch.xml.5 \
    share/man/man3/porch-plugin.3 share/man/man7/porch-plugins.7; do
	expect_installed "$f"
done
[ -n "$plugins" ] || fail "found no built-in plugin in $src/plugins"
for p in $plugins; do
	expect_installed "lib/porch/$p.so"
done

porch=$prefix/bin/porch
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
expect_eq "pkg-config --variable=plugindir porch" \
    "$(pkg-config --variable=plugindir porch)" "$prefix/lib/porch"

# the installed porch finds its installed plugins by itself
"$porch" plugins >"$T/list" 2>"$T/err"
expect_eq "installed porch plugins: exit status" "$?" 0
for p in $plugins; do
	grep -q "^$p " "$T/list" && ok ||
	    fail "installed porch plugins does not list $p: $(cat "$T/list" "$T/err")"
done

# ---- the example of porch-plugin(3), built out of tree ---------------------------
page=$top_srcdir/man/porch-plugin.3
sed -n '/^\.\\" BEGIN EXAMPLE upper\.c$/,/^\.\\" END EXAMPLE$/p' "$page" |
    sed -e '1d' -e '$d' -e '/^\.Bd/d' -e '/^\.Ed/d' \
        -e 's/\\&//g' -e 's/\\-/-/g' -e 's/\\e/\\/g' >"$T/upper.c"
if ! grep -q 'porch_plugin = {' "$T/upper.c"; then
	fail "no example between '.\\\" BEGIN EXAMPLE upper.c' and '.\\\" END EXAMPLE' in $page"
	finish
fi

mkdir "$T/myplugins"
cflags_libs=$(pkg-config --cflags --libs porch)
if (cd "$T" && $cc -shared -fPIC -o "$T/myplugins/upper.so" upper.c $cflags_libs) \
    >"$T/cc.log" 2>&1; then
	ok
else
	fail "the example of porch-plugin(3) does not build: cc -shared -fPIC -o upper.so" \
	    "upper.c $cflags_libs: $(cat "$T/cc.log")"
	finish
fi
# and it is clean C: no warnings with -Wall -Wextra
if $cc -fsyntax-only -Wall -Wextra "$T/upper.c" $(pkg-config --cflags porch) \
    >"$T/warn.log" 2>&1 && [ ! -s "$T/warn.log" ]; then
	ok
else
	fail "the example of porch-plugin(3) has warnings: $(cat "$T/warn.log")"
fi

# porch plugins lists it, and shows its parameter
"$porch" plugins --plugin-path "$T/myplugins" >"$T/list" 2>"$T/err"
expect_eq "plugins --plugin-path: exit status" "$?" 0
grep -q '^upper  *stage ' "$T/list" && ok ||
    fail "porch plugins --plugin-path does not list upper: $(cat "$T/list" "$T/err")"
"$porch" plugins --plugin-path "$T/myplugins" upper >"$T/show" 2>"$T/err"
expect_eq "plugins upper: exit status" "$?" 0
grep -q "file: *$T/myplugins/upper.so\$" "$T/show" && ok ||
    fail "porch plugins upper: not the built file: $(cat "$T/show" "$T/err")"
grep -q '^    prefix  *string  *default ""' "$T/show" && ok ||
    fail "porch plugins upper: no prefix parameter: $(cat "$T/show" "$T/err")"

# stdin -> upper -> stdout
cat >"$T/upper.xml" <<'EOF'
<?xml version="1.0"?>
<pipeline name="shout" version="1">
  <stage name="input" plugin="stdin"/>
  <stage name="up" plugin="upper"/>
  <stage name="output" plugin="stdout"/>
  <channel from="input" to="up"/>
  <channel from="up" to="output"/>
</pipeline>
EOF
"$porch" check --plugin-path "$T/myplugins" "$T/upper.xml" >"$T/out" 2>&1
expect_eq "check upper.xml" "$(cat "$T/out")" "$T/upper.xml: ok"

printf 'hello\n' | "$porch" run --plugin-path "$T/myplugins" -q "$T/upper.xml" \
    >"$T/out" 2>"$T/err"
expect_eq "run upper.xml: exit status" "$?" 0
printf 'stdin\tHELLO\n' >"$T/want"
cmp -s "$T/out" "$T/want" && ok ||
    fail "run upper.xml: got '$(cat "$T/out")', want 'stdin<TAB>HELLO'; stderr: $(cat "$T/err")"

# its parameter, by --set
printf 'hello World\n' | "$porch" run --plugin-path "$T/myplugins" -q \
    --set up.prefix=x: "$T/upper.xml" >"$T/out" 2>"$T/err"
expect_eq "run --set up.prefix: exit status" "$?" 0
printf 'stdin\tx:HELLO WORLD\n' >"$T/want"
cmp -s "$T/out" "$T/want" && ok ||
    fail "run --set up.prefix: got '$(cat "$T/out")', want 'stdin<TAB>x:HELLO WORLD'; stderr: $(cat "$T/err")"

# installed where porch-plugin(3) says, it needs no --plugin-path
cp "$T/myplugins/upper.so" "$(pkg-config --variable=plugindir porch)/" && ok ||
    fail "cannot install upper.so into the plugin directory"
printf 'again\n' | "$porch" run -q "$T/upper.xml" >"$T/out" 2>"$T/err"
expect_eq "run installed upper: exit status" "$?" 0
printf 'stdin\tAGAIN\n' >"$T/want"
cmp -s "$T/out" "$T/want" && ok ||
    fail "run installed upper: got '$(cat "$T/out")'; stderr: $(cat "$T/err")"

finish
