#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Runs the triage demo: `sudo make demo`, or scripts/demo.sh as root from the
# repository root after `make all`.
#
# The controller runs in a network namespace of its own (triage-demo-srv)
# with examples/demo.yaml. A second namespace (triage-demo-cli), joined to it
# by a veth pair, drives one wrk per path family in parallel. wrk keeps its
# connections alive, and triage classifies a connection by its first
# request, so each wrk sends only one path family. At the end the script
# prints, per path, which pools served it (the X-Triage-Pool response
# header), the latency percentiles and the kernel's steering counters of the
# pool. It exits 0 only when every path was served by its configured pool
# alone. Every exit path stops the controller, deletes both namespaces and
# checks that nothing of the run is left.
set -euo pipefail

readonly SRV_NS=triage-demo-srv
readonly CLI_NS=triage-demo-cli
readonly SRV_IF=demo-srv
readonly CLI_IF=demo-cli
readonly SRV_ADDR=10.231.0.1
readonly CLI_ADDR=10.231.0.2
readonly PREFIX_LEN=24
readonly PORT=8080
readonly CONFIG=examples/demo.yaml
readonly TRIAGE=build/triage
readonly PIN_DIR=/sys/fs/bpf/triage/$PORT
readonly STATE_FILE=/run/triage/$PORT.state

# Seconds. Start-up includes loading the BPF programs, which took 1.3 s on a
# 2-CPU VM. The whole demo, start-up and cleanup included, took 27 s there and
# is meant to stay under 2 minutes.
readonly STARTUP_TIMEOUT_S=45
readonly LOAD_S=20
readonly STATUS_INTERVAL_S=4
# wrk normally exits right after LOAD_S; past this margin it is killed.
readonly LOAD_MARGIN_S=15
readonly STOP_TIMEOUT_S=30
readonly LIGHTTPD_WAIT_S=5
readonly CURL_TIMEOUT_S=10
# Maximum time in seconds that the emerging step sends /blob requests.
readonly EMERGE_S=15

# Path families: "NAME URL-PATH EXPECTED-POOL CONNECTIONS", one per wrk.
readonly FAMILIES=(
	"light /light light 8"
	"cpu /cpu?ms=20 cpu 4"
	"io /io?kb=256 io 2"
	"mem /mem?mb=32 mem 2"
	"static /static/index.html static 4"
)

# Set as the run creates things, so that cleanup removes only those.
tmpdir=""
srv_ns_created=false
cli_ns_created=false
triage_pid=""
triage_log=""
log_shown=false
config=""
wrk_pids=()

say() {
	echo "demo: $*"
}

die() {
	echo "demo: error: $*" >&2
	exit 1
}

# Runs a command in the server or client namespace. nsenter, unlike
# `ip netns exec`, keeps the host's /sys, where triage needs /sys/fs/bpf and
# /sys/fs/cgroup. Background commands call nsenter directly instead, because
# bash runs a function in the background in a subshell, so $! would be the
# PID of that subshell.
in_srv() {
	nsenter --net="/run/netns/$SRV_NS" "$@"
}

in_cli() {
	nsenter --net="/run/netns/$CLI_NS" "$@"
}

check_prerequisites() {
	local tool ns

	if [[ $EUID -ne 0 ]]; then
		die "must run as root, since it creates network namespaces and triage loads BPF programs; run: sudo make demo"
	fi
	if [[ ! -x $TRIAGE || ! -x build/triage-worker || ! -f $CONFIG ]]; then
		die "$TRIAGE, build/triage-worker or $CONFIG not found; run from the repository root after 'make all'"
	fi
	for tool in ip nsenter ss wrk curl jq findmnt /usr/sbin/lighttpd; do
		command -v "$tool" >/dev/null ||
			die "'$tool' not found; install the demo's packages with: sudo make deps"
	done
	for ns in "$SRV_NS" "$CLI_NS"; do
		if [[ -e /run/netns/$ns ]]; then
			die "network namespace $ns already exists, so another demo may be running; if none is, remove it with: ip netns del $ns"
		fi
	done
	if [[ -e $PIN_DIR || -e $STATE_FILE ]]; then
		die "port $PORT is already attached ($PIN_DIR or $STATE_FILE exists); stop that controller, or run 'triage detach --port $PORT' in its namespace"
	fi
}

