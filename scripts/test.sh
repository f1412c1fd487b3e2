#!/usr/bin/env bash
# The one test command: installs what is missing, type-checks, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-system-deps.sh
[ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund
npm run lint
npx vitest run "$@"
