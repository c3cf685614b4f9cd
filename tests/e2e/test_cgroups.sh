#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Pool cgroups: every worker sits in its pool's cgroup on v2 and in each v1
# hierarchy that contains one of its limits, and the cgroup files contain the
# configured limits. Runs on the host as it is, then again after
# 'scripts/testhost.sh prepare' has moved the idle v1 controllers to v2.

# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init

PORT=18082
# Use the last CPU, so the limit differs from the parent's full set.
CPU=$(($(nproc) - 1))

netns_setup cgroups 2
SYNCOOKIES=$(srv_sysctl net.ipv4.tcp_syncookies)
CONFIG=$TMP_DIR/cgroups.yaml
cat >"$CONFIG" <<EOF
port: $PORT
default_pool: light
pools:
  - name: light
    command: [$WORKER]
    limits:
      pids_max: 100
  - name: capped
    command: [$WORKER]
    workers: 2
    limits:
      cpus: 0.5
      cpu_weight: 50
      cpuset: "$CPU"
      memory_max: 256M
      memory_high: 200M
      pids_max: 64
categories:
  - name: capped
    pool: capped
    rules:
      - path: /capped
EOF

# Prints the cgroup path of PID in the hierarchy of CONTROLLER ("" for v2)
# from /proc/PID/cgroup, whose lines read ID:CONTROLLERS:PATH.
proc_cgroup() {
	awk -F: -v c="$1" '{
		if (c == "" && $1 == "0" && $2 == "") { print $3; exit }
		n = split($2, list, ",")
		for (i = 1; i <= n; i++)
			if (c != "" && list[i] == c) { print $3; exit }
	}' "/proc/$2/cgroup"
}

# Prints the folder of POOL in the hierarchy of v2 controller CONTROLLER.
pool_dir() {
	local controller=$1 pool=$2 rel

	rel=$(port_cgroup_rel "$PORT")/$pool
	if on_v2 "$controller"; then
		echo "$V2_MOUNT$rel"
	else
		echo "$(v1_mount "$controller")$rel"
	fi
}

# Checks that FILE of POOL in CONTROLLER's hierarchy reads EXPECTED.
check_limit() {
	local context=$1 controller=$2 pool=$3 file=$4 expected=$5 dir

	dir=$(pool_dir "$controller" "$pool")
	check_eq "$context: pool $pool: ${dir#/sys/fs/cgroup/}/$file is $expected" "$expected" \
		"$(cat "$dir/$file" 2>&1)"
}

# Checks where each worker of POOL is: its v2 line and its line for every
# controller of CONTROLLERS that lives on cgroup v1.
check_membership() {
	local context=$1 pool=$2 count=$3 controllers=$4 rel pids pid c

	rel=$(port_cgroup_rel "$PORT")/$pool
	pids=$(paste -sd ' ' "$CG_ROOT/$PORT/$pool/cgroup.procs" 2>/dev/null || true)
	check_eq "$context: pool $pool: $count workers in its v2 cgroup.procs" "$count" \
		"$(wc -w <<<"$pids")"
	for pid in $pids; do
		check_eq "$context: pool $pool: pid $pid in v2" "$rel" "$(proc_cgroup "" "$pid")"
		for c in $controllers; do
			on_v2 "$c" && continue
			check_eq "$context: pool $pool: pid $pid in v1 $c" "$rel" "$(proc_cgroup "$c" "$pid")"
			check_contains "$context: pool $pool: pid $pid in the v1 $c cgroup.procs" \
				" $pid " " $(paste -sd ' ' "$(pool_dir "$c" "$pool")/cgroup.procs" 2>&1) "
		done
	done
}

