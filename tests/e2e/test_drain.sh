#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Drain and crash under load. A pool scales up and down three times while
# clients send "Connection: close" requests to it without pause: no request
# may fail, and the server namespace's listen-drop, overflow, abort and
# migration-failure counters must not grow. In two of the cycles the worker
# that is drained first is stopped (SIGSTOP) just before the drain, so that
# connections are queued on its listener when it leaves the socket array and
# must migrate. Then workers of a fixed pool are killed with SIGKILL under the
# same kind of load: only the requests that worker was serving may fail, and
# the pool gets a new worker within a few ticks.

# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init

PORT=18092
TICK_MS=200
WINDOW_S=1
MAX=6
# Clients of the "Connection: close" load, each one request at a time.
CLIENTS=3
RATE=50
# Keep-alive connections that make pool web grow to its maximum of 6
# workers at 2 active connections per worker.
SCALE_CONNS=12
CYCLES=3
# A SIGKILLed worker is replaced after the 100 ms back-off, at a 100 ms timer;
# the bound adds a tick for the shared CPUs.
REFILL_MS=$((3 * TICK_MS))

netns_setup drain 92
cli_wide_port_range
SYNCOOKIES=$(srv_sysctl net.ipv4.tcp_syncookies)
MIGRATE_REQ=$(srv_sysctl net.ipv4.tcp_migrate_req)
CONFIG=$TMP_DIR/drain.yaml
cat >"$CONFIG" <<EOF
port: $PORT
default_pool: web
tick_ms: $TICK_MS
pools:
  - name: web
    command: [$WORKER]
    workers: 1
    scaling:
      min: 1
      max: $MAX
      target: {active_per_worker: 2}
      down_window_s: $WINDOW_S
      cpus_per_worker: 0.25
  - name: blob
    command: [$WORKER]
    workers: 3
categories:
  - name: blob
    pool: blob
    rules:
      - path: /blob
EOF
LOG=$TMP_DIR/triage.log
LUA=$TMP_DIR/paced.lua
wrk_paced_script "$LUA" 50
COUNTERS="TcpExtListenDrops TcpExtListenOverflows TcpExtTCPAbortOnClose TcpExtTCPAbortOnData TcpExtTCPMigrateReqFailure"

# Prints the pid of worker INDEX of POOL from the pools report, or nothing.
worker_pid() {
	pools_json "$PORT" | jq -r --arg pool "$1" --argjson index "$2" \
		'.pools[] | select(.name == $pool) | .worker_list[] | select(.index == $index) | .pid' \
		2>/dev/null || true
}

# Waits up to SECONDS until the log contains the fixed string TEXT.
wait_log() {
	local text=$1 seconds=$2 i

	for ((i = 0; i < seconds * 20; i++)); do
		grep -qF "$text" "$LOG" && return 0
		sleep 0.05
	done
	return 1
}

# Waits up to SECONDS until the cgroup of POOL contains exactly COUNT processes.
wait_procs() {
	local pool=$1 count=$2 seconds=$3 i

	for ((i = 0; i < seconds * 20; i++)); do
		[ "$(wc -w <<<"$(pool_pids_of "$PORT" "$pool")")" -eq "$count" ] && return 0
		sleep 0.05
	done
	return 1
}

# Starts CLIENTS curl processes on URL_PATH, output to PREFIX.N; sets LOAD_PIDS.
start_close_load() {
	local path=$1 count=$2 prefix=$3 i

	LOAD_PIDS=()
	for ((i = 0; i < CLIENTS; i++)); do
		curl_close_start "$PORT" "$path" "$count" "$RATE" "$prefix.$i"
		LOAD_PIDS+=("$CURL_PID")
	done
}

# Prints how many of LOAD_PIDS still run.
load_running() {
	local pid n=0

	for pid in "${LOAD_PIDS[@]}"; do
		proc_running "$pid" && n=$((n + 1))
	done
	echo "$n"
}

