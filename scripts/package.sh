#!/usr/bin/env bash
# Builds Longshore's release artifacts into dist/ (see README "Install" and docs/operations.md):
#
#   scripts/package.sh [all|binaries|image|linux-x64|linux-arm64]...   (default: binaries)
#
#   binaries      linux-x64 and linux-arm64: a self-contained single-file `longshore` each, a .tar.gz with the README,
#                 licence notes, the systemd unit and the default configuration, and a .deb built with dpkg-deb
#   linux-x64 …   the same for one platform
#   image         the container image localhost/longshore:latest and :VERSION (linux-x64), from a Debian bookworm
#                 minbase made with debootstrap (no registry), saved as dist/longshore-image.tar
#   all           binaries and image
#
# Everything comes from NuGet and the Debian mirror. What is slow is cached outside the checkout, in
# $LONGSHORE_BUILD_CACHE (default ~/.cache/longshore-build): the debootstrap root file system and its .debs. NuGet keeps
# the runtime packs in its own global folder. Idempotent; prints the artifacts it made.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

DIST="${LONGSHORE_DIST:-$root/dist}"
CACHE="${LONGSHORE_BUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/longshore-build}"
MIRROR="${LONGSHORE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
BASE_IMAGE=localhost/longshore-base:bookworm
IMAGE=localhost/longshore
VERSION=$(sed -n 's:.*<VersionPrefix>\(.*\)</VersionPrefix>.*:\1:p' Directory.Build.props)
COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

say() { echo "package: [${SECONDS}s] $*" >&2; }

need() {
  local missing=()
  for tool in "$@"; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >&2
  fi
}

deb_arch() { case "$1" in linux-x64) echo amd64 ;; linux-arm64) echo arm64 ;; esac; }

# Licence notes: Longshore's own terms and every NuGet package and .NET runtime pack bundled into the executable (the
# publish's own deps.json), with the licence each package declares.
licence_notes() {
  local rid=$1 deps packages
  deps="src/Longshore.Cli/bin/Release/net10.0/$rid/longshore.deps.json"
  packages=$(sed -n '/"packageFolders"/,/}/ s/^ *"\(\/[^"]*\)": {.*/\1/p' src/Longshore.Cli/obj/project.assets.json | head -n 1)
  echo "Longshore $VERSION (commit $COMMIT)"
  echo
  echo "Longshore itself: see the repository it was built from for its licence."
  echo "This executable bundles the following packages, each under the licence it declares:"
  echo
  sed -n '/"libraries"/,$ { /^    "[^"]*\/[^"]*": {/ { N; s/^ *"\(runtimepack\.\)\{0,1\}\([^"/]*\)\/\([^"]*\)": {\n *"type": "\(package\|runtimepack\)".*/\2 \3/p } }' "$deps" |
    sort -f | while read -r id version; do
      local nuspec licence
      nuspec=$(ls "$packages${id,,}/$version/"*.nuspec 2>/dev/null | head -n 1 || true)
      licence=""
      if [ -n "$nuspec" ]; then
        licence=$(sed -n 's:.*<license type="expression">\([^<]*\)</license>.*:\1:p' "$nuspec" | head -n 1)
        [ -n "$licence" ] || licence=$(sed -n 's:.*<licenseUrl>\([^<]*\)</licenseUrl>.*:\1:p' "$nuspec" | head -n 1)
      fi
      printf '%-52s %-14s %s\n' "$id" "$version" "${licence:-see the package}"
    done
}

# One platform: publish, then the tarball and the .deb around the same executable.
platform() {
  local rid=$1 arch stage publish name
  arch=$(deb_arch "$rid")
  publish="$DIST/.publish/$rid"
  say "publishing $rid (self-contained, single file)"
  rm -rf "$publish"
  nice -n 10 dotnet publish src/Longshore.Cli -c Release -r "$rid" --self-contained -p:PublishSingleFile=true \
    -p:IncludeNativeLibrariesForSelfExtract=true -o "$publish" -nologo -v quiet >&2

  name="longshore-$VERSION-$rid"
  stage="$DIST/$name"
  rm -rf "$stage"
  mkdir -p "$stage"
  install -m 0755 "$publish/longshore" "$stage/longshore"
  install -m 0644 README.md deploy/systemd/longshore.service deploy/config/longshore.json "$stage/"
  licence_notes "$rid" >"$stage/LICENSE-NOTES.txt"
  tar -C "$DIST" --owner=0 --group=0 -czf "$DIST/$name.tar.gz" "$name"

  local deb="$DIST/.deb/$arch"
  rm -rf "$deb"
  install -D -m 0755 "$stage/longshore" "$deb/usr/bin/longshore"
  install -D -m 0644 deploy/systemd/longshore.service "$deb/lib/systemd/system/longshore.service"
  install -D -m 0644 deploy/config/longshore.json "$deb/etc/longshore/longshore.json"
  install -D -m 0644 README.md "$deb/usr/share/doc/longshore/README.md"
  install -D -m 0644 "$stage/LICENSE-NOTES.txt" "$deb/usr/share/doc/longshore/copyright"
  install -D -m 0755 deploy/debian/postinst "$deb/DEBIAN/postinst"
  install -D -m 0755 deploy/debian/prerm "$deb/DEBIAN/prerm"
  install -D -m 0755 deploy/debian/postrm "$deb/DEBIAN/postrm"
  echo /etc/longshore/longshore.json >"$deb/DEBIAN/conffiles"
  sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$(du -sk --exclude=DEBIAN "$deb" | cut -f1)/" \
    deploy/debian/control >"$deb/DEBIAN/control"
  dpkg-deb --root-owner-group -Zgzip --build "$deb" "$DIST/longshore_${VERSION}_$arch.deb" >&2
  built+=("$rid")
  echo "$DIST/$name.tar.gz"
  echo "$DIST/longshore_${VERSION}_$arch.deb"
}

