#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Errors of 'triage attach': no such process, no listener on the port, a
# process in another network namespace, pidfd_getfd() denied, and a UDP or
# Unix socket where a TCP listener was expected. Each must name its cause,
# exit non-zero and change nothing: no pin, record, cgroup, tc filter,
# sysctl change or program attached to the service's socket, and the
# service keeps serving.

# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/attach_lib.sh
. "$(dirname "$0")/attach_lib.sh"
e2e_init

PORT=18102
OTHER_PORT=18103
netns_setup attacherr 102
SYNCOOKIES=$(srv_sysctl net.ipv4.tcp_syncookies)
MIGRATE=$(srv_sysctl net.ipv4.tcp_migrate_req)

CONFIG=$TMP_DIR/attach.yaml
cat >"$CONFIG" <<EOF
port: $PORT
default_pool: service
pools:
  - name: service
  - name: static
    command: [$WORKER]
categories:
  - name: light
    pool: static
    rules:
      - path: /light
EOF

# A server: TCP with SO_REUSEPORT that answers each connection with "up",
# UDP that reads datagrams, or a Unix stream listener.
SERVER_PY='
import socket, sys
kind, where = sys.argv[1], sys.argv[2]
if kind == "unix":
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(where)
    s.listen()
elif kind == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", int(where)))
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("0.0.0.0", int(where)))
    s.listen()
sys.stdout.write("ready\n")
sys.stdout.flush()
while True:
    if kind == "udp":
        s.recv(100)
        continue
    c, _ = s.accept()
    c.sendall(b"up\n")
    c.close()
'

# Starts the server KIND (tcp, udp, unix) at WHERE in namespace NS as USER,
# waits until it is ready and sets SERVICE to its pid.
service_start() {
	local kind=$1 where=$2 ns=$3 user=$4 i

	rm -f "$TMP_DIR/service.out"
	nsenter --net="/run/netns/$ns" setpriv --reuid="$user" --regid="$(id -g "$user")" --clear-groups \
		"$PYTHON" -c "$SERVER_PY" "$kind" "$where" >"$TMP_DIR/service.out" 2>&1 &
	SERVICE=$!
	defer stop_pid "$SERVICE"
	for ((i = 0; i < 50; i++)); do
		grep -q ready "$TMP_DIR/service.out" 2>/dev/null && return 0
		sleep 0.1
	done
	note "the $kind service did not start: $(cat "$TMP_DIR/service.out")"
}

# Prints what the TCP service on PORT sends to a new connection.
service_reply() {
	in_cli "$PYTHON" -c '
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
print(s.recv(10).decode().strip())
' "$SRV_IP" "$1" 2>&1 | tail -n 1
}

# Runs 'triage attach' in namespace NS (through the optional wrapper WRAP...)
# and checks its exit status, its message NEEDLE and that nothing changed.
expect_attach_error() {
	local what=$1 needle=$2 ns=$3 pid=$4 port=$5
	shift 5

	ORPHANS_BEFORE=$(orphan_triage_progs)
	capture nsenter --net="/run/netns/$ns" "$@" "$TRIAGE" attach --port "$PORT" --pid "$pid" \
		--config "$CONFIG"
	check_eq "$what: exit status 1" 1 "$STATUS"
	check_contains "$what: message" "$needle" "$OUT"
	check_nothing_left "$PORT" "$SYNCOOKIES" "$what"
	check_eq "$what: tcp_migrate_req unchanged" "$MIGRATE" "$(srv_sysctl net.ipv4.tcp_migrate_req)"
	check_eq "$what: no sk_lookup link in the server namespace" "" "$(srv_lookup_links)"
	check_eq "$what: no new triage program held only by an attachment" "$ORPHANS_BEFORE" \
		"$(orphan_triage_progs)"
	if [ -n "$port" ]; then
		check_eq "$what: the service still serves" up "$(service_reply "$port")"
	fi
}

# No such process: the pid of a process that has exited.
sleep 0 &
GONE=$!
wait "$GONE"
expect_attach_error "no such process" "process $GONE: no such process" "$SRV_NS" "$GONE" ""

# A TCP server that listens on another port.
service_start tcp "$OTHER_PORT" "$SRV_NS" root
expect_attach_error "no listener on the port" \
	"has no TCP socket listening on port $PORT" "$SRV_NS" "$SERVICE" "$OTHER_PORT"
stop_pid "$SERVICE"

# A server in another network namespace: triage runs in the client's.
service_start tcp "$PORT" "$SRV_NS" root
expect_attach_error "other network namespace" "lives in network namespace" \
	"$CLI_NS" "$SERVICE" "$PORT"
stop_pid "$SERVICE"

# pidfd_getfd() denied: the server runs as nobody and triage lacks CAP_SYS_PTRACE.
service_start tcp "$PORT" "$SRV_NS" nobody
expect_attach_error "pidfd_getfd denied" "lacks CAP_SYS_PTRACE" "$SRV_NS" "$SERVICE" "$PORT" \
	setpriv --bounding-set=-sys_ptrace --inh-caps=-sys_ptrace
check_contains "pidfd_getfd denied: message names pidfd_getfd" "pidfd_getfd() needs ptrace access" \
	"$OUT"
stop_pid "$SERVICE"

# A UDP socket on the port.
service_start udp "$PORT" "$SRV_NS" root
expect_attach_error "UDP socket" "has a UDP socket on port $PORT" "$SRV_NS" "$SERVICE" ""
stop_pid "$SERVICE"

# A Unix listener and nothing on the port.
service_start unix "$TMP_DIR/service.sock" "$SRV_NS" root
expect_attach_error "Unix socket" "listens on the Unix socket $TMP_DIR/service.sock" \
	"$SRV_NS" "$SERVICE" ""
stop_pid "$SERVICE"

# A controller already runs for the port.
service_start tcp "$PORT" "$SRV_NS" root
defer triage_cleanup "$PORT"
sed "s/^port: .*/port: $PORT\nattach: {pid: $SERVICE}/" "$CONFIG" >"$TMP_DIR/run.yaml"
if triage_up "$TMP_DIR/run.yaml" "$TMP_DIR/triage.log" "'attach' in the config of 'triage run' starts"; then
	check_eq "'attach' in the config: status shows the service" "$SERVICE" \
		"$(status_json "$PORT" | json_get 0/service/pid)"
	capture in_srv "$TRIAGE" attach --port "$PORT" --pid "$SERVICE" --config "$CONFIG"
	check_eq "attach while a controller runs: exit status 1" 1 "$STATUS"
	check_contains "attach while a controller runs: message" \
		"triage pid $TRIAGE_PID already steers it" "$OUT"
	check_eq "attach while a controller runs: the first one still runs" yes \
		"$(proc_running "$TRIAGE_PID" && echo yes)"
	triage_stop
	check_eq "the controller with 'attach' in its config exits 0" 0 "$TRIAGE_STATUS"
	check_nothing_left "$PORT" "$SYNCOOKIES" "after its stop"
	check_eq "after its stop: the service still serves" up "$(service_reply "$PORT")"
fi
