#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Helpers of the attach tests, sourced after lib.sh: run 'triage attach', a
# cgroup for the services that the tests start, and a client that sends
# requests without pause and logs each one.

ATTACH_CLIENT=$E2E_DIR/attach_client.py
PYTHON=/usr/bin/python3

# Starts 'triage attach ARGS...' in the server namespace, logging to LOG, and
# sets the same variables as triage_start, so triage_wait_running,
# triage_stop and triage_cleanup work on it.
attach_start() {
	local log=$1

	shift
	triage_spawn "$log" attach "$@"
}

# Writes DIR/nginx.conf for nginx in the foreground with WORKERS worker
# processes that listen with reuseport on $SRV_IP:PORT and answer every
# request with "nginx". The pid file, log and temp paths are in DIR. USER,
# when given, is the value of nginx's 'user' directive.
nginx_conf() {
	local dir=$1 port=$2 workers=$3 user=${4:-} temp_paths="" module

	mkdir -p "$dir"
	for module in client_body proxy fastcgi uwsgi scgi; do
		if ! nginx -V 2>&1 | grep -q -- "--without-http_${module}_module"; then
			temp_paths="$temp_paths ${module}_temp_path $dir/$module;"
		fi
	done
	{
		echo "daemon off;"
		if [ -n "$user" ]; then
			echo "user $user;"
		fi
		cat <<EOF
worker_processes $workers;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 512; }
http {
	access_log off;
	$temp_paths
	server {
		listen $SRV_IP:$port reuseport;
		location / { return 200 "nginx\n"; }
	}
}
EOF
	} >"$dir/nginx.conf"
}

# Creates a cgroup v2 folder for the test's service and sets SVC_CG.
service_cgroup() {
	SVC_CG=$V2_MOUNT/te2e-attach-$$
	mkdir "$SVC_CG"
	defer rmdir "$SVC_CG"
}

# Prints the cgroup v2 path of PID relative to the mount.
cgroup_of() {
	sed -n 's/^0:://p' "/proc/$1/cgroup" 2>/dev/null
}

# Prints PID and its descendants, one a line.
proc_tree() {
	local pid

	echo "$1"
	for pid in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
		proc_tree "$pid"
	done
}

# Starts the client in the client namespace against HOST:PORT with TARGETS
# (PATH@SOURCE, see attach_client.py) and sets CLIENT_PID, CLIENT_LOG and
# CLIENT_STOP. It stops after 90 s or CLIENT_MAX_REQUESTS (default 30000)
# requests at the latest.
client_start() {
	local host=$1 port=$2
	shift 2

	CLIENT_LOG=$TMP_DIR/client.log
	CLIENT_STOP=$TMP_DIR/client.stop
	rm -f "$CLIENT_STOP" "$CLIENT_LOG"
	touch "$CLIENT_LOG"
	# The client closes first, so its ports wait in TIME_WAIT: let connect() reuse them.
	in_cli sysctl -qw net.ipv4.tcp_tw_reuse=1
	in_cli "$PYTHON" "$ATTACH_CLIENT" "$host" "$port" "$CLIENT_STOP" "$CLIENT_LOG" 90 \
		"${CLIENT_MAX_REQUESTS:-30000}" \
		"$@" &
	CLIENT_PID=$!
	defer stop_pid "$CLIENT_PID"
}

client_stop() {
	touch "$CLIENT_STOP"
	wait_gone "$CLIENT_PID" 10 || true
	wait "$CLIENT_PID" 2>/dev/null || true
}

now() {
	date +%s.%N
}

# Prints the number of logged requests started after FROM and finished before
# TO (times from now), with SOURCE and PATH ("*" for any), served by SERVED
# ("*" for any, "!X" for anyone but X).
count_requests() {
	local from=$1 to=$2 source=$3 path=$4 served=$5

	awk -v from="$from" -v to="$to" -v src="$source" -v path="$path" -v served="$served" '
		$1 >= from && $2 <= to && (src == "*" || $3 == src) && (path == "*" || $4 == path) {
			if (served == "*" || $6 == served ||
			    (substr(served, 1, 1) == "!" && $6 != substr(served, 2)))
				n++
		}
		END { print n + 0 }' "$CLIENT_LOG"
}

# Checks that no logged request failed: every status is 200.
check_no_failures() {
	local what=$1 failed total

	total=$(wc -l <"$CLIENT_LOG")
	failed=$(awk '$5 != "200"' "$CLIENT_LOG" | wc -l)
	if [ "$failed" -eq 0 ] && [ "$total" -gt 0 ]; then
		ok "$what ($total requests)"
	else
		not_ok "$what" "$failed of $total requests failed; the first ones:" \
			"$(awk '$5 != "200"' "$CLIENT_LOG" | head -n 5)"
	fi
}

# Waits until the client logged COUNT more requests than it had at the call.
client_wait_requests() {
	local count=$1 base i

	base=$(wc -l <"$CLIENT_LOG" 2>/dev/null || echo 0)
	for ((i = 0; i < WAIT_S * 10; i++)); do
		[ "$(wc -l <"$CLIENT_LOG" 2>/dev/null || echo 0)" -ge $((base + count)) ] && return 0
		sleep 0.1
	done
	return 1
}

# Prints the IDs of loaded triage programs that no pin and no process holds:
# such a program lives only through an attachment, such as a reuseport group.
orphan_triage_progs() {
	bpftool prog show -f -j 2>/dev/null | "$PYTHON" -c '
import json, sys
for p in json.load(sys.stdin):
    if p.get("name") in ("triage_select", "triage_lookup") and not p.get("pinned") \
            and not p.get("pids"):
        print(p["id"])
' | sort -n | paste -sd ' ' -
}

# Prints the sk_lookup links attached to the server namespace.
srv_lookup_links() {
	local ino

	ino=$(stat -L -c %i "/run/netns/$SRV_NS")
	bpftool link show -j 2>/dev/null | "$PYTHON" -c '
import json, sys
for l in json.load(sys.stdin):
    if l.get("type") == "netns" and str(l.get("netns_ino")) == sys.argv[1]:
        print(l["id"], l.get("attach_type"))
' "$ino"
}
