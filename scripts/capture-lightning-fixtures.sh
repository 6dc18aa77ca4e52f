#!/usr/bin/env bash
# Regenerates tests/fixtures/lightning/ from real PyTorch Lightning 2.x runs, launched by rtrain itself (as
# scripts/capture-fixtures.sh does for Hugging Face) so the logs are exactly what rtrain's run wrapper writes.
#
#   scripts/capture-lightning-fixtures.sh VENV [RICH_VENV]
#
# VENV holds `lightning` (pip install lightning: torch from PyPI, a few GB) and neither rich nor tensorboard, so
# Lightning draws its TQDM bar and its default logger is CSVLogger. RICH_VENV (optional) also has rich and
# tensorboard: its run uses RichProgressBar (through rtrain's wrapper, which is no terminal, and once more under
# `script`, which is one) and TensorBoard's writer. Both venvs must lie outside the repository. The runs are
# scripts/lightning-capture/: a tiny MLP on random data on the CPU, ModelCheckpoint(every_n_train_steps=100,
# save_last=True), 300 steps of 88 per epoch; and a plain PyTorch loop with a tqdm bar. The script keeps:
#   tqdm-csv/train.log          the run's log as rtrain's wrapper wrote it (Lightning's TQDM bar, per epoch)
#   tqdm-csv/metrics.csv        lightning_logs/version_0/metrics.csv
#   tqdm-csv/checkpoints.txt    "name size mtime" of each file in version_0/checkpoints, last.ckpt included
#   rich-pipe/train.log         RichProgressBar through rtrain's wrapper (no terminal)
#   rich-tty/typescript         RichProgressBar on a terminal (`script -q`), escapes and all
#   rich-tty/version_0.txt      the files of its version_0/ (tfevents, no metrics.csv)
#   plain-tqdm/train.log        the plain loop's log through rtrain's wrapper
#   versions.txt
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
RUN_TIMEOUT=900

die() {
  echo "capture-lightning-fixtures: error: $*" >&2
  exit 1
}
say() { echo "capture-lightning-fixtures: $*" >&2; }

if [ $# -lt 1 ] || [ $# -gt 2 ]; then die "usage: scripts/capture-lightning-fixtures.sh VENV [RICH_VENV]"; fi
abs() { (cd "$1" 2>/dev/null && pwd) || die "no venv at $1"; }
venv="$(abs "$1")"
rich_venv="${2:+$(abs "$2")}"
for v in "$venv" $rich_venv; do
  case "$v/" in "$repo"/*) die "the venv must be outside the repository: $v" ;; esac
  case "$v" in *"'"* | *$'\n'*) die "the venv path must not contain a single quote or newline: $v" ;; esac
  [ -x "$v/bin/python" ] || die "no python in $v"
done
versions() {
  "$1/bin/python" - <<'PY'
import importlib.metadata, platform
print("python", platform.python_version())
for dist in ("lightning", "torch", "tqdm", "rich", "tensorboard"):
    try:
        print(dist, importlib.metadata.version(dist))
    except importlib.metadata.PackageNotFoundError:
        print(dist, "absent")
PY
}
"$venv/bin/python" -c 'import lightning' || die "$venv has no lightning (pip install lightning)"

dest=tests/fixtures/lightning
work="$(mktemp -d "${TMPDIR:-/tmp}/rtrain-lightning-capture.XXXXXX")"
export RTRAIN_DEMO_STATE="$work/state"
rtrain="$RTRAIN_DEMO_STATE/rtrain"
cleanup() {
  local rc=$?
  docker/demo.sh down >&2 || true
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

say "starting a sandbox box (docker/demo.sh box --sandbox, state $RTRAIN_DEMO_STATE)"
docker/demo.sh box --sandbox >&2
project="$RTRAIN_DEMO_STATE/box/home/project" # the box's HOME is local: its files are ours to read
out="$work/out"
mkdir -p "$out"

# One run through `rtrain up`, in a fresh project dir; its log lands in $out/$1/train.log.
run() {
  local name="$1" command="$2"
  rm -rf "$project"
  cp -R scripts/lightning-capture "$project"
  say "$name: rtrain up demo-box -- \"$command\""
  "$rtrain" up demo-box -- "$command" >&2
  if ! timeout "$RUN_TIMEOUT" "$rtrain" logs demo-box -f >/dev/null; then
    "$rtrain" logs demo-box -n 40 >&2 || true
    die "the $name run did not finish (its log is above)"
  fi
  mkdir -p "$out/$name"
  local logs=("$project"/logs/training_*.log) # a fresh project: its one run's log
  if [ ${#logs[@]} != 1 ] || [ ! -f "${logs[0]}" ]; then die "expected one log in $project/logs, found: ${logs[*]}"; fi
  cp "${logs[0]}" "$out/$name/train.log"
  echo "$name: rtrain up demo-box -- \"$command\"" >>"$out/commands.txt"
}
listing() {
  (cd "$1" && for f in *; do printf '%s %s %s\n' "$f" "$(stat -c %s "$f")" "$(stat -c %Y "$f")"; done)
}

run tqdm-csv "PATH='$venv/bin':\$PATH python train.py"
cp "$project/lightning_logs/version_0/metrics.csv" "$out/tqdm-csv/metrics.csv"
listing "$project/lightning_logs/version_0/checkpoints" >"$out/tqdm-csv/checkpoints.txt"

run plain-tqdm "PATH='$venv/bin':\$PATH python plain_loop.py"

if [ -n "$rich_venv" ]; then
  run rich-pipe "PATH='$rich_venv/bin':\$PATH python train.py --rich --max-steps 200"
  mkdir -p "$out/rich-tty"
  rm -rf "$work/tty" && cp -R scripts/lightning-capture "$work/tty"
  (cd "$work/tty" && COLUMNS=120 LINES=30 script -qfec "'$rich_venv/bin/python' train.py --rich --max-steps 200" typescript >/dev/null)
  cp "$work/tty/typescript" "$out/rich-tty/typescript"
  listing "$work/tty/lightning_logs/version_0" >"$out/rich-tty/version_0.txt"
fi

{
  echo "# Made by scripts/capture-lightning-fixtures.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ) ($(uname -sm))"
  echo "## VENV"
  versions "$venv"
  if [ -n "$rich_venv" ]; then
    echo "## RICH_VENV"
    versions "$rich_venv"
  fi
  echo "rtrain $("$rtrain" --version | awk '{ print $2 }') ($(git rev-parse --short HEAD))"
  cat "$out/commands.txt"
} >"$out/versions.txt"
rm "$out/commands.txt"

rm -rf "$dest"
mkdir -p "$dest"
cp -R "$out"/* "$dest/"
say "wrote $dest: $(cd "$dest" && find . -type f | sort | tr '\n' ' ')"
