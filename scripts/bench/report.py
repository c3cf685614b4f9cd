#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Write docs/BENCHMARKS.md and docs/bench/*.png from the benchmark results.

Reads build/bench/results.jsonl (one JSON object per measurement, written by
scripts/bench/run.sh) and build/bench/meta.json, relative to the repository
root. Every figure is a median over the rounds with its min-max range. A
ratio is computed within each round, against the baseline variant of that
round, and then summarized the same way. Plots need gnuplot; without it the
report is written without them.

Usage: scripts/bench/report.py [--results FILE] [--meta FILE] [--out FILE]
"""

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Light requests meet the service level objective of the isolation scenario
# when their p99 is at most this and at most ISOLATION_MAX_FAILED of them
# failed, since failed requests drop out of the percentiles.
SLO_P99_MS = 10.0
ISOLATION_MAX_FAILED = 0.01
# A measurement counts as disturbed when processes outside the benchmark
# used more than this share of the machine's CPU time during it.
OUTSIDE_SHARE_LIMIT = 0.05



# Numbers and summaries


def median_range(values):
    """Return (median, min, max) of the values that are not None, or None."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def fmt(value):
    """Format a number with about three significant digits."""
    if value is None:
        return "n/a"
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return "n/a"
    magnitude = abs(value)
    if float(value).is_integer():
        return f"{value:,.0f}"
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def fmt_summary(summary, suffix=""):
    """Format (median, min, max) as "median (min-max)"."""
    if summary is None:
        return "n/a"
    mid, low, high = summary
    if low == high:
        return f"{fmt(mid)}{suffix}"
    return f"{fmt(mid)}{suffix} ({fmt(low)}–{fmt(high)})"


def fmt_percent(summary):
    if summary is None:
        return "n/a"
    return fmt_summary(tuple(100 * v for v in summary), "%")


def dig(record, path, default=None):
    """Return the value at a dotted PATH of a nested dict, or DEFAULT."""
    value = record
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return default
        value = value[key]
    return value


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


# Loading and grouping


