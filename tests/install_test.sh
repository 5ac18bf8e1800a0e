#!/bin/sh
# Install into temporary DESTDIRs and build every example against them using
# nothing but pkg-config (libsegidx_lmdb, which brings libsegidx): once
# linked shared, once static (only the archives installed); and a small
# program against libsegidx_pg the same two ways. Then one example with
# libsegidx.a named by its path over the full install, as the README's
# Embedding section shows. Then uninstall. (The fully static line:
# tests/static_test.sh.)
set -eu

make=${MAKE:-make}
cc=${CC:-cc}
prefix=/opt/libsegidx-install-test
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

build_examples() { # mode root pkg-config-args...
    mode=$1 root=$2
    shift 2
    for ex in examples/*.c; do
        name=$(basename "$ex" .c)
        bin="$tmp/$name-$mode"
        # The S3 example also links libcurl (shared in both modes: what is
        # checked is how libsegidx is linked) and needs a server to run:
        # tests/s3_test.sh runs it.
        case $name in
        s3_example) curl=$(pkg-config --cflags --libs libcurl) standalone=no ;;
        *) curl= standalone=yes ;;
        esac
        # shellcheck disable=SC2046,SC2086
        PKG_CONFIG_PATH="$root$prefix/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$root" \
            "$cc" -std=c11 -Wall -Wextra -Werror "$ex" -o "$bin" \
            $(PKG_CONFIG_PATH="$root$prefix/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$root" \
              pkg-config "$@" --cflags --libs libsegidx_lmdb) $curl
        linked=$(readelf -d "$bin" | grep -c 'NEEDED.*libsegidx' || true)
        if [ "$mode" = shared ] && [ "$linked" = 0 ]; then
            echo "install-test: $name-shared does not load libsegidx.so" >&2; exit 1
        fi
        if [ "$mode" = static ] && [ "$linked" != 0 ]; then
            echo "install-test: $name-static still loads libsegidx.so" >&2; exit 1
        fi
        if [ "$standalone" = no ]; then
            echo "install-test: $name ($mode): built"
            continue
        fi
        mkdir -p "$bin.dir"
        LD_LIBRARY_PATH="$root$prefix/lib" "$bin" "$bin.dir" >"$bin.out" ||
            { cat "$bin.out"; echo "install-test: $name-$mode failed" >&2; exit 1; }
        echo "install-test: $name ($mode): $(tail -n 1 "$bin.out")"
    done
}

# libsegidx_pg: a program that opens a store where no server can be (a
# socket directory that does not exist): SEGIDX_EIO, with libpq's message.
cat >"$tmp/pg_check.c" <<'END'
#include <segidx_pg.h>
#include <stdio.h>
int main(void)
{
    char msg[256];
    segidx_kv_pg_options o = { 0 };
    o.open_error = msg;
    o.open_error_cap = sizeof msg;
    segidx_kv kv;
    int rc = segidx_kv_pg_open("host=/nonexistent-segidx-install-test", &o, &kv);
    if (rc != SEGIDX_EIO || !msg[0] || segidx_kv_pg_last_error(NULL, NULL, 0) != 0) {
        printf("unexpected: %s (%s)\n", segidx_strerror(rc), msg);
        return 1;
    }
    printf("no server: %s, as expected\n", segidx_strerror(rc));
    return 0;
}
END

build_pg() { # mode root pkg-config-args...
    mode=$1 root=$2
    shift 2
    bin="$tmp/pg_check-$mode"
    # shellcheck disable=SC2046
    PKG_CONFIG_PATH="$root$prefix/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$root" \
        "$cc" -std=c11 -Wall -Wextra -Werror "$tmp/pg_check.c" -o "$bin" \
        $(PKG_CONFIG_PATH="$root$prefix/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$root" \
          pkg-config "$@" --cflags --libs libsegidx_pg)
    linked=$(readelf -d "$bin" | grep -c 'NEEDED.*libsegidx_pg' || true)
    if [ "$mode" = shared ] && [ "$linked" = 0 ]; then
        echo "install-test: pg_check-shared does not load libsegidx_pg.so" >&2; exit 1
    fi
    if [ "$mode" = static ] && [ "$linked" != 0 ]; then
        echo "install-test: pg_check-static still loads libsegidx_pg.so" >&2; exit 1
    fi
    LD_LIBRARY_PATH="$root$prefix/lib" "$bin" >"$bin.out" ||
        { cat "$bin.out"; echo "install-test: pg_check-$mode failed" >&2; exit 1; }
    echo "install-test: libsegidx_pg ($mode): $(tail -n 1 "$bin.out")"
}

"$make" -s install DESTDIR="$tmp/shared" PREFIX="$prefix" >/dev/null
build_examples shared "$tmp/shared"
build_pg shared "$tmp/shared"

# Only the archive is there, so the linker cannot pick the shared library.
"$make" -s install-static install-includes install-pc DESTDIR="$tmp/static" \
    PREFIX="$prefix" >/dev/null
build_examples static "$tmp/static" --static
build_pg static "$tmp/static" --static

# Over the full install, pkg-config --static would still let the linker
# pick libsegidx.so; the README's line names the archive by its path.
root=$tmp/shared
bin=$tmp/embed_offset_set-archive
# shellcheck disable=SC2046
"$cc" -std=c11 -Wall -Wextra -Werror examples/embed_offset_set.c -o "$bin" \
    $(PKG_CONFIG_PATH="$root$prefix/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$root" \
      pkg-config --cflags libsegidx) "$root$prefix/lib/libsegidx.a" -lroaring -pthread
if readelf -d "$bin" | grep -q 'NEEDED.*libsegidx'; then
    echo "install-test: embed_offset_set-archive still loads libsegidx.so" >&2; exit 1
fi
"$bin" >"$bin.out" || { cat "$bin.out"; echo "install-test: embed_offset_set-archive failed" >&2; exit 1; }
echo "install-test: embed_offset_set (archive by path, full install): $(tail -n 1 "$bin.out")"

"$make" -s uninstall DESTDIR="$tmp/shared" PREFIX="$prefix" >/dev/null
left=$(find "$tmp/shared" -type f -o -type l)
if [ -n "$left" ]; then
    echo "install-test: uninstall left files behind:" >&2; echo "$left" >&2; exit 1
fi
echo "install-test: ok"
