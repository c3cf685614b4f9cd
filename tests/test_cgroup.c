// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Pool cgroups on the running host. Each test uses its own cgroup root,
 * <v2 mount>/triage-test-<pid>, and the same name below each v1 mount.
 * Expected files and values follow where each controller lives, on cgroup
 * v1 or v2. A file lock keeps two tests from changing the v2 root at once.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"

#define MIB		(1024LL * 1024)
#define LOCK_FILE	"/tmp/triage-test-cgroup.lock"
#define MAX_GROUPS	4

static struct cg_layout lay;
static char root_name[64];		/* "triage-test-<pid>" */
static char root[CG_MOUNT_LEN + 64];	/* v2 mount + "/" + root_name */
static char root_subtree[512];		/* the v2 root's cgroup.subtree_control before the test */
static struct cg_group groups[MAX_GROUPS];
static pid_t child;
static char err[1024];

static int read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f)
		return -errno;
	n = fread(buf, 1, len - 1, f);
	fclose(f);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		n--;
	buf[n] = '\0';
	return 0;
}

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static void read_root_subtree(char *buf, size_t len)
{
	char path[CG_MOUNT_LEN + 32];

	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", lay.v2_mount);
	cr_assert_eq(read_line(path, buf, len), 0, "reading %s", path);
}

static void setup(void)
{
	int fd;

	if (geteuid() != 0)
		return;
	/* Held until the test process exits, which releases it. */
	fd = open(LOCK_FILE, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "opening %s: %s", LOCK_FILE, strerror(errno));
	cr_assert_eq(flock(fd, LOCK_EX), 0, "locking %s", LOCK_FILE);

	cr_assert_eq(cgroup_detect(&lay, err, sizeof(err)), 0, "%s", err);
	cr_assert_neq(lay.v2_mount[0], '\0', "no cgroup2 mount on this host");
	snprintf(root_name, sizeof(root_name), "triage-test-%d", (int)getpid());
	snprintf(root, sizeof(root), "%s/%s", lay.v2_mount, root_name);
	read_root_subtree(root_subtree, sizeof(root_subtree));
}

/* Stops the child and removes every group, so a failed assert leaves nothing behind. */
static void teardown(void)
{
	char path[CG_MOUNT_LEN + 128];
	int i, c;

	if (geteuid() != 0)
		return;
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		child = 0;
	}
	for (i = 0; i < MAX_GROUPS; i++)
		cgroup_remove(&groups[i], err, sizeof(err));
	cgroup_release_layout(err, sizeof(err));
	/* Only this test's own root: the name contains this process's pid. */
	rmdir(root);
	for (c = 0; c < CG_NR_CTRL; c++) {
		if (!lay.v1_mount[c][0])
			continue;
		snprintf(path, sizeof(path), "%s/%s", lay.v1_mount[c], root_name);
		rmdir(path);
	}
}

TestSuite(cgroup, .init = setup, .fini = teardown);

#define NEED_ROOT()							\
	do {								\
		if (geteuid() != 0)					\
			cr_skip_test("creating cgroups needs root");	\
	} while (0)

static bool on_v1(enum cg_ctrl c)
{
	return !lay.v2_has[c] && lay.v1_mount[c][0];
}

/* Finds a whole disk for io_max, preferring one that is not a loop or zram device. */
static bool find_disk(char *dev, size_t len)
{
	static const char *const names[] = { "vda", "sda", "nvme0n1", "xvda", "loop0" };
	char path[64];
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "/sys/block/%s/dev", names[i]);
		if (!read_line(path, dev, len))
			return true;
	}
	return false;
}

/* Returns true when io is on v2 with the io cost model, whose root file is io.cost.qos. */
static bool io_weight_supported(void)
{
	char path[CG_MOUNT_LEN + 32];

	snprintf(path, sizeof(path), "%s/io.cost.qos", lay.v2_mount);
	return lay.v2_has[CG_IO] && exists(path);
}

static struct pool_limits no_limits(void)
{
	struct pool_limits l = { .memory_max = -1, .memory_high = -1, .pids_max = -1 };

