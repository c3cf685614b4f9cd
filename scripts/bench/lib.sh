#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Helpers of the triage benchmarks, sourced by scripts/bench/run.sh and the
# scenario files next to it. Everything runs from the repository root, so
# the recorded commands can be pasted there.
#
# Layout of one measurement: two network namespaces made for it (server
# tbench-srv, client tbench-cli, a veth pair in 10.233.0.0/24), the server
# side (workers, triage, haproxy or nginx) pinned to SERVER_CPU, the load
# generator pinned to CLIENT_CPU. The service port is 8090. Backends behind
# a proxy listen on 127.0.1.N:8090 (light pool) and 127.0.2.N:8090 (cpu
# pool) inside the server namespace, so no other port is used.
#
# Cleanup: bench_cleanup (the EXIT trap of run.sh) stops every process that
# start_server started, restores the sysctls that set_server_sysctl changed,
# deletes the namespaces and the temporary folder, and lists anything left.

# shellcheck disable=SC2034 # run.sh and the scenario files read what is set here
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/../.." && pwd)

# Paths relative to REPO, since run.sh changes into it.
readonly TRIAGE=build/triage
readonly WORKER=build/triage-worker
readonly LOADGEN=build/triage-loadgen
readonly WRK_SCRIPT=scripts/bench/wrk-report.lua
readonly OUT_DIR=build/bench
readonly RESULTS=$OUT_DIR/results.jsonl
readonly META=$OUT_DIR/meta.json
readonly CONFIG_DIR=$OUT_DIR/configs

readonly SRV_NS=tbench-srv
readonly CLI_NS=tbench-cli
readonly SRV_IF=tbench-s
readonly CLI_IF=tbench-c
readonly SRV_ADDR=10.233.0.1
readonly CLI_ADDR=10.233.0.2
readonly PREFIX_LEN=24
readonly PORT=8090
readonly PIN_DIR=/sys/fs/bpf/triage/$PORT
readonly STATE_FILE=/run/triage/$PORT.state

# The fixed CPU budget: the server side (its processes by taskset, the
# receive path of its veth by RPS, see set_rps_cpu) runs on SERVER_CPU, the
# client side on CLIENT_CPU. The send path still runs on the CPU of the
# sending process, so the CPU figures count the whole machine.
readonly SERVER_CPU=0
readonly CLIENT_CPU=1

# Other work on the host (such as other test suites) skews every figure.
# Before each measurement the run waits until the machine's busy share over
# QUIET_SAMPLE_S stays below QUIET_MAX_BUSY, for at most QUIET_WAIT_S, and
# for at most QUIET_BUDGET_S over the whole run (run.sh sets it per mode).
# Each measurement records the busy share it started with.
readonly QUIET_MAX_BUSY=0.10
readonly QUIET_SAMPLE_S=0.3
readonly QUIET_WAIT_S=15
QUIET_BUDGET_S=60
quiet_waited_s=0

# Seconds.
readonly READY_TIMEOUT_S=20
readonly STOP_TIMEOUT_S=10
# A client command is killed this long after its own duration.
readonly CLIENT_MARGIN_S=30

BENCH_START=$SECONDS
BENCH_TMP=""
srv_ns_created=false
cli_ns_created=false
# Processes of the running variant, in start order, with their names and
# the exact commands that started them.
server_pids=()
server_names=()
server_commands=()
triage_pid=""
# "KEY VALUE" pairs to write back in the server namespace.
sysctl_restore=()
# Set by wait_for_quiet_host: the busy share of the host before a measurement.
quiet_busy=0
# Set by run_client: the exact command line of the last client command.
last_command=""
# Set by measure_wrk and measure_loadgen: the metrics of the last
# measurement as a JSON object.
last_metrics=""

say() {
	printf '[bench %s +%ds] %s\n' "$(date +%H:%M:%S)" "$((SECONDS - BENCH_START))" "$*"
}

warn() {
	say "warning: $*" >&2
}

die() {
	say "error: $*" >&2
	exit 1
}

