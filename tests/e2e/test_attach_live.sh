#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Attach through a running controller: 'triage run' owns the port with the
# pools main and web, then nginx (master as root, workers as nobody) joins
# the reuseport group of triage's listeners with 'listen ... reuseport'.
# 'triage attach' without --config makes nginx's sockets pool web while a
# client sends requests without pause: /light goes to nginx only while
# attached, /cpu stays with pool main, and no request fails. Errors over
# the control socket change nothing, and 'triage detach' leaves nothing.
# Last, a crashed controller's control socket is replaced by the next run.

# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/attach_lib.sh
. "$(dirname "$0")/attach_lib.sh"
e2e_init

PORT=18104
OTHER_PORT=18105
CTL=$STATE_DIR/$PORT.ctl

netns_setup attachlive 104
SYNCOOKIES=$(srv_sysctl net.ipv4.tcp_syncookies)
MIGRATE=$(srv_sysctl net.ipv4.tcp_migrate_req)
ORPHANS_BEFORE=$(orphan_triage_progs)

CONFIG=$TMP_DIR/live.yaml
cat >"$CONFIG" <<EOF
port: $PORT
address: $SRV_IP
default_pool: main
pools:
  - name: main
    command: [$WORKER]
    user: nobody
    workers: 2
  - name: web
    command: [$WORKER]
    user: nobody
    workers: 2
categories:
  - name: light
    pool: web
    rules:
      - path: /light
EOF

# nginx runs from its own folder: config, pid file, logs, temp paths. Its
# master stays root, as in a packaged nginx, so its listening sockets belong
# to root like triage's, which triage creates before a worker drops to nobody.
NGX=$TMP_DIR/nginx
nginx_conf "$NGX" "$PORT" 2 "nobody nogroup"

# A server as root on ADDRESS:PORT: KIND tcp (with SO_REUSEPORT), tcp-plain
# (without) or udp.
SERVER_PY='
import socket, sys
addr, port, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
if kind == "tcp":
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind((addr, port))
if kind != "udp":
    s.listen()
sys.stdout.write("ready\n")
sys.stdout.flush()
while True:
    if kind == "udp":
        s.recv(100)
    else:
        s.accept()[0].close()
'

# Starts the server of SERVER_PY in namespace NS (default: the server's) and sets SERVICE.
service_start() {
	local addr=$1 port=$2 kind=$3 ns=${4:-$SRV_NS} i

	rm -f "$TMP_DIR/service.out"
	nsenter --net="/run/netns/$ns" "$PYTHON" -c "$SERVER_PY" "$addr" "$port" "$kind" \
		>"$TMP_DIR/service.out" 2>&1 &
	SERVICE=$!
	defer stop_pid "$SERVICE"
	for ((i = 0; i < 50; i++)); do
		grep -q ready "$TMP_DIR/service.out" 2>/dev/null && return 0
		sleep 0.1
	done
	note "the service on $addr:$port did not start: $(cat "$TMP_DIR/service.out")"
}

# Prints what must stay as it is after a rejected attach: the record, the
# steering in 'triage status', the sizes of both pools and who listens. The
# record's worker and exited lines are left out, since a worker that a busy
# host restarts meanwhile adds them.
port_snapshot() {
	local status

	status=$(status_json "$PORT")
	grep -Ev '^(worker|exited) ' "$STATE_DIR/$PORT.state" | sed 's/^/record: /'
	echo "steering $(json_get 0/steering <<<"$status")"
	echo "web $(json_get 0/pools/name=web/workers <<<"$status")"
	echo "main $(json_get 0/pools/name=main/workers <<<"$status")"
	echo "web pids $(pool_pids_of "$PORT" web)"
	echo "listeners $(in_srv ss -Htln "sport = :$PORT" | wc -l)"
}