# Prints the MAJ:MIN of the whole disk that contains DIR, or nothing when DIR
# is on no block device (tmpfs, overlayfs, network file systems). blkio
# throttling takes whole disks, not partitions.
disk_of() {
	local dev sys

	dev=$(findmnt -no MAJ:MIN -T "$1" | tr -d ' ')
	sys=/sys/dev/block/$dev
	[[ -n $dev && -e $sys ]] || return 0
	if [[ -e $sys/partition ]]; then
		sys=$(readlink -f "$sys")/..
	fi
	cat "$sys/dev"
}

# Sets config to the file that triage runs with. examples/demo.yaml throttles
# the io pool on the disk that contains /tmp on the host it was written on.
# On other hosts a copy names the local disk, or drops io_max if there is none.
prepare_config() {
	local written here

	config=$CONFIG
	written=$(sed -n 's/^ *io_max: *"\([0-9]*:[0-9]*\) .*/\1/p' "$CONFIG")
	here=$(disk_of /tmp)
	if [[ -z $written || $written == "$here" ]]; then
		return
	fi
	config=$tmpdir/demo.yaml
	if [[ -n $here ]]; then
		sed "s/\(io_max: *\"\)$written /\1$here /" "$CONFIG" >"$config"
		say "/tmp is on disk $here, not $written: running a copy of $CONFIG with io_max on $here"
	else
		sed '/^ *io_max:/d' "$CONFIG" >"$config"
		say "/tmp is on no block device: running a copy of $CONFIG without io_max"
	fi
}

setup_network() {
	ip netns add "$SRV_NS"
	srv_ns_created=true
	ip netns add "$CLI_NS"
	cli_ns_created=true
	# Both ends are created inside the namespaces, never in the caller's.
	ip -n "$SRV_NS" link add "$SRV_IF" type veth peer name "$CLI_IF" netns "$CLI_NS"
	ip -n "$SRV_NS" addr add "$SRV_ADDR/$PREFIX_LEN" dev "$SRV_IF"
	ip -n "$CLI_NS" addr add "$CLI_ADDR/$PREFIX_LEN" dev "$CLI_IF"
	ip -n "$SRV_NS" link set lo up
	ip -n "$CLI_NS" link set lo up
	ip -n "$SRV_NS" link set "$SRV_IF" up
	ip -n "$CLI_NS" link set "$CLI_IF" up
	say "namespaces $SRV_NS ($SRV_ADDR) and $CLI_NS ($CLI_ADDR) are up"
}

# Prints the controller's log to stderr, once per run.
show_log() {
	if [[ -n $triage_log && -s $triage_log ]] && ! $log_shown; then
		echo "---- triage log ($triage_log) ----" >&2
		cat "$triage_log" >&2
		echo "---- end of triage log ----" >&2
		log_shown=true
	fi
}

# Prints the names of the config's pools, sorted.
configured_pools() {
	awk '
		/^[a-z_]+:/ { in_pools = ($1 == "pools:") }
		in_pools && /^  - name:/ { print $3 }
	' "$config" | sort
}

# Prints "NAME RUNNING/WANTED" for each pool in the controller's pools report.
pool_workers() {
	"$TRIAGE" pools --port "$PORT" --json 2>/dev/null |
		jq -r '.pools[] | "\(.name) \(.workers.running)/\(.workers.current)"' 2>/dev/null |
		sort || true
}

