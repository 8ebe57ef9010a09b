#!/usr/bin/env bash
# gen-config-doc.sh: regenerates docs/config.md from the config table, or with
# --check fails when it is out of date.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="${WSMILL_BIN:-build/wsmill}"
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
sed '/^<!-- generated table below -->$/q' docs/config.md >"$tmp"
"$BIN" config-doc >>"$tmp"
if [ "${1:-}" = "--check" ]; then
    if ! diff -u docs/config.md "$tmp"; then
        echo "docs/config.md is out of date: run scripts/gen-config-doc.sh" >&2
        exit 1
    fi
    exit 0
fi
cp "$tmp" docs/config.md
