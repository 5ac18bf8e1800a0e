#!/bin/sh
# Unpack the upstream source of a Debian source package (the version apt
# offers, normally that of the installed -dev package) under DEST and
# print the directory it is in. Only the .orig tarball is used. Without a
# deb-src entry, and as root, one for the running Debian release is added
# in /etc/apt/sources.list.d and only that source is updated.
# Usage: scripts/debian_source.sh PACKAGE DEST    (croaring, cmocka)
# Exit 3, with one line on stderr, when the source cannot be had.
set -eu

pkg=$1 dest=$2
if [ -f "$dest/$pkg.dir" ] && [ -d "$(cat "$dest/$pkg.dir")" ]; then
    cat "$dest/$pkg.dir"
    exit 0
fi

unavailable() { echo "debian-source: $pkg: $*" >&2; exit 3; }
command -v apt-get >/dev/null 2>&1 || unavailable "no apt-get to fetch Debian's source"

dl=$(mktemp -d)
trap 'rm -rf "$dl"' EXIT INT TERM

fetch() {
    # apt checks what it downloads against the signed Sources index. A
    # Debian patch tarball that fails to come is no loss: it is not used.
    (cd "$dl" && apt-get source -qq --download-only "$pkg" >/dev/null 2>&1) || true
    ls "$dl/${pkg}_"*.orig.tar.?z* 2>/dev/null | grep -v '\.asc$' | head -n 1
}

tarball=$(fetch)
if [ -z "$tarball" ]; then
    [ "$(id -u)" = 0 ] || unavailable "no deb-src entry, and adding one needs root"
    codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release 2>/dev/null)
    [ -n "$codename" ] || unavailable "cannot tell the Debian release to add a deb-src entry for"
    list=/etc/apt/sources.list.d/libsegidx-deb-src.sources
    if [ ! -f "$list" ]; then
        cat >"$list" <<END
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $codename
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
END
        echo "debian-source: added $list" >&2
    fi
    for try in 1 2; do
        apt-get -o DPkg::Lock::Timeout=300 -o Dir::Etc::sourcelist="$list" \
            -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0 update -qq >&2 || true
        tarball=$(fetch)
        [ -z "$tarball" ] || break
    done
    [ -n "$tarball" ] || unavailable "apt-get source fetched no .orig tarball"
fi

top=$(tar -tf "$tarball" | head -n 1)
top=${top%%/*}
[ -n "$top" ] || unavailable "$(basename "$tarball") is empty"
mkdir -p "$dest"
rm -rf "${dest:?}/$top"
tar -xf "$tarball" -C "$dest"
echo "$dest/$top" >"$dest/$pkg.dir"
echo "$dest/$top"