# Prints the words of a command as one shell line that can be pasted back.
quote_command() {
	local word line=""

	for word in "$@"; do
		if [[ ! $word =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
			word="'${word//\'/\'\\\'\'}'"
		fi
		line+="${line:+ }$word"
	done
	printf '%s\n' "$line"
}

# Runs a command in the server or client namespace. nsenter, unlike
# `ip netns exec`, keeps the host's /sys, where triage needs /sys/fs/bpf.
in_srv() {
	nsenter --net="/run/netns/$SRV_NS" "$@"
}

in_cli() {
	nsenter --net="/run/netns/$CLI_NS" "$@"
}

# Network

# Makes the kernel process the packets that arrive on interface IF of
# namespace NS on CPU (receive packet steering). veth hands a packet to the
# receiving side in the softirq of the sending CPU, so without this the
# server's receive path, triage's BPF programs included, would run on the
# client's CPU. /sys/class/net shows a namespace's devices only to a process
# with a sysfs mounted in that namespace, which `ip netns exec` provides.
set_rps_cpu() {
	local ns=$1 dev=$2 cpu=$3

	ip netns exec "$ns" sh -c "printf '%x\n' $((1 << cpu)) >/sys/class/net/$dev/queues/rx-0/rps_cpus"
}

# Creates both namespaces and the veth pair. CLIENT_PORT_RANGE, when given,
# sets the client's ephemeral ports ("LOW HIGH").
net_up() {
	local port_range=${1:-}

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
	set_rps_cpu "$SRV_NS" "$SRV_IF" "$SERVER_CPU"
	set_rps_cpu "$CLI_NS" "$CLI_IF" "$CLIENT_CPU"
	if [[ -n $port_range ]]; then
		in_cli sysctl -q -w "net.ipv4.ip_local_port_range=$port_range"
	fi
}

# Deletes the namespaces that net_up created. Warns about processes still
# inside the server namespace, which would keep it alive unseen.
net_down() {
	local left

	if $srv_ns_created; then
		left=$(ip netns pids "$SRV_NS" 2>/dev/null || true)
		if [[ -n $left ]]; then
			warn "processes still in $SRV_NS after the stop: $(paste -sd' ' - <<<"$left")"
		fi
		ip netns del "$SRV_NS"
		srv_ns_created=false
	fi
	if $cli_ns_created; then
		ip netns del "$CLI_NS"
		cli_ns_created=false
	fi
}

# Sets a sysctl in the server namespace and remembers the old value for
# restore_server_sysctls.
set_server_sysctl() {
	local key=$1 value=$2 old

	old=$(in_srv sysctl -n "$key")
	sysctl_restore+=("$key $old")
	in_srv sysctl -q -w "$key=$value"
}

restore_server_sysctls() {
	local i key value

	for ((i = ${#sysctl_restore[@]} - 1; i >= 0; i--)); do
		read -r key value <<<"${sysctl_restore[i]}"
		if $srv_ns_created; then
			in_srv sysctl -q -w "$key=$value" || warn "restoring $key=$value in $SRV_NS failed"
		fi
	done
	sysctl_restore=()
}

# Server processes

# Starts CMD in the server namespace on SERVER_CPU, with its output in
# BENCH_TMP/NAME.log. nsenter and taskset exec the command, so $! is its PID.
start_server() {
	local name=$1

	shift
	nsenter --net="/run/netns/$SRV_NS" taskset -c "$SERVER_CPU" "$@" \
		>"$BENCH_TMP/$name.log" 2>&1 &
	server_pids+=("$!")
	server_names+=("$name")
	server_commands+=("$(quote_command nsenter --net="/run/netns/$SRV_NS" taskset -c "$SERVER_CPU" "$@")")
}

# Prints the last lines of a server's log to stderr.
show_server_log() {
	local name=$1

	if [[ -s $BENCH_TMP/$name.log ]]; then
		echo "---- last lines of $name's log ----" >&2
		tail -n 30 "$BENCH_TMP/$name.log" >&2
		echo "---- end of $name's log ----" >&2
	fi
}

# Dies unless every server process of the variant is still running.
check_servers_alive() {
	local i

	for i in "${!server_pids[@]}"; do
		if ! kill -0 "${server_pids[i]}" 2>/dev/null; then
			show_server_log "${server_names[i]}"
			die "${server_names[i]} (pid ${server_pids[i]}) exited during the run"
		fi
	done
}

# Sends SIGTERM to PID, SIGKILL after STOP_TIMEOUT_S, and returns its exit status.
stop_pid() {
	local pid=$1 waited=0 rc=0

	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		while kill -0 "$pid" 2>/dev/null && ((waited < STOP_TIMEOUT_S * 20)); do
			sleep 0.05
			waited=$((waited + 1))
		done
		if kill -0 "$pid" 2>/dev/null; then
			warn "pid $pid still running $STOP_TIMEOUT_S s after SIGTERM; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	wait "$pid" 2>/dev/null || rc=$?
	return "$rc"
}

# Stops the variant's processes, newest first. A controller that failed or
# left its pins behind is detached inside the server namespace, since its tc
# filters and sysctl belong there.
stop_servers() {
	local i rc name

	for ((i = ${#server_pids[@]} - 1; i >= 0; i--)); do
		name=${server_names[i]}
		rc=0
		stop_pid "${server_pids[i]}" || rc=$?
		# haproxy exits with 128 + SIGTERM when stopped; the others exit 0.
		if ((rc != 0)) && ! [[ $name == haproxy && $rc == 143 ]]; then
			warn "$name (pid ${server_pids[i]}) exited with status $rc"
			show_server_log "$name"
		fi
	done
	if [[ -n $triage_pid ]] && [[ -e $PIN_DIR || -e $STATE_FILE ]]; then
		warn "triage left $PIN_DIR or $STATE_FILE; running 'triage detach --port $PORT'"
		if $srv_ns_created; then
			in_srv "$TRIAGE" detach --port "$PORT" || warn "triage detach --port $PORT failed"
		fi
	fi
	triage_pid=""
	server_pids=()
	server_names=()
	server_commands=()
}

# Prints the exact commands that started the running variant as a JSON array.
server_commands_json() {
	if ((${#server_commands[@]} == 0)); then
		echo '[]'
		return
	fi
	printf '%s\n' "${server_commands[@]}" | jq -R . | jq -cs .
}

# Waits until COUNT sockets listen on ADDR:PORT in the server namespace.
wait_for_listeners() {
	local count=$1 addr=$2 waited=0 found=0

	while ((waited < READY_TIMEOUT_S * 10)); do
		check_servers_alive
		found=$(in_srv ss -Hltn "sport = :$PORT" | awk -v want="$addr:$PORT" \
			'$4 == want { n++ } END { print n + 0 }')
		((found >= count)) && return 0
		sleep 0.1
		waited=$((waited + 1))
	done
	die "$found of $count listening sockets on $addr:$PORT after $READY_TIMEOUT_S s"
}

# Prints the X-Triage-Pool header of one response to PATH from the client
# namespace, or nothing when the request fails.
fetch_pool() {
	in_cli curl -sS --max-time 5 -D - -o /dev/null "http://$SRV_ADDR:$PORT$1" 2>/dev/null |
		tr -d '\r' | awk 'tolower($1) == "x-triage-pool:" { print $2 }'
}

# Waits until the pools LIGHT and CPU serve /light and /cpu?ms=0.
check_routing() {
	local want_light=$1 want_cpu=$2 light="" cpu="" waited=0

	while ((waited < READY_TIMEOUT_S * 10)); do
		check_servers_alive
		light=$(fetch_pool /light)
		cpu=$(fetch_pool '/cpu?ms=0')
		[[ $light == "$want_light" && $cpu == "$want_cpu" ]] && return 0
		sleep 0.1
		waited=$((waited + 1))
	done
	die "routing check failed: /light served by pool '${light:-none}' (expected $want_light), /cpu?ms=0 by '${cpu:-none}' (expected $want_cpu)"
}

# Variants of the server side

# Writes TEMPLATE to OUT with each @NAME@ replaced by VALUE, for each
# NAME=VALUE argument. Values may span lines.
render_template() {
	local template=$1 out=$2 text pair

	shift 2
	text=$(<"$template")
	for pair in "$@"; do
		text=${text//"@${pair%%=*}@"/"${pair#*=}"}
	done
	if [[ $text =~ @[A-Z_]+@ ]]; then
		die "$template: placeholder ${BASH_REMATCH[0]} has no value"
	fi
	printf '%s\n' "$text" >"$out"
}

# Starts COUNT workers of POOL that share SRV_ADDR:PORT by SO_REUSEPORT,
# without BPF.
start_reuseport() {
	local count=$1 pool=$2 i

	for ((i = 1; i <= count; i++)); do
		start_server "worker-$pool-$i" "$WORKER" --listen "$SRV_ADDR:$PORT" --pool "$pool"
	done
	wait_for_listeners "$count" "$SRV_ADDR"
	check_routing "$pool" "$pool"
}

# Starts the floor of the steering comparisons: LIGHT workers share the
# service port, and CPU more workers run idle on the cpu backend addresses.
# So the same processes exist as with triage or a proxy, and the same
# number of them serve /light. With one CPU for the server side, 2 workers served
# 4-19% more new connections per second than 4 in a test on the
# development VM, so the count matters.
start_plain() {
	local light=$1 cpu=$2 i

	for ((i = 1; i <= cpu; i++)); do
		start_server "worker-cpu-$i" "$WORKER" --listen "127.0.2.$i:$PORT" --pool cpu
	done
	for ((i = 1; i <= cpu; i++)); do
		wait_for_listeners 1 "127.0.2.$i"
	done
	start_reuseport "$light" light
}

# Starts the backend workers of a proxy: light worker N on 127.0.1.N, cpu
# worker N on 127.0.2.N, each alone on its address.
start_backends() {
	local light=$1 cpu=$2 i

	for ((i = 1; i <= light; i++)); do
		start_server "worker-light-$i" "$WORKER" --listen "127.0.1.$i:$PORT" --pool light
	done
	for ((i = 1; i <= cpu; i++)); do
		start_server "worker-cpu-$i" "$WORKER" --listen "127.0.2.$i:$PORT" --pool cpu
	done
	for ((i = 1; i <= light; i++)); do
		wait_for_listeners 1 "127.0.1.$i"
	done
	for ((i = 1; i <= cpu; i++)); do
		wait_for_listeners 1 "127.0.2.$i"
	done
}

# Prints one backend line per worker of POOL (light or cpu), in the syntax
# of KIND (haproxy or nginx).
backend_lines() {
	local kind=$1 pool=$2 count=$3 net i

	net=1
	[[ $pool == cpu ]] && net=2
	for ((i = 1; i <= count; i++)); do
		if [[ $kind == haproxy ]]; then
			printf '    server %s%d 127.0.%d.%d:%d\n' "$pool" "$i" "$net" "$i" "$PORT"
		else
			printf '        server 127.0.%d.%d:%d;\n' "$net" "$i" "$PORT"
		fi
	done
}

start_haproxy() {
	local light=$1 cpu=$2 config=$CONFIG_DIR/haproxy-$1-$2.cfg

	start_backends "$light" "$cpu"
	render_template scripts/bench/peers/haproxy.cfg.in "$config" \
		"LISTEN=$SRV_ADDR:$PORT" \
		"LIGHT_SERVERS=$(backend_lines haproxy light "$light")" \
		"CPU_SERVERS=$(backend_lines haproxy cpu "$cpu")"
	start_server haproxy haproxy -db -f "$config"
	wait_for_listeners 1 "$SRV_ADDR"
	check_routing light cpu
}

start_nginx() {
	local light=$1 cpu=$2 config=$CONFIG_DIR/nginx-$1-$2.conf

	start_backends "$light" "$cpu"
	mkdir -p "$BENCH_TMP/nginx"
	render_template scripts/bench/peers/nginx.conf.in "$config" \
		"LISTEN=$SRV_ADDR:$PORT" \
		"RUN_DIR=$BENCH_TMP/nginx" \
		"LIGHT_SERVERS=$(backend_lines nginx light "$light")" \
		"CPU_SERVERS=$(backend_lines nginx cpu "$cpu")"
	start_server nginx nginx -c "$REPO/$config" -p "$BENCH_TMP/nginx/"
	wait_for_listeners 1 "$SRV_ADDR"
	check_routing light cpu
}

# Starts `triage run` in MODE (payload or connection) with LIGHT and CPU
# workers and SYN_PLACEMENT (default_pool or last_pool), and waits until
# both pools serve requests.
start_triage() {
	local mode=$1 light=$2 cpu=$3 placement=$4
	local config=$CONFIG_DIR/triage-$1-$2-$3-$4.yaml
	local waited=0 workers="" categories=""

	if [[ -e $PIN_DIR || -e $STATE_FILE ]]; then
		die "port $PORT is already attached ($PIN_DIR or $STATE_FILE exists); if no benchmark runs, clean up with: nsenter --net=/run/netns/$SRV_NS $TRIAGE detach --port $PORT"
	fi
	if [[ $mode == payload ]]; then
		categories=$'\ncategories:\n  - name: cpu\n    pool: cpu\n    rules:\n      - path: /cpu'
	fi
	render_template scripts/bench/configs/triage.yaml.in "$config" \
		"PORT=$PORT" "MODE=$mode" "WORKER=$WORKER" \
		"LIGHT_WORKERS=$light" "CPU_WORKERS=$cpu" "CATEGORIES=$categories" \
		"SYN_PLACEMENT=$placement"
	start_server triage "$TRIAGE" run --config "$config"
	triage_pid=${server_pids[-1]}
	while ((waited < READY_TIMEOUT_S * 10)); do
		check_servers_alive
		workers=$("$TRIAGE" status --port "$PORT" --json 2>/dev/null |
			jq -r '[.[0].pools[]?.workers] | add // 0' 2>/dev/null || true)
		[[ $workers == $((light + cpu)) ]] && break
		sleep 0.1
		waited=$((waited + 1))
	done
	if [[ $workers != $((light + cpu)) ]]; then
		show_server_log triage
		die "triage has ${workers:-no} of $((light + cpu)) workers after $READY_TIMEOUT_S s"
	fi
	if [[ $mode == payload ]]; then
		check_routing light cpu
	else
		# Connection mode picks the pool at the SYN, before the path is known.
		check_routing light light
	fi
}

# Starts the server side SETUP (plain, shared, triage-payload,
# triage-payload-last-pool, triage-connection, haproxy, nginx) with LIGHT +
# CPU workers in fresh namespaces. shared runs all of them in one pool on
# the service port, and start_plain describes plain.
begin_variant() {
	local setup=$1 light=$2 cpu=$3 port_range=${4:-}

	net_up "$port_range"
	case $setup in
	plain) start_plain "$light" "$cpu" ;;
	shared) start_reuseport $((light + cpu)) shared ;;
	triage-payload) start_triage payload "$light" "$cpu" default_pool ;;
	triage-payload-last-pool) start_triage payload "$light" "$cpu" last_pool ;;
	triage-connection) start_triage connection "$light" "$cpu" default_pool ;;
	haproxy) start_haproxy "$light" "$cpu" ;;
	nginx) start_nginx "$light" "$cpu" ;;
	*) die "unknown server setup '$setup'" ;;
	esac
}

end_variant() {
	local left

	stop_servers
	restore_server_sysctls
	if $srv_ns_created; then
		left=$(in_srv ss -Hltn "sport = :$PORT")
		[[ -z $left ]] || warn "sockets still listen on port $PORT after the stop: $left"
	fi
	net_down
}

# Measurements

# Runs CMD in the client namespace on CLIENT_CPU with stdout in OUT (stderr
# in OUT.err), killed LIMIT_S seconds after the start. Sets last_command.
run_client() {
	local limit=$1 out=$2 cmd

	shift 2
	cmd=(timeout --foreground -k 5 "$limit" nsenter --net="/run/netns/$CLI_NS"
		taskset -c "$CLIENT_CPU" "$@")
	last_command=$(quote_command "${cmd[@]}")
	if ! "${cmd[@]}" >"$out" 2>"$out.err"; then
		tail -n 20 "$out.err" >&2
		die "client command failed: $last_command"
	fi
}

# Prints "NAME BUSY TOTAL" in jiffies for the lines cpu, cpu0, cpu1... of
# /proc/stat. Busy is user + nice + system + irq + softirq + steal.
read_cpu_jiffies() {
	awk '$1 ~ /^cpu[0-9]*$/ {
		busy = $2 + $3 + $4 + $7 + $8 + $9
		print $1, busy, busy + $5 + $6
	}' /proc/stat
}

# Prints the busy CPU seconds between two read_cpu_jiffies outputs as JSON:
# the whole machine, SERVER_CPU and CLIENT_CPU.
cpu_delta_json() {
	local before=$1 after=$2 hz

	hz=$(getconf CLK_TCK)
	awk -v hz="$hz" -v srv="cpu$SERVER_CPU" -v cli="cpu$CLIENT_CPU" '
		NR == FNR { busy[$1] = $2; total[$1] = $3; next }
		{ db[$1] = ($2 - busy[$1]) / hz; dt[$1] = ($3 - total[$1]) / hz }
		END {
			printf "{\"busy_s\":%.2f,\"busy_s_server_cpu\":%.2f,\"busy_s_client_cpu\":%.2f,\"elapsed_cpu_s\":%.2f}\n",
				db["cpu"], db[srv], db[cli], dt["cpu"]
		}' <(printf '%s\n' "$before") <(printf '%s\n' "$after")
}

# Prints, as JSON, the CPU seconds that processes outside the benchmark's
# namespaces used between two scripts/bench/outside_cpu.py outputs, and how
# many processes the host forked meanwhile. Processes that ended in
# between are missed, and this script's own shell and tools count as outside.
outside_cpu_delta_json() {
	local hz

	hz=$(getconf CLK_TCK)
	awk -v hz="$hz" '
		NR == FNR { old[$1] = $2; next }
		$1 == "forks" { forks = $2 - old["forks"]; next }
		{ ticks += $2 - ($1 in old ? old[$1] : 0) }
		END { printf "{\"cpu_s\":%.2f,\"forks\":%d}\n", ticks / hz, forks }
	' <(printf '%s\n' "$1") <(printf '%s\n' "$2")
}

# Prints the busy share of the whole machine over QUIET_SAMPLE_S.
sample_busy_share() {
	local before after

	before=$(read_cpu_jiffies | awk '$1 == "cpu"')
	sleep "$QUIET_SAMPLE_S"
	after=$(read_cpu_jiffies | awk '$1 == "cpu"')
	awk -v b="$before" -v a="$after" 'BEGIN {
		split(b, x, " "); split(a, y, " ")
		printf "%.3f\n", (y[3] > x[3]) ? (y[2] - x[2]) / (y[3] - x[3]) : 0
	}'
}

# Waits until the host is quiet (see QUIET_MAX_BUSY) and sets quiet_busy to
# the last busy share seen. The benchmark's servers are idle here, so what
# keeps the CPUs busy is other work.
wait_for_quiet_host() {
	local start=$SECONDS

	quiet_busy=$(sample_busy_share)
	while awk -v b="$quiet_busy" -v m="$QUIET_MAX_BUSY" 'BEGIN { exit !(b >= m) }'; do
		if ((SECONDS - start >= QUIET_WAIT_S || quiet_waited_s >= QUIET_BUDGET_S)); then
			warn "host still busy (busy share $quiet_busy); measuring anyway"
			break
		fi
		say "waiting for other work on the host to end (busy share $quiet_busy)"
		sleep 1
		quiet_waited_s=$((quiet_waited_s + 1))
		quiet_busy=$(sample_busy_share)
	done
}

# Prints triage's steering counters, summed over the pools, as JSON, or
# null when no controller runs.
triage_counters() {
	if [[ -z $triage_pid ]]; then
		echo null
		return
	fi
	"$TRIAGE" status --port "$PORT" --json | jq -c '.[0] | {
		acks_deferred,
		payload: ([.pools[].payload] | add),
		syn: ([.pools[].syn] | add),
		syn_hinted: ([.pools[].syn_hinted] | add),
		established: ([.pools[].established] | add),
		select_errors: ([.pools[].select_errors] | add)
	}'
}

# Prints the change of the triage_counters between BEFORE and AFTER, with the
# payload share of the connections steered in between, or null.
counters_delta_json() {
	jq -cn --argjson a "$1" --argjson b "$2" '
		if $a == null or $b == null then null else
			($b | to_entries | map({key, value: (.value - $a[.key])}) | from_entries)
			| . + {payload_share: (if .payload + .syn > 0
				then .payload / (.payload + .syn) else null end)}
		end'
}

# Prints the number of sockets in TIME_WAIT in the server namespace.
count_server_time_wait() {
	in_srv ss -Htan state time-wait | wc -l
}

# Prints the TcpExt counters of the server namespace as "NAME VALUE" lines.
server_tcpext() {
	in_srv cat /proc/net/netstat | awk '
		$1 == "TcpExt:" && !seen { for (i = 2; i <= NF; i++) name[i] = $i; seen = 1; next }
		$1 == "TcpExt:" { for (i = 2; i <= NF; i++) print name[i], $i }'
}

# Prints, as JSON, how much the TcpExt counters NAMES... grew between the
# server_tcpext outputs BEFORE and AFTER.
tcpext_delta_json() {
	local before=$1 after=$2

	shift 2
	awk -v names="$*" '
		BEGIN { n = split(names, want, " ") }
		NR == FNR { old[$1] = $2; next }
		{ new[$1] = $2 }
		END {
			printf "{"
			for (i = 1; i <= n; i++)
				printf "%s\"%s\":%d", (i > 1 ? "," : ""), want[i], new[want[i]] - old[want[i]]
			printf "}\n"
		}' <(printf '%s\n' "$before") <(printf '%s\n' "$after")
}

# Appends one measurement to RESULTS. PARAMS and METRICS are JSON objects.
record_result() {
	local scenario=$1 variant=$2 round=$3 tool=$4 command=$5 params=$6 metrics=$7

	jq -cn --arg scenario "$scenario" --arg variant "$variant" --argjson round "$round" \
		--arg tool "$tool" --arg command "$command" --argjson params "$params" \
		--argjson metrics "$metrics" --argjson server "$(server_commands_json)" \
		'{scenario: $scenario, variant: $variant, round: $round, tool: $tool,
		  command: $command, params: $params, server: $server, metrics: $metrics,
		  time: (now | todate)}' >>"$RESULTS"
}

