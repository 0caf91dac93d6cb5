#!/usr/bin/env bash
# Acceptance check of what ships: a fresh clone of this repository's HEAD in a temp dir, `npm ci`
# (which builds dist/), `npm prune --omit=dev`, then `bin/dropftp serve` (2 workers, the local box)
# must serve a STOR and a RETR (curl, byte-exact), and no process of its tree may have tsx or
# esbuild on its command line, in NODE_OPTIONS, among its mapped files or its open descriptors
# (worker threads share their process's /proc entries). Takes a few minutes (npm ci); not part of
# `npm test`. Usage: bash .ci/check-pruned-install.sh   (needs curl; commits only: it clones HEAD)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dropftp-pruned-XXXXXX")
server=
cleanup() {
  if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then kill -TERM "$server"; wait "$server" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

git clone -q "$root" "$tmp/dropftp"
cd "$tmp/dropftp"
echo "== npm ci (builds dist/) in $tmp/dropftp at $(git rev-parse --short HEAD)"
npm ci --no-audit --no-fund >"$tmp/npm-ci.log" 2>&1 || { tail -30 "$tmp/npm-ci.log"; fail "npm ci"; }
[ -f dist/src/cli/main.js ] && [ -f dist/workers/engine-worker.js ] && [ -f dist/src/localbox/child.js ] \
  && [ -f native-free-ringbuf/dist/index.js ] || fail "npm ci did not build dist/"
echo "== npm prune --omit=dev"
npm prune --omit=dev --no-audit --no-fund >"$tmp/npm-prune.log" 2>&1 || { tail -30 "$tmp/npm-prune.log"; fail "npm prune"; }
for dev in tsx esbuild typescript uvu basic-ftp; do
  [ ! -e "node_modules/$dev" ] || fail "node_modules/$dev is still there after prune"
done

echo "== bin/dropftp serve"
mkfifo "$tmp/out"
env -u NODE_OPTIONS bin/dropftp serve --listen 127.0.0.1:0 --data-dir "$tmp/data" --engine-workers 2 --log-level warn >"$tmp/out" 2>"$tmp/err" &
server=$!
exec 3<"$tmp/out"
port= password=
deadline=$((SECONDS + 30))
while [ -z "$port" ] || [ -z "$password" ]; do
  [ "$SECONDS" -lt "$deadline" ] || fail "no listening line and password within 30 s: $(cat "$tmp/err")"
  IFS= read -r -t 30 line <&3 || fail "server output ended: $(cat "$tmp/err")"
  case "$line" in
    *"listening on ftp://"*) port=$(sed -E 's#.*ftp://[^ ]*:([0-9]+).*#\1#' <<<"$line") ;;
    *"with password: "*) password=${line##*with password: } ;;
  esac
done
cat <&3 >/dev/null &  # keep draining the server's stdout
echo "listening on port $port"

head -c 3000000 /dev/urandom >"$tmp/up.bin"
curl -sS --fail -T "$tmp/up.bin" "ftp://ftp:$password@127.0.0.1:$port/check/up.bin" --ftp-create-dirs || fail "STOR"
curl -sS --fail -o "$tmp/down.bin" "ftp://ftp:$password@127.0.0.1:$port/check/up.bin" || fail "RETR"
cmp "$tmp/up.bin" "$tmp/down.bin" || fail "RETR bytes differ from STOR bytes"
echo "STOR + RETR of 3,000,000 bytes: byte-exact"

tree() { echo "$1"; for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do tree "$c"; done; }
pids=$(tree "$server")
[ "$(wc -w <<<"$pids")" -ge 2 ] || fail "expected the gateway and its local box child, got: $pids"
for pid in $pids; do
  cmd=$(tr '\0' ' ' </proc/"$pid"/cmdline)
  opts=$(tr '\0' '\n' </proc/"$pid"/environ | grep '^NODE_OPTIONS=' || true)
  echo "pid $pid: $cmd ${opts:-(no NODE_OPTIONS)}, $(ls /proc/"$pid"/task | wc -l) threads"
  ! grep -qiE 'tsx|esbuild' <<<"$cmd" || fail "pid $pid command line: $cmd"
  ! grep -qiE 'tsx|esbuild' <<<"$opts" || fail "pid $pid $opts"
  ! grep -iE 'tsx|esbuild' /proc/"$pid"/maps || fail "pid $pid maps a tsx/esbuild file"
  ! ls -l /proc/"$pid"/fd 2>/dev/null | grep -iE 'tsx|esbuild' || fail "pid $pid has a tsx/esbuild file open"
  ! grep -qE '\.ts$' <<<"${cmd% }" || fail "pid $pid runs a TypeScript file"
done
echo "PASS: the pruned install serves from dist/ with no tsx or esbuild in its process tree"
