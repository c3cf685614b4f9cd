#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Scenario 3, payload share under churn: a new connection per request from
# one client address at a high rate against triage in payload mode. run.sh
# sources this file and sets the CHURN_* parameters.
#
# The server closes first, so each 4-tuple leaves a TIME_WAIT socket on the
# server for 60 s. Once the client's ephemeral ports wrap around, a new SYN
# meets such a socket. The kernel accepts it through the TIME_WAIT path
# without a cookie, so triage places it at the SYN and not by its payload.
# A lower net.ipv4.tcp_max_tw_buckets in the server namespace keeps fewer
# TIME_WAIT sockets, so more connections are steered by payload.
#
# Variants:
#   tw-default  the namespace's own TIME_WAIT limit
#   last-pool   the same with syn_placement: last_pool, which sends a
#               SYN-time connection to the pool of its 4-tuple's previous
#               connection instead of the default pool
#   tw-128      tcp_max_tw_buckets=128
#   tw-0        tcp_max_tw_buckets=0
# Each variant run gets fresh namespaces and an unrecorded fill run.
# connect() takes the client's even ports first, in random steps of 2 to 16
# on Linux 6.18, so one pass through the default range takes about 3,000
# connections, and the fill run makes several passes. So the recorded run
# meets a server whose TIME_WAIT sockets cover the port range, as a
# long-running server's would.

# shellcheck disable=SC2154 # lib.sh, which run.sh sources first, sets last_command and triage_pid
readonly CHURN_VARIANTS=(tw-default last-pool tw-128 tw-0)
readonly CHURN_LIGHT=2
readonly CHURN_CPU=2
readonly CHURN_MIX='/light:95,/cpu?ms=1:5'
readonly CHURN_TIMEOUT_MS=3000
readonly CHURN_TCPEXT=(TW TWRecycled TWKilled TCPTimeWaitOverflow SyncookiesSent
	SyncookiesRecv SyncookiesFailed PAWSTimewait)

# Prints the tcp_max_tw_buckets value of VARIANT, or nothing for the default.
churn_tw_buckets() {
	case $1 in
	tw-[0-9]*) echo "${1#tw-}" ;;
	esac
}

# Prints the server setup of VARIANT.
churn_setup() {
	case $1 in
	last-pool) echo triage-payload-last-pool ;;
	*) echo triage-payload ;;
	esac
}

# Fills the server's TIME_WAIT sockets with the recorded run's load, and
# records nothing.
churn_fill() {
	local seconds

	seconds=$(awk -v n="$CHURN_FILL_CONNECTIONS" -v r="$CHURN_RATE" 'BEGIN { print n / r }')
	measure_loadgen "$seconds" --rate "$CHURN_RATE" --duration "$seconds" \
		--mix "$CHURN_MIX" --mode close --timeout-ms "$CHURN_TIMEOUT_MS" --seed 1000
}

churn_measure() {
	local variant=$1 round=$2 buckets=$3 metrics params tcpext_before tcpext_after
	local tw_before tw_after

	tw_before=$(count_server_time_wait)
	tcpext_before=$(server_tcpext)
	measure_loadgen "$CHURN_S" --rate "$CHURN_RATE" --duration "$CHURN_S" \
		--mix "$CHURN_MIX" --mode close --timeout-ms "$CHURN_TIMEOUT_MS" --seed "$round"
	metrics=$last_metrics
	tcpext_after=$(server_tcpext)
	tw_after=$(count_server_time_wait)
	metrics=$(jq -c --argjson tcpext "$(tcpext_delta_json "$tcpext_before" "$tcpext_after" "${CHURN_TCPEXT[@]}")" \
		--argjson tw_before "$tw_before" --argjson tw_after "$tw_after" '
		. + {tcpext: $tcpext, time_wait_before: $tw_before, time_wait_after: $tw_after,
		     misrouted: ([.classes[]
			| (if .path == "/light" then "light" else "cpu" end) as $want
			| .pools | to_entries[] | select(.key != $want) | .value] | add // 0)}' <<<"$metrics")
	params=$(jq -cn --argjson rate "$CHURN_RATE" --arg mix "$CHURN_MIX" \
		--argjson duration_s "$CHURN_S" --argjson fill "$CHURN_FILL_CONNECTIONS" \
		--arg buckets "$buckets" --arg port_range "$(in_cli sysctl -n net.ipv4.ip_local_port_range)" \
		--arg placement "$([[ $variant == last-pool ]] && echo last_pool || echo default_pool)" '
		{rate: $rate, mix: $mix, duration_s: $duration_s, fill_connections: $fill,
		 tcp_max_tw_buckets: ($buckets | tonumber), client_port_range: $port_range,
		 syn_placement: $placement}')
	record_result churn "$variant" "$round" triage-loadgen "$last_command" "$params" "$metrics"
	say "$(jq -r --arg v "$variant" --argjson r "$round" '
		"churn round \($r) \($v): payload share \(.steering.payload_share * 1000 | round / 10)% (\(.steering.payload) payload, \(.steering.syn) syn, \(.steering.syn_hinted) hinted), \(.misrouted) misrouted, \(.time_wait_after) TIME_WAIT sockets, \(.errors | add) errors"' \
		<<<"$metrics")"
}

scenario_churn() {
	local round variant buckets

	say "scenario churn: ${#CHURN_VARIANTS[@]} variants x $CHURN_ROUNDS rounds, $CHURN_FILL_CONNECTIONS fill connections + ${CHURN_S} s at $CHURN_RATE connections/s each"
	for ((round = 1; round <= CHURN_ROUNDS; round++)); do
		for variant in "${CHURN_VARIANTS[@]}"; do
			begin_variant "$(churn_setup "$variant")" "$CHURN_LIGHT" "$CHURN_CPU"
			buckets=$(churn_tw_buckets "$variant")
			if [[ -n $buckets ]]; then
				set_server_sysctl net.ipv4.tcp_max_tw_buckets "$buckets"
			fi
			buckets=$(in_srv sysctl -n net.ipv4.tcp_max_tw_buckets)
			churn_fill
			churn_measure "$variant" "$round" "$buckets"
			end_variant
		done
	done
}
