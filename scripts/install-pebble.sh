#!/usr/bin/env bash
# Builds Pebble, Let's Encrypt's small RFC 8555 test CA, and pebble-challtestsrv (its mock DNS and challenge
# server) from the Go module proxy, version v2.10.3 (Debian's `pebble` package is 2.4.0, which has no ACME
# Renewal Information, RFC 9773): the ACME end-to-end tests (tests/tests/e2e/acme.rs) issue, renew, revoke and replace
# real certificates through it. Both land in ${KAAS_CACHE:-$HOME/.cache/kaas}/pebble/v2.10.3/ with a stamp; a
# complete directory is skipped, so a second run takes a second. Built into a temporary directory beside it and
# renamed into place, so a build that stops half-way leaves nothing. The first build took 47 s on 2 cores shared
# with a CI run (module downloads included, fresh build cache).
set -euo pipefail

log() { printf '\033[1m[pebble]\033[0m %s\n' "$*"; }
VERSION=v2.10.3
CACHE="${KAAS_CACHE:-$HOME/.cache/kaas}/pebble"
DEST="$CACHE/$VERSION"
STAMP="github.com/letsencrypt/pebble/v2 $VERSION: pebble pebble-challtestsrv"

if [[ -x $DEST/pebble && -x $DEST/pebble-challtestsrv && -f $DEST/stamp && $(<"$DEST/stamp") == "$STAMP" ]]; then
  log "pebble $VERSION: $DEST"
  exit 0
fi
mkdir -p "$CACHE"
# One build at a time: a second run (another checkout, a parallel install) waits and then finds the stamp.
exec 9>"$CACHE/.lock"
flock 9
if [[ -f $DEST/stamp && $(<"$DEST/stamp") == "$STAMP" ]]; then
  log "pebble $VERSION: $DEST (built meanwhile)"
  exit 0
fi
[[ -d /usr/local/go/bin ]] && export PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || { echo "go is not installed (it builds Pebble from the Go module proxy)" >&2; exit 1; }

log "pebble $VERSION: go install from the module proxy"
tmp=$(mktemp -d "$CACHE/.$VERSION.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath -ldflags "-s -w" \
  "github.com/letsencrypt/pebble/v2/cmd/pebble@$VERSION" \
  "github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@$VERSION"
echo "$STAMP" >"$tmp/stamp"
chmod 755 "$tmp"
rm -rf "$DEST"
mv "$tmp" "$DEST"
trap - EXIT
log "pebble $VERSION: built in $((SECONDS - start)) s into $DEST"
