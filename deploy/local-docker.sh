#!/usr/bin/env bash
# Prepares this machine for the compose cluster test, idempotently: Debian's docker.io,
# docker-compose (1.29, reads the compose specification) and debootstrap when missing; dockerd
# started as root when not running (log: /var/log/enas-dockerd.log); the base image
# enas-base:bookworm built from Debian's packages when missing (no image registry is reachable
# here), its debootstrap tarball cached under $ENAS_DOCKER_CACHE; the machine's CPU torch wheel
# copied into deploy/wheels/ (an ignored build-context folder) so the image build needs no GB download.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${ENAS_DOCKER_CACHE:-/var/cache/enas-docker}
BASE=${ENAS_BASE_IMAGE:-enas-base:bookworm}
TORCH=${TORCH_VERSION:-2.13.0}
PKGS=python3,python3-venv,python3-pip,ca-certificates,postgresql,redis-server,procps,curl

need() { command -v "$1" >/dev/null; }
if ! need dockerd || ! need docker-compose || ! need debootstrap; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io docker-compose debootstrap
fi

if ! docker info >/dev/null 2>&1; then
  nohup dockerd >>/var/log/enas-dockerd.log 2>&1 &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null
fi

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  mkdir -p "$CACHE"
  tarball="$CACHE/bookworm.tar"
  if [ ! -s "$tarball" ]; then
    root=$(mktemp -d "$CACHE/root.XXXX")
    debootstrap --variant=minbase --include="$PKGS" bookworm "$root" http://deb.debian.org/debian
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
  fi
  docker import "$tarball" "$BASE"
fi

mkdir -p deploy/wheels
if ! ls deploy/wheels/torch-"$TORCH"* >/dev/null 2>&1; then
  python3 -m pip download -q "torch==$TORCH" --no-deps -d deploy/wheels
fi
cp -f /etc/ssl/certs/ca-certificates.crt deploy/ca/host.crt
