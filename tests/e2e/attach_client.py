#!/usr/bin/python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Sends HTTP requests without pause, each on a new connection, and logs each.

Usage: attach_client.py HOST PORT STOP_FILE LOG MAX_S MAX_REQUESTS PATH[@SOURCE]...

Cycles through the PATH@SOURCE targets (SOURCE: the local address to bind)
until STOP_FILE exists, MAX_S seconds pass or MAX_REQUESTS were sent. Writes
one line per request to LOG: start and end time (CLOCK_REALTIME, seconds),
source, path, HTTP status or "error:<reason>", and who served it: the
X-Triage-Pool header as "pool:<name>", else the Server header's first word.
"""
import http.client
import os
import sys
import time


def one_request(host, port, path, source):
    conn = http.client.HTTPConnection(host, port, timeout=5,
                                      source_address=(source, 0) if source else None)
    try:
        # Keep-alive, so the client closes first and the TIME_WAIT socket stays on its side:
        # a SYN that meets a server-side TIME_WAIT socket is placed without its payload.
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        pool = resp.getheader("X-Triage-Pool")
        server = (resp.getheader("Server") or "unknown").split("/")[0].split()[0]
        return str(resp.status), "pool:" + pool if pool else server
    except (OSError, http.client.HTTPException) as exc:
        return "error:" + type(exc).__name__, "-"
    finally:
        conn.close()


def main():
    host, port, stop_file, log = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    max_s, max_requests = float(sys.argv[5]), int(sys.argv[6])
    targets = [(t.split("@") + [""])[:2] for t in sys.argv[7:]]
    deadline = time.time() + max_s
    with open(log, "w", buffering=1) as out:
        for i in range(max_requests):
            if os.path.exists(stop_file) or time.time() > deadline:
                break
            path, source = targets[i % len(targets)]
            start = time.time()
            status, served = one_request(host, port, path, source)
            out.write(f"{start:.6f} {time.time():.6f} {source or '-'} {path} {status} {served}\n")


if __name__ == "__main__":
    main()
