#!/usr/bin/env bash
# Sets up the container engine (podman) if needed and runs Longshore with its embedded defaults:
# SQLite store in ./longshore-data, the local engine, the API on http://127.0.0.1:8080.
# Extra arguments go to `longshore server` (see `--help`).
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER_HOST="$(bash scripts/setup-engine.sh | tail -n 1)"
export DOCKER_HOST
cat >&2 <<'MSG'
Longshore is starting on http://127.0.0.1:8080. In another terminal, run a first task:

  curl -s -X POST http://127.0.0.1:8080/tasks/ -d '{"id": "hello", "cmd": "echo hello from $MESOS_TASK_ID",
       "container": {"docker": {"image": "busybox"}}, "mem": 32, "cpus": 0.5}'
  curl -s http://127.0.0.1:8080/tasks/                      # watch it reach TASK_FINISHED
  curl -s http://127.0.0.1:8080/tasks/<mesos_id>/logs/      # read its output

MSG
exec dotnet run --project src/Longshore.Cli -c Release -- server "$@"
