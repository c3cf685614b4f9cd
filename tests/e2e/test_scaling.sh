#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Autoscaling on active connections: a load step of keep-alive connections
# makes a pool grow to ceil(connections / target) workers, clamped to its
# maximum, within a few ticks, together with its CPU limit. When the load
# stops the pool keeps its size for the stabilization window and then
# shrinks to its minimum. Also checks the 'triage pools' table and JSON
# report and that every scaling decision is logged with its figures.

# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init

PORT=18091
TICK_MS=200
TARGET=4
MAX=6
WINDOW_S=4
# Keep-alive connections of the first step: ceil(14 / 4) = 4 workers. 14
# instead of 16 leaves room for wrk's address check connection, which is open
# for a moment at its start.
STEP1_CONNS=14
STEP1_WORKERS=4
# The second step replaces them with 40 connections, which need 10 workers,
# above the maximum of 6. Its wrk starts before the first one stops, so that
# the count never drops in between, and the end of the load is one wrk run
# that stops at once.
STEP2_CONNS=40
# Growth from 1 to 4 workers takes 2 ticks (up_factor 2: 1 -> 2 -> 4); the
# bound adds 3 ticks for wrk's start and the shared CPUs.
GROW_TICKS=5
# The shrink comes one window after the last tick with load. The lower bound
# is 3 ticks short of the window, because the first sample without a
# connection comes up to a tick after that tick. Samples are also 50 ms apart,
# and the window is kept in 64 buckets of 62.5 ms.
EARLY_MS=$((WINDOW_S * 1000 - 3 * TICK_MS))
LATE_MS=$((WINDOW_S * 1000 + 5 * TICK_MS))

netns_setup scaling 91
SYNCOOKIES=$(srv_sysctl net.ipv4.tcp_syncookies)
MIGRATE_REQ=$(srv_sysctl net.ipv4.tcp_migrate_req)
CONFIG=$TMP_DIR/scaling.yaml
cat >"$CONFIG" <<EOF
port: $PORT
default_pool: light
tick_ms: $TICK_MS
pools:
  - name: light
    command: [$WORKER]
    workers: 1
    scaling:
      min: 1
      max: $MAX
      target: {active_per_worker: $TARGET}
      down_window_s: $WINDOW_S
      cpus_per_worker: 0.25
      memory_per_worker: 32M
  - name: cpu
    command: [$WORKER]
    limits: {cpus: 0.5}
categories:
  - name: cpu
    pool: cpu
    rules:
      - path: /cpu
EOF
LOG=$TMP_DIR/triage.log
SAMPLES=$TMP_DIR/samples
LUA=$TMP_DIR/paced.lua
# 20 requests per second and connection: the connections count, not the rate.
wrk_paced_script "$LUA" 50

triage_run_checked "$CONFIG" "$LOG" "$PORT" "triage starts" || exit 1
wait_pools_field "$PORT" light workers/current 1 "$WAIT_S" || true

# The report before any load.
check_eq "pool light starts with 1 worker" 1 "$(pools_field "$PORT" light workers/current)"
check_eq "pool light: report shows min 1" 1 "$(pools_field "$PORT" light workers/min)"
check_eq "pool light: report shows max $MAX" "$MAX" "$(pools_field "$PORT" light workers/max)"
check_eq "pool light: CPU limit 0.25 at 1 worker" 250 "$(pool_cpu_millis "$PORT" light)"
check_eq "pool light: memory limit 32M at 1 worker" $((32 << 20)) \
	"$(pool_memory_limit "$PORT" light)"
check_eq "pool light: no decision before load" None "$(pools_field "$PORT" light last_decision)"

# Step 1: 14 keep-alive connections.
pools_sampler_start "$PORT" "$SAMPLES" \
	'.pools[] | select(.name == "light") | [.workers.current, .workers.desired, .workers.running, .utilization.active, .limits.cpus]' 60
