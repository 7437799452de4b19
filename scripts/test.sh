#!/usr/bin/env bash
# Runs the whole test suite on a fresh clone: sets up what is missing, then the type check, the linter and `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."
# chromium: the report test opens report.html headless
LONAS_EXTRA_PACKAGES=chromium ./scripts/setup.sh --no-run
# tsx strips types without checking them: only the compiler checks them (e.g. the exhaustive VJP table)
npm run typecheck
npm run lint
# the formatter check (biome.jsonc) passes only once the whole tree has been formatted (`npm run format`, done
# once by hand so that parallel work does not conflict); then set this to 1
CHECK_FORMAT=0
if [ "$CHECK_FORMAT" = 1 ]; then npm run format:check; fi
npm test