	return l;
}

/* Every limit this host can apply; io_weight only where io.weight exists. */
static struct pool_limits all_limits(char *dev, size_t len)
{
	struct pool_limits l = no_limits();

	l.has_cpus = true;
	l.cpus = 0.5;
	l.cpu_weight = 200;
	snprintf(l.cpuset, sizeof(l.cpuset), "0");
	l.memory_max = 256 * MIB + 100;
	l.memory_high = 192 * MIB;
	l.pids_max = 64;
	if (io_weight_supported())
		l.io_weight = 300;
	if (find_disk(dev, len))
		snprintf(l.io_max, sizeof(l.io_max), "%s rbps=1048576 wiops=500", dev);
	return l;
}

static void assert_file(enum cg_ctrl c, const char *file, const char *want)
{
	char got[256];
	int rc = cgroup_read_file(&groups[0], c, file, got, sizeof(got));

	cr_assert_eq(rc, 0, "reading %s of %s: %s", file, cgroup_ctrl_name(c), strerror(-rc));
	cr_expect_str_eq(got, want, "%s of %s", file, cgroup_ctrl_name(c));
}

/* Checks that nothing of ROOT_NAME is left and the v2 root is as before. */
static void assert_all_removed(void)
{
	char path[CG_MOUNT_LEN + 128], now[512];
	int c;

	cr_expect_not(exists(root), "%s still exists", root);
	for (c = 0; c < CG_NR_CTRL; c++) {
		if (!lay.v1_mount[c][0])
			continue;
		snprintf(path, sizeof(path), "%s/%s", lay.v1_mount[c], root_name);
		cr_expect_not(exists(path), "%s still exists", path);
	}
	read_root_subtree(now, sizeof(now));
	cr_expect_str_eq(now, root_subtree, "subtree_control of the v2 root changed");
}

static void create_group(int i, const char *rel, const struct pool_limits *l)
{
	int rc = cgroup_create(&lay, root, rel, l, &groups[i], err, sizeof(err));

	cr_assert_eq(rc, 0, "cgroup_create(%s): %s", rel, err);
}

Test(cgroup, describe_names_mount)
{
	char line[1024];

	NEED_ROOT();
	cgroup_describe(&lay, line, sizeof(line));
	cr_expect(strstr(line, lay.v2_mount) != NULL, "%s", line);
	cr_expect(strncmp(line, "cgroup v2 at ", 13) == 0, "%s", line);
}

Test(cgroup, paths_follow_layout)
{
	struct pool_limits l;
	char dev[32], want[CG_PATH_LEN];
	int c;

	NEED_ROOT();
	l = all_limits(dev, sizeof(dev));
	create_group(0, "8080/light", &l);
	snprintf(want, sizeof(want), "%s/8080/light", root);
	cr_expect_str_eq(groups[0].v2, want);
	cr_expect(groups[0].created_v2);
	for (c = 0; c < CG_NR_CTRL; c++) {
		if (on_v1(c))
			snprintf(want, sizeof(want), "%s/%s/8080/light", lay.v1_mount[c], root_name);
		else
			want[0] = '\0';
		cr_expect_str_eq(groups[0].v1[c], want, "v1 folder of %s", cgroup_ctrl_name(c));
	}
}

Test(cgroup, cpu_limits)
{
	struct pool_limits l;
	char dev[32];

	NEED_ROOT();
	l = all_limits(dev, sizeof(dev));
	create_group(0, "8080/light", &l);
	if (on_v1(CG_CPU)) {
		assert_file(CG_CPU, "cpu.cfs_period_us", "100000");
		assert_file(CG_CPU, "cpu.max", "50000");
		assert_file(CG_CPU, "cpu.weight", "2048");
	} else {
		assert_file(CG_CPU, "cpu.max", "50000 100000");
		assert_file(CG_CPU, "cpu.weight", "200");
	}
}

