#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Scenario 5, controller overhead: CPU time and peak RSS of the `triage run`
# process itself while a steady load passes through its port. The steering
# runs in the kernel's receive path, outside the controller, and shows in
# the whole-machine CPU of scenario 1. run.sh sources this file and sets the
# CONTROLLER_* parameters.
#
# Variants: triage-payload, triage-connection. Each variant run gets fresh
# namespaces, measures the controller during CONTROLLER_IDLE_S without load,
# then during CONTROLLER_S of /light at CONTROLLER_RATE requests/s.

# shellcheck disable=SC2154 # lib.sh, which run.sh sources first, sets last_command and triage_pid
readonly CONTROLLER_VARIANTS=(triage-payload triage-connection)
readonly CONTROLLER_LIGHT=2
readonly CONTROLLER_CPU=2

# Prints "UTIME_TICKS STIME_TICKS" of PID from /proc/PID/stat. The fields
# are counted after the last ')', since the command name may contain spaces.
proc_cpu_ticks() {
	local stat

	stat=$(<"/proc/$1/stat")
	stat=${stat##*) }
	# After the name: state is field 3, utime field 14, stime field 15.
	awk '{ print $12, $13 }' <<<"$stat"
}

# Prints the on-CPU nanoseconds of every thread of PID, from schedstat.
proc_cpu_ns() {
	cat /proc/"$1"/task/*/schedstat | awk '{ ns += $1 } END { printf "%d\n", ns }'
}

# Prints VmHWM (peak RSS) or VmRSS of PID in KiB.
proc_memory_kb() {
	awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"
}

# Prints the controller's CPU use between two samples as JSON: ticks are
# utime + stime from /proc/PID/stat, ns the sum of the threads' schedstat.
controller_cpu_json() {
	local ticks_before=$1 ns_before=$2 ticks_after=$3 ns_after=$4 hz

	hz=$(getconf CLK_TCK)
	awk -v hz="$hz" -v tb="$ticks_before" -v nb="$ns_before" -v ta="$ticks_after" -v na="$ns_after" '
		BEGIN {
			split(tb, b, " "); split(ta, a, " ")
			printf "{\"utime_s\":%.3f,\"stime_s\":%.3f,\"utime_stime_s\":%.3f,\"schedstat_s\":%.6f}\n",
				(a[1] - b[1]) / hz, (a[2] - b[2]) / hz, (a[1] + a[2] - b[1] - b[2]) / hz, (na - nb) / 1e9
		}'
}

controller_measure() {
	local variant=$1 round=$2 idle_ticks idle_ns ticks_before ns_before ticks_after ns_after
	local idle_json load_json metrics params

	idle_ticks=$(proc_cpu_ticks "$triage_pid")
	idle_ns=$(proc_cpu_ns "$triage_pid")
	sleep "$CONTROLLER_IDLE_S"
	ticks_before=$(proc_cpu_ticks "$triage_pid")
	ns_before=$(proc_cpu_ns "$triage_pid")
	idle_json=$(controller_cpu_json "$idle_ticks" "$idle_ns" "$ticks_before" "$ns_before")
	measure_loadgen "$CONTROLLER_S" --rate "$CONTROLLER_RATE" \
		--duration "$CONTROLLER_S" --mix /light:1 --mode close --seed "$round"
	metrics=$last_metrics
	ticks_after=$(proc_cpu_ticks "$triage_pid")
	ns_after=$(proc_cpu_ns "$triage_pid")
	load_json=$(controller_cpu_json "$ticks_before" "$ns_before" "$ticks_after" "$ns_after")
	metrics=$(jq -c --argjson idle "$idle_json" --argjson load "$load_json" \
		--argjson hwm "$(proc_memory_kb "$triage_pid" VmHWM)" \
		--argjson rss "$(proc_memory_kb "$triage_pid" VmRSS)" '
		. + {controller: {idle: $idle, load: $load, vm_hwm_kb: $hwm, vm_rss_kb: $rss,
			cpu_ms_per_1k_requests: (if .completed > 0
				then $load.utime_stime_s * 1e6 / .completed else null end),
			schedstat_ms_per_1k_requests: (if .completed > 0
				then $load.schedstat_s * 1e6 / .completed else null end)}}' <<<"$metrics")
	params=$(jq -cn --argjson rate "$CONTROLLER_RATE" --argjson duration_s "$CONTROLLER_S" \
		--argjson idle_s "$CONTROLLER_IDLE_S" \
		'{rate: $rate, mix: "/light:1", mode: "close", duration_s: $duration_s, idle_s: $idle_s}')
	record_result controller "$variant" "$round" triage-loadgen "$last_command" "$params" "$metrics"
	say "$(jq -r --arg v "$variant" --argjson r "$round" '
		"controller round \($r) \($v): \(.controller.load.utime_stime_s) s utime+stime (\(.controller.load.schedstat_s * 1000 | round) ms on CPU) for \(.completed) requests, idle \(.controller.idle.schedstat_s * 1000 | round) ms, VmHWM \(.controller.vm_hwm_kb) KiB"' \
		<<<"$metrics")"
}

scenario_controller() {
	local round variant

	say "scenario controller: ${#CONTROLLER_VARIANTS[@]} variants x $CONTROLLER_ROUNDS rounds, ${CONTROLLER_IDLE_S} s idle + ${CONTROLLER_S} s at $CONTROLLER_RATE req/s each"
	for ((round = 1; round <= CONTROLLER_ROUNDS; round++)); do
		for variant in "${CONTROLLER_VARIANTS[@]}"; do
			begin_variant "$variant" "$CONTROLLER_LIGHT" "$CONTROLLER_CPU"
			controller_measure "$variant" "$round"
			end_variant
		done
	done
}
