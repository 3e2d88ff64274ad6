#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for anneal's Slurm test (CI) and for trying the
# scripts of this folder without a cluster. Needs root and Debian's packages:
#   apt-get install -y slurmctld slurmd slurm-client munge
# Usage: host/slurm/local-cluster.sh start | stop
# It starts munged, slurmctld and slurmd directly (no systemd), with a slurm.conf for this
# host only (all its CPUs, one partition "debug"), and waits until the node is idle.
set -euo pipefail

conf=/etc/slurm/slurm.conf
case "${1:-}" in
start)
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(awk '/MemTotal/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)
    mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
    [ -s /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
    cat > "$conf" <<CONF
ClusterName=anneal-local
SlurmctldHost=$host
SlurmUser=root
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
SchedulerType=sched/backfill
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
    pgrep -x munged >/dev/null || su -s /bin/sh munge -c /usr/sbin/munged 2>/dev/null || /usr/sbin/munged --force
    pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
    pgrep -x slurmd >/dev/null || /usr/sbin/slurmd
    for _ in $(seq 1 60); do
        if sinfo -h -o %T 2>/dev/null | grep -q -E '^(idle|mixed|allocated)'; then
            sinfo
            exit 0
        fi
        sleep 0.5
    done
    echo "local-cluster.sh: the node did not become idle in 30 s" >&2
    tail -20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
    exit 1
    ;;
stop)
    pkill -x slurmd || true
    pkill -x slurmctld || true
    ;;
*)
    echo "usage: $0 start | stop" >&2
    exit 2
    ;;
esac
