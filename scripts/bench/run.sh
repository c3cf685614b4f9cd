#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Runs the triage benchmarks as root from a built tree: `sudo make bench`
# (full, under 30 minutes) or `sudo make bench-quick` (a smoke pass, under 4
# minutes), or directly:
#
#   scripts/bench/run.sh full|quick [SCENARIO...]
#
# SCENARIO is any of steering, isolation, churn, large, controller,
# autoscale (all by default). Each scenario runs its variants interleaved,
# one variant after the other in every round. Every measurement is appended as one JSON line
# to build/bench/results.jsonl, the machine and versions go to
# build/bench/meta.json, and at the end scripts/bench/report.py writes
# docs/BENCHMARKS.md and the plots in docs/bench/. The results of the
# previous run are moved to build/bench/previous/ first.
set -euo pipefail

# shellcheck source=scripts/bench/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=scripts/bench/steering.sh
source "$BENCH_DIR/steering.sh"
# shellcheck source=scripts/bench/isolation.sh
source "$BENCH_DIR/isolation.sh"
# shellcheck source=scripts/bench/churn.sh
source "$BENCH_DIR/churn.sh"
# shellcheck source=scripts/bench/large.sh
source "$BENCH_DIR/large.sh"
# shellcheck source=scripts/bench/controller.sh
source "$BENCH_DIR/controller.sh"
# shellcheck source=scripts/bench/autoscale.sh
source "$BENCH_DIR/autoscale.sh"

readonly ALL_SCENARIOS=(steering isolation churn large controller autoscale)

# Sets the rounds and durations of MODE. On the 2-CPU VM this was written
# on, `make bench` took about 20 minutes and `make bench-quick` about 2,
# start-ups, stops and waits for a quiet host included, before the autoscale
# scenario came. That scenario took 100 s in quick mode there, and full mode
# runs it 3 times as long, so it adds an estimated 6 minutes.
set_parameters() {
	case $1 in
	full)
		STEERING_ROUNDS=5 STEERING_S=4 STEERING_WARMUP_S=1
		ISOLATION_ROUNDS=5 ISOLATION_S=3 ISOLATION_WARMUP_S=0.5
		ISOLATION_RATES=(150 300 450 600 750 900)
		CHURN_ROUNDS=5 CHURN_S=4 CHURN_RATE=5000 CHURN_FILL_CONNECTIONS=16000
		LARGE_ROUNDS=5 LARGE_S=3
		CONTROLLER_ROUNDS=5 CONTROLLER_S=8 CONTROLLER_IDLE_S=2 CONTROLLER_RATE=2000
		# Seconds of the step's low, high and low phases, and of each ramp stage.
		AUTOSCALE_ROUNDS=3 AUTOSCALE_STEP_PHASES=(4 5 5) AUTOSCALE_RAMP_STAGE_S=4
		QUIET_BUDGET_S=180
		;;
	quick)
		STEERING_ROUNDS=1 STEERING_S=2 STEERING_WARMUP_S=1
		ISOLATION_ROUNDS=1 ISOLATION_S=2 ISOLATION_WARMUP_S=0.5
		ISOLATION_RATES=(300 750)
		CHURN_ROUNDS=1 CHURN_S=2 CHURN_RATE=5000 CHURN_FILL_CONNECTIONS=16000
		LARGE_ROUNDS=1 LARGE_S=2
		CONTROLLER_ROUNDS=1 CONTROLLER_S=5 CONTROLLER_IDLE_S=1 CONTROLLER_RATE=2000
		AUTOSCALE_ROUNDS=1 AUTOSCALE_STEP_PHASES=(3 4 4) AUTOSCALE_RAMP_STAGE_S=3
		QUIET_BUDGET_S=20
		;;
	*)
		echo "usage: scripts/bench/run.sh full|quick [${ALL_SCENARIOS[*]}]" >&2
		exit 2
		;;
	esac
}

