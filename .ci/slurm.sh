#!/usr/bin/env bash
# A one-node SLURM cluster on this machine (localhost) for tests/slurm, without systemd.
#
#   .ci/slurm.sh up      install slurmctld, slurmd, slurm-client and munge (Debian packages) if
#                        missing, write slurm.conf, start munged, slurmctld -c and slurmd, wait
#                        until the node is idle (does nothing if this cluster is already up)
#   .ci/slurm.sh down    stop exactly the daemons `up` started (by their recorded pids)
#   .ci/slurm.sh status  sinfo and squeue of this cluster
#   .ci/slurm.sh test    up, run the SLURM test (pytest -m slurm tests/slurm, extra arguments go
#                        to pytest), then down if `up` started the cluster
#
# Needs root (apt-get; the daemons run as root). Everything lives in $MESHSEG_SLURM_DIR
# (default /tmp/meshseg-slurm): slurm.conf, munge key and socket, state, logs, pid files.
# Clients find this cluster through SLURM_CONF=$MESHSEG_SLURM_DIR/slurm.conf (tests/slurm
# looks there itself). One file outside that folder: /etc/slurm/slurm.conf, a link to ours,
# made only where no such file exists and removed by `down`, because the srun that
# snakemake-executor-plugin-slurm-jobstep runs inside each job drops SLURM_CONF from its
# environment. It listens on SLURM's default ports (6817, 6818), so it cannot run beside
# another slurmctld/slurmd.
set -euo pipefail
DIR=${MESHSEG_SLURM_DIR:-/tmp/meshseg-slurm}
export SLURM_CONF=$DIR/slurm.conf
PATH=$PATH:/usr/sbin:/sbin
DAEMONS="munged slurmctld slurmd"
ETC_CONF=/etc/slurm/slurm.conf

log() { echo "slurm.sh: $*" >&2; }

install_packages() {
    local cmd missing=0
    for cmd in munged slurmctld slurmd sbatch; do command -v "$cmd" >/dev/null || missing=1; done
    [ "$missing" = 0 ] && return
    log "installing slurmctld slurmd slurm-client munge (Debian packages)"
    # Keep apt from starting the packages' own services (on a systemd host they would take
    # the ports and munge socket); a policy-rc.d already there is left as it is.
    local policy=/usr/sbin/policy-rc.d added=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client munge >/dev/null || { [ "$added" = 0 ] || rm -f "$policy"; exit 1; }
    [ "$added" = 0 ] || rm -f "$policy"
}

# pid of a daemon this script started, if it is still running as that program
running_pid() {
    local pid
    pid=$(cat "$DIR/pids/$1" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] && echo "$pid"
}

is_up() {
    local daemon
    for daemon in $DAEMONS; do running_pid "$daemon" >/dev/null || return 1; done
    sinfo -h >/dev/null 2>&1
}

write_config() {
    local cpus mem
    cpus=$(nproc)
    # RealMemory in MB: what the machine has, less 1 GB for the OS and the daemons.
    mem=$(awk '/^MemTotal:/ {m = int($2 / 1024) - 1024; print (m > 1024 ? m : 1024)}' /proc/meminfo)
    cat >"$SLURM_CONF" <<EOF
# Written by .ci/slurm.sh: a one-node cluster on localhost, no accounting (no slurmdbd).
ClusterName=meshseg-ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# No cgroups: works in containers and on machines without systemd.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
# CPUs and RealMemory come from the node line below, not from what slurmd detects.
SlurmdParameters=config_overrides
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# Finished jobs stay visible to squeue/scontrol for 5 minutes: Snakemake reads job states
# with squeue here (no sacct without accounting).
MinJobAge=300
# Reject at submission a job asking more than the node has, instead of leaving it pending.
EnforcePartLimits=ALL
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munged() {
    local key=$DIR/munge/munge.key
    [ -s "$key" ] || { head -c 1024 /dev/urandom >"$key"; chmod 600 "$key"; }
    munged --key-file="$key" --socket="$DIR/munge/munge.socket" --pid-file="$DIR/run/munged.pid" \
        --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed"
    wait_for_pidfile munged "$DIR/run/munged.pid"
}

# record the pid a daemon wrote into its pid file
wait_for_pidfile() {
    local i
    for i in $(seq 50); do
        if [ -s "$2" ]; then cp "$2" "$DIR/pids/$1"; running_pid "$1" >/dev/null && return; fi
        sleep 0.2
    done
    log "$1 did not start; its log: $DIR/log/$1.log"
    tail -n 20 "$DIR/log/$1.log" >&2 || true
    return 1
}

up() {
    if is_up; then log "already up (SLURM_CONF=$SLURM_CONF)"; return; fi
    install_packages
    down quiet  # leftovers of an earlier run of this script
    mkdir -p "$DIR"/{munge,state,spool,run,log,pids}
    chmod 755 "$DIR" "$DIR/munge"  # munged: the socket directory must be reachable by all
    rm -rf "${DIR:?}"/state/* "${DIR:?}"/spool/*
    write_config
    if [ ! -e "$ETC_CONF" ] && [ ! -L "$ETC_CONF" ]; then
        mkdir -p "$(dirname "$ETC_CONF")" && ln -s "$SLURM_CONF" "$ETC_CONF"
    elif [ "$(readlink "$ETC_CONF")" != "$SLURM_CONF" ]; then
        log "$ETC_CONF exists: the srun inside each job would read it instead of $SLURM_CONF"
        return 1
    fi
    start_munged
    slurmctld -c -f "$SLURM_CONF"   # -c: a clean start, no jobs of an earlier cluster
    wait_for_pidfile slurmctld "$DIR/run/slurmctld.pid"
    slurmd -f "$SLURM_CONF" -N localhost
    wait_for_pidfile slurmd "$DIR/run/slurmd.pid"
    local i
    for i in $(seq 60); do
        if [ "$(sinfo -h -N -o %T 2>/dev/null)" = idle ]; then
            log "up: $(sinfo -h -N -o '%N %c CPUs %m MB %T'), $(sinfo -V)"
            log "clients: export SLURM_CONF=$SLURM_CONF"
            return
        fi
        sleep 0.5
    done
    log "the node did not become idle: $(sinfo -N 2>&1 || true)"
    tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
    return 1
}

down() {
    local daemon pid i
    for daemon in slurmd slurmctld munged; do
        if pid=$(running_pid "$daemon"); then
            kill "$pid"
            for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
            [ "${1:-}" = quiet ] || log "stopped $daemon ($pid)"
        fi
        rm -f "$DIR/pids/$daemon" "$DIR/run/$daemon.pid"
    done
    [ "$(readlink "$ETC_CONF" 2>/dev/null)" != "$SLURM_CONF" ] || rm -f "$ETC_CONF"
}

run_test() {
    local started=0
    is_up || started=1
    [ "$started" = 0 ] || trap down EXIT  # also when `up` fails half-way
    up
    cd "$(dirname "$0")/.."
    MESHSEG_REQUIRE_SLURM=1 .venv/bin/python -m pytest -m slurm tests/slurm -v "$@"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) sinfo -N -l && squeue ;;
    test) shift; run_test "$@" ;;
    *) echo "usage: $0 up|down|status|test [pytest arguments]" >&2; exit 2 ;;
esac
