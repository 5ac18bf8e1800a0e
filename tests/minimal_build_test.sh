#!/bin/sh
# `make` and `make install` of the library where LMDB, libpq, cmocka and the
# package tools are out of reach: a compiler that finds none of their
# headers or libraries, and apt-get, dpkg-query and sudo that only record
# that they were called. The library must build and install, the adapters
# and the command be left out with a message, and no package tool run.
# Usage: tests/minimal_build_test.sh   (from the top of the tree)
set -eu

# The real compiler by its path: the fake tools come first in PATH.
real_cc=$(command -v "${CC:-cc}") || { echo "minimal_build_test: no ${CC:-cc}" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin"

for tool in apt-get apt dpkg-query dpkg sudo; do
    cat >"$tmp/bin/$tool" <<TOOL
#!/bin/sh
echo "$tool \$*" >>"$tmp/calls"
exit 1
TOOL
    chmod +x "$tmp/bin/$tool"
done

# The compiler: as if lmdb.h, libpq-fe.h and cmocka.h and their libraries
# were not installed.
cat >"$tmp/bin/cc" <<CC
#!/bin/sh
hidden='#include <(lmdb|libpq-fe|cmocka)\.h>'
for a in "\$@"; do
    case \$a in
    -llmdb|-lpq|-lcmocka) echo "ld: cannot find \$a" >&2; exit 1 ;;
    *.c|*.h) if grep -Eq "\$hidden" "\$a" 2>/dev/null; then
                 echo "\$a: fatal error: a header is missing" >&2; exit 1
             fi ;;
    -) src=\$(mktemp); cat >"\$src"
       if grep -Eq "\$hidden" "\$src"; then
           rm -f "\$src"; echo "<stdin>: fatal error: a header is missing" >&2; exit 1
       fi
       "$real_cc" "\$@" <"\$src"; rc=\$?; rm -f "\$src"; exit \$rc ;;
    esac
done
exec "$real_cc" "\$@"
CC
chmod +x "$tmp/bin/cc"

fail() { echo "minimal_build_test: $*" >&2; exit 1; }

# Only the environment of a bare machine: no CI, no flags of the caller's.
run_make() {
    env -u CI -u WERROR -u MAKEFLAGS -u MFLAGS PATH="$tmp/bin:$PATH" \
        ${MAKE:-make} --no-print-directory CC="$tmp/bin/cc" BUILD="$tmp/build" "$@"
}
run_make -j2 WERROR=1 >"$tmp/make.log" 2>&1 || { cat "$tmp/make.log"; fail "make failed"; }
run_make install DESTDIR="$tmp/root" PREFIX=/usr >>"$tmp/make.log" 2>&1 ||
    { cat "$tmp/make.log"; fail "make install failed"; }

root=$tmp/root/usr
for f in lib/libsegidx.a lib/libsegidx.so lib/libsegidx.so.0 include/segidx.h \
         include/segidx_kvcheck.h lib/pkgconfig/libsegidx.pc; do
    [ -e "$root/$f" ] || fail "$f was not installed"
done
for f in lib/libsegidx_lmdb.a lib/libsegidx_pg.a include/segidx_lmdb.h include/segidx_pg.h \
         lib/pkgconfig/libsegidx_lmdb.pc bin/segidx; do
    [ ! -e "$root/$f" ] || fail "$f was installed without its dependency"
done
grep -q "libsegidx_lmdb left out" "$tmp/make.log" || fail "make did not say it left LMDB out"
grep -q "libsegidx_pg left out" "$tmp/make.log" || fail "make did not say it left libpq out"
[ ! -s "$tmp/calls" ] || { cat "$tmp/calls"; fail "a package tool was run"; }

# What was installed links: a program over the installed archive.
printf '#include <segidx.h>\nint main(void) { return segidx_version() == SEGIDX_VERSION_NUMBER ? 0 : 1; }\n' \
    >"$tmp/p.c"
"$real_cc" -I"$root/include" "$tmp/p.c" "$root/lib/libsegidx.a" -lroaring -pthread -o "$tmp/p" ||
    fail "a program does not link against the installed archive"
"$tmp/p" || fail "the program over the installed archive failed"
echo "minimal_build_test: make and make install without LMDB, libpq, cmocka or apt: the library alone, no package tool run"
