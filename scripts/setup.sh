#!/usr/bin/env bash
# Sets up lonas on a fresh Debian/Ubuntu machine: system packages (only those missing), npm packages,
# the native kernel addon, and the optional MPI binding (OpenMPI: mpirun -np N lonas finetune|search). Then
# runs the main job unless --no-run is given.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
for pkg in libopenblas-dev g++ make python3 openmpi-bin libopenmpi-dev ${LONAS_EXTRA_PACKAGES:-}; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "==> installing system packages: ${need_pkgs[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}"
fi

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "lonas needs Node.js >= 20 (found: $(node --version 2>/dev/null || echo none)); install it, e.g. from nodesource or your distribution" >&2
  exit 1
fi

echo "==> installing npm packages"
if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi

echo "==> building the native kernel addon (OpenBLAS)"
npm run --silent build:native >/tmp/lonas-native-build.log 2>&1 || { cat /tmp/lonas-native-build.log; echo "native build failed (log above)" >&2; exit 1; }

# optional: lonas works without it (one process), so a failed build is a warning
if command -v mpicc >/dev/null 2>&1; then
  echo "==> building the MPI binding (OpenMPI)"
  npm run --silent build:mpi >/tmp/lonas-mpi-build.log 2>&1 || { cat /tmp/lonas-mpi-build.log; echo "WARNING: the MPI binding did not build (log above); lonas runs as one process" >&2; }
else
  echo "==> no mpicc (libopenmpi-dev): the optional MPI binding is not built; lonas runs as one process"
fi

if [ "${1:-}" != "--no-run" ]; then
  ./bin/lonas.js doctor
  echo "==> the built-in demo (a complete LoNAS experiment, no downloads): lonas demo"
  ./bin/lonas.js demo "$@"
fi
