#!/bin/sh
# rag.sh -- the rag stage: check-time corpus errors with their place in the
# file, the metadata it attaches (seen through a test-only sink that prints
# it), and runs over the example corpus in share/corpus.
. "$top_srcdir/tests/lib.sh"

: "${CC:=cc}"

# ---- showmeta: a test-only sink that prints the text and rag's metadata --
# One line per message: TEXT, then TAB KEY=VALUE for "context" and every
# "rag." key, in the order they were set; newlines in values print as \n.
D="$T/plugins"
mkdir -p "$D"
cat > "$T/showmeta.c" <<'EOF'
#include <stdio.h>
#include <string.h>
#include <porch/plugin.h>
static void put(const char *s) {
	for (; *s; s++) {
		if (*s == '\n') fputs("\\n", stdout); else putchar(*s);
	}
}
static void show(porch_stage *st, porch_msg *m) {
	size_t len;
	const char *text = porch_msg_text(m, &len), *key, *value;
	fwrite(text, 1, len, stdout);
	for (size_t i = 0; (key = porch_msg_meta_at(m, i, &value)) != NULL; i++) {
		if (strcmp(key, "context") != 0 && strncmp(key, "rag.", 4) != 0)
			continue;
		printf("\t%s=", key);
		put(value);
	}
	putchar('\n');
	fflush(stdout);
	porch_done(st, m);
}
const struct porch_plugin porch_plugin = { PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_STAGE, .name = "showmeta",
	.summary = "test sink: prints the text and rag's metadata", .process = show };
EOF
# shellcheck disable=SC2086
if ! $CC ${CFLAGS:-} -shared -fPIC -I"$top_srcdir/include" -o "$D/showmeta.so" "$T/showmeta.c"; then
	fail "could not build the showmeta test sink"
	finish
fi
PORCH_PLUGIN_PATH="$D${PORCH_PLUGIN_PATH:+:$PORCH_PLUGIN_PATH}"
export PORCH_PLUGIN_PATH

# pipe CORPUS SINK: writes $T/p.xml, stdin -> rag -> SINK; the corpus
# parameter's value is at line 5, column 26
pipe() {
	cat > "$T/p.xml" <<XML
<?xml version="1.0"?>
<pipeline name="r" version="1">
  <stage name="in" plugin="stdin"/>
  <stage name="rag" plugin="rag">
    <param name="corpus">$1</param>
  </stage>
  <stage name="out" plugin="$2"/>
  <channel from="in" to="rag"/>
  <channel from="rag" to="out"/>
</pipeline>
XML
}

# expect_check WHAT WANT-STDERR [ARGS...]: porch check fails with exactly that
expect_check() {
	_what=$1 _want=$2
	shift 2
	"$PORCH" check "$@" "$T/p.xml" > "$T/out" 2> "$T/err"
	expect_eq "$_what: check exit status" "$?" 2
	expect_eq "$_what: check message" "$(cat "$T/err")" "$_want"
	expect_eq "$_what: check prints nothing on stdout" "$(cat "$T/out")" ""
}

at="$T/p.xml:5:26: error: stage 'rag' (plugin rag)"

# ---- check time: the corpus must exist and hold text --------------------
pipe nope stdout
expect_check "missing" "$at: corpus '$T/nope': no such directory"
# porch run refuses it the same way, before reading any input
echo "a question" | "$PORCH" run -q "$T/p.xml" > "$T/out" 2> "$T/err"
expect_eq "missing: run exit status" "$?" 2
expect_eq "missing: run message" "$(cat "$T/err")" "$at: corpus '$T/nope': no such directory"
expect_eq "missing: run answers nothing" "$(cat "$T/out")" ""

printf 'not a directory\n' > "$T/file.md"
pipe file.md stdout
expect_check "a file" "$at: corpus '$T/file.md' is not a directory; give the directory that holds the .txt and .md files"

mkdir "$T/empty"
pipe empty stdout
nodocs="has no .txt or .md files with text; add some, or point corpus at the directory that holds them"
expect_check "empty" "$at: corpus '$T/empty' $nodocs"

