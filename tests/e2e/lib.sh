#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Helpers shared by the end-to-end tests, sourced by each tests/e2e/test_*.sh.
#
# A test prints one line per check: "ok - WHAT", "not ok - WHAT" followed by
# "#   expected ..., got ..." lines, or "skip - WHAT (REASON)". Other output
# starts with "# ". run.sh counts these lines, so print nothing else on stdout.
#
# Every object a test creates is registered with defer() right after it is
# created. The EXIT trap runs the registered commands newest first, also when
# the test fails or is interrupted.

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$E2E_DIR/../.." && pwd)
TRIAGE=$REPO/build/triage
WORKER=$REPO/build/triage-worker
PIN_ROOT=/sys/fs/bpf/triage
STATE_DIR=/run/triage
# Maximum wait for any step of the controller, in seconds.
WAIT_S=${E2E_WAIT_S:-20}

E2E_FAILED=0
E2E_CLEANUP=()
TRIAGE_PID=""
TRIAGE_WAITER=""
TRIAGE_LOG=""
TRIAGE_STATUS=""
TMP_DIR=""

# Reporting

ok() {
	printf 'ok - %s\n' "$1"
}

# Prints "not ok - WHAT" and each further argument as a detail line.
not_ok() {
	local detail

	printf 'not ok - %s\n' "$1"
	shift
	for detail in "$@"; do
		printf '#   %s\n' "$detail"
	done
	E2E_FAILED=1
}

skip() {
	printf 'skip - %s (%s)\n' "$1" "$2"
}

note() {
	printf '# %s\n' "$*"
}

# Prints each line of stdin as a comment line.
note_lines() {
	local line

	while IFS= read -r line; do
		printf '# %s\n' "$line"
	done
}

# Prints up to 15 lines of FILE as detail lines, for a failure message.
show_file() {
	local file=$1 line

	[ -r "$file" ] || return 0
	while IFS= read -r line; do
		printf '#   | %s\n' "$line"
	done < <(tail -n 15 "$file")
}

# Checks

check_eq() {
	local what=$1 expected=$2 got=$3

	if [ "$expected" = "$got" ]; then
		ok "$what"
	else
		not_ok "$what" "expected '$expected', got '$got'"
	fi
}

# Checks that integer GOT is at least MIN.
check_ge() {
	local what=$1 min=$2 got=$3

	if [[ "$got" =~ ^-?[0-9]+$ ]] && [ "$got" -ge "$min" ]; then
		ok "$what"
	else
		not_ok "$what" "expected an integer >= $min, got '$got'"
	fi
}

# Checks that integer GOT is at most MAX.
check_le() {
	local what=$1 max=$2 got=$3

	if [[ "$got" =~ ^-?[0-9]+$ ]] && [ "$got" -le "$max" ]; then
		ok "$what"
	else
		not_ok "$what" "expected an integer <= $max, got '$got'"
	fi
}

# Checks that TEXT contains the fixed string NEEDLE.
check_contains() {
	local what=$1 needle=$2 text=$3

	if [[ "$text" == *"$needle"* ]]; then
		ok "$what"
	else
		not_ok "$what" "expected text containing '$needle', got:" "${text:0:600}"
	fi
}

check_not_contains() {
	local what=$1 needle=$2 text=$3

	if [[ "$text" != *"$needle"* ]]; then
		ok "$what"
	else
		not_ok "$what" "expected no '$needle', got:" "${text:0:600}"
	fi
}

check_absent() {
	local what=$1 path=$2

	if [ ! -e "$path" ]; then
		ok "$what"
	else
		not_ok "$what" "expected no $path, but it exists"
	fi
}

check_present() {
	local what=$1 path=$2

	if [ -e "$path" ]; then
		ok "$what"
	else
		not_ok "$what" "expected $path to exist, but it does not"
	fi
}

# Runs a command and stores its exit status in STATUS and its stdout and
# stderr together in OUT, so a failing command does not end the test.
# shellcheck disable=SC2034 # The test files read STATUS and OUT.
capture() {
	STATUS=0
	OUT=$("$@" 2>&1) || STATUS=$?
}

# Cleanup

