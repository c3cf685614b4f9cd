#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Scenario 1, steering cost: short requests (/light) through each way of
# steering a port, with the same workers on the same CPU. run.sh sources
# this file and sets the STEERING_* parameters.
#
# Variants: plain (the floor, see start_plain in lib.sh), triage-payload,
# triage-connection, haproxy, nginx. Each variant run gets fresh
# namespaces and an unrecorded keep-alive warm-up. Then one wrk run opens a
# new connection per request (close), and one keeps its connections open.

# shellcheck disable=SC2154 # lib.sh, which run.sh sources first, sets last_command and triage_pid
readonly STEERING_VARIANTS=(plain triage-payload triage-connection haproxy nginx)
# Workers of the light and cpu pools in every variant. Only /light is
# requested, so STEERING_LIGHT workers serve it and the others stay idle.
readonly STEERING_LIGHT=2
readonly STEERING_CPU=2
readonly STEERING_CONNECTIONS=64
readonly STEERING_PATH=/light

steering_measure() {
	local variant=$1 round=$2 mode=$3 metrics params

	measure_wrk "$mode" "$STEERING_CONNECTIONS" "$STEERING_S" "$STEERING_PATH"
	metrics=$last_metrics
	params=$(jq -cn --arg mode "$mode" --argjson connections "$STEERING_CONNECTIONS" \
		--argjson duration_s "$STEERING_S" --arg path "$STEERING_PATH" \
		--argjson light "$STEERING_LIGHT" --argjson cpu "$STEERING_CPU" \
		'{mode: $mode, connections: $connections, duration_s: $duration_s, path: $path,
		  light_workers: $light, cpu_workers: $cpu}')
	record_result steering "$variant" "$round" wrk "$last_command" "$params" "$metrics"
	say "$(jq -r --arg v "$variant" --arg m "$mode" --argjson r "$round" \
		'"steering round \($r) \($v) \($m): \(.requests_per_s | floor) req/s, p99 \(.latency_ms.p99) ms, \(.cpu_ms_per_1k_requests * 100 | round / 100) CPU ms per 1000 requests, \(.errors_total) errors"' \
		<<<"$metrics")"
}

scenario_steering() {
	local round variant

	say "scenario steering: ${#STEERING_VARIANTS[@]} variants x $STEERING_ROUNDS rounds, wrk ${STEERING_S} s close + ${STEERING_S} s keep-alive each"
	for ((round = 1; round <= STEERING_ROUNDS; round++)); do
		for variant in "${STEERING_VARIANTS[@]}"; do
			begin_variant "$variant" "$STEERING_LIGHT" "$STEERING_CPU"
			run_client $((STEERING_WARMUP_S + CLIENT_MARGIN_S)) "$BENCH_TMP/warmup.out" \
				wrk -t1 -c"$STEERING_CONNECTIONS" -d"${STEERING_WARMUP_S}s" \
				"http://$SRV_ADDR:$PORT$STEERING_PATH"
			steering_measure "$variant" "$round" close
			steering_measure "$variant" "$round" keepalive
			end_variant
		done
	done
}
