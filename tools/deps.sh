#!/bin/sh
# Install the Debian packages emrflow needs, only those missing.
set -e
PKGS="lua5.4 liblua5.4-dev libcurl4-openssl-dev libcjson-dev libssl-dev pkg-config gcc make
lua-busted lua-check luarocks python3-botocore lua-cjson cppcheck libsqlite3-dev lua-luv lua-ldoc"
missing=""
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0
echo "emrflow: installing missing Debian packages:$missing" >&2
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >&2
