#!/usr/bin/env bash
# `make slurm`: a one-node SLURM cluster on this machine, for the tests (tests/e2e/test_slurm.py) and for
# trying `hydra/launcher=slurm` out. Debian's packages (slurmctld, slurmd, slurm-client, munge) are
# installed when missing (as root, through apt-get).
#
# Everything lives under $STATE/slurm: slurm.conf, a munge key and socket of its own (a private munged,
# so the machine's /etc/munge and /run/munge are left alone), the controller's state, the daemons' logs
# and pid files. The node and the controller are addressed as 127.0.0.1 only; the daemons trust only
# requests signed with the private munge key.
#
#   scripts/slurm_cluster.sh start     # install what is missing, write the config, start, wait for an idle node
#   scripts/slurm_cluster.sh stop      # stop the daemons this state directory started (by their pid files)
#   scripts/slurm_cluster.sh status    # sinfo of the cluster; exit 1 when it is not running
#   export SLURM_CONF=$STATE/slurm/slurm.conf    # then sbatch, srun, squeue, scontrol talk to it
#
# STATE=.state SLURMCTLD_PORT=6817 SLURMD_PORT=6818 CPUS=$(nproc): the ports must be free on this machine.
set -euo pipefail

STATE=${STATE:-.state}
SLURMCTLD_PORT=${SLURMCTLD_PORT:-6817}
SLURMD_PORT=${SLURMD_PORT:-6818}
CPUS=${CPUS:-$(nproc)}
mkdir -p "$STATE/slurm"
DIR=$(cd "$STATE/slurm" && pwd)
CONF=$DIR/slurm.conf
NODE=$(hostname -s)
export SLURM_CONF=$CONF

die() {
  echo "slurm_cluster: $*" >&2
  exit 2
}

install_missing() {
  local missing=""
  command -v slurmctld >/dev/null || missing="$missing slurmctld"
  command -v slurmd >/dev/null || missing="$missing slurmd"
  command -v sbatch >/dev/null || missing="$missing slurm-client"
  command -v munged >/dev/null || missing="$missing munge"
  [ -z "$missing" ] && return 0
  command -v apt-get >/dev/null || die "missing:$missing (no apt-get here: install them by hand)"
  echo "slurm_cluster: installing$missing"
  apt-get update -qq
  env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
}

write_config() {
  local mem_mb
  mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
  mkdir -p "$DIR/ctld" "$DIR/d" "$DIR/munge"
  cat >"$CONF" <<EOF
# Written by scripts/slurm_cluster.sh: one node, loopback only, no accounting, no cgroups.
ClusterName=runner-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$SLURMCTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/d
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
# The tests wait on the scheduler: look at the queue every second, not every minute.
SchedulerParameters=sched_interval=1,bf_interval=1
KillWait=30
MinJobAge=600
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$CPUS RealMemory=$mem_mb State=UNKNOWN
PartitionName=local Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
  local key=$DIR/munge/munge.key
  if [ -f "$DIR/munge/munged.pid" ] && kill -0 "$(cat "$DIR/munge/munged.pid")" 2>/dev/null; then return 0; fi
  if [ ! -f "$key" ]; then
    (umask 077 && head -c 1024 /dev/urandom >"$key")
  fi
  chown -R munge: "$DIR/munge"
  chmod 0755 "$DIR/munge"  # clients must reach the socket; the key itself is 0400
  chmod 0400 "$key"
  runuser -u munge -- test -x "$DIR/munge" ||
    die "the munge user cannot reach $DIR/munge: put STATE under directories others may traverse (mode 755)"
  runuser -u munge -- munged --socket="$DIR/munge/munge.socket" --key-file="$key" \
    --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" --seed-file="$DIR/munge/munged.seed" \
    || die "munged did not start (see $DIR/munge/munged.log)"
}

running() { # the daemon whose pid file is $1 is alive
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

wait_idle() {
  local state=""
  for _ in $(seq 1 60); do
    state=$(sinfo -h -n "$NODE" -o %T 2>/dev/null || true)
    case "$state" in
      idle | mixed | allocated) return 0 ;;
      down* | drain*) scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
    esac
    sleep 0.5
  done
  die "node $NODE not idle after 30 s (state: ${state:-none}); logs: $DIR/slurmctld.log $DIR/slurmd.log"
}

start() {
  [ "$(id -u)" = 0 ] || die "needs root (slurmd starts jobs as their user): run it as root"
  install_missing
  write_config
  start_munge
  # -i: ignore the state of an earlier controller's jobs only when there is none to keep
  running "$DIR/slurmctld.pid" || slurmctld -f "$CONF" || die "slurmctld did not start (see $DIR/slurmctld.log)"
  running "$DIR/slurmd.pid" || slurmd -f "$CONF" -N "$NODE" || die "slurmd did not start (see $DIR/slurmd.log)"
  wait_idle
  echo "SLURM cluster up: node $NODE ($CPUS CPUs), controller 127.0.0.1:$SLURMCTLD_PORT"
  echo "Use it:  export SLURM_CONF=$CONF"
}

stop_pid() { # $1: pid file; SIGTERM, then wait up to 10 s for the process to go
  local pid
  [ -f "$1" ] || return 0
  pid=$(cat "$1")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  fi
  rm -f "$1"
}

stop() {
  if running "$DIR/slurmctld.pid" && running "$DIR/slurmd.pid"; then # its jobs first: slurmd leaves them running
    squeue -h -o %A 2>/dev/null | xargs -r scancel 2>/dev/null || true
    for _ in $(seq 1 80); do [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break; sleep 0.5; done
  fi
  stop_pid "$DIR/slurmd.pid"
  stop_pid "$DIR/slurmctld.pid"
  stop_pid "$DIR/munge/munged.pid"
  echo "SLURM cluster under $DIR stopped"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) running "$DIR/slurmctld.pid" && running "$DIR/slurmd.pid" && sinfo ;;
  *) die "usage: $0 start|stop|status" ;;
esac
