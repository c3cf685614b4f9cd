// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Pool cgroups on cgroup v2, cgroup v1 or both. cgroup.h describes which
 * hierarchy each limit goes to.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"

/* CFS period for the cpus limit on both versions, in microseconds. */
#define CPU_PERIOD_US		100000
/* The kernel rejects a cpu.max or cpu.cfs_quota_us quota below 1 ms. */
#define CPU_MIN_QUOTA_US	1000
/* Largest CPU or memory node number + 1 that readback comparison handles. */
#define CPULIST_BITS		16384
#define CPULIST_WORDS		(CPULIST_BITS / 64)
/* How long rmdir() retries while the kernel still frees an emptied cgroup. */
#define RMDIR_WAIT_MS		1000

static const char *const v2_names[CG_NR_CTRL] = {
	[CG_CPU] = "cpu", [CG_CPUSET] = "cpuset", [CG_MEMORY] = "memory",
	[CG_IO] = "io", [CG_PIDS] = "pids",
};

static const char *const v1_names[CG_NR_CTRL] = {
	[CG_CPU] = "cpu", [CG_CPUSET] = "cpuset", [CG_MEMORY] = "memory",
	[CG_IO] = "blkio", [CG_PIDS] = "pids",
};

/* Folders that this process created above pool groups, newest first. */
struct created_dir {
	struct created_dir *next;
	char path[CG_PATH_LEN];
};

/* A controller enabled in a cgroup that this module did not create. */
struct enabled_ctrl {
	struct enabled_ctrl *next;
	enum cg_ctrl ctrl;
	char dir[CG_PATH_LEN];
};

static struct created_dir *created_dirs;
/* Receives a line per created folder and per enabled controller, for the run's record. */
static void (*recorder)(void *arg, const char *line);
static void *recorder_arg;
/* Newest first, which is deepest first because ancestors are enabled top-down. */
static struct enabled_ctrl *enabled_ctrls;
/* Groups created and not yet removed. Removing the last one undoes enabled_ctrls. */
static int live_groups;

/* Rule for comparing a limit's read-back text with the written text. */
enum cmp_kind {
	CMP_EXACT,
	CMP_BYTES,		/* the kernel rounds down to whole pages */
	CMP_CPULIST,		/* "0-1" and "0,1" are the same set */
	CMP_WEIGHT,		/* "default N" or "N" */
	CMP_DEVLINE,		/* v1 blkio.throttle: "MAJ:MIN VALUE" among other lines */
	CMP_IOMAX,		/* v2 io.max: "MAJ:MIN rbps=.. wbps=.. riops=.. wiops=.." */
};

struct create_ctx {
	const struct cg_layout *lay;
	const struct pool_limits *lim;
	struct cg_group *grp;
	bool need[CG_NR_CTRL];
	bool on_v2[CG_NR_CTRL];
	/* V2_ROOT below the v2 mount, then "/" and REL; the same below each v1 mount. */
	char chain[CG_PATH_LEN];
	char *err;
	size_t len;
};