# Runs 'triage attach ARGS...' through the control socket and checks exit
# status 1, the message NEEDLE, and that the controller and port are unchanged.
expect_live_error() {
	local what=$1 needle=$2 before
	shift 2

	before=$(port_snapshot)
	capture in_srv "$TRIAGE" attach --port "$PORT" "$@"
	check_eq "$what: exit status 1" 1 "$STATUS"
	check_contains "$what: message" "$needle" "$OUT"
	check_eq "$what: record, steering, pools and listeners unchanged" "$before" \
		"$(port_snapshot)"
	check_eq "$what: the controller still runs" yes "$(proc_running "$TRIAGE_PID" && echo yes)"
}

service_cgroup
# The shell joins the test's cgroup, then execs nsenter and nginx, so $! is nginx's master.
start_nginx() {
	bash -c 'echo $$ >"$1/cgroup.procs"; shift; exec "$@"' _ "$SVC_CG" \
		nsenter --net="/run/netns/$SRV_NS" \
		nginx -c "$NGX/nginx.conf" -p "$NGX" -e "$NGX/error.log" 2>"$TMP_DIR/nginx.out" &
	NGINX=$!
	defer stop_pid "$NGINX"
	for ((i = 0; i < 50; i++)); do
		[ "$(proc_tree "$NGINX" | wc -l)" -ge 3 ] && break
		sleep 0.1
	done
}

## No controller runs: 'triage attach' without --config has nothing to attach through.

capture in_srv "$TRIAGE" attach --port "$PORT" --pid $$
check_eq "no controller: exit status 1" 1 "$STATUS"
check_contains "no controller: message" "no triage controller runs for it" "$OUT"
check_absent "no controller: no record" "$STATE_DIR/$PORT.state"

## triage owns the port, then nginx joins its reuseport group.

if ! triage_run_checked "$CONFIG" "$TMP_DIR/triage.log" "$PORT" "triage run starts"; then
	exit 1
fi
wait_workers "$PORT" web 2 || true
wait_workers "$PORT" main 2 || true
check_eq "control socket is a socket of mode 600" "socket 600" \
	"$(stat -c '%F %a' "$CTL" 2>&1)"
check_contains "the record lists the control socket" "attach-ctl $CTL" \
	"$(cat "$STATE_DIR/$PORT.state")"

start_nginx
NGINX_PROCS=$(proc_tree "$NGINX" | sort -n | paste -sd ' ' -)
check_eq "nginx runs a master and 2 workers" 3 "$(wc -w <<<"$NGINX_PROCS")"
SVC_REL=$(cgroup_of "$NGINX")
LISTENERS=$(in_srv ss -Htlne "sport = :$PORT")
check_eq "6 listeners on the port: triage's 4 and nginx's 2" 6 "$(wc -l <<<"$LISTENERS")"
# ss prints a socket's uid only when it is not 0.
check_eq "every listener on the port belongs to uid 0" "" "$(grep -o 'uid:[0-9]*' <<<"$LISTENERS" || true)"

# The default count ends the client within seconds on a fast host, so only its 90 s bound applies.
CLIENT_MAX_REQUESTS=300000
client_start "$SRV_IP" "$PORT" /light "/cpu?ms=0"
client_wait_requests 60 || true

## Rejected attaches over the control socket change nothing.

service_start "$SRV_IP" "$OTHER_PORT" tcp
expect_live_error "no listener on the port" "has no TCP socket listening on port $PORT" \
	--pid "$SERVICE" --pool web
stop_pid "$SERVICE"

service_start 127.0.0.1 "$PORT" tcp
expect_live_error "another reuseport group" "so the service's sockets are in another reuseport group" \
	--pid "$SERVICE" --pool web
check_contains "another reuseport group: message names both addresses" \
	"listens on 127.0.0.1:$PORT as uid 0, but triage's listeners (pool 'main') listen on $SRV_IP:$PORT as uid 0" \
	"$OUT"
stop_pid "$SERVICE"

service_start 127.0.0.1 "$PORT" tcp-plain
expect_live_error "no SO_REUSEPORT" "listens without SO_REUSEPORT" --pid "$SERVICE" --pool web
check_contains "no SO_REUSEPORT: message says what to do" "restart triage with 'attach: {pid: $SERVICE}'" \
	"$OUT"
