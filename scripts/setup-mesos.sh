#!/usr/bin/env bash
# Starts real Apache Mesos clusters on loopback for the Mesos tests, from a Mesos installation given as
#   LONGSHORE_MESOS_PREFIX=/opt/mesos          an installed tree (sbin/mesos-master, lib/, libexec/mesos/), or
#   LONGSHORE_MESOS_TARBALL=/path/mesos-….tar.xz  the installed tree packed (unpacked once under the state folder).
# Without either it prints only a comment saying so, and the real-master tests skip with that reason.
#
# Two clusters, everything bound to 127.0.0.1, the agents running tasks with the Docker containerizer through the
# Docker CLI on PATH and podman's Docker API ($DOCKER_HOST, default unix:///run/longshore/podman.sock):
#   * "auth": one master (5050) with HTTP framework authentication (basic, principal `longshore`), ACLs that let that
#     principal register with the roles *, batch and web only, and one agent (5051) with cpus:1;mem:512 reserved for
#     the role batch beside its unreserved resources;
#   * "ha": Debian's ZooKeeper (2181), three masters (5060, 5061, 5062, --quorum=2, replicated log) that elect a
#     leader through it, and one agent (5065) that follows the leader.
# It installs the run-time Debian packages the build needs and `zookeeper`. Idempotent: what already answers is
# reused. It prints `export NAME=value` lines for the tests (scripts/test.sh evaluates them):
#   LONGSHORE_TEST_MESOS_MASTER, LONGSHORE_TEST_MESOS_PRINCIPAL, LONGSHORE_TEST_MESOS_SECRET_FILE,
#   LONGSHORE_TEST_MESOS_HA_MASTERS (comma-separated), LONGSHORE_TEST_MESOS_IMAGE, LONGSHORE_TEST_MESOS_CONTROL.
# `setup-mesos.sh stop` stops only the processes this script started (pid files in the state folder) and removes the
# task containers its agents started. State and logs: LONGSHORE_MESOS_STATE (default /var/lib/longshore-mesos).
set -euo pipefail

STATE="${LONGSHORE_MESOS_STATE:-/var/lib/longshore-mesos}"
DOCKER_HOST="${DOCKER_HOST:-unix:///run/longshore/podman.sock}"
export DOCKER_HOST
IP=127.0.0.1
AUTH_MASTER=5050 AUTH_AGENT=5051
HA_MASTERS=(5060 5061 5062) HA_AGENT=5065 ZK_PORT=2181
IMAGE=localhost/busybox:latest
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
log() { echo "setup-mesos: $*" >&2; }

# A pid file names a process of ours only while that process still runs our command (pids are reused).
ours() { # name -> pid, if running
  local f="$STATE/run/$1.pid" pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$(cat "$STATE/run/$1.match")" && echo "$pid"
}

stop_all() {
  local name pid
  for f in "$STATE"/run/*.pid; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .pid)
    if pid=$(ours "$name"); then
      log "stopping $name (pid $pid)"
      kill "$pid" 2>/dev/null || true
    fi
  done
  sleep 1
  for f in "$STATE"/run/*.pid; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .pid)
    if pid=$(ours "$name"); then kill -9 "$pid" 2>/dev/null || true; fi
    rm -f "$f" "$STATE/run/$name.match"
  done
  # The agents' task containers are named mesos-<container id>; their ids are in the agents' checkpoints.
  local ids
  ids=$(find "$STATE"/agent-*/meta/slaves -path '*/executors/*/runs/*' -maxdepth 8 -mindepth 8 -type d 2>/dev/null \
        | xargs -r -n1 basename | grep -v '^latest$' | sed 's/^/mesos-/' || true)
  if [ -n "$ids" ] && command -v docker >/dev/null; then
    # shellcheck disable=SC2086
    docker rm -f $ids >/dev/null 2>&1 || true
  fi
}

if [ "${1:-}" = stop ]; then
  stop_all
  exit 0
fi

# ---- the installation
PREFIX="${LONGSHORE_MESOS_PREFIX:-}"
if [ -z "$PREFIX" ] && [ -n "${LONGSHORE_MESOS_TARBALL:-}" ]; then
  [ -f "$LONGSHORE_MESOS_TARBALL" ] || { log "LONGSHORE_MESOS_TARBALL=$LONGSHORE_MESOS_TARBALL does not exist"; exit 1; }
  stamp="$(stat -c '%s %Y' "$LONGSHORE_MESOS_TARBALL") $(basename "$LONGSHORE_MESOS_TARBALL")"
  if [ "$(cat "$STATE/prefix.stamp" 2>/dev/null)" != "$stamp" ] || [ ! -x "$STATE/prefix/mesos/sbin/mesos-master" ]; then
    log "unpacking $LONGSHORE_MESOS_TARBALL"
    $SUDO rm -rf "$STATE/prefix" && $SUDO mkdir -p "$STATE/prefix"
    $SUDO tar -C "$STATE/prefix" -xJf "$LONGSHORE_MESOS_TARBALL"
    echo "$stamp" | $SUDO tee "$STATE/prefix.stamp" >/dev/null
  fi
  PREFIX="$STATE/prefix/mesos"