# Checks that the X-Worker-Pid of ten requests routed to POOL is a PID in its cgroup.
check_served_from() {
	local context=$1 pool=$2 path=$3 i pid procs wrong=""

	procs=$CG_ROOT/$PORT/$pool/cgroup.procs
	for ((i = 0; i < 10; i++)); do
		pid=$(curl_worker_pid "$PORT" "$path")
		grep -qx -- "$pid" "$procs" 2>/dev/null || wrong="$wrong '$pid'"
	done
	if [ -z "$wrong" ]; then
		ok "$context: pool $pool: X-Worker-Pid of 10 requests is in its cgroup"
	else
		not_ok "$context: pool $pool: X-Worker-Pid of 10 requests is in its cgroup" \
			"not in $procs ($(paste -sd ' ' "$procs" 2>/dev/null)):$wrong"
	fi
}

# Starts triage, checks memberships and limits, and stops it again.
check_cgroups() {
	local context=$1 pid

	note "$context: v2 controllers: $(cat "$V2_MOUNT/cgroup.controllers")"
	triage_up "$CONFIG" "$TMP_DIR/$context.log" "$context: triage starts" || return 1
	wait_workers "$PORT" capped 2 || true

	check_membership "$context" light 1 "pids"
	check_membership "$context" capped 2 "cpu cpuset memory pids"
	check_served_from "$context" light /light
	check_served_from "$context" capped /capped

	if on_v2 cpu; then
		check_limit "$context" cpu capped cpu.max "50000 100000"
		check_limit "$context" cpu capped cpu.weight 50
	else
		check_limit "$context" cpu capped cpu.cfs_quota_us 50000
		check_limit "$context" cpu capped cpu.cfs_period_us 100000
		# cpu_weight 100 maps to the default 1024 shares, so 50 maps to 512.
		check_limit "$context" cpu capped cpu.shares 512
	fi
	if on_v2 memory; then
		check_limit "$context" memory capped memory.max 268435456
		check_limit "$context" memory capped memory.high 209715200
	else
		check_limit "$context" memory capped memory.limit_in_bytes 268435456
		check_limit "$context" memory capped memory.soft_limit_in_bytes 209715200
	fi
	check_limit "$context" pids capped pids.max 64
	check_limit "$context" pids light pids.max 100
	check_limit "$context" cpuset capped cpuset.cpus "$CPU"
	while read -r pid; do
		check_eq "$context: pool capped: pid $pid may run on CPU $CPU only" "$CPU" \
			"$(awk '$1 == "Cpus_allowed_list:" { print $2 }' "/proc/$pid/status")"
	done <"$CG_ROOT/$PORT/capped/cgroup.procs"

	triage_stop TERM
	check_eq "$context: triage exits 0 on SIGTERM" 0 "$TRIAGE_STATUS"
	check_nothing_left "$PORT" "$SYNCOOKIES" "$context"
}

defer triage_cleanup "$PORT"
check_cgroups "host as booted"

# Again with the idle v1 controllers moved to cgroup v2. restore runs in
# every case, and the cgroup mounts must be the same afterwards. restore
# mounts a hierarchy again at the end of /proc/mounts, so lines are compared
# as sorted sets.
MOUNTS_BEFORE=$(awk '$3 ~ /^cgroup/' /proc/mounts | sort)
HOST_STATE=$TMP_DIR/testhost.state
restore_host() {
	# The pool cgroups must be gone before the controllers can move back to v1.
	triage_cleanup "$PORT"
	"$REPO/scripts/testhost.sh" restore "$HOST_STATE" 2>&1 | note_lines
	check_eq "testhost.sh restore: cgroup lines of /proc/mounts as before" "$MOUNTS_BEFORE" \
		"$(awk '$3 ~ /^cgroup/' /proc/mounts | sort)"
}
defer restore_host
capture "$REPO/scripts/testhost.sh" prepare "$HOST_STATE"
note_lines <<<"$OUT"
if [ "$STATUS" -eq 0 ]; then
	check_cgroups "after testhost.sh prepare"
else
	REASON=$(grep -m 1 'failed' <<<"$OUT" || tail -n 1 <<<"$OUT")
	skip "cgroup checks after testhost.sh prepare" \
		"prepare exited with status $STATUS: ${REASON#testhost: }"
fi
