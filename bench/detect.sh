#!/usr/bin/env bash
# Detection time and false alarms of the resilient link with default settings, side by side, in
# two network-namespace pairs (needs root, openssh-server, iproute2 and iptables; see
# scripts/test.sh). Usage: bench/detect.sh [MINUTES] [TRIALS]  (default 10 minutes, 20 trials)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" != 0 ] || mkdir -p /run/sshd
exec cargo bench --locked --bench detect -- --minutes "${1:-10}" --trials "${2:-20}"
