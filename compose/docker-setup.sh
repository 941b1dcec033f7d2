#!/usr/bin/env bash
# Docker for the compose setup on a Debian machine with no image registry at hand (see
# ../shared/DESIGN.md, section 6). Idempotent: each step is skipped when its result is there.
#
#   1. Debian's docker.io, docker-compose (1.29) and mmdebstrap, installed with apt-get when
#      missing (as root, or through sudo like the Makefile's `beam` target).
#   2. dockerd started as root in the background when no daemon answers `docker info`,
#      and waited for (at most RUSTELIXIR_DOCKERD_WAIT seconds, default 60).
#   3. The base image the Dockerfiles build from here (RUSTELIXIR_BASE_IMAGE, default
#      rustelixir-base:bookworm): a minimal Debian bookworm made with mmdebstrap from this
#      machine's apt sources and imported, once; later runs find it in the image store.
#
# Prints nothing but what it does; exits non-zero with a reason when a step fails.
set -euo pipefail

BASE_IMAGE=${RUSTELIXIR_BASE_IMAGE:-rustelixir-base:bookworm}
DOCKERD_WAIT=${RUSTELIXIR_DOCKERD_WAIT:-60}
DOCKERD_LOG=${RUSTELIXIR_DOCKERD_LOG:-/var/log/rustelixir-dockerd.log}
# The apt sources the base image is made from, and keeps: deb822 since bookworm, else the
# one-line format (mmdebstrap reads both).
SOURCES=/etc/apt/sources.list.d/debian.sources
[ -f "$SOURCES" ] || SOURCES=/etc/apt/sources.list

say() { echo "docker-setup: $*" >&2; }

if [ "$(id -u)" = 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    say "needs root or passwordless sudo (to install packages and run dockerd)"
    exit 1
fi

# 1. Packages. dockerd (not just a docker client: one may be on PATH without an engine),
#    the v1 docker-compose (the one Debian packages), mmdebstrap for the base image.
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} from Debian's packages"
    "${SUDO[@]}" apt-get update -qq
    # Recommends left out: apparmor, needrestart and the like are no use to a test daemon.
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

# The docker client that came with the daemon, when there is one: another on PATH (a newer
# static client, say) may not speak this daemon's API version for every command.
DOCKER=docker
[ -x /usr/bin/docker ] && DOCKER=/usr/bin/docker

# 2. The daemon.
if ! "${SUDO[@]}" "$DOCKER" info >/dev/null 2>&1; then
    say "starting dockerd (log: $DOCKERD_LOG)"
    # setsid and nohup: the daemon outlives this script and the test that ran it, so later
    # runs (and images cached in it) find it up.
    "${SUDO[@]}" sh -c "setsid nohup dockerd >>'$DOCKERD_LOG' 2>&1 </dev/null &"
    deadline=$((SECONDS + DOCKERD_WAIT))
    until "${SUDO[@]}" "$DOCKER" info >/dev/null 2>&1; do
        if [ $SECONDS -ge $deadline ]; then
            say "dockerd did not answer within ${DOCKERD_WAIT}s; the end of its log:"
            "${SUDO[@]}" tail -n 30 "$DOCKERD_LOG" >&2 || true
            exit 1
        fi
        sleep 0.5
    done
fi

# 3. The base image.
if ! "${SUDO[@]}" "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    say "building $BASE_IMAGE with mmdebstrap (about a minute, once)"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    # minbase: Essential packages and apt, nothing else; this machine's sources, so that
    # apt-get inside the image reaches the same mirror the host does.
    "${SUDO[@]}" mmdebstrap --quiet --variant=minbase bookworm "$tmp/base.tar" "$SOURCES"
    "${SUDO[@]}" "$DOCKER" import "$tmp/base.tar" "$BASE_IMAGE" >/dev/null
    say "$BASE_IMAGE imported"
fi