start_triage() {
	local expected ready="" waited=0 names

	triage_log=$tmpdir/triage.log
	# nsenter execs triage, so $! is the controller's PID.
	nsenter --net="/run/netns/$SRV_NS" "$TRIAGE" run --config "$config" >"$triage_log" 2>&1 &
	triage_pid=$!
	say "started triage (pid $triage_pid) in $SRV_NS; its log is $triage_log"

	expected=$(configured_pools)
	while ((waited < STARTUP_TIMEOUT_S * 2)); do
		if ! kill -0 "$triage_pid" 2>/dev/null; then
			show_log
			die "triage exited during start-up"
		fi
		ready=$(pool_workers)
		names=$(awk '{ print $1 }' <<<"$ready")
		# Ready when every configured pool runs as many workers as it wants.
		if [[ -n $ready && $names == "$expected" ]] &&
			awk -F'[ /]' '$2 != $3 || $3 == 0 { bad = 1 } END { exit bad }' <<<"$ready"; then
			say "every pool has its workers after $((waited / 2)) s (running/wanted):" \
				"$(paste -sd, - <<<"$ready")"
			return
		fi
		sleep 0.5
		waited=$((waited + 1))
	done
	show_log
	die "pools not ready after $STARTUP_TIMEOUT_S s; expected pools '$(paste -sd, - <<<"$expected")', the pools report shows '$(paste -sd, - <<<"$ready")'"
}

# Checks that lighttpd listens only on the socket that triage passed as fd 3.
# ss also lists the controller as a holder of that socket: it keeps a copy
# to drain the listener without resets when the worker goes away.
# triage publishes a worker right after fork(), so the check waits up to
# LIGHTTPD_WAIT_S for the exec() that gives the process lighttpd's name.
check_lighttpd_socket() {
	local listeners want bad tries=0

	want=$(pool_workers | awk -F'[ /]' '$1 == "static" { print $3 }')
	while :; do
		listeners=$(in_srv ss -Hltnp | grep '"lighttpd"' || true)
		bad=$(grep -v ":$PORT .*fd=3)" <<<"$listeners" || true)
		if [[ -z $bad && $(grep -c . <<<"$listeners") -eq $want ]]; then
			break
		fi
		if ((++tries > LIGHTTPD_WAIT_S * 2)); then
			show_log
			die "lighttpd should listen only on the inherited fd 3 of port $PORT, once per worker ($want), but ss shows: ${listeners:-nothing}"
		fi
		sleep 0.5
	done
	say "lighttpd listens only on the inherited socket:" \
		"$(grep -o 'pid=[0-9]*,fd=3' <<<"$listeners" | paste -sd' ' -)"
}

show_headers() {
	local family name path url headers

	say "one request per path with curl from $CLI_NS:"
	for family in "${FAMILIES[@]}"; do
		read -r name path _ _ <<<"$family"
		url="http://$SRV_ADDR:$PORT$path"
		if ! headers=$(in_cli curl -sS --max-time "$CURL_TIMEOUT_S" -D - -o /dev/null "$url"); then
			show_log
			die "curl $url failed"
		fi
		printf '  %-20s %s\n' "$path" \
			"$(grep -iE '^(HTTP/|X-Triage-Pool|X-Worker-Pid)' <<<"$headers" | tr -d '\r' |
				paste -sd ' ' -)"
	done
}

# Writes the wrk script. done() runs in wrk's main Lua state, which cannot
# see the threads' globals, so setup() keeps each thread and done() copies
# its counts out with thread:get().
write_wrk_script() {
	cat >"$tmpdir/count.lua" <<'EOF'
local threads = {}

function setup(thread)
	table.insert(threads, thread)
end

function init(args)
	pools = {}
	statuses = {}
end

function response(status, headers, body)
	local pool = headers["X-Triage-Pool"]
	if pool == nil then
		for name, value in pairs(headers) do
			if string.lower(name) == "x-triage-pool" then
				pool = value
			end
		end
	end
	pool = pool or "(none)"
	pools[pool] = (pools[pool] or 0) + 1
	statuses[status] = (statuses[status] or 0) + 1
end

-- Writes "pool NAME COUNT" and "status CODE COUNT" lines to $COUNTS_FILE.
function done(summary, latency, requests)
	local totals = { pool = {}, status = {} }
	for _, thread in ipairs(threads) do
		for name, n in pairs(thread:get("pools")) do
			totals.pool[name] = (totals.pool[name] or 0) + n
		end
		for code, n in pairs(thread:get("statuses")) do
			totals.status[code] = (totals.status[code] or 0) + n
		end
	end
	local file = assert(io.open(os.getenv("COUNTS_FILE"), "w"))
	for kind, counts in pairs(totals) do
		for key, n in pairs(counts) do
			file:write(kind, " ", key, " ", n, "\n")
		end
	end
	file:close()
end
EOF
}

