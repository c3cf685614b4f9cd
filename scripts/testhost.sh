#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Moves idle cgroup v1 controllers to cgroup v2 for tests, and back.
#
#   scripts/testhost.sh prepare STATEFILE
#   scripts/testhost.sh restore STATEFILE
#
# prepare unmounts each cgroup v1 hierarchy of cpu, cpuacct, cpuset, blkio
# and pids that has no child cgroups. When the last mount of an empty v1
# hierarchy goes, the kernel frees it and its controllers become available
# in the v2 root's cgroup.controllers. Mounts co-mounted with any other
# controller (memory, devices, freezer, name=...) are left alone.
# STATEFILE records each mount before it is unmounted, and the v2 root's
# cgroup.subtree_control, so that restore can undo a partial prepare.
#
# restore disables the moved controllers in the v2 root again, mounts each
# recorded hierarchy back with its options and checks /proc/mounts. It is
# safe to run twice. NOTE: a remounted hierarchy is a new one: its
# hierarchy number in /proc/cgroups changes and its line moves to the end
# of /proc/mounts, while the line itself is the same as before.
set -eu

ALLOWED="cpu cpuacct cpuset blkio pids"
# Mount options that are not controller names.
GENERIC="rw ro relatime noatime strictatime nodiratime nosuid nodev noexec
clone_children xattr noprefix"
# Seconds that restore retries a mount that fails while the kernel still frees v2 groups.
MOUNT_WAIT=5

say() {
	echo "testhost: $*"
}

die() {
	echo "testhost: $*" >&2
	exit 1
}

usage() {
	echo "usage: $0 prepare|restore STATEFILE" >&2
	exit 2
}

v2_mount() {
	awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts
}

# Prints the controller names in a v1 mount's option list, one a line.
controllers_of() {
	echo "$1" | tr ',' '\n' | while read -r opt; do
		has_word "$GENERIC" "$opt" && continue
		case "$opt" in
		release_agent=*) continue ;;
		esac
		echo "$opt"
	done
}

# Prints the cgroup v2 name of a v1 controller, or nothing when v2 has none.
v2_name() {
	case "$1" in
	blkio) echo io ;;
	cpuacct) ;;
	*) echo "$1" ;;
	esac
}

has_word() {
	case " $(echo "$1" | tr '\n' ' ') " in
	*" $2 "*) return 0 ;;
	esac
	return 1
}

# Succeeds when POINT is a cgroup v1 mount point with options OPTS in /proc/mounts.
is_mounted() {
	awk -v p="$1" -v o="$2" '$3 == "cgroup" && $2 == p && $4 == o { f = 1 } END { exit !f }' \
		/proc/mounts
}

# Returns 0 when the mount at POINT with options OPTS may be unmounted; prints why not otherwise.
check_candidate() {
	point=$1 opts=$2
	ctrls=$(controllers_of "$opts" | paste -sd ' ' -)
	wanted="" others=""
	for c in $ctrls; do
		if has_word "$ALLOWED" "$c"; then
			wanted="$wanted $c"
		else
			others="$others $c"
		fi
	done
	if [ -z "$wanted" ]; then
		say "left alone: $point ($ctrls) is not one of: $ALLOWED"
		return 1
	fi
	if [ -n "$others" ]; then
		say "left alone: $point holds$wanted together with$others"
		return 1
	fi
	case "$point" in
	*\\*)
		say "left alone: $point has escaped characters in its name"
		return 1
		;;
	esac
	copies=$(awk -v o="$opts" '$3 == "cgroup" && $4 == o' /proc/mounts | wc -l)
	if [ "$copies" -ne 1 ]; then
		say "left alone: $point ($opts) is mounted $copies times, so unmounting one would not free it"
		return 1
	fi
	child=$(find "$point" -mindepth 1 -maxdepth 1 -type d | head -n 1)
	if [ -n "$child" ]; then
		say "left alone: $point has child cgroups, such as $child"
		return 1
	fi
	return 0
}

prepare() {
	state=$1
	[ ! -e "$state" ] || die "$state exists; run '$0 restore $state' first"
	v2=$(v2_mount)
	[ -n "$v2" ] || die "no cgroup2 mount in /proc/mounts; mount one before running prepare"
	before=$(cat "$v2/cgroup.controllers")
	{
		echo "# written by $0 prepare; read by $0 restore"
		echo "v2 $v2"
		echo "subtree $(cat "$v2/cgroup.subtree_control")"
	} >"$state"
	say "recorded $v2/cgroup.subtree_control: '$(cat "$v2/cgroup.subtree_control")'"

	mounts=$(awk '$3 == "cgroup" { print $2, $4 }' /proc/mounts)
	moved="" busy=""
	while read -r point opts; do
		check_candidate "$point" "$opts" || continue
		# Recorded first, so a failed or interrupted prepare can still be restored.
		echo "mount $point $opts" >>"$state"
		say "umount $point ($opts)"
		if ! msg=$(umount "$point" 2>&1); then
			say "left alone: umount $point failed: $msg"
			say "a process may keep files open in $point (fuser -vm $point lists them)"
			grep -vxF "mount $point $opts" "$state" >"$state.tmp" || true
			mv "$state.tmp" "$state"
			busy="$busy $point"
			continue
		fi
		moved="$moved $(controllers_of "$opts" | tr '\n' ' ')"
	done <<EOF
$mounts
EOF

	if [ -n "$busy" ]; then
		say "prepare is incomplete: umount failed for$busy; run '$0 restore $state' to undo the rest"
		[ -z "$moved" ] || wait_for_v2 "$v2" "$before" "$moved"
		return 1
	fi
	if [ -z "$moved" ]; then
		say "no v1 hierarchy was unmounted"
		return 0
	fi
	wait_for_v2 "$v2" "$before" "$moved"
}

