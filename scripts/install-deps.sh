#!/bin/sh
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Installs the Debian packages that the build, the demo and the tests use.
# Safe to run again: packages already present are skipped without apt-get.
set -eu

PACKAGES="make gcc clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev libyaml-dev
pkg-config libcriterion-dev iproute2 util-linux procps curl wrk lighttpd openssl jq
python3 nginx-light"
# The peers and tools of 'make bench' only, installed with the argument "bench".
BENCH_PACKAGES="haproxy nginx-light gnuplot-nox httperf"
if [ "${1:-}" = bench ]; then
	PACKAGES=$BENCH_PACKAGES
fi

missing=""
for p in $PACKAGES; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$status" in
	*"install ok installed"*) ;;
	*) missing="$missing $p" ;;
	esac
done

if [ -z "$missing" ]; then
	echo "install-deps: every package${1:+ for $1} is installed"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages:$missing; run as root (sudo make deps) to install them" >&2
	exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
