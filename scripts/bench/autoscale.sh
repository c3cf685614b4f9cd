#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Scenario 6, autoscale: open-loop load of /cpu?ms=10 (a new connection per
# request) whose rate changes during the run, against a cpu pool that the
# controller scales and against two pools of fixed size. run.sh sources
# this file and sets the AUTOSCALE_* parameters.
#
# Load shapes, built by running several triage-loadgen processes at once,
# each with its own start time, rate and duration. Their Poisson arrivals
# add up to one Poisson process at the summed rate.
#   step  AUTOSCALE_LOW_RATE, then AUTOSCALE_HIGH_RATE, then the low rate
#         again, for the three lengths in AUTOSCALE_STEP_PHASES
#   ramp  AUTOSCALE_RAMP_RATES, AUTOSCALE_RAMP_STAGE_S each
# Variants (the light pool is the same in all of them):
#   autoscale    the cpu pool scales from 1 to AUTOSCALE_MAX_WORKERS workers
#                on CPU utilization, AUTOSCALE_CPUS_PER_WORKER each
#   static-peak  a fixed pool sized for the peak rate of the shape
#   static-mean  a fixed pool sized for the time-weighted mean rate
# Both fixed sizes use the sizing rule of the autoscaler (see
# autoscale_needed), so the three variants differ in when they have that
# capacity, not in how they compute it. Each variant run gets fresh
# namespaces. In a round, the variants take turns for each shape.
#
# While the load runs, a sampler reads the pools report that the controller
# rewrites every tick (/run/triage/PORT.pools.json) and keeps one sample per
# tick: the cpu pool's running workers, CPU limit and CPU use. Worker-seconds,
# the time below the needed capacity and the ticks to reach it come from
# these samples. Latencies come from the generators' --raw files.

# shellcheck disable=SC2154 # lib.sh, which run.sh sources first, sets quiet_busy, last_command and triage_pid
readonly AUTOSCALE_VARIANTS=(autoscale static-peak static-mean)
readonly AUTOSCALE_SHAPES=(step ramp)
# CPU time of one request, in ms. The worker spins until its thread used
# that much CPU time, so a request takes longer when the cgroup's CPU limit
# throttles it.
readonly AUTOSCALE_CPU_MS=10
# Rates in requests/s. The sizing rule (autoscale_needed) gives n workers
# for 15(n-1) to 15n requests/s, and each rate below sits near the middle of
# its band: 8, 22, 37 and 52 need 1 to 4 workers, and 60 needs the maximum.
# A rate at a band's edge would make the worker count that the autoscaler
# settles on depend on how many requests happened to arrive in a tick.
readonly AUTOSCALE_LOW_RATE=8
readonly AUTOSCALE_HIGH_RATE=60
readonly AUTOSCALE_RAMP_RATES=(8 22 37 52)
# The autoscaler's policy. 4 workers of 0.25 CPUs fill SERVER_CPU, so the
# largest pool is as large as the server side of the benchmark.
readonly AUTOSCALE_MIN_WORKERS=1
readonly AUTOSCALE_MAX_WORKERS=4
readonly AUTOSCALE_CPUS_PER_WORKER=0.25
readonly AUTOSCALE_TARGET_UTILIZATION=0.6
readonly AUTOSCALE_UP_FACTOR=2
# The README's default window is 30 s. 3 s lets the pool shrink before the
# step's last low phase (4 or 5 s) ends.
readonly AUTOSCALE_DOWN_WINDOW_S=3
readonly AUTOSCALE_TICK_MS=1000
# A request meets the SLO when it gets a 2xx response within this many ms
# of its intended start. The CPU limit covers the whole pool, and triage
# sets a period of 100 ms. So one worker at 0.25 CPUs gets 25 ms of CPU time
# per period, and a request that starts after that quota is used up waits
# up to 75 ms before it runs.
readonly AUTOSCALE_SLO_MS=100
readonly AUTOSCALE_TIMEOUT_MS=5000
# At most about 600 connections per run, from several generators that
# share the client's ports. The wide range makes it unlikely that a client
# port comes back while the server still has its TIME_WAIT socket, which
# would place that connection at the SYN in the light pool. The report
# counts responses from other pools than cpu.
readonly AUTOSCALE_PORT_RANGE="10000 65535"
# Seconds of samples before the load starts, so that the first seconds of
# the load have the pool's size from a tick before them.
readonly AUTOSCALE_LEAD_S=1.5
readonly AUTOSCALE_POOLS_REPORT=/run/triage/$PORT.pools.json

