#!/bin/sh
# Run `make bench` and put its output, dated, into README.md between the
# bench markers, so that the README shows exactly what the benchmark prints.
set -eu
out=$(mktemp)
trap 'rm -f "$out" "$out.md"' EXIT
${MAKE:-make} -s bench >"$out"
{
    echo "<!-- bench:begin (scripts/bench_readme.sh writes this block) -->"
    echo "\`make bench\` on $(date -u +%Y-%m-%d), $(nproc) cores, $(uname -m);"
    echo "a ratio is our time over the baseline's, measured in the same run"
    echo "(lower is better). Absolute figures move with the machine's load;"
    echo "the ratios are the ones to compare."
    echo
    echo '```'
    cat "$out"
    echo '```'
    echo "<!-- bench:end -->"
} >"$out.md"
awk -v block="$out.md" '
    /<!-- bench:begin/ { while ((getline line < block) > 0) print line; skip = 1; next }
    /<!-- bench:end/   { skip = 0; next }
    !skip
' README.md >README.md.tmp
mv README.md.tmp README.md
echo "README.md: benchmark block updated"
