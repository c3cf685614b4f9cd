#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Scenario 2, isolation: open-loop load of 95% /light and 5% /cpu?ms=20, a
# new connection per request, at rising offered loads. The whole server side
# runs on one CPU, with the same number of workers in every variant. run.sh
# sources this file and sets the ISOLATION_* parameters.
#
# Variants:
#   shared   one pool of SO_REUSEPORT workers serves both kinds, so a light
#            request can wait behind a 20 ms one on the same worker
#   triage   light and cpu pools, steered by path
#   ideal    the light part of the load alone on the shared pool, which
#            bounds light latency from below
#   haproxy  HAProxy routing to the same two pools
# Each measurement (one variant at one offered load) gets fresh namespaces,
# so no backlog and no TIME_WAIT socket carries over from another one. In a
# round, the variants take turns at each load, from low to high loads.

# shellcheck disable=SC2154 # lib.sh, which run.sh sources first, sets last_command and triage_pid
readonly ISOLATION_VARIANTS=(shared triage ideal haproxy)
readonly ISOLATION_LIGHT=2
readonly ISOLATION_CPU=2
readonly ISOLATION_MIX='/light:95,/cpu?ms=20:5'
readonly ISOLATION_LIGHT_SHARE=0.95
# A request without a response this long after its intended start counts
# as a timeout, which bounds the end of a run at overload.
readonly ISOLATION_TIMEOUT_MS=3000
# 55,536 client ports. connect() takes the even ones first, in random steps
# of 2 to 16 on Linux 6.18, so one pass through them takes about 6,000
# connections. A measurement opens fewer (900 req/s for 3.5 s at most), so
# no SYN meets a TIME_WAIT socket of the server. Scenario 3 measures that
# case.
readonly ISOLATION_PORT_RANGE="10000 65535"
# Server counters that tell cookie connections from others.
readonly ISOLATION_TCPEXT=(SyncookiesSent SyncookiesRecv SyncookiesFailed TCPReqQFullDoCookies)

# Prints the server setup that runs VARIANT.
isolation_setup() {
	case $1 in
	shared | ideal) echo shared ;;
	triage) echo triage-payload ;;
	haproxy) echo haproxy ;;
	esac
}

isolation_measure() {
	local variant=$1 round=$2 rate=$3 mix=$ISOLATION_MIX offered=$3 metrics params
	local tw_before tcpext_before tcpext_after

	if [[ $variant == ideal ]]; then
		offered=$(awk -v r="$rate" -v s="$ISOLATION_LIGHT_SHARE" 'BEGIN { print r * s }')
		mix=/light:1
	fi
	tw_before=$(count_server_time_wait)
	tcpext_before=$(server_tcpext)
	measure_loadgen \
		"$(awk -v w="$ISOLATION_WARMUP_S" -v d="$ISOLATION_S" -v t="$ISOLATION_TIMEOUT_MS" \
			'BEGIN { print w + d + t / 1000 }')" \
		--rate "$offered" --duration "$ISOLATION_S" --warmup "$ISOLATION_WARMUP_S" \
		--mix "$mix" --mode close --timeout-ms "$ISOLATION_TIMEOUT_MS" --seed "$round"
	tcpext_after=$(server_tcpext)
	metrics=$(jq -c --argjson tw_before "$tw_before" \
		--argjson tcpext "$(tcpext_delta_json "$tcpext_before" "$tcpext_after" "${ISOLATION_TCPEXT[@]}")" \
		'. + {time_wait_before: $tw_before, tcpext: $tcpext}' <<<"$last_metrics")
	params=$(jq -cn --argjson rate "$rate" --argjson offered "$offered" --arg mix "$mix" \
		--argjson duration_s "$ISOLATION_S" --argjson warmup_s "$ISOLATION_WARMUP_S" \
		--argjson light "$ISOLATION_LIGHT" --argjson cpu "$ISOLATION_CPU" \
		'{rate: $rate, offered_rate: $offered, mix: $mix, duration_s: $duration_s,
		  warmup_s: $warmup_s, light_workers: $light, cpu_workers: $cpu}')
	record_result isolation "$variant" "$round" triage-loadgen "$last_command" "$params" "$metrics"
	say "$(jq -r --arg v "$variant" --argjson r "$round" --argjson rate "$rate" '
		(.classes[] | select(.path == "/light")) as $l
		| "isolation round \($r) \($v) at \($rate) req/s: light p99 \($l.p99_ms) ms, p99.9 \($l.p999_ms) ms, achieved \(.achieved_rate | floor) req/s, \(.errors | add) errors, send lag p99 \(.send_lag_p99_ms) ms"' \
		<<<"$metrics")"
}

scenario_isolation() {
	local round variant rate

	say "scenario isolation: ${#ISOLATION_VARIANTS[@]} variants x $ISOLATION_ROUNDS rounds x ${#ISOLATION_RATES[@]} offered loads (${ISOLATION_RATES[*]} req/s), ${ISOLATION_WARMUP_S} s warm-up + ${ISOLATION_S} s each"
	for ((round = 1; round <= ISOLATION_ROUNDS; round++)); do
		for rate in "${ISOLATION_RATES[@]}"; do
			for variant in "${ISOLATION_VARIANTS[@]}"; do
				begin_variant "$(isolation_setup "$variant")" "$ISOLATION_LIGHT" \
					"$ISOLATION_CPU" "$ISOLATION_PORT_RANGE"
				isolation_measure "$variant" "$round" "$rate"
				end_variant
			done
		done
	done
}