fi
if [ -z "$PREFIX" ]; then
  echo "# setup-mesos: no Mesos installation given (LONGSHORE_MESOS_PREFIX or LONGSHORE_MESOS_TARBALL): the real-master tests skip"
  exit 0
fi
[ -x "$PREFIX/sbin/mesos-master" ] || { log "$PREFIX/sbin/mesos-master not found"; exit 1; }
export LD_LIBRARY_PATH="$PREFIX/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

need=()
for pkg in libgrpc++1.51 libprotobuf32 libzookeeper-mt2 libsvn1 libapr1 libaprutil1 libcurl4 libsasl2-2 libsasl2-modules \
           libunwind8 libarchive13 zookeeper; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
command -v docker >/dev/null || { log "the agents need a Docker CLI on PATH (it talks to $DOCKER_HOST)"; exit 1; }
docker image inspect "$IMAGE" >/dev/null 2>&1 || { log "image $IMAGE is missing (scripts/setup-engine.sh builds it)"; exit 1; }

$SUDO mkdir -p "$STATE/run" "$STATE/log"

up() { curl -sf -m 2 "$1" >/dev/null 2>&1; }
wait_up() { # url seconds what
  for _ in $(seq 1 $(( $2 * 5 ))); do up "$1" && return 0; sleep 0.2; done
  log "$3 did not answer on $1; see $STATE/log"; exit 1
}
# Each process is started by a script of its own ($STATE/run/NAME.sh), which the failover test runs again to bring
# back the master it killed.
start() { # name match-text command...
  local name=$1 match=$2; shift 2
  echo "$match" >"$STATE/run/$name.match"
  {
    echo "#!/usr/bin/env bash"
    echo "export LD_LIBRARY_PATH=$(printf '%q' "$LD_LIBRARY_PATH") DOCKER_HOST=$(printf '%q' "$DOCKER_HOST")"
    echo "setsid nohup $(printf '%q ' "$@") >>$(printf '%q' "$STATE/log/$name.out") 2>&1 </dev/null &"
    echo "echo \$! >$(printf '%q' "$STATE/run/$name.pid")"
  } >"$STATE/run/$name.sh"
  bash "$STATE/run/$name.sh"
}

agent() { # name port master resources
  local name=$1 port=$2 master=$3 resources=$4
  up "http://$IP:$port/health" && return 0
  log "starting $name on $IP:$port"
  mkdir -p "$STATE/$name"
  start "$name" "mesos-agent --master=$master --ip=$IP --port=$port" "$PREFIX/sbin/mesos-agent" --master="$master" --ip="$IP" --port="$port" \
    --hostname="$IP" --work_dir="$STATE/$name" --log_dir="$STATE/log" --launcher_dir="$PREFIX/libexec/mesos" \
    --containerizers=docker,mesos --docker="$(command -v docker)" --docker_socket="${DOCKER_HOST#unix://}" \
    --resources="$resources" --isolation=posix/cpu,posix/mem --launcher=posix --no-systemd_enable_support \
    --no-docker_kill_orphans --docker_remove_delay=10secs --executor_registration_timeout=2mins \
    --executor_shutdown_grace_period=5secs --gc_delay=1hrs \
    --executor_environment_variables="{\"LD_LIBRARY_PATH\": \"$PREFIX/lib\"}"
}

