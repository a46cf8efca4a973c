#!/usr/bin/env bash
# Makes sure PostgreSQL answers on 127.0.0.1:5432 with trust authentication for the `postgres` user,
# which the registry's PostgreSQL tests use: started when installed but stopped, installed from
# Debian's packages when missing (a fresh machine). Idempotent.
set -euo pipefail

log() { printf 'postgres: %s\n' "$*" >&2; }
ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

if command -v pg_isready >/dev/null 2>&1 && ready; then
    log "answers on 127.0.0.1:5432"
    exit 0
fi

if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    log "not installed; installing Debian's postgresql"
    export DEBIAN_FRONTEND=noninteractive
    SUDO=""
    [[ "$(id -u)" -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq >&2
    $SUDO apt-get install -y -qq postgresql >&2
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    hba="/etc/postgresql/$version/main/pg_hba.conf"
    # Local tests connect over TCP as `postgres` without a password.
    $SUDO sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/; s/^(host\s+all\s+all\s+::1\/128\s+)\S+/\1trust/; s/^(local\s+all\s+(postgres|all)\s+)\S+/\1trust/' "$hba"
fi

version="$(ls /etc/postgresql | sort -V | tail -n 1)"
log "starting cluster $version/main"
if [[ "$(id -u)" -eq 0 ]]; then
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
else
    sudo pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
fi
for _ in $(seq 1 60); do
    if ready; then
        log "answers on 127.0.0.1:5432"
        exit 0
    fi
    sleep 0.5
done
log "did not start; see /var/log/postgresql/"
exit 1
