#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs tcplabd, the tcplab server, in the
# foreground on 127.0.0.1:50051 (Ctrl-C or SIGTERM stops it and removes its sandboxes). As
# root new sandboxes use the tun backend (the Linux kernel as peer); otherwise the virtual
# one. Drive it with build/bin/tcplab (see README.md) or the Python client.
#   bash deploy/run.sh                           the server, default options
#   bash deploy/run.sh --msl=500ms --listen=unix:/run/tcplab.sock   flags go to tcplabd
#   bash deploy/run.sh demo [--msl=2s ...]       the stand-alone life-cycle demo instead
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
cmake -S . -B build -G Ninja >/dev/null
if [ "${1:-}" = "demo" ]; then
  shift
  cmake --build build --target tcplab-demo
  backend=virtual
  [ "$(id -u)" -eq 0 ] && backend=tun
  exec ./build/bin/tcplab-demo --backend="$backend" --msl=2s "$@"
fi
cmake --build build --target tcplabd tcplab tcplab_python_stubs
cat <<'HINT'
tcplabd starting on 127.0.0.1:50051. In another terminal, the life cycle in six commands:
  build/bin/tcplab sandbox create lab --msl 500ms
  build/bin/tcplab listen lab --stack kernel --port 80
  build/bin/tcplab connect lab --stack engine --to 198.18.0.1:80
  build/bin/tcplab close lab/2
  build/bin/tcplab close lab/3
  build/bin/tcplab watch lab --ladder --no-follow
HINT
exec ./build/bin/tcplabd "$@"
