#!/usr/bin/env bash
# CI's check of the README's demo command. docker/demo.sh, in sandbox mode, must show real rtrain
# output with a running run and a complete checkpoint; a second run must reuse the box; and
# `docker/demo.sh down` must leave nothing behind: no sshd, tmux server, trainer or rtrain client
# of the demo, and no state dir. Uses a throwaway state dir, so a demo of your own is not touched.
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d "${TMPDIR:-/tmp}/rtrain-demo-check.XXXXXX")"
export RTRAIN_DEMO_STATE="$work/state"
state="$RTRAIN_DEMO_STATE"
rtrain="$state/rtrain"
follower=""

fail() {
  echo "demo-check: FAIL: $*" >&2
  exit 1
}

cleanup() {
  local rc=$?
  if [ "$rc" != 0 ]; then
    if [ -f "$state/box/sshd.log" ]; then
      echo "---- the demo box's sshd log" >&2
      cat "$state/box/sshd.log" >&2
    fi
    echo "demo-check: tearing down after the failure" >&2
    docker/demo.sh down >&2 || true
  fi
  [ -z "$follower" ] || kill "$follower" 2>/dev/null || true
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

# A process that exists and is not a zombie.
alive() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [ "${stat%% *}" != Z ]
}

# Every live process that belongs to the demo, found independently of demo.sh's own bookkeeping:
# anything whose command line or environment names the state dir ("pid name" lines).
demo_processes() {
  local p pid
  for p in /proc/[0-9]*; do
    pid="${p#/proc/}"
    if [ "$pid" = $$ ] || [ "$pid" = "$BASHPID" ]; then continue; fi
    alive "$pid" || continue
    if grep -qzF -e "$state/" "$p/cmdline" 2>/dev/null || grep -qzF -e "=$state/" "$p/environ" 2>/dev/null; then
      echo "$pid $(tr '\0\n' '  ' <"$p/cmdline" | cut -c1-100)"
    fi
  done
}

# The text between the line "$ rtrain $1" and the next command (or a blank line).
section() {
  awk -v cmd="\$ rtrain $1" '$0 == cmd { on = 1; next } on && (/^\$ / || /^$/) { exit } on' "$2"
}

json_field() {
  python3 -c 'import json, sys
data = json.load(sys.stdin)
for key in sys.argv[1].split("."):
    data = data[key]
print(data)' "$1"
}

start=$SECONDS
echo "demo-check: docker/demo.sh --sandbox  (state: $state)"
timeout 300 docker/demo.sh --sandbox 2>&1 | tee "$work/first.txt" ||
  fail "docker/demo.sh exited non-zero (output above)"
first_time=$((SECONDS - start))

out="$work/first.txt"
grep -q '^launched run ' "$out" || fail "rtrain up did not launch a run"
section "status demo-box" "$out" >"$work/status.txt"
grep -Eq '^demo-box +run [^ ]+ RUNNING \(pid [0-9]+' "$work/status.txt" ||
  fail "rtrain status shows no running run:$(printf '\n'; cat "$work/status.txt")"
section "ckpts demo-box" "$out" >"$work/ckpts.txt"
grep -Eq '^[0-9]+ +checkpoint-[0-9]+ .* yes$' "$work/ckpts.txt" ||
  fail "rtrain ckpts shows no complete checkpoint:$(printf '\n'; cat "$work/ckpts.txt")"
for next in "attach demo-box" "logs demo-box -f" "stop demo-box" "docker/demo.sh down"; do
  grep -qF "$next" "$out" || fail "the \"what to try next\" list lacks: $next"
done

# The wrapper sets RTRAIN_CONFIG; a usage error must not show --config as if it had been required.
usage_line="$("$rtrain" ckpts 2>&1 | grep '^Usage:' || true)"
[ "$usage_line" = "Usage: rtrain ckpts <HOST>" ] || fail "usage error through the wrapper: \"$usage_line\""

# The same facts through the wrapper the demo printed, as a user pasting its commands would see them.
[ "$("$rtrain" status demo-box --json | json_field run.state)" = running ] || fail "status --json: the run is not running"
"$rtrain" ckpts demo-box --json | python3 -c 'import json, sys
ckpts = json.load(sys.stdin)["checkpoints"]
sys.exit(0 if any(c["complete"] for c in ckpts) else "ckpts --json: no complete checkpoint")'

# A client following the log, as "what to try next" suggests: `down` must end it too.
"$rtrain" logs demo-box -f >/dev/null 2>&1 &
follower=$!

echo "demo-check: docker/demo.sh again (must reuse the box and the run)"
start2=$SECONDS
timeout 120 docker/demo.sh 2>&1 | tee "$work/second.txt" || fail "docker/demo.sh (second run) exited non-zero"
second_time=$((SECONDS - start2))
grep -q '^==> reusing the sandbox demo box' "$work/second.txt" || fail "the second run did not reuse the box"
grep -q '^a run is already active on demo-box' "$work/second.txt" || fail "the second run did not find the active run"

demo_processes >"$work/before.txt"
echo "demo-check: the demo's processes before teardown:"
sed 's/^/  /' "$work/before.txt"
for what in "sshd" "tmux" "train.py" "logs demo-box -f"; do
  grep -qF "$what" "$work/before.txt" || fail "expected a running $what of the demo, found none"
done

echo "demo-check: docker/demo.sh down"
start3=$SECONDS
timeout 120 docker/demo.sh down || fail "docker/demo.sh down exited non-zero"
down_time=$((SECONDS - start3))

sleep 0.5
left="$(demo_processes)"
[ -z "$left" ] || fail "processes of the demo still run after down:$(printf '\n%s' "$left")"
while read -r pid _; do
  ! alive "$pid" || fail "pid $pid of the demo is still alive after down"
done <"$work/before.txt"
[ ! -e "$state" ] || fail "down left the state dir $state"
follower=""

echo "demo-check: ok (demo ${first_time}s, second run ${second_time}s, down ${down_time}s; nothing left running)"
