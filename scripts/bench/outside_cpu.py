#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Print the CPU ticks of every process outside the benchmark's namespaces.

Output: one "PID TICKS" line (utime + stime, in clock ticks) per user-space
process whose network namespace is neither tbench-srv nor tbench-cli, then
"forks N" with the host's fork count from /proc/stat. The difference of two
outputs shows other work on the host during a measurement (see
outside_cpu_delta_json in lib.sh). Kernel threads are left out, because
softirq threads also process the benchmark's own packets.
"""

import os

PF_KTHREAD = 0x00200000
BENCH_NAMESPACES = ("/run/netns/tbench-srv", "/run/netns/tbench-cli")


def bench_namespace_links():
    """Return the /proc/PID/ns/net link texts of the benchmark's namespaces."""
    links = set()
    for path in BENCH_NAMESPACES:
        try:
            links.add("net:[%d]" % os.stat(path).st_ino)
        except OSError:
            pass
    return links


def process_ticks(pid, skip_links):
    """Return utime + stime of PID, or None for kernel threads, skipped
    namespaces and processes that ended."""
    try:
        link = os.readlink("/proc/%s/ns/net" % pid)
        with open("/proc/%s/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    # Fields after the command name, which may contain spaces: state is
    # field 3 of proc(5), flags field 9, utime 14, stime 15.
    fields = stat[stat.rindex(")") + 2:].split()
    if int(fields[6]) & PF_KTHREAD or link in skip_links:
        return None
    return int(fields[11]) + int(fields[12])


def fork_count():
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("processes "):
                return int(line.split()[1])
    return 0


def main():
    skip_links = bench_namespace_links()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        ticks = process_ticks(pid, skip_links)
        if ticks is not None:
            print(pid, ticks)
    print("forks", fork_count())


if __name__ == "__main__":
    main()