Test(cgroup, cpuset_limits)
{
	struct pool_limits l;
	char dev[32];

	char path[CG_MOUNT_LEN + 32], mems[256];

	NEED_ROOT();
	l = all_limits(dev, sizeof(dev));
	create_group(0, "8080/light", &l);
	assert_file(CG_CPUSET, "cpuset.cpus", "0");
	/* The pool gets every memory node of the top cpuset. */
	if (on_v1(CG_CPUSET))
		snprintf(path, sizeof(path), "%s/cpuset.mems", lay.v1_mount[CG_CPUSET]);
	else
		snprintf(path, sizeof(path), "%s/cpuset.mems.effective", lay.v2_mount);
	cr_assert_eq(read_line(path, mems, sizeof(mems)), 0, "reading %s", path);
	assert_file(CG_CPUSET, "cpuset.mems", mems);
}

Test(cgroup, memory_limits)
{
	struct pool_limits l;
	char dev[32];

	NEED_ROOT();
	l = all_limits(dev, sizeof(dev));
	create_group(0, "8080/light", &l);
	/* 256 MiB + 100 bytes is rounded down to whole pages. */
	assert_file(CG_MEMORY, "memory.max", "268435456");
	assert_file(CG_MEMORY, "memory.high", "201326592");
	if (on_v1(CG_MEMORY))
		cr_expect(strstr(groups[0].notes, "memory.soft_limit_in_bytes") != NULL,
			  "notes: %s", groups[0].notes);
}

Test(cgroup, io_limits)
{
	struct pool_limits l;
	char dev[32], want[128];

	NEED_ROOT();
	l = all_limits(dev, sizeof(dev));
	if (!l.io_max[0])
		cr_skip_test("no disk in /sys/block for io_max");
	create_group(0, "8080/light", &l);
	if (on_v1(CG_IO)) {
		snprintf(want, sizeof(want), "%s 1048576", dev);
		assert_file(CG_IO, "blkio.throttle.read_bps_device", want);
		snprintf(want, sizeof(want), "%s 500", dev);
		assert_file(CG_IO, "blkio.throttle.write_iops_device", want);
		return;
	}
	snprintf(want, sizeof(want), "%s rbps=1048576 wbps=max riops=max wiops=500", dev);
	assert_file(CG_IO, "io.max", want);
	if (l.io_weight)
		assert_file(CG_IO, "io.weight", "default 300");
}

Test(cgroup, pids_limit)
{
	struct pool_limits l;
	char dev[32];

	NEED_ROOT();
	l = all_limits(dev, sizeof(dev));
	create_group(0, "8080/light", &l);
	assert_file(CG_PIDS, "pids.max", "64");
}

/* Returns PID's path in the hierarchy whose controller list contains NAME ("" = v2). */
static bool proc_cgroup(pid_t pid, const char *name, char *path, size_t len)
{
	char file[64], line[1024], *ctrls, *rest;
	bool found = false;
	FILE *f;

	snprintf(file, sizeof(file), "/proc/%d/cgroup", (int)pid);
	f = fopen(file, "re");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		ctrls = strchr(line, ':');
		rest = ctrls ? strchr(ctrls + 1, ':') : NULL;
		if (!rest)
			continue;
		*rest++ = '\0';
		ctrls++;
		if (name[0] ? !strstr(ctrls, name) : ctrls[0] != '\0')
			continue;
		snprintf(path, len, "%s", rest);
		found = true;
	}
	fclose(f);
	return found;
}

static void assert_in_group(pid_t pid, const struct cg_group *grp)
{
	static const char *const v1_names[CG_NR_CTRL] = { "cpu", "cpuset", "memory", "blkio", "pids" };
	char path[CG_PATH_LEN];
	int c;

	cr_assert(proc_cgroup(pid, "", path, sizeof(path)), "no v2 line for pid %d", (int)pid);
	cr_expect_str_eq(path, grp->v2 + strlen(lay.v2_mount), "v2 cgroup of pid %d", (int)pid);
	for (c = 0; c < CG_NR_CTRL; c++) {
		if (!grp->v1[c][0])
			continue;
		cr_assert(proc_cgroup(pid, v1_names[c], path, sizeof(path)), "no %s line", v1_names[c]);
		cr_expect_str_eq(path, grp->v1[c] + strlen(lay.v1_mount[c]), "%s cgroup", v1_names[c]);
	}
}

