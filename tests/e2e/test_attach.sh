#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Attach to nginx with SO_REUSEPORT: nginx (master and 2 workers, all as
# user nobody, so its sockets belong to nobody) serves the port, triage
# attaches to its reuseport group while a client sends requests without
# pause, routes /light to a pool of triage-worker, moves nginx into the
# service pool's cgroup, and detaches again. No request may fail.

# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/attach_lib.sh
. "$(dirname "$0")/attach_lib.sh"
e2e_init

PORT=18100
NOBODY_UID=$(id -u nobody)

netns_setup attach 100
SYNCOOKIES=$(srv_sysctl net.ipv4.tcp_syncookies)
MIGRATE=$(srv_sysctl net.ipv4.tcp_migrate_req)

# nginx runs as nobody from its own folder: config, pid file, logs, temp paths.
NGX=$TMP_DIR/nginx
nginx_conf "$NGX" "$PORT" 2
chown nobody "$NGX"

service_cgroup
# The shell joins the test's cgroup, then execs nsenter and nginx, so $! is nginx's master.
bash -c 'echo $$ >"$1/cgroup.procs"; shift; exec "$@"' _ "$SVC_CG" \
	nsenter --net="/run/netns/$SRV_NS" setpriv --reuid=nobody --regid=nogroup --clear-groups \
	nginx -c "$NGX/nginx.conf" -p "$NGX" -e "$NGX/error.log" 2>"$TMP_DIR/nginx.out" &
NGINX=$!
defer stop_pid "$NGINX"
for ((i = 0; i < 50; i++)); do
	[ "$(proc_tree "$NGINX" | wc -l)" -ge 3 ] && break
	sleep 0.1
done
NGINX_PROCS=$(proc_tree "$NGINX" | sort -n | paste -sd ' ' -)
check_eq "nginx runs a master and 2 workers" 3 "$(wc -w <<<"$NGINX_PROCS")"
check_eq "nginx serves /light before the attach" "nginx" \
	"$(in_cli curl -sS -m 5 "http://$SRV_IP:$PORT/light" 2>&1)"
SVC_REL=$(cgroup_of "$NGINX")

CONFIG=$TMP_DIR/attach.yaml
cat >"$CONFIG" <<EOF
port: $PORT
default_pool: service
pools:
  - name: service
  - name: static
    command: [$WORKER]
    workers: 2
categories:
  - name: light
    pool: static
    rules:
      - path: /light
EOF

client_start "$SRV_IP" "$PORT" /light /other
client_wait_requests 20 || true
T_ATTACH=$(now)
defer triage_cleanup "$PORT"
attach_start "$TMP_DIR/triage.log" --port "$PORT" --pid "$NGINX" --move-to-pool --config "$CONFIG"
if triage_wait_running; then
	ok "triage attach to nginx starts"
else
	not_ok "triage attach to nginx starts" "its log ends with:"
	show_file "$TRIAGE_LOG"
	exit 1
fi
T_ATTACHED=$(now)
wait_workers "$PORT" static 2 || true

STATUS=$(status_json "$PORT")
check_eq "status: steering is attached" attached "$(json_get 0/steering <<<"$STATUS")"
check_eq "status: service pid is nginx's master" "$NGINX" "$(json_get 0/service/pid <<<"$STATUS")"
check_contains "status: service command is nginx's" "nginx" \
	"$(json_get 0/service/command <<<"$STATUS")"
check_eq "status: mechanism is the reuseport group" reuseport \
	"$(json_get 0/service/mechanism <<<"$STATUS")"
check_eq "status: pool service has nginx's 2 sockets" 2 \
	"$(json_get 0/pools/name=service/workers <<<"$STATUS")"
TEXT=$("$TRIAGE" status --port "$PORT")
check_contains "status text names the service and mechanism" \
	"attached to service pid $NGINX" "$TEXT"
check_eq "tcp_migrate_req is 1 while attached" 1 "$(srv_sysctl net.ipv4.tcp_migrate_req)"

# Every listener on the port, nginx's and triage's, is one group of user nobody.
UIDS=$(in_srv ss -Htlne "sport = :$PORT" | grep -o 'uid:[0-9]*' | sort | uniq -c |
	awk '{ print $1, $2 }')
check_eq "4 listeners on the port, all of uid nobody" "4 uid:$NOBODY_UID" "$UIDS"

MOVED=""
EXPECTED=""
for pid in $NGINX_PROCS; do
	MOVED="$MOVED $(cgroup_of "$pid")"
	EXPECTED="$EXPECTED $(port_cgroup_rel "$PORT")/service"
done
check_eq "nginx's processes are in the service pool's cgroup" "$EXPECTED" "$MOVED"

client_wait_requests 200 || true
T_DETACH=$(now)
capture in_srv "$TRIAGE" detach --port "$PORT"
check_eq "triage detach exits 0" 0 "$STATUS"
T_DETACHED=$(now)
triage_stop
check_eq "the attached controller exits 0" 0 "$TRIAGE_STATUS"
client_wait_requests 100 || true
client_stop

check_no_failures "no request failed before, during or after the attach"
check_ge "before the attach: nginx served /light" 5 \
	"$(count_requests 0 "$T_ATTACH" '*' /light nginx)"
check_eq "before the attach: no pool served /light" 0 \
	"$(count_requests 0 "$T_ATTACH" '*' /light '!nginx')"
check_ge "while attached: pool static served /light" 50 \
	"$(count_requests "$T_ATTACHED" "$T_DETACH" '*' /light pool:static)"
check_eq "while attached: only pool static served /light" 0 \
	"$(count_requests "$T_ATTACHED" "$T_DETACH" '*' /light '!pool:static')"
check_eq "while attached: nginx served every /other" 0 \
	"$(count_requests "$T_ATTACHED" "$T_DETACH" '*' /other '!nginx')"
check_ge "after the detach: nginx served /light" 20 \
	"$(count_requests "$T_DETACHED" 9999999999 '*' /light nginx)"
check_eq "after the detach: no pool served /light" 0 \
	"$(count_requests "$T_DETACHED" 9999999999 '*' /light '!nginx')"

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
check_eq "after the detach: tcp_migrate_req is $MIGRATE again" "$MIGRATE" \
	"$(srv_sysctl net.ipv4.tcp_migrate_req)"
check_eq "nginx serves /light after the detach" "nginx" \
	"$(in_cli curl -sS -m 5 "http://$SRV_IP:$PORT/light" 2>&1)"
