#!/usr/bin/env bash
# Detection and recovery times of the resilient link with default settings, over a real sshd
# behind the fault-injecting proxy (needs openssh-server, like the tests; see scripts/test.sh).
# Usage: bench/link.sh [TRIALS]    (default 10; about 15 s per trial)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" != 0 ] || mkdir -p /run/sshd
exec cargo bench --locked --bench link -- --trials "${1:-10}"
