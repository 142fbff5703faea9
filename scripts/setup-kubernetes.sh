#!/usr/bin/env bash
# Starts a real, single-node Kubernetes v1.20.2 on loopback for the tests: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, and a kubelet on containerd + runc + CNI bridge. Everything comes from
# Debian 12 packages; the four kube-* binaries come from a prebuilt tarball when one is given
# (LONGSHORE_K8S_TARBALL, which .ci/run sets from ../shared/kubernetes/), else they are built once from Debian's
# own `kubernetes` source package (1.20.2 with its full vendor/, about 20-25 min on 2 cores) and cached under
# LONGSHORE_K8S_PREFIX, outside the checkout. The test image (busybox from Debian's busybox-static) is imported into
# containerd as localhost/busybox:latest and docker.io/library/busybox:latest, so a task's `busybox` means the same
# image on podman and on the cluster.
#
# Idempotent: what is built, generated or running is kept. Prints the kubeconfig path on its last line.
#   scripts/setup-kubernetes.sh          # install, start, wait until a pod can run
#   scripts/setup-kubernetes.sh stop     # stops only what this script started (pid files), removes the pod bridge
set -euo pipefail

PREFIX=${LONGSHORE_K8S_PREFIX:-/opt/longshore-k8s}
TARBALL=${LONGSHORE_K8S_TARBALL:-}
BIN_DIR=$PREFIX/bin
RUN_DIR=$PREFIX/run
PKI=$RUN_DIR/pki
KUBECONFIG_OUT=$PREFIX/kubeconfig
CTR_SOCK=$RUN_DIR/containerd/containerd.sock
K8S_VERSION=1.20.2
APISERVER_PORT=${LONGSHORE_K8S_APISERVER_PORT:-6443}
ETCD_PORT=2379
SERVICE_CIDR=10.96.0.0/16
POD_CIDR=10.244.0.0/24   # not podman's 10.88.0.0/16
CNI_BRIDGE=k8sbr0
NODE_NAME=$(hostname | tr 'A-Z_' 'a-z-')
COMPONENTS="kube-apiserver kube-controller-manager kube-scheduler kubelet"
PAUSE_IMAGE=k8s.local/pause:3.2
TEST_IMAGE=localhost/busybox:latest

log() { printf 'setup-kubernetes: %s\n' "$*" >&2; }
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

k() { kubectl --kubeconfig "$KUBECONFIG_OUT" "$@"; }

