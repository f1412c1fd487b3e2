#!/usr/bin/env bash
# The one test command: installs what is missing, type-checks, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-system-deps.sh
# `npm install` rather than `npm ci`: it also repairs a lock file written without optional platform packages.
[ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ] || npm install --no-audit --no-fund
npm run lint
npx vitest run "$@"