stop_pid "$SERVICE"

service_start "$SRV_IP" "$PORT" udp
expect_live_error "UDP socket" "has a UDP socket on port $PORT" --pid "$SERVICE" --pool web
stop_pid "$SERVICE"

service_start 0.0.0.0 "$PORT" tcp "$CLI_NS"
expect_live_error "other network namespace" "lives in network namespace" \
	--pid "$SERVICE" --pool web
check_contains "other network namespace: message names the controller's namespace" \
	"a running controller attaches only processes of its own network namespace" "$OUT"
stop_pid "$SERVICE"

WEB_WORKER=$(pool_pids_of "$PORT" web | awk '{ print $1 }')
expect_live_error "triage's own worker" "is the listener of triage's own pool 'web'" \
	--pid "$WEB_WORKER" --pool web
expect_live_error "unknown pool" "no pool 'nosuch' in the running config; name one of 'main', 'web'" \
	--pid "$NGINX" --pool nosuch
expect_live_error "--config while a controller runs" "leave out --config" \
	--pid "$NGINX" --pool web --config "$CONFIG"

## The attach while the client sends requests.

client_wait_requests 60 || true
T_ATTACH=$(now)
capture in_srv "$TRIAGE" attach --port "$PORT" --pid "$NGINX" --pool web --move-to-pool
T_ATTACHED=$(now)
check_eq "attach through the control socket: exit status 0" 0 "$STATUS"
check_contains "attach through the control socket: message" \
	"attached process $NGINX (nginx): its 2 listening sockets on $SRV_IP:$PORT form pool 'web'" "$OUT"
check_contains "attach through the control socket: web's workers drained" \
	"2 workers of pool 'web' drained" "$OUT"

STATUS_JSON=$(status_json "$PORT")
check_eq "status: steering is attached" attached "$(json_get 0/steering <<<"$STATUS_JSON")"
check_eq "status: service pid is nginx's master" "$NGINX" \
	"$(json_get 0/service/pid <<<"$STATUS_JSON")"
check_contains "status: service command is nginx's" nginx \
	"$(json_get 0/service/command <<<"$STATUS_JSON")"
check_eq "status: mechanism is the reuseport group" reuseport \
	"$(json_get 0/service/mechanism <<<"$STATUS_JSON")"
check_eq "status: service pool is web" web "$(json_get 0/service/pool <<<"$STATUS_JSON")"
check_eq "status: pool web has nginx's 2 sockets" 2 \
	"$(json_get 0/pools/name=web/workers <<<"$STATUS_JSON")"
check_eq "status: pool main keeps its 2 workers" 2 \
	"$(json_get 0/pools/name=main/workers <<<"$STATUS_JSON")"
check_contains "status text names the service and mechanism" \
	"attached to service pid $NGINX (nginx" "$("$TRIAGE" status --port "$PORT")"

MOVED=""
EXPECTED=""
for pid in $NGINX_PROCS; do
	MOVED="$MOVED $(cgroup_of "$pid")"
	EXPECTED="$EXPECTED $(port_cgroup_rel "$PORT")/web"
done
check_eq "nginx's processes are in pool web's cgroup" "$EXPECTED" "$MOVED"
for ((i = 0; i < WAIT_S * 10; i++)); do
	[ "$(pool_pids_of "$PORT" web)" = "$NGINX_PROCS" ] && break
	sleep 0.1
done
check_eq "pool web's own workers exited; only nginx is in its cgroup" "$NGINX_PROCS" \
	"$(pool_pids_of "$PORT" web)"
check_eq "4 listeners remain: nginx's 2 and pool main's 2" 4 \
	"$(in_srv ss -Htln "sport = :$PORT" | wc -l)"

expect_live_error "a second attach" "already attached to process $NGINX (nginx)" \
	--pid "$NGINX" --pool main

## The detach gives the port back to nginx.

client_wait_requests 200 || true
T_DETACH=$(now)
capture in_srv "$TRIAGE" detach --port "$PORT"
check_eq "triage detach exits 0" 0 "$STATUS"
T_DETACHED=$(now)
triage_stop
check_eq "the controller exits 0" 0 "$TRIAGE_STATUS"
client_wait_requests 100 || true
client_stop

