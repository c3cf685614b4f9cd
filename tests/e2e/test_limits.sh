#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Memory bomb: pool mem has memory_max 48M and gets /mem?mb=200 requests
# three times a second. Its worker is OOM-killed inside its own cgroup and
# restarted, while pool light keeps serving: no failed request, and a p99
# latency within 5 times (plus 20 ms) the p99 of the same wrk run without
# the bomb.

# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init

PORT=18095
TICK_MS=200
MEMORY_MAX=$((48 << 20))
BOMB_MB=200
BOMB_RATE=3
RUN_S=5
P99_FACTOR=5
P99_FLOOR_US=20000

netns_setup limits 95
cli_wide_port_range
SYNCOOKIES=$(srv_sysctl net.ipv4.tcp_syncookies)
MIGRATE_REQ=$(srv_sysctl net.ipv4.tcp_migrate_req)
CONFIG=$TMP_DIR/limits.yaml
cat >"$CONFIG" <<EOF
port: $PORT
default_pool: light
tick_ms: $TICK_MS
pools:
  - name: light
    command: [$WORKER]
    workers: 2
    limits: {memory_max: 64M}
  - name: mem
    command: [$WORKER]
    workers: 1
    limits: {memory_max: 48M}
categories:
  - name: mem
    pool: mem
    rules:
      - path: /mem
EOF
LOG=$TMP_DIR/triage.log
LUA=$TMP_DIR/paced.lua
# 4 connections at up to 200 requests per second each.
wrk_paced_script "$LUA" 5

triage_run_checked "$CONFIG" "$LOG" "$PORT" "triage starts" || exit 1
wait_pools_field "$PORT" mem workers/running 1 "$WAIT_S" || true
wait_pools_field "$PORT" light workers/running 2 "$WAIT_S" || true
check_eq "pool mem: memory limit 48M in its cgroup" "$MEMORY_MAX" "$(pool_memory_limit "$PORT" mem)"
check_eq "GET /mem?mb=8 under the limit is served by pool mem" mem "$(curl_pool "$PORT" "/mem?mb=8")"
LIGHT_PIDS=$(pool_pids_of "$PORT" light)
MEM_PID=$(pool_pids_of "$PORT" mem)

# Baseline without the bomb.
wrk_start "$PORT" /light 4 "$RUN_S" "$LUA" "$TMP_DIR/wrk.base"
wait "$WRK_PID" || true
BASE_P99=$(wrk_p99_us "$TMP_DIR/wrk.base")
BASE_REQUESTS=$(wrk_requests "$TMP_DIR/wrk.base")
note "baseline: $BASE_REQUESTS requests, p99 $BASE_P99 us, $(wrk_failures "$TMP_DIR/wrk.base") failed"
check_eq "baseline: no failed request on pool light" 0 "$(wrk_failures "$TMP_DIR/wrk.base")"

# The same run with the bomb.
curl_close_start "$PORT" "/mem?mb=$BOMB_MB" $((BOMB_RATE * RUN_S)) "$BOMB_RATE" "$TMP_DIR/bomb"
BOMB_PID=$CURL_PID
wrk_start "$PORT" /light 4 "$RUN_S" "$LUA" "$TMP_DIR/wrk.bomb"
wait "$WRK_PID" || true
wait "$BOMB_PID" || true
BOMB_P99=$(wrk_p99_us "$TMP_DIR/wrk.bomb")
BOMB_REQUESTS=$(wrk_requests "$TMP_DIR/wrk.bomb")
note "with the bomb: $BOMB_REQUESTS requests, p99 $BOMB_P99 us, $(wrk_failures "$TMP_DIR/wrk.bomb") failed"
note "bomb requests: $(awk '{ print $1, $2, $3 }' "$TMP_DIR/bomb" | sort | uniq -c | paste -sd ',' -)"
check_eq "with the bomb: no failed request on pool light" 0 "$(wrk_failures "$TMP_DIR/wrk.bomb")"
check_ge "with the bomb: pool light served at least half the baseline's requests" \
	$((BASE_REQUESTS / 2)) "$BOMB_REQUESTS"
if [[ "$BASE_P99" =~ ^[0-9]+$ ]]; then
	P99_BOUND=$((BASE_P99 * P99_FACTOR + P99_FLOOR_US))
else
	P99_BOUND=0
fi
check_le "with the bomb: p99 of pool light within ${P99_FACTOR}x baseline + 20 ms ($P99_BOUND us)" \
	"$P99_BOUND" "$BOMB_P99"

# The OOM kills stayed in pool mem.
KILLS=$(grep -c "pool 'mem': worker 0 (pid [0-9]*) exited with signal Killed" "$LOG" || true)
note "pool mem: $KILLS workers killed; report: $(pools_field "$PORT" mem memory)"
check_ge "pool mem: log shows a worker killed with signal Killed" 1 "$KILLS"
check_contains "pool mem: the first worker pid $MEM_PID was killed" \
	"(pid $MEM_PID) exited with signal Killed" "$(cat "$LOG")"
check_ge "pool mem: report counts OOM kills" 1 "$(pools_field "$PORT" mem memory/oom_kills)"
check_le "pool mem: report's memory.peak within memory_max" "$MEMORY_MAX" \
	"$(pools_field "$PORT" mem memory/peak)"
check_eq "pool light: same worker pids after the bomb" "$LIGHT_PIDS" "$(pool_pids_of "$PORT" light)"
check_eq "pool light: no OOM kill" 0 "$(pools_field "$PORT" light memory/oom_kills)"
check_eq "pool light: no worker exit in the log" "" \
	"$(grep -o "pool 'light': worker [0-9]* (pid [0-9]*) exited with .*" "$LOG" | head -n 3)"

# The restart back-off doubles with each kill; 8 s cover 5 kills in a row.
if wait_pools_field "$PORT" mem workers/running 1 8; then
	ok "pool mem: a worker runs again after the bomb"
else
	not_ok "pool mem: a worker runs again after the bomb" \
		"report: $(pools_field "$PORT" mem workers)"
fi
NEW_PID=$(pool_pids_of "$PORT" mem)
check_eq "pool mem: one process in its cgroup" 1 "$(wc -w <<<"$NEW_PID")"
check_eq "GET /mem?mb=8 after the bomb is served by pool mem" mem "$(curl_pool "$PORT" "/mem?mb=8")"
check_eq "X-Worker-Pid of /mem is the new worker" "$NEW_PID" "$(curl_worker_pid "$PORT" "/mem?mb=1")"

# A request for pool mem while its worker waits for its restart: the
# back-off after a first exit is 100 ms, and curl starts well within it.
VICTIM=$(pool_pids_of "$PORT" mem)
kill -KILL "$VICTIM"
wait_gone "$VICTIM" 2 || true
PROBE=$(curl_pool "$PORT" "/mem?mb=1")
note "GET /mem right after SIGKILL of pid $VICTIM: X-Triage-Pool '$PROBE'"
check_not_contains "GET /mem during pool mem's restart is not served by pool light" light "$PROBE"
wait_pools_field "$PORT" mem workers/running 1 3 || true

triage_stop TERM
check_eq "triage exits 0 on SIGTERM" 0 "$TRIAGE_STATUS"
check_nothing_left_scaled "$PORT" "$SYNCOOKIES" "$MIGRATE_REQ" "after stop"
