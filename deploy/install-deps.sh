#!/usr/bin/env bash
# Installs every Debian 12 package tcplab needs to build, test and run.
# Idempotent: packages already present are left alone, and the script says which it installed.
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config git
  # libraries (DESIGN.md: gRPC, Protobuf, Abseil, libtins, GoogleTest)
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libtins-dev libpcap-dev libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev libssl-dev
  # grading results: SQLite in tcplabd's data directory (server/results_store.cc)
  libsqlite3-dev
  # tests/bench/tun_bench: lwIP, the user-space TCP/IP stack the engine is measured against
  liblwip-dev
  # client/python: Debian's gRPC for Python (DESIGN.md); PyPI is not reachable
  python3 python3-grpcio python3-protobuf
  # runtime tools for sandboxes; tshark checks the pcap captures in tests/tun/pcap_test.cc
  iproute2 tshark
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: must run as root (apt-get install)" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# tshark (wireshark-common) asks whether non-root users may capture. tcplab only reads pcap
# files with it, so answer no: no setuid dumpcap, no wireshark group.
if command -v debconf-set-selections >/dev/null; then
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
fi
apt-get -o DPkg::Lock::Timeout=600 update -q
apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: installed ${#missing[@]} package(s): ${missing[*]}"
