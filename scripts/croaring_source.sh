#!/bin/sh
# Unpack CRoaring's source (Debian's source package `croaring`, the
# version apt offers, normally the one whose headers are installed) under
# DEST and print the directory it is in. The .orig tarball is all that is
# used. Without a deb-src entry, and as root, one for the running Debian
# release is added in /etc/apt/sources.list.d and only that source is
# updated.
# Usage: scripts/croaring_source.sh DEST
# Exit 3, with one line on stderr, when the source cannot be had.
set -eu

dest=$1
have() { ls -d "$dest"/CRoaring-*/ 2>/dev/null | head -n 1; }
src=$(have)
if [ -n "$src" ] && [ -f "$src/src/roaring.c" ]; then
    echo "${src%/}"
    exit 0
fi

unavailable() { echo "croaring-source: $*" >&2; exit 3; }
command -v apt-get >/dev/null 2>&1 || unavailable "no apt-get to fetch Debian's croaring source"

dl=$(mktemp -d)
trap 'rm -rf "$dl"' EXIT INT TERM

fetch() {
    # apt verifies what it downloads against the signed Sources index. Only
    # the .orig tarball is needed: a missing Debian patch tarball is no loss.
    (cd "$dl" && apt-get source -qq --download-only croaring >/dev/null 2>&1) || true
    ls "$dl"/croaring_*.orig.tar.* 2>/dev/null | head -n 1
}

tarball=$(fetch)
if [ -z "$tarball" ]; then
    [ "$(id -u)" = 0 ] || unavailable "no deb-src entry for croaring, and adding one needs root"
    codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release 2>/dev/null)
    [ -n "$codename" ] || unavailable "cannot tell the Debian release to add a deb-src entry for"
    list=/etc/apt/sources.list.d/libsegidx-deb-src.sources
    cat >"$list" <<END
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $codename
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
END
    echo "croaring-source: added $list" >&2
    for try in 1 2; do
        apt-get -o DPkg::Lock::Timeout=300 -o Dir::Etc::sourcelist="$list" \
            -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0 update -qq >&2 || true
        tarball=$(fetch)
        [ -z "$tarball" ] || break
    done
    [ -n "$tarball" ] || unavailable "apt-get source croaring fetched no .orig tarball"
fi

mkdir -p "$dest"
tar -xf "$tarball" -C "$dest"
src=$(have)
[ -n "$src" ] && [ -f "$src/src/roaring.c" ] || unavailable "$(basename "$tarball") holds no src/roaring.c"
echo "${src%/}"