T0=$(now_ms)
wrk_start "$PORT" /light "$STEP1_CONNS" 30 "$LUA" "$TMP_DIR/wrk1.out"
WRK1=$WRK_PID
wait_pools_field "$PORT" light workers/current "$STEP1_WORKERS" 5 || true
sleep 1.5
# The first sample at the step's size, counted in ticks from the start of wrk.
GROW_MS=$(awk -v t0="$T0" -v n="$STEP1_WORKERS" '
	{ split($2, f, /[][,]/) }
	$1 >= t0 && f[2] >= n { print $1 - t0; exit }
' "$SAMPLES")
note "step 1: $STEP1_CONNS connections, $STEP1_WORKERS workers after ${GROW_MS:-never} ms ($TICK_MS ms ticks)"
check_le "pool light reaches $STEP1_WORKERS workers within $GROW_TICKS ticks" \
	$((GROW_TICKS * TICK_MS)) "${GROW_MS:-never}"
STEP1_REPORT=$(pools_json "$PORT")
check_eq "pool light: report counts $STEP1_CONNS active connections" "$STEP1_CONNS" \
	"$(json_get pools/name=light/utilization/active <<<"$STEP1_REPORT")"
check_eq "pool light: $STEP1_WORKERS workers running at step 1" "$STEP1_WORKERS" \
	"$(json_get pools/name=light/workers/running <<<"$STEP1_REPORT")"
check_eq "pool light: desired is $STEP1_WORKERS at step 1" "$STEP1_WORKERS" \
	"$(json_get pools/name=light/workers/desired <<<"$STEP1_REPORT")"
check_eq "pool light: 4 running workers in worker_list" "$STEP1_WORKERS" \
	"$(jq '[.pools[] | select(.name == "light") | .worker_list[] | select(.state == "running")] | length' <<<"$STEP1_REPORT")"
STEP1_MAX=$(awk -v t0="$T0" '$1 >= t0 { split($2, f, /[][,]/); if (f[2] > m) m = f[2] } END { print m + 0 }' "$SAMPLES")
check_eq "pool light: no sample above $STEP1_WORKERS workers at step 1" "$STEP1_WORKERS" "$STEP1_MAX"
check_eq "pool light: CPU limit 1.00 at 4 workers" 1000 "$(pool_cpu_millis "$PORT" light)"
check_eq "pool light: memory limit 128M at 4 workers" $((128 << 20)) \
	"$(pool_memory_limit "$PORT" light)"

# Signals of the report under load.
CPU_USAGE=$(json_get pools/name=light/utilization/cpu_usage <<<"$STEP1_REPORT")
note "pool light at step 1: $(jq -c '.pools[] | select(.name == "light") | {utilization, memory, psi}' <<<"$STEP1_REPORT")"
if python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) > 0 else 1)' "$CPU_USAGE" 2>/dev/null; then
	ok "pool light: report shows CPU usage under load"
else
	not_ok "pool light: report shows CPU usage under load" "expected cpu_usage > 0, got '$CPU_USAGE'"
fi
for pool in light cpu; do
	for psi in cpu memory io; do
		VALUE=$(json_get "pools/name=$pool/psi/$psi" <<<"$STEP1_REPORT")
		if [[ "$VALUE" =~ ^[0-9.]+$ ]]; then
			ok "pool $pool: report shows $psi pressure"
		else
			not_ok "pool $pool: report shows $psi pressure" "expected a number, got '$VALUE'"
		fi
	done
	# Where memory is on cgroup v1, memory.current is read from the v1 hierarchy.
	check_ge "pool $pool: report shows memory.current" 1 \
		"$(json_get "pools/name=$pool/memory/current" <<<"$STEP1_REPORT")"
	check_ge "pool $pool: report shows memory.peak" 1 \
		"$(json_get "pools/name=$pool/memory/peak" <<<"$STEP1_REPORT")"
done

