#!/bin/sh
# Build CRoaring from its source into OUT/libroaring.a, with its headers in
# OUT/include/roaring: every src/**/*.c compiled by $CC, no cmake. Flags as
# libsegidx's own objects: C11, $CFLAGS, position-independent (the archive
# may go into a shared library) and hidden (such a library then exports
# no roaring_* symbol). No -march: the archive runs on any CPU of the
# target, as Debian's libroaring does.
# Usage: CC=... AR=... CFLAGS=... scripts/static_roaring.sh SRC OUT
set -eu

src=$1 out=$2
cc=${CC:-cc}
ar=${AR:-ar}
[ -f "$src/src/roaring.c" ] && [ -f "$src/include/roaring/roaring.h" ] || {
    echo "static-roaring: $src is not a CRoaring source tree (no src/roaring.c)" >&2
    exit 1
}

rm -rf "$out/obj" "$out/include" "$out/libroaring.a"
mkdir -p "$out/obj" "$out/include"
cp -R "$src/include/roaring" "$out/include/"

# Two compilers at a time; a file's object is named for its path.
export cc out src CFLAGS
# shellcheck disable=SC2016
(cd "$src" && find src -name '*.c' | sort) | xargs -P "${JOBS:-2}" -I{} sh -c '
    o=$(echo "{}" | tr / _); o=${o%.c}.o
    # shellcheck disable=SC2086
    $cc -std=c11 ${CFLAGS:--O2 -g} -fPIC -fvisibility=hidden -I"$src/include" \
        -c "$src/{}" -o "$out/obj/$o"' || {
    echo "static-roaring: compiling $src failed" >&2
    exit 1
}
"$ar" rcs "$out/libroaring.a" "$out"/obj/*.o
echo "static-roaring: $out/libroaring.a ($(ls "$out"/obj/*.o | wc -l) objects, $cc)"