# Prints the workers that RATE requests/s need under the autoscaler's rule:
# the CPU demand (RATE x AUTOSCALE_CPU_MS) divided by the CPU each worker
# may use at the target utilization, rounded up, within the pool's min and
# max.
autoscale_needed() {
	awk -v rate="$1" -v ms="$AUTOSCALE_CPU_MS" -v target="$AUTOSCALE_TARGET_UTILIZATION" \
		-v per="$AUTOSCALE_CPUS_PER_WORKER" -v low="$AUTOSCALE_MIN_WORKERS" \
		-v high="$AUTOSCALE_MAX_WORKERS" 'BEGIN {
			need = rate * ms / 1000 / (target * per)
			n = int(need)
			if (n < need - 1e-9)
				n++
			if (n < low)
				n = low
			if (n > high)
				n = high
			print n
		}'
}

# Prints the plan of SHAPE as JSON: the offered rate by time (segments, each
# with the workers it needs), the generators that make it up, and the peak
# and time-weighted mean rates.
autoscale_plan() {
	local shape=$1 segments generators

	case $shape in
	step)
		segments=$(jq -cn --argjson low "$AUTOSCALE_LOW_RATE" --argjson high "$AUTOSCALE_HIGH_RATE" \
			--argjson a "${AUTOSCALE_STEP_PHASES[0]}" --argjson b "${AUTOSCALE_STEP_PHASES[1]}" \
			--argjson c "${AUTOSCALE_STEP_PHASES[2]}" '
			[{start_s: 0, end_s: $a, rate: $low},
			 {start_s: $a, end_s: ($a + $b), rate: $high},
			 {start_s: ($a + $b), end_s: ($a + $b + $c), rate: $low}]')
		;;
	ramp)
		segments=$(jq -cn --argjson stage "$AUTOSCALE_RAMP_STAGE_S" \
			--arg rates "${AUTOSCALE_RAMP_RATES[*]}" '
			$rates | split(" ") | map(tonumber) | to_entries
			| map({start_s: (.key * $stage), end_s: ((.key + 1) * $stage), rate: .value})')
		;;
	*) die "unknown load shape '$shape'" ;;
	esac
	# One generator for the first segment's rate over the whole load, and one
	# per rise of the rate, for the difference, until the rate falls below
	# the risen level or the load ends. The sum matches the segments only
	# when a fall returns exactly to the level before a rise, so it is checked.
	generators=$(jq -c '
		(.[-1].end_s) as $load_end
		| [{offset_s: 0, duration_s: $load_end, rate: .[0].rate}]
		  + [range(1; length) as $i
		     | select(.[$i].rate > .[$i - 1].rate)
		     | {offset_s: .[$i].start_s,
			duration_s: ((first(range($i + 1; length) as $j
					| select(.[$j].rate < .[$i].rate) | .[$j].start_s) // $load_end)
				     - .[$i].start_s),
			rate: (.[$i].rate - .[$i - 1].rate)}]' <<<"$segments")
	jq -e --argjson gens "$generators" '
		all(.[]; ((.start_s + .end_s) / 2) as $t | .rate as $rate
			| ([$gens[] | select(.offset_s <= $t and $t < .offset_s + .duration_s) | .rate]
			   | add) == $rate)' <<<"$segments" >/dev/null ||
		die "the generators of load shape $shape do not add up to its rates: $generators"
	segments=$(jq -c '.[]' <<<"$segments" | while read -r segment; do
		jq -c --argjson needed "$(autoscale_needed "$(jq -r .rate <<<"$segment")")" \
			'. + {needed: $needed}' <<<"$segment"
	done | jq -cs .)
	jq -cn --argjson segments "$segments" --argjson generators "$generators" '
		{segments: $segments, generators: $generators,
		 load_s: $segments[-1].end_s,
		 peak_rate: ($segments | map(.rate) | max),
		 mean_rate: (($segments | map(.rate * (.end_s - .start_s)) | add) / $segments[-1].end_s)}'
}

# Prints the cpu pool's lines of the configuration for VARIANT with WORKERS
# workers (the starting count of the autoscale variant).
autoscale_pool_yaml() {
	local variant=$1 workers=$2

	printf '    workers: %s\n' "$workers"
	if [[ $variant == autoscale ]]; then
		printf '    scaling:\n'
		printf '      min: %s\n      max: %s\n' "$AUTOSCALE_MIN_WORKERS" "$AUTOSCALE_MAX_WORKERS"
		printf '      target: {cpu_utilization: %s}\n' "$AUTOSCALE_TARGET_UTILIZATION"
		printf '      up_factor: %s\n' "$AUTOSCALE_UP_FACTOR"
		printf '      cpus_per_worker: %s\n' "$AUTOSCALE_CPUS_PER_WORKER"
		printf '      down_window_s: %s\n' "$AUTOSCALE_DOWN_WINDOW_S"
	else
		printf '    limits: {cpus: %s}\n' \
			"$(awk -v n="$workers" -v per="$AUTOSCALE_CPUS_PER_WORKER" 'BEGIN { print n * per }')"
	fi
}

# Starts `triage run` with the cpu pool of VARIANT and WORKERS workers, and
# waits until it runs them all and both pools serve requests.
autoscale_start_triage() {
	local variant=$1 workers=$2 config=$CONFIG_DIR/triage-autoscale-$1-$2.yaml
	local waited=0 running="" expected=$(($2 + 1))

	if [[ -e $PIN_DIR || -e $STATE_FILE ]]; then
		die "port $PORT is already attached ($PIN_DIR or $STATE_FILE exists); if no benchmark runs, clean up with: nsenter --net=/run/netns/$SRV_NS $TRIAGE detach --port $PORT"
	fi
	render_template scripts/bench/configs/autoscale.yaml.in "$config" \
		"PORT=$PORT" "WORKER=$WORKER" "TICK_MS=$AUTOSCALE_TICK_MS" \
		"CPU_POOL=$(autoscale_pool_yaml "$variant" "$workers")"
	start_server triage "$TRIAGE" run --config "$config"
	# shellcheck disable=SC2034 # stop_servers and triage_counters in lib.sh read it
	triage_pid=${server_pids[-1]}
	while ((waited < READY_TIMEOUT_S * 10)); do
		check_servers_alive
		running=$("$TRIAGE" status --port "$PORT" --json 2>/dev/null |
			jq -r '[.[0].pools[]?.workers] | add // 0' 2>/dev/null || true)
		[[ $running == "$expected" ]] && break
		sleep 0.1
		waited=$((waited + 1))
	done
	if [[ $running != "$expected" ]]; then
		show_server_log triage
		die "triage has ${running:-no} of $expected workers after $READY_TIMEOUT_S s"
	fi
	check_routing light cpu
}

# Runs the generators that the JSON file SPEC lists, each at its offset, and
# samples the pools report meanwhile, on CLIENT_CPU and for at most LIMIT_S
# seconds. Prints the metrics as one JSON object. The program stops its
# generators when it gets SIGINT or SIGTERM, so none outlives it.
autoscale_drive() {
	local spec=$1 limit=$2

	timeout --foreground -k 5 "$limit" taskset -c "$CLIENT_CPU" python3 - "$spec" <<'PYTHON'
import json
import math
import os
import signal
import subprocess
import sys
import time

spec = json.load(open(sys.argv[1]))
children = []


def stop_children(signum, frame):
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, stop_children)
signal.signal(signal.SIGINT, stop_children)


def read_sample(path, pool_name, controller, seen, t0):
    """Return the pool's fields of a report by CONTROLLER newer than SEEN, or None."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    key = (st.st_ino, st.st_mtime_ns)
    if key == seen[0]:
        return None
    try:
        with open(path) as f:
            report = json.load(f)
    except (OSError, ValueError):
        # The controller replaces the file by rename(), so this is rare.
        return None
    seen[0] = key
    if report.get("controller") != controller:
        return None
    for pool in report.get("pools", []):
        if pool.get("name") == pool_name:
            workers = pool["workers"]
            usage = pool.get("utilization", {}).get("cpu_usage")
            return {"t": st.st_mtime_ns / 1e9 - t0, "running": workers["running"],
                    "current": workers["current"], "desired": workers["desired"],
                    "cpus": pool.get("limits", {}).get("cpus"),
                    "cpu_usage": usage if usage is not None else 0.0,
                    "decision": (pool.get("last_decision") or {}).get("text")}
    return None


# Run the generators at their offsets and sample every tick meanwhile.
tick = spec["tick_ms"] / 1000
t0 = time.time() + spec["lead_s"]
end = t0 + spec["load_s"] + 1.5 * tick
samples, seen, launched = [], [None], []
pending = sorted(spec["generators"], key=lambda g: g["offset_s"])
while True:
    now = time.time()
    while pending and now >= t0 + pending[0]["offset_s"]:
        gen = pending.pop(0)
        with open(gen["out"], "w") as out, open(gen["err"], "w") as err:
            launched.append((gen, time.time() - t0))
            children.append(subprocess.Popen(gen["argv"], stdin=subprocess.DEVNULL,
                                             stdout=out, stderr=err))
    sample = read_sample(spec["pools_report"], spec["pool"], spec["controller"], seen, t0)
    if sample:
        samples.append(sample)
    if not pending and now >= end and all(c.poll() is not None for c in children):
        break
    time.sleep(0.02)

for (gen, _), child in zip(launched, children):
    if child.returncode != 0:
        with open(gen["err"]) as f:
            sys.stderr.write(f.read()[-2000:])
        sys.exit(f"triage-loadgen exited with status {child.returncode}: {' '.join(gen['argv'])}")

# Requests of all generators, on the common time axis.
slo_us = spec["slo_ms"] * 1000
latencies, requests, errors, pools = [], [], {}, {}
for gen, start in launched:
    with open(gen["raw"]) as f:
        for line in f:
            intended_us, latency_us, _, status = line.split()
            ok = status.isdigit() and 200 <= int(status) < 300
            requests.append((start + int(intended_us) / 1e6, ok and int(latency_us) <= slo_us))
            if ok:
                latencies.append(int(latency_us) / 1000)
    with open(gen["out"]) as f:
        report = json.load(f)
    for kind, count in report["errors"].items():
        errors[kind] = errors.get(kind, 0) + count
    for cls in report["classes"]:
        for name, count in cls.get("pools", {}).items():
            pools[name] = pools.get(name, 0) + count
latencies.sort()


def percentile(values, share):
    if not values:
        return None
    return values[max(0, math.ceil(share * len(values)) - 1)]


# Pool size as a step function of time: a sample's values last until the next one.
samples.sort(key=lambda s: s["t"])
if not samples:
    sys.exit(f"no tick of pool {spec['pool']} in {spec['pools_report']} during the run")
segments = spec["segments"]
load_s = spec["load_s"]


def sample_at(t):
    before = [s for s in samples if s["t"] <= t]
    if before:
        return before[-1]
    return samples[0] if samples else None


def needed_at(t):
    for seg in segments:
        if seg["start_s"] <= t < seg["end_s"]:
            return seg["needed"]
    return 0


def integrate(value):
    """Integrate VALUE(t) over the load, with breakpoints at samples and segments."""
    points = sorted({0.0, load_s} | {s["t"] for s in samples if 0 < s["t"] < load_s}
                    | {seg["start_s"] for seg in segments})
    return sum(value(a) * (b - a) for a, b in zip(points, points[1:]))


worker_s = integrate(lambda t: sample_at(t)["running"])
limit_s = integrate(lambda t: sample_at(t)["cpus"] or 0)
under_s = integrate(lambda t: 1 if sample_at(t)["running"] < needed_at(t) else 0)
pool_cpu_s, previous = 0.0, None
for s in samples:
    if previous is not None and s["t"] > 0:
        pool_cpu_s += s["cpu_usage"] * (s["t"] - max(previous, 0))
    previous = s["t"]

# For every rise of the needed workers: ticks and seconds until the pool runs
# that many, or null when it never did during the load.
rises = []
for i, seg in enumerate(segments):
    if seg["needed"] <= (segments[i - 1]["needed"] if i else spec["start_workers"]):
        continue
    rise = {"start_s": seg["start_s"], "needed": seg["needed"], "ticks": None, "seconds": None}
    if sample_at(seg["start_s"])["running"] >= seg["needed"]:
        rise.update(ticks=0, seconds=0.0)
    else:
        after = [s for s in samples if seg["start_s"] < s["t"] <= load_s]
        for count, s in enumerate(after, 1):
            if s["running"] >= seg["needed"]:
                rise.update(ticks=count, seconds=round(s["t"] - seg["start_s"], 3))
                break
    rises.append(rise)
reached = all(r["ticks"] is not None for r in rises)

buckets = math.ceil(load_s)
per_second = [[0, 0] for _ in range(buckets)]
for t, met in requests:
    index = min(max(int(t), 0), buckets - 1)
    per_second[index][0] += 1
    per_second[index][1] += 0 if met else 1

decisions = []
for s in samples:
    if s["decision"] and (not decisions or decisions[-1]["text"] != s["decision"]):
        decisions.append({"t": round(s["t"], 3), "text": s["decision"]})

missed = sum(1 for _, met in requests if not met)
print(json.dumps({
    "requests": len(requests),
    "ok": len(latencies),
    "missed_slo": missed,
    "missed_slo_share": missed / len(requests) if requests else None,
    "errors": errors,
    "errors_total": sum(errors.values()),
    "latency_ms": {"p50": percentile(latencies, 0.50), "p99": percentile(latencies, 0.99),
                   "max": latencies[-1] if latencies else None},
    "pools": pools,
    "worker_seconds": round(worker_s, 3),
    "cpu_limit_seconds": round(limit_s, 3),
    "pool_cpu_seconds": round(pool_cpu_s, 3),
    "under_capacity_s": round(under_s, 3),
    "capacity_rises": rises,
    "capacity_reached": reached,
    "capacity_ticks": max((r["ticks"] for r in rises), default=0) if reached else None,
    "capacity_s": max((r["seconds"] for r in rises), default=0.0) if reached else None,
    "max_running": max((s["running"] for s in samples if 0 <= s["t"] <= load_s), default=None),
    "ticks_sampled": sum(1 for s in samples if 0 < s["t"] <= load_s),
    "generator_starts_s": [round(start, 4) for _, start in launched],
    "timeline": [[round(s["t"], 3), s["running"], s["current"], s["desired"], s["cpus"],
                  round(s["cpu_usage"], 3)] for s in samples],
    "per_second": per_second,
    "decisions": decisions,
}))
PYTHON
}

# Runs SHAPE against the running variant and records it. PLAN is the
# shape's autoscale_plan, START the cpu pool's workers at the start.
autoscale_measure() {
	local shape=$1 variant=$2 round=$3 plan=$4 start=$5
	local spec=$BENCH_TMP/autoscale-spec.json generators="[]" commands=() index=0
	local gen argv_json limit cpu_before cpu_after outside_before outside_after metrics params
	local -a argv

	while read -r gen; do
		index=$((index + 1))
		argv=(timeout --foreground -k 5
			"$(jq -r --argjson t "$AUTOSCALE_TIMEOUT_MS" '.duration_s + $t / 1000 + 30 | ceil' <<<"$gen")"
			nsenter --net="/run/netns/$CLI_NS" taskset -c "$CLIENT_CPU"
			"$LOADGEN" --target "$SRV_ADDR:$PORT"
			--rate "$(jq -r .rate <<<"$gen")" --duration "$(jq -r .duration_s <<<"$gen")"
			--mix "/cpu?ms=$AUTOSCALE_CPU_MS:1" --mode close
			--timeout-ms "$AUTOSCALE_TIMEOUT_MS" --seed "$((round * 100 + index))"
			--raw "$BENCH_TMP/autoscale-$index.raw")
		argv_json=$(printf '%s\n' "${argv[@]}" | jq -R . | jq -cs .)
		generators=$(jq -c --argjson gen "$gen" --argjson argv "$argv_json" \
			--arg out "$BENCH_TMP/autoscale-$index.out" --arg err "$BENCH_TMP/autoscale-$index.err" \
			--arg raw "$BENCH_TMP/autoscale-$index.raw" \
			'. + [$gen + {argv: $argv, out: $out, err: $err, raw: $raw}]' <<<"$generators")
		commands+=("sleep $(jq -r .offset_s <<<"$gen") && $(quote_command "${argv[@]}")")
	done < <(jq -c '.generators[]' <<<"$plan")
	jq -n --argjson plan "$plan" --argjson generators "$generators" \
		--arg report "$AUTOSCALE_POOLS_REPORT" --argjson tick_ms "$AUTOSCALE_TICK_MS" \
		--argjson lead_s "$AUTOSCALE_LEAD_S" --argjson slo_ms "$AUTOSCALE_SLO_MS" \
		--argjson start "$start" --argjson controller "$triage_pid" '
		{generators: $generators, segments: $plan.segments, load_s: $plan.load_s,
		 pools_report: $report, pool: "cpu", controller: $controller, tick_ms: $tick_ms,
		 lead_s: $lead_s, slo_ms: $slo_ms, start_workers: $start}' >"$spec"
	# The generators run in parallel, so the record shows them as one shell line.
	last_command="$(printf '(%s) & ' "${commands[@]}")wait"

	wait_for_quiet_host
	outside_before=$(scripts/bench/outside_cpu.py)
	cpu_before=$(read_cpu_jiffies)
	limit=$(jq -r --argjson lead "$AUTOSCALE_LEAD_S" --argjson t "$AUTOSCALE_TIMEOUT_MS" \
		--argjson margin "$CLIENT_MARGIN_S" '.load_s + $lead + $t / 1000 + $margin | ceil' <<<"$plan")
	metrics=$(autoscale_drive "$spec" "$limit") ||
		die "the autoscale load run failed; the generators' output is in $BENCH_TMP/autoscale-*.err"
	cpu_after=$(read_cpu_jiffies)
	outside_after=$(scripts/bench/outside_cpu.py)
	check_servers_alive
	metrics=$(jq -c --argjson cpu "$(cpu_delta_json "$cpu_before" "$cpu_after")" \
		--argjson outside "$(outside_cpu_delta_json "$outside_before" "$outside_after")" \
		--argjson quiet "$quiet_busy" \
		'. + {cpu: $cpu, outside: $outside, busy_share_before: $quiet}' <<<"$metrics")
	params=$(jq -cn --arg shape "$shape" --argjson plan "$plan" --argjson start "$start" \
		--argjson cpu_ms "$AUTOSCALE_CPU_MS" --argjson slo_ms "$AUTOSCALE_SLO_MS" \
		--argjson tick_ms "$AUTOSCALE_TICK_MS" --argjson min "$AUTOSCALE_MIN_WORKERS" \
		--argjson max "$AUTOSCALE_MAX_WORKERS" --argjson per "$AUTOSCALE_CPUS_PER_WORKER" \
		--argjson target "$AUTOSCALE_TARGET_UTILIZATION" --argjson up "$AUTOSCALE_UP_FACTOR" \
		--argjson window "$AUTOSCALE_DOWN_WINDOW_S" --argjson timeout "$AUTOSCALE_TIMEOUT_MS" \
		--arg variant "$variant" '
		{shape: $shape, segments: $plan.segments, load_s: $plan.load_s,
		 peak_rate: $plan.peak_rate, mean_rate: $plan.mean_rate,
		 generators: ($plan.generators | length), path: "/cpu?ms=\($cpu_ms)", cpu_ms: $cpu_ms,
		 mode: "close", slo_ms: $slo_ms, timeout_ms: $timeout, tick_ms: $tick_ms,
		 cpus_per_worker: $per, start_workers: $start,
		 scaled: ($variant == "autoscale"),
		 policy: {min: $min, max: $max, target_cpu_utilization: $target, up_factor: $up,
			  down_window_s: $window}}')
	record_result autoscale "$variant" "$round" triage-loadgen "$last_command" "$params" "$metrics"
	say "$(jq -r --arg v "$variant" --argjson r "$round" --arg s "$shape" '
		"autoscale round \($r) \($s) \($v): \(.missed_slo) of \(.requests) requests over the SLO, \(.errors_total) errors, p99 \(.latency_ms.p99) ms, \(.worker_seconds) worker-s, capacity after \(.capacity_ticks // "never") ticks, \(.under_capacity_s) s below it"' \
		<<<"$metrics")"
}

# Prints the cpu pool's starting workers for VARIANT under PLAN.
autoscale_start_workers() {
	local variant=$1 plan=$2

	case $variant in
	autoscale) echo "$AUTOSCALE_MIN_WORKERS" ;;
	static-peak) autoscale_needed "$(jq -r .peak_rate <<<"$plan")" ;;
	static-mean) autoscale_needed "$(jq -r .mean_rate <<<"$plan")" ;;
	*) die "unknown autoscale variant '$variant'" ;;
	esac
}

scenario_autoscale() {
	local round shape variant plan start

	say "scenario autoscale: ${#AUTOSCALE_VARIANTS[@]} variants x ${#AUTOSCALE_SHAPES[@]} load shapes x $AUTOSCALE_ROUNDS rounds; step ${AUTOSCALE_STEP_PHASES[*]} s at $AUTOSCALE_LOW_RATE/$AUTOSCALE_HIGH_RATE/$AUTOSCALE_LOW_RATE req/s, ramp ${AUTOSCALE_RAMP_RATES[*]} req/s for $AUTOSCALE_RAMP_STAGE_S s each"
	for ((round = 1; round <= AUTOSCALE_ROUNDS; round++)); do
		for shape in "${AUTOSCALE_SHAPES[@]}"; do
			plan=$(autoscale_plan "$shape")
			for variant in "${AUTOSCALE_VARIANTS[@]}"; do
				start=$(autoscale_start_workers "$variant" "$plan")
				net_up "$AUTOSCALE_PORT_RANGE"
				autoscale_start_triage "$variant" "$start"
				autoscale_measure "$shape" "$variant" "$round" "$plan" "$start"
				end_variant
			done
		done
	done
}
