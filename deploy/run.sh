#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs the engine's life-cycle demo (two
# tcplab TCP stacks over the virtual link, printed as a ladder diagram).
#   bash deploy/run.sh [demo flags, e.g. --msl=2s --delay=20ms --loss=0.2 --seed=3]
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
cmake -S . -B build -G Ninja >/dev/null
cmake --build build --target tcplab-demo
exec ./build/bin/tcplab-demo "$@"
