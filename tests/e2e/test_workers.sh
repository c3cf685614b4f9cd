#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Workers: socket activation passes the pool name in LISTEN_FDNAMES, a pool
# with 'user: nobody' runs as nobody, and a worker killed with SIGKILL is
# restarted while its pool keeps serving.

# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init

PORT=18085
NOBODY_UID=$(id -u nobody)
NOBODY_GID=$(id -g nobody)

netns_setup workers 5
SYNCOOKIES=$(srv_sysctl net.ipv4.tcp_syncookies)
CONFIG=$TMP_DIR/workers.yaml
cat >"$CONFIG" <<EOF
port: $PORT
default_pool: light
pools:
  - name: light
    command: [$WORKER]
    workers: 2
  - name: cpu
    command: [$WORKER]
  - name: guest
    command: [$WORKER]
    user: nobody
categories:
  - name: cpu
    pool: cpu
    rules:
      - path: /cpu
  - name: guest
    pool: guest
    rules:
      - path: /guest
EOF

# Prints the PIDs in the v2 cgroup of POOL, sorted, on one line.
pool_pids() {
	sort -n "$CG_ROOT/$PORT/$1/cgroup.procs" 2>/dev/null | paste -sd ' ' -
}

# Prints the value of variable NAME in the environment of PID.
environ_of() {
	tr '\0' '\n' <"/proc/$1/environ" | sed -n "s/^$2=//p"
}

# Waits until POOL has COUNT workers in its cgroup, none of them in OLD.
wait_new_pids() {
	local pool=$1 count=$2 old=$3 i pids pid stale

	for ((i = 0; i < WAIT_S * 5; i++)); do
		pids=$(pool_pids "$pool")
		stale=0
		for pid in $pids; do
			[[ " $old " == *" $pid "* ]] && stale=1
		done
		if [ "$stale" -eq 0 ] && [ "$(wc -w <<<"$pids")" -eq "$count" ]; then
			return 0
		fi
		sleep 0.2
	done
	return 1
}

# Sends COUNT requests to URL_PATH and checks that POOL sends every reply.
check_serves() {
	local what=$1 pool=$2 path=$3 count=$4 i got wrong=""

	for ((i = 0; i < count; i++)); do
		got=$(curl_pool "$PORT" "$path")
		[ "$got" = "$pool" ] || wrong="$wrong '$got'"
	done
	if [ -z "$wrong" ]; then
		ok "$what"
	else
		not_ok "$what" "expected $count replies from pool $pool, got:$wrong"
	fi
}

triage_run_checked "$CONFIG" "$TMP_DIR/triage.log" "$PORT" "triage starts" || exit 1
wait_workers "$PORT" light 2 || true

# Socket activation: fd 3 with the pool's name.
for pool in light cpu guest; do
	pid=$(pool_pids "$pool" | awk '{ print $1 }')
	check_eq "pool $pool: LISTEN_FDNAMES of pid $pid" "$pool" "$(environ_of "$pid" LISTEN_FDNAMES)"
	check_eq "pool $pool: LISTEN_FDS of pid $pid" 1 "$(environ_of "$pid" LISTEN_FDS)"
	check_eq "pool $pool: LISTEN_PID is the worker's own pid" "$pid" "$(environ_of "$pid" LISTEN_PID)"
	check_contains "pool $pool: fd 3 is a socket" "socket:[" "$(readlink "/proc/$pid/fd/3")"
done
check_eq "X-Triage-Pool of /light names pool light" light "$(curl_pool "$PORT" /light)"
check_eq "X-Triage-Pool of /cpu names pool cpu" cpu "$(curl_pool "$PORT" "/cpu?ms=1")"
check_eq "X-Triage-Pool of /guest names pool guest" guest "$(curl_pool "$PORT" /guest)"

# user: nobody
GUEST=$(pool_pids guest)
check_eq "pool guest: one worker" 1 "$(wc -w <<<"$GUEST")"
check_eq "pool guest: worker runs with uid nobody" \
	"$NOBODY_UID $NOBODY_UID $NOBODY_UID $NOBODY_UID" \
	"$(awk '$1 == "Uid:" { print $2, $3, $4, $5 }' "/proc/$GUEST/status")"
check_eq "pool guest: worker runs with gid nobody" \
	"$NOBODY_GID $NOBODY_GID $NOBODY_GID $NOBODY_GID" \
	"$(awk '$1 == "Gid:" { print $2, $3, $4, $5 }' "/proc/$GUEST/status")"
check_eq "pool guest: X-Worker-Pid is the nobody worker" "$GUEST" \
	"$(curl_worker_pid "$PORT" /guest)"
check_eq "pool light: worker runs as root" 0 \
	"$(awk '$1 == "Uid:" { print $2 }' "/proc/$(pool_pids light | awk '{ print $1 }')/status")"

# SIGKILL the only worker of pool cpu.
OLD=$(pool_pids cpu)
check_eq "pool cpu: X-Worker-Pid is the worker in its cgroup" "$OLD" \
	"$(curl_worker_pid "$PORT" "/cpu?ms=1")"
kill -KILL "$OLD"
if wait_new_pids cpu 1 "$OLD"; then
	ok "pool cpu: a new worker replaces SIGKILLed pid $OLD"
else
	not_ok "pool cpu: a new worker replaces SIGKILLed pid $OLD" \
		"cgroup.procs holds '$(pool_pids cpu)' after ${WAIT_S}s"
fi
NEW=$(pool_pids cpu)
wait_workers "$PORT" cpu 1 || true
check_eq "pool cpu: status shows 1 worker again" 1 "$(pool_field "$PORT" cpu workers)"
check_serves "pool cpu: 5 requests after the restart succeed" cpu "/cpu?ms=1" 5
check_eq "pool cpu: X-Worker-Pid is the new worker" "$NEW" "$(curl_worker_pid "$PORT" "/cpu?ms=1")"
check_contains "log reports the exit of pid $OLD" "(pid $OLD) exited with signal Killed" \
	"$(cat "$TMP_DIR/triage.log")"

# SIGKILL one of the two workers of pool light.
OLD=$(pool_pids light)
VICTIM=${OLD%% *}
kill -KILL "$VICTIM"
if wait_new_pids light 2 "$VICTIM"; then
	ok "pool light: a new worker replaces SIGKILLed pid $VICTIM"
else
	not_ok "pool light: a new worker replaces SIGKILLed pid $VICTIM" \
		"cgroup.procs holds '$(pool_pids light)' after ${WAIT_S}s"
fi
wait_workers "$PORT" light 2 || true
check_eq "pool light: status shows 2 workers again" 2 "$(pool_field "$PORT" light workers)"
check_serves "pool light: 5 requests after the restart succeed" light /light 5

# SIGINT stops the controller like SIGTERM does.
ALL=$(port_pids "$PORT" | paste -sd ' ' -)
triage_stop INT
check_eq "triage exits 0 on SIGINT" 0 "$TRIAGE_STATUS"
check_nothing_left "$PORT" "$SYNCOOKIES" "after SIGINT"
ALIVE=""
for pid in $ALL; do
	wait_gone "$pid" 10 || ALIVE="$ALIVE $pid"
done
check_eq "after SIGINT: none of the workers '$ALL' runs" "" "$ALIVE"