def load(results_path, meta_path):
    with open(meta_path) as f:
        meta = json.load(f)
    results = []
    with open(results_path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                results.append(json.loads(line))
            except json.JSONDecodeError as err:
                sys.exit(f"report.py: {results_path}:{number}: invalid JSON: {err}")
    return meta, results


def select(results, scenario, **params):
    """Return the records of SCENARIO whose params match PARAMS."""
    chosen = []
    for record in results:
        if record.get("scenario") != scenario:
            continue
        if all(record.get("params", {}).get(k) == v for k, v in params.items()):
            chosen.append(record)
    return chosen


def variants_in_order(records, preferred):
    """Return the variants of RECORDS, those of PREFERRED first in its order."""
    seen = [v for v in preferred if any(r["variant"] == v for r in records)]
    for record in records:
        if record["variant"] not in seen:
            seen.append(record["variant"])
    return seen


def summarize(records, variant, getter):
    return median_range([getter(r) for r in records if r["variant"] == variant])


def summarize_ratio(records, variant, baseline, getter):
    """Summarize getter(variant) / getter(baseline), paired by round."""
    base = {r["round"]: getter(r) for r in records if r["variant"] == baseline}
    values = [ratio(getter(r), base.get(r["round"]))
              for r in records if r["variant"] == variant]
    return median_range(values)


def light_class(record):
    for cls in dig(record, "metrics.classes", []) or []:
        if cls.get("path") == "/light":
            return cls
    return {}


def class_by_prefix(record, prefix):
    for cls in dig(record, "metrics.classes", []) or []:
        if str(cls.get("path", "")).startswith(prefix):
            return cls
    return {}


def failed_share(cls):
    """Return the share of a class's scheduled requests that got no 2xx response."""
    scheduled = cls.get("scheduled") or cls.get("sent") or 0
    if not scheduled:
        return None
    return (scheduled - cls.get("count", 0)) / scheduled


def outside_share(record):
    """Return the share of the machine's CPU time that other processes used during RECORD."""
    used = dig(record, "metrics.outside.cpu_s")
    elapsed = dig(record, "metrics.cpu.elapsed_cpu_s")
    if used is None or not elapsed:
        return None
    return used / elapsed


# Markdown pieces


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |",
             "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def commands_block(records):
    """Return a collapsed list of every distinct command of RECORDS."""
    clients, servers = [], []
    for record in records:
        if record.get("command") and record["command"] not in clients:
            clients.append(record["command"])
        for command in record.get("server", []):
            if command not in servers:
                servers.append(command)
    lines = ["<details><summary>Exact commands, from the raw results "
             f"({len(clients)} client, {len(servers)} server)</summary>", "",
             "Server side, started for each variant run in fresh namespaces:", "", "```sh"]
    lines += servers
    lines += ["```", "", "Client side, run from the repository root:", "", "```sh"]
    lines += clients
    lines += ["```", "", "</details>"]
    return "\n".join(lines)


def disturbed_note(records):
    disturbed = [r for r in records if (outside_share(r) or 0) > OUTSIDE_SHARE_LIMIT]
    if not disturbed:
        return ("No measurement of this scenario overlapped other work on the host "
                f"(above {OUTSIDE_SHARE_LIMIT:.0%} of the machine's CPU time).")
    worst = max(outside_share(r) for r in disturbed)
    return (f"{len(disturbed)} of {len(records)} measurements overlapped other work on "
            f"the host that used more than {OUTSIDE_SHARE_LIMIT:.0%} of the machine's "
            f"CPU time (at most {worst:.0%}); the medians include them.")


def loss_sentence(metric, variant, peer, mine, theirs, unit, higher_is_better):
    """Return a bullet saying that VARIANT did worse than PEER on METRIC, or None."""
    if mine is None or theirs is None:
        return None
    worse = mine[0] < theirs[0] if higher_is_better else mine[0] > theirs[0]
    if not worse:
        return None
    change = ""
    if theirs[0]:
        change = f", {100 * (mine[0] - theirs[0]) / theirs[0]:+.1f}%"
    return (f"- {variant} loses to {peer} on {metric}: {fmt(mine[0])}{unit} against "
            f"{fmt(theirs[0])}{unit} (medians{change}).")


# Scenario 1: steering cost

STEERING_METRICS = (
    # label, getter, unit, higher is better
    ("requests/s", lambda r: dig(r, "metrics.requests_per_s"), "", True),
    ("p50", lambda r: dig(r, "metrics.latency_ms.p50"), " ms", False),
    ("p99", lambda r: dig(r, "metrics.latency_ms.p99"), " ms", False),
    ("p99.9", lambda r: dig(r, "metrics.latency_ms.p999"), " ms", False),
    ("CPU ms per 1,000 requests", lambda r: dig(r, "metrics.cpu_ms_per_1k_requests"), " ms",
     False),
)


def steering_tables(records, mode):
    variants = variants_in_order(records, ("plain", "triage-payload", "triage-connection",
                                           "haproxy", "nginx"))
    rate_label = "connections/s" if mode == "close" else "requests/s"
    header = ["variant", rate_label, "p50 ms", "p99 ms", "p99.9 ms",
              "CPU ms / 1,000 req", "errors", "payload share"]
    rows = []
    for variant in variants:
        cells = [variant]
        cells += [fmt_summary(summarize(records, variant, getter))
                  for _, getter, _, _ in STEERING_METRICS]
        cells.append(fmt_summary(summarize(records, variant,
                                           lambda r: dig(r, "metrics.errors_total"))))
        share = summarize(records, variant, lambda r: dig(r, "metrics.steering.payload_share"))
        cells.append(fmt_percent(share) if share else "–")
        rows.append(cells)
    absolute = table(header, rows)

    header = ["variant ÷ plain", rate_label, "p50", "p99", "p99.9", "CPU per request"]
    rows = []
    for variant in variants:
        if variant == "plain":
            continue
        cells = [variant]
        cells += [fmt_summary(summarize_ratio(records, variant, "plain", getter), "×")
                  for _, getter, _, _ in STEERING_METRICS]
        rows.append(cells)
    return absolute, table(header, rows)


def floor_note(records, mode):
    """Return a note that lists the variants that served more per second than `plain`
    in every round."""
    rate = STEERING_METRICS[0][1]
    unit = "connections/s" if mode == "close" else "requests/s"
    floor = summarize(records, "plain", rate)
    lines = []
    for variant in variants_in_order(records, ()):
        mine = summarize(records, variant, rate)
        ratios = summarize_ratio(records, variant, "plain", rate)
        if variant == "plain" or not floor or not mine or not ratios or ratios[1] <= 1:
            continue
        lines.append(f"- {variant}: {fmt(mine[0])} {unit} against {fmt(floor[0])} for `plain`.")
    if not lines:
        return []
    return ([f"In {mode} mode `plain`, meant as the floor, served less than these variants "
             "in every round:", ""]
            + lines + ["", "NOTE: the cause is not known. The figures are medians of "
                       "interleaved rounds, so a slow drift of the host does not explain "
                       "the difference. wrk's latencies leave out the connection setup, "
                       "which its connections/s include.", ""])


def steering_losses(records, mode):
    lines = []
    for variant in ("triage-payload", "triage-connection"):
        for peer in ("haproxy", "nginx", "plain"):
            for label, getter, unit, higher in STEERING_METRICS:
                line = loss_sentence(f"{label} ({mode})", variant, peer,
                                     summarize(records, variant, getter),
                                     summarize(records, peer, getter), unit, higher)
                if line:
                    lines.append(line)
    return lines


def section_steering(results, meta):
    records = select(results, "steering")
    if not records:
        return None
    params = records[0]["params"]
    out = ["## 1. Steering cost", "",
           f"Short requests (`{params['path']}`) to the demo worker from one wrk thread "
           f"with {params['connections']} connections for {params['duration_s']} s per "
           "measurement, in two modes: `close` sends `Connection: close`, so every "
           "request opens a new connection, and `keepalive` reuses the connections. "
           f"Every variant runs {params['light_workers'] + params['cpu_workers']} worker "
           f"processes on the server CPU, a light pool of {params['light_workers']} and a "
           f"cpu pool of {params['cpu_workers']}, and `/light` goes to the light pool. "
           "`plain` is the floor: the light workers share the port by SO_REUSEPORT "
           "without BPF, and the cpu workers run idle on another address, so that the "
           "same number of processes serves `/light` in every variant. In connection mode triage chooses the pool at the SYN, before "
           "the path is known, so its configuration has no path rule and every "
           "connection goes to the light pool. CPU is the busy time of the whole "
           "machine (both CPUs, from `/proc/stat`) divided by the requests. The "
           "payload share is the part of triage's connections that it steered by their "
           "first payload rather than at the SYN. In close mode the client's ports wrap "
           "around within a second, so most SYNs meet a TIME_WAIT socket and are placed "
           "at the SYN (scenario 3 explains why); here all of them go to the light pool "
           "either way.", ""]
    for mode in ("close", "keepalive"):
        subset = [r for r in records if r["params"]["mode"] == mode]
        if not subset:
            continue
        absolute, ratios = steering_tables(subset, mode)
        title = ("new connection per request" if mode == "close"
                 else "keep-alive connections")
        out += [f"### {mode}: {title}", "", absolute, "",
                "Ratios to `plain`, computed within each round:", "", ratios, ""]
        out += floor_note(subset, mode)
        losses = steering_losses(subset, mode)
        if losses:
            out += ["Where triage does worse than a peer or the floor:", ""] + losses + [""]
        else:
            out += ["triage does no worse than any peer on these figures.", ""]
    out += [disturbed_note(records), "", commands_block(records), ""]
    return "\n".join(out)


# Scenario 2: isolation


def isolation_getters():
    return {
        "p50": lambda r: light_class(r).get("p50_ms"),
        "p99": lambda r: light_class(r).get("p99_ms"),
        "p99.9": lambda r: light_class(r).get("p999_ms"),
        "failed": lambda r: failed_share(light_class(r)),
        "cpu_p99": lambda r: class_by_prefix(r, "/cpu").get("p99_ms"),
        "achieved": lambda r: dig(r, "metrics.achieved_rate"),
        "send_lag": lambda r: dig(r, "metrics.send_lag_p99_ms"),
        "syn": lambda r: dig(r, "metrics.steering.syn"),
    }


def slo_met(records, variant, rate):
    getters = isolation_getters()
    subset = [r for r in records if r["params"]["rate"] == rate]
    p99 = summarize(subset, variant, getters["p99"])
    failed = summarize(subset, variant, getters["failed"])
    if p99 is None:
        return False
    return p99[0] <= SLO_P99_MS and (failed is None or failed[0] <= ISOLATION_MAX_FAILED)


def highest_rate_within_slo(records, variant, rates):
    """Return the highest rate at which the SLO is met there and at every lower rate."""
    best = None
    for rate in rates:
        if not slo_met(records, variant, rate):
            break
        best = rate
    return best


def isolation_table(records, variants, rates):
    getters = isolation_getters()
    header = ["offered req/s", "variant", "light p50 ms", "light p99 ms", "light p99.9 ms",
              "light failed", "p99 ÷ shared", "/cpu p99 ms", "achieved req/s",
              "send lag p99 ms", "SYN-time"]
    rows = []
    for rate in rates:
        subset = [r for r in records if r["params"]["rate"] == rate]
        for variant in variants:
            if not any(r["variant"] == variant for r in subset):
                continue
            rows.append([
                fmt(rate), variant,
                fmt_summary(summarize(subset, variant, getters["p50"])),
                fmt_summary(summarize(subset, variant, getters["p99"])),
                fmt_summary(summarize(subset, variant, getters["p99.9"])),
                fmt_percent(summarize(subset, variant, getters["failed"])),
                fmt_summary(summarize_ratio(subset, variant, "shared", getters["p99"]), "×"),
                fmt_summary(summarize(subset, variant, getters["cpu_p99"])),
                fmt_summary(summarize(subset, variant, getters["achieved"])),
                fmt_summary(summarize(subset, variant, getters["send_lag"])),
                fmt_summary(summarize(subset, variant, getters["syn"])) if variant == "triage"
                else "–",
            ])
    return table(header, rows)


def isolation_losses(records, rates):
    getters = isolation_getters()
    lines = []
    for rate in rates:
        subset = [r for r in records if r["params"]["rate"] == rate]
        for peer in ("haproxy", "shared"):
            for label in ("p99", "p99.9"):
                line = loss_sentence(f"light {label} at {fmt(rate)} req/s", "triage", peer,
                                     summarize(subset, "triage", getters[label]),
                                     summarize(subset, peer, getters[label]), " ms", False)
                if line:
                    lines.append(line)
    return lines


def isolation_intro(records):
    params = records[0]["params"]
    rates = sorted({r["params"]["rate"] for r in records})
    workers = params["light_workers"] + params["cpu_workers"]
    return [
        "## 2. Isolation", "",
        "Open-loop load from triage-loadgen (Poisson arrivals, a new connection per "
        f"request, latency from the intended start) with the mix `{params['mix']}` at "
        f"{len(rates)} offered loads, {params['warmup_s']} s of warm-up and "
        f"{params['duration_s']} s measured per load. The whole server side runs on one "
        f"CPU with {workers} workers in every variant:", "",
        "- `shared`: all workers in one SO_REUSEPORT pool, so a light request can wait "
        "behind a 20 ms one on the same single-threaded worker.",
        f"- `triage`: {params['light_workers']} light and {params['cpu_workers']} cpu "
        "workers, steered by path in payload mode.",
        "- `ideal`: only the light part of the load (95% of the offered rate) on the "
        "shared pool, which bounds light latency from below.",
        "- `haproxy`: the same two pools behind HAProxy.", "",
        "Each measurement (one variant at one offered load) starts from fresh namespaces. "
        "The client's port range is widened to 10000–65535, so no client port repeats "
        "within a measurement and no SYN meets a TIME_WAIT socket of an earlier "
        "connection. The SYN-time column counts the connections that triage placed at "
        "the SYN, without their payload, all the same. A /cpu request placed that way "
        "lands in the light pool and delays the light requests queued behind it on that "
        "worker.", "",
    ]


def isolation_syn_note(records):
    """Return a note on triage's SYN-time connections in RECORDS, from their counters."""
    hit = [r for r in records
           if r["variant"] == "triage" and (dig(r, "metrics.steering.syn") or 0) > 0]
    if not hit:
        return []
    total = sum(1 for r in records if r["variant"] == "triage")
    syn = sum(dig(r, "metrics.steering.syn") for r in hit)
    misplaced = sum(class_by_prefix(r, "/cpu").get("pools", {}).get("light", 0) for r in hit)
    text = (f"NOTE: {len(hit)} of {total} triage measurements had SYN-time connections, "
            f"{syn} in all, and {misplaced} /cpu requests of those measurements were served "
            "by the light pool.")
    counted = [r for r in hit if dig(r, "metrics.tcpext.SyncookiesRecv") is not None
               and dig(r, "metrics.time_wait_before") is not None]
    if len(counted) == len(hit):
        no_cookie = sum(dig(r, "metrics.steering.established")
                        - dig(r, "metrics.tcpext.SyncookiesRecv") for r in hit)
        time_wait = max(dig(r, "metrics.time_wait_before") for r in hit)
        existing = (f"at most {time_wait} TIME_WAIT sockets existed" if time_wait
                    else "no TIME_WAIT socket existed")
        text += (f" By the server's TcpExt counters, {no_cookie} connections of those "
                 "measurements were established without a SYN cookie. With "
                 "`tcp_syncookies=2` every SYN gets a cookie unless it meets a TIME_WAIT "
                 f"socket, and {existing} in the server namespace when such a measurement "
                 "started.")
    return [text + " The cause is not known.", ""]


def isolation_slo_lines(records, variants, rates):
    lines = [f"Service level objective (SLO): light p99 at most {fmt(SLO_P99_MS)} ms, with "
             f"at most {ISOLATION_MAX_FAILED:.0%} of the light requests failed, because "
             "failed requests leave the percentiles. The highest offered load that meets "
             "it there and at every lower load (medians):", ""]
    for variant in variants:
        best = highest_rate_within_slo(records, variant, rates)
        text = f"{fmt(best)} req/s" if best is not None else "none of the tested loads"
        lines.append(f"- {variant}: {text}")
    return lines + [""]


def section_isolation(results, meta, plots):
    records = select(results, "isolation")
    if not records:
        return None
    rates = sorted({r["params"]["rate"] for r in records})
    variants = variants_in_order(records, ("shared", "triage", "ideal", "haproxy"))

    out = isolation_intro(records)
    out += isolation_syn_note(records)
    out += isolation_slo_lines(records, variants, rates)
    out += [isolation_table(records, variants, rates), ""]
    for name, label in (("isolation-p99.png", "p99"), ("isolation-p999.png", "p99.9")):
        if name in plots:
            out += [f"![light {label} against offered load](bench/{name})", ""]

    losses = isolation_losses(records, rates)
    if losses:
        out += ["Where triage does worse than a peer:", ""] + losses + [""]
    else:
        out += ["triage's light latency is no worse than haproxy's or the shared pool's at "
                "any tested load.", ""]
    out += [disturbed_note(records), "", commands_block(records), ""]
    return "\n".join(out)


def plot_isolation(records, out_dir, gnuplot):
    """Write the light p99 and p99.9 plots and return the file names written."""
    getters = isolation_getters()
    rates = sorted({r["params"]["rate"] for r in records})
    variants = variants_in_order(records, ("shared", "triage", "ideal", "haproxy"))
    written = []
    with tempfile.TemporaryDirectory(prefix="triage-bench-plot.") as tmp:
        for name, label in (("isolation-p99.png", "p99"), ("isolation-p999.png", "p99.9")):
            plot_lines = []
            for index, variant in enumerate(variants):
                data = os.path.join(tmp, f"{index}-{label}.dat")
                with open(data, "w") as f:
                    for rate in rates:
                        subset = [r for r in records if r["params"]["rate"] == rate]
                        summary = summarize(subset, variant, getters[label])
                        if summary:
                            f.write(f"{rate} {summary[0]} {summary[1]} {summary[2]}\n")
                plot_lines.append(f"'{data}' using 1:2:3:4 with yerrorlines "
                                  f"title '{variant}' lw 2")
            plot_lines.append(f"{SLO_P99_MS} with lines dt 2 lc rgb 'gray' "
                              f"title 'SLO {fmt(SLO_P99_MS)} ms'")
            script = "\n".join([
                "set terminal pngcairo size 900,560 font ',11'",
                f"set output '{os.path.join(out_dir, name)}'",
                f"set title 'Light requests: {label} latency against offered load "
                "(median, bars min-max)'",
                "set xlabel 'offered load (requests/s, 95% /light, 5% /cpu?ms=20)'",
                f"set ylabel 'light {label} (ms, log scale)'",
                "set logscale y",
                "set grid",
                "set key top left",
                "plot " + ", \\\n     ".join(plot_lines),
            ])
            subprocess.run([gnuplot], input=script, text=True, check=True)
            written.append(name)
    return written


# Scenario 3: payload share under churn


CHURN_COLUMNS = (
    # label, getter, shown as a percentage
    ("tcp_max_tw_buckets", lambda r: dig(r, "params.tcp_max_tw_buckets"), False),
    ("payload share", lambda r: dig(r, "metrics.steering.payload_share"), True),
    ("SYN-time, hinted", lambda r: dig(r, "metrics.steering.syn_hinted"), False),
    ("SYN-time, total", lambda r: dig(r, "metrics.steering.syn"), False),
    ("wrong pool", lambda r: ratio(dig(r, "metrics.misrouted"),
                                   dig(r, "metrics.completed")), True),
    ("TIME_WAIT at end", lambda r: dig(r, "metrics.time_wait_after"), False),
    ("TCPTimeWaitOverflow", lambda r: dig(r, "metrics.tcpext.TCPTimeWaitOverflow"), False),
    ("p99 ms", lambda r: dig(r, "metrics.all.p99_ms"), False),
    ("errors", lambda r: sum((dig(r, "metrics.errors") or {}).values()), False),
)


def churn_intro(params):
    port_range = "–".join(str(params["client_port_range"]).split())
    return [
        "## 3. Payload share under churn", "",
        "triage in payload mode, loaded by triage-loadgen from one client address at "
        f"{fmt(params['rate'])} new connections/s (`{params['mix']}`) for "
        f"{params['duration_s']} s. An unrecorded run of {fmt(params['fill_connections'])} "
        "connections comes first and goes through the client's port range "
        f"({port_range}) several times: connect() takes the even ports first, in random "
        "steps of 2 to 16 on this kernel. The server closes each connection "
        "first and keeps its TIME_WAIT socket. A SYN that meets such a socket of the same "
        "4-tuple is accepted through the TIME_WAIT path without a SYN cookie, so triage "
        "places it at the SYN instead of by its payload. It goes to the default pool "
        "(`syn_placement: default_pool`, the default), or with `syn_placement: last_pool` "
        "(variant `last-pool`) to the pool that the 4-tuple's previous connection used, "
        "which `triage status` counts as hinted. `net.ipv4.tcp_max_tw_buckets` is set in "
        "the server namespace only, and restored afterwards. \"Wrong pool\" is the share "
        "of responses whose X-Triage-Pool header names another pool than the one that the "
        "path belongs to. TCPTimeWaitOverflow counts the closed connections that got no "
        "TIME_WAIT socket because of the limit.", "",
    ]


def churn_share_sentence(records, variants):
    share = CHURN_COLUMNS[1][1]
    default = summarize(records, "tw-default", share)
    if not default:
        return []
    parts = []
    for variant in variants:
        summary = summarize(records, variant, share)
        if variant != "tw-default" and summary:
            parts.append(f"{summary[0]:.0%} with {variant}")
    text = (f"With the namespace's default limit, {default[0]:.0%} of the connections were "
            "steered by payload")
    if len(parts) > 1:
        text += ", against " + ", ".join(parts[:-1]) + " and " + parts[-1]
    elif parts:
        text += ", against " + parts[0]
    return [text + ".", ""]


CHURN_TRADE_OFF = (
    "The trade-off: a TIME_WAIT socket keeps the last sequence number and timestamp of "
    "its 4-tuple for 60 s. A delayed segment of the old connection then cannot be taken "
    "for data of a new one, and a new SYN on the 4-tuple is accepted only when it is "
    "newer. With `tcp_max_tw_buckets` lowered, a closed connection beyond the limit "
    "leaves no TIME_WAIT socket, so that protection is gone for its 4-tuple. In "
    "exchange, the next SYN of the 4-tuple gets a cookie and its connection is steered "
    "by payload. Many clients, or a wide client port range, make 4-tuple reuse within "
    "60 s rare. One client at a high connection rate, as here, makes it the common case.")


def section_churn(results, meta):
    records = select(results, "churn")
    if not records:
        return None
    variants = variants_in_order(records, ("tw-default", "last-pool", "tw-128", "tw-0"))

    rows = []
    for variant in variants:
        cells = [variant]
        for _, getter, percent in CHURN_COLUMNS:
            summary = summarize(records, variant, getter)
            cells.append(fmt_percent(summary) if percent else fmt_summary(summary))
        rows.append(cells)

    out = churn_intro(records[0]["params"])
    out += [table(["variant"] + [label for label, _, _ in CHURN_COLUMNS], rows), ""]
    out += churn_share_sentence(records, variants)
    out += [CHURN_TRADE_OFF, "", disturbed_note(records), "", commands_block(records), ""]
    return "\n".join(out)


# Scenario 4: large responses


def large_row(records, size, variant):
    throughput = (lambda r: dig(r, "metrics.mb_per_s"))
    versus_plain = "–"
    if variant != "plain":
        versus_plain = fmt_summary(summarize_ratio(records, variant, "plain", throughput), "×")
    return [
        f"{size // 1024} MiB", variant,
        fmt_summary(summarize(records, variant, throughput)),
        versus_plain,
        fmt_summary(summarize(records, variant, lambda r: dig(r, "metrics.requests"))),
        fmt_summary(summarize(records, variant, lambda r: dig(r, "metrics.errors_total"))),
        fmt_summary(summarize(records, variant, lambda r: dig(r, "metrics.server_mss"))),
        fmt_summary(summarize(records, variant,
                              lambda r: dig(r, "metrics.server_first_rtt_ms"))),
    ]


def section_large(results, meta):
    records = select(results, "large")
    if not records:
        return None
    sizes = sorted({r["params"]["size_kb"] for r in records})
    variants = variants_in_order(records, ("plain", "triage-payload"))
    throughput = (lambda r: dig(r, "metrics.mb_per_s"))

    rows, losses = [], []
    for size in sizes:
        subset = [r for r in records if r["params"]["size_kb"] == size]
        for variant in variants:
            rows.append(large_row(subset, size, variant))
            if variant == "plain":
                continue
            line = loss_sentence(f"{size // 1024} MiB throughput", variant, "plain",
                                 summarize(subset, variant, throughput),
                                 summarize(subset, "plain", throughput), " MB/s", True)
            if line:
                losses.append(line)

    duration = records[0]["params"]["duration_s"]
    out = ["## 4. Large responses", "",
           f"One wrk connection at a time for {duration} s per size, a new connection per "
           "response (`Connection: close`), so every response starts with a handshake "
           "and slow start. MB/s is 10^6 bytes of responses per second. The MSS column is "
           "what the server used on a connection (`ss -ti` on the server), less the 12 "
           "bytes of TCP timestamps. The veth has an MTU of 1500, so clients announce an "
           "MSS of 1460, which is itself a value of the cookie table, and the cookie's MSS "
           "rounding changes nothing here.", "",
           table(["size", "variant", "MB/s", "÷ plain", "responses", "errors", "server MSS",
                  "early RTT ms"], rows), ""]
    if losses:
        out += ["Where triage does worse than the floor:", ""] + losses + [""]
    out += [large_rtt_note(records), ""]
    out += [disturbed_note(records), "", commands_block(records), ""]
    return "\n".join(out)


def large_rtt_note(records):
    """Explain the early RTT column, with the figures of RECORDS."""
    rtt = (lambda r: dig(r, "metrics.server_first_rtt_ms"))
    plain = summarize(records, "plain", rtt)
    triage = summarize(records, "triage-payload", rtt)
    controls = sorted({dig(r, "metrics.congestion_control") or "unknown" for r in records})
    text = ("The early RTT is the server's smoothed RTT shortly after the handshake, read "
            "with `ss -ti` while curl receives a small response slowly; the first samples "
            "still dominate it.")
    if plain and triage:
        text += (f" It was {fmt(triage[0])} ms on triage's cookie connections against "
                 f"{fmt(plain[0])} ms without BPF. Linux's SYN cookies "
                 "(net/ipv4/syncookies.c) keep the TCP options in the 6 low bits of the "
                 "SYN-ACK's timestamp value, and round that value down by up to 63 "
                 "timestamp units (ms) to make room. An RTT taken from the echo of that "
                 "timestamp comes out too high by as much, which fits the figure.")
    text += (f" Congestion control on this host: {', '.join(controls)}. BBR sets its "
             "initial pacing rate from the RTT, so a connection that starts with a high "
             "RTT estimate sends its first round trips slowly, which weighs most on the "
             "1 MiB responses.")
    return text


# Scenario 5: controller overhead


def section_controller(results, meta):
    records = select(results, "controller")
    if not records:
        return None
    params = records[0]["params"]
    variants = variants_in_order(records, ("triage-payload", "triage-connection"))
    columns = (
        ("utime+stime s", lambda r: dig(r, "metrics.controller.load.utime_stime_s")),
        ("on-CPU ms (schedstat)", lambda r: 1000 * (dig(r, "metrics.controller.load.schedstat_s")
                                                    or 0)),
        ("utime+stime ms / 1,000 req", lambda r: dig(r, "metrics.controller.cpu_ms_per_1k_requests")),
        ("on-CPU ms / 1,000 req", lambda r: dig(r, "metrics.controller.schedstat_ms_per_1k_requests")),
        ("loaded on-CPU ms/s", lambda r: 1000 * (dig(r, "metrics.controller.load.schedstat_s")
                                                  or 0) / (dig(r, "params.duration_s") or 1)),
        ("idle on-CPU ms/s", lambda r: 1000 * (dig(r, "metrics.controller.idle.schedstat_s") or 0)
         / (dig(r, "params.idle_s") or 1)),
        ("VmHWM KiB", lambda r: dig(r, "metrics.controller.vm_hwm_kb")),
        ("requests", lambda r: dig(r, "metrics.completed")),
    )
    rows = [[variant] + [fmt_summary(summarize(records, variant, getter))
                         for _, getter in columns] for variant in variants]
    out = ["## 5. Controller overhead", "",
           f"CPU time and peak memory of the `triage run` process while triage-loadgen "
           f"sends `/light` at {fmt(params['rate'])} requests/s, a new connection per "
           f"request, for {params['duration_s']} s. utime+stime comes from "
           "`/proc/PID/stat` in clock ticks (10 ms here), so small values are coarse; "
           "on-CPU time comes from `/proc/PID/task/*/schedstat`, in nanoseconds. The "
           f"idle column is the same process during {params['idle_s']} s without load. "
           "VmHWM is the peak resident set since the controller started. The steering "
           "itself runs in the kernel's receive path, not in this process, and shows in "
           "scenario 1.", "",
           table(["variant"] + [label for label, _ in columns], rows), "",
           disturbed_note(records), "", commands_block(records), ""]
    return "\n".join(out)


# Scenario 6: autoscale

AUTOSCALE_VARIANTS = ("autoscale", "static-peak", "static-mean")
AUTOSCALE_SHAPES = ("step", "ramp")


def autoscale_capacity_cell(records, variant, path):
    """Format the median time to the needed capacity, with the rounds that never reached it."""
    mine = [r for r in records if r["variant"] == variant]
    if not mine:
        return "n/a"
    never = sum(1 for r in mine if not dig(r, "metrics.capacity_reached"))
    if never == len(mine):
        return "never"
    text = fmt_summary(median_range([dig(r, path) for r in mine]))
    if never:
        text += f"; never in {never} of {len(mine)} rounds"
    return text


def autoscale_workers_cell(records, variant):
    mine = [r for r in records if r["variant"] == variant]
    if not mine:
        return "n/a"
    params = mine[0]["params"]
    if params.get("scaled"):
        policy = params["policy"]
        peak = median_range([dig(r, "metrics.max_running") for r in mine])
        return f"{policy['min']}–{policy['max']}, at most {fmt_summary(peak)}"
    return fmt(params["start_workers"])


AUTOSCALE_COLUMNS = (
    # label, getter
    ("over SLO", lambda r: dig(r, "metrics.missed_slo")),
    ("requests", lambda r: dig(r, "metrics.requests")),
    ("errors", lambda r: dig(r, "metrics.errors_total")),
    ("p50 ms", lambda r: dig(r, "metrics.latency_ms.p50")),
    ("p99 ms", lambda r: dig(r, "metrics.latency_ms.p99")),
    ("worker-s", lambda r: dig(r, "metrics.worker_seconds")),
)
AUTOSCALE_WORKER_S = AUTOSCALE_COLUMNS[-1][1]
AUTOSCALE_MISSED = AUTOSCALE_COLUMNS[0][1]


def autoscale_table(records):
    variants = variants_in_order(records, AUTOSCALE_VARIANTS)
    header = (["variant", "cpu workers", "ticks to capacity", "s to capacity",
               "s below capacity"] + [label for label, _ in AUTOSCALE_COLUMNS]
              + ["worker-s ÷ static-peak", "worker-s ÷ static-mean", "pool CPU s"])
    rows = []
    for variant in variants:
        cells = [variant, autoscale_workers_cell(records, variant),
                 autoscale_capacity_cell(records, variant, "metrics.capacity_ticks"),
                 autoscale_capacity_cell(records, variant, "metrics.capacity_s"),
                 fmt_summary(summarize(records, variant,
                                       lambda r: dig(r, "metrics.under_capacity_s")))]
        cells += [fmt_summary(summarize(records, variant, getter))
                  for _, getter in AUTOSCALE_COLUMNS]
        for baseline in ("static-peak", "static-mean"):
            cells.append("–" if variant == baseline else fmt_summary(
                summarize_ratio(records, variant, baseline, AUTOSCALE_WORKER_S), "×"))
        cells.append(fmt_summary(summarize(records, variant,
                                           lambda r: dig(r, "metrics.pool_cpu_seconds"))))
        rows.append(cells)
    return table(header, rows)


def autoscale_shape_text(params):
    rates = [segment["rate"] for segment in params["segments"]]
    lengths = [segment["end_s"] - segment["start_s"] for segment in params["segments"]]
    needed = [segment["needed"] for segment in params["segments"]]
    if params["shape"] == "step":
        return (f"step: {fmt(rates[0])} requests/s for {fmt(lengths[0])} s, "
                f"{fmt(rates[1])} for {fmt(lengths[1])} s, then {fmt(rates[2])} for "
                f"{fmt(lengths[2])} s; needed workers {needed[0]}, {needed[1]}, {needed[2]}")
    return (f"ramp: {', '.join(fmt(rate) for rate in rates)} requests/s, {fmt(lengths[0])} s "
            f"each; needed workers {', '.join(str(n) for n in needed)}")


def autoscale_intro(records):
    params = records[0]["params"]
    policy = params["policy"]
    per = params["cpus_per_worker"]
    shapes = []
    for shape in AUTOSCALE_SHAPES:
        subset = [r for r in records if r["params"]["shape"] == shape]
        if subset:
            sizes = {r["variant"]: r["params"]["start_workers"] for r in subset}
            shapes.append(f"- {autoscale_shape_text(subset[0]['params'])}. Mean "
                          f"{fmt(subset[0]['params']['mean_rate'])} requests/s, so "
                          f"`static-peak` has {sizes.get('static-peak', 'n/a')} workers and "
                          f"`static-mean` {sizes.get('static-mean', 'n/a')}.")
    return [
        "## 6. Autoscale", "",
        f"Open-loop load of `{params['path']}` (Poisson arrivals, a new connection per "
        "request, latency from the intended start) whose rate changes during the run. "
        "Several triage-loadgen processes run at once, each from its own start time at its "
        "own rate, and their arrivals add up to the offered rate of the load shape:", "",
        *shapes, "",
        f"Each request uses {params['cpu_ms']:g} ms of CPU time in a worker of the cpu "
        f"pool, whose CPU limit is {per:g} CPUs per worker. The whole server side runs on "
        "one CPU, and the light pool (1 worker, no load) is the same in every variant. "
        "Variants of the cpu pool:", "",
        f"- `autoscale`: from {policy['min']} to {policy['max']} workers, target CPU "
        f"utilization {policy['target_cpu_utilization']:g}, `up_factor` "
        f"{policy['up_factor']:g}, `down_window_s` {policy['down_window_s']:g}, "
        f"`tick_ms` {params['tick_ms']}. It starts with {policy['min']} worker.",
        "- `static-peak`: a fixed pool sized for the peak rate.",
        "- `static-mean`: a fixed pool sized for the time-weighted mean rate.", "",
        "Both fixed sizes follow the autoscaler's rule, which also gives the needed workers "
        f"at each moment of the load: the CPU demand (rate × {params['cpu_ms']:g} ms) "
        f"divided by the CPU that one worker may use at the target ({per:g} × "
        f"{policy['target_cpu_utilization']:g} CPUs), rounded up. *Ticks to capacity* "
        "counts the controller's ticks from a rise of the needed workers until the pool "
        "runs that many, and is the largest over the rises of the shape; *s below "
        "capacity* is the time of the load during which the pool ran fewer workers than "
        "needed. *Worker-seconds* is the integral of the pool's running workers, draining "
        "ones included, over the load; with a fixed CPU limit per worker it also measures "
        f"the CPU limit granted ({per:g} CPU-seconds per worker-second). Both come from "
        "the pools report that the controller rewrites every tick and the benchmark reads "
        "every 20 ms. *Pool CPU s* is the CPU time that the pool used, from the same "
        "report. A request is *over SLO* when it got no 2xx response within "
        f"{params['slo_ms']:g} ms of its intended start, so errors count there too. "
        "Each variant run starts from fresh namespaces, and in each round the variants "
        "take turns for each shape. The generators' seeds depend on the round only, so "
        "every variant of a round gets the same arrival times.", "",
    ]


def autoscale_pool_note(records):
    """Return a note on responses that came from another pool than cpu, if any."""
    stray = sum(count for r in records
                for pool, count in (dig(r, "metrics.pools") or {}).items() if pool != "cpu")
    if not stray:
        return []
    hit = sum(1 for r in records
              if any(pool != "cpu" for pool in (dig(r, "metrics.pools") or {})))
    return [f"NOTE: in {hit} of {len(records)} measurements, {stray} responses in all came "
            "from another pool than cpu, by their X-Triage-Pool header.", ""]


def autoscale_summary(records, shape):
    """Return sentences that compare autoscale with both fixed pools in RECORDS."""
    peak = summarize_ratio(records, "autoscale", "static-peak", AUTOSCALE_WORKER_S)
    mean = summarize_ratio(records, "autoscale", "static-mean", AUTOSCALE_WORKER_S)
    missed = {v: summarize(records, v, AUTOSCALE_MISSED) for v in AUTOSCALE_VARIANTS}
    if peak is None or mean is None or None in missed.values():
        return []
    lines = [f"In the {shape}, `autoscale` used {fmt(peak[0])}× the worker-seconds of "
             f"`static-peak` and {fmt(mean[0])}× those of `static-mean` (medians of the "
             "per-round ratios). Requests over the SLO: "
             f"{fmt(missed['autoscale'][0])} against {fmt(missed['static-peak'][0])} for "
             f"`static-peak` and {fmt(missed['static-mean'][0])} for `static-mean`.",
             ""]
    losses = []
    for peer in ("static-peak", "static-mean"):
        line = loss_sentence(f"requests over the SLO ({shape})", "autoscale", peer,
                             missed["autoscale"], missed[peer], "", False)
        if line:
            losses.append(line)
        line = loss_sentence(f"worker-seconds ({shape})", "autoscale", peer,
                             summarize(records, "autoscale", AUTOSCALE_WORKER_S),
                             summarize(records, peer, AUTOSCALE_WORKER_S), "", False)
        if line:
            losses.append(line)
    if losses:
        lines += ["Where `autoscale` does worse than a fixed pool:", ""] + losses + [""]
    return lines


def autoscale_decisions(records):
    """Return a collapsed list of the scaling decisions of each shape's first round."""
    lines = ["<details><summary>Scaling decisions of the first round, from the pools "
             "report (seconds from the start of the load)</summary>", ""]
    for shape in AUTOSCALE_SHAPES:
        runs = sorted((r for r in records if r["variant"] == "autoscale"
                       and r["params"]["shape"] == shape), key=lambda r: r["round"])
        if not runs:
            continue
        lines.append(f"{shape}:")
        lines.append("")
        decisions = dig(runs[0], "metrics.decisions") or []
        lines += [f"- {d['t']:.1f} s: {d['text']}" for d in decisions] or ["- none"]
        lines.append("")
    return "\n".join(lines + ["</details>"])


def section_autoscale(results, meta, plots):
    records = select(results, "autoscale")
    if not records:
        return None
    out = autoscale_intro(records)
    out += autoscale_pool_note(records)
    for shape in AUTOSCALE_SHAPES:
        subset = [r for r in records if r["params"]["shape"] == shape]
        if not subset:
            continue
        out += [f"### {shape}", "", autoscale_table(subset), ""]
        out += autoscale_summary(subset, shape)
    if "autoscale.png" in plots:
        out += ["![workers and requests over the SLO during the load](bench/autoscale.png)", ""]
    out += [autoscale_decisions(records), "", disturbed_note(records), "",
            commands_block(records), ""]
    return "\n".join(out)


def plot_autoscale(records, out_dir, gnuplot):
    """Write the worker and SLO timelines of the first round and return the file names."""
    name = "autoscale.png"
    variants = variants_in_order(records, AUTOSCALE_VARIANTS)
    panels = []
    with tempfile.TemporaryDirectory(prefix="triage-bench-plot.") as tmp:
        for shape in AUTOSCALE_SHAPES:
            runs = {}
            for record in sorted(records, key=lambda r: r["round"], reverse=True):
                if record["params"]["shape"] == shape:
                    runs[record["variant"]] = record
            if not runs:
                continue
            params = next(iter(runs.values()))["params"]
            needed = os.path.join(tmp, f"{shape}-needed.dat")
            with open(needed, "w") as f:
                for segment in params["segments"]:
                    f.write(f"{segment['start_s']} {segment['needed']}\n")
                last = params["segments"][-1]
                f.write(f"{last['end_s']} {last['needed']}\n")
            workers = [f"'{needed}' using 1:2 with steps dt 2 lw 2 lc rgb 'gray' "
                       "title 'needed'"]
            missed = []
            for index, variant in enumerate(variants):
                if variant not in runs:
                    continue
                metrics = runs[variant]["metrics"]
                timeline = os.path.join(tmp, f"{shape}-{index}-workers.dat")
                with open(timeline, "w") as f:
                    for point in metrics.get("timeline", []):
                        if -1 <= point[0] <= params["load_s"] + 1:
                            f.write(f"{point[0]} {point[1]}\n")
                per_second = os.path.join(tmp, f"{shape}-{index}-missed.dat")
                with open(per_second, "w") as f:
                    for second, (_, count) in enumerate(metrics.get("per_second", [])):
                        f.write(f"{second + 0.5} {count}\n")
                workers.append(f"'{timeline}' using 1:2 with steps lw 2 lc {index + 1} "
                               f"title '{variant}'")
                missed.append(f"'{per_second}' using 1:2 with linespoints lw 2 lc {index + 1} "
                              f"title '{variant}'")
            panels.append((shape, params, workers, missed))
        if not panels:
            return []
        script = ["set terminal pngcairo size 1100,760 font ',10'",
                  f"set output '{os.path.join(out_dir, name)}'",
                  f"set multiplot layout 2,{len(panels)} columnsfirst "
                  "title 'Scenario 6, first round: running cpu workers (top) and requests "
                  "over the SLO per second (bottom)'",
                  "set grid", "set key top left", "set xlabel 'seconds from the start of the load'"]
        for shape, params, workers, missed in panels:
            script += [f"set title '{shape}'", "set ylabel 'running workers'",
                       f"set yrange [0:{params['policy']['max'] + 1}]",
                       f"set xrange [-1:{params['load_s'] + 1}]",
                       "plot " + ", \\\n     ".join(workers),
                       f"set title '{shape}'",
                       f"set ylabel 'requests over {fmt(params['slo_ms'])} ms per second'",
                       "set yrange [0:*]",
                       "plot " + ", \\\n     ".join(missed)]
        script.append("unset multiplot")
        subprocess.run([gnuplot], input="\n".join(script), text=True, check=True)
    return [name]


# The document


def machine_section(meta):
    packages = meta.get("packages", {})
    memory_gib = (meta.get("memory_kb") or 0) / 1024 / 1024
    commit = meta.get("triage_commit", "unknown")
    if meta.get("triage_tree_modified"):
        commit += " (with uncommitted changes to tracked files)"
    rows = [
        ["date", meta.get("date", "unknown")],
        ["mode", f"{meta.get('mode', 'unknown')}, {meta.get('wall_s', 'n/a')} s in all"],
        ["kernel", meta.get("kernel", "unknown")],
        ["CPU", f"{meta.get('cpu_model', 'unknown')}, {meta.get('nproc', '?')} CPUs"],
        ["memory", f"{memory_gib:.1f} GiB"],
        ["triage commit", commit],
        ["haproxy", str(packages.get("haproxy"))],
        ["nginx-light", str(packages.get("nginx-light"))],
        ["wrk", str(packages.get("wrk"))],
        ["curl", str(packages.get("curl"))],
        ["gnuplot-nox", str(packages.get("gnuplot-nox"))],
        ["load average at start", str(meta.get("loadavg_at_start"))],
        ["busy share before start", str(meta.get("host_busy_share_before"))],
        ["waited for a quiet host", f"{meta.get('quiet_waited_s', 'n/a')} s"],
    ]
    return table(["", ""], rows)


def method_section(meta):
    server, client = meta.get("server_cpu", 0), meta.get("client_cpu", 1)
    return "\n".join([
        "## Method", "",
        "- Two network namespaces made for each variant run: the server side in "
        "`tbench-srv` (10.233.0.1), the client in `tbench-cli` (10.233.0.2), joined by a "
        "veth pair. The service port is 8090. Backends behind a proxy listen on "
        "127.0.1.N:8090 (light) and 127.0.2.N:8090 (cpu) in the server namespace.",
        f"- Fixed CPU budget: every server-side process (workers, triage, haproxy, nginx) "
        f"is pinned to CPU {server} with taskset, and the client to CPU {client}. Receive "
        f"packet steering (RPS) on each veth end processes arriving packets on the "
        f"receiving side's CPU, so the server's receive path, triage's BPF programs "
        f"included, also runs on CPU {server}. CPU figures count the whole machine.",
        "- In every round each variant runs once, one after the other (A B C, A B C, "
        "...), and each variant run starts from fresh namespaces, so no TIME_WAIT "
        "socket or other state carries over. Tables give the median over the rounds with "
        "the min-max range in brackets; ratios are computed within a round against the "
        "baseline of the same round, then summarized the same way.",
        "- The host is shared with other work. Before each measurement the run waits "
        "(within a budget) until the machine's busy share is under 10%, and every "
        "measurement records the CPU time that processes outside the benchmark used "
        "during it; each scenario states how many measurements that disturbed.",
        "- Raw data: `build/bench/results.jsonl` (one JSON object per measurement, with "
        "the exact client and server commands) and `build/bench/meta.json`. The rendered "
        "configurations are in `build/bench/configs/`, made from the templates in "
        "`scripts/bench/configs/` and `scripts/bench/peers/`.",
        "",
    ])


def render(meta, results, plots):
    sections = [
        "# Benchmarks", "",
        "Generated by `scripts/bench/report.py` from the results of "
        f"`scripts/bench/run.sh {meta.get('mode', 'full')}` (`sudo make bench` for the full "
        "run, `sudo make bench-quick` for a short smoke pass; `make bench-report` "
        "rewrites this page from the last raw results). Figures from a quick run come "
        "from single short rounds and are not for comparison.", "",
        "## Machine", "", machine_section(meta), "",
        method_section(meta),
    ]
    for section in (section_steering(results, meta), section_isolation(results, meta, plots),
                    section_churn(results, meta), section_large(results, meta),
                    section_controller(results, meta),
                    section_autoscale(results, meta, plots)):
        if section:
            sections.append(section)
    missing = [s for s in ("steering", "isolation", "churn", "large", "controller", "autoscale")
               if not select(results, s)]
    if missing:
        sections += ["## Not run", "",
                     "This run has no results for: " + ", ".join(missing) + ".", ""]
    return "\n".join(sections).rstrip() + "\n"


def make_plots(results, out_dir):
    gnuplot = shutil.which("gnuplot")
    isolation = select(results, "isolation")
    autoscale = select(results, "autoscale")
    if not isolation and not autoscale:
        return []
    if not gnuplot:
        print("report.py: gnuplot not found, so the report has no plots; install "
              "gnuplot-nox", file=sys.stderr)
        return []
    os.makedirs(out_dir, exist_ok=True)
    written = []
    if isolation:
        written += plot_isolation(isolation, out_dir, gnuplot)
    if autoscale:
        written += plot_autoscale(autoscale, out_dir, gnuplot)
    return written


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=os.path.join(REPO, "build/bench/results.jsonl"))
    parser.add_argument("--meta", default=os.path.join(REPO, "build/bench/meta.json"))
    parser.add_argument("--out", default=os.path.join(REPO, "docs/BENCHMARKS.md"))
    args = parser.parse_args()
    for path in (args.results, args.meta):
        if not os.path.exists(path):
            sys.exit(f"report.py: {path} not found; run the benchmarks first: sudo make bench")
    meta, results = load(args.results, args.meta)
    plot_dir = os.path.join(os.path.dirname(os.path.abspath(args.out)), "bench")
    plots = make_plots(results, plot_dir)
    with open(args.out, "w") as f:
        f.write(render(meta, results, plots))
    print(f"report.py: wrote {args.out}" + (f" and {len(plots)} plots in {plot_dir}" if plots else ""))


if __name__ == "__main__":
    main()
