#!/bin/bash
# completion.sh -- the bash completion (dist/porch.bash), driven as bash
# drives it: COMP_WORDS and COMP_CWORD set, _porch called, COMPREPLY read.
# Subcommands, each command's options (from its --help), .xml files for
# pipelines, plugin names for `porch plugins NAME` (with --plugin-path
# passed on), the values of --log-format and --log-level.
. "$top_srcdir/tests/lib.sh"

command -v bash > /dev/null || { echo "no bash" >&2; exit 77; }
. "$top_srcdir/dist/porch.bash"

# complete WORDS...: the candidates for the last word, sorted, on one line
# (the porch completed is the build tree's)
complete_words() {
	COMP_WORDS=("$PORCH" "$@")
	COMP_CWORD=$#
	COMP_LINE="${COMP_WORDS[*]}"
	COMP_POINT=${#COMP_LINE}
	COMPREPLY=()
	_porch porch "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
	printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//'
}

# expect WHAT WANT WORDS...
expect() {
	_what=$1 _want=$2
	shift 2
	expect_eq "$_what" "$(complete_words "$@")" "$_want"
}

# the subcommands are those porch --help lists
cmds=$("$PORCH" --help | sed -n '/^commands:/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p' | sort | tr '\n' ' ')
for c in run replay check graph plugins reload top; do
	case " $cmds" in *" $c "*) ok ;; *) fail "porch --help does not list $c" ;; esac
done
expect "commands" "$(printf '%s\n' $cmds --help --version | sort | tr '\n' ' ' | sed 's/ $//')" ""
expect "commands: r" "$(printf '%s\n' $cmds | grep '^r' | sort | tr '\n' ' ' | sed 's/ $//')" r
expect "commands: --v" "--version" --v

# options, from each command's --help
expect "run --log-" "--log-format --log-level" run --log-
expect "run --p" "--pid-file --plugin-path" run --p
expect "run options" "--control --drain-timeout --help --log-format --log-level --nats-shard --nats-url --node --pid-file --plugin-path --quiet --set --stats-json --threads" run --
expect "replay --s" "--set --source --stats-json" replay --s
expect "check options" "--help --plugin-path --set" check --
expect "graph options" "--help --plugin-path --set" graph --
expect "plugins options" "--help --mdoc --plugin-path" plugins --
expect "reload options" "--help --timeout" reload --

# option values
expect "--log-format" "json text" run --log-format ""
expect "--log-format j" "json" run --log-format j
expect "--log-level" "debug error info warn" run --log-level ""
expect "--log-level=w" "warn" run --log-level = w
expect "--log-level=" "debug error info warn" run --log-level =
expect "--set" "" run --set ""
# a host:port, a duration: no file names
expect "--control" "" run --control ""
expect "top --interval" "" top --interval ""
expect "top -i" "" top -i ""

# pipeline files: *.xml and directories, not other files
mkdir -p "$T/d/sub"
: > "$T/d/a.xml"; : > "$T/d/b.xml"; : > "$T/d/notes.txt"; : > "$T/d/dead.jsonl"
cd "$T/d"
expect "run FILE" "a.xml b.xml sub" run ""
expect "run --log-level info FILE" "a.xml b.xml sub" run --log-level info ""
expect "run --set x.y=1 FILE" "a.xml b.xml sub" run --set x.y=1 ""
expect "run --control ADDR FILE" "a.xml b.xml sub" run --control 127.0.0.1:0 ""
expect "run a" "a.xml" run a
expect "check FILE FILE" "a.xml b.xml sub" check a.xml ""
expect "graph FILE" "a.xml b.xml sub" graph ""
# replay: the dead letters (any file), then the pipeline
expect "replay DLQ" "a.xml b.xml dead.jsonl notes.txt sub" replay ""
expect "replay DLQ FILE" "a.xml b.xml sub" replay dead.jsonl ""
expect "replay --source S DLQ FILE" "a.xml b.xml sub" replay --source in dead.jsonl ""
expect "reload PIDFILE" "a.xml b.xml dead.jsonl notes.txt sub" reload ""

# plugin names, from porch plugins (with the --plugin-path given)
all=$("$PORCH" plugins | awk '{ print $1 }' | sort | tr '\n' ' ' | sed 's/ $//')
[ -n "$all" ] && ok || fail "porch plugins lists nothing"
expect "plugins NAME" "$all" plugins ""
expect "plugins e" "$(printf '%s\n' $all | grep '^e' | tr '\n' ' ' | sed 's/ $//')" plugins e
expect "plugins ht" "http" plugins ht
expect "plugins NAME NAME" "" plugins http ""
tp="$top_builddir/tests/plugins/.libs"
if [ -f "$tp/probe.so" ]; then
	expect "plugins --plugin-path DIR pro" "probe" plugins --plugin-path "$tp" pro
	expect "plugins pro (not in the path)" "" plugins pro
fi

finish