# Waits until the moved controllers show up in the v2 root's cgroup.controllers and prints them.
wait_for_v2() {
	v2=$1 before=$2 moved=$3
	# The kernel frees an unmounted hierarchy asynchronously.
	tries=0
	while :; do
		now=$(cat "$v2/cgroup.controllers")
		missing=""
		for c in $moved; do
			n=$(v2_name "$c")
			[ -z "$n" ] || has_word "$now" "$n" || missing="$missing $n"
		done
		if [ -z "$missing" ] || [ "$tries" -ge 25 ]; then
			break
		fi
		tries=$((tries + 1))
		sleep 0.2
	done
	gained=""
	for c in $now; do
		has_word "$before" "$c" || gained="$gained $c"
	done
	say "cgroup v2 controllers now: '$now' (newly available:${gained:- none})"
	[ -z "$missing" ] ||
		say "warning: still not on cgroup v2:$missing; another mount namespace may still mount the hierarchy"
}

# Makes the v2 root's subtree_control list the recorded controllers again,
# as far as the controllers that prepare moved are concerned.
restore_subtree() {
	v2=$1 original=$2 moved=$3
	file="$v2/cgroup.subtree_control"
	now=$(cat "$file")
	for c in $moved; do
		n=$(v2_name "$c")
		if [ -z "$n" ] || ! has_word "$now" "$n" || has_word "$original" "$n"; then
			continue
		fi
		say "echo -$n > $file"
		echo "-$n" >"$file" || say "disabling $n in $file failed; a child cgroup still enables it"
	done
	for n in $original; do
		has_word "$(cat "$file")" "$n" && continue
		say "echo +$n > $file"
		echo "+$n" >"$file" || say "enabling $n in $file failed"
	done
	now=$(cat "$file")
	[ "$now" = "$original" ] ||
		say "note: $file is '$now', recorded '$original'; controllers that prepare did not move are left as they are"
}

# Prints the v2 cgroups below the root that enable v2 controller NAME for their children.
v2_users() {
	find "$1" -mindepth 2 -name cgroup.subtree_control 2>/dev/null | while read -r f; do
		has_word "$(cat "$f" 2>/dev/null)" "$2" && dirname "$f"
	done
	return 0
}

remount() {
	point=$1 opts=$2
	if is_mounted "$point" "$opts"; then
		say "already mounted: $point ($opts)"
		return 0
	fi
	[ -d "$point" ] || { say "mkdir -p $point"; mkdir -p "$point"; }
	waited=0
	while :; do
		say "mount -t cgroup -o $opts cgroup $point"
		if msg=$(mount -t cgroup -o "$opts" cgroup "$point" 2>&1); then
			break
		fi
		# EBUSY while the kernel still frees the controller's v2 groups.
		if [ "$waited" -ge $((MOUNT_WAIT * 5)) ]; then
			say "mount of $point failed for ${MOUNT_WAIT}s: $msg"
			say "a cgroup v2 group may still use the controller; check the subtree_control files below $v2"
			return 1
		fi
		waited=$((waited + 1))
		sleep 0.2
	done
	if ! is_mounted "$point" "$opts"; then
		say "mounted $point, but /proc/mounts does not show 'cgroup $point cgroup $opts'"
		return 1
	fi
	say "restored $point ($opts)"
}

restore() {
	state=$1
	if [ ! -e "$state" ]; then
		say "$state does not exist; nothing to restore"
		return 0
	fi
	v2=$(awk '$1 == "v2" { print $2 }' "$state")
	original=$(awk '$1 == "subtree" { $1 = ""; sub(/^ /, ""); print }' "$state")
	moved=$(awk '$1 == "mount" { print $3 }' "$state" | while read -r opts; do
		controllers_of "$opts"
	done | tr '\n' ' ')
	[ -n "$v2" ] || die "$state has no 'v2' line; it was not written by prepare"

	failed=0
	blocked=""
	for c in $moved; do
		n=$(v2_name "$c")
		[ -n "$n" ] || continue
		users=$(v2_users "$v2" "$n")
		if [ -n "$users" ]; then
			say "cannot move $c back to v1: these cgroups enable $n: $(echo "$users" | tr '\n' ' ')"
			say "remove those cgroups or disable $n in their cgroup.subtree_control, then run restore again"
			blocked="$blocked $c"
			failed=1
		fi
	done
	restore_subtree "$v2" "$original" "$moved"

	while read -r kind point opts; do
		[ "$kind" = mount ] || continue
		skip=0
		for c in $(controllers_of "$opts"); do
			has_word "$blocked" "$c" && skip=1
		done
		if [ "$skip" -eq 1 ]; then
			say "skipped: $point ($opts), because v2 cgroups still use its controller"
			continue
		fi
		remount "$point" "$opts" || failed=1
	done <"$state"

	if [ "$failed" -ne 0 ]; then
		say "restore is incomplete; $state is kept so that restore can run again"
		return 1
	fi
	rm -f "$state"
	say "every recorded mount is back; removed $state"
}

[ $# -eq 2 ] || usage
[ "$(id -u)" -eq 0 ] || die "run as root: prepare and restore mount and unmount cgroup hierarchies"
case "$1" in
prepare) prepare "$2" ;;
restore) restore "$2" ;;
*) usage ;;
esac
