#!/usr/bin/env bash
# What the tests need from the machine, found or installed in one place.
# Run by `npm test` (npm's `pretest`), and so by .ci/run as well.
#
#   redis-server   tests that need Redis start their own, each on a spare port
#   chromium       browser tests drive /usr/bin/chromium through playwright-core
#   python3-django the proxy's Django origin runs on Debian's /usr/bin/python3
#   nginx          the deploy test starts its own nginx with docs/deploy.md's config
#
# Where a package is missing and this script cannot install it (not root, no
# apt-get, or KOMETA_TEST_NO_INSTALL=1), it prints one line naming what to
# install and exits 1: a missing dependency never turns into skipped tests.
#
# To rehearse a fresh machine without removing packages others may be using,
# KOMETA_TEST_ASSUME_MISSING="chromium nginx" treats those as not installed.
set -euo pipefail

assume_list=${KOMETA_TEST_ASSUME_MISSING:-}
assumed=" ${assume_list//,/ } "
has() { [[ "$assumed" != *" $1 "* ]]; }

missing=()
{ has redis-server && command -v redis-server >/dev/null 2>&1; } || missing+=(redis-server)
{ has chromium && [ -x /usr/bin/chromium ]; } || missing+=(chromium)
{ has python3-django && [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import django' >/dev/null 2>&1; } || missing+=(python3-django)
{ has nginx && { command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; }; } || missing+=(nginx)

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "${KOMETA_TEST_NO_INSTALL:-}" = 1 ] || [ "${EUID}" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "kometa tests need: ${missing[*]} — install them (Debian: sudo apt-get install -y ${missing[*]}) and run npm test again" >&2
  exit 1
fi

echo "kometa tests: installing ${missing[*]} (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
