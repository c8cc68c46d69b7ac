# porch(1) completion for bash                              -*- shell-script -*-
#
# Installed as bash-completion's completions/porch, loaded when porch is
# first completed; or source it from ~/.bashrc.  Subcommands and their
# options are read from the porch being completed (porch --help, porch
# COMMAND --help), so they follow the installed version; plugin names
# from `porch plugins`.  Pipeline files complete to *.xml.

# _porch_help PORCH ARGS...: the help text, or nothing
_porch_help()
{
	"$@" 2> /dev/null
}

# _porch_commands PORCH: the subcommands "porch --help" lists
_porch_commands()
{
	local cmds
	cmds=$(_porch_help "$1" --help | sed -n '/^commands:/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p')
	printf '%s\n' "${cmds:-run replay check graph plugins reload top}"
}

# _porch_options PORCH COMMAND: the options of its --help (usage lines and
# the option table), and --help
_porch_options()
{
	_porch_help "$1" "$2" --help |
	    sed -n -e '/^usage:/,/^$/p' -e '/^ *-/p' |
	    grep -o -- '--[a-z][a-z-]*' | sort -u
	echo --help
}

# _porch_takes_arg PORCH COMMAND OPTION: whether OPTION is followed by a value
_porch_takes_arg()
{
	case $3 in
	--*=*) return 1 ;;
	--plugin-path|--set|--stats-json|--drain-timeout|--pid-file|--log-format|\
	--log-level|--source|--timeout|--control|--interval|--threads|--node|--nats-url|\
	--nats-shard|-[Psjdpti]) return 0 ;;
	--*) _porch_help "$1" "$2" --help | grep -q -- "$3 [A-Z]" ;;
	*) return 1 ;;
	esac
}

# _porch_files [PATTERN]: files (only those matching PATTERN) and directories
_porch_files()
{
	local IFS=$'\n'
	compopt -o filenames 2> /dev/null
	if [ -n "${1-}" ]; then
		COMPREPLY=($(compgen -f -X "!$1" -- "$cur") $(compgen -d -- "$cur"))
	else
		COMPREPLY=($(compgen -f -- "$cur"))
	fi
}

_porch()
{
	local porch=${COMP_WORDS[0]} cur=${COMP_WORDS[COMP_CWORD]} prev= cmd= i
	local -a dirs=()
	[ "$COMP_CWORD" -gt 0 ] && prev=${COMP_WORDS[COMP_CWORD - 1]}
	COMPREPLY=()

	# --opt=value: COMP_WORDBREAKS splits it into "--opt" "=" "value"
	if [ "$cur" = "=" ]; then
		prev=${COMP_WORDS[COMP_CWORD - 1]}
		cur=
	elif [ "$prev" = "=" ] && [ "$COMP_CWORD" -gt 1 ]; then
		prev=${COMP_WORDS[COMP_CWORD - 2]}
	fi

	if [ "$COMP_CWORD" -eq 1 ]; then
		COMPREPLY=($(compgen -W "$(_porch_commands "$porch") --help --version" -- "$cur"))
		return 0
	fi
	cmd=${COMP_WORDS[1]}

	# an option's value
	case $prev in
	--log-format) COMPREPLY=($(compgen -W "text json" -- "$cur")); return 0 ;;
	--log-level) COMPREPLY=($(compgen -W "error warn info debug" -- "$cur")); return 0 ;;
	--threads) COMPREPLY=($(compgen -W "auto $(seq -s ' ' 1 "$(nproc 2> /dev/null || echo 1)")" -- "$cur")); return 0 ;;
	--plugin-path|-P)
		compopt -o filenames 2> /dev/null
		local IFS=$'\n'
		COMPREPLY=($(compgen -d -- "$cur"))
		return 0 ;;
	--pid-file|-p|--stats-json|-j) _porch_files; return 0 ;;
	--set|-s|--drain-timeout|-d|--timeout|-t|--source|--control|--interval|-i) return 0 ;;
	esac

	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$(_porch_options "$porch" "$cmd")" -- "$cur"))
		return 0
	fi

	# which argument this is, past the options and their values; the
	# --plugin-path values go to `porch plugins` too
	local n=0 skip=0 w
	for ((i = 2; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		if [ "$skip" = 1 ]; then
			skip=0
			[ "$w" = "=" ] && skip=1
			continue
		fi
		case $w in
		--plugin-path=*) dirs+=(--plugin-path "${w#--plugin-path=}") ;;
		--plugin-path|-P) dirs+=(--plugin-path "${COMP_WORDS[i + 1]}") ;;
		esac
		case $w in
		-*) _porch_takes_arg "$porch" "$cmd" "$w" && skip=1 ;;
		=) ;;
		*) n=$((n + 1)) ;;
		esac
	done

	case $cmd in
	run|check|graph) _porch_files '*.xml' ;;
	replay)
		if [ "$n" -eq 0 ]; then _porch_files; else _porch_files '*.xml'; fi ;;
	reload) _porch_files ;;
	plugins)
		[ "$n" -eq 0 ] && COMPREPLY=($(compgen -W \
		    "$("$porch" plugins "${dirs[@]}" 2> /dev/null | awk '{ print $1 }')" -- "$cur")) ;;
	*) _porch_files ;;
	esac
	return 0
}
complete -F _porch porch
