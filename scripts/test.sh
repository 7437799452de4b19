#!/usr/bin/env bash
# Runs the whole test suite on a fresh clone: sets up what is missing, then `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."
# chromium: the report test opens report.html headless; setup.sh installs OpenMPI and builds the MPI
# binding, which the test/dist tests run under mpirun
LONAS_EXTRA_PACKAGES=chromium ./scripts/setup.sh --no-run
npm test