static int fail(char *err, size_t len, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t len, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && len) {
		va_start(ap, fmt);
		vsnprintf(err, len, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static size_t appendf(char *buf, size_t len, size_t off, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static size_t appendf(char *buf, size_t len, size_t off, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (off >= len)
		return off;
	va_start(ap, fmt);
	n = vsnprintf(buf + off, len - off, fmt, ap);
	va_end(ap);
	if (n < 0)
		return off;
	return off + n < len ? off + n : len - 1;
}

static void note_add(struct cg_group *grp, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void note_add(struct cg_group *grp, const char *fmt, ...)
{
	size_t off = strlen(grp->notes);
	va_list ap;

	if (off)
		off = appendf(grp->notes, sizeof(grp->notes), off, "; ");
	if (off + 1 >= sizeof(grp->notes))
		return;
	va_start(ap, fmt);
	vsnprintf(grp->notes + off, sizeof(grp->notes) - off, fmt, ap);
	va_end(ap);
}

static int join(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static void parent_of(char *dst, size_t len, const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0;

	if (n >= len)
		n = len - 1;
	memcpy(dst, path, n);
	dst[n] = '\0';
}

/* Reads PATH into BUF without trailing white space. Returns 0 or -errno. */
static int read_text(const char *path, char *buf, size_t len)
{
	size_t off = 0;
	ssize_t n;
	int fd, rc;

	if (!len)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (off + 1 < len) {
		n = read(fd, buf + off, len - 1 - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			close(fd);
			return rc;
		}
		if (n == 0)
			break;
		off += n;
	}
	close(fd);
	while (off && isspace((unsigned char)buf[off - 1]))
		off--;
	buf[off] = '\0';
	return 0;
}

/* Writes TEXT in one write(), as cgroup files take one value per write. */
static int write_text(const char *path, const char *text)
{
	size_t n = strlen(text);
	ssize_t done;
	int fd, rc = 0;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	done = write(fd, text, n);
	if (done < 0)
		rc = -errno;
	else if ((size_t)done != n)
		rc = -EIO;
	close(fd);
	return rc;
}

static bool file_exists(const char *dir, const char *name)
{
	char path[CG_PATH_LEN + 64];

	return !join(path, sizeof(path), dir, name) && access(path, F_OK) == 0;
}

/* Returns true when WORD is one of the space-, comma- or newline-separated words of LIST. */
static bool has_word(const char *list, const char *word)
{
	size_t n = strlen(word);
	const char *p = list;

	while ((p = strstr(p, word))) {
		bool starts = p == list || strchr(" ,\n", p[-1]);
		bool ends = p[n] == '\0' || strchr(" ,\n", p[n]);

		if (starts && ends)
			return true;
		p += n;
	}
	return false;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* rmdir() that retries EBUSY, which a cgroup returns until its last task has exited. */
static int rmdir_wait(const char *path)
{
	int waited;

	for (waited = 0; ; waited += 10) {
		if (!rmdir(path))
			return 0;
		if (errno != EBUSY || waited >= RMDIR_WAIT_MS)
			return -errno;
		sleep_ms(10);
	}
}

const char *cgroup_ctrl_name(enum cg_ctrl c)
{
	return c < CG_NR_CTRL ? v2_names[c] : "?";
}

/* ---- Detection ---- */

/* Decodes the \ooo escapes that /proc/self/mountinfo uses for spaces, tabs and backslashes. */
static void unescape_octal(char *s)
{
	char *out = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 4;
		} else {
			*out++ = *s++;
		}
	}
	*out = '\0';
}

/*
 * Records one mountinfo line. A mount of a hierarchy's root folder is
 * preferred over a bind mount of a folder inside it, which containers use.
 */
static void note_mount(struct cg_layout *lay, char *line, bool *v1_at_root, bool *v2_at_root)
{
	char *field[64], *save = NULL, *tok;
	int n = 0, sep = -1, c;
	bool at_root;

	for (tok = strtok_r(line, " \n", &save); tok && n < 64; tok = strtok_r(NULL, " \n", &save)) {
		if (sep < 0 && n >= 6 && !strcmp(tok, "-"))
			sep = n;
		field[n++] = tok;
	}
	if (sep < 0 || n < sep + 4)
		return;
	at_root = !strcmp(field[3], "/");
	unescape_octal(field[4]);
	if (strlen(field[4]) >= CG_MOUNT_LEN)
		return;

	if (!strcmp(field[sep + 1], "cgroup2")) {
		if (!lay->v2_mount[0] || (at_root && !*v2_at_root)) {
			strcpy(lay->v2_mount, field[4]);
			*v2_at_root = at_root;
		}
		return;
	}
	if (strcmp(field[sep + 1], "cgroup"))
		return;
	for (c = 0; c < CG_NR_CTRL; c++) {
		if (!has_word(field[sep + 3], v1_names[c]))
			continue;
		if (!lay->v1_mount[c][0] || (at_root && !v1_at_root[c])) {
			strcpy(lay->v1_mount[c], field[4]);
			v1_at_root[c] = at_root;
		}
	}
}

int cgroup_detect(struct cg_layout *lay, char *err, size_t len)
{
	bool v1_at_root[CG_NR_CTRL] = { false };
	bool v2_at_root = false;
	char line[4096], path[CG_MOUNT_LEN + 32];
	FILE *f;
	int c, rc;

	memset(lay, 0, sizeof(*lay));
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return fail(err, len, -errno,
			    "cgroup: opening /proc/self/mountinfo failed: %s; mount procfs on /proc",
			    strerror(errno));
	while (fgets(line, sizeof(line), f))
		note_mount(lay, line, v1_at_root, &v2_at_root);
	fclose(f);

	if (!lay->v2_mount[0])
		return 0;
	rc = join(path, sizeof(path), lay->v2_mount, "cgroup.controllers");
	if (!rc)
		rc = read_text(path, lay->v2_controllers, sizeof(lay->v2_controllers));
	if (rc)
		return fail(err, len, rc,
			    "cgroup: reading %s/cgroup.controllers failed: %s; check the cgroup2 mount",
			    lay->v2_mount, strerror(-rc));
	for (c = 0; c < CG_NR_CTRL; c++)
		lay->v2_has[c] = has_word(lay->v2_controllers, v2_names[c]);
	return 0;
}

void cgroup_describe(const struct cg_layout *lay, char *buf, size_t len)
{
	const char *sep = "; v1: ";
	size_t off = 0;
	int c;

	if (!len)
		return;
	buf[0] = '\0';
	if (lay->v2_mount[0])
		off = appendf(buf, len, off, "cgroup v2 at %s (%s)", lay->v2_mount,
			      lay->v2_controllers[0] ? lay->v2_controllers : "no controllers");
	else
		off = appendf(buf, len, off, "no cgroup v2 mount");
	for (c = 0; c < CG_NR_CTRL; c++) {
		if (!lay->v1_mount[c][0] || lay->v2_has[c])
			continue;
		off = appendf(buf, len, off, "%s%s at %s", sep, v1_names[c], lay->v1_mount[c]);
		sep = ", ";
	}
	sep = "; not available: ";
	for (c = 0; c < CG_NR_CTRL; c++) {
		if (lay->v1_mount[c][0] || lay->v2_has[c])
			continue;
		off = appendf(buf, len, off, "%s%s", sep, v2_names[c]);
		sep = ", ";
	}
}

/* ---- Folders and controllers this module created or enabled ---- */

void cgroup_set_recorder(void (*fn)(void *arg, const char *line), void *arg)
{
	recorder = fn;
	recorder_arg = arg;
}

static void record(const char *kind, const char *path, const char *ctrl)
{
	char line[CG_PATH_LEN + 64];

	if (!recorder)
		return;
	snprintf(line, sizeof(line), "%s %s%s%s", kind, path, ctrl ? " " : "", ctrl ? ctrl : "");
	recorder(recorder_arg, line);
}

static bool dir_created(const char *path)
{
	struct created_dir *d;

	for (d = created_dirs; d; d = d->next)
		if (!strcmp(d->path, path))
			return true;
	return false;
}

static int dir_remember(const char *path)
{
	struct created_dir *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	snprintf(d->path, sizeof(d->path), "%s", path);
	d->next = created_dirs;
	created_dirs = d;
	return 0;
}

static void dir_forget(const char *path)
{
	struct created_dir **pp, *d;

	for (pp = &created_dirs; (d = *pp); pp = &d->next) {
		if (!strcmp(d->path, path)) {
			*pp = d->next;
			free(d);
			return;
		}
	}
}

/*
 * Removes the folders above LEAF that this module created, bottom-up, and
 * stops at the first one that still has children. Folders it did not
 * create are skipped, so a partly built chain is cleaned up as well.
 */
static void prune_parents(const char *leaf)
{
	char dir[CG_PATH_LEN];

	parent_of(dir, sizeof(dir), leaf);
	while (strlen(dir) > 1) {
		if (dir_created(dir)) {
			if (rmdir(dir) && errno != ENOENT)
				return;
			dir_forget(dir);
		}
		parent_of(dir, sizeof(dir), dir);
	}
}

/* Disables the controllers enabled in cgroups that this module did not create. */
static int undo_enabled(char *err, size_t len)
{
	struct enabled_ctrl **pp = &enabled_ctrls, *e;
	char path[CG_PATH_LEN + 32], cmd[32];
	int rc, first = 0;

	while ((e = *pp)) {
		snprintf(cmd, sizeof(cmd), "-%s", v2_names[e->ctrl]);
		rc = join(path, sizeof(path), e->dir, "cgroup.subtree_control");
		if (!rc)
			rc = write_text(path, cmd);
		if (rc && rc != -ENOENT) {
			if (!first)
				first = fail(err, len, rc,
					     "cgroup %s: disabling %s in cgroup.subtree_control failed: %s; a child cgroup still uses it, so remove that child or disable %s there first",
					     e->dir, v2_names[e->ctrl], strerror(-rc), v2_names[e->ctrl]);
			pp = &e->next;
			continue;
		}
		*pp = e->next;
		free(e);
	}
	return first;
}

int cgroup_release_layout(char *err, size_t len)
{
	struct created_dir *d = created_dirs, *next;

	/* Newest first is deepest first, so children go before their parents. */
	for (; d; d = next) {
		next = d->next;
		if (!rmdir(d->path) || errno == ENOENT)
			dir_forget(d->path);
	}
	return undo_enabled(err, len);
}

/* ---- Creation ---- */

static const char *limit_key(const struct pool_limits *lim, enum cg_ctrl c)
{
	switch (c) {
	case CG_CPU:
		return lim->has_cpus ? "cpus" : "cpu_weight";
	case CG_CPUSET:
		return "cpuset";
	case CG_MEMORY:
		return lim->memory_max >= 0 ? "memory_max" : "memory_high";
	case CG_IO:
		return lim->io_weight ? "io_weight" : "io_max";
	default:
		return "pids_max";
	}
}

static bool limit_needs(const struct pool_limits *lim, enum cg_ctrl c)
{
	switch (c) {
	case CG_CPU:
		return lim->has_cpus || lim->cpu_weight;
	case CG_CPUSET:
		return lim->cpuset[0];
	case CG_MEMORY:
		return lim->memory_max >= 0 || lim->memory_high >= 0 || lim->account_memory;
	case CG_IO:
		return lim->io_weight || lim->io_max[0];
	default:
		return lim->pids_max >= 0;
	}
}

/* Checks that REL is a relative path of plain names and fills cx->chain. */
static int build_chain(struct create_ctx *cx, const char *v2_root, const char *rel)
{
	const char *mount = cx->lay->v2_mount, *below, *p, *slash;
	size_t mlen = strlen(mount);
	int n;

	if (!mount[0])
		return fail(cx->err, cx->len, -ENOENT,
			    "cgroup '%s': no cgroup2 mount in /proc/self/mountinfo; mount one, for example with 'mount -t cgroup2 none /sys/fs/cgroup/unified'",
			    rel);
	if (strncmp(v2_root, mount, mlen) || (v2_root[mlen] && v2_root[mlen] != '/'))
		return fail(cx->err, cx->len, -EINVAL,
			    "cgroup '%s': root %s is not below the cgroup2 mount %s; set the cgroup root to a folder below %s",
			    rel, v2_root, mount, mount);
	below = v2_root + mlen;
	while (*below == '/')
		below++;
	n = snprintf(cx->chain, sizeof(cx->chain), "%s%s%s", below, *below ? "/" : "", rel);
	if (n < 0 || (size_t)n >= sizeof(cx->chain) - 64)
		return fail(cx->err, cx->len, -ENAMETOOLONG, "cgroup '%s': path %s/%s is too long",
			    rel, v2_root, rel);
	for (p = cx->chain; ; p = slash + 1) {
		slash = strchr(p, '/');
		n = slash ? (int)(slash - p) : (int)strlen(p);
		if (!n || (n == 1 && p[0] == '.') || (n == 2 && !strncmp(p, "..", 2)))
			return fail(cx->err, cx->len, -EINVAL,
				    "cgroup '%s': path %s has an empty, '.' or '..' part; use plain folder names",
				    rel, cx->chain);
		if (!slash)
			return 0;
	}
}

static int place_controllers(struct create_ctx *cx)
{
	const struct cg_layout *lay = cx->lay;
	int c;

	for (c = 0; c < CG_NR_CTRL; c++) {
		cx->need[c] = limit_needs(cx->lim, c);
		if (!cx->need[c])
			continue;
		if (lay->v2_has[c]) {
			cx->on_v2[c] = true;
			continue;
		}
		if (lay->v1_mount[c][0])
			continue;
		return fail(cx->err, cx->len, -EOPNOTSUPP,
			    "cgroup '%s': %s needs the %s controller, which is neither in %s/cgroup.controllers nor mounted as a cgroup v1 hierarchy; enable the controller in the kernel or remove %s from the pool",
			    cx->grp->rel, limit_key(cx->lim, c), v2_names[c], lay->v2_mount,
			    limit_key(cx->lim, c));
	}
	return 0;
}

/* Copies the parent's CPUs and memory nodes into a new v1 cpuset folder, which starts empty. */
static int copy_cpuset(struct create_ctx *cx, const char *dir)
{
	static const char *const files[] = { "cpuset.cpus", "cpuset.mems" };
	char parent[CG_PATH_LEN], from[CG_PATH_LEN + 32], to[CG_PATH_LEN + 32], val[1024];
	int i, rc;

	parent_of(parent, sizeof(parent), dir);
	for (i = 0; i < 2; i++) {
		rc = join(from, sizeof(from), parent, files[i]);
		if (!rc)
			rc = join(to, sizeof(to), dir, files[i]);
		if (!rc)
			rc = read_text(from, val, sizeof(val));
		if (!rc && val[0])
			rc = write_text(to, val);
		if (rc)
			return fail(cx->err, cx->len, rc,
				    "cgroup '%s': copying %s of %s into %s failed: %s; a cgroup v1 cpuset folder needs CPUs and memory nodes before it can hold processes",
				    cx->grp->rel, files[i], parent, dir, strerror(-rc));
	}
	return 0;
}

/*
 * Creates BASE/cx->chain folder by folder and stores the leaf path in LEAF.
 * Existing folders above the leaf are reused; an existing leaf is an error.
 */
static int make_chain(struct create_ctx *cx, const char *base, bool cpuset_v1, char *leaf,
		      bool *created)
{
	const char *p = cx->chain, *slash;
	char dir[CG_PATH_LEN];
	size_t off = strlen(base), n;
	int rc;

	rc = join(leaf, CG_PATH_LEN, base, cx->chain);
	if (rc)
		return fail(cx->err, cx->len, rc, "cgroup '%s': path %s/%s is too long",
			    cx->grp->rel, base, cx->chain);
	memcpy(dir, base, off + 1);
	for (;;) {
		slash = strchr(p, '/');
		n = slash ? (size_t)(slash - p) : strlen(p);
		dir[off++] = '/';
		memcpy(dir + off, p, n);
		off += n;
		dir[off] = '\0';

		if (mkdir(dir, 0755)) {
			if (errno != EEXIST)
				return fail(cx->err, cx->len, -errno, "cgroup '%s': creating %s failed: %s",
					    cx->grp->rel, dir, strerror(errno));
			if (!slash)
				return fail(cx->err, cx->len, -EEXIST,
					    "cgroup '%s': %s already exists; another triage may use the same cgroup root, or an earlier run left it behind (remove it with rmdir once it has no processes)",
					    cx->grp->rel, dir);
		} else {
			record("cgroup", dir, NULL);
			if (slash)
				rc = dir_remember(dir);
			else
				*created = true;
			if (!rc && cpuset_v1)
				rc = copy_cpuset(cx, dir);
			if (rc == -ENOMEM)
				return fail(cx->err, cx->len, rc, "cgroup '%s': out of memory", cx->grp->rel);
			if (rc)
				return rc;
		}
		if (!slash)
			return 0;
		p = slash + 1;
	}
}

/*
 * Enables controller C in DIR's cgroup.subtree_control. In a folder this
 * module did not create, the change is recorded so that it can be undone.
 * NOTE: this and the v2 branches of the apply_*() functions have not run on
 * a host with cpu, cpuset, io or pids on cgroup v2; only hugetlb was there.
 */
static int enable_in(struct create_ctx *cx, const char *dir, enum cg_ctrl c)
{
	char path[CG_PATH_LEN + 32], list[512], cmd[32];
	struct enabled_ctrl *e;
	bool ours = dir_created(dir);
	int rc;

	rc = join(path, sizeof(path), dir, "cgroup.subtree_control");
	if (!rc)
		rc = read_text(path, list, sizeof(list));
	if (rc)
		return fail(cx->err, cx->len, rc, "cgroup '%s': reading %s failed: %s",
			    cx->grp->rel, path, strerror(-rc));
	if (has_word(list, v2_names[c]))
		return 0;
	if (!ours) {
		rc = join(path, sizeof(path), dir, "cgroup.controllers");
		if (!rc)
			rc = read_text(path, list, sizeof(list));
		if (!rc && !has_word(list, v2_names[c]))
			rc = -ENOENT;
		if (rc)
			return fail(cx->err, cx->len, rc,
				    "cgroup '%s': %s needs the %s controller, but %s/cgroup.controllers does not list it; enable %s in the cgroup.subtree_control of each folder above %s",
				    cx->grp->rel, limit_key(cx->lim, c), v2_names[c], dir, v2_names[c], dir);
		join(path, sizeof(path), dir, "cgroup.subtree_control");
	}

	snprintf(cmd, sizeof(cmd), "+%s", v2_names[c]);
	rc = write_text(path, cmd);
	if (rc == -EBUSY)
		return fail(cx->err, cx->len, rc,
			    "cgroup '%s': enabling %s in %s failed: %s; cgroup v2 enables controllers only in cgroups without processes of their own, so move the processes in %s/cgroup.procs to a child cgroup",
			    cx->grp->rel, v2_names[c], path, strerror(-rc), dir);
	if (rc)
		return fail(cx->err, cx->len, rc,
			    "cgroup '%s': enabling %s in %s failed: %s; check that %s/cgroup.controllers lists %s",
			    cx->grp->rel, v2_names[c], path, strerror(-rc), dir, v2_names[c]);
	if (ours)
		return 0;

	e = calloc(1, sizeof(*e));
	if (!e) {
		cmd[0] = '-';
		write_text(path, cmd);
		return fail(cx->err, cx->len, -ENOMEM, "cgroup '%s': out of memory", cx->grp->rel);
	}
	record("subtree", dir, v2_names[c]);
	e->ctrl = c;
	snprintf(e->dir, sizeof(e->dir), "%s", dir);
	e->next = enabled_ctrls;
	enabled_ctrls = e;
	note_add(cx->grp, "enabled %s in %s", v2_names[c], path);
	return 0;
}

/* Enables each controller used on v2 in every folder from the v2 mount to the leaf's parent. */
static int enable_v2(struct create_ctx *cx)
{
	const char *p = cx->chain, *slash;
	char dir[CG_PATH_LEN];
	size_t off = strlen(cx->lay->v2_mount);
	int c, rc;

	memcpy(dir, cx->lay->v2_mount, off + 1);
	for (;;) {
		for (c = 0; c < CG_NR_CTRL; c++) {
			if (!cx->on_v2[c])
				continue;
			rc = enable_in(cx, dir, c);
			if (rc)
				return rc;
		}
		slash = strchr(p, '/');
		if (!slash)
			return 0;
		dir[off++] = '/';
		memcpy(dir + off, p, slash - p);
		off += slash - p;
		dir[off] = '\0';
		p = slash + 1;
	}
}

static int make_v1_groups(struct create_ctx *cx)
{
	const struct cg_layout *lay = cx->lay;
	struct cg_group *grp = cx->grp;
	int c, other, rc;

	for (c = 0; c < CG_NR_CTRL; c++) {
		if (!cx->need[c] || cx->on_v2[c])
			continue;
		/* Controllers mounted together, such as "cpu,cpuacct", share one folder. */
		for (other = 0; other < c; other++)
			if (grp->v1[other][0] && !strcmp(lay->v1_mount[other], lay->v1_mount[c]))
				break;
		if (other < c) {
			memcpy(grp->v1[c], grp->v1[other], sizeof(grp->v1[c]));
			continue;
		}
		rc = make_chain(cx, lay->v1_mount[c],
				!strcmp(lay->v1_mount[c], lay->v1_mount[CG_CPUSET]),
				grp->v1[c], &grp->created_v1[c]);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- Limits ---- */

static int parse_cpulist(const char *s, uint64_t *bits)
{
	unsigned long a, b, used, group, i;
	char *end;

	memset(bits, 0, CPULIST_WORDS * sizeof(*bits));
	while (*s) {
		if (!isdigit((unsigned char)*s))
			return -EINVAL;
		a = b = strtoul(s, &end, 10);
		used = group = 1;
		if (*end == '-') {
			if (!isdigit((unsigned char)end[1]))
				return -EINVAL;
			b = strtoul(end + 1, &end, 10);
			/* "a-b:used/group" takes USED of every GROUP numbers. */
			if (*end == ':') {
				used = strtoul(end + 1, &end, 10);
				if (*end != '/')
					return -EINVAL;
				group = strtoul(end + 1, &end, 10);
				if (!used || used > group)
					return -EINVAL;
			}
		}
		if (a > b || b >= CPULIST_BITS)
			return -ERANGE;
		for (i = a; i <= b; i++)
			if ((i - a) % group < used)
				bits[i / 64] |= 1ULL << (i % 64);
		s = end;
		if (*s == ',')
			s++;
		else if (*s)
			return -EINVAL;
	}
	return 0;
}

static bool cpulists_equal(const char *want, const char *got)
{
	uint64_t a[CPULIST_WORDS], b[CPULIST_WORDS];

	return !parse_cpulist(want, a) && !parse_cpulist(got, b) && !memcmp(a, b, sizeof(a));
}

/*
 * The kernel stores memory limits in whole pages up to LONG_MAX bytes, and
 * v2 shows that cap as "max".
 */
static bool bytes_equal(const char *want, const char *got)
{
	long long page = sysconf(_SC_PAGESIZE), cap, w, g;
	char *end;

	if (page <= 0)
		page = 4096;
	cap = LONG_MAX / page;
	w = strtoll(want, &end, 10);
	if (*end || w < 0)
		return false;
	w = (w / page < cap ? w / page : cap) * page;
	if (!strcmp(got, "max"))
		return w == cap * page;
	g = strtoll(got, &end, 10);
	return !*end && g == w;
}

static bool weights_equal(const char *want, const char *got)
{
	if (!strncmp(want, "default ", 8))
		want += 8;
	if (!strncmp(got, "default ", 8))
		got += 8;
	return isdigit((unsigned char)*got) && strtoul(want, NULL, 10) == strtoul(got, NULL, 10);
}

/* Returns the line of TEXT that starts with the "MAJ:MIN " of DEVLINE, or NULL. */
static const char *find_dev_line(const char *text, const char *devline)
{
	size_t n = strcspn(devline, " ") + 1;
	const char *p = text;

	while (p && *p) {
		if (!strncmp(p, devline, n))
			return p;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NULL;
}

/* Returns the value of KEY= in the line at LINE as a number, or UINT64_MAX for "max" or none. */
static uint64_t io_value(const char *line, const char *key)
{
	size_t klen = strlen(key);
	const char *p = line;

	while (p && *p && *p != '\n') {
		p += strspn(p, " ");
		if (!strncmp(p, key, klen) && p[klen] == '=')
			return strncmp(p + klen + 1, "max", 3) ?
			       strtoull(p + klen + 1, NULL, 10) : UINT64_MAX;
		p += strcspn(p, " \n");
	}
	return UINT64_MAX;
}

static bool io_max_equal(const char *want, const char *got)
{
	static const char *const keys[] = { "rbps", "wbps", "riops", "wiops" };
	const char *line = find_dev_line(got, want);
	int i;

	for (i = 0; i < 4; i++) {
		uint64_t w = io_value(want, keys[i]);

		/* The kernel omits a device whose four limits are all "max". */
		if (strstr(want, keys[i]) && w != (line ? io_value(line, keys[i]) : UINT64_MAX))
			return false;
	}
	return true;
}

static bool devline_equal(const char *want, const char *got)
{
	const char *line = find_dev_line(got, want);
	const char *want_value = strchr(want, ' ');
	const char *got_value = line ? strchr(line, ' ') : NULL;

	return want_value && got_value &&
	       strtoull(got_value + 1, NULL, 10) == strtoull(want_value + 1, NULL, 10);
}

static bool value_matches(enum cmp_kind cmp, const char *want, const char *got)
{
	switch (cmp) {
	case CMP_BYTES:
		return bytes_equal(want, got);
	case CMP_CPULIST:
		return cpulists_equal(want, got);
	case CMP_WEIGHT:
		return weights_equal(want, got);
	case CMP_DEVLINE:
		return devline_equal(want, got);
	case CMP_IOMAX:
		return io_max_equal(want, got);
	default:
		return !strcmp(want, got);
	}
}

static const char *write_hint(int rc)
{
	switch (rc) {
	case -EINVAL:
	case -ERANGE:
		return "the kernel rejected the value, so check its range and format";
	case -ENOENT:
		return "this kernel does not provide the file";
	case -EACCES:
	case -EPERM:
		return "run as root";
	case -EBUSY:
		return "the cgroup's current usage or its children conflict with the value";
	default:
		return "check the value and the limits of the parent cgroups";
	}
}

/*
 * Writes VALUE to DIR/FILE for the pool limit KEY, reads it back and
 * compares it by the CMP rule. HINT, when not NULL, replaces the generic advice.
 */
static int set_limit(struct create_ctx *cx, const char *dir, const char *key, const char *file,
		     const char *value, enum cmp_kind cmp, const char *hint)
{
	char path[CG_PATH_LEN + 64], got[1024];
	int rc;

	rc = join(path, sizeof(path), dir, file);
	if (rc)
		return fail(cx->err, cx->len, rc, "cgroup '%s': %s: path %s/%s is too long",
			    cx->grp->rel, key, dir, file);
	rc = write_text(path, value);
	if (rc)
		return fail(cx->err, cx->len, rc, "cgroup '%s': %s: writing '%s' to %s failed: %s; %s",
			    cx->grp->rel, key, value, path, strerror(-rc), hint ? hint : write_hint(rc));
	rc = read_text(path, got, sizeof(got));
	if (rc)
		return fail(cx->err, cx->len, rc, "cgroup '%s': %s: reading back %s failed: %s",
			    cx->grp->rel, key, path, strerror(-rc));
	if (!value_matches(cmp, value, got))
		return fail(cx->err, cx->len, -EIO,
			    "cgroup '%s': %s: %s reads '%s' after writing '%s'; the kernel did not keep the value, so check the limits of the parent cgroups",
			    cx->grp->rel, key, path, got, value);
	return 0;
}

static long long cpus_to_quota(double cpus)
{
	double quota = cpus * CPU_PERIOD_US + 0.5;

	if (quota < CPU_MIN_QUOTA_US)
		return CPU_MIN_QUOTA_US;
	return quota > (double)LLONG_MAX ? LLONG_MAX : (long long)quota;
}

static int apply_cpu(struct create_ctx *cx, const char *dir, bool v2)
{
	const struct pool_limits *lim = cx->lim;
	char val[64];
	int rc = 0;

	if (lim->has_cpus) {
		long long quota = cpus_to_quota(lim->cpus);

		if (!(lim->cpus > 0))
			return fail(cx->err, cx->len, -EINVAL,
				    "cgroup '%s': cpus: %g is not a positive number of CPUs; set cpus above 0 or remove it",
				    cx->grp->rel, lim->cpus);
		if (v2) {
			snprintf(val, sizeof(val), "%lld %d", quota, CPU_PERIOD_US);
			rc = set_limit(cx, dir, "cpus", "cpu.max", val, CMP_EXACT, NULL);
		} else {
			snprintf(val, sizeof(val), "%d", CPU_PERIOD_US);
			rc = set_limit(cx, dir, "cpus", "cpu.cfs_period_us", val, CMP_EXACT, NULL);
			snprintf(val, sizeof(val), "%lld", quota);
			if (!rc)
				rc = set_limit(cx, dir, "cpus", "cpu.cfs_quota_us", val, CMP_EXACT, NULL);
		}
		if (rc)
			return rc;
	}
	if (!lim->cpu_weight)
		return 0;
	if (v2) {
		snprintf(val, sizeof(val), "%u", lim->cpu_weight);
		return set_limit(cx, dir, "cpu_weight", "cpu.weight", val, CMP_EXACT, NULL);
	}
	/* cpu.weight 100 matches the default cpu.shares of 1024, and v1 takes at least 2. */
	snprintf(val, sizeof(val), "%llu",
		 (unsigned long long)lim->cpu_weight * 1024 / 100 < 2 ? 2 :
		 (unsigned long long)lim->cpu_weight * 1024 / 100);
	return set_limit(cx, dir, "cpu_weight", "cpu.shares", val, CMP_EXACT, NULL);
}

static int apply_cpuset(struct create_ctx *cx, const char *dir, bool v2)
{
	const char *cpus_file = v2 ? "cpuset.cpus.effective" : "cpuset.cpus";
	const char *mems_file = v2 ? "cpuset.mems.effective" : "cpuset.mems";
	char parent[CG_PATH_LEN], path[CG_PATH_LEN + 32], hint[CG_PATH_LEN + 64], mems[1024];
	int rc;

	parent_of(parent, sizeof(parent), dir);
	snprintf(hint, sizeof(hint), "use CPUs listed in %s/%s", parent, cpus_file);
	rc = set_limit(cx, dir, "cpuset", "cpuset.cpus", cx->lim->cpuset, CMP_CPULIST, hint);
	if (rc)
		return rc;

	/* An empty cpuset.mems would leave a v1 group unable to hold processes. */
	rc = join(path, sizeof(path), dir, "cpuset.mems");
	if (!rc)
		rc = read_text(path, mems, sizeof(mems));
	if (!rc && mems[0])
		return 0;
	if (!rc)
		rc = join(path, sizeof(path), parent, mems_file);
	if (!rc)
		rc = read_text(path, mems, sizeof(mems));
	if (rc)
		return fail(cx->err, cx->len, rc, "cgroup '%s': cpuset: reading %s failed: %s",
			    cx->grp->rel, path, strerror(-rc));
	return set_limit(cx, dir, "cpuset", "cpuset.mems", mems, CMP_CPULIST, NULL);
}

static int apply_memory(struct create_ctx *cx, const char *dir, bool v2)
{
	const struct pool_limits *lim = cx->lim;
	char val[32];
	int rc;

	if (lim->memory_max >= 0) {
		snprintf(val, sizeof(val), "%lld", (long long)lim->memory_max);
		rc = set_limit(cx, dir, "memory_max", v2 ? "memory.max" : "memory.limit_in_bytes",
			       val, CMP_BYTES, NULL);
		if (rc)
			return rc;
	}
	if (lim->memory_high < 0)
		return 0;
	snprintf(val, sizeof(val), "%lld", (long long)lim->memory_high);
	if (v2)
		return set_limit(cx, dir, "memory_high", "memory.high", val, CMP_BYTES, NULL);
	/*
	 * cgroup v1 has no memory.high. The soft limit is the nearest v1 file:
	 * under global memory pressure, reclaim pushes the group back towards
	 * it, but unlike memory.high it never throttles the group's own
	 * allocations.
	 */
	rc = set_limit(cx, dir, "memory_high", "memory.soft_limit_in_bytes", val, CMP_BYTES, NULL);
	if (!rc)
		note_add(cx->grp,
			 "memory_high is applied as memory.soft_limit_in_bytes in %s, because cgroup v1 has no memory.high",
			 dir);
	return rc;
}

static int apply_io_weight(struct create_ctx *cx, const char *dir, bool v2)
{
	const char *file;
	char val[32];

	if (v2) {
		file = file_exists(dir, "io.weight") ? "io.weight" :
		       file_exists(dir, "io.bfq.weight") ? "io.bfq.weight" : NULL;
		if (!file)
			return fail(cx->err, cx->len, -EOPNOTSUPP,
				    "cgroup '%s': io_weight: io.weight needs the io cost model or BFQ, but %s has neither io.weight nor io.bfq.weight; build the kernel with CONFIG_BLK_CGROUP_IOCOST, select the bfq scheduler for the disk, or use io_max instead",
				    cx->grp->rel, dir);
		snprintf(val, sizeof(val), "default %u", cx->lim->io_weight);
		return set_limit(cx, dir, "io_weight", file, val, CMP_WEIGHT, NULL);
	}
	file = file_exists(dir, "blkio.bfq.weight") ? "blkio.bfq.weight" :
	       file_exists(dir, "blkio.weight") ? "blkio.weight" : NULL;
	if (!file)
		return fail(cx->err, cx->len, -EOPNOTSUPP,
			    "cgroup '%s': io_weight: the io controller is the cgroup v1 blkio hierarchy at %s, which has neither blkio.weight nor blkio.bfq.weight (they need the BFQ scheduler); use io_max, or make io available on cgroup v2 by unmounting the blkio hierarchy while it has no child cgroups",
			    cx->grp->rel, cx->lay->v1_mount[CG_IO]);
	/* NOTE: not run on a host with BFQ on cgroup v1; BFQ takes weights 1..1000 there. */
	snprintf(val, sizeof(val), "%u", cx->lim->io_weight);
	return set_limit(cx, dir, "io_weight", file, val, CMP_WEIGHT, NULL);
}

/*
 * Checks that TEXT is "MAJ:MIN KEY=VALUE..." with keys rbps, wbps, riops
 * and wiops, and values that are numbers or "max".
 */
static bool io_max_valid(const char *text)
{
	static const char *const keys[] = { "rbps=", "wbps=", "riops=", "wiops=" };
	const char *p = text;
	int i, nkeys = 0;

	if (!isdigit((unsigned char)*p))
		return false;
	p += strspn(p, "0123456789");
	if (*p++ != ':' || !isdigit((unsigned char)*p))
		return false;
	p += strspn(p, "0123456789");
	while (*p == ' ') {
		p += strspn(p, " ");
		if (!*p)
			break;
		for (i = 0; i < 4 && strncmp(p, keys[i], strlen(keys[i])); i++)
			;
		if (i == 4)
			return false;
		p += strlen(keys[i]);
		if (!strncmp(p, "max", 3))
			p += 3;
		else if (isdigit((unsigned char)*p))
			p += strspn(p, "0123456789");
		else
			return false;
		nkeys++;
	}
	return !*p && nkeys;
}

static int apply_io_max(struct create_ctx *cx, const char *dir, bool v2)
{
	static const char *const keys[] = { "rbps", "wbps", "riops", "wiops" };
	static const char *const v1_files[] = {
		"blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device",
		"blkio.throttle.read_iops_device", "blkio.throttle.write_iops_device",
	};
	const char *io_max = cx->lim->io_max;
	char val[64];
	uint64_t v;
	int i, rc;

	if (!io_max_valid(io_max))
		return fail(cx->err, cx->len, -EINVAL,
			    "cgroup '%s': io_max: '%s' is not 'MAJ:MIN KEY=VALUE...' with keys rbps, wbps, riops, wiops and values that are numbers or max; fix io_max",
			    cx->grp->rel, io_max);
	if (v2)
		return set_limit(cx, dir, "io_max", "io.max", io_max, CMP_IOMAX,
				 "the device must be a whole disk listed in /sys/block");
	for (i = 0; i < 4; i++) {
		if (!strstr(io_max, keys[i]))
			continue;
		v = io_value(io_max, keys[i]);
		/* v1 has no "max" keyword, and a new group starts without limits. */
		if (v == UINT64_MAX)
			continue;
		snprintf(val, sizeof(val), "%.*s %llu", (int)strcspn(io_max, " "), io_max,
			 (unsigned long long)v);
		rc = set_limit(cx, dir, "io_max", v1_files[i], val, CMP_DEVLINE,
			       "the device must be a whole disk listed in /sys/block");
		if (rc)
			return rc;
	}
	return 0;
}

static int apply_pids(struct create_ctx *cx, const char *dir)
{
	char val[32];

	snprintf(val, sizeof(val), "%lld", (long long)cx->lim->pids_max);
	return set_limit(cx, dir, "pids_max", "pids.max", val, CMP_EXACT, NULL);
}

static int apply_limits(struct create_ctx *cx)
{
	const struct pool_limits *lim = cx->lim;
	int c, rc = 0;

	for (c = 0; c < CG_NR_CTRL && !rc; c++) {
		const char *dir = cx->on_v2[c] ? cx->grp->v2 : cx->grp->v1[c];
		bool v2 = cx->on_v2[c];

		if (!cx->need[c])
			continue;
		switch (c) {
		case CG_CPU:
			rc = apply_cpu(cx, dir, v2);
			break;
		case CG_CPUSET:
			rc = apply_cpuset(cx, dir, v2);
			break;
		case CG_MEMORY:
			rc = apply_memory(cx, dir, v2);
			break;
		case CG_IO:
			if (lim->io_weight)
				rc = apply_io_weight(cx, dir, v2);
			if (!rc && lim->io_max[0])
				rc = apply_io_max(cx, dir, v2);
			break;
		default:
			rc = apply_pids(cx, dir);
			break;
		}
	}
	return rc;
}

/* Removes the leaf folders in GRP marked as created, then their new parents. */
static void remove_created(struct cg_group *grp)
{
	int c;

	for (c = 0; c < CG_NR_CTRL; c++) {
		if (grp->created_v1[c] && !rmdir_wait(grp->v1[c]))
			grp->created_v1[c] = false;
		if (grp->v1[c][0])
			prune_parents(grp->v1[c]);
	}
	if (grp->created_v2 && !rmdir_wait(grp->v2))
		grp->created_v2 = false;
	if (grp->v2[0])
		prune_parents(grp->v2);
}

int cgroup_create(const struct cg_layout *lay, const char *v2_root, const char *rel,
		  const struct pool_limits *limits, struct cg_group *grp, char *err, size_t len)
{
	struct create_ctx cx = {
		.lay = lay, .lim = limits, .grp = grp, .err = err, .len = len,
	};
	int rc;

	memset(grp, 0, sizeof(*grp));
	snprintf(grp->rel, sizeof(grp->rel), "%s", rel);
	rc = build_chain(&cx, v2_root, rel);
	if (!rc)
		rc = place_controllers(&cx);
	if (rc)
		return rc;

	rc = make_chain(&cx, lay->v2_mount, false, grp->v2, &grp->created_v2);
	if (!rc)
		rc = enable_v2(&cx);
	if (!rc)
		rc = make_v1_groups(&cx);
	if (!rc)
		rc = apply_limits(&cx);
	if (!rc) {
		live_groups++;
		return 0;
	}

	remove_created(grp);
	if (!live_groups)
		undo_enabled(NULL, 0);
	memset(grp->v1, 0, sizeof(grp->v1));
	grp->v2[0] = '\0';
	return rc;
}

/* ---- Entering, reading and removal ---- */

static int write_pid(const char *dir, const char *pid_text)
{
	static const char file[] = "/cgroup.procs";
	char path[CG_PATH_LEN + sizeof(file)];
	size_t n = strlen(dir);
	ssize_t done;
	int fd, rc = 0;

	if (n + sizeof(file) > sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, dir, n);
	memcpy(path + n, file, sizeof(file));
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	done = write(fd, pid_text, strlen(pid_text));
	if (done < 0)
		rc = -errno;
	close(fd);
	return rc;
}

int cgroup_enter(const struct cg_group *grp, pid_t pid)
{
	char text[24], *p = text + sizeof(text) - 1;
	unsigned long v = pid > 0 ? (unsigned long)pid : 0;
	int c, other, rc;

	if (!grp->v2[0] || pid < 0)
		return -EINVAL;
	/* Formats the pid by hand: snprintf() is not async-signal-safe. */
	*p = '\0';
	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);

	rc = write_pid(grp->v2, p);
	for (c = 0; c < CG_NR_CTRL && !rc; c++) {
		if (!grp->v1[c][0])
			continue;
		for (other = 0; other < c; other++)
			if (!strcmp(grp->v1[other], grp->v1[c]))
				break;
		if (other == c)
			rc = write_pid(grp->v1[c], p);
	}
	return rc;
}

/* Fails with -EBUSY and the pids when DIR/cgroup.procs is not empty. */
static int check_no_procs(const struct cg_group *grp, const char *dir, char *err, size_t len)
{
	char path[CG_PATH_LEN + 32], pids[256], *nl;
	int rc;

	rc = join(path, sizeof(path), dir, "cgroup.procs");
	if (!rc)
		rc = read_text(path, pids, sizeof(pids));
	if (rc == -ENOENT)
		return 0;
	if (rc)
		return fail(err, len, rc, "cgroup '%s': reading %s failed: %s", grp->rel, path,
			    strerror(-rc));
	if (!pids[0])
		return 0;
	while ((nl = strchr(pids, '\n')))
		*nl = ' ';
	return fail(err, len, -EBUSY,
		    "cgroup '%s': %s still contains processes %s; stop them before removing the pool",
		    grp->rel, dir, pids);
}

static int remove_leaf(struct cg_group *grp, const char *dir, bool *created, char *err,
		       size_t len)
{
	int rc;

	if (!*created)
		return 0;
	rc = rmdir_wait(dir);
	if (rc && rc != -ENOENT)
		return fail(err, len, rc, "cgroup '%s': removing %s failed: %s; check %s/cgroup.procs",
			    grp->rel, dir, strerror(-rc), dir);
	*created = false;
	return 0;
}

int cgroup_remove(struct cg_group *grp, char *err, size_t len)
{
	bool was_live = grp->created_v2;
	int c, rc;

	for (c = 0; c < CG_NR_CTRL; c++) {
		rc = grp->created_v1[c] ? check_no_procs(grp, grp->v1[c], err, len) : 0;
		if (rc)
			return rc;
	}
	rc = grp->created_v2 ? check_no_procs(grp, grp->v2, err, len) : 0;
	if (rc)
		return rc;

	for (c = 0; c < CG_NR_CTRL; c++) {
		rc = remove_leaf(grp, grp->v1[c], &grp->created_v1[c], err, len);
		if (rc)
			return rc;
		if (grp->v1[c][0])
			prune_parents(grp->v1[c]);
	}
	rc = remove_leaf(grp, grp->v2, &grp->created_v2, err, len);
	if (rc)
		return rc;
	if (grp->v2[0])
		prune_parents(grp->v2);

	if (was_live && --live_groups == 0)
		return undo_enabled(err, len);
	return 0;
}

int cgroup_read_file(const struct cg_group *grp, enum cg_ctrl c, const char *file, char *buf,
		     size_t len)
{
	static const char *const v1_files[][2] = {
		{ "cpu.max", "cpu.cfs_quota_us" },
		{ "cpu.weight", "cpu.shares" },
		{ "memory.max", "memory.limit_in_bytes" },
		{ "memory.high", "memory.soft_limit_in_bytes" },
	};
	char path[CG_PATH_LEN + 64];
	const char *dir = grp->v2;
	size_t i;
	int rc;

	if (c >= CG_NR_CTRL)
		return -EINVAL;
	if (grp->v1[c][0]) {
		dir = grp->v1[c];
		for (i = 0; i < sizeof(v1_files) / sizeof(v1_files[0]); i++)
			if (!strcmp(file, v1_files[i][0]))
				file = v1_files[i][1];
	}
	rc = join(path, sizeof(path), dir, file);
	return rc ? rc : read_text(path, buf, len);
}

/* Returns the folder of controller C for GRP: its v1 folder, else the v2 folder. */
static const char *ctrl_dir(const struct cg_group *grp, enum cg_ctrl c, bool *v2)
{
	*v2 = !grp->v1[c][0];
	return *v2 ? grp->v2 : grp->v1[c];
}

int cgroup_set_cpus(struct cg_group *grp, double cpus, char *err, size_t len)
{
	struct pool_limits lim = { .has_cpus = true, .cpus = cpus };
	struct create_ctx cx = { .lim = &lim, .grp = grp, .err = err, .len = len };
	bool v2;
	const char *dir = ctrl_dir(grp, CG_CPU, &v2);

	return apply_cpu(&cx, dir, v2);
}

int cgroup_set_memory_max(struct cg_group *grp, int64_t bytes, char *err, size_t len)
{
	struct pool_limits lim = { .memory_max = bytes, .memory_high = -1 };
	struct create_ctx cx = { .lim = &lim, .grp = grp, .err = err, .len = len };
	bool v2;
	const char *dir = ctrl_dir(grp, CG_MEMORY, &v2);

	return apply_memory(&cx, dir, v2);
}

int cgroup_read_v2(const struct cg_group *grp, const char *file, char *buf, size_t len)
{
	char path[CG_PATH_LEN + 64];
	int rc = join(path, sizeof(path), grp->v2, file);

	return rc ? rc : read_text(path, buf, len);
}

unsigned long long cgroup_oom_kills(const struct cg_group *grp)
{
	bool v1 = grp->v1[CG_MEMORY][0];
	unsigned long long n = 0;
	char buf[1024];
	const char *p;

	if (cgroup_read_file(grp, CG_MEMORY, v1 ? "memory.oom_control" : "memory.events", buf,
			     sizeof(buf)))
		return 0;
	p = strstr(buf, "oom_kill ");
	if (p)
		sscanf(p + strlen("oom_kill "), "%llu", &n);
	return n;
}