check_prerequisites() {
	local tool ns

	if [[ $EUID -ne 0 ]]; then
		die "must run as root, since it creates network namespaces and triage loads BPF programs; run: sudo make bench"
	fi
	for tool in "$TRIAGE" "$WORKER" "$LOADGEN"; do
		[[ -x $tool ]] || die "$tool not found; build it with: make all build/triage-loadgen"
	done
	for tool in ip nsenter taskset timeout ss sysctl wrk curl jq haproxy nginx gnuplot python3 getconf; do
		command -v "$tool" >/dev/null ||
			die "'$tool' not found; install the benchmark packages with: sudo scripts/install-deps.sh bench"
	done
	if (($(nproc) < 2)); then
		die "needs 2 CPUs (server on CPU $SERVER_CPU, client on CPU $CLIENT_CPU), found $(nproc)"
	fi
	for ns in "$SRV_NS" "$CLI_NS"; do
		if [[ -e /run/netns/$ns ]]; then
			die "network namespace $ns already exists, so another benchmark may be running; if none is, remove it with: ip netns del $ns"
		fi
	done
	if [[ -e $PIN_DIR || -e $STATE_FILE ]]; then
		die "port $PORT is already attached ($PIN_DIR or $STATE_FILE exists); stop that controller or run: build/triage detach --port $PORT"
	fi
}

# Moves the previous results aside so that the report covers this run only.
rotate_results() {
	mkdir -p "$OUT_DIR"
	if [[ -e $RESULTS || -e $META ]]; then
		rm -rf "$OUT_DIR/previous"
		mkdir -p "$OUT_DIR/previous"
		mv -f "$RESULTS" "$META" "$CONFIG_DIR" "$OUT_DIR/previous/" 2>/dev/null || true
	fi
	mkdir -p "$CONFIG_DIR"
	: >"$RESULTS"
}

# Prints the Debian version of PACKAGE, or null when it is not installed.
package_version() {
	dpkg-query -W -f='${Version}' "$1" 2>/dev/null | jq -R . || echo null
}

# Writes META: the machine, versions and this run's parameters.
write_meta() {
	local mode=$1 commit dirty busy

	commit=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)
	# --no-optional-locks: status must not rewrite the index of a tree that
	# others work in.
	dirty=false
	if [[ -n $(git -C "$REPO" --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null) ]]; then
		dirty=true
	fi
	busy=$(sample_busy_share)
	jq -n --arg mode "$mode" --arg kernel "$(uname -r)" \
		--arg cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
		--argjson nproc "$(nproc)" \
		--argjson mem_kb "$(awk '$1 == "MemTotal:" { print $2 }' /proc/meminfo)" \
		--arg commit "$commit" --argjson dirty "$dirty" \
		--arg loadavg "$(cut -d' ' -f1-3 /proc/loadavg)" --argjson busy "$busy" \
		--argjson haproxy "$(package_version haproxy)" \
		--argjson nginx "$(package_version nginx-light)" \
		--argjson wrk "$(package_version wrk)" \
		--argjson curl "$(package_version curl)" \
		--argjson gnuplot "$(package_version gnuplot-nox)" \
		--arg scenarios "$2" \
		--argjson server_cpu "$SERVER_CPU" --argjson client_cpu "$CLIENT_CPU" \
		--argjson parameters "$(parameters_json)" '
		{date: (now | todate), mode: $mode, kernel: $kernel, cpu_model: $cpu, nproc: $nproc,
		 memory_kb: $mem_kb, triage_commit: $commit, triage_tree_modified: $dirty,
		 packages: {haproxy: $haproxy, "nginx-light": $nginx, wrk: $wrk, curl: $curl,
			    "gnuplot-nox": $gnuplot},
		 loadavg_at_start: $loadavg, host_busy_share_before: $busy,
		 server_cpu: $server_cpu, client_cpu: $client_cpu,
		 scenarios: ($scenarios | split(" ")), parameters: $parameters}' >"$META"
}