wait_for() { # DESC TIMEOUT_S CMD...
  local desc=$1 t=$2; shift 2
  for _ in $(seq "$((t * 2))"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  log "$desc not ready after ${t}s; logs in $RUN_DIR/log"; return 1
}

running() { [ -f "$RUN_DIR/pid/$1" ] && kill -0 "$(cat "$RUN_DIR/pid/$1")" 2>/dev/null; }

# NAME CMD...: detached in its own session (outlives this script), log and pid under RUN_DIR.
start_bg() {
  local name=$1; shift
  mkdir -p "$RUN_DIR/log" "$RUN_DIR/pid"
  running "$name" && return 0
  setsid nohup "$@" >"$RUN_DIR/log/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/pid/$name"
  log "started $name (pid $!)"
}

deps() {
  local need=()
  command -v etcd >/dev/null || need+=(etcd-server)
  command -v containerd >/dev/null || need+=(containerd)
  command -v runc >/dev/null || need+=(runc)
  [ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
  [ -x /bin/busybox ] || need+=(busybox-static)
  command -v openssl >/dev/null || need+=(openssl)
  command -v ip >/dev/null || need+=(iproute2)
  command -v curl >/dev/null || need+=(curl)
  # Any kubectl serves (the tests' server-side dry run uses its kustomize); Debian's matches the server.
  command -v kubectl >/dev/null || need+=(kubernetes-client)
  if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
  fi
}

# ---------------------------------------------------------------- binaries
have_binaries() { for c in $COMPONENTS; do [ -x "$BIN_DIR/$c" ] || return 1; done; [ -f "$PREFIX/images/pause.tar" ]; }

unpack() {
  log "unpacking prebuilt binaries from $TARBALL"
  local t; t=$(mktemp -d)
  tar -xJf "$TARBALL" -C "$t"
  mkdir -p "$BIN_DIR" "$PREFIX/images"
  for c in $COMPONENTS; do install -m 755 "$t"/*/bin/"$c" "$BIN_DIR/$c"; done
  cp "$t"/*/images/pause.tar "$PREFIX/images/pause.tar"
  rm -rf "$t"
}

# Kubernetes 1.20 from Debian 12's source package, with Debian's Go 1.19: GOPATH mode (module mode with -mod=vendor
# fails on Go 1.19), the generated OpenAPI code made as `make` would, reflect2 1.0.2 swapped in (1.0.1 breaks under
# Go >= 1.18), and the kubelet patched to leave host sysctls alone on a shared machine.
build() {
  local src=$PREFIX/src gopath=$PREFIX/gopath tree
  log "building Kubernetes $K8S_VERSION from Debian's source package (once; about 20-25 min on 2 cores)"
  if ! apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Version:'; then
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources | $SUDO tee /etc/apt/sources.list.d/longshore-debian-src.sources >/dev/null
  fi
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends golang-go golang-github-modern-go-reflect2-dev \
    gcc libc6-dev dpkg-dev >&2
  mkdir -p "$src" "$BIN_DIR" "$PREFIX/images" "$gopath/src/k8s.io"
  tree=$src/kubernetes-$K8S_VERSION
  if [ ! -d "$tree/vendor" ]; then
    (cd "$src" && apt-get source --download-only kubernetes >/dev/null 2>&1 && tar xzf kubernetes_*"$K8S_VERSION".orig.tar.gz)
  fi
  local rv=$tree/vendor/github.com/modern-go/reflect2 rs=/usr/share/gocode/src/github.com/modern-go/reflect2
  if [ ! -f "$rv/go_above_118.go" ]; then
    rm -f "$rv"/*.go "$rv"/*.s; cp "$rs"/*.go "$rs"/*.s "$rv"/
    sed -i 's|^# github.com/modern-go/reflect2 v1.0.1|# github.com/modern-go/reflect2 v1.0.2|' "$tree/vendor/modules.txt"
  fi
  sed -i 's|^	b := KernelTunableModify$|	b := KernelTunableWarn // longshore: leave host sysctls alone|' "$tree/pkg/kubelet/cm/container_manager_linux.go"
  ln -sfn "$tree" "$gopath/src/k8s.io/kubernetes"
  cd "$gopath/src/k8s.io/kubernetes"
  local goenv=(env GOPATH="$gopath" GOCACHE="$PREFIX/gocache" GO111MODULE=off GOFLAGS= GOMAXPROCS=1 CGO_ENABLED=0)
  local out=pkg/generated/openapi/zz_generated.openapi.go dirs
  if [ ! -f "$out" ]; then
    nice -n 19 "${goenv[@]}" go build -p 1 -o "$PREFIX/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
    dirs=$(find -H . \( -path './_*' -o -path './.*' -o -path ./vendor \) -prune -o -type f -name '*.go' -print \
      | sed 's|^\./staging/src|vendor|; s|^\./||' | xargs grep -l '^// *+k8s:' \
      | xargs grep -l '+k8s:openapi-gen=' | grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' \
      | xargs -n1 dirname | LC_ALL=C sort -u | sed 's|^|k8s.io/kubernetes/|' | paste -sd, -)
    nice -n 19 "${goenv[@]}" "$PREFIX/openapi-gen" --logtostderr -i "$dirs" -p k8s.io/kubernetes/pkg/generated/openapi \
      -O zz_generated.openapi -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt -r "$PREFIX/openapi-violations.report"
  fi
  local pkg=k8s.io/kubernetes/vendor ld="-s -w" p c
  for p in $pkg/k8s.io/component-base/version $pkg/k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=20 -X $p.gitTreeState=clean"
  done
  for c in $COMPONENTS; do
    [ -x "$BIN_DIR/$c" ] && continue
    log "building $c"
    nice -n 19 "${goenv[@]}" go build -p 1 -tags providerless -ldflags "$ld" -o "$BIN_DIR/$c.tmp" "./cmd/$c"
    mv "$BIN_DIR/$c.tmp" "$BIN_DIR/$c"
  done
  if [ ! -f "$PREFIX/images/pause.tar" ]; then
    local root; root=$(mktemp -d)
    gcc -Os -static -DVERSION=v3.2-local -o "$root/pause" "$tree/build/pause/linux/pause.c"
    strip "$root/pause"
    oci_image "$PAUSE_IMAGE" "$root" "$PREFIX/images/pause.tar" '["/pause"]' 'null'
    rm -rf "$root"
  fi
  cd - >/dev/null
}

binaries() {
  have_binaries && return 0
  if [ -n "$TARBALL" ] && [ -f "$TARBALL" ]; then unpack; else build; fi
  have_binaries || { log "binaries missing in $BIN_DIR"; exit 1; }
}

# ---------------------------------------------------------------- images
# NAME ROOTFS OUT ENTRYPOINT_JSON CMD_JSON: a one-layer OCI image tarball made by hand (no registry, no builder).
oci_image() {
  local name=$1 rootfs=$2 out=$3 ep=$4 cmd=$5 t layer config manifest
  t=$(mktemp -d); mkdir -p "$t/blobs/sha256"
  tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -C "$rootfs" -cf "$t/layer" .
  layer=$(sha256sum "$t/layer" | cut -d' ' -f1)
  printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],"Entrypoint":%s,"Cmd":%s},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$ep" "$cmd" "$layer" >"$t/config"
  config=$(sha256sum "$t/config" | cut -d' ' -f1)
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$config" "$(stat -c%s "$t/config")" "$layer" "$(stat -c%s "$t/layer")" >"$t/manifest"
  manifest=$(sha256sum "$t/manifest" | cut -d' ' -f1)
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest" "$(stat -c%s "$t/manifest")" "$name" "${name##*:}" >"$t/index.json"
  mv "$t/layer" "$t/blobs/sha256/$layer"; mv "$t/config" "$t/blobs/sha256/$config"; mv "$t/manifest" "$t/blobs/sha256/$manifest"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$t/oci-layout"
  tar -C "$t" -cf "$out" oci-layout index.json blobs
  rm -rf "$t"
}

images() {
  local d=$PREFIX/images ctr=(ctr --address "$CTR_SOCK" -n k8s.io)
  if [ ! -f "$d/busybox.tar" ]; then
    local root; root=$(mktemp -d)
    mkdir -p "$root/bin" "$root/tmp" "$root/etc"
    cp /bin/busybox "$root/bin/busybox"
    for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"; done
    echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"; echo 'root:x:0:' >"$root/etc/group"; chmod 1777 "$root/tmp"
    oci_image "$TEST_IMAGE" "$root" "$d/busybox.tar" 'null' '["sh"]'
    rm -rf "$root"
  fi
  "${ctr[@]}" images ls -q | grep -qx "$PAUSE_IMAGE" || "${ctr[@]}" images import "$d/pause.tar" >/dev/null
  if ! "${ctr[@]}" images ls -q | grep -qx docker.io/library/busybox:latest; then
    "${ctr[@]}" images import "$d/busybox.tar" >/dev/null
    "${ctr[@]}" images tag --force "$TEST_IMAGE" docker.io/library/busybox:latest >/dev/null
  fi
  # More images to import (e.g. Longshore's own, tar files in LONGSHORE_K8S_IMAGES, ':'-separated).
  local extra
  local images_list=${LONGSHORE_K8S_IMAGES:-}
  for extra in ${images_list//:/ }; do [ -f "$extra" ] && "${ctr[@]}" images import "$extra" >/dev/null; done
  return 0
}

# ---------------------------------------------------------------- PKI, control plane, node
certs() {
  mkdir -p "$PKI"
  (
    cd "$PKI"
    [ -f ca.crt ] || openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -keyout ca.key -out ca.crt -subj "/CN=longshore-test-ca" 2>/dev/null
    if [ ! -f apiserver.crt ]; then
      printf '%s\n' "subjectAltName=DNS:localhost,DNS:$NODE_NAME,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1" \
        "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >apiserver.ext
      openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
      openssl x509 -req -sha256 -days 3650 -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -extfile apiserver.ext -out apiserver.crt 2>/dev/null
    fi
    if [ ! -f admin.crt ]; then  # system:masters, shared by the components (a test cluster, not a hardened one)
      printf '%s\n' "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=clientAuth" >client.ext
      openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=kubernetes-admin" 2>/dev/null
      openssl x509 -req -sha256 -days 3650 -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -extfile client.ext -out admin.crt 2>/dev/null
    fi
    [ -f sa.key ] || { openssl genrsa -out sa.key 2048 2>/dev/null; openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null; }
    chmod 600 ./*.key
  )
  [ -f "$KUBECONFIG_OUT" ] || cat >"$KUBECONFIG_OUT" <<KC
apiVersion: v1
kind: Config
clusters:
- name: longshore-test
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(base64 -w0 "$PKI/admin.crt")
    client-key-data: $(base64 -w0 "$PKI/admin.key")
contexts:
- name: longshore-test
  context: {cluster: longshore-test, user: admin}
current-context: longshore-test
KC
  chmod 600 "$KUBECONFIG_OUT"
}

control_plane() {
  mkdir -p "$RUN_DIR/etcd"; chmod 700 "$RUN_DIR/etcd"
  start_bg etcd etcd --name longshore-test --data-dir "$RUN_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster longshore-test=http://127.0.0.1:2380 --quota-backend-bytes=2147483648
  wait_for etcd 30 curl -sf "http://127.0.0.1:$ETCD_PORT/health"
  start_bg kube-apiserver "$BIN_DIR/kube-apiserver" --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --secure-port="$APISERVER_PORT" --insecure-port=0 \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" --client-ca-file="$PKI/ca.crt" \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local --service-cluster-ip-range="$SERVICE_CIDR" \
    --authorization-mode=Node,RBAC --allow-privileged=true \
    --kubelet-client-certificate="$PKI/admin.crt" --kubelet-client-key="$PKI/admin.key" \
    --kubelet-preferred-address-types=Hostname,InternalIP --enable-bootstrap-token-auth=false --profiling=false --v=1
  wait_for kube-apiserver 120 k get --raw /readyz
  local common=(--kubeconfig="$KUBECONFIG_OUT" --authentication-kubeconfig="$KUBECONFIG_OUT" --authorization-kubeconfig="$KUBECONFIG_OUT"
    --bind-address=127.0.0.1 --port=0 --leader-elect=false --v=1)
  start_bg kube-controller-manager "$BIN_DIR/kube-controller-manager" "${common[@]}" \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" --use-service-account-credentials=false
  start_bg kube-scheduler "$BIN_DIR/kube-scheduler" "${common[@]}"
}

node() {
  local c=$RUN_DIR/containerd
  # Address leases of a runtime that is gone (the machine restarted, the processes were ended) would only use up the range.
  running containerd || rm -rf "$RUN_DIR/cni/ipam"
  mkdir -p "$c/root" "$c/state" "$c/opt" "$RUN_DIR/cni/net.d" "$RUN_DIR/cni/ipam"
  if ip route show | grep -v " dev $CNI_BRIDGE " | grep -q "^${POD_CIDR%.*}\."; then
    log "POD_CIDR $POD_CIDR overlaps an existing route"; ip route show >&2; exit 1
  fi
  cat >"$RUN_DIR/cni/net.d/10-longshore-test.conflist" <<CNI
{ "cniVersion": "0.4.0", "name": "longshore-test",
  "plugins": [ { "type": "bridge", "bridge": "$CNI_BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
                 "ipam": { "type": "host-local", "dataDir": "$RUN_DIR/cni/ipam",
                           "ranges": [[{ "subnet": "$POD_CIDR" }]], "routes": [{ "dst": "0.0.0.0/0" }] } } ] }
CNI
  # Without CAP_SYS_RESOURCE runc cannot lower oom_score_adj (the pause container asks for -998) and every sandbox
  # fails with "can't get final child's PID from pipe: EOF": clamp to containerd's own then.
  local restrict=true
  [ "$(( 0x$(awk '/^CapEff/{print $2}' /proc/self/status) >> 24 & 1 ))" = 1 ] && restrict=false
  cat >"$c/config.toml" <<TOML
version = 2
root = "$c/root"
state = "$c/state"
[grpc]
  address = "$CTR_SOCK"
[plugins."io.containerd.internal.v1.opt"]
  path = "$c/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = $restrict
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$RUN_DIR/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
TOML
  start_bg containerd containerd --config "$c/config.toml"
  wait_for containerd 30 ctr --address "$CTR_SOCK" version
  images
  local kd=$RUN_DIR/kubelet; mkdir -p "$kd/root" "$kd/pki"
  cat >"$kd/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: "$PKI/ca.crt"}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
failSwapOn: false
makeIPTablesUtilChains: false
clusterDomain: cluster.local
clusterDNS: ["10.96.0.10"]
resolvConf: /etc/resolv.conf
evictionHard: {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"}
YAML
  # --hostname-override: the node's name must resolve to loopback, where the kubelet listens (logs and exec go there).
  start_bg kubelet "$BIN_DIR/kubelet" --config="$kd/config.yaml" --kubeconfig="$KUBECONFIG_OUT" \
    --root-dir="$kd/root" --cert-dir="$kd/pki" --hostname-override="$NODE_NAME" \
    --container-runtime=remote --container-runtime-endpoint="unix://$CTR_SOCK" --image-service-endpoint="unix://$CTR_SOCK" \
    --runtime-request-timeout=5m --oom-score-adj=0 --v=1
  wait_for "node $NODE_NAME" 120 sh -c "kubectl --kubeconfig '$KUBECONFIG_OUT' get node '$NODE_NAME' -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
  # Pods are admitted only once the namespace's default service account exists.
  wait_for "default service account" 60 k get serviceaccount default -n default
}

stop_one() {
  local f=$RUN_DIR/pid/$1 p
  [ -f "$f" ] || return 0
  p=$(cat "$f")
  if kill "$p" 2>/dev/null; then for _ in $(seq 30); do kill -0 "$p" 2>/dev/null || break; sleep 1; done; fi
  rm -f "$f"
}

stop() {
  local n t
  for n in kubelet kube-scheduler kube-controller-manager kube-apiserver; do stop_one "$n"; done
  if [ -S "$CTR_SOCK" ]; then
    for t in $(ctr --address "$CTR_SOCK" -n k8s.io tasks ls -q 2>/dev/null); do ctr --address "$CTR_SOCK" -n k8s.io tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true; done
    sleep 2
    for t in $(ctr --address "$CTR_SOCK" -n k8s.io tasks ls -q 2>/dev/null); do ctr --address "$CTR_SOCK" -n k8s.io tasks delete "$t" >/dev/null 2>&1 || true; done
  fi
  for n in containerd etcd; do stop_one "$n"; done
  if ip link show "$CNI_BRIDGE" >/dev/null 2>&1; then ip link del "$CNI_BRIDGE"; fi
  rm -rf "$RUN_DIR/cni/ipam"
  { grep -o " $RUN_DIR/[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
}

case "${1:-up}" in
  up)
    started=$SECONDS
    mkdir -p "$PREFIX"
    deps; binaries; certs; control_plane; node
    log "cluster ready in $((SECONDS - started)) s: kubectl --kubeconfig $KUBECONFIG_OUT get pods"
    echo "$KUBECONFIG_OUT"
    ;;
  stop) stop ;;
  *) echo "usage: $0 [up|stop]" >&2; exit 2 ;;
esac