# ---- "auth": one master with framework authentication and ACLs, one agent with a reservation for the role batch
secret_file="$STATE/longshore.secret"
[ -s "$secret_file" ] || { head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$secret_file"; chmod 600 "$secret_file"; }
cat >"$STATE/credentials.json" <<EOF
{"credentials": [{"principal": "longshore", "secret": "$(cat "$secret_file")"}]}
EOF
chmod 600 "$STATE/credentials.json"
# The principal longshore may register with the roles *, batch and web, and with no other role.
cat >"$STATE/acls.json" <<'EOF'
{"permissive": true,
 "register_frameworks": [
   {"principals": {"values": ["longshore"]}, "roles": {"values": ["*", "batch", "web"]}},
   {"principals": {"values": ["longshore"]}, "roles": {"type": "NONE"}}
 ]}
EOF
if ! up "http://$IP:$AUTH_MASTER/health"; then
  log "starting master-auth on $IP:$AUTH_MASTER"
  mkdir -p "$STATE/master-auth"
  start master-auth "mesos-master --ip=$IP --port=$AUTH_MASTER" "$PREFIX/sbin/mesos-master" --ip="$IP" --port="$AUTH_MASTER" --hostname="$IP" \
    --work_dir="$STATE/master-auth" --log_dir="$STATE/log" --registry=in_memory \
    --authenticate_http_frameworks --http_framework_authenticators=basic --credentials="$STATE/credentials.json" \
    --acls="$STATE/acls.json"
fi
agent agent-auth "$AUTH_AGENT" "$IP:$AUTH_MASTER" 'cpus:3;mem:3072;ports:[31000-32000];cpus(batch):1;mem(batch):512'

# ---- "ha": ZooKeeper, three masters electing a leader with --quorum=2, one agent following the leader
if ! echo ruok | timeout 2 bash -c "exec 3<>/dev/tcp/$IP/$ZK_PORT; cat >&3; cat <&3" 2>/dev/null | grep -q imok; then
  log "starting zookeeper on $IP:$ZK_PORT"
  mkdir -p "$STATE/zookeeper/conf" "$STATE/zookeeper/data"
  cp /etc/zookeeper/conf/log4j.properties "$STATE/zookeeper/conf/"
  cat >"$STATE/zookeeper/conf/zoo.cfg" <<EOF
tickTime=500
initLimit=10
syncLimit=5
dataDir=$STATE/zookeeper/data
clientPort=$ZK_PORT
clientPortAddress=$IP
maxSessionTimeout=60000
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr
EOF
  start zookeeper "QuorumPeerMain $STATE/zookeeper/conf/zoo.cfg" java -Xmx128m -XX:+UseSerialGC \
    -Dzookeeper.log.dir="$STATE/log" -Dzookeeper.root.logger=INFO,CONSOLE \
    -cp "$STATE/zookeeper/conf:/usr/share/java/zookeeper.jar" org.apache.zookeeper.server.quorum.QuorumPeerMain "$STATE/zookeeper/conf/zoo.cfg"
  for _ in $(seq 1 100); do
    echo ruok | timeout 2 bash -c "exec 3<>/dev/tcp/$IP/$ZK_PORT; cat >&3; cat <&3" 2>/dev/null | grep -q imok && break
    sleep 0.2
  done
fi
zk="zk://$IP:$ZK_PORT/longshore-mesos"
ha_urls=()
for port in "${HA_MASTERS[@]}"; do
  ha_urls+=("http://$IP:$port")
  up "http://$IP:$port/health" && continue
  log "starting master-$port on $IP:$port"
  mkdir -p "$STATE/master-$port"
  start "master-$port" "mesos-master --ip=$IP --port=$port" "$PREFIX/sbin/mesos-master" --ip="$IP" --port="$port" --hostname="$IP" \
    --work_dir="$STATE/master-$port" --log_dir="$STATE/log" --zk="$zk" --quorum=2 --registry=replicated_log \
    --zk_session_timeout=10secs
done
agent agent-ha "$HA_AGENT" "$zk" 'cpus:2;mem:2048;ports:[31000-32000]'

# Ready when every master answers, the auth agent is registered and the ha masters have a leader with its agent.
wait_up "http://$IP:$AUTH_MASTER/health" 120 master-auth
for port in "${HA_MASTERS[@]}"; do wait_up "http://$IP:$port/health" 120 "master-$port"; done
registered() { curl -sf -m 2 -L "$1/master/slaves" 2>/dev/null | grep -q '"active":true'; }
for _ in $(seq 1 450); do
  registered "http://$IP:$AUTH_MASTER" && registered "http://$IP:${HA_MASTERS[0]}" && break
  sleep 0.2
done
registered "http://$IP:$AUTH_MASTER" || { log "the auth agent did not register; see $STATE/log"; exit 1; }
registered "http://$IP:${HA_MASTERS[0]}" || { log "the ha agent did not register with a leader; see $STATE/log"; exit 1; }

ha=$(IFS=,; echo "${ha_urls[*]}")
echo "export LONGSHORE_TEST_MESOS_MASTER=http://$IP:$AUTH_MASTER"
echo "export LONGSHORE_TEST_MESOS_PRINCIPAL=longshore"
echo "export LONGSHORE_TEST_MESOS_SECRET_FILE=$secret_file"
echo "export LONGSHORE_TEST_MESOS_HA_MASTERS=$ha"
echo "export LONGSHORE_TEST_MESOS_IMAGE=$IMAGE"
echo "export LONGSHORE_TEST_MESOS_CONTROL=$STATE/run"
