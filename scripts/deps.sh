#!/bin/sh
# Install the Debian packages libsegidx tests with, if missing.
# As root with apt-get it installs them; otherwise it prints the command.
# Usage: scripts/deps.sh [extra-package ...]
# Extra names may carry an architecture (libcmocka-dev:armhf).
#
# A package counts as installed when dpkg reports "install ok installed"
# for any of its architectures. apt-get runs only when something is
# missing: `apt-get update` first (a partial failure of it, one mirror
# out of reach, is only a warning), then the install, tried once more
# after a second update if it fails.
set -eu

packages="libroaring-dev libxxhash-dev libcmocka-dev liblmdb-dev libpq-dev postgresql \
          libcurl4-openssl-dev pkg-config $*"

# dpkg-query prints the format once per installed architecture of the
# package, so each status gets a line of its own.
installed() {
    dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -qx 'install ok installed'
}

find_missing() {
    missing=""
    if command -v dpkg-query >/dev/null 2>&1; then
        for p in $packages; do
            installed "$p" || missing="$missing $p"
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
}

find_missing
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    # Another apt run (a second build) holds the lock for a while: wait.
    apt="apt-get -o DPkg::Lock::Timeout=300"
    for try in 1 2; do
        $apt update -qq || echo "deps: apt-get update failed (try $try); installing anyway" >&2
        # shellcheck disable=SC2086
        if $apt install -y -qq --no-install-recommends $missing; then
            break
        fi
        echo "deps: apt-get install failed (try $try)" >&2
    done
    find_missing
    [ -z "$missing" ] && exit 0
    echo "deps: still missing$missing" >&2
    exit 1
fi

echo "deps: missing$missing; install them with:" >&2
echo "    sudo apt-get install -y$missing" >&2
exit 1
