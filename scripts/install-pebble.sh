#!/usr/bin/env bash
# Installs Pebble, Let's Encrypt's small RFC 8555 test CA, and pebble-challtestsrv (its mock DNS and challenge
# server), from Debian's `pebble` package: the ACME end-to-end tests (tests/tests/acme.rs) issue real certificates
# through it. Idempotent: skips when both binaries are already on PATH.
set -euo pipefail

log() { printf '\033[1m[pebble]\033[0m %s\n' "$*"; }
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"

if command -v pebble >/dev/null && command -v pebble-challtestsrv >/dev/null; then
  log "pebble: $(command -v pebble), pebble-challtestsrv: $(command -v pebble-challtestsrv)"
  exit 0
fi
log "apt: installing pebble"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq pebble >/dev/null
command -v pebble >/dev/null && command -v pebble-challtestsrv >/dev/null || {
  echo "pebble installed but pebble/pebble-challtestsrv are not on PATH (dpkg -L pebble)" >&2
  exit 1
}
log "pebble: $(command -v pebble)"