# Waits up to SECONDS for every process of LOAD_PIDS to end; fails on timeout.
wait_load() {
	local seconds=$1 i

	for ((i = 0; i < seconds * 10; i++)); do
		[ "$(load_running)" -eq 0 ] && break
		sleep 0.1
	done
	[ "$(load_running)" -eq 0 ] || return 1
	for pid in "${LOAD_PIDS[@]}"; do
		wait "$pid" || true
	done
}

triage_run_checked "$CONFIG" "$LOG" "$PORT" "triage starts" || exit 1
wait_pools_field "$PORT" blob workers/running 3 "$WAIT_S" || true
check_eq "tcp_migrate_req is 1 while triage runs" 1 "$(srv_sysctl net.ipv4.tcp_migrate_req)"

# Drain under continuous load.
srv_nstat_snapshot "$TMP_DIR/nstat.0"
# 30 s at RATE per client: longer than the cycles, which end before it.
start_close_load /light $((RATE * 30)) "$TMP_DIR/web"
STOPPED_OK=0
for ((cycle = 1; cycle <= CYCLES; cycle++)); do
	# The report of the tick before the last drained worker exited still
	# counts that worker as running.
	wait_pools_field "$PORT" web workers/running "$(pools_field "$PORT" web workers/current)" 3 ||
		true
	wrk_start "$PORT" /light "$SCALE_CONNS" 30 "$LUA" "$TMP_DIR/wrk.$cycle"
	WRK=$WRK_PID
	if ! wait_pools_field "$PORT" web workers/current "$MAX" 5 ||
		! wait_pools_field "$PORT" web workers/running "$MAX" 2; then
		not_ok "cycle $cycle: pool web grows to $MAX workers" \
			"report shows $(pools_field "$PORT" web workers)"
		kill -INT "$WRK" 2>/dev/null || true
		wait "$WRK" || true
		continue
	fi
	ok "cycle $cycle: pool web grows to $MAX workers"
	VICTIM=$(worker_pid web $((MAX - 1)))
	if [ -z "$VICTIM" ]; then
		note "cycle $cycle: no worker 5 in the report: $(jq -c '.pools[] | select(.name == "web") | [.worker_list[] | {index, pid, state}]' <<<"$(pools_json "$PORT")")"
		note_lines < <(grep "pool 'web'" "$LOG" | tail -n 20)
	fi
	# wrk's connections close before the worker stops, so that none of them
	# is left on it.
	kill -INT "$WRK"
	wait "$WRK" || true
	STOP=0
	if [ "$cycle" -ge 2 ] && [ -n "$VICTIM" ]; then
		sleep 0.3
		kill -STOP "$VICTIM"
		STOP=1
	fi
	if wait_log "draining worker $((MAX - 1)) (pid $VICTIM)" $((WINDOW_S + 5)); then
		ok "cycle $cycle: worker $((MAX - 1)) (pid $VICTIM) is drained first"
	else
		not_ok "cycle $cycle: worker $((MAX - 1)) (pid $VICTIM) is drained first" \
			"no 'draining worker $((MAX - 1)) (pid $VICTIM)' in the log; report: $(pools_field "$PORT" web workers)"
	fi
	if [ "$STOP" -eq 1 ]; then
		note "cycle $cycle: listener queue of stopped pid $VICTIM at the drain: $(jq -c '.pools[] | select(.name == "web") | [.worker_list[] | {index, queued, state}]' <<<"$(pools_json "$PORT")")"
		kill -CONT "$VICTIM"
		if wait_log "drained worker $((MAX - 1)) (pid $VICTIM) exited with exit status 0" 6; then
			STOPPED_OK=$((STOPPED_OK + 1))
		fi
	fi
	CUR=$(pools_field "$PORT" web workers/current)
	wait_procs web "$CUR" 7 || true
	note "cycle $cycle: pool web shrank to $CUR workers; cgroup holds $(pool_pids_of "$PORT" web)"
	check_le "cycle $cycle: pool web shrinks below $MAX workers" $((MAX - 1)) "$CUR"
	check_eq "cycle $cycle: drained workers exited" "$CUR" \
		"$(wc -w <<<"$(pool_pids_of "$PORT" web)")"
