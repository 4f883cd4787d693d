#!/usr/bin/env bash
# Bring up a throw-away single-node SLURM cluster (munged, MariaDB, slurmdbd, slurmctld,
# slurmd) with one fake GPU, entirely under one state directory, so that the test suite can
# run the workflow through profiles/slurm against the real thing instead of a mock.
#
#   .ci/slurm/start.sh [STATE_DIR]      # default: $CRYOPICK_SLURM_DIR or /tmp/cryopick-slurm
#   source STATE_DIR/env                # exports SLURM_CONF for sbatch, sacct, snakemake
#   .ci/slurm/stop.sh [STATE_DIR]       # stops only the daemons whose pid files are there
#
# Idempotent: if the cluster in STATE_DIR is already up, it only prints its env file.
# Needs root and the Debian packages
#   munge slurmctld slurmd slurm-client slurmdbd mariadb-server
# Optional environment: CRYOPICK_SLURM_CPUS, CRYOPICK_SLURM_MEM_MB (size of the declared
# node; default: at least 16 CPUs and 128000 MB so production-profile requests schedule),
# CRYOPICK_SLURM_CPU_PARTITION (default cpu), CRYOPICK_SLURM_GPU_PARTITION (default gpu),
# CRYOPICK_SLURM_PORT_BASE (first port to probe, default 16817).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=$(realpath -m "${1:-${CRYOPICK_SLURM_DIR:-/tmp/cryopick-slurm}}")
CPU_PARTITION=${CRYOPICK_SLURM_CPU_PARTITION:-cpu}
GPU_PARTITION=${CRYOPICK_SLURM_GPU_PARTITION:-gpu}
CLUSTER=cryopick
T0=$(date +%s)

log() { echo "[slurm-ci $(($(date +%s) - T0))s] $*" >&2; }
die() { echo "[slurm-ci] ERROR: $*" >&2; exit 1; }

for bin in munged mariadbd mariadb-install-db slurmdbd slurmctld slurmd sbatch srun sinfo sacct sacctmgr scontrol; do
    command -v "$bin" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin command -v "$bin" >/dev/null 2>&1 \
        || die "missing '$bin'; apt-get install munge slurmctld slurmd slurm-client slurmdbd mariadb-server"
done
export PATH=$PATH:/usr/sbin:/sbin
[ "$(id -u)" = 0 ] || die "must run as root (the daemons run as root here)"

export SLURM_CONF=$STATE/etc/slurm.conf
export MYSQL_UNIX_PORT=$STATE/mysql/mysqld.sock

alive() {  # alive NAME: the pid in pid/NAME.pid runs the NAME binary
    local f=$STATE/pid/$1.pid pid
    [ -s "$f" ] || return 1
    pid=$(cat "$f")
    [ -d "/proc/$pid" ] || return 1
    [[ "$(cat /proc/"$pid"/comm 2>/dev/null)" == "$1"* ]]
}

if [ -f "$STATE/env" ] && alive munged && alive mariadbd && alive slurmdbd && alive slurmctld \
    && alive slurmd && timeout 10 sinfo -h >/dev/null 2>&1; then
    log "already running in $STATE"
    echo "$STATE/env"
    exit 0
fi
# A half-started or dead cluster: stop what is left of it, then start afresh.
"$HERE/stop.sh" "$STATE" >/dev/null 2>&1 || true
rm -rf "$STATE/etc" "$STATE/spool" "$STATE/pid" "$STATE/dev" "$STATE/munge" "$STATE/env" "$STATE/bin"
mkdir -p "$STATE"/{etc,spool/ctld,spool/d,pid,log,dev,munge,mysql,bin}
chmod 755 "$STATE"