# Prints one line of "POOL ESTABLISHED/OPEN" from triage status.
print_status_line() {
	local elapsed=$1 line

	line=$("$TRIAGE" status --port "$PORT" --json 2>/dev/null |
		jq -r '[.[0].pools[] | "\(.name) \(.established)/\(.active)"] | join("  ")' \
			2>/dev/null || echo "(triage status failed)")
	printf '  %3d s  %s\n' "$elapsed" "$line"
}

run_load() {
	local family name path conns start elapsed running pid

	write_wrk_script
	say "load: one wrk per path for $LOAD_S s from $CLI_NS (connections kept alive)"
	for family in "${FAMILIES[@]}"; do
		read -r name path _ conns <<<"$family"
		COUNTS_FILE=$tmpdir/$name.counts nsenter --net="/run/netns/$CLI_NS" \
			wrk -t1 -c"$conns" -d"${LOAD_S}s" --timeout 5s --latency \
			-s "$tmpdir/count.lua" "http://$SRV_ADDR:$PORT$path" >"$tmpdir/$name.wrk" 2>&1 &
		wrk_pids+=("$!")
	done

	say "connections per pool from 'triage status' (established so far/open now):"
	start=$SECONDS
	while :; do
		running=0
		for pid in "${wrk_pids[@]}"; do
			if kill -0 "$pid" 2>/dev/null; then
				running=$((running + 1))
			fi
		done
		elapsed=$((SECONDS - start))
		((running > 0)) || break
		if ((elapsed > LOAD_S + LOAD_MARGIN_S)); then
			say "wrk still running after $elapsed s; stopping it"
			break
		fi
		print_status_line "$elapsed"
		sleep "$STATUS_INTERVAL_S"
	done
	stop_wrk
}

stop_wrk() {
	local pid

	for pid in "${wrk_pids[@]}"; do
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	done
	wrk_pids=()
}

# Prints the value after LABEL in the wrk output FILE, such as "50%".
wrk_field() {
	awk -v label="$2" '$1 == label { print $2; exit }' "$1"
}

