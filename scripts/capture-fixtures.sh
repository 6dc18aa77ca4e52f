#!/usr/bin/env bash
# Regenerates the real Hugging Face fixtures in tests/fixtures/hf-transformers-<version>/ from a real
# Trainer run, launched by rtrain itself so the log is exactly what rtrain's run wrapper writes.
#
#   scripts/capture-fixtures.sh [--create-venv] VENV
#
# VENV is a Python venv holding torch, transformers, accelerate and PyYAML (--create-venv makes it
# first, with the versions pinned below, from PyPI: a few GB, so it is not part of the test command;
# VENV must lie outside the repository). The run is scripts/hf-capture/: a randomly initialised tiny
# GPT-2 trained for 120 steps on random token ids, on the CPU, with HF_HUB_OFFLINE=1, so nothing is
# downloaded. It runs on a throwaway sandbox box (docker/demo.sh box --sandbox: a local sshd with
# its own HOME and tmux server) through `rtrain up`, and the script keeps:
#   train.log            the run's log as rtrain's wrapper wrote it (tqdm's \r redraws included)
#   trainer_state.json   from the newest checkpoint
#   outputs-listing.txt  every file under outputs/ with its size in bytes, "./path size", C-sorted
#   versions.txt         Python and package versions, and the command that ran
# The box is taken down afterwards (docker/demo.sh down), whatever happened.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

# The versions of the committed capture (tests/fixtures/README.md says which files they made).
PINS=(torch==2.15.0 transformers==5.24.0 accelerate==1.15.0 pyyaml==6.0.4)
RUN_TIMEOUT=900 # seconds; the run takes about 20 s on two busy cores, most of it importing torch

die() {
  echo "capture-fixtures: error: $*" >&2
  exit 1
}
say() { echo "capture-fixtures: $*" >&2; }

create=""
venv=""
for arg in "$@"; do
  case "$arg" in
    --create-venv) create=1 ;;
    -h | --help) sed -n '5p' "$0" | sed 's/^# *//'; exit 0 ;;
    -*) die "unknown option: $arg" ;;
    *) [ -z "$venv" ] || die "one VENV only"; venv="$arg" ;;
  esac
done
[ -n "$venv" ] || die "usage: scripts/capture-fixtures.sh [--create-venv] VENV"
[ -n "$create" ] && mkdir -p "$(dirname "$venv")"
parent="$(cd "$(dirname "$venv")" 2>/dev/null && pwd)" || die "no venv at $venv (pass --create-venv to make one)"
venv="$parent/$(basename "$venv")"
case "$venv/" in "$repo"/*) die "the venv must be outside the repository: $venv" ;; esac

if [ -n "$create" ] && [ ! -x "$venv/bin/python" ]; then
  say "creating $venv with ${PINS[*]}"
  python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt install python3-venv)"
  "$venv/bin/python" -m pip install -q "${PINS[@]}"
fi
py="$venv/bin/python"
[ -x "$py" ] || die "no venv at $venv (pass --create-venv to make one)"
case "$venv" in *"'"* | *$'\n'*) die "the venv path must not contain a single quote or newline: $venv" ;; esac
versions="$("$py" - <<'PY'
import importlib.metadata, platform
import accelerate, torch, transformers, yaml  # all four must import, not merely be installed
print("python", platform.python_version())
for dist in ("torch", "transformers", "accelerate", "pyyaml"):
    print(dist, importlib.metadata.version(dist))
PY
)" || die "$venv lacks torch, transformers, accelerate or PyYAML (pass --create-venv, or pip install ${PINS[*]})"
tf_version="$(awk '$1 == "transformers" { print $2 }' <<<"$versions")"
for pin in "${PINS[@]}"; do
  grep -qixF "${pin/==/ }" <<<"$versions" || say "note: $venv does not have $pin (it has: $(tr '\n' ' ' <<<"$versions"))"
done
dest="tests/fixtures/hf-transformers-$tf_version"

work="$(mktemp -d "${TMPDIR:-/tmp}/rtrain-capture.XXXXXX")"
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
rm -rf "$project"
cp -R scripts/hf-capture "$project"
cp docker/gpu-box/project/Makefile "$project/Makefile"

# `make train`, as rtrain's default command, with the venv first on PATH (so the log's first line,
# make's echo, names no path of this machine); one word after `--` is the run's shell command line.
command="HF_HUB_OFFLINE=1 PATH='$venv/bin':\$PATH make train PYTHON=python"
say "rtrain up demo-box -- \"$command\""
"$rtrain" up demo-box -- "$command" >&2
# -f follows until the run ends: exit 0 only when it finished (exit status 0).
if ! timeout "$RUN_TIMEOUT" "$rtrain" logs demo-box -f >/dev/null; then
  "$rtrain" logs demo-box -n 40 >&2 || true
  die "the training run did not finish (its log is above)"
fi

logs=("$project"/logs/training_*.log)
if [ ${#logs[@]} != 1 ] || [ ! -f "${logs[0]}" ]; then die "expected one log in $project/logs, found: ${logs[*]}"; fi
newest="$(cd "$project/outputs" && find . -maxdepth 1 -name 'checkpoint-*' | sed 's/.*-//' | sort -n | tail -1)"
if [ -z "$newest" ] || [ ! -f "$project/outputs/checkpoint-$newest/trainer_state.json" ]; then
  die "no checkpoint with a trainer_state.json in $project/outputs"
fi

mkdir -p "$work/out"
cp "${logs[0]}" "$work/out/train.log"
cp "$project/outputs/checkpoint-$newest/trainer_state.json" "$work/out/trainer_state.json"
(cd "$project/outputs" && find . -type f | LC_ALL=C sort | while IFS= read -r f; do
  printf '%s %s\n' "$f" "$(stat -c %s "$f")"
done) >"$work/out/outputs-listing.txt"
{
  echo "# Made by scripts/capture-fixtures.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ) ($(uname -sm))"
  echo "$versions"
  echo "rtrain $("$rtrain" --version | awk '{ print $2 }') ($(git rev-parse --short HEAD))"
  echo "command: rtrain up demo-box -- \"$command\""
} >"$work/out/versions.txt"

rm -rf "$dest"
mkdir -p "$dest"
cp "$work/out"/* "$dest/"
say "wrote $dest: $(cd "$dest" && echo *)"
