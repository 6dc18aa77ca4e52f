#!/usr/bin/env bash
# A Slurm login node on this machine, to try rtrain's Slurm backend by hand: the same single-node cluster the
# tests start (tests/support/slurm.rs: munged, slurmctld, slurmd from Debian's slurm-wlm and munge, accounting
# off, MinJobAge=10, the node's real CPUs and memory), an sshd on 127.0.0.1 as the login node (its sessions get
# SLURM_CONF), the stand-in trainer's project as the workdir, and a client home whose ~/.ssh/config and
# rtrain config name the login node `cluster` (backend: slurm, a 4-minute time limit, requeue: 1).
#
#   scripts/slurm-demo.sh start DIR    # then: export HOME=DIR/home; rtrain up cluster; rtrain status cluster ...
#   scripts/slurm-demo.sh stop DIR     # cancels the jobs, stops the daemons it started (by their pid files)
set -euo pipefail
cmd=${1:-}
[ -n "${2:-}" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
mkdir -p "$2"
d=$(cd "$2" && pwd)
repo=$(cd "$(dirname "$0")/.." && pwd)

if [ "$cmd" = stop ]; then
  SLURM_CONF=$d/slurm.conf scancel --user "$(id -un)" 2>/dev/null || true
  for p in sshd.pid slurmd.pid slurmctld.pid munge/munged.pid; do
    if [ -f "$d/$p" ]; then kill "$(cat "$d/$p")" 2>/dev/null || true; fi
  done
  exit 0
fi
[ "$cmd" = start ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
for p in /usr/sbin/munged /usr/sbin/slurmctld /usr/sbin/slurmd /usr/sbin/sshd; do
  [ -x "$p" ] || { echo "$p not found: apt-get install slurm-wlm munge openssh-server" >&2; exit 1; }
done
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
mkdir -p "$d"/{state,spool,munge,log,home/.ssh,home/.config/rtrain}
chmod 700 "$d/munge"
head -c 128 /dev/urandom > "$d/munge/munge.key" && chmod 600 "$d/munge/munge.key"
nodeline=$(/usr/sbin/slurmd -C | grep '^NodeName=')
node=${nodeline#NodeName=}
node=${node%% *}
user=$(id -un)
cat > "$d/slurm.conf" <<EOF
ClusterName=rtraindemo
SlurmctldHost=$node(127.0.0.1)
SlurmUser=$user
SlurmdUser=$user
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
AuthType=auth/munge
AuthInfo=socket=$d/munge/socket
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MinJobAge=10
KillWait=5
ReturnToService=2
$nodeline NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
/usr/sbin/munged -f --socket="$d/munge/socket" --key-file="$d/munge/munge.key" --pid-file="$d/munge/munged.pid" \
  --log-file="$d/log/munged.log" --seed-file="$d/munge/seed"
for _ in $(seq 100); do [ -S "$d/munge/socket" ] && break; sleep 0.1; done
export SLURM_CONF=$d/slurm.conf
/usr/sbin/slurmctld -i -f "$SLURM_CONF"
/usr/sbin/slurmd -f "$SLURM_CONF"
for _ in $(seq 100); do [ "$(sinfo -h -o %T 2>/dev/null)" = idle ] && break; sleep 0.2; done
[ "$(sinfo -h -o %T)" = idle ] || { echo "no idle node; see $d/log" >&2; exit 1; }

# The login node.
port=$(free_port)
ssh-keygen -q -t ed25519 -N '' -f "$d/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$d/home/.ssh/id_demo"
cp "$d/home/.ssh/id_demo.pub" "$d/authorized_keys"
mkdir -p /run/sshd 2>/dev/null || true
cat > "$d/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $d/host_key
PidFile $d/sshd.pid
AuthorizedKeysFile $d/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin yes
SetEnv "SLURM_CONF=$d/slurm.conf"
EOF
/usr/sbin/sshd -f "$d/sshd_config" -E "$d/log/sshd.log"
printf 'Host cluster\n  HostName 127.0.0.1\n  Port %s\n  User %s\n  IdentityFile %s\n' "$port" "$user" "$d/home/.ssh/id_demo" \
  > "$d/home/.ssh/config"
printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1-2 "$d/host_key.pub")" > "$d/home/.ssh/known_hosts"
rm -rf "$d/project" && cp -r "$repo/docker/gpu-box/project" "$d/project"
cat > "$d/home/.config/rtrain/config.yaml" <<EOF
hosts:
  cluster:
    workdir: $d/project
    command: python3 train.py config/training_config.yaml --max-steps 400 --seconds-per-step 0.5 --save-steps 10
    backend: slurm
    slurm:
      time: "4"
      signal: USR1@60
      requeue: 1
EOF
echo "login node: ssh -F $d/home/.ssh/config cluster (port $port); cluster: SLURM_CONF=$d/slurm.conf"
echo "try: export HOME=$d/home; rtrain up cluster; rtrain status cluster"
echo "stop: $0 stop $d"
