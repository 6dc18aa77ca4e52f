#!/usr/bin/env bash
# CI's check of the README's first command on its Docker path (every laptop with Docker takes it):
# docker/demo.sh --docker must build the box image, show a running run and a complete checkpoint,
# and `docker/demo.sh down` must leave no container or network of the demo behind.
#
# What it needs and lacks, it makes: Debian's docker.io (and docker-compose when neither
# `docker compose` nor `docker-compose` is present) and debootstrap are installed with apt; dockerd is
# started when no engine answers, and stopped again at the end; debian:bookworm-slim, the box's base
# image, is made locally with `debootstrap --variant=minbase bookworm` + `docker import` when the
# engine does not have it (no image registry needs to be reachable, only Debian's archive).
# Uses a throwaway demo state dir, so a demo of your own is not touched.
set -euo pipefail
cd "$(dirname "$0")/.."

PROJECT=rtrain-demo # docker/demo.sh's compose project
BASE_IMAGE=debian:bookworm-slim
ENGINE_WAIT=60 # seconds for a dockerd we start to answer

work="$(mktemp -d "${TMPDIR:-/tmp}/rtrain-docker-demo-check.XXXXXX")"
export RTRAIN_DEMO_STATE="$work/state"
state="$RTRAIN_DEMO_STATE"
dockerd_pid=""

say() { echo "docker-demo-check: $*"; }
fail() {
  echo "docker-demo-check: FAIL: $*" >&2
  exit 1
}

sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || fail "not root and no sudo: cannot install packages or start dockerd"
  sudo="sudo"
fi

apt_install() {
  say "installing $* (apt)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

stop_dockerd() {
  [ -n "$dockerd_pid" ] || return 0
  say "stopping the dockerd this script started (pid $dockerd_pid)"
  $sudo kill -TERM "$dockerd_pid" 2>/dev/null || true
  local i
  for i in $(seq 150); do
    $sudo kill -0 "$dockerd_pid" 2>/dev/null || break
    [ "$i" != 150 ] || { say "dockerd did not stop within 30 s; killing it"; $sudo kill -KILL "$dockerd_pid" 2>/dev/null || true; }
    sleep 0.2
  done
  dockerd_pid=""
}

cleanup() {
  local rc=$?
  if [ "$rc" != 0 ] && [ -d "$state" ]; then
    say "tearing down after the failure"
    docker/demo.sh down >&2 || true
  fi
  stop_dockerd
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

engine_answers() { command -v docker >/dev/null && docker info >/dev/null 2>&1; }

# The text between the line "$ rtrain $1" and the next command (or a blank line), as demo-check.sh.
section() {
  awk -v cmd="\$ rtrain $1" '$0 == cmd { on = 1; next } on && (/^\$ / || /^$/) { exit } on' "$2"
}

# The demo's containers and networks, by compose's project label (v1 and v2 both set it).
demo_objects() {
  docker ps -a --filter "label=com.docker.compose.project=$PROJECT" --format 'container {{.Names}} ({{.Status}})'
  docker network ls --filter "label=com.docker.compose.project=$PROJECT" --format 'network {{.Name}}'
}

# ---- the engine
start=$SECONDS
if ! engine_answers; then
  need=()
  command -v dockerd >/dev/null || need+=(docker.io)
  command -v docker >/dev/null || need+=(docker.io)
  [ ${#need[@]} = 0 ] || apt_install docker.io
  say "no Docker engine answers: starting dockerd (log: $work/dockerd.log)"
  # Its own session, so a Ctrl-C meant for this script reaches it only through stop_dockerd.
  $sudo setsid dockerd >"$work/dockerd.log" 2>&1 </dev/null &
  dockerd_pid=$!
  for i in $(seq $((ENGINE_WAIT * 5))); do
    engine_answers && break
    if ! $sudo kill -0 "$dockerd_pid" 2>/dev/null; then
      cat "$work/dockerd.log" >&2
      dockerd_pid=""
      fail "dockerd exited (its log is above)"
    fi
    [ "$i" != $((ENGINE_WAIT * 5)) ] || { tail -30 "$work/dockerd.log" >&2; fail "dockerd did not answer within ${ENGINE_WAIT}s"; }
    sleep 0.2
  done
fi
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then
  apt_install docker-compose
fi
compose_version="$(docker compose version 2>/dev/null || docker-compose version --short)"
say "engine $(docker version --format '{{.Server.Version}}') ($(docker info --format '{{.Driver}}')), compose: $compose_version ($((SECONDS - start)) s)"

# ---- the base image
start=$SECONDS
if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  say "$BASE_IMAGE is present"
else
  command -v debootstrap >/dev/null || apt_install debootstrap
  say "$BASE_IMAGE is absent: making it with debootstrap --variant=minbase bookworm"
  rootfs="$work/rootfs"
  $sudo debootstrap --variant=minbase bookworm "$rootfs" >"$work/debootstrap.log" 2>&1 ||
    { tail -30 "$work/debootstrap.log" >&2; fail "debootstrap failed (the end of its log is above)"; }
  $sudo tar -C "$rootfs" -c . | docker import - "$BASE_IMAGE" >/dev/null
  $sudo rm -rf "$rootfs"
  say "made $BASE_IMAGE in $((SECONDS - start)) s"
fi

# ---- the demo
left="$(demo_objects)"
[ -z "$left" ] || fail "containers or networks of the demo exist before the check (another demo is up?):$(printf '\n%s' "$left")"
start=$SECONDS
say "docker/demo.sh --docker  (state: $state)"
timeout 1200 docker/demo.sh --docker 2>&1 | tee "$work/demo.txt" || fail "docker/demo.sh --docker exited non-zero (output above)"
demo_time=$((SECONDS - start))
out="$work/demo.txt"
grep -q '^==> demo box container up' "$out" || fail "the demo did not start the container"
grep -q '^launched run ' "$out" || fail "rtrain up did not launch a run"
section "status demo-box" "$out" >"$work/status.txt"
grep -Eq '^demo-box +run [^ ]+ RUNNING \(pid [0-9]+' "$work/status.txt" ||
  fail "rtrain status shows no running run:$(printf '\n'; cat "$work/status.txt")"
section "ckpts demo-box" "$out" >"$work/ckpts.txt"
grep -Eq '^[0-9]+ +checkpoint-[0-9]+ .* yes$' "$work/ckpts.txt" ||
  fail "rtrain ckpts shows no complete checkpoint:$(printf '\n'; cat "$work/ckpts.txt")"
[ "$(cat "$state/mode")" = docker ] || fail "the demo's state says mode $(cat "$state/mode"), not docker"
before="$(demo_objects)"
grep -q '^container ' <<<"$before" || fail "no container of the demo is listed while it runs"
say "while the demo runs:"
while IFS= read -r line; do echo "  $line"; done <<<"$before"

start=$SECONDS
say "docker/demo.sh down"
timeout 180 docker/demo.sh down || fail "docker/demo.sh down exited non-zero"
down_time=$((SECONDS - start))
left="$(demo_objects)"
[ -z "$left" ] || fail "down left containers or networks of the demo:$(printf '\n%s' "$left")"
[ ! -e "$state" ] || fail "down left the state dir $state"

say "ok (demo ${demo_time}s, down ${down_time}s; no container or network of the demo left)"
