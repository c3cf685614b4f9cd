#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Start-up errors: each gives a message that names the object or value and
# the documented exit status, and leaves nothing behind: no pins, record,
# cgroups or tc filters, and tcp_syncookies unchanged.

# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init

PORT=18084
# A run that should fail but starts is stopped after this many seconds.
RUN_LIMIT_S=30

netns_setup errors 4
defer triage_cleanup "$PORT"
SYNCOOKIES=$(srv_sysctl net.ipv4.tcp_syncookies)

# Writes a config with one pool; extra top-level YAML comes from stdin.
write_config() {
	local file=$1 command=$2 limits=$3

	{
		cat <<EOF
port: $PORT
default_pool: light
pools:
  - name: light
    command: [$command]
EOF
		[ -z "$limits" ] || printf '    limits:\n      %s\n' "$limits"
		cat
	} >"$file"
}

# Runs 'triage run' in the server namespace, optionally behind a wrapper
# such as setpriv. Stores its exit status in STATUS and its error messages in
# ERRORS: the "error:" lines of the log and the "triage: " lines printed
# before logging starts. Info lines also name cgroups and files, so checks
# that read ERRORS cannot pass on them by chance.
run_triage() {
	local config=$1
	shift

	capture timeout -k 5 "$RUN_LIMIT_S" nsenter --net="/run/netns/$SRV_NS" \
		"$@" "$TRIAGE" run --config "$config"
	ERRORS=$(grep -E '^triage: | error: ' <<<"$OUT" || true)
	note "exit status $STATUS; errors: $(paste -sd '|' - <<<"$ERRORS")"
}

GOOD=$TMP_DIR/good.yaml
write_config "$GOOD" "$WORKER" "" </dev/null

# Not root: the config is valid, so the root check is what fails.
run_triage "$GOOD" setpriv --reuid=nobody --regid=nogroup --clear-groups
check_eq "not root: exit status" 1 "$STATUS"
check_contains "not root: message says root" "must run as root" "$ERRORS"
check_nothing_left "$PORT" "$SYNCOOKIES" "not root"

# Root without capabilities: the bounding set is empty, so exec drops every capability.
run_triage "$GOOD" setpriv --inh-caps=-all --bounding-set=-all
check_eq "root without capabilities: exit status" 1 "$STATUS"
check_contains "root without capabilities: message says BPF is not permitted" \
	"loading BPF programs not permitted" "$ERRORS"
check_nothing_left "$PORT" "$SYNCOOKIES" "root without capabilities"

# The port is held by a socket without SO_REUSEPORT: first a listener, then
# a socket that is only bound.
for kind in listening bound; do
	READY=$TMP_DIR/holder-$kind.ready
	# Not through in_srv: $! must be the PID of python3 itself, which nsenter execs.
	nsenter --net="/run/netns/$SRV_NS" python3 -c '
import socket, sys, time
sock = socket.socket()
sock.bind(("0.0.0.0", int(sys.argv[1])))
if sys.argv[2] == "listening":
    sock.listen()
open(sys.argv[3], "w").close()
time.sleep(60)
' "$PORT" "$kind" "$READY" &
	HOLDER=$!
	defer stop_pid "$HOLDER"
	for ((i = 0; i < 50; i++)); do
		[ ! -e "$READY" ] || break
		sleep 0.1
	done
	run_triage "$GOOD"
	check_eq "port held by a $kind socket: exit status" 1 "$STATUS"
	check_contains "port held by a $kind socket: message names the port" "port $PORT" "$ERRORS"
	if [ "$kind" = listening ]; then
		check_contains "port held by a listening socket: message says it listens" \
			"already listens" "$ERRORS"
	else
		check_contains "port held by a bound socket: message says in use" "in use" "$ERRORS"
	fi
	check_nothing_left "$PORT" "$SYNCOOKIES" "port held by a $kind socket"
	stop_pid "$HOLDER"
done