/* Starts "sleep 30"; with SELF the child enters GRP itself between fork() and exec(). */
static pid_t start_sleeper(const struct cg_group *grp, bool self)
{
	int fds[2], rc = 0;
	pid_t pid;

	cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
	pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		if (self)
			rc = cgroup_enter(grp, 0);
		if (write(fds[1], &rc, sizeof(rc)) != sizeof(rc) || rc)
			_exit(1);
		execlp("sleep", "sleep", "30", (char *)NULL);
		_exit(127);
	}
	child = pid;
	close(fds[1]);
	cr_assert_eq(read(fds[0], &rc, sizeof(rc)), (ssize_t)sizeof(rc));
	close(fds[0]);
	cr_assert_eq(rc, 0, "cgroup_enter in the child: %s", strerror(-rc));
	return pid;
}

static void stop_child(void)
{
	cr_assert_eq(kill(child, SIGKILL), 0);
	cr_assert_eq(waitpid(child, NULL, 0), child);
	child = 0;
}

Test(cgroup, enter_self_in_child)
{
	struct pool_limits l;
	char dev[32];
	pid_t pid;

	NEED_ROOT();
	l = all_limits(dev, sizeof(dev));
	create_group(0, "8080/light", &l);
	pid = start_sleeper(&groups[0], true);
	assert_in_group(pid, &groups[0]);
	stop_child();
	cr_assert_eq(cgroup_remove(&groups[0], err, sizeof(err)), 0, "%s", err);
	assert_all_removed();
}

Test(cgroup, enter_by_pid)
{
	struct pool_limits l;
	char dev[32];
	pid_t pid;
	int rc;

	NEED_ROOT();
	l = all_limits(dev, sizeof(dev));
	create_group(0, "8080/light", &l);
	pid = start_sleeper(&groups[0], false);
	rc = cgroup_enter(&groups[0], pid);
	cr_assert_eq(rc, 0, "cgroup_enter: %s", strerror(-rc));
	assert_in_group(pid, &groups[0]);
	stop_child();
	cr_assert_eq(cgroup_remove(&groups[0], err, sizeof(err)), 0, "%s", err);
	assert_all_removed();
}

Test(cgroup, remove_busy)
{
	struct pool_limits l;
	char dev[32], pid_text[16];
	pid_t pid;

	NEED_ROOT();
	l = all_limits(dev, sizeof(dev));
	create_group(0, "8080/light", &l);
	pid = start_sleeper(&groups[0], true);
	cr_assert_eq(cgroup_remove(&groups[0], err, sizeof(err)), -EBUSY);
	snprintf(pid_text, sizeof(pid_text), "%d", (int)pid);
	cr_expect(strstr(err, pid_text) != NULL, "%s", err);
	cr_expect(exists(groups[0].v2), "%s was removed while busy", groups[0].v2);
	stop_child();
	cr_assert_eq(cgroup_remove(&groups[0], err, sizeof(err)), 0, "%s", err);
	assert_all_removed();
}