check_no_failures "no request failed before, during or after the attach and the detach"
check_ge "before the attach: pool web served /light" 10 \
	"$(count_requests 0 "$T_ATTACH" '*' /light pool:web)"
check_eq "before the attach: nginx served nothing, triage's program chose every listener" 0 \
	"$(count_requests 0 "$T_ATTACH" '*' '*' nginx)"
check_ge "while attached: nginx served /light" 50 \
	"$(count_requests "$T_ATTACHED" "$T_DETACH" '*' /light nginx)"
check_eq "while attached: only nginx served /light" 0 \
	"$(count_requests "$T_ATTACHED" "$T_DETACH" '*' /light '!nginx')"
check_ge "while attached: pool main served /cpu" 50 \
	"$(count_requests "$T_ATTACHED" "$T_DETACH" '*' '/cpu?ms=0' pool:main)"
check_eq "while attached: only pool main served /cpu" 0 \
	"$(count_requests "$T_ATTACHED" "$T_DETACH" '*' '/cpu?ms=0' '!pool:main')"
check_ge "after the detach: nginx served /light and /cpu" 50 \
	"$(count_requests "$T_DETACHED" 9999999999 '*' '*' nginx)"
check_eq "after the detach: only nginx served" 0 \
	"$(count_requests "$T_DETACHED" 9999999999 '*' '*' '!nginx')"

ALIVE=""
BACK=""
EXPECTED=""
for pid in $NGINX_PROCS; do
	proc_running "$pid" && ALIVE="$ALIVE $pid"
	BACK="$BACK $(cgroup_of "$pid")"
	EXPECTED="$EXPECTED $SVC_REL"
done
check_eq "nginx's processes all still run" " $NGINX_PROCS" "$ALIVE"
check_eq "nginx's processes are back in their cgroup" "$EXPECTED" "$BACK"
check_eq "only nginx's 2 listeners remain on the port" 2 \
	"$(in_srv ss -Htln "sport = :$PORT" | wc -l)"
check_nothing_left "$PORT" "$SYNCOOKIES" "after the detach"
check_absent "after the detach: no control socket" "$CTL"
check_eq "after the detach: tcp_migrate_req is $MIGRATE again" "$MIGRATE" \
	"$(srv_sysctl net.ipv4.tcp_migrate_req)"
check_eq "after the detach: no triage program left attached to nginx's group" \
	"$ORPHANS_BEFORE" "$(orphan_triage_progs)"
check_eq "nginx serves /light after the detach" nginx \
	"$(in_cli curl -sS -m 5 "http://$SRV_IP:$PORT/light" 2>&1)"
stop_pid "$NGINX"

## A crashed controller leaves its control socket; the next run replaces it.

triage_start "$CONFIG" "$TMP_DIR/triage2.log"
if triage_wait_running; then
	triage_stop KILL
	check_eq "after a crash: the control socket file stays" socket "$(stat -c %F "$CTL" 2>&1)"
	capture in_srv "$TRIAGE" attach --port "$PORT" --pid $$
	check_contains "after a crash: attach says no controller runs" \
		"no triage controller runs for it" "$OUT"
	triage_up "$CONFIG" "$TMP_DIR/triage3.log" "the next run after a crash starts" || true
	check_contains "the next run removed the stale control socket" \
		"control socket $CTL: removed" "$(cat "$TMP_DIR/triage3.log")"
	expect_live_error "the new control socket answers" "no such process" --pid 999999999
	capture in_srv "$TRIAGE" detach --port "$PORT"
	check_eq "detach after the restart exits 0" 0 "$STATUS"
	triage_stop
	check_nothing_left "$PORT" "$SYNCOOKIES" "after the last detach"
	check_absent "after the last detach: no control socket" "$CTL"
else
	not_ok "the run that is crashed on purpose starts" "its log ends with:"
	show_file "$TMP_DIR/triage2.log"
fi