done
RUNNING=$(load_running)
srv_nstat_snapshot "$TMP_DIR/nstat.1"
check_eq "close load ran through every drain ($CLIENTS clients)" "$CLIENTS" "$RUNNING"
check_eq "stopped workers exited 0 after SIGCONT and SIGTERM" $((CYCLES - 1)) "$STOPPED_OK"
if ! wait_load 40; then
	not_ok "close load on pool web ends" "curl still runs after 40 s"
fi
cat "$TMP_DIR"/web.* >"$TMP_DIR/web.all"
WEB_REQUESTS=$(wc -l <"$TMP_DIR/web.all")
WEB_FAILED=$(curl_failures "$TMP_DIR/web.all")
note "close load on pool web: $WEB_REQUESTS requests, $WEB_FAILED failed ($(curl_failure_summary "$TMP_DIR/web.all"))"
check_eq "close load on pool web: all $((CLIENTS * RATE * 30)) requests sent" \
	$((CLIENTS * RATE * 30)) "$WEB_REQUESTS"
check_eq "close load on pool web: no failed request" 0 "$WEB_FAILED"
DRAINS=$(grep -c "pool 'web': draining worker" "$LOG" || true)
note "drains: $DRAINS workers drained in $CYCLES cycles; $(grep -c "pool 'web': workers" "$LOG" || true) scaling decisions"
check_ge "at least $CYCLES workers drained" "$CYCLES" "$DRAINS"
check_eq "no drained worker needed SIGKILL" 0 "$(grep -c 'sending SIGKILL' "$LOG" || true)"
DELTAS=""
for counter in $COUNTERS TcpExtTCPMigrateReqSuccess TcpOutRsts TcpEstabResets; do
	DELTAS="$DELTAS $counter=$(nstat_delta "$TMP_DIR/nstat.0" "$TMP_DIR/nstat.1" "$counter")"
done
note "nstat deltas over the drains:$DELTAS"
for counter in $COUNTERS; do
	check_eq "drains: $counter does not grow" 0 \
		"$(nstat_delta "$TMP_DIR/nstat.0" "$TMP_DIR/nstat.1" "$counter")"
done
# The stopped workers had connections queued when they were drained.
check_ge "drains: queued connections migrated (TcpExtTCPMigrateReqSuccess)" 1 \
	"$(nstat_delta "$TMP_DIR/nstat.0" "$TMP_DIR/nstat.1" TcpExtTCPMigrateReqSuccess)"

# SIGKILL under load: pool blob, three kills of different workers, so that
# each restart waits the minimum back-off. The third worker is stopped first,
# so that connections queue on its listener before the kill.
srv_nstat_snapshot "$TMP_DIR/nstat.2"
WEB_SYN_BEFORE=$(status_json "$PORT" | json_get 0/pools/name=web/syn)
start_close_load "/blob?kb=4" $((RATE * 12)) "$TMP_DIR/blob"
sleep 1
for index in 0 1 2; do
	OLD=$(pool_pids_of "$PORT" blob)
	VICTIM=$(worker_pid blob "$index")
	if [ -z "$VICTIM" ] || [[ " $OLD " != *" $VICTIM "* ]]; then
		not_ok "pool blob: worker $index found" "report pid '$VICTIM', cgroup holds '$OLD'"
		continue
	fi
	if [ "$index" -eq 2 ]; then
		kill -STOP "$VICTIM"
		sleep 0.5
	fi
	KILLED_AT=$(now_ms)
	kill -KILL "$VICTIM"
	REFILLED=""
	for ((i = 0; i < 100; i++)); do
		PIDS=$(pool_pids_of "$PORT" blob)
		if [[ " $PIDS " != *" $VICTIM "* ]] && [ "$(wc -w <<<"$PIDS")" -eq 3 ]; then
			REFILLED=$(($(now_ms) - KILLED_AT))
			break
		fi
		sleep 0.02
	done
	note "kill $((index + 1)): pid $VICTIM of worker $index; 3 workers again after ${REFILLED:-more than 2000} ms"
	check_le "pool blob: SIGKILLed worker $index replaced within 3 ticks ($REFILL_MS ms)" \
		"$REFILL_MS" "${REFILLED:-never}"
	check_contains "log reports the SIGKILL of pid $VICTIM" \
		"(pid $VICTIM) exited with signal Killed" "$(cat "$LOG")"
	sleep 1