# Prints the final table. Returns 1 unless each path was served, and only
# served, by its configured pool.
report() {
	local family name path want status counts served requests errors
	local p50 p90 p99 kernel line failed=0 mismatches=()

	status=$("$TRIAGE" status --port "$PORT" --json)
	echo
	printf '%-18s %8s %-16s %8s %8s %8s %6s | %-7s %7s %5s %7s %8s\n' \
		PATH REQUESTS SERVED-BY P50 P90 P99 ERRORS POOL PAYLOAD SYN DEFAULT PAYLOAD%
	for family in "${FAMILIES[@]}"; do
		read -r name path want _ <<<"$family"
		counts=$tmpdir/$name.counts
		served=""
		if [[ -s $counts ]]; then
			served=$(awk '$1 == "pool" { print $2 ":" $3 }' "$counts" | sort | paste -sd, -)
		fi
		requests=$(awk '/ requests in / { print $1; exit }' "$tmpdir/$name.wrk")
		if [[ -z $requests ]]; then
			say "wrk for $path printed no results; its output:" >&2
			cat "$tmpdir/$name.wrk" >&2
		fi
		# Responses other than 2xx and 3xx, and connect, read, write or timeout errors.
		errors=$(awk '
			/Non-2xx or 3xx responses:/ { n += $NF }
			/Socket errors:/ { gsub(",", ""); n += $4 + $6 + $8 + $10 }
			END { print n + 0 }
		' "$tmpdir/$name.wrk")
		p50=$(wrk_field "$tmpdir/$name.wrk" 50%)
		p90=$(wrk_field "$tmpdir/$name.wrk" 90%)
		p99=$(wrk_field "$tmpdir/$name.wrk" 99%)
		kernel=$(jq -r --arg pool "$want" '.[0].pools[] | select(.name == $pool) |
			"\(.payload) \(.syn) \(.default) \(.payload_share * 100 | floor)%"' <<<"$status")
		# shellcheck disable=SC2086 # kernel holds four fields on purpose
		printf '%-18s %8s %-16s %8s %8s %8s %6s | %-7s %7s %5s %7s %8s\n' \
			"$path" "${requests:-0}" "${served:-(none)}" "${p50:--}" "${p90:--}" \
			"${p99:--}" "$errors" "$want" $kernel
		if [[ -z $served || $served != "$want:"* || $served == *,* ]]; then
			failed=1
			mismatches+=("$path: expected pool $want only, served by ${served:-nothing}")
		fi
	done
	fold -s -w 100 <<EOF | sed 's/ *$//'
SERVED-BY: responses per X-Triage-Pool value. ERRORS: responses other than 2xx and 3xx, plus \
socket errors. PAYLOAD, SYN, DEFAULT: connections that the kernel steered by their first \
payload, at the SYN, or to the default pool. PAYLOAD% = PAYLOAD / (PAYLOAD + SYN). Each wrk \
checks the address before its load with a connection that sends no request (wrk.resolve in \
wrk's bundled wrk.lua), which counts under SYN and DEFAULT of the default pool.
EOF
	echo
	if ((failed)); then
		for line in "${mismatches[@]}"; do
			say "MISROUTED $line"
		done
		return 1
	fi
	say "every path was served by its configured pool only"
}

# Prints the pools report that the controller rewrites every tick.
show_pools() {
	say "$1"
	"$TRIAGE" pools --port "$PORT" | sed 's/^/  /'
}

# Sends new connections to /blob, a path family without a rule, until the
# controller makes a pool for it from the 'auto' template, or the time is up.
show_emerging() {
	local name="" waited

	say "emerging pool: about 40 new connections a second to /blob (no rule) for at most ${EMERGE_S} s from $CLI_NS"
	# A paced loop rather than wrk: thousands of connections a second would
	# leave the server's TIME_WAIT sockets on most of the client's ports, and
	# a SYN that reuses such a 4-tuple is placed without its payload.
	in_cli bash -c 'for ((i = 0; i < $1 * 40; i++)); do
			curl -s -o /dev/null --max-time 5 "$2"; sleep 0.02
		done' loop "$EMERGE_S" "http://$SRV_ADDR:$PORT/blob?kb=1" &
	wrk_pids+=("$!")
	for ((waited = 0; waited < EMERGE_S * 2; waited++)); do
		name=$("$TRIAGE" pools --port "$PORT" --json 2>/dev/null |
			jq -r '[.pools[] | select(.emerged) | .name] | first // empty' 2>/dev/null)
		[[ -n $name ]] && break
		sleep 0.5
	done
	stop_wrk
	if [[ -z $name ]]; then
		say "no pool emerged for /blob within ${EMERGE_S} s; the controller log:"
		show_log
		return 1
	fi
	say "pool '$name' emerged after about $((waited / 2)) s; /blob now goes to it:"
	in_cli curl -sS --max-time "$CURL_TIMEOUT_S" -D - -o /dev/null \
		"http://$SRV_ADDR:$PORT/blob?kb=1" | grep -i '^X-Triage-Pool' | sed 's/^/  /'
	grep -E "emerging category|workers [0-9]+ -> [0-9]+" "$triage_log" | sed 's/^/  /'
	show_pools "pools after the load ('triage pools'):"
}

# Stops triage by its PID and returns its exit status, which is 128 + N when
# signal N ended it.
# shellcheck disable=SC2317 # only the EXIT trap calls it
stop_triage() {
	local rc=0 waited=0

	if kill -0 "$triage_pid" 2>/dev/null; then
		say "stopping triage (pid $triage_pid) with SIGTERM"
		kill -TERM "$triage_pid" 2>/dev/null || true
		while kill -0 "$triage_pid" 2>/dev/null && ((waited < STOP_TIMEOUT_S * 10)); do
			sleep 0.1
			waited=$((waited + 1))
		done
		if kill -0 "$triage_pid" 2>/dev/null; then
			say "triage still running $STOP_TIMEOUT_S s after SIGTERM; sending SIGKILL"
			kill -KILL "$triage_pid" 2>/dev/null || true
		fi
	else
		say "triage (pid $triage_pid) is no longer running"
	fi
	wait "$triage_pid" 2>/dev/null || rc=$?
	triage_pid=""
	return "$rc"
}

# Prints what the run may have left on the host, one item a line.
# shellcheck disable=SC2317 # only the EXIT trap calls it
leftovers() {
	local ns dir

	[[ -e $PIN_DIR ]] && echo "pins $PIN_DIR"
	[[ -e $STATE_FILE ]] && echo "record $STATE_FILE"
	for ns in "$SRV_NS" "$CLI_NS"; do
		[[ -e /run/netns/$ns ]] && echo "network namespace $ns"
	done
	for dir in /sys/fs/cgroup/*/triage/"$PORT"; do
		[[ -e $dir ]] && echo "cgroup $dir"
	done
	return 0
}

# shellcheck disable=SC2317 # the EXIT trap calls it
cleanup() {
	local rc=$? triage_rc=0 left item

	trap - EXIT INT TERM HUP
	# A closed output pipe must not stop the cleanup halfway.
	trap '' PIPE
	set +e
	stop_wrk
	if [[ -n $triage_pid ]]; then
		stop_triage
		triage_rc=$?
		if ((triage_rc != 0)); then
			say "triage exited with status $triage_rc"
			show_log
		fi
		# A controller that crashed or could not finish its cleanup leaves its
		# record and pins. detach undoes them, and it runs inside the server
		# namespace because the tc filters and the sysctl belong to it.
		if ((triage_rc != 0)) || [[ -e $PIN_DIR || -e $STATE_FILE ]]; then
			if [[ -e $PIN_DIR || -e $STATE_FILE ]] && $srv_ns_created; then
				say "running 'triage detach --port $PORT' in $SRV_NS"
				in_srv "$TRIAGE" detach --port "$PORT"
			fi
			rc=1
		fi
	fi
	if $cli_ns_created; then
		ip netns del "$CLI_NS"
	fi
	if $srv_ns_created; then
		ip netns del "$SRV_NS"
	fi
	if [[ -n $tmpdir ]]; then
		rm -rf "$tmpdir"
	fi

	left=$(leftovers)
	if [[ -n $left ]]; then
		say "error: left behind:"
		while read -r item; do
			echo "  $item"
		done <<<"$left"
		rc=1
	elif $srv_ns_created; then
		say "clean: no pins at $PIN_DIR, no $STATE_FILE, no cgroups, no namespaces left"
	fi
	exit "$rc"
}

main() {
	local rc=0 started=$SECONDS

	check_prerequisites
	# bash runs the EXIT trap on exit, but not when a signal kills it, so
	# the usual signals become exits: 128 + the signal number.
	trap cleanup EXIT
	trap 'exit 129' HUP
	trap 'exit 130' INT
	trap 'exit 141' PIPE
	trap 'exit 143' TERM
	tmpdir=$(mktemp -d /tmp/triage-demo.XXXXXX)
	prepare_config
	setup_network
	start_triage
	check_lighttpd_socket
	show_headers
	run_load
	show_pools "pools at the end of the load ('triage pools'); light grew with its open connections:"
	report || rc=1
	show_emerging || rc=1
	say "finished in $((SECONDS - started)) s"
	exit "$rc"
}

main "$@"
