#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs the life-cycle demo. As root it runs
# the engine against the Linux kernel in a fresh sandbox (network namespace + TUN); otherwise
# two engine stacks over the virtual link. Extra arguments go to tcplab-demo, e.g.
#   bash deploy/run.sh --msl=2s            bash deploy/run.sh --backend=virtual --loss=0.3
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
cmake -S . -B build -G Ninja >/dev/null
cmake --build build --target tcplab-demo
backend=virtual
[ "$(id -u)" -eq 0 ] && backend=tun
exec ./build/bin/tcplab-demo --backend="$backend" --msl=2s "$@"