done
check_eq "pool blob: report shows 3 running workers" 3 "$(pools_field "$PORT" blob workers/running)"
if ! wait_load 30; then
	not_ok "close load on pool blob ends" "curl still runs after 30 s"
fi
srv_nstat_snapshot "$TMP_DIR/nstat.3"
cat "$TMP_DIR"/blob.* >"$TMP_DIR/blob.all"
BLOB_REQUESTS=$(wc -l <"$TMP_DIR/blob.all")
BLOB_FAILED=$(curl_failures "$TMP_DIR/blob.all")
note "close load on pool blob: $BLOB_REQUESTS requests, $BLOB_FAILED failed ($(curl_failure_summary "$TMP_DIR/blob.all"))"
DELTAS=""
for counter in $COUNTERS TcpExtTCPMigrateReqSuccess TcpOutRsts TcpEstabResets; do
	DELTAS="$DELTAS $counter=$(nstat_delta "$TMP_DIR/nstat.2" "$TMP_DIR/nstat.3" "$counter")"
done
note "nstat deltas over the kills:$DELTAS"
check_eq "close load on pool blob: all $((CLIENTS * RATE * 12)) requests sent" \
	$((CLIENTS * RATE * 12)) "$BLOB_REQUESTS"
# A killed worker was serving at most one request of each client.
check_le "kills: at most $CLIENTS failed requests per kill ($((3 * CLIENTS)) in all)" \
	$((3 * CLIENTS)) "$BLOB_FAILED"
# A connection whose SYN meets a TIME_WAIT socket of the same 4-tuple is placed
# at SYN time in the default pool (a known limit of payload steering), so
# replies from pool web are expected only for such connections.
WEB_SYN_GROWTH=$(($(status_json "$PORT" | json_get 0/pools/name=web/syn) - WEB_SYN_BEFORE))
ON_WEB=$(awk '$2 == 0 && $3 == "web"' "$TMP_DIR/blob.all" | wc -l)
note "kills: $ON_WEB /blob replies from pool web; web's connections placed at SYN time grew by $WEB_SYN_GROWTH"
check_le "kills: /blob replies from pool web only for connections placed at SYN time" \
	"$WEB_SYN_GROWTH" "$ON_WEB"
check_eq "kills: no reply from a pool other than blob or web" "" \
	"$(awk '$2 == 0 && $3 != "blob" && $3 != "web"' "$TMP_DIR/blob.all" | sort -u | paste -sd ',' -)"
check_eq "kills: TcpExtTCPMigrateReqFailure does not grow" 0 \
	"$(nstat_delta "$TMP_DIR/nstat.2" "$TMP_DIR/nstat.3" TcpExtTCPMigrateReqFailure)"
check_eq "kills: TcpExtListenDrops does not grow" 0 \
	"$(nstat_delta "$TMP_DIR/nstat.2" "$TMP_DIR/nstat.3" TcpExtListenDrops)"
check_ge "kills: the stopped worker's queue migrated (TcpExtTCPMigrateReqSuccess)" 1 \
	"$(nstat_delta "$TMP_DIR/nstat.2" "$TMP_DIR/nstat.3" TcpExtTCPMigrateReqSuccess)"

triage_stop TERM
check_eq "triage exits 0 on SIGTERM" 0 "$TRIAGE_STATUS"
check_nothing_left_scaled "$PORT" "$SYNCOOKIES" "$MIGRATE_REQ" "after stop"
