#!/usr/bin/env bash
# Regenerates tests/fixtures/slurm/ from a real Slurm cluster (the parsers in src/remote/slurm.rs are tested on
# these files). Run it where sbatch/squeue/scontrol reach an idle cluster with at least two CPUs and MinJobAge of
# a minute or more (SLURM_CONF pointing at it, e.g. the test cluster's slurm.conf); it submits short jobs only.
set -euo pipefail
out="$(cd "$(dirname "$0")/.." && pwd)/tests/fixtures/slurm"
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
state() { squeue -h -j "$1" -o %T 2>/dev/null || true; }
until_state() { for _ in $(seq 1 750); do [ "$(state "$1")" = "$2" ] && return 0; sleep 0.2; done; echo "job $1 never $2" >&2; exit 1; }
until_gone_or() { for _ in $(seq 1 750); do case $(scontrol show job -o "$1" 2>/dev/null) in *"JobState=$2"*) return 0;; esac; sleep 0.2; done; echo "job $1 never $2" >&2; exit 1; }
ncpu=$(sinfo -h -o %c | head -n 1)
sbatch --parsable --output=/dev/null --wrap 'true' > "$out/sbatch-parsable"
a=$(sbatch --parsable -c "$ncpu" --time=1 --output=/dev/null --wrap 'sleep 300')
b=$(sbatch --parsable -c "$ncpu" --output=/dev/null --wrap 'sleep 1')
until_state "$a" RUNNING
sleep 2
squeue -h -j "$a" -o '%i|%T|%r|%N|%M|%l' > "$out/squeue-running"
squeue -h -j "$b" -o '%i|%T|%r|%N|%M|%l' > "$out/squeue-pending-resources"
scontrol show job -o "$a" > "$out/scontrol-running"
scontrol show job -o "$b" > "$out/scontrol-pending-resources"
scancel "$b"
until_gone_or "$b" CANCELLED
scontrol show job -o "$b" > "$out/scontrol-cancelled"
until_gone_or "$a" TIMEOUT
scontrol show job -o "$a" > "$out/scontrol-timeout"
c=$(sbatch --parsable --output=/dev/null --wrap 'exit 3')
until_gone_or "$c" FAILED
scontrol show job -o "$c" > "$out/scontrol-failed"
squeue -h -j "$c" -o '%i|%T|%r|%N|%M|%l' > "$out/squeue-failed" 2>&1 || true
sacct -X -n -P -j "$c" -o JobIDRaw,State,ExitCode,Elapsed > "$out/sacct-disabled" 2>&1 || true
scontrol show job -o 999999 > "$out/scontrol-unknown" 2>&1 || true
squeue -h -j 999999 -o '%i|%T|%r|%N|%M|%l' > "$out/squeue-unknown" 2>&1 || true
sbatch --version > "$out/VERSION"
echo "jobs: $a $b $c" >&2
