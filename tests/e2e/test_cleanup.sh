#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Cleanup: SIGTERM removes everything a run created. After a kill -9 of the
# controller the pinned programs keep steering, a new run on the same port
# undoes the stale record and starts, and 'triage detach' removes everything.

# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init

PORT=18083

netns_setup cleanup 3
SYNCOOKIES=$(srv_sysctl net.ipv4.tcp_syncookies)
# Limits put the cpu pool into v1 hierarchies too, so their cleanup is checked.
CONFIG=$TMP_DIR/cleanup.yaml
cat >"$CONFIG" <<EOF
port: $PORT
default_pool: light
pools:
  - name: light
    command: [$WORKER]
    workers: 2
  - name: cpu
    command: [$WORKER]
    limits:
      cpus: 0.5
      memory_max: 128M
      pids_max: 32
categories:
  - name: cpu
    pool: cpu
    rules:
      - path: /cpu
EOF

# The cgroup root folders that exist before any run. A run must remove a
# root that it created, unless another port's folder is in it by then.
ROOTS_BEFORE=""
for dir in "$CG_ROOT" $(awk '$3 == "cgroup" { print $2 "/triage" }' /proc/mounts); do
	[ -d "$dir" ] && ROOTS_BEFORE="$ROOTS_BEFORE $dir"
done

# Prints the worker PIDs of the port, sorted, on one line.
worker_pids() {
	port_pids "$PORT" | sort -n | paste -sd ' ' -
}

# Checks that none of PIDS runs any more.
check_pids_gone() {
	local what=$1 pids=$2 pid alive=""

	for pid in $pids; do
		wait_gone "$pid" 10 || alive="$alive $pid"
	done
	if [ -z "$alive" ]; then
		ok "$what"
	else
		not_ok "$what" "expected workers '$pids' to be gone, still running:$alive"
	fi
}

check_roots_kept() {
	local context=$1 dir created=""

	for dir in "$CG_ROOT" $(awk '$3 == "cgroup" { print $2 "/triage" }' /proc/mounts); do
		[[ " $ROOTS_BEFORE " == *" $dir "* ]] && continue
		[ -d "$dir" ] || continue
		# A root that contains another port's folder stays, for that port.
		[ -n "$(find "$dir" -mindepth 1 -maxdepth 1 -type d)" ] && continue
		created="$created $dir"
	done
	check_eq "$context: no cgroup root folder left that the run created" "" "$created"
}

# Checks that a running controller created what the later checks expect gone,
# so that those checks cannot pass only because nothing was created.
check_created() {
	local context=$1

	check_present "$context: pins exist while running" "$PIN_ROOT/$PORT/triage_select"
	check_present "$context: record exists while running" "$STATE_DIR/$PORT.state"
	check_present "$context: v2 cgroup exists while running" "$CG_ROOT/$PORT/cpu"
	check_present "$context: v1 pids cgroup exists while running" \
		"$(v1_mount pids)$(port_cgroup_rel "$PORT")/cpu"
	check_contains "$context: tc filter on $SRV_IF while running" "handle 0x$(printf '%x' "$PORT")" \
		"$(in_srv tc filter show dev "$SRV_IF" ingress)"
	check_eq "$context: tcp_syncookies is 2 while running" 2 \
		"$(srv_sysctl net.ipv4.tcp_syncookies)"
	check_eq "$context: curl reaches pool cpu" cpu "$(curl_pool "$PORT" "/cpu?ms=1")"
}

defer triage_cleanup "$PORT"

# Stop with SIGTERM.
triage_up "$CONFIG" "$TMP_DIR/run1.log" "SIGTERM run: triage starts" || exit 1
wait_workers "$PORT" light 2 || true
check_created "SIGTERM run"
PIDS=$(worker_pids)
check_eq "SIGTERM run: three workers in the pool cgroups" 3 "$(wc -w <<<"$PIDS")"
triage_stop TERM
check_eq "SIGTERM run: exit status 0" 0 "$TRIAGE_STATUS"
check_nothing_left "$PORT" "$SYNCOOKIES" "after SIGTERM"
check_pids_gone "after SIGTERM: no worker left" "$PIDS"
check_roots_kept "after SIGTERM"

# kill -9 the controller: the workers and the pinned programs keep serving.
triage_up "$CONFIG" "$TMP_DIR/run2.log" "crash run: triage starts" || exit 1
wait_workers "$PORT" light 2 || true
PIDS=$(worker_pids)
triage_stop KILL
check_eq "crash run: controller died of SIGKILL" 137 "$TRIAGE_STATUS"
ALIVE=0
for pid in $PIDS; do
	proc_running "$pid" && ALIVE=$((ALIVE + 1))
done
check_eq "crash run: the 3 workers still run" 3 "$ALIVE"
check_eq "crash run: fail-open, /cpu still reaches pool cpu" cpu "$(curl_pool "$PORT" "/cpu?ms=1")"
check_eq "crash run: fail-open, /light still reaches pool light" light "$(curl_pool "$PORT" /light)"
check_eq "crash run: status shows no controller" 0 \
	"$(status_json "$PORT" | json_get 0/controller_pid)"

# A new run on the same port undoes the stale record, then starts.
if triage_up "$CONFIG" "$TMP_DIR/run3.log" "restart after crash: triage starts"; then
	check_contains "restart after crash: log reports the stale record" "did not stop cleanly" \
		"$(cat "$TMP_DIR/run3.log")"
	check_pids_gone "restart after crash: the old workers are gone" "$PIDS"
	wait_workers "$PORT" light 2 || true
	check_eq "restart after crash: /cpu reaches pool cpu" cpu "$(curl_pool "$PORT" "/cpu?ms=1")"
	PIDS=$(worker_pids)
	triage_stop TERM
	check_eq "restart after crash: exit status 0" 0 "$TRIAGE_STATUS"
	check_nothing_left "$PORT" "$SYNCOOKIES" "restart after crash, then SIGTERM"
	check_pids_gone "restart after crash, then SIGTERM: no worker left" "$PIDS"
else
	# Remove what the crashed run left, so the detach case below starts clean.
	triage_cleanup "$PORT"
fi

# kill -9, then 'triage detach'. Outside the run's namespace detach must
# fail, because the tc filters and the sysctl live in that namespace.
triage_up "$CONFIG" "$TMP_DIR/run4.log" "detach run: triage starts" || exit 1
wait_workers "$PORT" light 2 || true
PIDS=$(worker_pids)
triage_stop KILL
capture "$TRIAGE" detach --port "$PORT"
check_eq "detach from another namespace: exit status" 1 "$STATUS"
check_contains "detach from another namespace: message names the namespace" "nsenter" "$OUT"
check_present "detach from another namespace: record kept" "$STATE_DIR/$PORT.state"
capture in_srv "$TRIAGE" detach --port "$PORT"
check_eq "detach in the run's namespace: exit status" 0 "$STATUS"
check_nothing_left "$PORT" "$SYNCOOKIES" "after detach"
check_pids_gone "after detach: no worker left" "$PIDS"
check_roots_kept "after detach"
