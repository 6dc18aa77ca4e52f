#!/usr/bin/env bash
# The long soak: attach, logs -f and forward at once through N seeded random kernel-level faults
# in two network namespaces, then the table (faults by kind, recovery p50/p95/max, bytes lost or
# duplicated, the trainer's pid and SIGHUPs). Needs root, openssh-server, tmux, python3, iproute2
# and iptables (see scripts/test.sh). Usage: bench/soak.sh [FAULTS] [SEED]   (default 100)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" != 0 ] || mkdir -p /run/sshd
seed=()
[ $# -lt 2 ] || seed=(--seed "$2")
exec cargo bench --locked --bench soak -- --faults "${1:-100}" "${seed[@]}"