# Step 2: 40 connections need 10 workers, and the maximum is 6.
T2=$(now_ms)
wrk_start "$PORT" /light "$STEP2_CONNS" 30 "$LUA" "$TMP_DIR/wrk2.out"
WRK2=$WRK_PID
wait_pools_field "$PORT" light workers/current "$MAX" 5 || true
# SIGINT ends wrk early with its summary, and timeout passes it on to wrk.
kill -INT "$WRK1"
wait "$WRK1" || true
CLAMP_MS=$(awk -v t0="$T2" -v n="$MAX" '
	{ split($2, f, /[][,]/) }
	$1 >= t0 && f[2] >= n { print $1 - t0; exit }
' "$SAMPLES")
note "step 2: $STEP2_CONNS connections, $MAX workers after ${CLAMP_MS:-never} ms"
check_le "pool light reaches max $MAX workers within $GROW_TICKS ticks" \
	$((GROW_TICKS * TICK_MS)) "${CLAMP_MS:-never}"
sleep 1
STEP2_REPORT=$(pools_json "$PORT")
check_eq "pool light: report counts $STEP2_CONNS active connections" \
	"$STEP2_CONNS" "$(json_get pools/name=light/utilization/active <<<"$STEP2_REPORT")"
check_eq "pool light: desired clamped to max $MAX" "$MAX" \
	"$(json_get pools/name=light/workers/desired <<<"$STEP2_REPORT")"
check_eq "pool light: CPU limit 1.50 at 6 workers" 1500 "$(pool_cpu_millis "$PORT" light)"
TABLE=$("$TRIAGE" pools --port "$PORT" 2>&1) || true
note_lines <<<"$TABLE"
HEADER=$(sed -n 2p <<<"$TABLE")
for column in CUR DES MIN MAX CPUS MEMMAX ACTIVE QUEUE CPU MEM "PSI c/m/io" "LAST DECISION"; do
	check_contains "pools table has column $column" "$column" "$HEADER"
done
check_eq "pools table: light row shows cur, des, min, max 6 6 1 6" "6 6 1 6" \
	"$(awk '$1 == "light" { print $2, $3, $4, $5 }' <<<"$TABLE")"
check_contains "pools table: light row shows its last decision" "workers 4 -> 6" \
	"$(awk '$1 == "light"' <<<"$TABLE")"

# The load stops at once.
kill -INT "$WRK2"
wait "$WRK2" || true
note "wrk step 1: $(grep -E 'requests in|Socket errors|Non-2xx' "$TMP_DIR/wrk1.out" | paste -sd ';' -)"
note "wrk step 2: $(grep -E 'requests in|Socket errors|Non-2xx' "$TMP_DIR/wrk2.out" | paste -sd ';' -)"
check_eq "wrk step 1: no failed request" 0 "$(wrk_failures "$TMP_DIR/wrk1.out")"
check_eq "wrk step 2: no failed request" 0 "$(wrk_failures "$TMP_DIR/wrk2.out")"
wait_pools_field "$PORT" light workers/current 1 $((WINDOW_S + 6)) || true
sleep 0.5
# The first sample without a connection after the load, and the first one
# after it with fewer than MAX workers.
read -r IDLE_AT SHRINK_AT < <(awk -v t0="$T2" -v n="$MAX" '
	{ split($2, f, /[][,]/) }
	$1 >= t0 && !idle && f[2] == n && f[5] == 0 { idle = $1 }
	idle && f[2] < n { print idle, $1; done = 1; exit }
	END { if (!done) print (idle ? idle : "never"), "never" }
' "$SAMPLES")
MID_MIN=$(awk -v a="$IDLE_AT" -v b=$((${IDLE_AT/never/0} + WINDOW_S * 500)) '
	$1 >= a && $1 <= b { split($2, f, /[][,]/); if (m == "" || f[2] < m) m = f[2] }
	END { print m == "" ? "none" : m }
' "$SAMPLES")
if [[ "$IDLE_AT" =~ ^[0-9]+$ ]] && [[ "$SHRINK_AT" =~ ^[0-9]+$ ]]; then
	DOWN_MS=$((SHRINK_AT - IDLE_AT))
else
	DOWN_MS=never
fi
note "load stopped: first shrink ${DOWN_MS} ms after the last connection closed (window ${WINDOW_S} s)"
check_eq "pool light: still $MAX workers until window/2 after the load" "$MAX" "$MID_MIN"
check_ge "pool light: no shrink before the ${WINDOW_S} s window (bound $EARLY_MS ms)" \
	"$EARLY_MS" "$DOWN_MS"
check_le "pool light: shrinks within window + 5 ticks (bound $LATE_MS ms)" "$LATE_MS" "$DOWN_MS"
check_eq "pool light: back to min 1 worker" 1 "$(pools_field "$PORT" light workers/current)"
check_eq "pool light: CPU limit 0.25 after the shrink" 250 "$(pool_cpu_millis "$PORT" light)"
check_eq "pool light: memory limit 32M after the shrink" $((32 << 20)) \
	"$(pool_memory_limit "$PORT" light)"
check_eq "pool light: one process in its cgroup after the drain" 1 \
	"$(wc -w <<<"$(pool_pids_of "$PORT" light)")"
sleep 1
check_eq "pool light: no sample above max $MAX workers" "$MAX" \
	"$(awk '{ split($2, f, /[][,]/); if (f[2] > m) m = f[2]; if (f[3] > m) m = f[3] } END { print m + 0 }' "$SAMPLES")"

# Every change of the worker count in the samples is a logged decision with
# its figures.
DECISIONS=$(grep -o "pool 'light': workers [0-9]* -> [0-9]*: .*" "$LOG" || true)
note_lines <<<"$DECISIONS"
TRANSITIONS=$(awk '
	{ split($2, f, /[][,]/) }
	f[2] != "" && prev != "" && f[2] != prev { print prev " -> " f[2] }
	f[2] != "" { prev = f[2] }
' "$SAMPLES")
note "changes seen in the report: $(paste -sd ',' - <<<"$TRANSITIONS")"
for change in "1 -> 2" "2 -> 4" "4 -> 6" "6 -> 1"; do
	check_contains "log has decision 'workers $change'" "workers $change:" "$DECISIONS"
done
MISSING=""
while IFS= read -r change; do
	[ -n "$change" ] || continue
	grep -qF "workers $change:" <<<"$DECISIONS" || MISSING="$MISSING '$change'"
done <<<"$TRANSITIONS"
check_eq "every change in the report has a log decision" "" "$MISSING"
BARE=$(grep -v "active connections (.* queued), target $TARGET per worker" <<<"$DECISIONS" || true)
check_eq "every decision logs active connections and target" "" "$BARE"
BARE=$(grep -v "cpu limit [0-9.]* CPUs; memory limit [0-9]* MiB" <<<"$DECISIONS" || true)
check_eq "every decision logs the new CPU and memory limits" "" "$BARE"
check_contains "scale-up decision says growth was capped" \
	"workers 1 -> 2: $STEP1_CONNS active connections (0 queued), target $TARGET per worker; growth capped at 2 this tick; cpu limit 0.50 CPUs" \
	"$DECISIONS"
check_contains "scale-down decision names the window and its highest recommendation" \
	"workers 6 -> 1: 0 active connections (0 queued), target $TARGET per worker; highest recommendation in the last $WINDOW_S s: 1; cpu limit 0.25 CPUs" \
	"$DECISIONS"
DRAINED=$(grep -c "pool 'light': draining worker" "$LOG" || true)
check_eq "log shows 5 drained workers" 5 "$DRAINED"
check_eq "log shows no SIGKILL of a drained worker" 0 "$(grep -c 'sending SIGKILL' "$LOG" || true)"

# The report's last decision matches the log.
LAST_LOG=$(tail -n 1 <<<"$DECISIONS")
LAST_REPORT=$(pools_field "$PORT" light last_decision/text)
check_eq "report's last decision is the last logged one" "${LAST_LOG#pool \'light\': }" "$LAST_REPORT"
DECISION_AGE=$(($(date +%s) - $(pools_field "$PORT" light last_decision/time)))
check_le "report's last decision time is under 10 s old" 10 "$DECISION_AGE"
check_eq "pool cpu without scaling keeps 1 worker" 1 "$(pools_field "$PORT" cpu workers/current)"
check_eq "pool cpu without scaling has no decision" None "$(pools_field "$PORT" cpu last_decision)"

triage_stop TERM
check_eq "triage exits 0 on SIGTERM" 0 "$TRIAGE_STATUS"
check_nothing_left_scaled "$PORT" "$SYNCOOKIES" "$MIGRATE_REQ" "after stop"
