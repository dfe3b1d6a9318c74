#!/usr/bin/env bash
# Builds the Debian package from a scratch copy of this tree (dpkg-buildpackage
# cleans and rebuilds in place, which must not disturb a checkout in use) and
# leaves it in build/deb/.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /var/tmp/xdplb-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/xdplb"
tar --exclude=./node_modules --exclude=./build --exclude=./dist --exclude=./debian/xdplb --exclude=./.git -cf - . | tar -xf - -C "$work/xdplb"
(cd "$work/xdplb" && dpkg-buildpackage -b -us -uc >"$work/build.log" 2>&1) || { tail -40 "$work/build.log"; exit 1; }
mkdir -p build/deb
rm -f build/deb/*.deb
mv "$work"/*.deb build/deb/
ls build/deb/*.deb
