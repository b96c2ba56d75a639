#!/usr/bin/env bash
# Make the local base image (Debian bookworm with Python 3.11) on a machine that cannot pull from Docker
# Hub, with debootstrap from the machine's own Debian mirror, and import it as $XMLC_BASE_IMAGE.
#   deploy/local-base.sh                 # -> xmlc-base:bookworm (about a minute; skipped when present)
#   docker build --build-arg BASE_IMAGE=xmlc-base:bookworm ...
# Real users skip this: the Dockerfiles default to the public images (python:3.11-slim, debian).
set -euo pipefail
image="${XMLC_BASE_IMAGE:-xmlc-base:bookworm}"
if docker image inspect "$image" >/dev/null 2>&1 && [ "${1:-}" != "--force" ]; then
  echo "$image exists (--force to make it again)"
  exit 0
fi
command -v debootstrap >/dev/null || {
  echo "local-base.sh: needs debootstrap (apt-get install debootstrap)" >&2
  exit 1
}
# The mirror this machine's apt uses (deb822 .sources files, then the classic list).
mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
if [ -z "$mirror" ]; then
  mirror="$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
fi
mirror="${mirror:-http://deb.debian.org/debian}"
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
echo "debootstrap bookworm from $mirror ..."
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$mirror" \
  >"$root.log" 2>&1 || { tail -20 "$root.log" >&2; exit 1; }
rm -f "$root.log"
# The image's own apt sources point at the same mirror; apt lists and caches are dropped.
echo "deb $mirror bookworm main" >"$root/etc/apt/sources.list"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
echo "made $image ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1 / 1e6}'))"
