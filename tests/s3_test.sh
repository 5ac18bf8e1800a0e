#!/bin/sh
# The S3 example against a real S3-compatible server: s3rver (npm), on a
# free loopback port, over a fresh temporary directory, stopped at the end.
#
#   sh tests/s3_test.sh EXAMPLE BUILD
#
# s3rver is installed under BUILD/s3rver on first use (npm's cache serves
# later installs). Without node, npm or s3rver: with CI set this fails,
# otherwise it prints one "skipped: ..." line and passes.
#
# Checks: the example writes, uploads and reads every page back cold, hot
# and through the loader, then damages a page on the server (reading it
# is SEGIDX_ECORRUPT, its neighbours still read, and reads heal once the
# bytes are put back); a second run re-catalogues and reads without
# uploading; a wrong access key is a clean exit 1 naming HTTP 403; a
# deleted segment is SEGIDX_ENOTFOUND naming HTTP 404; a server that is not
# there is a clean exit 1. s3rver 3.7.1 verifies no SigV4 signature (only
# V2 ones), so a wrong SECRET key passes there; against S3 it is a 403
# SignatureDoesNotMatch, reported the same way as the wrong access key.
set -u

example=$1
build=$2
S3RVER_VERSION=3.7.1

skip() {
    if [ -n "${CI:-}" ]; then
        echo "s3_test: FAIL: $1 (CI is set)"
        exit 1
    fi
    echo "s3_test: skipped: $1"
    exit 0
}

fail() {
    echo "s3_test: FAIL: $1"
    [ -n "${2:-}" ] && [ -f "$2" ] && sed 's/^/    /' "$2"
    exit 1
}

command -v node >/dev/null 2>&1 || skip "node not found (s3rver needs Node.js)"
command -v npm >/dev/null 2>&1 || skip "npm not found (to install s3rver)"

prefix=$build/s3rver
s3rver=$prefix/node_modules/.bin/s3rver
if [ ! -x "$s3rver" ]; then
    echo "s3_test: installing s3rver@$S3RVER_VERSION under $prefix"
    mkdir -p "$prefix"
    npm install --no-save --no-audit --no-fund --prefix "$prefix" "s3rver@$S3RVER_VERSION" \
        >"$prefix/npm.log" 2>&1 || skip "npm install s3rver@$S3RVER_VERSION failed (see $prefix/npm.log)"
    [ -x "$s3rver" ] || skip "s3rver not found after npm install"
fi

tmp=$(mktemp -d) || exit 1
pid=
stop_server() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    pid=
}
trap 'stop_server; rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP

# Port 0: the kernel picks a free port, and s3rver says which.
mkdir "$tmp/data"
"$s3rver" -d "$tmp/data" -a 127.0.0.1 -p 0 --configure-bucket segidx >"$tmp/server.log" 2>&1 &
pid=$!
port=
i=0
while [ $i -lt 200 ]; do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$tmp/server.log")
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || fail "s3rver exited" "$tmp/server.log"
    sleep 0.1
    i=$((i + 1))
done
[ -n "$port" ] || fail "s3rver did not start in 20 s" "$tmp/server.log"
# Listening is not answering: wait for an HTTP reply (any status), when
# the curl command is there to ask.
i=0
while command -v curl >/dev/null 2>&1 &&
      ! curl -s -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 100 ] || fail "s3rver does not answer on port $port" "$tmp/server.log"
    sleep 0.1
done

export S3_ENDPOINT="http://127.0.0.1:$port" S3_BUCKET=segidx S3_REGION=us-east-1 \
       S3_ACCESS_KEY_ID=S3RVER S3_SECRET_ACCESS_KEY=S3RVER S3_PREFIX=check
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY

# run NAME WANT_STATUS ARGS...: the example's output in $tmp/NAME.out.
run() {
    name=$1 want=$2
    shift 2
    "$example" "$@" >"$tmp/$name.out" 2>&1
    got=$?
    [ "$got" -eq "$want" ] || fail "$name: exit $got where $want was due" "$tmp/$name.out"
}

run upload 0 --damage
grep -q '^ok$' "$tmp/upload.out" || fail "upload: no ok" "$tmp/upload.out"
n=$(grep -c 'as expected$' "$tmp/upload.out")
[ "$n" -eq 9 ] || fail "damage: $n of 9 checks" "$tmp/upload.out"
grep -q 'cold read of the damaged page *corrupt data, as expected' "$tmp/upload.out" ||
    fail "damage: no SEGIDX_ECORRUPT" "$tmp/upload.out"
grep -E '^(3 volumes|cold|hot|loader|one cold page|the server)' "$tmp/upload.out" | sed 's/^/s3_test: /'

run reread 0 --no-upload
grep -q 'not uploaded' "$tmp/reread.out" || fail "reread: uploaded" "$tmp/reread.out"

run badkey 1 --no-upload --access-key NOBODY
grep -q 'HTTP 403 InvalidAccessKeyId' "$tmp/badkey.out" ||
    fail "wrong access key: no clear 403" "$tmp/badkey.out"
echo "s3_test: wrong access key: $(grep 'HTTP 403' "$tmp/badkey.out" | head -1)"

run missing 0 --no-upload --missing
grep -q 'read from the deleted segment *not found, as expected' "$tmp/missing.out" ||
    fail "missing: no SEGIDX_ENOTFOUND" "$tmp/missing.out"
grep -q 'HTTP 404 NoSuchKey' "$tmp/missing.out" || fail "missing: no 404" "$tmp/missing.out"
echo "s3_test: missing segment: $(grep 'HTTP 404' "$tmp/missing.out" | sed 's/^ *//')"

# The segment is gone now: a plain read of everything fails, cleanly.
run gone 1 --no-upload
grep -q 'HTTP 404' "$tmp/gone.out" || fail "gone: no 404" "$tmp/gone.out"

stop_server
run down 1 --no-upload
grep -q "Couldn't connect" "$tmp/down.out" || fail "down: no clear error" "$tmp/down.out"
echo "s3_test: server down: $(grep "Couldn't connect" "$tmp/down.out" | head -1)"
echo "s3_test: ok"