# only empty documents, foreign files and hidden ones: still nothing to index
mkdir -p "$T/blank/sub"
printf '\n \n\t\n' > "$T/blank/empty.md"
: > "$T/blank/sub/zero.txt"
printf -- '-- ... --\n' > "$T/blank/punctuation.txt"
printf 'words in a file rag does not read\n' > "$T/blank/notes.rst"
printf 'words in a hidden file\n' > "$T/blank/.hidden.md"
pipe blank stdout
expect_check "only empty documents" "$at: corpus '$T/blank' $nodocs"

# a --set value is reported as the --set, not at the file's value
pipe empty stdout
expect_check "--set" "$T/p.xml: error: --set rag.corpus: stage 'rag' (plugin rag): corpus '$T/nope': no such directory" \
    --set rag.corpus=nope

if [ "$(id -u)" != 0 ]; then
	mkdir "$T/locked"
	printf 'text\n' > "$T/locked/a.md"
	chmod 000 "$T/locked"
	pipe locked stdout
	expect_check "unreadable" "$at: corpus '$T/locked': cannot read the directory: Permission denied"
	chmod 755 "$T/locked"
	chmod 000 "$T/locked/a.md"
	expect_check "unreadable document" "$at: corpus '$T/locked': cannot read 'a.md': Permission denied"
	chmod 644 "$T/locked/a.md"
fi

# ---- a small corpus with known content ----------------------------------
C="$T/corpus"
mkdir -p "$C/animals"
printf '# Cats\n\nCats purr and sleep all day.\n\nA cat chases mice at night.\n' > "$C/animals/cats.md"
printf 'Dogs bark at the mailman.\r\n\r\nA dog fetches sticks and balls.\r\n' > "$C/dogs.txt"
# not documents: would outrank the rest if they were read
printf 'cats cats cats purr purr zebra\n' > "$C/notes.rst"
printf 'cats cats cats purr purr zebra\n' > "$C/.hidden.md"
pipe corpus showmeta
"$PORCH" check "$T/p.xml" > "$T/out" 2> "$T/err"
expect_eq "valid: check exit status" "$?" 0
expect_eq "valid: check output" "$(cat "$T/out")" "$T/p.xml: ok"
expect_eq "valid: check says nothing else" "$(cat "$T/err")" ""

# run ARGS...: three questions through stdin -> rag -> showmeta
run() {
	printf 'Why do cats purr?\nzebra\nA cat or a dog\n' |
	    "$PORCH" run -q --stats-json "$T/s.json" "$@" "$T/p.xml" > "$T/out" 2> "$T/err"
	expect_eq "run $*: exit status" "$?" 0
	expect_eq "run $*: accepted" "$(json_get "$T/s.json" accepted)" 3
	expect_eq "run $*: completed" "$(json_get "$T/s.json" completed)" 3
}

# Four passages (a heading stays with its paragraph), lengths 6, 4, 3, 4
# tokens ("and", "a", "at", "the" are stop words), avgdl 17/4.
# "cats" and "purr" are only in passage 1 (no stemming: "cat" differs):
#   idf = ln(1 + 3.5 / 1.5) = 1.2039728, norm = 1.2 * (0.25 + 0.75 * 6 / 4.25)
#   = 1.5705882, score = idf * (2 * 2.2 / (2 + norm) + 2.2 / (1 + norm))
#   = 2.5140459.
# "cat" and "dog" each hold one 4-token passage: equal scores, so corpus
# order (animals/cats.md before dogs.txt): idf * 2.2 / (1 + 1.1470588).
tab=$(printf '\t')
run
grep -q "^[^ ]* [a-z]* porch: stage 'rag': indexed 2 documents (1 KiB): 4 passages, 16 terms, .* in memory, in [0-9]* ms$" "$T/err" && ok ||
    fail "no index log line: $(cat "$T/err")"
