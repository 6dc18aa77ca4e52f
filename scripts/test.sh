#!/usr/bin/env bash
# The whole test suite. Installs what the tests need (a real OpenSSH server, tmux, GNU screen, python3 for the
# test trainer, nc for the ProxyCommand tests, pam_google_authenticator and the passwd tools for the
# password and keyboard-interactive login tests, dbus for a private session bus, curl for the
# box-side webhooks, Debian's slurm-wlm and munge for a real single-node Slurm cluster, iproute2 and
# iptables for the network-namespace tests, busybox for a box without GNU coreutils) when missing, then runs
# every unit and integration test.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
command -v tmux >/dev/null || need+=(tmux)
command -v screen >/dev/null || need+=(screen)
command -v python3 >/dev/null || need+=(python3)
command -v pkill >/dev/null || need+=(procps)
command -v nc >/dev/null || need+=(netcat-openbsd)
command -v useradd >/dev/null || need+=(passwd)
ls /lib/*/security/pam_google_authenticator.so /usr/lib/*/security/pam_google_authenticator.so >/dev/null 2>&1 ||
  need+=(libpam-google-authenticator)
{ command -v dbus-daemon >/dev/null && command -v dbus-monitor >/dev/null; } || need+=(dbus)
command -v curl >/dev/null || need+=(curl)
[ -x /usr/sbin/slurmctld ] && [ -x /usr/sbin/slurmd ] || need+=(slurm-wlm)
[ -x /usr/sbin/munged ] || need+=(munge)
# The kernel-level fault tests build network namespaces (ip, from iproute2) and make faults with
# netfilter (iptables).
command -v ip >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables)
# A box without GNU coreutils is a PATH of BusyBox applets (Debian's busybox).
[ -x /usr/bin/busybox ] || need+=(busybox)
# rustup brings no C compiler, and the crypto crates (ring) build C and assembly.
command -v cc >/dev/null || need+=(gcc libc6-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "test.sh: installing ${need[*]}" >&2
  if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
    echo "test.sh: need ${need[*]} and cannot install them (not root, no sudo)" >&2; exit 1
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# sshd refuses to start without its privilege-separation directory.
[ "$(id -u)" != 0 ] || mkdir -p /run/sshd

# The integration tests mostly wait on sshd, tmux and timers, not on the CPU.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-8}"
cargo test --locked --all-targets "$@"
