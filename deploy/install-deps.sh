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
  # runtime tools for sandboxes
  iproute2
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
apt-get -o DPkg::Lock::Timeout=600 update -q
apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: installed ${#missing[@]} package(s): ${missing[*]}"
