#!/usr/bin/env bash
# Install the system services the test suite runs for real, when it can (root on Debian).
# Prints what is missing otherwise; under FENDER_REQUIRE_SERVICES=1 those tests then fail.
set -u
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have redis-server || need+=(redis-server)
{ have postgres || ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; } || need+=(postgresql)
have prometheus || need+=(prometheus)
have promtool || need+=(prometheus)
{ have nginx || [ -x /usr/sbin/nginx ]; } || need+=(nginx-light)
have chromium || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then
  echo "services: redis-server, postgresql, prometheus, nginx, chromium present"
  exit 0
fi
# Debian's packages start services on install; these tests start their own, so keep them off.
if [ "$(id -u)" = 0 ] && have apt-get; then
  echo "services: installing ${need[*]} with apt-get"
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  rc=$?
  rm -f /usr/sbin/policy-rc.d
  [ $rc -eq 0 ] || echo "services: apt-get failed ($rc); the tests that need ${need[*]} will fail under CI"
  exit 0
fi
echo "services: missing ${need[*]}; install them (Debian: apt-get install ${need[*]})." \
     "Tests that need them skip locally and fail under FENDER_REQUIRE_SERVICES=1."
