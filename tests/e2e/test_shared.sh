#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Two ports in one namespace share the clsact qdisc and tcp_syncookies:
# stopping the port that set them up must leave the other port steering, and
# the second stop must leave nothing. Also: IPv4 clients of a dual-stack
# listener are counted in their pool.

# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init

PORT_A=18087
PORT_B=18088
PORT_V6=18089
PORT_GONE=18090

netns_setup shared 7
SYNCOOKIES=$(srv_sysctl net.ipv4.tcp_syncookies)

# Writes a config for PORT with pools a (default) and b (/b), plus EXTRA lines.
write_config() {
	local port=$1 file=$2 extra=${3:-}

	cat >"$file" <<EOF
port: $port
$extra
default_pool: a
pools:
  - name: a
    command: [$WORKER]
  - name: b
    command: [$WORKER]
categories:
  - name: b
    pool: b
    rules:
      - path: /b
EOF
}

write_config "$PORT_A" "$TMP_DIR/a.yaml"
write_config "$PORT_B" "$TMP_DIR/b.yaml"
write_config "$PORT_V6" "$TMP_DIR/v6.yaml" 'address: "::"'

# Port A starts first, so it creates the clsact qdiscs and sets tcp_syncookies.
triage_run_checked "$TMP_DIR/a.yaml" "$TMP_DIR/a.log" "$PORT_A" "port A starts"

# The second controller runs beside the one that lib.sh tracks. nsenter execs
# triage, so $! is the controller's own pid.
B_LOG=$TMP_DIR/b.log
nsenter --net="/run/netns/$SRV_NS" "$TRIAGE" run --config "$TMP_DIR/b.yaml" 2>"$B_LOG" &
B_PID=$!
defer stop_pid "$B_PID"
defer triage_cleanup "$PORT_B"
for ((i = 0; i < WAIT_S * 10; i++)); do
	grep -q 'running: port' "$B_LOG" && break
	sleep 0.1
done
check_contains "port B starts" "running: port $PORT_B" "$(cat "$B_LOG")"

check_eq "port A: /b served by pool b" b "$(curl_pool "$PORT_A" /b)"
check_eq "port B: /b served by pool b" b "$(curl_pool "$PORT_B" /b)"

triage_stop
check_eq "port A: stops with status 0" 0 "$TRIAGE_STATUS"
check_contains "port A: hands the clsact qdisc over" "clsact qdisc: still used" \
	"$(cat "$TMP_DIR/a.log")"
check_contains "port A: hands tcp_syncookies over" "tcp_syncookies: still used" \
	"$(cat "$TMP_DIR/a.log")"
check_eq "after port A stops: tcp_syncookies stays 2" 2 \
	"$(srv_sysctl net.ipv4.tcp_syncookies)"
check_contains "after port A stops: port B's tc filter remains" \
	"handle $(printf '0x%x' "$PORT_B")" "$(srv_tc_filters)"
BEFORE=$(pool_field "$PORT_B" b payload)
for i in 1 2 3; do
	check_eq "after port A stops: port B /b request $i served by pool b" b \
		"$(curl_pool "$PORT_B" /b)"
done
sleep 0.3
check_eq "after port A stops: port B steers 3 more connections by payload" \
	"$((BEFORE + 3))" "$(pool_field "$PORT_B" b payload)"
check_eq "after port A stops: port B steers none at SYN time" 0 \
	"$(pool_field "$PORT_B" b syn)"

kill "$B_PID"
if wait_gone "$B_PID" "$WAIT_S"; then
	ok "port B stops"
else
	not_ok "port B stops" "pid $B_PID still runs ${WAIT_S}s after SIGTERM"
fi
check_nothing_left "$PORT_A" "$SYNCOOKIES" "after both stop, port A"
check_nothing_left "$PORT_B" "$SYNCOOKIES" "after both stop, port B"

# A listener on "::" receives IPv4 clients as v4-mapped IPv6 sockets.
triage_run_checked "$TMP_DIR/v6.yaml" "$TMP_DIR/v6.log" "$PORT_V6" "dual-stack port starts"
check_eq "dual-stack: IPv4 /b served by pool b" b "$(curl_pool "$PORT_V6" /b)"
check_eq "dual-stack: IPv4 /x served by pool a" a "$(curl_pool "$PORT_V6" /x)"
sleep 0.3
check_eq "dual-stack: pool b counts its IPv4 connection" 1 \
	"$(pool_field "$PORT_V6" b established)"
check_eq "dual-stack: pool a counts its IPv4 connection" 1 \
	"$(pool_field "$PORT_V6" a established)"
check_eq "dual-stack: pool b steered by payload" 1 "$(pool_field "$PORT_V6" b payload)"
triage_stop
check_nothing_left "$PORT_V6" "$SYNCOOKIES" "dual-stack: after stop"

# A crashed run whose namespace was then deleted: detach refuses the record
# without --force, since its tc filters and sysctls lived there, and removes
# the rest with it.
GONE_NS="te2e-gone-$$"
write_config "$PORT_GONE" "$TMP_DIR/gone.yaml"
ip netns add "$GONE_NS"
ip -n "$GONE_NS" link set lo up
nsenter --net="/run/netns/$GONE_NS" "$TRIAGE" run --config "$TMP_DIR/gone.yaml" \
	2>"$TMP_DIR/gone.log" &
GONE_PID=$!
defer triage_cleanup "$PORT_GONE"
for ((i = 0; i < WAIT_S * 10; i++)); do
	grep -q 'running: port' "$TMP_DIR/gone.log" && break
	sleep 0.1
done
check_contains "gone namespace: triage starts" "running: port $PORT_GONE" \
	"$(cat "$TMP_DIR/gone.log")"
GONE_WORKERS=$(port_pids "$PORT_GONE" | tr '\n' ' ')
kill -KILL "$GONE_PID"
wait "$GONE_PID" 2>/dev/null || true
ip netns del "$GONE_NS"
STATUS=0
OUT=$("$TRIAGE" detach --port "$PORT_GONE" 2>&1) || STATUS=$?
check_eq "gone namespace: detach without --force fails" 1 "$STATUS"
check_contains "gone namespace: detach suggests --force" "add --force" "$OUT"
check_present "gone namespace: the record stays" "$STATE_DIR/$PORT_GONE.state"
STATUS=0
OUT=$("$TRIAGE" detach --port "$PORT_GONE" --force 2>&1) || STATUS=$?
check_eq "gone namespace: detach --force succeeds" 0 "$STATUS"
check_absent "gone namespace: no pins" "$PIN_ROOT/$PORT_GONE"
check_absent "gone namespace: no record" "$STATE_DIR/$PORT_GONE.state"
check_no_cgroups "$PORT_GONE" "gone namespace: no cgroups"
ALIVE=""
for pid in $GONE_WORKERS; do
	wait_gone "$pid" 10 || ALIVE="$ALIVE $pid"
done
check_eq "gone namespace: no worker left" "" "$ALIVE"
