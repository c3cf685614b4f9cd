#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# What happens to a pool's connections when what serves them goes away.
# 1. The last worker of pool solo dies and its restart fails: the pool's
#    connections wait in the pool's queue instead of going to the default
#    pool, and a working restart later serves them.
# 2. A service attached through sk_lookup (python3 -m http.server) exits:
#    its clients go to triage's pools instead of being refused.
# 3. A first path segment too long for a rule does not make a pool emerge.
# 4. An attached nginx reloads with fewer workers and closes one of its
#    reuseport listeners: triage takes it out of the pool, and no request
#    waits on it.

# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/attach_lib.sh
. "$(dirname "$0")/attach_lib.sh"
e2e_init

PORT=18096
SVC_PORT=18097
NGX_PORT=18098
netns_setup failover 96
SYNCOOKIES=$(srv_sysctl net.ipv4.tcp_syncookies)
MIGRATE_REQ=$(srv_sysctl net.ipv4.tcp_migrate_req)

# Part 1: a failing restart keeps the pool's connections queued.

WRAPPER=$TMP_DIR/solo.sh
printf '#!/bin/sh\nexec %s "$@"\n' "$WORKER" >"$WRAPPER"
chmod 755 "$WRAPPER"
LONG=$(printf 'a%.0s' $(seq 70))
CONFIG=$TMP_DIR/failover.yaml
cat >"$CONFIG" <<EOF
port: $PORT
tick_ms: 200
default_pool: light
pools:
  - name: light
    command: [$WORKER]
  - name: solo
    command: [$WRAPPER]
templates:
  - name: auto
    command: [$WORKER]
    idle_timeout_s: 2
emerge: {key: path, template: auto, rate: 5, for_s: 1}
categories:
  - name: solo
    pool: solo
    rules:
      - path: /solo
EOF
LOG=$TMP_DIR/triage.log
triage_run_checked "$CONFIG" "$LOG" "$PORT" "triage starts with pools light and solo" || exit 1
wait_workers "$PORT" solo 1 || true
check_eq "GET /solo is served by pool solo" solo "$(curl_pool "$PORT" /solo)"

# The next start of solo's command fails after fork, before the worker runs.
printf '#!/nonexistent/interpreter\n' >"$WRAPPER"
VICTIM=$(pool_pids_of "$PORT" solo)
kill -KILL "$VICTIM"
wait_gone "$VICTIM" 2 || true
for ((i = 0; i < 30; i++)); do
	grep -q "pool 'solo': worker 0 failed while executing the command" "$LOG" && break
	sleep 0.1
done
check_contains "log: the restart of solo's worker fails" \
	"pool 'solo': worker 0 failed while executing the command" "$(cat "$LOG")"
# curl gives up after 2 s: the connection waits in solo's queue meanwhile.
PROBE=$(in_cli curl -sS -m 2 -o /dev/null -w '%header{x-triage-pool}' \
	"http://$SRV_IP:$PORT/solo" 2>/dev/null || echo "waited")
note "GET /solo while solo has no worker: '$PROBE'"
check_eq "GET /solo while solo's restart fails waits in pool solo" waited "$PROBE"

# A queued request, then a command that works again.
in_cli curl -sS -m 20 -o /dev/null -w '%header{x-triage-pool}' \
	"http://$SRV_IP:$PORT/solo" >"$TMP_DIR/queued" 2>/dev/null &
QUEUED=$!
defer stop_pid "$QUEUED"
sleep 0.3
printf '#!/bin/sh\nexec %s "$@"\n' "$WORKER" >"$WRAPPER"
if wait "$QUEUED"; then
	check_eq "the request queued during the failed restarts is served by pool solo" solo \
		"$(cat "$TMP_DIR/queued")"
else
	not_ok "the request queued during the failed restarts is served by pool solo" \
		"curl failed; log ends with:"
	show_file "$LOG"
fi
check_eq "GET /solo after the repair is served by pool solo" solo "$(curl_pool "$PORT" /solo)"

# Part 3 runs on the same controller: 20 new connections a second to a
# 70-byte first segment for 3 s.
for ((i = 0; i < 60; i++)); do
	in_cli curl -s -o /dev/null -m 2 -H 'Connection: close' "http://$SRV_IP:$PORT/$LONG/x"
	sleep 0.05
done
sleep 0.5
check_eq "no pool emerges for a first path segment of 70 bytes" 0 \
	"$(pools_json "$PORT" | jq '[.pools[] | select(.emerged)] | length')"
check_not_contains "log: no emerging category for the long segment" "emerging category" \
	"$(cat "$LOG")"

triage_stop TERM
check_eq "triage exits 0 on SIGTERM" 0 "$TRIAGE_STATUS"
check_nothing_left_scaled "$PORT" "$SYNCOOKIES" "$MIGRATE_REQ" "after part 1"

# Part 2: an sk_lookup service exits while attached.

WWW=$TMP_DIR/www
mkdir -p "$WWW"
echo python >"$WWW/light"
# nsenter execs python, so $! is the server's pid.
nsenter --net="/run/netns/$SRV_NS" "$PYTHON" -m http.server --bind "$SRV_IP" \
	--directory "$WWW" "$SVC_PORT" >"$TMP_DIR/http.out" 2>&1 &
