#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Host budget: three scaled pools each want 6 workers, 18 in all, and the
# budget allows 8 (2 CPUs and 320M at 0.25 CPUs and 40M per worker). The sum
# of the pools' cgroup limits is sampled every 50 ms while the load moves from
# pool to pool, and it must never exceed the budget. The workers above the
# minimum go by weight. The report and the log name the pools held back and
# by how much.

# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init

PORT=18094
TICK_MS=200
BUDGET_MILLIS=2000
BUDGET_MEMORY=$((320 << 20))
# Keep-alive connections per pool. At 1 per worker, each pool wants 6 workers.
CONNS=6

netns_setup budget 94
SYNCOOKIES=$(srv_sysctl net.ipv4.tcp_syncookies)
MIGRATE_REQ=$(srv_sysctl net.ipv4.tcp_migrate_req)
CONFIG=$TMP_DIR/budget.yaml
{
	cat <<EOF
port: $PORT
default_pool: a
tick_ms: $TICK_MS
budget: {cpus: 2, memory: 320M}
pools:
EOF
	for pool in a:100 b:300 c:100; do
		cat <<EOF
  - name: ${pool%:*}
    command: [$WORKER]
    workers: 1
    scaling:
      min: 1
      max: 6
      target: {active_per_worker: 1}
      down_window_s: 1
      cpus_per_worker: 0.25
      memory_per_worker: 40M
      weight: ${pool#*:}
EOF
	done
	cat <<EOF
categories:
  - name: b
    pool: b
    rules:
      - host: b.test
  - name: c
    pool: c
    rules:
      - host: c.test
EOF
} >"$CONFIG"
LOG=$TMP_DIR/triage.log
LIMITS=$TMP_DIR/limits
REPORTS=$TMP_DIR/reports

# Writes a wrk script that sends Host HOST at 10 requests per second and connection.
host_script() {
	printf 'wrk.headers["Host"] = "%s"\nfunction delay() return 100 end\n' "$1" >"$2"
}

# Starts wrk with CONNS connections for pool POOL (Host POOL.test); sets WRK_PID.
load_pool() {
	host_script "$1.test" "$TMP_DIR/$1.lua"
	wrk_start "$PORT" /light "$CONNS" 40 "$TMP_DIR/$1.lua" "$TMP_DIR/wrk.$1.$2"
}

# Samples the CPU and memory limits of pools a, b and c from their cgroup
# files every 50 ms for at most SECONDS: "ms cpu_millis_sum memory_sum".
start_limit_sampler() {
	local seconds=$1 cpu_v1 mem_v1 rel

	cpu_v1=$(v1_mount cpu)
	mem_v1=$(v1_mount memory)
	rel=$(port_cgroup_rel "$PORT")
	(
		end=$((SECONDS + seconds))
		while [ "$SECONDS" -lt "$end" ]; do
			cpu=0
			mem=0
			for pool in a b c; do
				read -r quota <"$cpu_v1$rel/$pool/cpu.cfs_quota_us" || quota=-1
				read -r period <"$cpu_v1$rel/$pool/cpu.cfs_period_us" || period=100000
				read -r bytes <"$mem_v1$rel/$pool/memory.limit_in_bytes" || bytes=0
				cpu=$((cpu + quota * 1000 / period))
				mem=$((mem + bytes))
			done
			echo "$(now_ms) $cpu $mem" >>"$LIMITS"
			sleep 0.05
		done
	) 2>/dev/null &
	defer stop_pid $!
}

# Prints "a b c" of workers FIELD from the pools report.
workers_of() {
	pools_json "$PORT" | jq -r --arg f "$1" \
		'[.pools[] | select(.name == "a" or .name == "b" or .name == "c") | .workers[$f]] | map(tostring) | join(" ")' \
		2>/dev/null || true
}

# Waits up to SECONDS until workers FIELD of a, b and c are "A B C".
wait_workers_of() {
	local field=$1 expected=$2 seconds=$3 i

	for ((i = 0; i < seconds * 10; i++)); do
		[ "$(workers_of "$field")" = "$expected" ] && return 0
		sleep 0.1
	done
	return 1
}

triage_run_checked "$CONFIG" "$LOG" "$PORT" "triage starts" || exit 1
wait_workers_of running "1 1 1" "$WAIT_S" || true
if [ -z "$(v1_mount cpu)" ] || [ -z "$(v1_mount memory)" ]; then
	skip "budget sampled from cgroup files" "the sampler reads cpu and memory on cgroup v1, and one of them is on v2 here"
	exit 0
fi
start_limit_sampler 40
pools_sampler_start "$PORT" "$REPORTS" '[.budget.cpus_used, .budget.memory_used]' 40

# Phase 1: every pool wants 6 workers.
load_pool a 1
WRK_a=$WRK_PID
load_pool b 1
WRK_b=$WRK_PID
load_pool c 1
WRK_c=$WRK_PID
# Workers above the minimum: 5; by weight 100, 300 and 100, b gets 3 and a and c 1 each.
if wait_workers_of current "2 4 2" 8; then
	ok "phase 1: workers a, b, c are 2 4 2 (weights 100 300 100)"
else
	not_ok "phase 1: workers a, b, c are 2 4 2 (weights 100 300 100)" \
		"got '$(workers_of current)', desired '$(workers_of desired)', granted '$(workers_of granted)'"
fi
sleep 1
REPORT=$(pools_json "$PORT")
note "phase 1 budget: $(jq -c .budget <<<"$REPORT")"
note "phase 1 recommended by the policy: 6 6 6; desired $(workers_of desired); granted $(workers_of granted); held_back $(workers_of held_back)"
check_eq "phase 1: report shows 2 CPUs used" 2 "$(json_get budget/cpus_used <<<"$REPORT")"
check_eq "phase 1: report shows the memory budget used" "$BUDGET_MEMORY" \
	"$(json_get budget/memory_used <<<"$REPORT")"
HELD=$(workers_of held_back)
# The policy of each pool recommends 6 workers (6 connections, 1 per worker).
check_eq "phase 1: held_back a, b, c are 6 minus granted: 4 2 4" "4 2 4" "$HELD"
TABLE=$("$TRIAGE" pools --port "$PORT" 2>&1) || true
note_lines <<<"$TABLE"
check_contains "pools table: header shows the CPU budget" "budget: CPUs 2.00 of 2.00" "$TABLE"
check_eq "pools table: HELD column matches the report" "$HELD" \
	"$(awk '$1 ~ /^[abc]$/ { printf "%s%s", sep, $6; sep = " " }' <<<"$TABLE")"
for pool in a b c; do
	DESIRED=$(json_get "pools/name=$pool/workers/desired" <<<"$REPORT")
	GRANTED=$(json_get "pools/name=$pool/workers/granted" <<<"$REPORT")
	POOL_HELD=$(json_get "pools/name=$pool/workers/held_back" <<<"$REPORT")
	check_ge "phase 1: pool $pool held back (held_back > 0)" 1 "$POOL_HELD"
	check_eq "log: last 'held back' line of pool $pool matches the report" \
		"pool '$pool': held back by the host budget: wants $DESIRED workers, the budget grants $GRANTED ($POOL_HELD fewer" \
		"$(grep -o "pool '$pool': held back by the host budget: wants [0-9]* workers, the budget grants [0-9]* ([0-9]* fewer" "$LOG" | tail -n 1)"
done

# Phase 2: b's load stops; b shrinks after its window and a and c take its
# share: 5 workers above the minimum, 3 for a and 2 for c (a comes first on a tie).
kill -INT "$WRK_b"
wait "$WRK_b" || true
if wait_workers_of current "4 1 3" 8; then
	ok "phase 2: workers a, b, c are 4 1 3 after b's load stops"
else
	not_ok "phase 2: workers a, b, c are 4 1 3 after b's load stops" \
		"got '$(workers_of current)', granted '$(workers_of granted)'"
fi
check_contains "log: pool b no longer held back" "pool 'b': no longer held back by the host budget" \
	"$(cat "$LOG")"

# Phase 3: b's load returns; a and c must shrink before b grows.
load_pool b 3
WRK_b=$WRK_PID
if wait_workers_of current "2 4 2" 8; then
	ok "phase 3: workers a, b, c are 2 4 2 again"
else
	not_ok "phase 3: workers a, b, c are 2 4 2 again" \
		"got '$(workers_of current)', granted '$(workers_of granted)'"
fi
sleep 1
kill -INT "$WRK_a" "$WRK_b" "$WRK_c"
wait "$WRK_a" "$WRK_b" "$WRK_c" || true
for pool in a b c; do
	note "wrk $pool: $(grep -hE 'requests in|Socket errors|Non-2xx' "$TMP_DIR"/wrk."$pool".* | paste -sd ';' -)"
done
if wait_workers_of current "1 1 1" 8; then
	ok "all pools back to 1 worker after the load"
else
	not_ok "all pools back to 1 worker after the load" "got '$(workers_of current)'"
fi
check_eq "no pool held back after the load" "0 0 0" "$(workers_of held_back)"

# The samples.
SAMPLED=$(wc -l <"$LIMITS")
read -r MAX_CPU MAX_MEM < <(awk '
	$2 > c { c = $2 }
	$3 > m { m = $3 }
	END { print c + 0, m + 0 }
' "$LIMITS")
note "cgroup limits: $SAMPLED samples, highest sum $MAX_CPU thousandths of a CPU and $MAX_MEM bytes"
read -r SPAN MAX_GAP < <(awk '
	NR == 1 { first = $1 }
	NR > 1 && $1 - prev > gap { gap = $1 - prev }
	{ prev = $1 }
	END { print prev - first, gap + 0 }
' "$LIMITS")
note "cgroup limits: samples over $SPAN ms, at most $MAX_GAP ms apart"
check_ge "cgroup limits sampled at least once per tick" $((SPAN / TICK_MS)) "$SAMPLED"
check_le "sum of the pools' cfs_quota_us/cfs_period_us never above budget.cpus 2" \
	"$BUDGET_MILLIS" "$MAX_CPU"
check_le "sum of the pools' memory.limit_in_bytes never above budget.memory 320M" \
	"$BUDGET_MEMORY" "$MAX_MEM"
check_eq "sum of the CPU limits reached the budget" "$BUDGET_MILLIS" "$MAX_CPU"
read -r REPORTED MAX_USED MAX_MEM_USED < <(awk '
	{ split($2, f, /[][,]/) }
	f[2] != "" { n++; if (f[2] * 1000 > c) c = f[2] * 1000; if (f[3] > m) m = f[3] }
	END { printf "%d %d %d\n", n, c, m }
' "$REPORTS")
note "pools report: $REPORTED samples, highest cpus_used $MAX_USED thousandths, memory_used $MAX_MEM_USED bytes"
check_le "report's cpus_used never above budget.cpus 2" "$BUDGET_MILLIS" "$MAX_USED"
check_le "report's memory_used never above budget.memory 320M" "$BUDGET_MEMORY" "$MAX_MEM_USED"

triage_stop TERM
check_eq "triage exits 0 on SIGTERM" 0 "$TRIAGE_STATUS"
check_nothing_left_scaled "$PORT" "$SYNCOOKIES" "$MIGRATE_REQ" "after stop"
