#!/usr/bin/env bash
# rtrain's demo: build rtrain, start a local demo gpu-box, and run the real commands against it.
#
#   docker/demo.sh [up] [--docker|--sandbox]   build rtrain, start (or reuse) the box, `rtrain up`,
#                                              wait for the first checkpoint, `rtrain status`, `rtrain ckpts`
#   docker/demo.sh box [--docker|--sandbox]    only build rtrain and start (or reuse) the box and the
#                                              wrapper: no run (scripts/capture-fixtures.sh uses this)
#   docker/demo.sh down                        stop everything the demo started and remove its state
#
# The box is a Docker container (docker/compose.yaml) when a Docker engine answers, otherwise a local
# sandbox: a throwaway /usr/sbin/sshd on 127.0.0.1 with its own host key, HOME and tmux server. Either
# way the demo keeps its own ssh config, known_hosts, key and rtrain config in one state dir,
# ${RTRAIN_DEMO_STATE:-${XDG_STATE_HOME:-~/.local/state}/rtrain-demo}, and a wrapper there,
# $STATE/rtrain, runs rtrain with them: your ~/.ssh is never read or written.
set -euo pipefail

HOST=demo-box
# Fast enough to show checkpoints within seconds, long enough (5 min) to try attach/logs/stop on it.
MAX_STEPS=600
SAVE_STEPS=20
SECONDS_PER_STEP=0.5
TRAIN_COMMAND="make train ARGS='--max-steps $MAX_STEPS --save-steps $SAVE_STEPS --seconds-per-step $SECONDS_PER_STEP'"
CHECKPOINT_WAIT=90 # seconds before the demo gives up on the first checkpoint
# The PATH sshd gives a session: the box's tools must be found there, not just on this shell's PATH.
BOX_PATH=/usr/local/bin:/usr/bin:/bin

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${RTRAIN_DEMO_STATE:-${XDG_STATE_HOME:-$HOME/.local/state}/rtrain-demo}"
client="$STATE/client"          # the HOME rtrain runs with: .ssh/config, known_hosts, key
box="$STATE/box"                # sandbox only: sshd's files, the box's HOME and tmux dir
wrapper="$STATE/rtrain"
marker="$STATE/.rtrain-demo"    # only a dir holding this is ever removed by `down`
# A release build, like the numbers in the README (a debug rtrain is 130 MB and slower).
rtrain_bin="${CARGO_TARGET_DIR:-$repo/target}/release/rtrain"
case "$rtrain_bin" in /*) ;; *) rtrain_bin="$repo/$rtrain_bin" ;; esac # cargo runs in $repo

die() {
  echo "demo.sh: error: $*" >&2
  exit 1
}
say() { echo "==> $*"; }

# A path as a shell word a user can paste: ~/... when that needs no quoting, else single-quoted.
show() {
  local p="$1"
  # shellcheck disable=SC2088 # a literal ~ for display: the user's shell expands it
  case "$p" in "$HOME"/*) p="~/${p#"$HOME"/}" ;; esac
  if [[ "$p" =~ ^[A-Za-z0-9_./~+-]+$ ]]; then
    printf '%s' "$p"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

# Single-quoted for /bin/sh (the wrapper).
sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

usage() {
  sed -n '4,8s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

# apt_install WHY PACKAGE...: as root, or with sudo, like scripts/test.sh.
apt_install() {
  local why="$1"
  shift
  command -v apt-get >/dev/null || die "$why needs $*: install them and run this again"
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "$why needs $* and cannot install them (not root, no sudo)"
    sudo="sudo"
  fi
  say "installing $* for $why (apt)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# ---------------------------------------------------------------------------------------------------
# processes (Linux /proc; the sandbox only runs there)

# "pid ppid" for every process.
process_table() {
  local p stat rest ppid
  for p in /proc/[0-9]*; do
    stat="$(cat "$p/stat" 2>/dev/null)" || continue
    rest="${stat##*) }" # after "pid (comm) ": "state ppid ..."
    read -r _ ppid _ <<<"$rest"
    echo "${p#/proc/} $ppid"
  done
}

descendants() {
  process_table | awk -v root="$1" '
    { kids[$2] = kids[$2] " " $1 }
    END {
      queue = root
      while (queue != "") {
        n = split(queue, q, " "); queue = ""
        for (i = 1; i <= n; i++) {
          m = split(kids[q[i]], k, " ")
          for (j = 1; j <= m; j++) { print k[j]; queue = queue " " k[j] }
        }
      }
    }'
}

# This script and the shells that started it: never swept.
ancestors() {
  local pid=$$ ppid
  while [ "$pid" -gt 1 ] 2>/dev/null; do
    echo "$pid"
    ppid="$(awk '{ sub(/.*\) /, ""); print $2 }' "/proc/$pid/stat" 2>/dev/null)" || break
    pid="${ppid:-0}"
  done
}

# Every process the demo started, found by what it carries: sshd by its config path, the box's
# sessions, tmux server and run by the HOME/TMUX_TMPDIR sshd gave them, and rtrain clients started
# through the wrapper by their RTRAIN_CONFIG.
leftovers() {
  [ -d /proc/self ] || return 0
  local p pid mine
  mine=" $(ancestors | tr '\n' ' ') "
  for p in /proc/[0-9]*; do
    pid="${p#/proc/}"
    [[ "$mine" == *" $pid "* ]] && continue
    if is_box_sshd "$pid" ||
      grep -qzxF -e "HOME=$box/home" -e "TMUX_TMPDIR=$box/tmux" -e "RTRAIN_CONFIG=$STATE/rtrain.yaml" \
        "$p/environ" 2>/dev/null; then
      echo "$pid"
    fi
  done
}

# TERM, up to 5 s, then KILL.
terminate() {
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  local i pid alive
  for i in $(seq 50); do
    alive=""
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ -n "$alive" ] || return 0
    [ "$i" = 50 ] || sleep 0.1
  done
  kill -KILL "$@" 2>/dev/null || true
}

sweep() {
  local pids
  pids="$(leftovers | tr '\n' ' ')"
  if [ -n "${pids// /}" ]; then
    echo "ending leftover demo processes: $pids"
    # shellcheck disable=SC2086 # a list of pids
    terminate $pids
  fi
}

# ---------------------------------------------------------------------------------------------------
# the sandbox box: a throwaway sshd

# Whether pid $1 is the box's sshd listener. Its config path is matched as a substring: sshd rewrites
# its command line into a title ("sshd: /usr/sbin/sshd -D -f ... [listener] ...").
is_box_sshd() {
  local first=""
  IFS= read -r -d '' first 2>/dev/null <"/proc/$1/cmdline" || true
  case "$first" in
    /usr/sbin/sshd | "sshd: "*) grep -qzF -e "$box/sshd_config" "/proc/$1/cmdline" 2>/dev/null ;;
    *) return 1 ;;
  esac
}

# The running box's sshd, from its pid file.
sshd_pid() {
  local pid
  pid="$(cat "$box/sshd.pid" 2>/dev/null)" || return 1
  [ -n "$pid" ] && is_box_sshd "$pid" && echo "$pid"
}

# True when something speaking SSH answers on 127.0.0.1:$1.
ssh_banner() {
  local line=""
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  IFS= read -r -t 2 line <&3 || true
  exec 3<&- 3>&-
  [[ "$line" == SSH-2.0-* ]]
}

install_missing() {
  local need=()
  [ -x /usr/sbin/sshd ] || need+=(openssh-server)
  command -v ssh-keygen >/dev/null || need+=(openssh-client)
  PATH="$BOX_PATH" command -v tmux >/dev/null || need+=(tmux)
  PATH="$BOX_PATH" command -v python3 >/dev/null || need+=(python3)
  PATH="$BOX_PATH" command -v make >/dev/null || need+=(make)
  [ ${#need[@]} -eq 0 ] || apt_install "the sandbox box" "${need[@]}"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

write_sshd_config() {
  # As tests/support/sshd.rs does: one user (whoever runs the demo), key only, 127.0.0.1 only, and
  # the box's own HOME and tmux socket dir for every session.
  cat >"$box/sshd_config" <<EOF
# Written by docker/demo.sh: the demo box's throwaway sshd (removed by \`docker/demo.sh down\`).
Port $1
ListenAddress 127.0.0.1
HostKey "$box/host_key"
PidFile "$box/sshd.pid"
AuthorizedKeysFile "$box/authorized_keys"
AllowUsers $(id -un)
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
# Not root's sshd: the files it checks are the demo's own (mode 700/600), not a real home's.
StrictModes no
PrintMotd no
SetEnv "HOME=$box/home" "TMUX_TMPDIR=$box/tmux"
EOF
}

# Every sshd of the box, not only the one in the pid file (sshd deletes that file when it is
# killed, which would hide a second one), with its per-connection children: they outlive a killed
# listener.
stop_sandbox_sshd() {
  local p pid pids=""
  if [ -d /proc/self ]; then
    for p in /proc/[0-9]*; do
      pid="${p#/proc/}"
      is_box_sshd "$pid" && pids="$pids $(descendants "$pid" | tr '\n' ' ') $pid"
    done
  fi
  # shellcheck disable=SC2086 # a list of pids
  terminate $pids
  rm -f "$box/sshd.pid"
}

start_sandbox() {
  mkdir -p "$box/home" "$box/tmux"
  chmod 700 "$box" "$box/tmux"
  [ -f "$box/host_key" ] || ssh-keygen -q -t ed25519 -N '' -C "rtrain-demo-box" -f "$box/host_key"
  cp "$client/.ssh/id_ed25519.pub" "$box/authorized_keys"
  [ -d "$box/home/project" ] || cp -R "$repo/docker/gpu-box/project" "$box/home/project"
  box_user="$(id -un)"
  box_host_key="$(cut -d' ' -f1,2 "$box/host_key.pub")"

  local pid
  if pid="$(sshd_pid)" && box_port="$(cat "$box/port" 2>/dev/null)" && ssh_banner "$box_port" 2>/dev/null; then
    say "reusing the sandbox demo box: sshd (pid $pid) on 127.0.0.1:$box_port"
    return
  fi
  stop_sandbox_sshd # a remnant that no longer answers
  # sshd refuses to start without its privilege-separation directory.
  [ "$(id -u)" != 0 ] || mkdir -p /run/sshd
  local try i
  for try in 1 2 3 4 5; do
    box_port="$(free_port)"
    write_sshd_config "$box_port"
    # Its own session, so neither a closed terminal nor a Ctrl-C meant for the demo reaches it.
    setsid /usr/sbin/sshd -D -f "$box/sshd_config" -E "$box/sshd.log" </dev/null >/dev/null 2>&1 &
    pid=$!
    for i in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break # exited: port taken meanwhile, or a config error
      if ssh_banner "$box_port" 2>/dev/null; then
        echo "$pid" >"$box/sshd.pid"
        echo "$box_port" >"$box/port"
        say "started the sandbox demo box: sshd (pid $pid) on 127.0.0.1:$box_port, HOME $(show "$box/home")"
        return
      fi
      [ "$i" = 100 ] || sleep 0.1
    done
    terminate "$pid"
    echo "demo.sh: sshd did not answer on 127.0.0.1:$box_port (try $try of 5)" >&2
  done
  echo "---- $box/sshd.log" >&2
  cat "$box/sshd.log" >&2 || true
  die "sshd did not start; its log is above"
}

# ---------------------------------------------------------------------------------------------------
# the Docker box

docker_answers() { command -v docker >/dev/null && docker info >/dev/null 2>&1; }

compose() {
  if docker compose version >/dev/null 2>&1; then
    docker compose -p rtrain-demo -f "$repo/docker/compose.yaml" "$@"
  elif command -v docker-compose >/dev/null; then
    docker-compose -p rtrain-demo -f "$repo/docker/compose.yaml" "$@"
  else
    die "Docker Compose not found: install the compose plugin (docker compose), or use --sandbox"
  fi
}

start_docker() {
  RTRAIN_DEMO_AUTHORIZED_KEY="$(cat "$client/.ssh/id_ed25519.pub")"
  export RTRAIN_DEMO_AUTHORIZED_KEY
  say "building and starting the demo box container (docker compose, image rtrain-demo-box)"
  compose up -d --build
  local published i
  published="$(compose port gpu-box 22)" || die "the container publishes no port for sshd"
  box_port="${published##*:}"
  for i in $(seq 150); do
    if ssh_banner "$box_port" 2>/dev/null; then break; fi
    [ "$i" != 150 ] || { compose logs --tail 30 gpu-box >&2 || true; die "sshd in the container did not answer on 127.0.0.1:$box_port"; }
    sleep 0.2
  done
  box_user=trainer
  box_host_key="$(compose exec -T gpu-box cat /etc/ssh/ssh_host_ed25519_key.pub | cut -d' ' -f1,2)"
  [ -n "$box_host_key" ] || die "could not read the container's host key"
  say "demo box container up: sshd on 127.0.0.1:$box_port"
}

# ---------------------------------------------------------------------------------------------------
# the client side: rtrain's view of the box, all inside $STATE

prepare_state() {
  case "$STATE" in
    *[\"$'\n']*) die "the state dir path must not contain a double quote or newline: $STATE" ;;
  esac
  if [ -d "$STATE" ] && [ ! -f "$marker" ] && [ -n "$(ls -A "$STATE")" ]; then
    die "$STATE exists and was not made by the demo (no .rtrain-demo in it); set RTRAIN_DEMO_STATE to another dir"
  fi
  mkdir -p "$client/.ssh"
  chmod 700 "$STATE" "$client" "$client/.ssh"
  echo "Made by rtrain's docker/demo.sh; \`docker/demo.sh down\` removes this directory." >"$marker"
  [ -f "$client/.ssh/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C "rtrain-demo" -f "$client/.ssh/id_ed25519"
}

write_client() {
  cat >"$client/.ssh/config" <<EOF
# Written by docker/demo.sh: the demo box, for the demo's wrapper $wrapper only.
Host $HOST
  HostName 127.0.0.1
  Port $box_port
  User $box_user
  IdentityFile "$client/.ssh/id_ed25519"
  IdentitiesOnly yes
  IdentityAgent none
  UserKnownHostsFile "$client/.ssh/known_hosts"
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
EOF
  printf '[127.0.0.1]:%s %s\n' "$box_port" "$box_host_key" >"$client/.ssh/known_hosts"

  cat >"$STATE/rtrain.yaml" <<EOF
# Written by docker/demo.sh: rtrain's config for the demo box.
hosts:
  $HOST:
    workdir: ~/project
    command: "$TRAIN_COMMAND"
EOF

  {
    echo '#!/bin/sh'
    echo "# Written by docker/demo.sh: rtrain with the demo's own ssh config, known_hosts and key"
    echo "# (HOME is the demo's client dir) and rtrain config; your ~/.ssh is not used."
    echo "HOME=$(sq "$client") RTRAIN_CONFIG=$(sq "$STATE/rtrain.yaml")"
    echo 'export HOME RTRAIN_CONFIG'
    echo "exec $(sq "$rtrain_bin") \"\$@\""
  } >"$wrapper"
  chmod 755 "$wrapper"
}

# ---------------------------------------------------------------------------------------------------
# the demo itself: real commands, real output

run() {
  echo
  echo "\$ rtrain $*"
  "$wrapper" "$@"
}

wait_for_checkpoint() {
  echo
  printf 'waiting for the first complete checkpoint (one every %s steps of %s s) ' "$SAVE_STEPS" "$SECONDS_PER_STEP"
  local start=$SECONDS
  until "$wrapper" ckpts "$HOST" --json 2>/dev/null | grep -q '"complete": *true'; do
    if [ $((SECONDS - start)) -ge "$CHECKPOINT_WAIT" ]; then
      echo
      run status "$HOST" || true
      run logs "$HOST" -n 30 || true
      die "no complete checkpoint after ${CHECKPOINT_WAIT}s: the run's status and log are above"
    fi
    printf '.'
    sleep 2
  done
  echo " ready after $((SECONDS - start))s"
}

next_steps() {
  local r down
  r="$(show "$wrapper")"
  down="$(show "$repo/docker/demo.sh") down"
  [ -z "${RTRAIN_DEMO_STATE:-}" ] || down="RTRAIN_DEMO_STATE=$(show "$STATE") $down"
  echo
  echo "What to try next ($r is rtrain pointed at the demo box; the run goes on for about $((MAX_STEPS / 2 / 60)) minutes):"
  local width=$((${#r} + 24)) cmd what
  while IFS='|' read -r cmd what; do
    printf '  %-*s  # %s\n' "$width" "$cmd" "$what"
  done <<EOF
$r attach $HOST|the run's tmux window, live (detach: Ctrl-b d)
$r logs $HOST -f|follow the log across reconnects (Ctrl-C to quit)
$r status $HOST --watch|progress, ETA, loss, latest checkpoint
$r stop $HOST|Ctrl-C the run, then TERM, then KILL
$r resume $HOST|continue from the newest complete checkpoint
$down|stop the box and everything it runs; remove $(show "$STATE")
EOF
  echo
  echo "Your own box: add it to ~/.ssh/config (Host gpu-box / HostName ... / User ...), then \`rtrain up gpu-box\`."
}

# The box and the wrapper, ready for rtrain commands: what `up` shows the run on.
box_up() {
  local requested="$1" previous="" mode
  previous="$(cat "$STATE/mode" 2>/dev/null || true)"
  if [ -n "$requested" ]; then
    mode="$requested"
  elif [ -n "$previous" ]; then
    mode="$previous"
  elif docker_answers; then
    mode=docker
  else
    mode=sandbox
  fi
  if [ -n "$previous" ] && [ "$previous" != "$mode" ]; then
    say "the running demo box is a $previous box; replacing it with a $mode box"
    down
  fi
  if [ "$mode" = docker ]; then
    docker_answers || die "no Docker engine answers (docker info failed); start Docker, or use --sandbox"
    command -v ssh-keygen >/dev/null || die "ssh-keygen not found: install OpenSSH's client tools"
  else
    install_missing
  fi

  command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs), then run this again"
  # rustup brings no C compiler, and the crypto crates (ring) build C and assembly.
  command -v cc >/dev/null || apt_install "building rtrain" gcc libc6-dev
  say "building rtrain (cargo build --release)"
  (cd "$repo" && cargo build --locked --release)
  [ -x "$rtrain_bin" ] || die "cargo build did not produce $rtrain_bin"

  prepare_state
  echo "$mode" >"$STATE/mode"
  if [ "$mode" = docker ]; then
    start_docker
  else
    [ -z "$previous$requested" ] && say "no Docker engine answers (docker info): using a local sandbox box instead"
    start_sandbox
  fi
  write_client
  say "demo state in $(show "$STATE"); rtrain runs as $(show "$wrapper") (its own ssh config and known_hosts)"
}

up() {
  box_up "$1"
  run up "$HOST"
  wait_for_checkpoint
  run status "$HOST"
  run ckpts "$HOST"
  next_steps
}

down() {
  if [ ! -d "$STATE" ]; then
    sweep
    say "no demo state at $(show "$STATE"): nothing to tear down"
    return
  fi
  [ -f "$marker" ] || die "$STATE was not made by the demo (no .rtrain-demo in it); not touching it"
  case "$(cat "$STATE/mode" 2>/dev/null || true)" in
    docker)
      say "stopping the demo box container"
      RTRAIN_DEMO_AUTHORIZED_KEY="" compose down --volumes --remove-orphans --timeout 5
      ;;
    *)
      if sshd_pid >/dev/null && [ -x "$wrapper" ]; then
        run stop "$HOST" --timeout 5 || echo "demo.sh: rtrain stop failed; ending the run by force below" >&2
      fi
      if command -v tmux >/dev/null; then
        TMUX_TMPDIR="$box/tmux" tmux kill-server 2>/dev/null || true
      fi
      stop_sandbox_sshd
      ;;
  esac
  sweep
  local left
  left="$(leftovers | tr '\n' ' ')"
  [ -z "${left// /}" ] || die "processes of the demo are still running: $left"
  rm -rf "$STATE"
  say "demo box stopped; removed $(show "$STATE")"
}

mode=""
action=up
for arg in "$@"; do
  case "$arg" in
    up) action=up ;;
    box) action=box ;;
    down) action=down ;;
    --docker) mode=docker ;;
    --sandbox) mode=sandbox ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $arg" ;;
  esac
done
case "$action" in
  up) up "$mode" ;;
  box) box_up "$mode" ;;
  down) down ;;
esac
