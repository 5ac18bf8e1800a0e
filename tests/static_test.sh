#!/bin/sh
# A fully static program: tests/static_check.c linked with -static against
# libsegidx.a and the libroaring.a that `make static-roaring` builds from
# CRoaring's source (Debian ships no libroaring.a). It must have no
# dynamic section and no interpreter, and must run ($RUN runs it: empty
# natively, qemu-user for another architecture).
# Without CRoaring's source it skips with one line, or fails when CI is set.
# Usage: BUILD=... CC=... [RUN=...] [ROARING_SRC=...] tests/static_test.sh
set -eu

make=${MAKE:-make}
cc=${CC:-cc}
build=${BUILD:-build}
run=${RUN:-}

if [ -z "${ROARING_SRC:-}" ]; then
    if ! ROARING_SRC=$(sh scripts/debian_source.sh croaring build/src); then
        if [ -n "${CI:-}" ]; then
            echo "static-test: CRoaring's source cannot be had, and CI is set" >&2
            exit 1
        fi
        echo "static-test: skipped (CRoaring's source cannot be had; see above)"
        exit 0
    fi
fi
"$make" -s static-roaring "$build/libsegidx.a" ROARING_SRC="$ROARING_SRC" BUILD="$build" \
    CC="$cc" >/dev/null

bin=$build/tests/static_check
mkdir -p "$build/tests"
# shellcheck disable=SC2086
"$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror ${CFLAGS:-} -Iinclude tests/static_check.c \
    -o "$bin" -static "$build/libsegidx.a" "$build/roaring/libroaring.a" -pthread

if readelf -d "$bin" | grep -q 'Dynamic section' || readelf -l "$bin" | grep -q INTERP; then
    echo "static-test: $bin is not fully static:" >&2
    readelf -d "$bin" >&2
    exit 1
fi
# shellcheck disable=SC2086
out=$($run "$bin") || { echo "static-test: $bin failed" >&2; exit 1; }
echo "$out"
echo "static-test: ok ($(readelf -h "$bin" | sed -n 's/^ *Machine: *//p'), no dynamic section)"
