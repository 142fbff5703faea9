#!/usr/bin/env bash
# Installs and starts a Docker-compatible engine (podman) on a fresh Debian machine, and builds the local
# `busybox` image that the README example and the tests use (no registry is needed).
# Idempotent: re-running it reuses what is already installed and running.
# Prints the DOCKER_HOST to use on its last line.
set -euo pipefail

SOCK_DIR="${LONGSHORE_ENGINE_DIR:-/run/longshore}"
SOCK="$SOCK_DIR/podman.sock"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup-engine: installing ${need[*]}" >&2
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >&2
fi

# This host (cgroup v1 hybrid, open-file hard limit 20000) needs runc, cgroupfs and ulimits below the hard limit.
conf=/etc/containers/containers.conf
want='# written by longshore scripts/setup-engine.sh
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"'
if [ "$(cat "$conf" 2>/dev/null)" != "$want" ]; then
  $SUDO mkdir -p /etc/containers
  printf '%s\n' "$want" | $SUDO tee "$conf" >/dev/null
fi

$SUDO mkdir -p "$SOCK_DIR"
if ! curl -sf --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; then
  echo "setup-engine: starting podman API service on $SOCK" >&2
  $SUDO rm -f "$SOCK"
  # Started from its own folder: conmon writes an `oom` marker into the service's working directory when a container
  # is killed for memory, which must not land in whatever checkout ran this script.
  nohup $SUDO env --chdir="$SOCK_DIR" podman system service --time=0 "unix://$SOCK" </dev/null >"$SOCK_DIR/podman-service.log" 2>&1 &
  for _ in $(seq 1 100); do
    curl -sf --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -sf --unix-socket "$SOCK" http://d/_ping >/dev/null || { echo "setup-engine: podman API did not answer on $SOCK; see $SOCK_DIR/podman-service.log" >&2; exit 1; }
fi

if ! $SUDO podman image exists localhost/busybox:latest; then
  echo "setup-engine: building the local busybox image" >&2
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/tmp" "$root/etc"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
  echo 'root:x:0:' >"$root/etc/group"
  tar -C "$root" -cf "$root.tar" .
  $SUDO podman import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' "$root.tar" localhost/busybox:latest >&2
  rm -rf "$root" "$root.tar"
fi

echo "unix://$SOCK"
