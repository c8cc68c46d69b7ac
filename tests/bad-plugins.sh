#!/bin/sh
# bad-plugins.sh -- broken plugins are clear one-line errors, never crashes.
#
# Builds a set of deliberately broken plugins, then checks what porch
# plugins, porch check and porch run say about each.
. "$top_srcdir/tests/lib.sh"

D="$T/plugins"
mkdir -p "$D"
: "${CC:=cc}"

# build NAME SOURCE: compiles a plugin into $D/NAME.so
build() {
	printf '%s\n' "$2" > "$T/$1.c"
	# shellcheck disable=SC2086
	$CC ${CFLAGS:-} -shared -fPIC -I"$top_srcdir/include" -o "$D/$1.so" "$T/$1.c" ||
	    fail "could not build $1"
}

hdr='#include <porch/plugin.h>
static void pass(porch_stage *st, porch_msg *m) { porch_emit(st, m); }
static const char *const outs[] = { "out", NULL };'

build oldabi "$hdr
const struct porch_plugin porch_plugin = { .abi_major = 0, .abi_minor = 9,
  .size = sizeof(struct porch_plugin), .kind = PORCH_KIND_STAGE, .name = \"oldabi\",
  .summary = \"s\", .outputs = outs, .process = pass };"
build newminor "$hdr
const struct porch_plugin porch_plugin = { .abi_major = PORCH_ABI_MAJOR,
  .abi_minor = PORCH_ABI_MINOR + 1, .size = sizeof(struct porch_plugin),
  .kind = PORCH_KIND_STAGE, .name = \"newminor\", .summary = \"s\", .outputs = outs,
  .process = pass };"
build nosymbol "int not_a_plugin(void) { return 1; }"
printf 'this is not a shared object\n' > "$D/notelf.so"
build initfail "$hdr
static int init(porch_stage *st) { porch_stage_error(st, \"cannot open /nonexistent: No such file or directory\"); return -1; }
const struct porch_plugin porch_plugin = { PORCH_PLUGIN_HEADER, .kind = PORCH_KIND_STAGE,
  .name = \"initfail\", .summary = \"fails its init\", .outputs = outs, .init = init,
  .process = pass };"
build noprocess "$hdr
const struct porch_plugin porch_plugin = { PORCH_PLUGIN_HEADER, .kind = PORCH_KIND_STAGE,
  .name = \"noprocess\", .summary = \"s\", .outputs = outs };"
build baddefault "$hdr
static const struct porch_param params[] = {
  { \"size\", PORCH_PARAM_INTEGER, \"12abc\", 0, 10, NULL, 0, \"doc\" }, { NULL } };
const struct porch_plugin porch_plugin = { PORCH_PLUGIN_HEADER, .kind = PORCH_KIND_STAGE,
  .name = \"baddefault\", .summary = \"s\", .outputs = outs, .params = params,
  .process = pass };"
build misnamed "$hdr
const struct porch_plugin porch_plugin = { PORCH_PLUGIN_HEADER, .kind = PORCH_KIND_STAGE,
  .name = \"other\", .summary = \"s\", .outputs = outs, .process = pass };"
build undefsym "$hdr
void porch_no_such_function(void);
static void go(porch_stage *st, porch_msg *m) { porch_no_such_function(); porch_emit(st, m); }
const struct porch_plugin porch_plugin = { PORCH_PLUGIN_HEADER, .kind = PORCH_KIND_STAGE,
  .name = \"undefsym\", .summary = \"s\", .outputs = outs, .process = go };"
build good "$hdr
const struct porch_plugin porch_plugin = { PORCH_PLUGIN_HEADER, .kind = PORCH_KIND_STAGE,
  .name = \"good\", .summary = \"a working pass-through\", .outputs = outs, .process = pass };"

# expect_plugin NAME MESSAGE: porch plugins NAME fails with exactly MESSAGE
expect_plugin() {
	"$PORCH" plugins --plugin-path "$D" "$1" > "$T/out" 2> "$T/err"
	expect_eq "plugins $1: exit status" "$?" 2
	expect_eq "plugins $1: message" "$(cat "$T/err")" "porch: $2"
}

expect_plugin oldabi "$D/oldabi.so: built for plugin ABI 0.9, but this porch provides ABI 1.6; rebuild the plugin against this porch's <porch/plugin.h> (cc -shared -fPIC \$(pkg-config --cflags --libs porch))"
expect_plugin newminor "$D/newminor.so: built for plugin ABI 1.7, but this porch provides ABI 1.6; rebuild the plugin against this porch's <porch/plugin.h> (cc -shared -fPIC \$(pkg-config --cflags --libs porch))"
expect_plugin nosymbol "$D/nosymbol.so: not a porch plugin (no 'porch_plugin' symbol)"
"$PORCH" plugins --plugin-path "$D" notelf 2> "$T/err"
expect_eq "plugins notelf: exit status" "$?" 2
grep -q "^porch: $D/notelf.so: cannot load: .*\(invalid ELF header\|file too short\)" "$T/err" && ok ||
    fail "plugins notelf: $(cat "$T/err")"
expect_plugin noprocess "$D/noprocess.so: invalid descriptor: stage plugin 'noprocess' has no process callback and is not a source"
expect_plugin baddefault "$D/baddefault.so: invalid descriptor: default of parameter 'size': '12abc' is not an integer"
expect_plugin misnamed "$D/misnamed.so: the file is named 'misnamed.so' but the plugin inside calls itself 'other'"
"$PORCH" plugins --plugin-path "$D" undefsym 2> "$T/err"
expect_eq "plugins undefsym: exit status" "$?" 2
grep -q "^porch: $D/undefsym.so: cannot load: .*undefined symbol: porch_no_such_function" "$T/err" && ok ||
    fail "plugins undefsym: $(cat "$T/err")"
"$PORCH" plugins --plugin-path "$D" xyzzy 2> "$T/err"
expect_eq "plugins xyzzy: exit status" "$?" 2
grep -q "^porch: unknown plugin 'xyzzy': no xyzzy.so in $D, " "$T/err" && ok ||
    fail "plugins xyzzy: $(cat "$T/err")"
"$PORCH" plugins --plugin-path "$D" godo 2> "$T/err"
grep -q "^porch: unknown plugin 'godo'; did you mean 'good'? (searched $D, " "$T/err" && ok ||
    fail "plugins godo: $(cat "$T/err")"

# the listing shows the good ones and reports each broken one, exit 1
"$PORCH" plugins --plugin-path "$D" > "$T/out" 2> "$T/err"
expect_eq "plugins listing: exit status" "$?" 1
grep -q '^good  *stage  *a working pass-through$' "$T/out" && ok || fail "listing: good missing: $(cat "$T/out")"
grep -q '^echo  *worker ' "$T/out" && ok || fail "listing: built-in echo missing"
expect_eq "listing: one line per broken plugin" "$(grep -c "^porch: $D/" "$T/err")" 8
# a later plugin of the same name is listed, on one line, as shadowed
mkdir -p "$T/later" && cp "$D/good.so" "$T/later/good.so"
"$PORCH" plugins --plugin-path "$D" --plugin-path "$T/later" > "$T/out" 2> /dev/null
grep -q "^good  *stage  *a working pass-through  \[shadowed: $T/later/good.so\]$" "$T/out" && ok ||
    fail "listing: shadowed line: $(grep good "$T/out")"

# in a pipeline: check names the file and position, run fails init cleanly
pipe() {
	cat > "$T/p.xml" <<XML
<?xml version="1.0"?>
<pipeline name="p" version="1">
  <stage name="src" plugin="stdin"/>
  <stage name="mid" plugin="$1"/>
  <stage name="out" plugin="null"/>
  <channel from="src" to="mid"/>
  <channel from="mid" to="out"/>
</pipeline>
XML
}
pipe oldabi
"$PORCH" check --plugin-path "$D" "$T/p.xml" 2> "$T/err"
expect_eq "check oldabi: exit status" "$?" 2
grep -q "^$T/p.xml:4:29: error: stage 'mid': $D/oldabi.so: built for plugin ABI 0.9" "$T/err" && ok ||
    fail "check oldabi: $(cat "$T/err")"

pipe initfail
"$PORCH" check --plugin-path "$D" "$T/p.xml" > /dev/null 2>&1
expect_eq "check initfail: valid (init runs only at run time)" "$?" 0
echo hi | "$PORCH" run --plugin-path "$D" "$T/p.xml" > "$T/out" 2> "$T/err"
expect_eq "run initfail: exit status" "$?" 1
expect_eq "run initfail: message" "$(cat "$T/err")" "porch: $T/p.xml: stage 'mid' (plugin initfail, $D/initfail.so): init failed: cannot open /nonexistent: No such file or directory"

pipe good
echo hi | "$PORCH" run -q --plugin-path "$D" "$T/p.xml" > /dev/null 2> "$T/err"
expect_eq "run good: exit status" "$?" 0

# plugins others can write are refused, like sshd's StrictModes: the file,
# its directory, and a file of another user; the error names the path and
# the mode or owner, and says how to fix it
mkdir "$T/ww" "$T/wwdir"
cp "$D/good.so" "$T/ww/good.so"
chmod 0666 "$T/ww/good.so"
"$PORCH" plugins --plugin-path "$T/ww" good > /dev/null 2> "$T/err"
expect_eq "world-writable .so: exit status" "$?" 2
expect_eq "world-writable .so: message" "$(cat "$T/err")" "porch: $T/ww/good.so: refusing to load: the file is writable by group and others (mode 0666), who could change the code porch runs; fix it with chmod go-w $T/ww/good.so"
chmod 0775 "$T/ww/good.so"
"$PORCH" plugins --plugin-path "$T/ww" good > /dev/null 2> "$T/err"
expect_eq "group-writable .so: message" "$(cat "$T/err")" "porch: $T/ww/good.so: refusing to load: the file is writable by its group (mode 0775), who could change the code porch runs; fix it with chmod go-w $T/ww/good.so"
chmod go-w "$T/ww/good.so"
"$PORCH" plugins --plugin-path "$T/ww" good > /dev/null 2> "$T/err"
expect_eq "fixed .so: exit status" "$?" 0

cp "$D/good.so" "$T/wwdir/good.so"
chmod 0777 "$T/wwdir"
"$PORCH" plugins --plugin-path "$T/wwdir" good > /dev/null 2> "$T/err"
expect_eq "world-writable directory: exit status" "$?" 2
expect_eq "world-writable directory: message" "$(cat "$T/err")" "porch: $T/wwdir/good.so: refusing to load: its directory $T/wwdir is writable by group and others (mode 0777), who could change the code porch runs; fix it with chmod go-w $T/wwdir"
# in a pipeline, porch check and porch run refuse it the same way
pipe good
"$PORCH" check --plugin-path "$T/wwdir" "$T/p.xml" 2> "$T/err"
expect_eq "check, world-writable directory: exit status" "$?" 2
grep -q "^$T/p.xml:4:29: error: stage 'mid': $T/wwdir/good.so: refusing to load: its directory $T/wwdir is writable" "$T/err" && ok ||
    fail "check, world-writable directory: $(cat "$T/err")"
echo hi | "$PORCH" run -q --plugin-path "$T/wwdir" "$T/p.xml" > /dev/null 2> "$T/err"
expect_eq "run, world-writable directory: exit status" "$?" 2
# through a symbolic link, the file it points to is what counts
chmod 0755 "$T/wwdir"
mkdir "$T/links"
chmod 0666 "$T/wwdir/good.so"
ln -s "$T/wwdir/good.so" "$T/links/good.so"
"$PORCH" plugins --plugin-path "$T/links" good > /dev/null 2> "$T/err"
expect_eq "link to a world-writable .so: message" "$(cat "$T/err")" "porch: $T/links/good.so: refusing to load: the file $T/wwdir/good.so is writable by group and others (mode 0666), who could change the code porch runs; fix it with chmod go-w $T/wwdir/good.so"
# another user's file: only root can make one to try
if [ "$(id -u)" = 0 ] && id nobody > /dev/null 2>&1; then
	chmod 0755 "$T/wwdir/good.so"
	chown nobody "$T/wwdir/good.so"
	"$PORCH" plugins --plugin-path "$T/wwdir" good > /dev/null 2> "$T/err"
	expect_eq "another user's .so: message" "$(cat "$T/err")" "porch: $T/wwdir/good.so: refusing to load: the file is owned by uid $(id -u nobody), neither root nor the user porch runs as (uid 0), who could change the code porch runs; chown it to one of them (chown 0 $T/wwdir/good.so)"
fi

finish
