#!/usr/bin/env bash
# Runs every test: installs what is missing, configures, builds with -Werror, runs ctest.
#   bash tests/run.sh               all tests
#   bash tests/run.sh --sanitize    the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   bash tests/run.sh -L engine     extra arguments go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
cmake_extra=()
if [ "${1:-}" = "--sanitize" ]; then
  shift
  build=build-sanitize
  cmake_extra+=(-DTCPLAB_SANITIZE=ON)
fi

bash deploy/install-deps.sh
cmake -S . -B "$build" -G Ninja -DTCPLAB_WERROR=ON "${cmake_extra[@]}"
cmake --build "$build"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" --timeout 600 "$@"
