# shellcheck shell=bash
# Process identity for the shell scripts (sourced): a pid names a process only while it lives — a
# busy host wraps its 32768 pids in a minute or two — so a pid kept in a file is checked against
# the start time kept beside it before anything is signalled. Killing stale pids by number once
# took another test's etcd down.

# When process $1 started (field 22 of /proc/PID/stat, after the "(comm)" that may hold spaces).
proc_start() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) }
    # shellcheck disable=SC2086
    set -- $s
    echo "${20}"
}

# SIGKILLs each "pid start-time" line of file $1 whose process is still that one.
proc_kill_listed() {
    local p s
    [ -f "$1" ] || return 0
    while read -r p s; do
        [ -n "$s" ] && [ "$(proc_start "$p")" = "$s" ] && kill -KILL "$p" 2>/dev/null
    done <"$1"
    return 0
}
