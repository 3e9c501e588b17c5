#!/usr/bin/env bash
# What to try against a running instance of the reference key-value store (examples/kvstore).
# Usage: scripts/demo-hints.sh URL [TITLE]; `make demo` and scripts/demo-cluster.sh print it.
# Reads FENDER_ENV (the protected pages open from loopback in development only).
set -eu
url=${1:?usage: demo-hints.sh URL [TITLE]}
title=${2:-"fender demo: the reference key-value store (examples/kvstore) at $url"}
if [ "${FENDER_ENV:-production}" = development ]; then
  status="in a browser: open from this machine without a token (FENDER_ENV=development)"
else
  status="needs the admin token (curl -H 'authorization: Bearer ...'; FENDER_ENV is not development)"
fi
cat <<EOF

$title
  $url/         the endpoints it serves (curl -H 'accept: application/json' $url/)
  $url/status   $status
try:
  curl -X POST $url/write/greeting/hello
  curl $url/read/greeting
  curl -X PUT -H 'content-type: application/json' -d '{"value":"hi"}' $url/kv/greeting
  curl $url/circuit-breaker
  curl $url/health/detailed
  curl $url/metrics

EOF
