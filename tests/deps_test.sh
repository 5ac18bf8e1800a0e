#!/bin/sh
# scripts/deps.sh's decisions, against a fake dpkg-query, apt-get and id
# on PATH (nothing is installed): a package installed for two
# architectures counts as installed; apt-get runs only when something is
# missing; a failing `apt-get update` does not stop the install; a failed
# install is tried once more; without root it only prints the command.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
mkdir -p "$tmp/bin" "$tmp/state/installed"

# dpkg-query -W -f=FORMAT PKG: FORMAT once per architecture the package
# is installed for (here two, as with a second architecture enabled).
cat >"$tmp/bin/dpkg-query" <<'END'
#!/bin/sh
fmt= pkg=
for a in "$@"; do
    case $a in -f=*) fmt=${a#-f=} ;; -*) ;; *) pkg=$a ;; esac
done
if [ -e "$FAKE_STATE/installed/$pkg" ]; then
    case $fmt in *'\n') nl='\n' ;; *) nl= ;; esac
    for arch in amd64 armhf; do printf "install ok installed$nl"; done
    exit 0
fi
echo "dpkg-query: no packages found matching $pkg" >&2
exit 1
END

# apt-get [-o X]... update|install [options] PKG...: logs each call;
# update fails when told to, install fails once when told to.
cat >"$tmp/bin/apt-get" <<'END'
#!/bin/sh
while [ "$1" = -o ]; do shift 2; done
cmd=$1; shift
echo "$cmd" >>"$FAKE_STATE/log"
case $cmd in
update) [ ! -e "$FAKE_STATE/update_fails" ] || exit 100 ;;
install)
    if [ -e "$FAKE_STATE/install_fails_once" ]; then
        rm -f "$FAKE_STATE/install_fails_once"; exit 100
    fi
    for p in "$@"; do
        case $p in -*) ;; *) touch "$FAKE_STATE/installed/$p" ;; esac
    done ;;
esac
END

cat >"$tmp/bin/id" <<'END'
#!/bin/sh
if [ -e "$FAKE_STATE/not_root" ]; then echo 1000; else echo 0; fi
END
chmod +x "$tmp/bin/"*

all="libroaring-dev libxxhash-dev libcmocka-dev liblmdb-dev libpq-dev postgresql
     libcurl4-openssl-dev pkg-config"
failures=0

case_() { # name expected-exit expected-apt-calls [extra-package...]
    name=$1 want_rc=$2 want_log=$3
    shift 3
    rc=0
    PATH="$tmp/bin:$PATH" FAKE_STATE="$tmp/state" sh "$here/scripts/deps.sh" "$@" \
        >"$tmp/out" 2>&1 || rc=$?
    log=$(cat "$tmp/state/log" 2>/dev/null | tr '\n' ' ' || true)
    log=${log% }
    if [ "$rc" = "$want_rc" ] && [ "$log" = "$want_log" ]; then
        echo "deps-test: $name: ok"
    else
        echo "deps-test: $name: exit $rc (want $want_rc), apt-get calls '$log'" \
             "(want '$want_log')" >&2
        sed 's/^/    /' "$tmp/out" >&2
        failures=$((failures + 1))
    fi
    rm -f "$tmp/state/log"
}

reset() { # installed-package...
    rm -rf "$tmp/state"
    mkdir -p "$tmp/state/installed"
    for p in "$@"; do touch "$tmp/state/installed/$p"; done
}

# shellcheck disable=SC2086
reset $all
case_ "all installed for two architectures" 0 ""
touch "$tmp/state/update_fails"
case_ "all installed, apt-get update would fail" 0 ""

reset $all
touch "$tmp/state/update_fails"
case_ "one missing, update fails, install goes on" 0 "update install" valgrind

reset $all
touch "$tmp/state/install_fails_once"
case_ "install fails once, tried again" 0 "update install update install" clang

reset $all
# Every apt-get call fails: both tries, then a failure.
cat >"$tmp/bin/apt-get" <<'END'
#!/bin/sh
while [ "$1" = -o ]; do shift 2; done
echo "$1" >>"$FAKE_STATE/log"
exit 100
END
case_ "install never succeeds" 1 "update install update install" clang

reset libroaring-dev
touch "$tmp/state/not_root"
case_ "not root: prints the command" 1 ""
grep -q 'sudo apt-get install -y libxxhash-dev' "$tmp/out" || {
    echo "deps-test: not root: no install command printed" >&2
    failures=$((failures + 1))
}

if [ "$failures" != 0 ]; then
    echo "deps-test: $failures case(s) failed" >&2
    exit 1
fi
echo "deps-test: ok"