SERVER=$!
defer stop_pid "$SERVER"
for ((i = 0; i < 50; i++)); do
	in_srv ss -Htln "sport = :$SVC_PORT" | grep -q LISTEN && break
	sleep 0.1
done
ACONFIG=$TMP_DIR/attach.yaml
cat >"$ACONFIG" <<EOF
port: $SVC_PORT
tick_ms: 200
default_pool: service
pools:
  - name: service
  - name: special
    command: [$WORKER]
categories:
  - name: vip
    pool: special
    rules:
      - client: 10.232.96.200/32
EOF
defer triage_cleanup "$SVC_PORT"
attach_start "$TMP_DIR/attach.log" --port "$SVC_PORT" --pid "$SERVER" --config "$ACONFIG"
if triage_wait_running; then
	ok "triage attaches to http.server through sk_lookup"
else
	not_ok "triage attaches to http.server through sk_lookup" "its log ends with:"
	show_file "$TMP_DIR/attach.log"
	exit 1
fi
wait_workers "$SVC_PORT" special 1 || true
check_eq "before the exit: http.server serves the client" python \
	"$(in_cli curl -sS -m 5 "http://$SRV_IP:$SVC_PORT/light" 2>&1)"
stop_pid "$SERVER"
for ((i = 0; i < 30; i++)); do
	grep -q "exited and no other process has its listening sockets open" "$TMP_DIR/attach.log" &&
		break
	sleep 0.1
done
check_contains "log: the controller notices that the service exited" \
	"exited and no other process has its listening sockets open" "$(cat "$TMP_DIR/attach.log")"
for ((i = 1; i <= 3; i++)); do
	check_eq "after the exit: request $i is served by pool special" special \
		"$(curl_pool "$SVC_PORT" /light)"
done
triage_stop TERM
check_nothing_left_scaled "$SVC_PORT" "$SYNCOOKIES" "$MIGRATE_REQ" "after part 2"

# Part 4: nginx closes one of its listeners while attached.

NGX=$TMP_DIR/nginx
nginx_conf "$NGX" "$NGX_PORT" 2 "nobody nogroup"
nsenter --net="/run/netns/$SRV_NS" nginx -c "$NGX/nginx.conf" -p "$NGX" -e "$NGX/error.log" \
	2>"$TMP_DIR/nginx.out" &
NGINX=$!
defer stop_pid "$NGINX"
for ((i = 0; i < 50; i++)); do
	[ "$(in_srv ss -Htln "sport = :$NGX_PORT" | wc -l)" -ge 2 ] && break
	sleep 0.1
done
check_eq "nginx listens with 2 reuseport sockets" 2 \
	"$(in_srv ss -Htln "sport = :$NGX_PORT" | wc -l)"
NCONFIG=$TMP_DIR/nginx-attach.yaml
cat >"$NCONFIG" <<EOF3
port: $NGX_PORT
tick_ms: 200
default_pool: service
pools:
  - name: service
  - name: heavy
    command: [$WORKER]
categories:
  - name: heavy
    pool: heavy
    rules:
      - path: /cpu
EOF3
defer triage_cleanup "$NGX_PORT"
attach_start "$TMP_DIR/nginx-attach.log" --port "$NGX_PORT" --pid "$NGINX" --config "$NCONFIG"
if triage_wait_running; then
	ok "triage attaches to nginx's reuseport group"
else
	not_ok "triage attaches to nginx's reuseport group" "its log ends with:"
	show_file "$TMP_DIR/nginx-attach.log"
	exit 1
fi
nginx_conf "$NGX" "$NGX_PORT" 1 "nobody nogroup"
kill -HUP "$NGINX"
for ((i = 0; i < 50; i++)); do
	grep -q "closed its listener" "$TMP_DIR/nginx-attach.log" && break
	sleep 0.1
done
check_contains "log: the controller notices the listener that nginx closed" \
	"closed its listener" "$(cat "$TMP_DIR/nginx-attach.log")"
waited=0
for ((i = 0; i < 20; i++)); do
	in_cli curl -s -m 2 -o /dev/null -H 'Connection: close' \
		"http://$SRV_IP:$NGX_PORT/light" || waited=$((waited + 1))
done
check_eq "after nginx's reload: no request of 20 waits on the closed listener" 0 "$waited"
check_eq "after nginx's reload: /cpu still goes to pool heavy" heavy "$(curl_pool "$NGX_PORT" /cpu)"
capture in_srv "$TRIAGE" detach --port "$NGX_PORT"
check_eq "triage detach exits 0" 0 "$STATUS"
triage_stop TERM || true
check_eq "after the detach: nginx serves /cpu itself" nginx \
	"$(in_cli curl -sS -m 5 "http://$SRV_IP:$NGX_PORT/cpu" 2>&1)"
check_nothing_left_scaled "$NGX_PORT" "$SYNCOOKIES" "$MIGRATE_REQ" "after part 4"
