#!/usr/bin/env bash
# Installs and starts the services the queue-source tests use, on loopback only. Idempotent.
# Redis: 127.0.0.1:6379 (LONGSHORE_TEST_REDIS overrides where the tests look).
# PostgreSQL 15: 127.0.0.1:5432, MariaDB: 127.0.0.1:3306; both with user longshore / password longshore and a
# database longshore_test (LONGSHORE_TEST_POSTGRES / LONGSHORE_TEST_MYSQL override the jdbc: URLs the tests use).
# NATS with JetStream: nats://127.0.0.1:4222, monitoring on 127.0.0.1:8222 (LONGSHORE_TEST_NATS overrides).
# SQS and S3: the fauxqs@1.9.2 emulator (npm; needs Node.js >= 20 and npm), installed with `npm ci` from
# scripts/fauxqs/package-lock.json into /opt/longshore-fauxqs (LONGSHORE_FAUXQS_HOME overrides) and run by
# scripts/fauxqs/server.mjs on http://127.0.0.1:4566 — not by its own CLI, which binds every interface. Log:
# /tmp/longshore-fauxqs.log. LONGSHORE_TEST_AWS overrides the endpoint the tests use. It accepts any key and secret;
# S3 clients must use path-style requests.
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

need=()
command -v pg_ctlcluster >/dev/null || need+=(postgresql)
command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup-services: installing ${need[*]}" >&2
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >&2
fi

pg_version=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
if [ "$(id -u)" -eq 0 ]; then AS_POSTGRES="runuser -u postgres --"; else AS_POSTGRES="sudo -u postgres"; fi
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  echo "setup-services: starting PostgreSQL $pg_version" >&2
  [ -d "/etc/postgresql/$pg_version/main" ] || $SUDO pg_createcluster "$pg_version" main >&2
  $SUDO sed -i "s/^#\?listen_addresses.*/listen_addresses = '127.0.0.1'/" "/etc/postgresql/$pg_version/main/postgresql.conf"
  $SUDO pg_ctlcluster "$pg_version" main start >&2
  for _ in $(seq 1 100); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.1; done
fi
$AS_POSTGRES psql -q -tc "SELECT 1 FROM pg_roles WHERE rolname = 'longshore'" | grep -q 1 \
  || $AS_POSTGRES psql -q -c "CREATE ROLE longshore LOGIN PASSWORD 'longshore'" >&2
$AS_POSTGRES psql -q -tc "SELECT 1 FROM pg_database WHERE datname = 'longshore_test'" | grep -q 1 \
  || $AS_POSTGRES psql -q -c "CREATE DATABASE longshore_test OWNER longshore" >&2

if ! mariadb-admin --protocol=tcp -h 127.0.0.1 -P 3306 ping >/dev/null 2>&1 && ! mariadb-admin ping >/dev/null 2>&1; then
  echo "setup-services: starting MariaDB" >&2
  $SUDO mkdir -p /run/mysqld && $SUDO chown mysql /run/mysqld
  $SUDO start-stop-daemon --start --background --exec /usr/sbin/mariadbd -- --user=mysql --bind-address=127.0.0.1 --port=3306
  for _ in $(seq 1 100); do mariadb-admin ping >/dev/null 2>&1 && break; sleep 0.2; done
fi
$SUDO mariadb -e "CREATE DATABASE IF NOT EXISTS longshore_test;
  CREATE USER IF NOT EXISTS 'longshore'@'127.0.0.1' IDENTIFIED BY 'longshore';
  CREATE USER IF NOT EXISTS 'longshore'@'localhost' IDENTIFIED BY 'longshore';
  GRANT ALL ON longshore_test.* TO 'longshore'@'127.0.0.1';
  GRANT ALL ON longshore_test.* TO 'longshore'@'localhost';" >&2

if ! command -v nats-server >/dev/null; then
  echo "setup-services: installing nats-server" >&2
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nats-server >&2
fi
if ! curl -sf http://127.0.0.1:8222/healthz >/dev/null 2>&1; then
  echo "setup-services: starting nats-server (JetStream) on 127.0.0.1:4222" >&2
  $SUDO mkdir -p /var/lib/longshore-nats
  nohup $SUDO nats-server -a 127.0.0.1 -p 4222 -m 8222 -js -sd /var/lib/longshore-nats >/var/lib/longshore-nats/server.log 2>&1 &
  for _ in $(seq 1 100); do curl -sf http://127.0.0.1:8222/healthz >/dev/null 2>&1 && break; sleep 0.1; done
  curl -sf http://127.0.0.1:8222/healthz >/dev/null
fi

FAUXQS_HOME="${LONGSHORE_FAUXQS_HOME:-/opt/longshore-fauxqs}"
FAUXQS_SRC="$(cd "$(dirname "$0")/fauxqs" && pwd)"
if ! command -v npm >/dev/null; then
  echo "setup-services: installing nodejs and npm" >&2
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >&2
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "setup-services: fauxqs needs Node.js 20 or newer, found $(node --version); install a newer nodejs (Debian 13, or NodeSource on Debian 12)" >&2
  exit 1
fi
# Installed from the committed lock file, so every machine runs the same emulator; reinstalled when the lock changes.
if ! cmp -s "$FAUXQS_SRC/package-lock.json" "$FAUXQS_HOME/package-lock.json" || [ ! -f "$FAUXQS_HOME/node_modules/fauxqs/dist/app.js" ]; then
  echo "setup-services: installing fauxqs@1.9.2 into $FAUXQS_HOME" >&2
  $SUDO mkdir -p "$FAUXQS_HOME"
  $SUDO cp "$FAUXQS_SRC/package.json" "$FAUXQS_SRC/package-lock.json" "$FAUXQS_HOME/"
  (cd "$FAUXQS_HOME" && $SUDO npm ci --no-audit --no-fund --loglevel=error >&2)
fi
if ! curl -sf http://127.0.0.1:4566/health >/dev/null 2>&1; then
  echo "setup-services: starting fauxqs (SQS/S3 emulator) on 127.0.0.1:4566" >&2
  FAUXQS_HOME="$FAUXQS_HOME" nohup node "$FAUXQS_SRC/server.mjs" 4566 >/tmp/longshore-fauxqs.log 2>&1 &
  for _ in $(seq 1 100); do curl -sf http://127.0.0.1:4566/health >/dev/null 2>&1 && break; sleep 0.1; done
  curl -sf http://127.0.0.1:4566/health >/dev/null
fi
