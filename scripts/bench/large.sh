#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Scenario 4, large responses: throughput of a 1 MiB and a 64 MiB response
# (/blob?kb=1024, /blob?kb=65536) over the veth, one transfer at a time, a
# new connection per response. In payload mode every connection is a SYN
# cookie connection, whose MSS the kernel rounds down to a value of its
# cookie table (536, 1300, 1440, 1460 for IPv4). run.sh sources this file
# and sets the LARGE_* parameters.
#
# Variants: plain (SO_REUSEPORT workers without BPF, see start_plain in
# lib.sh), triage-payload.

# shellcheck disable=SC2154 # lib.sh, which run.sh sources first, sets last_command and triage_pid
readonly LARGE_VARIANTS=(plain triage-payload)
readonly LARGE_SIZES_KB=(1024 65536)
readonly LARGE_LIGHT=2
readonly LARGE_CPU=2

# Prints "MSS RTT_MS CONGESTION_CONTROL" of the server's side of a fresh
# connection, read with ss in the server namespace while curl receives a
# small response slowly, or nothing when ss saw no connection. RTT_MS is
# the kernel's smoothed RTT soon after the handshake, which the first
# samples still dominate.
probe_server_tcp() {
	local curl_pid info="" tries=0

	nsenter --net="/run/netns/$CLI_NS" curl -sS --max-time 5 --limit-rate 512k \
		-o /dev/null "http://$SRV_ADDR:$PORT/blob?kb=256" &
	curl_pid=$!
	while [[ -z $info ]] && ((tries++ < 100)); do
		info=$(in_srv ss -Htni state established "sport = :$PORT" | tr -s ' \t' ' ')
	done
	wait "$curl_pid" || warn "curl for the TCP probe failed"
	awk '{
		for (i = 1; i <= NF; i++) {
			if ($i ~ /^mss:/) mss = substr($i, 5)
			if ($i ~ /^rtt:/) { split(substr($i, 5), r, "/"); rtt = r[1] }
			if ($i ~ /^(bbr|cubic|reno)$/) cc = $i
		}
	} END { if (mss != "") print mss, rtt, cc }' <<<"$info"
}

large_measure() {
	local variant=$1 round=$2 size_kb=$3 tcp_info=$4 metrics params

	measure_wrk close 1 "$LARGE_S" "/blob?kb=$size_kb"
	metrics=$last_metrics
	params=$(jq -cn --argjson size_kb "$size_kb" --argjson duration_s "$LARGE_S" \
		'{size_kb: $size_kb, mode: "close", connections: 1, duration_s: $duration_s}')
	metrics=$(jq -c --arg info "$tcp_info" '($info | split(" ")) as $f
		| . + {server_mss: ($f[0] | tonumber? // null),
		       server_first_rtt_ms: ($f[1] | tonumber? // null),
		       congestion_control: $f[2]}' <<<"$metrics")
	record_result large "$variant" "$round" wrk "$last_command" "$params" "$metrics"
	say "$(jq -r --arg v "$variant" --argjson r "$round" --argjson kb "$size_kb" \
		'"large round \($r) \($v) \($kb) KiB: \(.mb_per_s | floor) MB/s, \(.requests) responses, \(.errors_total) errors, server MSS \(.server_mss), early RTT \(.server_first_rtt_ms) ms"' \
		<<<"$metrics")"
}

scenario_large() {
	local round variant size_kb tcp_info

	say "scenario large: ${#LARGE_VARIANTS[@]} variants x $LARGE_ROUNDS rounds x ${#LARGE_SIZES_KB[@]} sizes, ${LARGE_S} s each"
	for ((round = 1; round <= LARGE_ROUNDS; round++)); do
		for variant in "${LARGE_VARIANTS[@]}"; do
			begin_variant "$variant" "$LARGE_LIGHT" "$LARGE_CPU"
			tcp_info=$(probe_server_tcp)
			for size_kb in "${LARGE_SIZES_KB[@]}"; do
				large_measure "$variant" "$round" "$size_kb" "$tcp_info"
			done
			end_variant
		done
	done
}