# The base: Debian bookworm minbase from the mirror, with CA certificates (TLS to stores and queues) and time zones
# (cron queues), cached as a tarball so a new podman storage or a removed image costs an import, not a debootstrap.
base_image() {
  local rootfs="$CACHE/bookworm-minbase-amd64.tar"
  if $SUDO podman image exists "$BASE_IMAGE"; then
    return
  fi
  if [ ! -s "$rootfs" ]; then
    need debootstrap
    local dir="$CACHE/rootfs.tmp"
    say "debootstrap bookworm minbase from $MIRROR (once per machine; cached in $CACHE)"
    $SUDO rm -rf "$dir"
    mkdir -p "$CACHE/debs"
    $SUDO debootstrap --variant=minbase --include=ca-certificates,tzdata --cache-dir="$CACHE/debs" \
      bookworm "$dir" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 || { tail -n 20 "$CACHE/debootstrap.log" >&2; exit 1; }
    # What an image does not need: package indexes and caches, documentation, logs of the build.
    $SUDO rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/usr/share/doc/* \
      "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/var/log/* "$dir"/var/cache/debconf/*-old
    $SUDO tar -C "$dir" --numeric-owner -cf "$rootfs.tmp" .
    mv "$rootfs.tmp" "$rootfs"
    $SUDO rm -rf "$dir"
  fi
  say "importing $rootfs as $BASE_IMAGE"
  $SUDO podman import --change 'CMD ["/bin/bash"]' "$rootfs" "$BASE_IMAGE" >&2
}

image() {
  command -v podman >/dev/null || { echo "package: the image needs podman: run scripts/setup-engine.sh first" >&2; exit 1; }
  local stage="$DIST/longshore-$VERSION-linux-x64"
  [[ " ${built[*]} " == *" linux-x64 "* ]] || platform linux-x64 >/dev/null
  base_image
  local context="$DIST/.image"
  rm -rf "$context"
  mkdir -p "$context"
  cp "$stage/longshore" deploy/config/longshore.json deploy/container/Containerfile "$context/"
  say "building $IMAGE:$VERSION"
  # Docker format: OCI images have no HEALTHCHECK.
  $SUDO podman build --pull=never --format docker --build-arg "VERSION=$VERSION" --build-arg "COMMIT=$COMMIT" \
    -t "$IMAGE:$VERSION" -t "$IMAGE:latest" -f "$context/Containerfile" "$context" >&2
  rm -f "$DIST/longshore-image.tar"
  $SUDO podman save --format docker-archive -o "$DIST/longshore-image.tar" "$IMAGE:latest" >&2
  echo "$IMAGE:$VERSION"
  echo "$DIST/longshore-image.tar"
}

built=()
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(binaries)
need dpkg-deb:dpkg
mkdir -p "$DIST"
for target in "${targets[@]}"; do
  case "$target" in
    all)
      # The debootstrap (a fresh machine's slow part: the mirror and unpacking) runs beside the publishes, which are CPU.
      base_pid=""
      if command -v podman >/dev/null && ! $SUDO podman image exists "$BASE_IMAGE"; then
        base_image &
        base_pid=$!
      fi
      platform linux-x64; platform linux-arm64
      [ -z "$base_pid" ] || wait "$base_pid"
      image ;;
    binaries) platform linux-x64; platform linux-arm64 ;;
    linux-x64 | linux-arm64) platform "$target" ;;
    image) image ;;
    *) echo "usage: scripts/package.sh [all|binaries|image|linux-x64|linux-arm64]..." >&2; exit 2 ;;
  esac
done
(cd "$DIST" && sha256sum ./*.tar.gz ./*.deb 2>/dev/null >SHA256SUMS || true)
say "done"
