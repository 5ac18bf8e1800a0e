#!/bin/sh
# The segidx command end to end: a small demo, then every subcommand on what
# it wrote (ls, inspect, verify, get, dump, stats, check, gc, backup,
# compact) with every JSON output parsed, check against missing, wrong and
# damaged segments, bad files and bad arguments, which must fail with
# exactly 1 (a failure) or 2 (a usage error), never a signal, and --help
# for the command and each subcommand.
# Usage: sh tests/cli_test.sh [path/to/segidx]
set -eu

bin=${1:-build/segidx}
case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
passed=0 failed=0

ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "cli: FAIL: $*" >&2; }

# expect CODE NAME command...: the command exits with CODE; its output is
# kept in $tmp/out and $tmp/err.
expect() {
    want=$1 name=$2
    shift 2
    set +e
    "$@" >"$tmp/out" 2>"$tmp/err"
    got=$?
    set -e
    if [ "$got" = "$want" ]; then ok; else
        bad "$name: exit $got, want $want"; sed 's/^/    /' "$tmp/err" >&2; fi
}
# has NAME PATTERN: $tmp/out holds PATTERN.
has() {
    if grep -q -- "$2" "$tmp/out"; then ok; else bad "$1: no '$2' in the output"; fi
}
# err_has NAME TEXT: $tmp/err holds TEXT (fixed, e.g. a path).
err_has() {
    if grep -q -F -- "$2" "$tmp/err"; then ok; else
        bad "$1: no '$2' on stderr, got:"; cat "$tmp/err" >&2; fi
}
# no_err NAME: nothing on stderr.
no_err() {
    if [ -s "$tmp/err" ]; then bad "$1: wrote to stderr:"; cat "$tmp/err" >&2; else ok; fi
}
# one_line NAME: stderr is one line starting "segidx: ".
one_line() {
    if [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q '^segidx: ' "$tmp/err"; then ok; else
        bad "$1: want one 'segidx: ...' line on stderr, got:"; cat "$tmp/err" >&2; fi
}
# usage_error NAME: stderr is "segidx: ..." and the hint, stdout is empty.
usage_error() {
    if [ "$(wc -l <"$tmp/err")" -eq 2 ] && head -n 1 "$tmp/err" | grep -q '^segidx: ' &&
        tail -n 1 "$tmp/err" | grep -q -- '--help for usage)$' && [ ! -s "$tmp/out" ]; then ok
    else bad "$1: want 'segidx: ...' and the hint on stderr, got:"; cat "$tmp/err" >&2; fi
}
# json NAME: $tmp/out is one valid JSON document.
if command -v python3 >/dev/null 2>&1; then have_python=1; else
    have_python=0; echo "cli: no python3: JSON outputs are not parsed" >&2; fi
json() {
    [ "$have_python" = 1 ] || return 0
    if python3 -m json.tool <"$tmp/out" >/dev/null 2>&1; then ok; else
        bad "$1: not one JSON document:"; head -c 400 "$tmp/out" >&2; fi
}
# exists NAME FILE, gone NAME FILE
exists() { if [ -e "$2" ]; then ok; else bad "$1: $2 is gone"; fi; }
gone() { if [ -e "$2" ]; then bad "$1: $2 is still there"; else ok; fi; }
# A time as the command shows it: ISO-8601 UTC.
utc='[0-9]\{4\}-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]Z'
# A time long past, for touch -t: older than any grace period we ask for.
long_ago=200001010000

d=$tmp/demo
# --opt=value and --opt value alike.
expect 0 demo "$bin" demo "$d" --volumes=3 --commits=40 --pages 16 --reads 2000 --seed 7
has demo 'all 2000 reads checked: ok'
has demo 'index bytes/page'
expect 1 "demo into a used DIR" "$bin" demo "$d" --commits 2
one_line "demo into a used DIR"

expect 0 ls "$bin" ls "$d"
vid=$(awk 'NR == 2 { print $1 }' "$tmp/out")
if [ "${#vid}" = 32 ]; then ok; else bad "ls: no vid in the listing"; fi
has ls ' 40 '
has ls "  $utc\$"
expect 0 "ls --json" "$bin" ls "$d" --json
has "ls --json" '"last_offset"'
has "ls --json" "\"last_commit_utc\": \"$utc\""
json "ls --json"
expect 0 "ls DIR VID" "$bin" ls "$d" "$vid"
has "ls DIR VID" "volume $vid: lsn 40"
has "ls DIR VID" "last_commit $utc"
# changed: what commit 40 wrote is what `ls DIR VID` says it wrote.
pages40=$(awk '$1 == 40 { n += $3 } END { print n + 0 }' "$tmp/out")
expect 0 "changed 39 40" "$bin" changed "$d" "$vid" 39 40
has "changed 39 40" "^$pages40 offsets written in (39, 40]"
expect 0 "changed from the head" "$bin" changed "$d" "$vid" 40
has "changed from the head" '^0 offsets written in (40, 40]'
expect 0 "changed --json" "$bin" changed "$d" "$vid" 0 --json
has "changed --json" '"runs": \[\['
json "changed --json"
expect 2 "changed, TO below FROM" "$bin" changed "$d" "$vid" 5 3
expect 2 "changed, bad vid" "$bin" changed "$d" nothex 1
expect 2 "changed, no FROM" "$bin" changed "$d" "$vid"
expect 1 "changed, unknown volume" "$bin" changed "$d" 0123456789abcdef0123456789abcdef 0
one_line "changed, unknown volume"
expect 0 "ls DIR VID --json" "$bin" ls "$d" "$vid" --json
has "ls DIR VID --json" '"commits"'
json "ls DIR VID --json"

set -- "$d"/segments/*.seg
seg=$1 nseg=$#
expect 0 inspect "$bin" inspect "$seg"
has inspect 'pages: ok'
has inspect 'encoding '
off=$(sed -n 's/.*offsets [0-9]* (\([0-9]*\)\.\..*/\1/p' "$tmp/out" | head -n 1)
svid=$(sed -n 's/^volume \([0-9a-f]*\)$/\1/p' "$tmp/out" | head -n 1)
if [ -n "$off" ] && [ "${#svid}" = 32 ]; then ok; else bad "inspect: no volume line"; fi
expect 0 "inspect --json" "$bin" inspect "$seg" --json
has "inspect --json" '"rlsn_width"'
json "inspect --json"

expect 0 verify "$bin" verify "$d"/segments/*.seg
if [ "$(grep -c '^OK ' "$tmp/out")" = "$nseg" ]; then ok; else
    bad "verify: not one OK line per segment"; fi
expect 0 "verify --json" "$bin" verify --json "$d"/segments/*.seg
has "verify --json" '"failed": 0'
json "verify --json"

expect 0 get "$bin" get "$seg" "$svid" "$off"
has get '^lsn '
at=$(sed -n 's/^bytes *\([0-9]*\)\.\..*/\1/p' "$tmp/out")
if [ -n "$at" ]; then ok; else bad "get: no byte range"; at=64; fi
expect 0 "get --hex" "$bin" get "$seg" "$svid" "$off" --hex
has "get --hex" "segidx demo: vol"
expect 0 "get --index" "$bin" get --index "$d" "$svid" "$off"
has "get --index" '^sid '
expect 0 "get --index at LSN" "$bin" get --index "$d" "$svid" "$off" 40
expect 0 "get --json" "$bin" get --json "$seg" "$svid" "$off"
has "get --json" "\"vid\": \"$svid\""
json "get --json"
expect 0 "get --index --json --hex" "$bin" get "$svid" --index="$d" "$off" --json --hex
has "get --index --json --hex" '"page_hex": "7365676964782064656d6f'
json "get --index --json --hex"
expect 1 "get: offset not in segment" "$bin" get "$seg" "$svid" 4000000000
one_line "get: offset not in segment"
expect 1 "get --index: unknown volume" "$bin" get --index "$d" 0123456789abcdef0123456789abcdef 0
one_line "get --index: unknown volume"

# Bad files: each must fail with exactly 1, one line naming the file.
: >"$tmp/empty.seg"
size=$(wc -c <"$seg")
head -c $((size / 2)) "$seg" >"$tmp/truncated.seg"
head -c $((size - 1)) "$seg" >"$tmp/short.seg"
cp "$seg" "$tmp/flipped.seg"
# flip FILE POS: replace the byte at POS with its complement.
flip() {
    byte=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
    # shellcheck disable=SC2059
    printf "\\$(printf %o $((255 - byte)))" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}
# One byte of the page get found above, and one near the end (the index).
flip "$tmp/flipped.seg" $((at + 100))
cp "$seg" "$tmp/flipped_tail.seg"
flip "$tmp/flipped_tail.seg" $((size - 100))
if cmp -s "$seg" "$tmp/flipped.seg" || cmp -s "$seg" "$tmp/flipped_tail.seg"; then
    bad "flip changed nothing"; else ok; fi
head -c 4096 /dev/urandom >"$tmp/random.seg"
for f in empty truncated short flipped flipped_tail random missing; do
    expect 1 "verify $f" "$bin" verify "$tmp/$f.seg"
    has "verify $f" "^FAIL $tmp/$f.seg: "
    expect 1 "verify --json $f" "$bin" verify --json "$tmp/$f.seg"
    json "verify --json $f"
    expect 1 "inspect $f" "$bin" inspect "$tmp/$f.seg"
    if grep -q "$tmp/$f.seg" "$tmp/err"; then ok; else bad "inspect $f: error names no file"; fi
    expect 1 "get $f" "$bin" get "$tmp/$f.seg" "$svid" "$off"
    one_line "get $f"
done
expect 1 "verify good and bad" "$bin" verify "$seg" "$tmp/flipped.seg"
has "verify good and bad" "^OK $seg"
has "verify good and bad" "^FAIL $tmp/flipped.seg"
expect 1 "ls no index" "$bin" ls "$tmp/nowhere"
one_line "ls no index"
if [ ! -e "$tmp/nowhere" ]; then ok; else bad "ls created the directory it was asked about"; fi


# `--` ends the options: what follows is positional, however it looks.
cp "$seg" "$tmp/--odd.seg"
cd "$tmp"
expect 0 "verify -- --odd.seg" "$bin" verify -- --odd.seg
has "verify -- --odd.seg" '^OK --odd.seg$'
cd - >/dev/null
expect 2 "ls -- DIR --json" "$bin" ls -- "$d" --json
usage_error "ls -- DIR --json"

# dump: a header and a line per page version; a damaged page is marked.
expect 0 "inspect, for dump" "$bin" inspect "$seg"
pages=$(sed -n 's/^pages  *\([0-9][0-9]*\)$/\1/p' "$tmp/out")
expect 0 dump "$bin" dump "$seg"
if [ "$(wc -l <"$tmp/out")" = $((pages + 1)) ]; then ok; else bad "dump: not one line per page"; fi
if [ "$(grep -c ' ok$' "$tmp/out")" = "$pages" ]; then ok; else bad "dump: a page not ok"; fi
has dump "^$svid  *$off  "
expect 0 "dump --json" "$bin" dump "$seg" --json
has "dump --json" '"damaged": 0'
json "dump --json"
expect 1 "dump flipped" "$bin" dump "$tmp/flipped.seg"
has "dump flipped" ' DAMAGED$'
one_line "dump flipped"
err_has "dump flipped" "$tmp/flipped.seg"
expect 1 "dump --json flipped" "$bin" dump --json "$tmp/flipped.seg"
has "dump --json flipped" '"damaged": 1'
json "dump --json flipped"
expect 1 "dump flipped_tail" "$bin" dump "$tmp/flipped_tail.seg"
one_line "dump flipped_tail"

# stats
expect 0 stats "$bin" stats "$d"
has stats '^volumes  *3$'
has stats '^segments referenced  *[1-9][0-9]* (0 missing)$'
has stats '^unreferenced files  *0, 0 bytes$'
has stats "  $utc\$"
expect 0 "stats --json" "$bin" stats --json "$d"
has "stats --json" '"segments_missing": 0'
has "stats --json" "\"last_commit_utc\": \"$utc\""
json "stats --json"

# check: consistent, then one spoiled copy of the demo's directory per
# problem, each named with its file.
expect 0 check "$bin" check "$d"
has check 'consistent$'
has check '^commits  *120 '
expect 0 "check --json" "$bin" check "$d" --json
has "check --json" '"ok": true'
json "check --json"

segname=$(basename "$seg")
copy_demo() { rm -rf "${tmp:?}/$1"; cp -R "$d" "$tmp/$1"; }

copy_demo missing
rm "$tmp/missing/segments/$segname"
expect 1 "check, a segment missing" "$bin" check "$tmp/missing"
one_line "check, a segment missing"
err_has "check, a segment missing" "$tmp/missing/segments/$segname: missing"
expect 1 "check --json, a segment missing" "$bin" check --json "$tmp/missing"
has "check --json, a segment missing" '"ok": false'
json "check --json, a segment missing"

# The same seed with fewer commits writes the same vids and sids, its
# first segment holding only the first commits: a segment under the right
# name that lacks pages the later entries name.
expect 0 "demo, fewer commits" "$bin" demo "$tmp/fewer" --volumes 3 --commits 10 --pages 16 \
    --reads 0 --seed 7
set -- "$tmp"/fewer/segments/*.seg
first=$(basename "$1")
exists "demo, fewer commits: the same first sid" "$d/segments/$first"
copy_demo lacking
cp "$tmp/fewer/segments/$first" "$tmp/lacking/segments/$first"
expect 1 "check, a page lacking" "$bin" check "$tmp/lacking"
one_line "check, a page lacking"
err_has "check, a page lacking" "$tmp/lacking/segments/$first: lacks volume "

copy_demo damaged
flip "$tmp/damaged/segments/$segname" $((at + 100))
expect 1 "check, a damaged page" "$bin" check "$tmp/damaged"
one_line "check, a damaged page"
err_has "check, a damaged page" "$tmp/damaged/segments/$segname: page "
err_has "check, a damaged page" "damaged"

# gc: never a referenced file; an unreferenced one (a segment under a fresh
# sid, a temporary file) only once older than the grace period.
copy_demo gc
g=$tmp/gc/segments
expect 0 "gc --grace 0" "$bin" gc --grace 0 "$tmp/gc"
has "gc --grace 0" '^deleted  *0 segments, 0 temporary files'
exists "gc --grace 0" "$g/$segname"
expect 0 "check after gc --grace 0" "$bin" check "$tmp/gc"
sid=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
cp "$seg" "$g/$sid.seg"
echo partial >"$g/$sid.seg.tmp"
echo notes >"$g/NOTES"
expect 0 "gc, young files" "$bin" gc "$tmp/gc"
has "gc, young files" '^kept  *1 referenced, 2 younger than the grace period (3600 s), 1 not ours'
exists "gc, young segment" "$g/$sid.seg"
exists "gc, young tmp" "$g/$sid.seg.tmp"
touch -t "$long_ago" "$g/$sid.seg" "$g/$sid.seg.tmp" "$g/NOTES" "$g/$segname"
expect 0 "gc, a grace longer than their age" "$bin" gc --grace=2000000000 "$tmp/gc"
exists "gc, a grace longer than their age" "$g/$sid.seg"
expect 0 "stats, an unreferenced file" "$bin" stats "$tmp/gc"
has "stats, an unreferenced file" '^unreferenced files  *1, '
has "stats, an unreferenced file" '^temporary files  *1, '
expect 0 "gc --dry-run" "$bin" gc --dry-run "$tmp/gc"
has "gc --dry-run" "^would delete $g/$sid.seg ("
has "gc --dry-run" "^would delete $g/$sid.seg.tmp ("
exists "gc --dry-run" "$g/$sid.seg"
expect 0 "gc --json" "$bin" gc "$tmp/gc" --json
has "gc --json" '"deleted_segments": 1'
has "gc --json" '"deleted_tmp": 1'
json "gc --json"
gone "gc, an old segment" "$g/$sid.seg"
gone "gc, an old tmp" "$g/$sid.seg.tmp"
exists "gc, not ours" "$g/NOTES"
exists "gc, referenced" "$g/$segname"
expect 0 "check after gc" "$bin" check "$tmp/gc"
# A writer that died before its first segment left an index and no
# segments directory: nothing to collect, not an error.
copy_demo noseg
rm -r "$tmp/noseg/segments"
expect 0 "gc, no segments directory" "$bin" gc --grace 0 "$tmp/noseg"
has "gc, no segments directory" '^deleted  *0 segments, 0 temporary files'
expect 0 "stats, no segments directory" "$bin" stats "$tmp/noseg"

# backup: a copy that checks; never over an index.
expect 0 backup "$bin" backup "$d" "$tmp/bk"
has backup "^segments  *$nseg "
expect 0 "check the backup" "$bin" check "$tmp/bk"
expect 1 "backup onto an index" "$bin" backup "$d" "$tmp/bk"
one_line "backup onto an index"
err_has "backup onto an index" "$tmp/bk/index"
expect 0 "backup --copy" "$bin" backup --copy "$d" "$tmp/bk2"
has "backup --copy" '(0 linked, '
expect 0 "check the copied backup" "$bin" check "$tmp/bk2"
expect 1 "backup of nothing" "$bin" backup "$tmp/nowhere" "$tmp/bk3"
one_line "backup of nothing"

# compact: the same bytes for the same reads before, after, and after gc
# has deleted what it replaced. pages_of DIR prints some pages of every
# volume at two LSNs as `get --index --hex` shows them, less the file
# offsets, which move.
vids=$("$bin" ls "$d" | awk 'NR > 1 { print $1 }')
pages_of() {
    for v in $vids; do
        for o in 0 2 "$off"; do
            for l in 20 40; do
                echo "== $v $o $l"
                if "$bin" get --index "$1" "$v" "$o" "$l" --hex >"$tmp/page" 2>/dev/null; then
                    awk '/\|/ { $1 = ""; print }' "$tmp/page"
                else
                    echo "no page"
                fi
            done
        done
    done
}
copy_demo compact
k=$tmp/compact
pages_of "$k" >"$tmp/pages.before"
if grep -q '|segidx demo: vol' "$tmp/pages.before"; then ok; else bad "compact: no page read"; fi
# Aged, so that only the compaction's touch keeps gc from it.
touch -t "$long_ago" "$k/segments/$segname"
expect 0 "compact --dry-run" "$bin" compact --dry-run "$k"
has "compact --dry-run" "would replace $k/segments/$segname"
has "compact --dry-run" '^dry run: '
set -- "$k"/segments/*
if [ $# = "$nseg" ]; then ok; else bad "compact --dry-run wrote"; fi
expect 0 compact "$bin" compact "$k" --small-bytes=4194304 --max-input-bytes 268435456
has compact '^total: .* 120 commits re-pointed'
expect 0 "check after compact" "$bin" check "$k"
pages_of "$k" >"$tmp/pages.after"
if cmp -s "$tmp/pages.before" "$tmp/pages.after"; then ok; else
    bad "compact: pages differ"; fi
expect 0 "gc after compact" "$bin" gc "$k"
exists "gc after compact: touched by it" "$k/segments/$segname"
expect 0 "gc --grace 0 after compact" "$bin" gc --grace 0 "$k"
has "gc --grace 0 after compact" "^deleted $k/segments/$segname "
gone "gc --grace 0 after compact" "$k/segments/$segname"
expect 0 "check after compact and gc" "$bin" check "$k"
pages_of "$k" >"$tmp/pages.gc"
if cmp -s "$tmp/pages.before" "$tmp/pages.gc"; then ok; else
    bad "compact and gc: pages differ"; fi
# Another segment's bytes under a referenced name.
set -- "$k"/segments/*.seg
cp "$1" "$2"
expect 1 "check, another segment's bytes" "$bin" check "$k"
one_line "check, another segment's bytes"
err_has "check, another segment's bytes" "$2: holds segment "

# Commands on a directory that holds no index fail, and make nothing; an
# index directory without a store is not an empty index to gc.
for c in check stats gc compact; do
    expect 1 "$c, no index" "$bin" "$c" "$tmp/nowhere"
    one_line "$c, no index"
done
gone "a command made the directory it was asked about" "$tmp/nowhere"
mkdir -p "$tmp/noindex/index" "$tmp/noindex/segments"
cp "$seg" "$tmp/noindex/segments/"
expect 1 "gc, an index without a store" "$bin" gc --grace 0 "$tmp/noindex"
exists "gc, an index without a store" "$tmp/noindex/segments/$segname"
gone "gc made a store" "$tmp/noindex/index/data.mdb"

# --help, -h and `help COMMAND`: the usage on standard output, exit 0.
commands="demo inspect verify dump get ls changed check stats backup gc compact kvcheck bench help version"
for c in $commands; do
    for how in "$c --help" "$c -h" "help $c"; do
        # shellcheck disable=SC2086
        expect 0 "$how" "$bin" $how
        has "$how" "^usage: segidx $c"
        no_err "$how"
    done
done
for how in --help -h help; do
    expect 0 "segidx $how" "$bin" "$how"
    has "segidx $how" '^usage: segidx COMMAND'
    for c in $commands; do has "segidx $how lists $c" "^  $c  "; done
    no_err "segidx $how"
done
expect 2 "no arguments" "$bin"
if grep -q '^usage: segidx COMMAND' "$tmp/err" && [ ! -s "$tmp/out" ]; then ok; else
    bad "no arguments: want the usage on stderr only"; fi
expect 2 "unknown command" "$bin" frobnicate
err_has "unknown command" 'segidx: unknown command: frobnicate'
expect 2 "help, unknown command" "$bin" help frobnicate
usage_error "help, unknown command"
expect 2 "unknown option" "$bin" --frobnicate
usage_error "unknown option"

# Usage errors: exactly 2, one line and the hint.
expect 2 "inspect, no file" "$bin" inspect
usage_error "inspect, no file"
expect 2 "inspect, unknown option" "$bin" inspect "$seg" --yaml
usage_error "inspect, unknown option"
err_has "inspect, unknown option" 'segidx: inspect: unknown option --yaml'
expect 2 "ls, a value for --json" "$bin" ls "$d" --json=yes
usage_error "ls, a value for --json"
err_has "ls, a value for --json" 'option --json takes no value'
expect 2 "verify, no file" "$bin" verify
expect 2 "get, short" "$bin" get "$seg" "$svid"
expect 2 "get, bad vid" "$bin" get "$seg" xyz 1
expect 2 "get, bad offset" "$bin" get "$seg" "$svid" -1
expect 2 "get, offset too big" "$bin" get "$seg" "$svid" 4294967296
expect 2 "get, lsn 0" "$bin" get "$seg" "$svid" 1 0
expect 2 "get --index, no value" "$bin" get --index
usage_error "get --index, no value"
err_has "get --index, no value" '--index needs a value'
expect 2 "ls, no dir" "$bin" ls
expect 2 "ls, bad vid" "$bin" ls "$d" nothex
expect 2 "dump, no file" "$bin" dump
expect 2 "dump, two files" "$bin" dump "$seg" "$seg"
expect 2 "check, no dir" "$bin" check
usage_error "check, no dir"
expect 2 "stats, two dirs" "$bin" stats "$d" "$d"
expect 2 "backup, no dest" "$bin" backup "$d"
expect 2 "gc, grace not a number" "$bin" gc "$d" --grace soon
usage_error "gc, grace not a number"
expect 2 "gc, grace missing" "$bin" gc "$d" --grace
usage_error "gc, grace missing"
expect 2 "gc, negative grace" "$bin" gc "$d" --grace=-1
expect 2 "compact, small-bytes 0" "$bin" compact "$d" --small-bytes 0
usage_error "compact, small-bytes 0"
expect 2 "compact, unknown option" "$bin" compact "$d" --now
expect 2 "bench, an argument" "$bin" bench now
expect 2 "version, an argument" "$bin" version 1
expect 2 "demo, bad count" "$bin" demo "$tmp/d2" --volumes 0
usage_error "demo, bad count"
expect 2 "demo, missing value" "$bin" demo "$tmp/d2" --reads
gone "demo, a usage error made its DIR" "$tmp/d2"
# kvcheck: the conformance suite over the bundled stores; a store in use
# is refused before anything is written.
expect 0 kvcheck "$bin" kvcheck
no_err kvcheck
if [ "$(grep -c ' holds ' "$tmp/out")" -eq 24 ]; then ok; else bad "kvcheck: want 24 rules held"; cat "$tmp/out" >&2; fi
has kvcheck '^lmdb   expect-race   holds'
expect 0 "kvcheck --json" "$bin" kvcheck --store=mem --json
json "kvcheck --json"
has "kvcheck --json" '"rule": "snapshot", "status": "holds"'
expect 1 "kvcheck, an index in use" "$bin" kvcheck --store lmdb --lmdb "$d/index"
has "kvcheck, an index in use" 'lmdb   empty  *BROKEN  the store is not empty'
expect 0 "kvcheck, the index left alone" "$bin" check "$d"
expect 2 "kvcheck, unknown store" "$bin" kvcheck --store=rocks
usage_error "kvcheck, unknown store"
expect 2 "kvcheck, an argument" "$bin" kvcheck now
expect 2 "kvcheck, pg without a server" "$bin" kvcheck --store=pg
usage_error "kvcheck, pg without a server"
expect 1 "kvcheck, no PostgreSQL there" "$bin" kvcheck --store=pg \
    --pg "host=127.0.0.1 port=1 connect_timeout=5"
one_line "kvcheck, no PostgreSQL there"
err_has "kvcheck, no PostgreSQL there" "Connection refused"
expect 2 "kvcheck, a bad table name" "$bin" kvcheck --store=pg --pg "host=127.0.0.1 port=1" \
    --pg-table "Bad Name"
expect 0 --version "$bin" --version
has --version '^[0-9]*\.[0-9]*\.[0-9]*$'
expect 0 version "$bin" version
has version '^[0-9]*\.[0-9]*\.[0-9]*$'

echo "cli: $passed passed, $failed failed"
[ "$failed" = 0 ]
