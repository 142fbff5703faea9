#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine with the .NET 10 SDK: installs and starts the container engine
# (podman, via setup-engine.sh), builds the local test image, then runs the unit and integration tests against it.
set -euo pipefail
cd "$(dirname "$0")/.."

# The dashboard's browser tests drive Debian's Chromium through Playwright (no browser download).
if [ ! -x /usr/bin/chromium ]; then
  echo "test.sh: installing chromium" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >&2
fi

DOCKER_HOST="$(bash scripts/setup-engine.sh | tail -n 1)"
export DOCKER_HOST
bash scripts/setup-services.sh
# A real single-node Kubernetes on loopback for the Kubernetes engine tests.
LONGSHORE_TEST_KUBECONFIG="$(bash scripts/setup-kubernetes.sh | tail -n 1)"
export LONGSHORE_TEST_KUBECONFIG
echo "test.sh: engine at $DOCKER_HOST"
# Real Mesos clusters for the Mesos tests, when a Mesos installation is given (LONGSHORE_MESOS_PREFIX or
# LONGSHORE_MESOS_TARBALL; .ci/run passes the build in ../shared/mesos); stopped again when the tests end.
mesos_env=$(bash scripts/setup-mesos.sh)
eval "$mesos_env"
trap 'bash scripts/setup-mesos.sh stop' EXIT

# The release artifacts (executables, .debs, the image) are built once here and the packaging tests use them from
# LONGSHORE_DIST; the debootstrap base and NuGet's runtime packs stay cached between runs (docs/operations.md).
if ! command -v systemd-analyze >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq systemd >&2
fi
bash scripts/package.sh all >/dev/null
export LONGSHORE_DIST="$PWD/dist"
# The image just built goes into the cluster's containerd too, for InClusterTests (Longshore deployed from
# deploy/kubernetes); the script is idempotent and only imports here, the cluster already runs.
LONGSHORE_K8S_IMAGES="$LONGSHORE_DIST/longshore-image.tar" bash scripts/setup-kubernetes.sh >/dev/null

results=$(mktemp -d)
status=0
dotnet test Longshore.sln -c Release --logger "trx" --results-directory "$results" 2>&1 | tee "$results/output.txt" || status=$?

# One plain closing line for any reader: the sum over every test assembly.
sum() { grep -hoE "$1: +[0-9]+" "$results/output.txt" | awk '{ n += $2 } END { print n + 0 }'; }
echo "$(sum Passed) passed, $(sum Failed) failed"
exit $status
