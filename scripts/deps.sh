#!/bin/sh
# Install the Debian packages libsegidx builds and tests with, if missing.
# As root with apt-get it installs them; otherwise it prints the command.
# Usage: scripts/deps.sh [extra-package ...]
set -eu

packages="libroaring-dev libxxhash-dev libcmocka-dev liblmdb-dev libpq-dev postgresql \
          libcurl4-openssl-dev pkg-config $*"

missing=""
if command -v dpkg-query >/dev/null 2>&1; then
    for p in $packages; do
        status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        [ "$status" = "install ok installed" ] || missing="$missing $p"
    done
else
    # Not Debian: look for the headers and tools themselves.
    cc=${CC:-cc}
    for pair in roaring/roaring.h:libroaring-dev xxhash.h:libxxhash-dev \
                cmocka.h:libcmocka-dev lmdb.h:liblmdb-dev libpq-fe.h:libpq-dev \
                curl/curl.h:libcurl4-openssl-dev; do
        header=${pair%%:*}
        printf '#include <stdarg.h>\n#include <stddef.h>\n#include <setjmp.h>\n#include <stdint.h>\n#include <%s>\n' "$header" |
            "$cc" -E -x c - >/dev/null 2>&1 || missing="$missing ${pair#*:}"
    done
    command -v pkg-config >/dev/null 2>&1 || missing="$missing pkg-config"
fi

[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
    exit 0
fi

echo "deps: missing$missing; install them with:" >&2
echo "    sudo apt-get install -y$missing" >&2
exit 1
