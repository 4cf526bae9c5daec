#!/usr/bin/env bash
# Installs, from Debian packages only, everything needed to build, test and
# demo cmbridge, and to build and check its Debian package (dpkg-dev for
# dpkg-shlibdeps, man-db and groff-base to render the man pages, logrotate,
# systemd for systemd-sysusers and systemd-tmpfiles, lintian, chromium for
# the status page test in a browser; clang with its libFuzzer runtime for the
# fuzz targets, valgrind for the memcheck run).
# Idempotent: quiet and quick when all is already installed.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config
  libcurl4-openssl-dev libssl-dev openssl libsqlite3-dev sqlite3
  libyajl-dev libinih-dev libxml2-dev libxml2-utils zlib1g-dev
  libcmocka-dev libmicrohttpd-dev libgnutls28-dev libkrb5-dev
  python3 ca-certificates curl jq gzip openssl
  krb5-kdc krb5-admin-server krb5-user tinyproxy
  dpkg-dev man-db groff-base logrotate systemd lintian
  chromium
  clang libclang-rt-dev valgrind
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