# Registers a command for the EXIT trap; its arguments are quoted as given.
defer() {
	E2E_CLEANUP+=("$(printf '%q ' "$@")")
}

run_deferred() {
	local i

	for ((i = ${#E2E_CLEANUP[@]} - 1; i >= 0; i--)); do
		eval "${E2E_CLEANUP[i]}" || note "cleanup step failed: ${E2E_CLEANUP[i]}"
	done
	E2E_CLEANUP=()
}

# Runs the cleanup, then exits 1 if any check failed or the test stopped on an error.
e2e_exit() {
	local status=$?

	trap - EXIT ERR
	set +e
	run_deferred
	if [ "$status" -ne 0 ] && [ "$E2E_FAILED" -eq 0 ]; then
		not_ok "$(basename "$0") ran to the end" "it stopped early with exit status $status"
	fi
	[ "$E2E_FAILED" -eq 0 ] && [ "$status" -eq 0 ] && exit 0
	exit 1
}

# Sets up strict mode, the traps, a root check and a private temporary folder.
e2e_init() {
	set -euo pipefail
	trap e2e_exit EXIT
	# A signal ends the test through the EXIT trap, so the cleanup still runs.
	trap 'exit 143' TERM
	trap 'exit 130' INT
	trap 'note "error: line $LINENO: \"$BASH_COMMAND\" exited with status $?"' ERR
	if [ "$(id -u)" -ne 0 ]; then
		echo "# the end-to-end tests need root" >&2
		exit 1
	fi
	if [ ! -x "$TRIAGE" ] || [ ! -x "$WORKER" ]; then
		echo "# $TRIAGE or $WORKER is missing; run 'make' first" >&2
		exit 1
	fi
	TMP_DIR=$(mktemp -d /tmp/te2e.XXXXXX)
	# Other users (a pool with 'user: nobody') read configs and files here.
	chmod 755 "$TMP_DIR"
	defer rm -rf "$TMP_DIR"
}

# Network namespaces

# Creates the server and client namespaces of test NAME, joined by a veth pair
# on 10.232.NET.0/24, and sets SRV_NS, CLI_NS, SRV_IP, CLI_IP and SRV_IF.
netns_setup() {
	local name=$1 net=$2

	SRV_NS="te2e-$name-$$-srv"
	CLI_NS="te2e-$name-$$-cli"
	SRV_IP="10.232.$net.1"
	CLI_IP="10.232.$net.2"
	SRV_IF=e2e-srv
	ip netns add "$SRV_NS"
	defer ip netns del "$SRV_NS"
	ip netns add "$CLI_NS"
	defer ip netns del "$CLI_NS"
	ip link add name "$SRV_IF" netns "$SRV_NS" type veth peer name e2e-cli netns "$CLI_NS"
	ip -n "$SRV_NS" addr add "$SRV_IP/24" dev "$SRV_IF"
	ip -n "$CLI_NS" addr add "$CLI_IP/24" dev e2e-cli
	ip -n "$SRV_NS" link set lo up
	ip -n "$CLI_NS" link set lo up
	ip -n "$SRV_NS" link set "$SRV_IF" up
	ip -n "$CLI_NS" link set e2e-cli up
}

# Runs a command in the server namespace. nsenter keeps the host's /sys, so
# /sys/fs/bpf and /sys/fs/cgroup stay visible, which 'ip netns exec' would hide.
in_srv() {
	nsenter --net="/run/netns/$SRV_NS" "$@"
}

in_cli() {
	nsenter --net="/run/netns/$CLI_NS" "$@"
}

srv_sysctl() {
	in_srv sysctl -n "$1"
}

# The controller

# Prints the PIDs of the processes in the v2 cgroups of PORT's pools.
port_pids() {
	local port=$1

	cat "$CG_ROOT/$port"/*/cgroup.procs 2>/dev/null || true
}

# Cleanup step: ends PID, a process this test started, and reaps it.
stop_pid() {
	kill "$1" 2>/dev/null || true
	wait_gone "$1" 5 || kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# Succeeds while PID exists and is no zombie.
proc_running() {
	local state

	state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}

# Waits up to SECONDS for PID to end; fails if it still runs.
wait_gone() {
	local pid=$1 seconds=$2 i

	for ((i = 0; i < seconds * 10; i++)); do
		proc_running "$pid" || return 0
		sleep 0.1
	done
	return 1
}

# Starts 'triage run' with CONFIG in the server namespace, logging to LOG,
# and sets TRIAGE_PID.
triage_start() {
	triage_spawn "$2" run --config "$1"
}

# Starts 'triage ARGS...' in the server namespace, logging to LOG, and sets
# TRIAGE_PID. A subshell waits for triage and stores its exit status.
# Because the subshell's stderr goes nowhere, bash does not print "Killed"
# when a test ends triage with SIGKILL on purpose.
triage_spawn() {
	local i

	TRIAGE_LOG=$1
	shift
	TRIAGE_STATUS=""
	TRIAGE_PID=""
	rm -f "$TMP_DIR/triage.pid" "$TMP_DIR/triage.status"
	(
		nsenter --net="/run/netns/$SRV_NS" "$TRIAGE" "$@" 2>"$TRIAGE_LOG" &
		echo $! >"$TMP_DIR/triage.pid"
		status=0
		wait $! || status=$?
		echo "$status" >"$TMP_DIR/triage.status"
	) 2>/dev/null &
	TRIAGE_WAITER=$!
	for ((i = 0; i < 100; i++)); do
		[ ! -s "$TMP_DIR/triage.pid" ] || break
		sleep 0.05
	done
	TRIAGE_PID=$(cat "$TMP_DIR/triage.pid")
}

# Waits until the controller logs that it runs. Fails if it exits or times out.
triage_wait_running() {
	local i

	for ((i = 0; i < WAIT_S * 10; i++)); do
		grep -q 'running: port' "$TRIAGE_LOG" && return 0
		proc_running "$TRIAGE_PID" || return 1
		sleep 0.1
	done
	return 1
}

# Starts the controller and checks that it comes up; on failure shows its log.
triage_up() {
	local config=$1 log=$2 what=$3

	triage_start "$config" "$log"
	if triage_wait_running; then
		ok "$what"
		return 0
	fi
	if proc_running "$TRIAGE_PID"; then
		not_ok "$what" "triage did not log 'running: port' within ${WAIT_S}s; its log ends with:"
	else
		wait "$TRIAGE_WAITER" || true
		not_ok "$what" "triage exited with status $(cat "$TMP_DIR/triage.status" 2>/dev/null)\
 before it logged 'running: port'; its log ends with:"
		TRIAGE_PID=""
	fi
	show_file "$log"
	return 1
}

# Sends SIGNAL (default TERM) to the controller, waits for it and stores its
# exit status in TRIAGE_STATUS. Returns 1 if it did not exit in time.
triage_stop() {
	local sig=${1:-TERM}

	[ -n "$TRIAGE_PID" ] || return 0
	kill "-$sig" "$TRIAGE_PID" 2>/dev/null || true
	if ! wait_gone "$TRIAGE_PID" "$WAIT_S"; then
		note "triage pid $TRIAGE_PID still runs ${WAIT_S}s after SIG$sig"
		return 1
	fi
	wait "$TRIAGE_WAITER" || true
	# shellcheck disable=SC2034 # The test files read TRIAGE_STATUS.
	TRIAGE_STATUS=$(cat "$TMP_DIR/triage.status" 2>/dev/null || echo unknown)
	TRIAGE_PID=""
}

# Cleanup step for PORT: stops the controller and removes whatever is left
# of the run, the processes in its cgroups included. Every removal here means
# that triage itself did not clean up, so it is logged.
triage_cleanup() {
	local port=$1 pid dir

	if [ -n "$TRIAGE_PID" ] && ! triage_stop TERM; then
		kill -KILL "$TRIAGE_PID" 2>/dev/null || true
		wait "$TRIAGE_WAITER" 2>/dev/null || true
		TRIAGE_PID=""
	fi
	if [ -e "$STATE_DIR/$port.state" ] || [ -e "$PIN_ROOT/$port" ]; then
		note "cleanup: triage left a record or pins of port $port; running 'triage detach'"
		in_srv "$TRIAGE" detach --port "$port" 2>&1 | note_lines || true
	fi
	for pid in $(port_pids "$port"); do
		note "cleanup: killing leftover worker pid $pid"
		kill -KILL "$pid" 2>/dev/null || true
	done
	for dir in $(port_cgroup_dirs "$port"); do
		[ -d "$dir" ] || continue
		note "cleanup: removing leftover cgroup $dir"
		find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
	done
	if [ -e "$PIN_ROOT/$port" ]; then
		note "cleanup: removing leftover pins $PIN_ROOT/$port"
		rm -rf "${PIN_ROOT:?}/$port"
	fi
	if [ -e "$STATE_DIR/$port.state" ]; then
		note "cleanup: removing leftover record $STATE_DIR/$port.state"
		rm -f "$STATE_DIR/$port.state"
	fi
}

# Starts the controller and registers its cleanup. PORT is the config's port.
triage_run_checked() {
	local config=$1 log=$2 port=$3 what=$4

	defer triage_cleanup "$port"
	triage_up "$config" "$log" "$what"
}

# Prints 'triage status --json' of PORT.
status_json() {
	"$TRIAGE" status --port "$1" --json
}

# Prints the value at PATH in the JSON document on stdin. PATH is a list of
# parts joined by '/': a number indexes a list, NAME=VALUE picks the list
# element whose NAME is VALUE, anything else is a key. Prints "missing" when
# the path leads nowhere; floats are printed as Python prints them.
json_get() {
	python3 -c '
import json, sys
node = json.load(sys.stdin)
for part in sys.argv[1].split("/"):
    try:
        if isinstance(node, list) and part.isdigit():
            node = node[int(part)]
        elif isinstance(node, list) and "=" in part:
            key, value = part.split("=", 1)
            node = next(item for item in node if str(item.get(key)) == value)
        else:
            node = node[part]
    except (KeyError, IndexError, StopIteration, TypeError):
        print("missing")
        sys.exit(0)
print(json.dumps(node) if isinstance(node, (dict, list)) else node)
' "$1"
}

# Prints field FIELD of pool POOL from the status of PORT.
pool_field() {
	local port=$1 pool=$2 field=$3

	status_json "$port" | json_get "0/pools/name=$pool/$field"
}

# Waits until pool POOL of PORT reports COUNT workers in 'triage status'.
wait_workers() {
	local port=$1 pool=$2 count=$3 i

	for ((i = 0; i < WAIT_S * 5; i++)); do
		[ "$(pool_field "$port" "$pool" workers 2>/dev/null)" = "$count" ] && return 0
		sleep 0.2
	done
	return 1
}

# Cgroups

# The cgroup2 mount, and the pools' default root below it.
V2_MOUNT=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
CG_ROOT=$V2_MOUNT/triage

# Prints the mount point of the cgroup v1 hierarchy of CONTROLLER, or nothing.
v1_mount() {
	awk -v c="$1" '$3 == "cgroup" {
		n = split($4, opts, ",")
		for (i = 1; i <= n; i++)
			if (opts[i] == c) { print $2; exit }
	}' /proc/mounts
}

# Succeeds when CONTROLLER (a v2 name) is available in the cgroup2 root.
on_v2() {
	grep -qw "$1" "$V2_MOUNT/cgroup.controllers"
}

# Prints the cgroup path of PORT relative to the hierarchy roots, such as /triage/18082.
port_cgroup_rel() {
	echo "${CG_ROOT#"$V2_MOUNT"}/$1"
}

# Prints the folder of PORT in the cgroup2 tree and in every v1 hierarchy.
port_cgroup_dirs() {
	local rel

	rel=$(port_cgroup_rel "$1")
	echo "$V2_MOUNT$rel"
	awk -v rel="$rel" '$3 == "cgroup" { print $2 rel }' /proc/mounts
}

# Checks that no cgroup folder of PORT exists in any hierarchy.
check_no_cgroups() {
	local port=$1 what=$2 dir left=""

	for dir in $(port_cgroup_dirs "$port"); do
		[ -e "$dir" ] && left="$left $dir"
	done
	if [ -z "$left" ]; then
		ok "$what"
	else
		not_ok "$what" "expected no cgroup folders of port $port, found:$left"
	fi
}

# Prints the ingress tc filters of every interface in the server namespace.
srv_tc_filters() {
	local dev

	for dev in $(in_srv ip -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }'); do
		in_srv tc filter show dev "$dev" ingress 2>/dev/null | sed "s/^/$dev: /"
	done
}

# Prints the clsact qdiscs in the server namespace.
srv_clsact() {
	in_srv tc qdisc show | grep -w clsact || true
}

# Checks that PORT left nothing: no pins, record, cgroups, tc filters or clsact
# qdiscs, and that the server namespace's tcp_syncookies is SYNCOOKIES again.
check_nothing_left() {
	local port=$1 syncookies=$2 context=$3

	check_absent "$context: no pins" "$PIN_ROOT/$port"
	check_absent "$context: no record" "$STATE_DIR/$port.state"
	check_no_cgroups "$port" "$context: no cgroups"
	check_eq "$context: no tc filter in the server namespace" "" "$(srv_tc_filters)"
	check_eq "$context: no clsact qdisc in the server namespace" "" "$(srv_clsact)"
	check_eq "$context: tcp_syncookies is $syncookies" "$syncookies" \
		"$(srv_sysctl net.ipv4.tcp_syncookies)"
}

# HTTP clients, run in the client namespace

# Prints the X-Triage-Pool header of a GET of URL_PATH on a fresh connection,
# or "curl failed (status N)".
curl_pool() {
	local port=$1 path=$2 status=0 pool
	shift 2

	pool=$(in_cli curl -sS -m 5 -o /dev/null -w '%header{x-triage-pool}' "$@" \
		"http://$SRV_IP:$port$path" 2>/dev/null) || status=$?
	if [ "$status" -ne 0 ]; then
		echo "curl failed (status $status)"
	else
		echo "$pool"
	fi
}

# Prints the X-Worker-Pid header of a GET of URL_PATH.
curl_worker_pid() {
	in_cli curl -sS -m 5 -o /dev/null -w '%header{x-worker-pid}' \
		"http://$SRV_IP:$1$2" 2>/dev/null || echo "curl failed"
}

# Sends the bytes of REQUEST (printf escapes such as \r\n are expanded) on one
# fresh connection from the client namespace, in one write, and prints the
# X-Triage-Pool header of every response received, one a line, in order.
# The last request should contain "Connection: close", since the client reads
# until the server closes or 5 seconds pass.
raw_pools() {
	local port=$1 request=$2

	# shellcheck disable=SC2059 # REQUEST carries the escapes on purpose.
	printf "$request" | in_cli python3 -c '
import socket, sys
data = sys.stdin.buffer.read()
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
sock.sendall(data)
reply = b""
try:
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        reply += chunk
except socket.timeout:
    pass
sock.close()
for line in reply.split(b"\r\n"):
    if line.lower().startswith(b"x-triage-pool:"):
        print(line.split(b":", 1)[1].strip().decode())
' "$SRV_IP" "$port"
}

# Scaling, drain and emerging pools

# Prints the time in milliseconds since the epoch.
now_ms() {
	date +%s%3N
}

# Prints the pools report of PORT ('triage pools --json'), or nothing.
pools_json() {
	"$TRIAGE" pools --port "$1" --json 2>/dev/null || true
}

# Prints the value at PATH (as json_get takes it) below pool POOL of the pools
# report of PORT, or "missing" when there is no report or no such value.
pools_field() {
	local port=$1 pool=$2 path=$3 report

	report=$(pools_json "$port")
	if [ -z "$report" ]; then
		echo missing
		return 0
	fi
	json_get "pools/name=$pool/$path" <<<"$report" 2>/dev/null || echo missing
}

# Waits up to SECONDS until field PATH of pool POOL in the pools report of
# PORT equals VALUE. Fails on timeout.
wait_pools_field() {
	local port=$1 pool=$2 path=$3 value=$4 seconds=$5 i

	for ((i = 0; i < seconds * 10; i++)); do
		[ "$(pools_field "$port" "$pool" "$path")" = "$value" ] && return 0
		sleep 0.1
	done
	return 1
}

# Starts a background loop that appends a line to FILE every 50 ms for at
# most SECONDS. Each line is the time in ms and the output of jq FILTER on the
# pools report of PORT, or "null" while there is no report. Sets SAMPLER_PID,
# and the loop is stopped at exit.
pools_sampler_start() {
	local port=$1 file=$2 filter=$3 seconds=$4

	(
		end=$((SECONDS + seconds))
		while [ "$SECONDS" -lt "$end" ]; do
			line=$(pools_json "$port" | jq -c "$filter" 2>/dev/null) || line=""
			printf '%s %s\n' "$(now_ms)" "${line:-null}" >>"$file"
			sleep 0.05
		done
	) &
	SAMPLER_PID=$!
	defer stop_pid "$SAMPLER_PID"
}

# Writes a wrk Lua script to FILE that waits DELAY_MS before each request, so
# that each connection sends at most 1000/DELAY_MS requests per second. With
# a third argument "close", every request carries "Connection: close".
wrk_paced_script() {
	local file=$1 delay_ms=$2 close=${3:-}

	{
		[ "$close" != close ] || echo 'wrk.headers["Connection"] = "close"'
		echo "function delay() return $delay_ms end"
	} >"$file"
}

# Starts wrk in the client namespace in the background: CONNS connections for
# SECONDS on URL_PATH of PORT with the Lua SCRIPT, output to OUT_FILE. Sets
# WRK_PID; wrk is stopped at exit.
wrk_start() {
	local port=$1 path=$2 conns=$3 seconds=$4 script=$5 out=$6

	# nsenter, not in_cli: a function in the background runs in a subshell,
	# and $! would name that subshell instead of the client.
	nsenter --net="/run/netns/$CLI_NS" timeout $((seconds + 15)) wrk -t 1 -c "$conns" \
		-d "${seconds}s" --latency -s "$script" "http://$SRV_IP:$port$path" >"$out" 2>&1 &
	WRK_PID=$!
	defer stop_pid "$WRK_PID"
}

# Prints the number of socket errors (connect, read, write, timeout) and
# non-2xx or 3xx responses in the wrk output FILE.
wrk_failures() {
	awk '
		/Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 }
		/Non-2xx or 3xx responses:/ { n += $NF }
		END { print n + 0 }
	' "$1"
}

# Prints the number of requests that wrk output FILE reports, or 0.
wrk_requests() {
	awk '/requests in/ { print $1; found = 1 } END { if (!found) print 0 }' "$1"
}

# Prints the 99th percentile latency of wrk output FILE (run with --latency)
# in microseconds, or "missing".
wrk_p99_us() {
	awk '
		$1 == "99%" {
			v = $2
			if (v ~ /us$/) { sub(/us$/, "", v); f = 1 }
			else if (v ~ /ms$/) { sub(/ms$/, "", v); f = 1000 }
			else if (v ~ /s$/) { sub(/s$/, "", v); f = 1000000 }
			printf "%d\n", v * f
			found = 1
		}
		END { if (!found) print "missing" }
	' "$1"
}

# Starts a curl process in the client namespace that sends COUNT GET
# requests of URL_PATH to PORT one after the other, at most RATE per second
# (0 for no limit). Each request goes on a new connection with "Connection:
# close" and times out after 5 s. For each request curl writes a line
# "HTTP_CODE CURL_EXIT X_TRIAGE_POOL" to OUT_FILE. A '?' in URL_PATH starts
# the query. Sets CURL_PID, and curl is stopped at exit.
curl_close_start() {
	local port=$1 path=$2 count=$3 rate=$4 out=$5 sep='?' opts=()

	[[ "$path" != *'?'* ]] || sep='&'
	[ "$rate" -eq 0 ] || opts=(--rate "$rate/s")
	nsenter --net="/run/netns/$CLI_NS" curl -sS --no-progress-meter -H 'Connection: close' \
		-m 5 "${opts[@]}" \
		-o /dev/null -w '%{http_code} %{exitcode} %header{x-triage-pool}\n' \
		"http://$SRV_IP:$port$path${sep}n=[1-$count]" >"$out" 2>/dev/null &
	CURL_PID=$!
	defer stop_pid "$CURL_PID"
}

# Prints the number of lines of curl_close_start output FILE that are not a
# 200 response without a curl error.
curl_failures() {
	awk '$1 != 200 || $2 != 0 { n++ } END { print n + 0 }' "$1"
}

# Prints the distinct failure lines of curl_close_start output FILE with
# their counts, on one line.
curl_failure_summary() {
	awk '$1 != 200 || $2 != 0 { print $1, $2 }' "$1" | sort | uniq -c | paste -sd ',' -
}

# Writes the absolute values of every kernel network counter of the server
# namespace to FILE, zero ones included, without touching nstat's history.
srv_nstat_snapshot() {
	in_srv env NSTAT_HISTORY="$TMP_DIR/nstat.history" nstat -a -s -z >"$1"
}

# Prints counter NAME of snapshot AFTER minus that of snapshot BEFORE.
nstat_delta() {
	local before=$1 after=$2 name=$3

	awk -v name="$name" '
		FNR == NR && $1 == name { b = $2 }
		FNR != NR && $1 == name { a = $2 }
		END { print a - b }
	' "$before" "$after"
}

# Prints the CPU limit of pool POOL of PORT in thousandths of a CPU. It reads
# cpu.cfs_quota_us and cpu.cfs_period_us where cpu is on cgroup v1, else
# cpu.max. Prints "max" for no limit and "missing" when the files are unreadable.
pool_cpu_millis() {
	local port=$1 pool=$2 dir quota period

	dir=$(v1_mount cpu)
	if [ -n "$dir" ]; then
		dir=$dir$(port_cgroup_rel "$port")/$pool
		quota=$(cat "$dir/cpu.cfs_quota_us" 2>/dev/null) || quota=""
		period=$(cat "$dir/cpu.cfs_period_us" 2>/dev/null) || period=""
	else
		read -r quota period <"$CG_ROOT/$port/$pool/cpu.max" 2>/dev/null || quota=""
	fi
	if [ -z "$quota" ] || [ -z "$period" ]; then
		echo missing
	elif [ "$quota" = max ] || [ "$quota" = -1 ]; then
		echo max
	else
		echo $((quota * 1000 / period))
	fi
}

# Prints the memory limit of pool POOL of PORT in bytes. It reads
# memory.limit_in_bytes where memory is on cgroup v1, else memory.max, and
# prints "missing" when the file is unreadable.
pool_memory_limit() {
	local port=$1 pool=$2 dir value

	dir=$(v1_mount memory)
	if [ -n "$dir" ]; then
		value=$(cat "$dir$(port_cgroup_rel "$port")/$pool/memory.limit_in_bytes" 2>/dev/null) ||
			value=missing
	else
		value=$(cat "$CG_ROOT/$port/$pool/memory.max" 2>/dev/null) || value=missing
	fi
	echo "$value"
}

# Checks what check_nothing_left checks, and also that the server namespace's
# tcp_migrate_req is MIGRATE_REQ again and that the pools report is gone.
check_nothing_left_scaled() {
	local port=$1 syncookies=$2 migrate_req=$3 context=$4

	check_nothing_left "$port" "$syncookies" "$context"
	check_eq "$context: tcp_migrate_req is $migrate_req" "$migrate_req" \
		"$(srv_sysctl net.ipv4.tcp_migrate_req)"
	check_absent "$context: no pools report" "$STATE_DIR/$port.pools.json"
	check_absent "$context: no pools table" "$STATE_DIR/$port.pools.txt"
}

# Prints the PIDs in the v2 cgroup of pool POOL of PORT, sorted, on one line.
pool_pids_of() {
	sort -n "$CG_ROOT/$1/$2/cgroup.procs" 2>/dev/null | paste -sd ' ' - || true
}

# Gives the client namespace a wide ephemeral port range, so that a client
# that opens many connections does not reuse a 4-tuple that is still in
# TIME_WAIT on the server.
cli_wide_port_range() {
	in_cli sysctl -q -w net.ipv4.ip_local_port_range="10000 65000"
}
