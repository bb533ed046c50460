#!/bin/sh
# Generates the Python stubs of proto/tcplab/v1 into OUTDIR without CMake (the CMake target
# tcplab_python_stubs does the same into build/python). Then:
#   TCPLAB_PY_STUBS=OUTDIR /usr/bin/python3 client/python/examples/walkthrough.py
# Needs protoc and grpc_python_plugin (Debian: protobuf-compiler, protobuf-compiler-grpc).
set -eu

if [ $# -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
out=$1
repo=$(cd "$(dirname "$0")/../.." && pwd)
protoc=${PROTOC:-protoc}
plugin=${GRPC_PYTHON_PLUGIN:-$(command -v grpc_python_plugin || echo /usr/bin/grpc_python_plugin)}

mkdir -p "$out/tcplab/v1"
: >"$out/tcplab/__init__.py"
: >"$out/tcplab/v1/__init__.py"
"$protoc" --proto_path="$repo/proto" --python_out="$out" --grpc_python_out="$out" \
  --plugin=protoc-gen-grpc_python="$plugin" "$repo"/proto/tcplab/v1/*.proto
echo "stubs in $out (set TCPLAB_PY_STUBS=$out)"