# A worker command that does not exist.
MISSING=$TMP_DIR/missing.yaml
write_config "$MISSING" /nonexistent/te2e-worker "" </dev/null
run_triage "$MISSING"
check_eq "missing worker binary: exit status" 1 "$STATUS"
check_contains "missing worker binary: message names the pool" "pool 'light'" "$ERRORS"
check_contains "missing worker binary: message names the command" \
	"/nonexistent/te2e-worker" "$ERRORS"
check_nothing_left "$PORT" "$SYNCOOKIES" "missing worker binary"

# A category that names a pool the config does not define.
UNKNOWN=$TMP_DIR/unknown-pool.yaml
write_config "$UNKNOWN" "$WORKER" "" <<'EOF'
categories:
  - name: cpu
    pool: nosuch
    rules:
      - path: /cpu
EOF
LINE=$(grep -n 'pool: nosuch' "$UNKNOWN" | cut -d: -f1)
capture "$TRIAGE" check --config "$UNKNOWN"
check_eq "unknown pool: 'check' exit status" 2 "$STATUS"
check_contains "unknown pool: 'check' message has file:line" "$UNKNOWN:$LINE:" "$OUT"
check_contains "unknown pool: 'check' message names the pool" "nosuch" "$OUT"
run_triage "$UNKNOWN"
check_eq "unknown pool: 'run' exit status" 2 "$STATUS"
check_contains "unknown pool: 'run' message has file:line" "$UNKNOWN:$LINE:" "$ERRORS"
check_nothing_left "$PORT" "$SYNCOOKIES" "unknown pool"

# Invalid YAML: an unclosed flow sequence.
BROKEN=$TMP_DIR/broken.yaml
printf 'port: %s\ndefault_pool: light\npools: [\n' "$PORT" >"$BROKEN"
capture "$TRIAGE" check --config "$BROKEN"
check_eq "invalid YAML: 'check' exit status" 2 "$STATUS"
check_contains "invalid YAML: 'check' message says invalid YAML" "invalid YAML" "$OUT"
check_contains "invalid YAML: 'check' message names the file" "$BROKEN" "$OUT"
run_triage "$BROKEN"
check_eq "invalid YAML: 'run' exit status" 2 "$STATUS"
check_contains "invalid YAML: 'run' message says invalid YAML" "invalid YAML" "$ERRORS"
check_nothing_left "$PORT" "$SYNCOOKIES" "invalid YAML"

# io_weight works where io is on cgroup v2 and fails on a v1 blkio hierarchy
# without blkio.weight, as on hosts without the BFQ scheduler.
IO=$TMP_DIR/io-weight.yaml
write_config "$IO" "$WORKER" "io_weight: 50" </dev/null
BLKIO=$(v1_mount blkio)
if on_v2 io; then
	note "io is on cgroup v2 here, so io_weight should work"
	if triage_up "$IO" "$TMP_DIR/io.log" "io_weight on cgroup v2: triage starts"; then
		check_eq "io_weight on cgroup v2: io.weight" "default 50" \
			"$(cat "$CG_ROOT/$PORT/light/io.weight" 2>&1)"
	fi
	triage_stop TERM || true
	check_nothing_left "$PORT" "$SYNCOOKIES" "io_weight on cgroup v2"
elif [ -n "$BLKIO" ] && [ -e "$BLKIO/blkio.weight" ]; then
	skip "io_weight on cgroup v1" "$BLKIO has blkio.weight, so io_weight can be applied here"
else
	note "io is the v1 blkio hierarchy at ${BLKIO:-(none)} without blkio.weight"
	run_triage "$IO"
	check_eq "io_weight on v1 blkio: exit status" 1 "$STATUS"
	check_contains "io_weight on v1 blkio: message names blkio" "blkio" "$ERRORS"
	check_contains "io_weight on v1 blkio: message names the pool" "pool 'light'" "$ERRORS"
	check_contains "io_weight on v1 blkio: message names io_weight" "io_weight" "$ERRORS"
	check_nothing_left "$PORT" "$SYNCOOKIES" "io_weight on v1 blkio"
fi
