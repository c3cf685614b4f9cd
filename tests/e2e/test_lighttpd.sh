#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# A pool that runs Debian's lighttpd unchanged through socket activation:
# a /static rule routes to it, it serves a file from its docroot with the
# header that mod_setenv adds, and it listens only on the inherited socket.

# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init

PORT=18086
LIGHTTPD=$(command -v lighttpd || true)
if [ -z "$LIGHTTPD" ]; then
	skip "lighttpd pool" "lighttpd is not installed; apt-get install lighttpd"
	exit 0
fi

netns_setup lighttpd 6
DOCROOT=$TMP_DIR/docroot
mkdir -p "$DOCROOT/static"
CONTENT="lighttpd test file $$"
echo "$CONTENT" >"$DOCROOT/static/x.txt"

# server.bind and server.port match the inherited socket, so lighttpd uses
# that socket and opens none of its own.
LIGHTTPD_CONF=$TMP_DIR/lighttpd.conf
cat >"$LIGHTTPD_CONF" <<EOF
server.document-root = "$DOCROOT"
server.bind = "0.0.0.0"
server.port = $PORT
server.systemd-socket-activation = "enable"
server.modules += ("mod_setenv")
setenv.add-response-header = ("X-Triage-Pool" => "static")
mimetype.assign = (".txt" => "text/plain")
EOF
capture "$LIGHTTPD" -tt -f "$LIGHTTPD_CONF"
check_eq "lighttpd accepts its config" 0 "$STATUS"

CONFIG=$TMP_DIR/lighttpd.yaml
cat >"$CONFIG" <<EOF
port: $PORT
default_pool: light
pools:
  - name: light
    command: [$WORKER]
  - name: static
    command: [$LIGHTTPD, -D, -f, $LIGHTTPD_CONF]
categories:
  - name: static
    pool: static
    rules:
      - path: /static
EOF

triage_run_checked "$CONFIG" "$TMP_DIR/triage.log" "$PORT" "triage starts lighttpd" || exit 1

HEADERS=$TMP_DIR/headers
BODY=$(in_cli curl -sS -m 5 -D "$HEADERS" "http://$SRV_IP:$PORT/static/x.txt" 2>&1) || true
check_eq "GET /static/x.txt: body is the file" "$CONTENT" "$BODY"
check_contains "GET /static/x.txt: status 200" " 200 " "$(head -n 1 "$HEADERS" 2>&1)"
check_contains "GET /static/x.txt: X-Triage-Pool from mod_setenv" "X-Triage-Pool: static" \
	"$(cat "$HEADERS" 2>&1)"
check_contains "GET /static/x.txt: served by lighttpd" "Server: lighttpd" "$(cat "$HEADERS" 2>&1)"
check_eq "GET /light still reaches the demo worker" light "$(curl_pool "$PORT" /light)"

# lighttpd's listening sockets: exactly one, the one it inherited as fd 3.
LPID=$(head -n 1 "$CG_ROOT/$PORT/static/cgroup.procs" 2>/dev/null || true)
check_eq "lighttpd runs in the static pool's cgroup" lighttpd "$(cat "/proc/$LPID/comm" 2>&1)"
INHERITED=$(readlink "/proc/$LPID/fd/3" | sed -n 's/^socket:\[\([0-9]*\)\]$/\1/p' || true)
LISTENING=$(in_srv ss -Hltnpe | grep "pid=$LPID," || true)
note "lighttpd listening sockets: $LISTENING"
check_eq "lighttpd has one listening socket" 1 "$(grep -c . <<<"$LISTENING")"
check_contains "lighttpd listens on 0.0.0.0:$PORT" "0.0.0.0:$PORT " "$LISTENING"
check_contains "lighttpd listens on the inherited fd 3 (inode ${INHERITED:-none})" \
	"ino:${INHERITED:-none} " "$LISTENING"

triage_stop TERM
check_eq "triage exits 0 on SIGTERM" 0 "$TRIAGE_STATUS"
check_eq "lighttpd stopped with triage" no "$(proc_running "$LPID" && echo yes || echo no)"
