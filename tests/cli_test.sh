#!/bin/sh
# The segidx command end to end: a small demo, then ls, inspect, verify and
# get on what it wrote, then bad files and bad arguments, which must fail
# with exactly 1 (a failure) or 2 (a usage error), never a signal.
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
# one_line NAME: stderr is one line starting "segidx: ".
one_line() {
    if [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q '^segidx: ' "$tmp/err"; then ok; else
        bad "$1: want one 'segidx: ...' line on stderr, got:"; cat "$tmp/err" >&2; fi
}

d=$tmp/demo
expect 0 demo "$bin" demo "$d" --volumes 3 --commits 40 --pages 16 --reads 2000 --seed 7
has demo 'all 2000 reads checked: ok'
has demo 'index bytes/page'
expect 1 "demo into a used DIR" "$bin" demo "$d" --commits 2
one_line "demo into a used DIR"

expect 0 ls "$bin" ls "$d"
vid=$(awk 'NR == 2 { print $1 }' "$tmp/out")
if [ "${#vid}" = 32 ]; then ok; else bad "ls: no vid in the listing"; fi
has ls ' 40 '
expect 0 "ls --json" "$bin" ls "$d" --json
has "ls --json" '"last_offset"'
expect 0 "ls DIR VID" "$bin" ls "$d" "$vid"
has "ls DIR VID" "volume $vid: lsn 40"
expect 0 "ls DIR VID --json" "$bin" ls "$d" "$vid" --json
has "ls DIR VID --json" '"commits"'

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

expect 0 verify "$bin" verify "$d"/segments/*.seg
if [ "$(grep -c '^OK ' "$tmp/out")" = "$nseg" ]; then ok; else
    bad "verify: not one OK line per segment"; fi

expect 0 get "$bin" get "$seg" "$svid" "$off"
has get '^lsn '
at=$(sed -n 's/^bytes *\([0-9]*\)\.\..*/\1/p' "$tmp/out")
if [ -n "$at" ]; then ok; else bad "get: no byte range"; at=64; fi
expect 0 "get --hex" "$bin" get "$seg" "$svid" "$off" --hex
has "get --hex" "segidx demo: vol"
expect 0 "get --index" "$bin" get --index "$d" "$svid" "$off"
has "get --index" '^sid '
expect 0 "get --index at LSN" "$bin" get --index "$d" "$svid" "$off" 40
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

# Usage errors: exactly 2.
expect 2 "no arguments" "$bin"
expect 0 "--help" "$bin" --help
expect 0 help "$bin" help
expect 2 "unknown command" "$bin" frobnicate
expect 2 "inspect, no file" "$bin" inspect
expect 2 "inspect, unknown option" "$bin" inspect "$seg" --yaml
expect 2 "verify, no file" "$bin" verify
expect 2 "get, short" "$bin" get "$seg" "$svid"
expect 2 "get, bad vid" "$bin" get "$seg" xyz 1
expect 2 "get, bad offset" "$bin" get "$seg" "$svid" -1
expect 2 "get, offset too big" "$bin" get "$seg" "$svid" 4294967296
expect 2 "get, lsn 0" "$bin" get "$seg" "$svid" 1 0
expect 2 "get --index, no value" "$bin" get --index
expect 2 "ls, no dir" "$bin" ls
expect 2 "ls, bad vid" "$bin" ls "$d" nothex
expect 2 "demo, bad count" "$bin" demo "$tmp/d2" --volumes 0
expect 2 "demo, missing value" "$bin" demo "$tmp/d2" --reads
expect 0 --version "$bin" --version
has --version '^[0-9]*\.[0-9]*\.[0-9]*$'

echo "cli: $passed passed, $failed failed"
[ "$failed" = 0 ]