parameters_json() {
	jq -cn --argjson steering_rounds "$STEERING_ROUNDS" --argjson steering_s "$STEERING_S" \
		--argjson isolation_rounds "$ISOLATION_ROUNDS" --argjson isolation_s "$ISOLATION_S" \
		--argjson isolation_warmup_s "$ISOLATION_WARMUP_S" \
		--arg isolation_rates "${ISOLATION_RATES[*]}" \
		--argjson churn_rounds "$CHURN_ROUNDS" --argjson churn_s "$CHURN_S" \
		--argjson churn_rate "$CHURN_RATE" \
		--argjson large_rounds "$LARGE_ROUNDS" --argjson large_s "$LARGE_S" \
		--argjson controller_rounds "$CONTROLLER_ROUNDS" --argjson controller_s "$CONTROLLER_S" \
		--argjson controller_rate "$CONTROLLER_RATE" \
		--argjson autoscale_rounds "$AUTOSCALE_ROUNDS" \
		--arg autoscale_step_phases "${AUTOSCALE_STEP_PHASES[*]}" \
		--argjson autoscale_ramp_stage_s "$AUTOSCALE_RAMP_STAGE_S" '
		{steering: {rounds: $steering_rounds, duration_s: $steering_s},
		 isolation: {rounds: $isolation_rounds, duration_s: $isolation_s,
			     warmup_s: $isolation_warmup_s,
			     rates: ($isolation_rates | split(" ") | map(tonumber))},
		 churn: {rounds: $churn_rounds, duration_s: $churn_s, rate: $churn_rate},
		 large: {rounds: $large_rounds, duration_s: $large_s},
		 controller: {rounds: $controller_rounds, duration_s: $controller_s,
			      rate: $controller_rate},
		 autoscale: {rounds: $autoscale_rounds,
			     step_phases_s: ($autoscale_step_phases | split(" ") | map(tonumber)),
			     ramp_stage_s: $autoscale_ramp_stage_s}}'
}

main() {
	local mode=${1:-} scenarios=() scenario known known_name

	set_parameters "$mode"
	shift
	if (($# == 0)); then
		scenarios=("${ALL_SCENARIOS[@]}")
	else
		for scenario in "$@"; do
			known=false
			for known_name in "${ALL_SCENARIOS[@]}"; do
				[[ $scenario == "$known_name" ]] && known=true
			done
			$known || die "unknown scenario '$scenario'; choose from: ${ALL_SCENARIOS[*]}"
			scenarios+=("$scenario")
		done
	fi
	cd "$REPO"
	check_prerequisites
	# bash runs the EXIT trap on exit, but not when a signal kills it, so
	# the usual signals become exits: 128 + the signal number.
	trap bench_cleanup EXIT
	trap 'exit 129' HUP
	trap 'exit 130' INT
	trap 'exit 143' TERM
	BENCH_TMP=$(mktemp -d /tmp/triage-bench.XXXXXX)
	# nginx's workers run as the user nobody and must reach their temporary folders.
	chmod 755 "$BENCH_TMP"
	rotate_results
	say "mode $mode, scenarios: ${scenarios[*]}; server side on CPU $SERVER_CPU, client on CPU $CLIENT_CPU"
	write_meta "$mode" "${scenarios[*]}"
	say "host busy share before the run: $(jq -r .host_busy_share_before "$META") (load average $(jq -r .loadavg_at_start "$META"))"
	for scenario in "${scenarios[@]}"; do
		"scenario_$scenario"
	done
	jq --argjson wall_s "$((SECONDS - BENCH_START))" --argjson waited "$quiet_waited_s" \
		'. + {finished: (now | todate), wall_s: $wall_s, quiet_waited_s: $waited}' \
		"$META" >"$META.new"
	mv -f "$META.new" "$META"
	say "measurements done; writing the report"
	scripts/bench/report.py
	say "finished $mode run in $((SECONDS - BENCH_START)) s; raw results in $RESULTS, report in docs/BENCHMARKS.md"
}

main "$@"