cat > "$T/want" <<EOF
Why do cats purr?${tab}context=# Cats\nCats purr and sleep all day.${tab}rag.hits=1${tab}rag.1.source=animals/cats.md${tab}rag.1.score=2.5140
zebra${tab}context=${tab}rag.hits=0
A cat or a dog${tab}context=A cat chases mice at night.\n\nA dog fetches sticks and balls.${tab}rag.hits=2${tab}rag.1.source=animals/cats.md${tab}rag.1.score=1.2337${tab}rag.2.source=dogs.txt${tab}rag.2.score=1.2337
EOF
cmp -s "$T/want" "$T/out" && ok || fail "metadata differs: $(diff "$T/want" "$T/out")"

# top-k bounds the passages
run --set rag.top-k=1
expect_eq "top-k=1" "$(sed -n 3p "$T/out")" \
    "A cat or a dog${tab}context=A cat chases mice at night.${tab}rag.hits=1${tab}rag.1.source=animals/cats.md${tab}rag.1.score=1.2337"

# max-context-bytes: 27 + 2 + 31 bytes do not fit in 59, so one passage
run --set rag.max-context-bytes=59
expect_eq "max-context-bytes=59" "$(sed -n 3p "$T/out")" \
    "A cat or a dog${tab}context=A cat chases mice at night.${tab}rag.hits=1${tab}rag.1.source=animals/cats.md${tab}rag.1.score=1.2337"
run --set rag.max-context-bytes=60
expect_eq "max-context-bytes=60: both fit exactly" "$(sed -n 3p "$T/out" | cut -f3)" "rag.hits=2"
# the best passage alone is cut
run --set rag.max-context-bytes=16
expect_eq "max-context-bytes=16" "$(sed -n 3p "$T/out")" \
    "A cat or a dog${tab}context=A cat chases mic${tab}rag.hits=1${tab}rag.1.source=animals/cats.md${tab}rag.1.score=1.2337"

# ---- the example corpus --------------------------------------------------
pipe "$top_srcdir/share/corpus" stdout
"$PORCH" check "$T/p.xml" > /dev/null 2> "$T/err"
expect_eq "example corpus: check exit status" "$?" 0
cat > "$T/questions" <<'EOF'
What is porch?
How do I check a pipeline file for errors?
What does overflow drop-oldest do to a full channel?
Which signal prints the statistics table?
What happens to a request that is shed?
How do I write a plugin?
What are the parameters of the rag stage?
zebras, giraffes and quantum flux
EOF
"$PORCH" run -q --stats-json "$T/s.json" "$T/p.xml" < "$T/questions" > "$T/out" 2> "$T/err"
expect_eq "example corpus: exit status" "$?" 0
expect_eq "example corpus: accepted" "$(json_get "$T/s.json" accepted)" 8
expect_eq "example corpus: completed" "$(json_get "$T/s.json" completed)" 8
# the text goes on unchanged
sed "s/^/stdin$tab/" "$T/questions" > "$T/want"
cmp -s "$T/want" "$T/out" && ok || fail "example corpus: text changed: $(diff "$T/want" "$T/out")"
grep -q "^[^ ]* [a-z]* porch: stage 'rag': indexed 8 documents " "$T/err" && ok ||
    fail "example corpus: no index log line: $(cat "$T/err")"

# and what it attaches for a few of them
pipe "$top_srcdir/share/corpus" showmeta
"$PORCH" run -q "$T/p.xml" < "$T/questions" > "$T/out" 2> "$T/err"
expect_eq "example corpus, metadata: exit status" "$?" 0
src1() { sed -n "$1p" "$T/out" | tr '\t' '\n' | sed -n 's/^rag\.1\.source=//p'; }
hits() { sed -n "$1p" "$T/out" | tr '\t' '\n' | sed -n 's/^rag\.hits=//p'; }
expect_eq "example: hits for 'What is porch?'" "$(hits 1)" 3
expect_eq "example: best source for drop-oldest" "$(src1 3)" "pipeline-file.md"
expect_eq "example: best source for the signal" "$(src1 4)" "commands.txt"
expect_eq "example: best source for the rag parameters" "$(src1 7)" "rag.md"
expect_eq "example: no hits for zebras" "$(hits 8)" 0

finish
