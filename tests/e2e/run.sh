#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Runs the end-to-end tests as root: every tests/e2e/test_*.sh, or the ones
# named on the command line (such as "steering" or "test_steering.sh").
# Prints each check as "ok - ...", "not ok - ..." or "skip - ... (reason)"
# and ends with "e2e: N passed, N failed, N skipped". Exits 1 if any check
# failed or a test file stopped early.
set -euo pipefail

E2E_DIR=$(cd "$(dirname "$0")" && pwd)
# Per test file; together the files must stay well under 10 minutes.
FILE_LIMIT_S=${E2E_FILE_LIMIT_S:-180}

if [ "$(id -u)" -ne 0 ]; then
	echo "e2e: the end-to-end tests need root (they create network namespaces, cgroups and BPF pins)" >&2
	exit 1
fi

tests=()
if [ $# -eq 0 ]; then
	tests=("$E2E_DIR"/test_*.sh)
else
	for name in "$@"; do
		name=${name%.sh}
		tests+=("$E2E_DIR/test_${name#test_}.sh")
	done
fi

passed=0
failed=0
skipped=0
out=$(mktemp /tmp/te2e-run.XXXXXX)
trap 'rm -f "$out"' EXIT

for test in "${tests[@]}"; do
	if [ ! -x "$test" ]; then
		echo "not ok - $(basename "$test") is missing or not executable"
		failed=$((failed + 1))
		continue
	fi
	echo "# $(basename "$test")"
	start=$SECONDS
	status=0
	# --foreground keeps the test in the terminal's process group, and the
	# test's TERM trap runs its cleanup when the limit is reached.
	timeout --foreground -k 30 "$FILE_LIMIT_S" "$test" 2>&1 | tee "$out" || status=$?
	p=$(grep -c '^ok - ' "$out" || true)
	f=$(grep -c '^not ok - ' "$out" || true)
	s=$(grep -c '^skip - ' "$out" || true)
	if [ "$status" -eq 124 ]; then
		echo "not ok - $(basename "$test") finished within ${FILE_LIMIT_S}s"
		f=$((f + 1))
	elif [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "not ok - $(basename "$test") exited with status $status without a failed check"
		f=$((f + 1))
	fi
	echo "# $(basename "$test"): $p passed, $f failed, $s skipped in $((SECONDS - start))s"
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))
done

echo "e2e: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
