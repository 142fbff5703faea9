#!/usr/bin/env bash
# Installs and starts the services the queue-source tests use, on loopback only. Idempotent.
# Redis: 127.0.0.1:6379 (LONGSHORE_TEST_REDIS overrides where the tests look).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  echo "setup-services: installing redis-server" >&2
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >&2
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "setup-services: starting redis on 127.0.0.1:6379" >&2
  $SUDO redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no --daemonize yes >&2
  for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null
fi
