#!/usr/bin/env bash
# Stop the throw-away cluster started by .ci/slurm/start.sh in STATE_DIR: cancel its jobs,
# then end exactly the daemons named by its pid files (never by process name, so another
# cluster or a system SLURM on the same machine is left alone). Idempotent.
#
#   .ci/slurm/stop.sh [STATE_DIR] [--purge]    # --purge also removes STATE_DIR
set -uo pipefail

STATE=$(realpath -m "${1:-${CRYOPICK_SLURM_DIR:-/tmp/cryopick-slurm}}")
PURGE=${2:-}
export PATH=$PATH:/usr/sbin:/sbin
export SLURM_CONF=$STATE/etc/slurm.conf

pid_of() {  # pid_of NAME: the pid in pid/NAME.pid if it still runs the NAME binary
    local f=$STATE/pid/$1.pid pid
    [ -s "$f" ] || return 1
    pid=$(cat "$f")
    [ -d "/proc/$pid" ] || return 1
    [[ "$(cat /proc/"$pid"/comm 2>/dev/null)" == "$1"* ]] || return 1
    echo "$pid"
}

stop_one() {  # SIGTERM, wait up to 15 s, then SIGKILL
    local name=$1 pid i
    pid=$(pid_of "$name") || { rm -f "$STATE/pid/$name.pid"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do
        [ -d "/proc/$pid" ] || break
        sleep 0.5
    done
    [ -d "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null
    rm -f "$STATE/pid/$name.pid"
    echo "[slurm-ci] stopped $name ($pid)" >&2
}

if pid_of slurmctld >/dev/null && [ -f "$SLURM_CONF" ]; then
    # Jobs of this cluster only (SLURM_CONF points at it); their slurmstepd would outlive slurmd.
    timeout 15 scancel --user="$(id -un)" >/dev/null 2>&1 || true
    for ((i = 0; i < 20; i++)); do
        [ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && break
        sleep 0.5
    done
fi
for name in slurmd slurmctld slurmdbd mariadbd munged; do
    stop_one "$name"
done
if [ "$PURGE" = "--purge" ]; then
    rm -rf "$STATE"
fi
exit 0