# Runs one wrk measurement of DURATION_S with CONNECTIONS against PATH and
# sets last_metrics: wrk's totals and latencies, the busy CPU seconds of the
# machine, triage's steering counters and the CPU use outside the
# benchmark over the run. MODE close opens a
# new connection per request. Sets last_command.
measure_wrk() {
	local mode=$1 connections=$2 duration=$3 path=$4 out cpu_before cpu_after
	local counters_before counters_after outside_before outside_after wrk_json args=()

	out=$BENCH_TMP/wrk.out
	[[ $mode == close ]] && args=(-- close)
	counters_before=$(triage_counters)
	wait_for_quiet_host
	outside_before=$(scripts/bench/outside_cpu.py)
	cpu_before=$(read_cpu_jiffies)
	run_client $((duration + CLIENT_MARGIN_S)) "$out" \
		wrk -t1 -c"$connections" -d"${duration}s" --timeout 5s --latency \
		-s "$WRK_SCRIPT" "http://$SRV_ADDR:$PORT$path" "${args[@]}"
	cpu_after=$(read_cpu_jiffies)
	outside_after=$(scripts/bench/outside_cpu.py)
	counters_after=$(triage_counters)
	check_servers_alive
	wrk_json=$(sed -n 's/^bench-json: //p' "$out")
	[[ -n $wrk_json ]] || die "wrk printed no bench-json line; its output is in $out"
	last_metrics=$(jq -cn --argjson w "$wrk_json" --argjson cpu "$(cpu_delta_json "$cpu_before" "$cpu_after")" \
		--argjson steering "$(counters_delta_json "$counters_before" "$counters_after")" \
		--argjson outside "$(outside_cpu_delta_json "$outside_before" "$outside_after")" \
		--argjson quiet "$quiet_busy" '
		($w.duration_us / 1e6) as $s
		| {requests: $w.requests, duration_s: $s, requests_per_s: ($w.requests / $s),
		   bytes: $w.bytes, mb_per_s: ($w.bytes / $s / 1e6),
		   errors: $w.errors, errors_total: ($w.errors | add),
		   latency_ms: ($w.latency_us | map_values(. / 1000)),
		   cpu: $cpu,
		   cpu_ms_per_1k_requests: (if $w.requests > 0
			then $cpu.busy_s * 1e6 / $w.requests else null end),
		   steering: $steering, outside: $outside, busy_share_before: $quiet}')
}

# Runs one triage-loadgen measurement and sets last_metrics to its report,
# with the busy CPU seconds, triage's steering counters and the CPU use
# outside the benchmark over the run added. EXPECTED_S is how long the run takes (warm-up, measurement and the
# request timeout), and the arguments after it go to triage-loadgen. Sets
# last_command.
measure_loadgen() {
	local expected=$1 out cpu_before cpu_after counters_before counters_after
	local outside_before outside_after

	shift
	out=$BENCH_TMP/loadgen.out
	counters_before=$(triage_counters)
	wait_for_quiet_host
	outside_before=$(scripts/bench/outside_cpu.py)
	cpu_before=$(read_cpu_jiffies)
	run_client $(($(awk -v s="$expected" 'BEGIN { printf "%d", s + 0.999 }') + CLIENT_MARGIN_S)) "$out" \
		"$LOADGEN" --target "$SRV_ADDR:$PORT" "$@"
	cpu_after=$(read_cpu_jiffies)
	outside_after=$(scripts/bench/outside_cpu.py)
	counters_after=$(triage_counters)
	check_servers_alive
	last_metrics=$(jq -c --argjson cpu "$(cpu_delta_json "$cpu_before" "$cpu_after")" \
		--argjson steering "$(counters_delta_json "$counters_before" "$counters_after")" \
		--argjson outside "$(outside_cpu_delta_json "$outside_before" "$outside_after")" \
		--argjson quiet "$quiet_busy" \
		'. + {cpu: $cpu, steering: $steering, outside: $outside, busy_share_before: $quiet}' "$out") ||
		die "triage-loadgen printed no JSON report; its output is in $out"
}

# Cleanup

# Prints what the benchmark may have left on the host, one item a line.
bench_leftovers() {
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

# The EXIT trap: stops and removes everything this run created, then exits
# with the run's status, or 1 when something is left.
# shellcheck disable=SC2317 # only the EXIT trap calls it
bench_cleanup() {
	local rc=$? left item

	trap - EXIT INT TERM HUP
	# A closed output pipe must not stop the cleanup halfway.
	trap '' PIPE
	set +e
	stop_servers
	restore_server_sysctls
	net_down
	if [[ -n $BENCH_TMP ]]; then
		rm -rf "$BENCH_TMP"
	fi
	left=$(bench_leftovers)
	if [[ -n $left ]]; then
		say "error: left behind:" >&2
		while read -r item; do
			echo "  $item" >&2
		done <<<"$left"
		rc=1
	fi
	exit "$rc"
}
