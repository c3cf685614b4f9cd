#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Attach to a server without SO_REUSEPORT (python3 -m http.server) through
# the sk_lookup program: the client namespace has two addresses, and while
# triage is attached the connections of one of them go to a triage pool and
# the other's stay with the server. After the detach the server serves both.
# No request may fail.

# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/attach_lib.sh
. "$(dirname "$0")/attach_lib.sh"
e2e_init

PORT=18101
netns_setup attachlk 101
CLI_IP2=10.232.101.3
ip -n "$CLI_NS" addr add "$CLI_IP2/24" dev e2e-cli
SYNCOOKIES=$(srv_sysctl net.ipv4.tcp_syncookies)
MIGRATE=$(srv_sysctl net.ipv4.tcp_migrate_req)

WWW=$TMP_DIR/www
mkdir -p "$WWW"
echo python >"$WWW/light"
# nsenter execs python, so $! is the server's pid.
nsenter --net="/run/netns/$SRV_NS" "$PYTHON" -m http.server --bind "$SRV_IP" --directory "$WWW" "$PORT" \
	>"$TMP_DIR/http.out" 2>&1 &
SERVER=$!
defer stop_pid "$SERVER"
for ((i = 0; i < 50; i++)); do
	in_srv ss -Htln "sport = :$PORT" | grep -q LISTEN && break
	sleep 0.1
done
check_eq "http.server serves /light" python \
	"$(in_cli curl -sS -m 5 "http://$SRV_IP:$PORT/light" 2>&1)"

CONFIG=$TMP_DIR/attach.yaml
cat >"$CONFIG" <<EOF
port: $PORT
default_pool: service
pools:
  - name: service
  - name: special
    command: [$WORKER]
    workers: 2
categories:
  - name: vip
    pool: special
    rules:
      - client: $CLI_IP2/32
EOF

client_start "$SRV_IP" "$PORT" "/light@$CLI_IP" "/light@$CLI_IP2"
client_wait_requests 20 || true
T_ATTACH=$(now)
defer triage_cleanup "$PORT"
attach_start "$TMP_DIR/triage.log" --port "$PORT" --pid "$SERVER" --config "$CONFIG"
if triage_wait_running; then
	ok "triage attach to http.server starts"
else
	not_ok "triage attach to http.server starts" "its log ends with:"
	show_file "$TRIAGE_LOG"
	exit 1
fi
wait_workers "$PORT" special 2 || true
T_ATTACHED=$(now)

STATUS=$(status_json "$PORT")
check_eq "status: steering is attached" attached "$(json_get 0/steering <<<"$STATUS")"
check_eq "status: service pid is the server's" "$SERVER" \
	"$(json_get 0/service/pid <<<"$STATUS")"
check_contains "status: service command is http.server" "http.server" \
	"$(json_get 0/service/command <<<"$STATUS")"
check_eq "status: mechanism is sk_lookup" sk_lookup \
	"$(json_get 0/service/mechanism <<<"$STATUS")"
check_contains "status text says payload rules choose among triage's pools" \
	"payload rules choose among triage's pools" "$("$TRIAGE" status --port "$PORT")"
check_contains "an sk_lookup link is attached to the server namespace" sk_lookup \
	"$(srv_lookup_links)"
GROUP_PORT=$(grep -o "to triage's group on port [0-9]*" "$TRIAGE_LOG" | grep -o '[0-9]*$')
note "triage's group listens on port ${GROUP_PORT:-?}"
check_contains "triage's group listens on loopback only" "127.0.0.1:${GROUP_PORT:-none} " \
	"$(in_srv ss -Hltn "sport = :${GROUP_PORT:-0}")"
check_eq "triage's group port is not reachable from the client" fail \
	"$(in_cli curl -s -o /dev/null --max-time 3 "http://$SRV_IP:${GROUP_PORT:-1}/light" &&
		echo reached || echo fail)"

client_wait_requests 300 || true
T_DETACH=$(now)
STATUS=$(status_json "$PORT")
check_ge "status: lookups were assigned to triage's pools" 50 \
	"$(json_get 0/service/lookup/to_pools <<<"$STATUS")"
capture in_srv "$TRIAGE" detach --port "$PORT"
check_eq "triage detach exits 0" 0 "$STATUS"
T_DETACHED=$(now)
triage_stop
check_eq "the attached controller exits 0" 0 "$TRIAGE_STATUS"
client_wait_requests 100 || true
client_stop

check_no_failures "no request failed before, during or after the attach"
check_eq "before the attach: http.server served both addresses" 0 \
	"$(count_requests 0 "$T_ATTACH" '*' /light '!SimpleHTTP')"
check_ge "while attached: pool special served $CLI_IP2" 50 \
	"$(count_requests "$T_ATTACHED" "$T_DETACH" "$CLI_IP2" /light pool:special)"
check_eq "while attached: only pool special served $CLI_IP2" 0 \
	"$(count_requests "$T_ATTACHED" "$T_DETACH" "$CLI_IP2" /light '!pool:special')"
check_ge "while attached: http.server served $CLI_IP" 50 \
	"$(count_requests "$T_ATTACHED" "$T_DETACH" "$CLI_IP" /light SimpleHTTP)"
check_eq "while attached: only http.server served $CLI_IP" 0 \
	"$(count_requests "$T_ATTACHED" "$T_DETACH" "$CLI_IP" /light '!SimpleHTTP')"
check_ge "after the detach: http.server served $CLI_IP2" 20 \
	"$(count_requests "$T_DETACHED" 9999999999 "$CLI_IP2" /light SimpleHTTP)"
check_eq "after the detach: only http.server served" 0 \
	"$(count_requests "$T_DETACHED" 9999999999 '*' /light '!SimpleHTTP')"

check_eq "http.server still runs" yes "$(proc_running "$SERVER" && echo yes)"
check_eq "no sk_lookup link is left in the server namespace" "" "$(srv_lookup_links)"
check_eq "only the server's listener remains on the port" 1 \
	"$(in_srv ss -Htln "sport = :$PORT" | wc -l)"
check_nothing_left "$PORT" "$SYNCOOKIES" "after the detach"
check_eq "after the detach: tcp_migrate_req is $MIGRATE again" "$MIGRATE" \
	"$(srv_sysctl net.ipv4.tcp_migrate_req)"
