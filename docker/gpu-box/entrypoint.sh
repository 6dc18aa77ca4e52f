#!/bin/bash
# First start of the demo box: make this container's own host keys, install the client key that
# docker/demo.sh passes in AUTHORIZED_KEYS, then run sshd in the foreground (its log on stderr,
# so `docker compose logs` shows it).
set -euo pipefail

# Creates only the host keys that are missing, so a restarted container keeps its identity.
ssh-keygen -A
mkdir -p /run/sshd

if [ -z "${AUTHORIZED_KEYS:-}" ]; then
  echo "entrypoint: AUTHORIZED_KEYS is empty: pass the client's public key (docker/demo.sh does)" >&2
  exit 1
fi
printf '%s\n' "$AUTHORIZED_KEYS" > /home/trainer/.ssh/authorized_keys
chown trainer:trainer /home/trainer/.ssh/authorized_keys
chmod 600 /home/trainer/.ssh/authorized_keys

exec /usr/sbin/sshd -D -e