# Ports: the first free ones from the base, so that a second cluster (another checkout's CI
# run) on the same machine does not collide with this one.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORTS=()
p=${CRYOPICK_SLURM_PORT_BASE:-16817}
while [ ${#PORTS[@]} -lt 3 ]; do
    port_busy "$p" || PORTS+=("$p")
    p=$((p + 1))
done

HOST=$(hostname -s)
read -r REAL_CPUS REAL_MEM < <(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*RealMemory=\([0-9]*\).*/\1 \2/p')
CPUS=${CRYOPICK_SLURM_CPUS:-$((REAL_CPUS > 16 ? REAL_CPUS : 16))}
MEM_MB=${CRYOPICK_SLURM_MEM_MB:-$((REAL_MEM * 9 / 10 > 128000 ? REAL_MEM * 9 / 10 : 128000))}

render() {
    sed -e "s|@STATE@|$STATE|g" -e "s|@HOST@|$HOST|g" -e "s|@CLUSTER@|$CLUSTER|g" \
        -e "s|@CTLD_PORT@|${PORTS[0]}|g" -e "s|@SLURMD_PORT@|${PORTS[1]}|g" \
        -e "s|@DBD_PORT@|${PORTS[2]}|g" -e "s|@CPUS@|$CPUS|g" -e "s|@MEM_MB@|$MEM_MB|g" \
        -e "s|@CPU_PARTITION@|$CPU_PARTITION|g" -e "s|@GPU_PARTITION@|$GPU_PARTITION|g" \
        "$HERE/$1.in" >"$STATE/etc/$1"
}
render slurm.conf
render gres.conf
render slurmdbd.conf
chmod 600 "$STATE/etc/slurmdbd.conf"   # slurmdbd refuses a readable one

# A character device for the fake GPU (a plain file is dropped as "file-less").
mknod "$STATE/dev/nvidia0" c 1 3

wait_for() {  # wait_for SECONDS WHAT CMD...: poll CMD (5 s per try) until it succeeds
    local limit=$1 what=$2 end=$((SECONDS + $1))
    shift 2
    while [ "$SECONDS" -lt "$end" ]; do
        timeout 5 "$@" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    die "$what did not come up within ${limit}s; logs in $STATE/log"
}

log "munged"
dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1024 count=1 status=none
chmod 700 "$STATE/munge"
chmod 400 "$STATE/munge/munge.key"
munged --force --socket="$STATE/munge/munge.socket" --key-file="$STATE/munge/munge.key" \
    --pid-file="$STATE/pid/munged.pid" --log-file="$STATE/log/munged.log" \
    --seed-file="$STATE/munge/munged.seed"
wait_for 10 munged test -S "$STATE/munge/munge.socket"

log "mariadbd"
if [ ! -d "$STATE/mysql/data/mysql" ]; then
    mariadb-install-db --no-defaults --datadir="$STATE/mysql/data" --user=root \
        --auth-root-authentication-method=socket --skip-test-db >"$STATE/log/mariadb-install.log" 2>&1 \
        || die "mariadb-install-db failed; see $STATE/log/mariadb-install.log"
fi
# Socket only (no TCP), its own data directory, small buffers: it only stores a few job rows.
nohup mariadbd --no-defaults --user=root --datadir="$STATE/mysql/data" --socket="$MYSQL_UNIX_PORT" \
    --skip-networking --pid-file="$STATE/pid/mariadbd.pid" --log-error="$STATE/log/mariadbd.log" \
    --innodb-buffer-pool-size=32M --innodb-log-file-size=16M --innodb-lock-wait-timeout=900 \
    --performance-schema=OFF \
    >/dev/null 2>&1 &
wait_for 60 mariadbd test -S "$MYSQL_UNIX_PORT"
wait_for 30 "mariadbd pid file" test -s "$STATE/pid/mariadbd.pid"

log "slurmdbd"
slurmdbd
wait_for 60 slurmdbd sacctmgr -n list cluster
sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true

log "slurmctld"
slurmctld
wait_for 60 slurmctld scontrol ping
log "slurmd"
slurmd

node_state() { timeout 5 sinfo -h -n "$HOST" -o %T 2>/dev/null | head -1; }
end=$((SECONDS + 60))
while [ "$SECONDS" -lt "$end" ]; do
    state=$(node_state || true)
    case "$state" in
        idle | mixed | allocated) break ;;
        *drain* | down*) scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
done
[[ "$(node_state)" =~ ^(idle|mixed|allocated)$ ]] || die "node $HOST not idle (state '$(node_state)'); logs in $STATE/log"

# Inside a job the Snakemake jobstep executor drops every SLURM_* variable (SLURM_CONF too)
# before it calls srun, which then looks for /etc/slurm/slurm.conf. A real cluster has that
# file; this one must not touch /etc (another cluster may run beside it), so jobs find an srun
# wrapper first on PATH (submitted with --export=ALL) that points srun at this cluster.
cat >"$STATE/bin/srun" <<EOF
#!/bin/sh
SLURM_CONF=$SLURM_CONF exec $(command -v srun) "\$@"
EOF
chmod 755 "$STATE/bin/srun"

cat >"$STATE/env" <<EOF
# source this file to talk to the CI cluster in $STATE
export SLURM_CONF=$SLURM_CONF
export CRYOPICK_SLURM_DIR=$STATE
export CRYOPICK_SLURM_CPU_PARTITION=$CPU_PARTITION
export CRYOPICK_SLURM_GPU_PARTITION=$GPU_PARTITION
export CRYOPICK_SLURM_ACCOUNT=root
export PATH=$STATE/bin:\$PATH
EOF
log "cluster '$CLUSTER' up: node $HOST ($CPUS CPUs, $MEM_MB MB, gpu:1), partitions $CPU_PARTITION $GPU_PARTITION, ports ${PORTS[*]}"
echo "$STATE/env"