Test(cgroup, remove_twice)
{
	struct pool_limits l = no_limits();

	NEED_ROOT();
	create_group(0, "8080/light", &l);
	cr_assert_eq(cgroup_remove(&groups[0], err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(cgroup_remove(&groups[0], err, sizeof(err)), 0, "%s", err);
	assert_all_removed();
}

Test(cgroup, shared_parent_kept)
{
	struct pool_limits l;
	char dev[32], port[CG_MOUNT_LEN + 80];

	NEED_ROOT();
	l = all_limits(dev, sizeof(dev));
	create_group(0, "8080/light", &l);
	create_group(1, "8080/heavy", &l);
	cr_assert_eq(cgroup_remove(&groups[0], err, sizeof(err)), 0, "%s", err);
	snprintf(port, sizeof(port), "%s/8080", root);
	cr_expect(exists(port), "%s removed while another pool uses it", port);
	cr_expect(exists(groups[1].v2));
	cr_assert_eq(cgroup_remove(&groups[1], err, sizeof(err)), 0, "%s", err);
	assert_all_removed();
}

Test(cgroup, existing_root_kept)
{
	struct pool_limits l = no_limits();

	NEED_ROOT();
	cr_assert_eq(mkdir(root, 0755), 0, "mkdir %s: %s", root, strerror(errno));
	create_group(0, "8080/light", &l);
	cr_assert_eq(cgroup_remove(&groups[0], err, sizeof(err)), 0, "%s", err);
	cr_expect(exists(root), "%s was removed but the test created it", root);
	cr_assert_eq(rmdir(root), 0);
	assert_all_removed();
}

Test(cgroup, existing_leaf_rejected)
{
	struct pool_limits l = no_limits();
	int rc;

	NEED_ROOT();
	create_group(0, "8080/light", &l);
	rc = cgroup_create(&lay, root, "8080/light", &l, &groups[1], err, sizeof(err));
	cr_expect_eq(rc, -EEXIST);
	cr_expect(strstr(err, "already exists") != NULL, "%s", err);
	cr_expect(exists(groups[0].v2));
}

Test(cgroup, bad_rel_rejected)
{
	struct pool_limits l = no_limits();
	int rc;

	NEED_ROOT();
	rc = cgroup_create(&lay, root, "8080/../x", &l, &groups[0], err, sizeof(err));
	cr_expect_eq(rc, -EINVAL);
	cr_expect(strstr(err, "'..'") != NULL, "%s", err);
	assert_all_removed();
}

Test(cgroup, bad_cpuset_cleaned)
{
	struct pool_limits l;
	char dev[32];
	int rc;

	NEED_ROOT();
	l = all_limits(dev, sizeof(dev));
	/* Above the largest NR_CPUS of any kernel config, so every kernel rejects it. */
	snprintf(l.cpuset, sizeof(l.cpuset), "65535");
	rc = cgroup_create(&lay, root, "8080/light", &l, &groups[0], err, sizeof(err));
	cr_expect_lt(rc, 0);
	cr_expect(strstr(err, "cpuset.cpus") != NULL, "%s", err);
	cr_expect(strstr(err, "65535") != NULL, "%s", err);
	assert_all_removed();
}

Test(cgroup, io_weight_on_blkio)
{
	struct pool_limits l = no_limits();
	char weight[CG_MOUNT_LEN + 32], bfq[CG_MOUNT_LEN + 32];
	int rc;

	NEED_ROOT();
	snprintf(weight, sizeof(weight), "%s/blkio.weight", lay.v1_mount[CG_IO]);
	snprintf(bfq, sizeof(bfq), "%s/blkio.bfq.weight", lay.v1_mount[CG_IO]);
	if (!on_v1(CG_IO) || exists(weight) || exists(bfq))
		cr_skip_test("io is not on a cgroup v1 blkio hierarchy without weight files");
	l.io_weight = 100;
	rc = cgroup_create(&lay, root, "8080/light", &l, &groups[0], err, sizeof(err));
	cr_expect_eq(rc, -EOPNOTSUPP);
	cr_expect(strstr(err, "blkio") != NULL, "%s", err);
	cr_expect(strstr(err, "io_max") != NULL, "%s", err);
	assert_all_removed();
}

Test(cgroup, missing_controller)
{
	struct pool_limits l = no_limits();
	struct cg_layout bare = lay;
	int rc;

	NEED_ROOT();
	bare.v2_has[CG_PIDS] = false;
	bare.v1_mount[CG_PIDS][0] = '\0';
	l.pids_max = 10;
	rc = cgroup_create(&bare, root, "8080/light", &l, &groups[0], err, sizeof(err));
	cr_expect_eq(rc, -EOPNOTSUPP);
	cr_expect(strstr(err, "pids controller") != NULL, "%s", err);
	assert_all_removed();
}
