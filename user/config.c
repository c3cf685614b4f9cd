// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Reads the controller's YAML config into struct config. This file only
 * parses and validates: it creates no cgroup, looks up no user and opens no
 * interface, so a config can be checked before the controller changes anything.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "config.h"

/* A config is a few kilobytes, so a larger file is most likely the wrong one. */
#define CONFIG_MAX_FILE_SIZE	(1 << 20)
/* Bytes of a value quoted in a message before it is cut off. */
#define QUOTE_MAX		40
/* Keys of the largest mapping in the schema, with room to spare. */
#define MAX_KEYS		16

#define NAME_CHARS	"abcdefghijklmnopqrstuvwxyz0123456789_-"
#define NAME_EXPECTED	"a name of 1 to 31 characters from a-z, 0-9, '_' and '-'"
#define CONDITION_KEYS	\
	"path, method, host, host_suffix, content_length_above, content_length_below, bytes, client"

struct parser {
	const char *file;		/* name used in messages */
	yaml_document_t *doc;
	struct config *cfg;
	char *err;
	size_t err_len;
	const struct attach_config *cli_attach;	/* NULL unless `triage attach` */
};

/* Messages */

static int line_of(const yaml_node_t *node)
{
	return (int)node->start_mark.line + 1;
}

/* Writes "FILE:LINE: MESSAGE" into the error buffer, or "FILE: MESSAGE" without NODE. */
__attribute__((format(printf, 4, 5)))
static int fail(struct parser *p, int ret, const yaml_node_t *node, const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	if (!p->err || !p->err_len)
		return ret;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (node)
		snprintf(p->err, p->err_len, "%s:%d: %s", p->file, line_of(node), text);
	else
		snprintf(p->err, p->err_len, "%s: %s", p->file, text);
	return ret;
}

/*
 * Formats NODE for a message: a scalar in single quotes, cut off after
 * QUOTE_MAX bytes and with control characters shown as '?', or the kind of
 * collection.
 */
static const char *quote(const yaml_node_t *node, char *buf, size_t len)
{
	const unsigned char *text;
	size_t i, n;

	if (node->type == YAML_SEQUENCE_NODE)
		return node->data.sequence.items.start == node->data.sequence.items.top ?
		       "an empty list" : "a list";
	if (node->type == YAML_MAPPING_NODE)
		return "a mapping";

	text = node->data.scalar.value;
	n = node->data.scalar.length;
	if (n > QUOTE_MAX)
		n = QUOTE_MAX;
	if (n + 6 > len)
		n = len - 6;
	buf[0] = '\'';
	for (i = 0; i < n; i++)
		buf[i + 1] = text[i] < 0x20 || text[i] == 0x7f ? '?' : (char)text[i];
	strcpy(buf + n + 1, n < node->data.scalar.length ? "...'" : "'");
	return buf;
}

/* Reports "key 'KEY': expected EXPECTED, got 'VALUE'" with the line of NODE. */
__attribute__((format(printf, 4, 5)))
static int bad_value(struct parser *p, const yaml_node_t *node, const char *key,
		     const char *fmt, ...)
{
	char expected[768], got[QUOTE_MAX + 8];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(expected, sizeof(expected), fmt, ap);
	va_end(ap);
	return fail(p, -EINVAL, node, "key '%s': expected %s, got %s", key, expected,
		    quote(node, got, sizeof(got)));
}

/* CONTEXT names the enclosing item, such as "pool 'cpu'", or is NULL at the top level. */
static int missing(struct parser *p, const yaml_node_t *map, const char *context,
		   const char *key)
{
	if (!context)
		return fail(p, -EINVAL, map, "missing required key '%s'", key);
	return fail(p, -EINVAL, map, "%s: missing required key '%s'", context, key);
}

static int out_of_memory(struct parser *p)
{
	return fail(p, -ENOMEM, NULL, "out of memory");
}

/* Joins the NULL-terminated WORDS with ", " into BUF. */
static const char *join(const char *const *words, char *buf, size_t len)
{
	size_t used = 0;
	int i;

	buf[0] = '\0';
	for (i = 0; words[i] && used < len; i++)
		used += snprintf(buf + used, len - used, "%s%s", i ? ", " : "", words[i]);
	return buf;
}

/* Nodes */

static yaml_node_t *node_at(struct parser *p, int index)
{
	return yaml_document_get_node(p->doc, index);
}

/* Returns the text of a scalar, or NULL for a collection or text with a NUL byte. */
static const char *text_of(const yaml_node_t *node)
{
	const char *text;

	if (node->type != YAML_SCALAR_NODE)
		return NULL;
	text = (const char *)node->data.scalar.value;
	if (strlen(text) != node->data.scalar.length)
		return NULL;
	return text;
}

/* An empty value or "~" or "null" written without quotes, which YAML reads as null. */
static bool is_null(const yaml_node_t *node)
{
	const char *text = text_of(node);

	if (!text || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	return !*text || !strcmp(text, "~") || !strcmp(text, "null");
}

static size_t list_len(const yaml_node_t *node)
{
	return node->data.sequence.items.top - node->data.sequence.items.start;
}

static yaml_node_t *list_item(struct parser *p, const yaml_node_t *node, size_t i)
{
	return node_at(p, node->data.sequence.items.start[i]);
}

static int find_key(const char *const *keys, const char *name)
{
	int i;

	for (i = 0; name && keys[i]; i++)
		if (!strcmp(keys[i], name))
			return i;
	return -1;
}

static int unknown_key(struct parser *p, const yaml_node_t *key, const char *what,
		       const char *const *keys)
{
	char got[QUOTE_MAX + 8], list[256];

	return fail(p, -EINVAL, key, "unknown key %s in %s; expected one of: %s",
		    quote(key, got, sizeof(got)), what, join(keys, list, sizeof(list)));
}

/*
 * Checks that MAP, the value of KEY, is a mapping whose keys all appear in the
 * NULL-terminated KEYS, each at most once. Stores the value of KEYS[i] in
 * VALUES[i], or NULL when the key is absent or its value is null. WHAT names
 * the mapping in the message about an unknown key.
 */
static int read_mapping(struct parser *p, const yaml_node_t *map, const char *key,
			const char *what, const char *const *keys, yaml_node_t **values)
{
	const yaml_node_t *seen[MAX_KEYS] = { NULL };
	yaml_node_pair_t *pair;
	int i;

	if (map->type != YAML_MAPPING_NODE)
		return bad_value(p, map, key, "a mapping");
	for (i = 0; keys[i]; i++)
		values[i] = NULL;

	for (pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
		yaml_node_t *name = node_at(p, pair->key);
		yaml_node_t *value = node_at(p, pair->value);

		i = find_key(keys, text_of(name));
		if (i < 0)
			return unknown_key(p, name, what, keys);
		if (seen[i])
			return fail(p, -EINVAL, name,
				    "key '%s': duplicate key, first set on line %d",
				    keys[i], line_of(seen[i]));
		seen[i] = name;
		values[i] = is_null(value) ? NULL : value;
		/*
		 * A block list or mapping starts on the line after its key, so
		 * messages about it would name its first item. Point them at the
		 * key instead.
		 */
		if (value->type != YAML_SCALAR_NODE)
			value->start_mark = name->start_mark;
	}
	return 0;
}

/* Scalars */

/* Parses a decimal integer: an optional '-' and digits, nothing else. */
static int parse_integer(const char *text, long long *out)
{
	const char *digits = text[0] == '-' ? text + 1 : text;
	char *end;

	if (!isdigit((unsigned char)digits[0]))
		return -EINVAL;
	errno = 0;
	*out = strtoll(text, &end, 10);
	if (*end)
		return -EINVAL;
	return errno ? -ERANGE : 0;
}

static int get_integer(struct parser *p, const yaml_node_t *node, const char *key,
		       long long min, long long max, long long *out)
{
	const char *text = text_of(node);
	long long value;

	if (!text || parse_integer(text, &value) || value < min || value > max)
		return bad_value(p, node, key, "an integer from %lld to %lld", min, max);
	*out = value;
	return 0;
}

int config_parse_size(const char *text, int64_t *out)
{
	static const char suffixes[] = "KMGT";
	unsigned long long value;
	const char *suffix;
	unsigned int shift = 0;
	char *end;

	if (!text || !isdigit((unsigned char)text[0]))
		return -EINVAL;
	errno = 0;
	value = strtoull(text, &end, 10);
	if (errno)
		return -ERANGE;
	if (*end) {
		suffix = strchr(suffixes, toupper((unsigned char)*end));
		if (!suffix || end[1])
			return -EINVAL;
		shift = 10 * (unsigned int)(suffix - suffixes + 1);
	}
	if (value > (unsigned long long)INT64_MAX >> shift)
		return -ERANGE;
	*out = (int64_t)(value << shift);
	return 0;
}

static int get_size(struct parser *p, const yaml_node_t *node, const char *key, int64_t *out)
{
	const char *text = text_of(node);

	if (!text || config_parse_size(text, out))
		return bad_value(p, node, key,
				 "a size in bytes with an optional K, M, G or T suffix, such as 256M");
	return 0;
}

/* A size, or "max" for no limit, which is stored as -1. */
static int get_size_or_max(struct parser *p, const yaml_node_t *node, const char *key,
			   int64_t *out)
{
	const char *text = text_of(node);

	if (text && !strcmp(text, "max")) {
		*out = -1;
		return 0;
	}
	if (!text || config_parse_size(text, out))
		return bad_value(p, node, key,
				 "a size in bytes with an optional K, M, G or T suffix, or max");
	return 0;
}

/* Reads a size above 0. */
static int get_positive_size(struct parser *p, const yaml_node_t *node, const char *key,
			     int64_t *out)
{
	const char *text = text_of(node);
	int64_t value;

	if (!text || config_parse_size(text, &value) || value == 0)
		return bad_value(p, node, key,
				 "a size above 0 with an optional K, M, G or T suffix, such as 256M");
	*out = value;
	return 0;
}

/* Formats BYTES with the largest K, M, G or T suffix that divides it, for messages. */
static const char *format_size(int64_t bytes, char *buf, size_t len)
{
	static const char suffixes[] = "KMGT";
	int64_t unit;
	int i;

	for (i = 4; i > 0 && bytes; i--) {
		unit = 1LL << (10 * i);
		if (bytes % unit == 0) {
			snprintf(buf, len, "%lld%c", (long long)(bytes / unit), suffixes[i - 1]);
			return buf;
		}
	}
	snprintf(buf, len, "%lld", (long long)bytes);
	return buf;
}

/*
 * Parses a decimal number such as 2, 0.5 or 1e3. strtod() also reads signs,
 * "inf", "nan" and hex floats, which no key accepts.
 */
static bool parse_number(const char *text, double *out)
{
	double value;
	char *end;

	if (!text || !(isdigit((unsigned char)text[0]) || text[0] == '.') || strpbrk(text, "xX"))
		return false;
	value = strtod(text, &end);
	if (*end || !isfinite(value))
		return false;
	*out = value;
	return true;
}

/* Reads a number above ABOVE and at most MAX. */
static int get_number(struct parser *p, const yaml_node_t *node, const char *key,
		      double above, double max, double *out)
{
	double value;

	if (!parse_number(text_of(node), &value) || value <= above || value > max)
		return bad_value(p, node, key, "a number above %.10g and at most %.10g",
				 above, max);
	*out = value;
	return 0;
}

static int get_cpus(struct parser *p, const yaml_node_t *node, const char *key, double *out)
{
	double value;

	if (!parse_number(text_of(node), &value) || value <= 0 || value > 1024)
		return bad_value(p, node, key,
				 "a number of CPUs above 0 and at most 1024, such as 0.5");
	*out = value;
	return 0;
}

static int get_uint32(struct parser *p, const yaml_node_t *node, const char *key,
		      uint32_t min, uint32_t max, uint32_t *out)
{
	long long value;
	int ret;

	ret = get_integer(p, node, key, min, max, &value);
	if (!ret)
		*out = (uint32_t)value;
	return ret;
}

/* Accepts true and false only, not the yes, no, on and off of YAML 1.1. */
static int get_bool(struct parser *p, const yaml_node_t *node, const char *key, bool *out)
{
	const char *text = text_of(node);

	if (text && !strcmp(text, "true"))
		*out = true;
	else if (text && !strcmp(text, "false"))
		*out = false;
	else
		return bad_value(p, node, key, "true or false");
	return 0;
}

/* Copies the text of NODE into OUT, which has room for LEN bytes with the NUL. */
static int get_string(struct parser *p, const yaml_node_t *node, const char *key,
		      const char *expected, char *out, size_t len)
{
	const char *text = text_of(node);

	if (!text || !*text || strlen(text) >= len)
		return bad_value(p, node, key, "%s of at most %zu bytes", expected, len - 1);
	strcpy(out, text);
	return 0;
}

static bool has_control_chars(const char *text)
{
	for (; *text; text++)
		if ((unsigned char)*text < 0x20 || *text == 0x7f)
			return true;
	return false;
}

static bool valid_name(const char *text)
{
	size_t len = strlen(text);

	return len >= 1 && len < TRIAGE_NAME_LEN && strspn(text, NAME_CHARS) == len;
}

static int get_name(struct parser *p, const yaml_node_t *node, char *out)
{
	const char *text = text_of(node);

	if (!text || !valid_name(text))
		return bad_value(p, node, "name", NAME_EXPECTED);
	strcpy(out, text);
	return 0;
}

/* Top-level settings */

static int parse_address(struct parser *p, const yaml_node_t *node)
{
	struct config *cfg = p->cfg;
	const char *text = text_of(node);

	if (text && inet_pton(AF_INET, text, cfg->addr) == 1)
		cfg->family = AF_INET;
	else if (text && inet_pton(AF_INET6, text, cfg->addr) == 1)
		cfg->family = AF_INET6;
	else
		return bad_value(p, node, "address",
				 "an IPv4 or IPv6 address such as 0.0.0.0 or ::");
	inet_ntop(cfg->family, cfg->addr, cfg->addr_text, sizeof(cfg->addr_text));
	return 0;
}

static int parse_mode(struct parser *p, const yaml_node_t *node)
{
	const char *text = text_of(node);

	if (text && !strcmp(text, "payload"))
		p->cfg->mode = TRIAGE_MODE_PAYLOAD;
	else if (text && !strcmp(text, "connection"))
		p->cfg->mode = TRIAGE_MODE_CONNECTION;
	else
		return bad_value(p, node, "mode", "payload or connection");
	return 0;
}

static int parse_syn_placement(struct parser *p, const yaml_node_t *node)
{
	const char *text = text_of(node);

	if (text && !strcmp(text, "default_pool"))
		p->cfg->syn_last_pool = false;
	else if (text && !strcmp(text, "last_pool"))
		p->cfg->syn_last_pool = true;
	else
		return bad_value(p, node, "syn_placement", "default_pool or last_pool");
	return 0;
}

/* ".." is rejected because the controller creates and removes folders below the root. */
static bool has_dotdot(const char *path)
{
	const char *s;

	for (s = strstr(path, ".."); s; s = strstr(s + 1, ".."))
		if ((s == path || s[-1] == '/') && (s[2] == '/' || s[2] == '\0'))
			return true;
	return false;
}

static int parse_cgroup_root(struct parser *p, const yaml_node_t *node)
{
	char *root = p->cfg->cgroup_root;
	int ret;

	ret = get_string(p, node, "cgroup_root", "an absolute path", root, CONFIG_PATH_MAX);
	if (ret)
		return ret;
	if (root[0] != '/' || has_dotdot(root) || has_control_chars(root))
		return bad_value(p, node, "cgroup_root",
				 "an absolute path without '..' components or control characters");
	return 0;
}

/* Interface names follow the kernel's rules: below IFNAMSIZ, no '/', ':' or spaces. */
static bool valid_ifname(const char *text)
{
	size_t len = strlen(text);

	if (len < 1 || len >= sizeof(((struct config *)0)->ifaces[0]))
		return false;
	if (!strcmp(text, ".") || !strcmp(text, ".."))
		return false;
	for (; *text; text++)
		if (*text == '/' || *text == ':' || isspace((unsigned char)*text) ||
		    (unsigned char)*text < 0x20 || *text == 0x7f)
			return false;
	return true;
}

static int parse_interfaces(struct parser *p, const yaml_node_t *node)
{
	struct config *cfg = p->cfg;
	size_t i, n;
	int j;

	if (node->type != YAML_SEQUENCE_NODE)
		return bad_value(p, node, "interfaces", "a list of interface names");
	n = list_len(node);
	if (n > CONFIG_MAX_IFACES)
		return fail(p, -E2BIG, node,
			    "key 'interfaces': expected at most %d interfaces, got %zu",
			    CONFIG_MAX_IFACES, n);

	for (i = 0; i < n; i++) {
		const yaml_node_t *item = list_item(p, node, i);
		const char *text = text_of(item);

		if (!text || !valid_ifname(text))
			return bad_value(p, item, "interfaces",
					 "interface names of 1 to 15 bytes without '/', ':' or spaces");
		for (j = 0; j < cfg->nr_ifaces; j++)
			if (!strcmp(cfg->ifaces[j], text))
				return bad_value(p, item, "interfaces", "each interface once");
		strcpy(cfg->ifaces[cfg->nr_ifaces++], text);
	}
	return 0;
}

/* Pool limits */

enum {
	LIMIT_CPUS, LIMIT_CPU_WEIGHT, LIMIT_CPUSET, LIMIT_MEMORY_MAX, LIMIT_MEMORY_HIGH,
	LIMIT_IO_WEIGHT, LIMIT_IO_MAX, LIMIT_PIDS_MAX, LIMIT_NR
};

static const char *const limit_keys[] = {
	[LIMIT_CPUS] = "cpus",
	[LIMIT_CPU_WEIGHT] = "cpu_weight",
	[LIMIT_CPUSET] = "cpuset",
	[LIMIT_MEMORY_MAX] = "memory_max",
	[LIMIT_MEMORY_HIGH] = "memory_high",
	[LIMIT_IO_WEIGHT] = "io_weight",
	[LIMIT_IO_MAX] = "io_max",
	[LIMIT_PIDS_MAX] = "pids_max",
	[LIMIT_NR] = NULL,
};

static int parse_cpus(struct parser *p, const yaml_node_t *node, struct pool_limits *limits)
{
	int ret;

	ret = get_cpus(p, node, "cpus", &limits->cpus);
	if (!ret)
		limits->has_cpus = true;
	return ret;
}

/* Parses an unsigned decimal number at *TEXT and moves *TEXT past it. */
static bool read_number(const char **text, unsigned long *out)
{
	char *end;

	if (!isdigit((unsigned char)**text))
		return false;
	errno = 0;
	*out = strtoul(*text, &end, 10);
	*text = end;
	return errno == 0;
}

/* A cpuset list such as "0-3,8,10-11": numbers and ascending ranges joined by ','. */
static bool valid_cpu_list(const char *text)
{
	unsigned long first, last;

	for (;;) {
		if (!read_number(&text, &first))
			return false;
		if (*text == '-') {
			text++;
			if (!read_number(&text, &last) || last < first)
				return false;
		}
		if (*text == '\0')
			return true;
		if (*text++ != ',')
			return false;
	}
}

static int parse_cpuset(struct parser *p, const yaml_node_t *node, struct pool_limits *limits)
{
	const char *text = text_of(node);

	if (!text || strlen(text) >= sizeof(limits->cpuset) || !valid_cpu_list(text))
		return bad_value(p, node, "cpuset",
				 "a CPU list such as \"0-3,8\" of at most %zu bytes",
				 sizeof(limits->cpuset) - 1);
	strcpy(limits->cpuset, text);
	return 0;
}

/* Checks one "KEY=VALUE" of an io.max line and returns the bit of KEY, or 0 when invalid. */
static unsigned int io_max_pair(const char *pair, size_t len)
{
	static const char *const keys[] = { "rbps", "wbps", "riops", "wiops" };
	const char *value;
	unsigned long number;
	size_t i, key_len;

	value = memchr(pair, '=', len);
	if (!value)
		return 0;
	key_len = value - pair;
	value++;
	if ((size_t)(pair + len - value) == 3 && !strncmp(value, "max", 3))
		number = 1;
	else if (!read_number(&value, &number) || value != pair + len || number == 0)
		return 0;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strlen(keys[i]) == key_len && !strncmp(pair, keys[i], key_len))
			return 1u << i;
	return 0;
}

/* An io.max line: "MAJ:MIN" and one or more of rbps, wbps, riops, wiops, each once. */
static bool valid_io_max(const char *text)
{
	unsigned long major, minor;
	unsigned int seen = 0, bit;
	size_t len;

	if (!read_number(&text, &major) || *text++ != ':' || !read_number(&text, &minor))
		return false;
	while (*text == ' ') {
		text += strspn(text, " ");
		len = strcspn(text, " ");
		if (!len)
			break;
		bit = io_max_pair(text, len);
		if (!bit || (seen & bit))
			return false;
		seen |= bit;
		text += len;
	}
	return *text == '\0' && seen;
}

static int parse_io_max(struct parser *p, const yaml_node_t *node, struct pool_limits *limits)
{
	const char *text = text_of(node);

	if (!text || strlen(text) >= sizeof(limits->io_max) || !valid_io_max(text))
		return bad_value(p, node, "io_max",
				 "MAJ:MIN and rbps, wbps, riops or wiops set to a positive integer or max, such as \"8:0 rbps=1048576 wbps=max\"");
	strcpy(limits->io_max, text);
	return 0;
}

static int parse_pids_max(struct parser *p, const yaml_node_t *node, struct pool_limits *limits)
{
	const char *text = text_of(node);
	long long value;

	if (text && !strcmp(text, "max")) {
		limits->pids_max = -1;
		return 0;
	}
	if (!text || parse_integer(text, &value) || value < 1 || value > 4194304)
		return bad_value(p, node, "pids_max", "an integer from 1 to 4194304 or max");
	limits->pids_max = value;
	return 0;
}

/* Stores the value nodes of the limits mapping in V, for checks against scaling. */
static int parse_limits(struct parser *p, const yaml_node_t *node, struct pool_limits *limits,
			yaml_node_t **v)
{
	long long value = 0;
	int ret;

	ret = read_mapping(p, node, "limits", "limits", limit_keys, v);
	if (!ret && v[LIMIT_CPUS])
		ret = parse_cpus(p, v[LIMIT_CPUS], limits);
	if (!ret && v[LIMIT_CPU_WEIGHT]) {
		ret = get_integer(p, v[LIMIT_CPU_WEIGHT], "cpu_weight", 1, 10000, &value);
		limits->cpu_weight = (uint32_t)value;
	}
	if (!ret && v[LIMIT_CPUSET])
		ret = parse_cpuset(p, v[LIMIT_CPUSET], limits);
	if (!ret && v[LIMIT_MEMORY_MAX])
		ret = get_size_or_max(p, v[LIMIT_MEMORY_MAX], "memory_max", &limits->memory_max);
	if (!ret && v[LIMIT_MEMORY_HIGH])
		ret = get_size_or_max(p, v[LIMIT_MEMORY_HIGH], "memory_high", &limits->memory_high);
	if (!ret && v[LIMIT_IO_WEIGHT]) {
		ret = get_integer(p, v[LIMIT_IO_WEIGHT], "io_weight", 1, 10000, &value);
		limits->io_weight = (uint32_t)value;
	}
	if (!ret && v[LIMIT_IO_MAX])
		ret = parse_io_max(p, v[LIMIT_IO_MAX], limits);
	if (!ret && v[LIMIT_PIDS_MAX])
		ret = parse_pids_max(p, v[LIMIT_PIDS_MAX], limits);
	return ret;
}

/* Scaling */

enum {
	SCALING_MIN, SCALING_MAX, SCALING_TARGET, SCALING_UP_FACTOR, SCALING_UP_STEP_MAX,
	SCALING_DOWN_WINDOW_S, SCALING_CPUS_PER_WORKER, SCALING_MEMORY_PER_WORKER,
	SCALING_WEIGHT, SCALING_NR
};

static const char *const scaling_keys[] = {
	[SCALING_MIN] = "min",
	[SCALING_MAX] = "max",
	[SCALING_TARGET] = "target",
	[SCALING_UP_FACTOR] = "up_factor",
	[SCALING_UP_STEP_MAX] = "up_step_max",
	[SCALING_DOWN_WINDOW_S] = "down_window_s",
	[SCALING_CPUS_PER_WORKER] = "cpus_per_worker",
	[SCALING_MEMORY_PER_WORKER] = "memory_per_worker",
	[SCALING_WEIGHT] = "weight",
	[SCALING_NR] = NULL,
};

enum { TARGET_ACTIVE_PER_WORKER, TARGET_CPU_UTILIZATION, TARGET_NR };

static const char *const target_keys[] = {
	[TARGET_ACTIVE_PER_WORKER] = "active_per_worker",
	[TARGET_CPU_UTILIZATION] = "cpu_utilization",
	[TARGET_NR] = NULL,
};

/*
 * memory_per_worker times any worker count must fit in int64_t. The bound is
 * rounded down to whole TiB so that the message can state it exactly.
 */
#define MEMORY_PER_WORKER_MAX	((INT64_MAX / TRIAGE_MAX_WORKERS) >> 40 << 40)
#define MEMORY_PER_WORKER_MIN	(4LL << 20)

static int parse_scaling_range(struct parser *p, const yaml_node_t *map, yaml_node_t **v,
			       struct pool_scaling *scaling, const char *context)
{
	uint32_t min = 1, max;
	int ret;

	if (!v[SCALING_MAX])
		return missing(p, map, context, "max");
	if (v[SCALING_MIN]) {
		ret = get_uint32(p, v[SCALING_MIN], "min", 1, TRIAGE_MAX_WORKERS, &min);
		if (ret)
			return ret;
	}
	ret = get_uint32(p, v[SCALING_MAX], "max", 1, TRIAGE_MAX_WORKERS, &max);
	if (ret)
		return ret;
	if (max < min)
		return bad_value(p, v[SCALING_MAX], "max", "an integer from min (%u) to %d",
				 min, TRIAGE_MAX_WORKERS);
	scaling->min = min;
	scaling->max = max;
	return 0;
}

static int parse_target(struct parser *p, const yaml_node_t *node, struct pool_scaling *scaling)
{
	yaml_node_t *v[TARGET_NR];
	int ret;

	ret = read_mapping(p, node, "target", "target", target_keys, v);
	if (ret)
		return ret;
	if (!v[TARGET_ACTIVE_PER_WORKER] == !v[TARGET_CPU_UTILIZATION])
		return fail(p, -EINVAL, node,
			    "key 'target': expected exactly one of active_per_worker and cpu_utilization, got %s",
			    v[TARGET_ACTIVE_PER_WORKER] ? "both" : "neither");
	if (v[TARGET_ACTIVE_PER_WORKER]) {
		scaling->target = SCALE_ACTIVE;
		return get_number(p, v[TARGET_ACTIVE_PER_WORKER], "active_per_worker", 0, 1000000,
				  &scaling->target_value);
	}
	scaling->target = SCALE_CPU;
	return get_number(p, v[TARGET_CPU_UTILIZATION], "cpu_utilization", 0, 1,
			  &scaling->target_value);
}

/* Parses the pace of growth and shrinkage and the share of the budget. */
static int parse_scaling_pace(struct parser *p, yaml_node_t **v, struct pool_scaling *scaling)
{
	double factor;
	int ret = 0;

	if (v[SCALING_UP_FACTOR]) {
		if (!parse_number(text_of(v[SCALING_UP_FACTOR]), &factor) || factor < 1 ||
		    factor > 16)
			return bad_value(p, v[SCALING_UP_FACTOR], "up_factor",
					 "a number from 1 to 16");
		scaling->up_factor = factor;
	}
	if (v[SCALING_UP_STEP_MAX])
		ret = get_uint32(p, v[SCALING_UP_STEP_MAX], "up_step_max", 0, TRIAGE_MAX_WORKERS,
				 &scaling->up_step_max);
	if (!ret && v[SCALING_DOWN_WINDOW_S])
		ret = get_uint32(p, v[SCALING_DOWN_WINDOW_S], "down_window_s", 0, 3600,
				 &scaling->down_window_s);
	if (!ret && v[SCALING_WEIGHT])
		ret = get_uint32(p, v[SCALING_WEIGHT], "weight", 1, 10000, &scaling->weight);
	return ret;
}

static int parse_per_worker(struct parser *p, yaml_node_t **v, struct pool_scaling *scaling)
{
	const yaml_node_t *memory = v[SCALING_MEMORY_PER_WORKER];
	char max[32];
	int ret = 0;

	if (v[SCALING_CPUS_PER_WORKER])
		ret = get_cpus(p, v[SCALING_CPUS_PER_WORKER], "cpus_per_worker",
			       &scaling->cpus_per_worker);
	if (!ret && memory)
		ret = get_positive_size(p, memory, "memory_per_worker",
					&scaling->memory_per_worker);
	if (!ret && scaling->memory_per_worker > MEMORY_PER_WORKER_MAX)
		return bad_value(p, memory, "memory_per_worker", "a size of at most %s",
				 format_size(MEMORY_PER_WORKER_MAX, max, sizeof(max)));
	/* Below a few MiB no worker even starts, and the pool would restart forever. */
	if (!ret && memory && scaling->memory_per_worker < MEMORY_PER_WORKER_MIN)
		return bad_value(p, memory, "memory_per_worker", "a size of at least %s",
				 format_size(MEMORY_PER_WORKER_MIN, max, sizeof(max)));
	return ret;
}

/* Stores the value nodes of the scaling mapping in V, for checks against limits. */
static int parse_scaling(struct parser *p, const yaml_node_t *node, yaml_node_t **v,
			 struct pool_scaling *scaling, const char *pool_context)
{
	char context[80];
	int ret;

	snprintf(context, sizeof(context), "scaling of %s", pool_context);
	ret = read_mapping(p, node, "scaling", "scaling", scaling_keys, v);
	if (!ret)
		ret = parse_scaling_range(p, node, v, scaling, context);
	if (!ret && !v[SCALING_TARGET])
		return missing(p, node, context, "target");
	if (!ret)
		ret = parse_target(p, v[SCALING_TARGET], scaling);
	if (!ret)
		ret = parse_scaling_pace(p, v, scaling);
	if (!ret)
		ret = parse_per_worker(p, v, scaling);
	if (!ret)
		scaling->enabled = true;
	return ret;
}

/* Pools */

enum {
	POOL_NAME, POOL_COMMAND, POOL_ENV, POOL_USER, POOL_WORKERS, POOL_LIMITS, POOL_SCALING,
	POOL_REMOVABLE, POOL_IDLE_TIMEOUT_S, POOL_NR
};

static const char *const pool_keys[] = {
	[POOL_NAME] = "name",
	[POOL_COMMAND] = "command",
	[POOL_ENV] = "env",
	[POOL_USER] = "user",
	[POOL_WORKERS] = "workers",
	[POOL_LIMITS] = "limits",
	[POOL_SCALING] = "scaling",
	[POOL_REMOVABLE] = "removable",
	[POOL_IDLE_TIMEOUT_S] = "idle_timeout_s",
	[POOL_NR] = NULL,
};

/* Value nodes of one pool or template, kept for the checks that span several keys. */
struct pool_nodes {
	yaml_node_t *pool[POOL_NR];
	yaml_node_t *limits[LIMIT_NR];
	yaml_node_t *scaling[SCALING_NR];
};

static int add_arg(struct parser *p, struct pool_config *pool, const char *arg, size_t len)
{
	pool->argv[pool->argc] = strndup(arg, len);
	if (!pool->argv[pool->argc])
		return out_of_memory(p);
	pool->argc++;
	return 0;
}

static int too_many_args(struct parser *p, const yaml_node_t *node, size_t count)
{
	return fail(p, -E2BIG, node, "key 'command': expected at most %d arguments, got %zu",
		    CONFIG_MAX_ARGS, count);
}

/* A command written as one string is split at spaces and tabs, without shell quoting. */
static int split_command(struct parser *p, const yaml_node_t *node, struct pool_config *pool)
{
	const char *text = text_of(node);
	size_t count = 0, len;
	const char *s;
	int ret;

	if (!text)
		return bad_value(p, node, "command", "a list of strings or one string");
	for (s = text + strspn(text, " \t"); *s; s += len, s += strspn(s, " \t")) {
		len = strcspn(s, " \t");
		count++;
	}
	if (count == 0)
		return bad_value(p, node, "command", "a program and its arguments");
	if (count > CONFIG_MAX_ARGS)
		return too_many_args(p, node, count);

	for (s = text + strspn(text, " \t"); *s; s += len, s += strspn(s, " \t")) {
		len = strcspn(s, " \t");
		ret = add_arg(p, pool, s, len);
		if (ret)
			return ret;
	}
	return 0;
}

static int parse_command(struct parser *p, const yaml_node_t *node, struct pool_config *pool)
{
	size_t i, n;
	int ret;

	if (node->type != YAML_SEQUENCE_NODE)
		return split_command(p, node, pool);
	n = list_len(node);
	if (n == 0)
		return bad_value(p, node, "command", "a program and its arguments");
	if (n > CONFIG_MAX_ARGS)
		return too_many_args(p, node, n);

	for (i = 0; i < n; i++) {
		const yaml_node_t *item = list_item(p, node, i);
		const char *text = text_of(item);

		if (!text)
			return bad_value(p, item, "command", "a list of strings");
		if (i == 0 && !*text)
			return bad_value(p, item, "command", "a program name as the first item");
		ret = add_arg(p, pool, text, strlen(text));
		if (ret)
			return ret;
	}
	return 0;
}

static bool valid_env_name(const char *text)
{
	if (!isalpha((unsigned char)text[0]) && text[0] != '_')
		return false;
	for (text++; *text; text++)
		if (!isalnum((unsigned char)*text) && *text != '_')
			return false;
	return true;
}

static bool env_has(const struct pool_config *pool, const char *name)
{
	size_t len = strlen(name);
	int i;

	for (i = 0; i < pool->envc; i++)
		if (!strncmp(pool->env[i], name, len) && pool->env[i][len] == '=')
			return true;
	return false;
}

static int parse_env_pair(struct parser *p, const yaml_node_pair_t *pair,
			  struct pool_config *pool)
{
	const yaml_node_t *key = node_at(p, pair->key);
	const yaml_node_t *value = node_at(p, pair->value);
	const char *name = text_of(key);
	const char *text = text_of(value);

	if (!name || !valid_env_name(name))
		return bad_value(p, key, "env",
				 "variable names that match [A-Za-z_][A-Za-z0-9_]*");
	if (env_has(pool, name))
		return fail(p, -EINVAL, key, "key '%s': duplicate key in env", name);
	if (!text)
		return bad_value(p, value, name, "a scalar value");
	if (asprintf(&pool->env[pool->envc], "%s=%s", name, text) < 0) {
		pool->env[pool->envc] = NULL;
		return out_of_memory(p);
	}
	pool->envc++;
	return 0;
}

static int parse_env(struct parser *p, const yaml_node_t *node, struct pool_config *pool)
{
	yaml_node_pair_t *pair;
	size_t n;
	int ret;

	if (node->type != YAML_MAPPING_NODE)
		return bad_value(p, node, "env", "a mapping of variable names to values");
	n = node->data.mapping.pairs.top - node->data.mapping.pairs.start;
	if (n > CONFIG_MAX_ENV)
		return fail(p, -E2BIG, node, "key 'env': expected at most %d variables, got %zu",
			    CONFIG_MAX_ENV, n);

	for (pair = node->data.mapping.pairs.start; pair < node->data.mapping.pairs.top; pair++) {
		ret = parse_env_pair(p, pair, pool);
		if (ret)
			return ret;
	}
	return 0;
}

/* Whether the user exists is checked by the controller, so a config can be checked anywhere. */
static int parse_user(struct parser *p, const yaml_node_t *node, struct pool_config *pool)
{
	const char *text = text_of(node);

	if (!text || !*text || strlen(text) >= sizeof(pool->user) ||
	    strpbrk(text, " \t:/") || has_control_chars(text))
		return bad_value(p, node, "user",
				 "a user name or numeric uid of at most %zu bytes without spaces, ':' or '/'",
				 sizeof(pool->user) - 1);
	strcpy(pool->user, text);
	return 0;
}

/* Returns the pool or template called NAME among those parsed so far, or NULL. */
static const struct pool_config *find_pool_or_template(const struct config *cfg,
							const char *name, const char **kind)
{
	int i;

	for (i = 0; i < cfg->nr_pools; i++) {
		if (!strcmp(cfg->pools[i].name, name)) {
			*kind = "pool";
			return &cfg->pools[i];
		}
	}
	for (i = 0; i < cfg->nr_templates; i++) {
		if (!strcmp(cfg->templates[i].name, name)) {
			*kind = "template";
			return &cfg->templates[i];
		}
	}
	return NULL;
}

/* Pools and templates share one namespace, as emerged pools sit next to configured ones. */
static int parse_pool_name(struct parser *p, const yaml_node_t *node, struct pool_config *pool,
			   const char *kind)
{
	const struct pool_config *other;
	const char *other_kind;
	char got[QUOTE_MAX + 8];
	int ret;

	ret = get_name(p, node, pool->name);
	if (ret)
		return ret;
	other = find_pool_or_template(p->cfg, pool->name, &other_kind);
	if (other)
		return fail(p, -EINVAL, node,
			    "key 'name': expected a unique %s name, got %s, which the %s on line %d already uses",
			    kind, quote(node, got, sizeof(got)), other_kind, other->line);
	return 0;
}

/* Fills the fields that the file may leave out, so absent ones read as unset. */
static void init_pool(struct pool_config *pool, const yaml_node_t *node)
{
	pool->line = line_of(node);
	pool->workers = 1;
	pool->limits.memory_max = -1;
	pool->limits.memory_high = -1;
	pool->limits.pids_max = -1;
	pool->scaling.min = 1;
	pool->scaling.up_factor = 2;
	pool->scaling.down_window_s = 30;
	pool->scaling.memory_per_worker = -1;
	pool->scaling.weight = 100;
}

static int parse_process(struct parser *p, yaml_node_t **v, struct pool_config *pool)
{
	int ret;

	/* Only the pool of an attached service may leave it out: check_commands(). */
	ret = v[POOL_COMMAND] ? parse_command(p, v[POOL_COMMAND], pool) : 0;
	if (!ret && v[POOL_ENV])
		ret = parse_env(p, v[POOL_ENV], pool);
	if (!ret && v[POOL_USER])
		ret = parse_user(p, v[POOL_USER], pool);
	return ret;
}

/*
 * Parses the starting worker count. Without scaling it also sets min and max
 * to that count, so that code which keeps a pool within [min, max] leaves a
 * fixed pool alone.
 */
static int parse_workers(struct parser *p, const yaml_node_t *node, struct pool_config *pool)
{
	struct pool_scaling *scaling = &pool->scaling;
	uint32_t workers;
	int ret;

	if (!node) {
		pool->workers = scaling->enabled ? scaling->min : 1;
	} else {
		ret = get_uint32(p, node, "workers", 1, TRIAGE_MAX_WORKERS, &workers);
		if (ret)
			return ret;
		if (scaling->enabled && (workers < scaling->min || workers > scaling->max))
			return bad_value(p, node, "workers",
					 "an integer from scaling min (%u) to max (%u)",
					 scaling->min, scaling->max);
		pool->workers = workers;
	}
	if (!scaling->enabled) {
		scaling->min = pool->workers;
		scaling->max = pool->workers;
	}
	return 0;
}

/* Scaling comes before workers, whose default and range depend on it. */
static int parse_resources(struct parser *p, struct pool_nodes *nodes, struct pool_config *pool,
			   const char *context)
{
	int ret = 0;

	if (nodes->pool[POOL_LIMITS])
		ret = parse_limits(p, nodes->pool[POOL_LIMITS], &pool->limits, nodes->limits);
	if (!ret && nodes->pool[POOL_SCALING])
		ret = parse_scaling(p, nodes->pool[POOL_SCALING], nodes->scaling, &pool->scaling,
				    context);
	if (!ret)
		ret = parse_workers(p, nodes->pool[POOL_WORKERS], pool);
	return ret;
}

/* A template is always removable, as the pools made from it are removed when idle. */
static int parse_removal(struct parser *p, yaml_node_t **v, struct pool_config *pool,
			 bool is_template)
{
	int ret;

	pool->removable = is_template;
	if (v[POOL_REMOVABLE]) {
		ret = get_bool(p, v[POOL_REMOVABLE], "removable", &pool->removable);
		if (ret)
			return ret;
		if (is_template && !pool->removable)
			return bad_value(p, v[POOL_REMOVABLE], "removable",
					 "true, as pools made from a template are always removable");
	}
	if (!v[POOL_IDLE_TIMEOUT_S]) {
		pool->idle_timeout_s = pool->removable ? 60 : 0;
		return 0;
	}
	if (!pool->removable)
		return fail(p, -EINVAL, v[POOL_IDLE_TIMEOUT_S],
			    "key 'idle_timeout_s': only a removable pool has an idle timeout; add removable: true or remove this key");
	return get_uint32(p, v[POOL_IDLE_TIMEOUT_S], "idle_timeout_s", 1, 86400,
			  &pool->idle_timeout_s);
}

/*
 * Writes the CPU and memory limits for the starting worker count, so that the
 * cgroup has them from its creation. The controller rescales them later.
 */
static int derive_limits(struct parser *p, struct pool_nodes *nodes, struct pool_config *pool,
			 const char *context)
{
	const yaml_node_t *cpus = nodes->scaling[SCALING_CPUS_PER_WORKER];
	const yaml_node_t *memory = nodes->scaling[SCALING_MEMORY_PER_WORKER];
	struct pool_scaling *scaling = &pool->scaling;

	if (cpus && nodes->limits[LIMIT_CPUS])
		return fail(p, -EINVAL, cpus,
			    "key 'cpus_per_worker': %s sets both limits.cpus and scaling.cpus_per_worker; set one of them",
			    context);
	if (memory && nodes->limits[LIMIT_MEMORY_MAX])
		return fail(p, -EINVAL, memory,
			    "key 'memory_per_worker': %s sets both limits.memory_max and scaling.memory_per_worker; set one of them",
			    context);
	if (scaling->cpus_per_worker > 0) {
		pool->limits.has_cpus = true;
		pool->limits.cpus = pool->workers * scaling->cpus_per_worker;
	}
	if (scaling->memory_per_worker > 0)
		pool->limits.memory_max = pool->workers * scaling->memory_per_worker;
	return 0;
}

/* Checks that POOL has a limit to count against each budget that is set. */
static int check_budget_figures(struct parser *p, const yaml_node_t *node,
				const struct pool_config *pool, const char *context)
{
	const struct budget_config *budget = &p->cfg->budget;

	if (budget->has_cpus && !pool->limits.has_cpus)
		return fail(p, -EINVAL, node,
			    "%s: budget.cpus needs a CPU limit on every pool and template; add scaling.cpus_per_worker or limits.cpus",
			    context);
	if (budget->memory > 0 && pool->limits.memory_max < 0)
		return fail(p, -EINVAL, node,
			    "%s: budget.memory needs a memory limit on every pool and template; add scaling.memory_per_worker or limits.memory_max",
			    context);
	return 0;
}

/* Parses one item of pools or templates. NUMBER counts from 1, for messages. */
static int parse_pool_entry(struct parser *p, const yaml_node_t *node, struct pool_config *pool,
			    bool is_template, int number)
{
	const char *kind = is_template ? "template" : "pool";
	struct pool_nodes nodes;
	char context[64];
	int ret;

	memset(&nodes, 0, sizeof(nodes));
	init_pool(pool, node);
	ret = read_mapping(p, node, is_template ? "templates" : "pools", kind, pool_keys,
			   nodes.pool);
	if (ret)
		return ret;
	if (!nodes.pool[POOL_NAME]) {
		snprintf(context, sizeof(context), "%s %d", kind, number);
		return missing(p, node, context, "name");
	}
	ret = parse_pool_name(p, nodes.pool[POOL_NAME], pool, kind);
	if (ret)
		return ret;
	snprintf(context, sizeof(context), "%s '%s'", kind, pool->name);
	if (!nodes.pool[POOL_COMMAND] && is_template)
		return missing(p, node, context, "command");

	ret = parse_process(p, nodes.pool, pool);
	if (!ret)
		ret = parse_resources(p, &nodes, pool, context);
	if (!ret)
		ret = parse_removal(p, nodes.pool, pool, is_template);
	if (!ret)
		ret = derive_limits(p, &nodes, pool, context);
	if (!ret)
		ret = check_budget_figures(p, node, pool, context);
	return ret;
}

static int parse_pools(struct parser *p, const yaml_node_t *node)
{
	size_t i, n;
	int ret;

	if (node->type != YAML_SEQUENCE_NODE || list_len(node) == 0)
		return bad_value(p, node, "pools", "a list of at least one pool");
	n = list_len(node);
	if (n > TRIAGE_MAX_POOLS)
		return fail(p, -E2BIG, node, "key 'pools': expected at most %d pools, got %zu",
			    TRIAGE_MAX_POOLS, n);

	for (i = 0; i < n; i++) {
		ret = parse_pool_entry(p, list_item(p, node, i), &p->cfg->pools[i], false,
				       (int)i + 1);
		if (ret)
			return ret;
		p->cfg->nr_pools = (int)i + 1;
	}
	return 0;
}

static int parse_templates(struct parser *p, const yaml_node_t *node)
{
	size_t i, n;
	int ret;

	if (node->type != YAML_SEQUENCE_NODE)
		return bad_value(p, node, "templates", "a list of templates");
	n = list_len(node);
	if (n > CONFIG_MAX_TEMPLATES)
		return fail(p, -E2BIG, node,
			    "key 'templates': expected at most %d templates, got %zu",
			    CONFIG_MAX_TEMPLATES, n);

	for (i = 0; i < n; i++) {
		ret = parse_pool_entry(p, list_item(p, node, i), &p->cfg->templates[i], true,
				       (int)i + 1);
		if (ret)
			return ret;
		p->cfg->nr_templates = (int)i + 1;
	}
	return 0;
}

/* Looks up the pool named by NODE, the value of KEY, and stores its index in OUT. */
static int get_pool(struct parser *p, const yaml_node_t *node, const char *key, int *out)
{
	const char *names[TRIAGE_MAX_POOLS + 1];
	char got[QUOTE_MAX + 8], list[TRIAGE_MAX_POOLS * (TRIAGE_NAME_LEN + 2)];
	const char *text = text_of(node);
	int i;

	*out = text ? config_pool_index(p->cfg, text) : -1;
	if (*out >= 0)
		return 0;
	for (i = 0; i < p->cfg->nr_pools; i++)
		names[i] = p->cfg->pools[i].name;
	names[i] = NULL;
	return fail(p, -EINVAL, node, "key '%s': unknown pool; expected one of: %s, got %s",
		    key, join(names, list, sizeof(list)), quote(node, got, sizeof(got)));
}

/* Rule conditions */

enum {
	RULE_PATH, RULE_METHOD, RULE_HOST, RULE_HOST_SUFFIX, RULE_CLEN_ABOVE,
	RULE_CLEN_BELOW, RULE_BYTES, RULE_CLIENT, RULE_PRIORITY, RULE_NR
};

static const char *const rule_keys[] = {
	[RULE_PATH] = "path",
	[RULE_METHOD] = "method",
	[RULE_HOST] = "host",
	[RULE_HOST_SUFFIX] = "host_suffix",
	[RULE_CLEN_ABOVE] = "content_length_above",
	[RULE_CLEN_BELOW] = "content_length_below",
	[RULE_BYTES] = "bytes",
	[RULE_CLIENT] = "client",
	[RULE_PRIORITY] = "priority",
	[RULE_NR] = NULL,
};

/* In the order of the TRIAGE_METHOD_* bits. */
static const char *const method_names[] = {
	"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE", NULL,
};

/*
 * The classifier compares the path of the request without its query, so a
 * rule path with '?' or '#' could never match.
 */
static int parse_path(struct parser *p, const yaml_node_t *node, struct triage_rule *rule)
{
	const char *text = text_of(node);
	size_t len = text ? strlen(text) : 0;
	const char *s;

	if (!text || text[0] != '/')
		return bad_value(p, node, "path", "a path that starts with '/'");
	if (len >= TRIAGE_PATH_LEN)
		return bad_value(p, node, "path", "a path of at most %d bytes",
				 TRIAGE_PATH_LEN - 1);
	for (s = text; *s; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f || strchr("?#", *s))
			return bad_value(p, node, "path",
					 "a path of printable ASCII without spaces, '?' or '#'");
	memcpy(rule->path, text, len);
	rule->path_len = (__u16)len;
	rule->match |= TRIAGE_MATCH_PATH;
	return 0;
}

static int add_method(struct parser *p, const yaml_node_t *node, struct triage_rule *rule)
{
	char list[128];
	int i;

	i = find_key(method_names, text_of(node));
	if (i < 0)
		return bad_value(p, node, "method", "one of %s (upper case)",
				 join(method_names, list, sizeof(list)));
	rule->methods |= 1u << i;
	return 0;
}

static int parse_method(struct parser *p, const yaml_node_t *node, struct triage_rule *rule)
{
	size_t i, n;
	int ret;

	if (node->type == YAML_SCALAR_NODE) {
		ret = add_method(p, node, rule);
	} else if (node->type == YAML_SEQUENCE_NODE && list_len(node) > 0) {
		n = list_len(node);
		for (i = 0, ret = 0; i < n && !ret; i++)
			ret = add_method(p, list_item(p, node, i), rule);
	} else {
		return bad_value(p, node, "method", "a method or a list of methods");
	}
	if (!ret)
		rule->match |= TRIAGE_MATCH_METHOD;
	return ret;
}

/* A host name, or an IPv6 literal in brackets as the Host header writes it. */
static bool valid_host(const char *text)
{
	size_t len = strlen(text);

	if (len == 0 || len >= TRIAGE_HOST_LEN)
		return false;
	if (text[0] == '[')
		return len > 2 && text[len - 1] == ']' &&
		       strspn(text + 1, "0123456789abcdefABCDEF:.") == len - 2;
	for (; *text; text++)
		if (!isalnum((unsigned char)*text) && !strchr(".-_", *text))
			return false;
	return true;
}

/* Stores a host or host suffix in lower case, as the classifier lowercases the request. */
static int parse_host(struct parser *p, const yaml_node_t *node, const char *key,
		      struct triage_rule *rule)
{
	const char *text = text_of(node);
	size_t i, len;

	if (!text || !valid_host(text))
		return bad_value(p, node, key,
				 "a host name without port, of at most %d bytes from letters, digits, '.', '-' and '_'",
				 TRIAGE_HOST_LEN - 1);
	len = strlen(text);
	for (i = 0; i < len; i++)
		rule->host[i] = (char)tolower((unsigned char)text[i]);
	rule->host_len = (__u16)len;
	return 0;
}

static int parse_hosts(struct parser *p, yaml_node_t **v, struct triage_rule *rule)
{
	int ret;

	if (v[RULE_HOST] && v[RULE_HOST_SUFFIX])
		return fail(p, -EINVAL, v[RULE_HOST_SUFFIX],
			    "key 'host_suffix': expected host or host_suffix in one rule, not both");
	if (v[RULE_HOST]) {
		ret = parse_host(p, v[RULE_HOST], "host", rule);
		rule->match |= TRIAGE_MATCH_HOST;
		return ret;
	}
	if (v[RULE_HOST_SUFFIX]) {
		ret = parse_host(p, v[RULE_HOST_SUFFIX], "host_suffix", rule);
		rule->match |= TRIAGE_MATCH_HOST_SUFFIX;
		return ret;
	}
	return 0;
}

/*
 * A rule matches when Content-Length > above and < below, so the range
 * contains no value unless below exceeds above by at least 2.
 */
static int parse_content_length(struct parser *p, yaml_node_t **v, struct triage_rule *rule)
{
	int64_t above = 0, below = 0;
	int ret;

	if (v[RULE_CLEN_ABOVE]) {
		ret = get_size(p, v[RULE_CLEN_ABOVE], "content_length_above", &above);
		if (ret)
			return ret;
		rule->clen_above = (__u64)above;
		rule->match |= TRIAGE_MATCH_CLEN_ABOVE;
	}
	if (v[RULE_CLEN_BELOW]) {
		ret = get_size(p, v[RULE_CLEN_BELOW], "content_length_below", &below);
		if (ret)
			return ret;
		if (below == 0)
			return bad_value(p, v[RULE_CLEN_BELOW], "content_length_below",
					 "a size above 0, as no Content-Length is below 0");
		rule->clen_below = (__u64)below;
		rule->match |= TRIAGE_MATCH_CLEN_BELOW;
	}
	if (v[RULE_CLEN_ABOVE] && v[RULE_CLEN_BELOW] && below - above < 2)
		return bad_value(p, v[RULE_CLEN_BELOW], "content_length_below",
				 "at least content_length_above + 2 (%llu) for a non-empty range",
				 (unsigned long long)above + 2);
	return 0;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decodes the LEN hex digits after "hex:" into RAW and returns the number of bytes, or -EINVAL. */
static int decode_hex(const char *hex, size_t len, __u8 *raw)
{
	size_t i;
	int high, low;

	if (len == 0 || len % 2 || len / 2 > TRIAGE_RAW_LEN)
		return -EINVAL;
	for (i = 0; i < len; i += 2) {
		high = hex_digit(hex[i]);
		low = hex_digit(hex[i + 1]);
		if (high < 0 || low < 0)
			return -EINVAL;
		raw[i / 2] = (__u8)(high << 4 | low);
	}
	return (int)(len / 2);
}

/* A prefix is the bytes of the string, so "\0" in double quotes gives a NUL byte. */
static int parse_prefix(struct parser *p, const yaml_node_t *node, struct triage_rule *rule)
{
	const char *text;
	size_t len;
	int n;

	if (node->type != YAML_SCALAR_NODE)
		return bad_value(p, node, "prefix", "a string or hex:DIGITS");
	text = (const char *)node->data.scalar.value;
	len = node->data.scalar.length;
	if (len >= 4 && !memcmp(text, "hex:", 4)) {
		n = decode_hex(text + 4, len - 4, rule->raw);
		if (n < 0)
			return bad_value(p, node, "prefix",
					 "hex: and an even number of hex digits for 1 to %d bytes",
					 TRIAGE_RAW_LEN);
		rule->raw_len = (__u8)n;
		return 0;
	}
	if (len == 0 || len > TRIAGE_RAW_LEN)
		return bad_value(p, node, "prefix", "a prefix of 1 to %d bytes", TRIAGE_RAW_LEN);
	memcpy(rule->raw, text, len);
	rule->raw_len = (__u8)len;
	return 0;
}

enum { BYTES_OFFSET, BYTES_PREFIX, BYTES_NR };

static const char *const bytes_keys[] = {
	[BYTES_OFFSET] = "offset",
	[BYTES_PREFIX] = "prefix",
	[BYTES_NR] = NULL,
};

static int parse_bytes(struct parser *p, const yaml_node_t *node, struct triage_rule *rule)
{
	yaml_node_t *v[BYTES_NR];
	long long offset = 0;
	int ret;

	ret = read_mapping(p, node, "bytes", "bytes", bytes_keys, v);
	if (ret)
		return ret;
	if (!v[BYTES_PREFIX])
		return missing(p, node, "bytes", "prefix");
	if (v[BYTES_OFFSET]) {
		ret = get_integer(p, v[BYTES_OFFSET], "offset", 0, TRIAGE_PEEK_LEN - 1, &offset);
		if (ret)
			return ret;
	}
	ret = parse_prefix(p, v[BYTES_PREFIX], rule);
	if (ret)
		return ret;
	if (offset + rule->raw_len > TRIAGE_PEEK_LEN)
		return fail(p, -EINVAL, node,
			    "key 'bytes': expected offset + prefix length of at most %d, got %lld + %u",
			    TRIAGE_PEEK_LEN, offset, rule->raw_len);
	rule->raw_offset = (__u16)offset;
	rule->match |= TRIAGE_MATCH_RAW;
	return 0;
}

/* Clears the bits of ADDR after the first PREFIXLEN and returns whether any was set. */
static bool clear_host_bits(__u8 *addr, int size, int prefixlen)
{
	bool was_set = false;
	int i, keep;
	__u8 mask;

	for (i = 0; i < size; i++) {
		keep = prefixlen - i * 8;
		if (keep >= 8)
			mask = 0xff;
		else if (keep <= 0)
			mask = 0;
		else
			mask = (__u8)(0xff << (8 - keep));
		if (addr[i] & ~mask)
			was_set = true;
		addr[i] &= mask;
	}
	return was_set;
}

/* Parses "ADDRESS/PREFIXLEN" into RULE. A bare address matches that host only. */
static int parse_client(struct parser *p, const yaml_node_t *node, struct triage_rule *rule)
{
	const char *text = text_of(node);
	char addr[INET6_ADDRSTRLEN], network[INET6_ADDRSTRLEN];
	const char *slash;
	long long prefixlen;
	size_t len;
	int family, size;

	if (!text)
		goto invalid;
	slash = strchr(text, '/');
	len = slash ? (size_t)(slash - text) : strlen(text);
	if (len >= sizeof(addr))
		goto invalid;
	memcpy(addr, text, len);
	addr[len] = '\0';
	family = strchr(addr, ':') ? AF_INET6 : AF_INET;
	size = family == AF_INET ? 4 : 16;
	if (inet_pton(family, addr, rule->client_addr) != 1)
		goto invalid;
	prefixlen = size * 8;
	if (slash && parse_integer(slash + 1, &prefixlen))
		goto invalid;
	if (prefixlen < 0 || prefixlen > size * 8)
		goto invalid;

	if (clear_host_bits(rule->client_addr, size, (int)prefixlen)) {
		inet_ntop(family, rule->client_addr, network, sizeof(network));
		return bad_value(p, node, "client",
				 "a prefix with zero host bits, such as '%s/%lld'",
				 network, prefixlen);
	}
	rule->client_family = (__u8)family;
	rule->client_prefixlen = (__u8)prefixlen;
	rule->match |= TRIAGE_MATCH_CLIENT;
	return 0;
invalid:
	return bad_value(p, node, "client",
			 "an IPv4 or IPv6 address with an optional prefix length, such as 10.0.0.0/8");
}

/* Rules and categories */

/* Checks what a rule needs as a whole once its conditions are parsed. */
static int check_rule(struct parser *p, const yaml_node_t *node, yaml_node_t **v,
		      const char *context, struct triage_rule *rule)
{
	int i;

	if (!rule->match)
		return fail(p, -EINVAL, node,
			    "%s: rule without conditions; expected at least one of: " CONDITION_KEYS,
			    context);
	if (rule->match & ~(__u32)(TRIAGE_MATCH_RAW | TRIAGE_MATCH_CLIENT))
		rule->proto = TRIAGE_PROTO_HTTP;
	if (p->cfg->mode != TRIAGE_MODE_CONNECTION)
		return 0;

	for (i = 0; i < RULE_PRIORITY; i++)
		if (v[i] && i != RULE_CLIENT)
			return fail(p, -EINVAL, v[i],
				    "key '%s': payload rules need mode: payload, but this config sets mode: connection",
				    rule_keys[i]);
	return 0;
}

static int parse_conditions(struct parser *p, yaml_node_t **v, struct triage_rule *rule)
{
	int ret = 0;

	if (v[RULE_PATH])
		ret = parse_path(p, v[RULE_PATH], rule);
	if (!ret && v[RULE_METHOD])
		ret = parse_method(p, v[RULE_METHOD], rule);
	if (!ret)
		ret = parse_hosts(p, v, rule);
	if (!ret)
		ret = parse_content_length(p, v, rule);
	if (!ret && v[RULE_BYTES])
		ret = parse_bytes(p, v[RULE_BYTES], rule);
	if (!ret && v[RULE_CLIENT])
		ret = parse_client(p, v[RULE_CLIENT], rule);
	return ret;
}

static int parse_rule(struct parser *p, const yaml_node_t *node, int category,
		      const char *context)
{
	struct config *cfg = p->cfg;
	struct rule_config *rc = &cfg->rules[cfg->nr_rules];
	yaml_node_t *v[RULE_NR];
	long long priority = 0;
	int ret;

	if (cfg->nr_rules == TRIAGE_MAX_RULES)
		return fail(p, -E2BIG, node,
			    "key 'rules': expected at most %d rules in all categories together, got more",
			    TRIAGE_MAX_RULES);
	ret = read_mapping(p, node, "rules", "rule", rule_keys, v);
	if (ret)
		return ret;

	memset(rc, 0, sizeof(*rc));
	rc->line = line_of(node);
	rc->order = cfg->nr_rules;
	rc->category = category;
	rc->rule.category = (__u32)category;
	if (v[RULE_PRIORITY]) {
		ret = get_integer(p, v[RULE_PRIORITY], "priority", INT_MIN, INT_MAX, &priority);
		if (ret)
			return ret;
	}
	rc->priority = (int)priority;

	ret = parse_conditions(p, v, &rc->rule);
	if (!ret)
		ret = check_rule(p, node, v, context, &rc->rule);
	if (!ret)
		cfg->nr_rules++;
	return ret;
}

static int parse_rules(struct parser *p, const yaml_node_t *node, int category,
		       const char *context)
{
	size_t i, n;
	int ret;

	if (node->type != YAML_SEQUENCE_NODE)
		return bad_value(p, node, "rules", "a list of rules");
	n = list_len(node);
	for (i = 0; i < n; i++) {
		ret = parse_rule(p, list_item(p, node, i), category, context);
		if (ret)
			return ret;
	}
	return 0;
}

enum { CATEGORY_NAME, CATEGORY_POOL, CATEGORY_RULES, CATEGORY_NR };

static const char *const category_keys[] = {
	[CATEGORY_NAME] = "name",
	[CATEGORY_POOL] = "pool",
	[CATEGORY_RULES] = "rules",
	[CATEGORY_NR] = NULL,
};

static int parse_category_name(struct parser *p, const yaml_node_t *node, int index)
{
	struct category_config *category = &p->cfg->categories[index];
	char got[QUOTE_MAX + 8];
	int i, ret;

	ret = get_name(p, node, category->name);
	if (ret)
		return ret;
	for (i = 0; i < index; i++)
		if (!strcmp(p->cfg->categories[i].name, category->name))
			return fail(p, -EINVAL, node,
				    "key 'name': expected a unique category name, got %s, which the category on line %d already uses",
				    quote(node, got, sizeof(got)), p->cfg->categories[i].line);
	return 0;
}

static int parse_category(struct parser *p, const yaml_node_t *node, int index)
{
	struct category_config *category = &p->cfg->categories[index];
	yaml_node_t *v[CATEGORY_NR];
	char context[64];
	int ret;

	category->line = line_of(node);
	ret = read_mapping(p, node, "categories", "category", category_keys, v);
	if (ret)
		return ret;
	if (!v[CATEGORY_NAME]) {
		snprintf(context, sizeof(context), "category %d", index + 1);
		return missing(p, node, context, "name");
	}
	ret = parse_category_name(p, v[CATEGORY_NAME], index);
	if (ret)
		return ret;
	snprintf(context, sizeof(context), "category '%s'", category->name);
	if (!v[CATEGORY_POOL])
		return missing(p, node, context, "pool");

	ret = get_pool(p, v[CATEGORY_POOL], "pool", &category->pool);
	if (!ret && v[CATEGORY_RULES])
		ret = parse_rules(p, v[CATEGORY_RULES], index, context);
	return ret;
}

static int parse_categories(struct parser *p, const yaml_node_t *node)
{
	size_t i, n;
	int ret;

	if (node->type != YAML_SEQUENCE_NODE)
		return bad_value(p, node, "categories", "a list of categories");
	n = list_len(node);
	if (n > TRIAGE_MAX_CATEGORIES)
		return fail(p, -E2BIG, node,
			    "key 'categories': expected at most %d categories, got %zu",
			    TRIAGE_MAX_CATEGORIES, n);

	for (i = 0; i < n; i++) {
		ret = parse_category(p, list_item(p, node, i), (int)i);
		if (ret)
			return ret;
		p->cfg->nr_categories = (int)i + 1;
	}
	return 0;
}

/* Budget and emerging pools */

enum { BUDGET_CPUS, BUDGET_MEMORY, BUDGET_NR };

static const char *const budget_keys[] = {
	[BUDGET_CPUS] = "cpus",
	[BUDGET_MEMORY] = "memory",
	[BUDGET_NR] = NULL,
};

/* Parses budget before the pools, because each pool checks its limits against it. */
static int parse_budget(struct parser *p, const yaml_node_t *node)
{
	struct budget_config *budget = &p->cfg->budget;
	yaml_node_t *v[BUDGET_NR];
	int ret;

	ret = read_mapping(p, node, "budget", "budget", budget_keys, v);
	if (ret)
		return ret;
	if (!v[BUDGET_CPUS] && !v[BUDGET_MEMORY])
		return fail(p, -EINVAL, node, "key 'budget': expected at least one of: %s, %s",
			    budget_keys[BUDGET_CPUS], budget_keys[BUDGET_MEMORY]);
	if (v[BUDGET_CPUS]) {
		ret = get_cpus(p, v[BUDGET_CPUS], "cpus", &budget->cpus);
		if (ret)
			return ret;
		budget->has_cpus = true;
	}
	if (v[BUDGET_MEMORY])
		ret = get_positive_size(p, v[BUDGET_MEMORY], "memory", &budget->memory);
	return ret;
}

/* Returns the CPUs of POOL with WORKERS workers, or its fixed limit when that does not scale. */
static double pool_cpus(const struct pool_config *pool, uint32_t workers)
{
	if (pool->scaling.cpus_per_worker > 0)
		return workers * pool->scaling.cpus_per_worker;
	return pool->limits.cpus;
}

/* Returns the memory of POOL with WORKERS workers, or its fixed limit when that does not scale. */
static int64_t pool_memory(const struct pool_config *pool, uint32_t workers)
{
	if (pool->scaling.memory_per_worker > 0)
		return workers * pool->scaling.memory_per_worker;
	return pool->limits.memory_max;
}

/*
 * Sums of decimal fractions such as 0.1 are not exact in binary, so a sum
 * within a rounding error above the budget still fits.
 */
static int check_cpus_fit(struct parser *p, const yaml_node_t *node, bool at_min)
{
	const struct config *cfg = p->cfg;
	const struct pool_config *pool;
	double need = 0;
	int i;

	for (i = 0; i < cfg->nr_pools; i++) {
		pool = &cfg->pools[i];
		need += pool_cpus(pool, at_min ? pool->scaling.min : pool->workers);
	}
	if (need - cfg->budget.cpus > 1e-9)
		return bad_value(p, node, "cpus",
				 "at least %.10g CPUs, which the pools need at their %s worker counts",
				 need, at_min ? "minimum" : "starting");
	return 0;
}

/* Fixed limits may add up beyond int64_t, so the sum stops at INT64_MAX. */
static int check_memory_fits(struct parser *p, const yaml_node_t *node, bool at_min)
{
	const struct config *cfg = p->cfg;
	const struct pool_config *pool;
	int64_t need = 0, part;
	char text[32];
	int i;

	for (i = 0; i < cfg->nr_pools; i++) {
		pool = &cfg->pools[i];
		part = pool_memory(pool, at_min ? pool->scaling.min : pool->workers);
		if (__builtin_add_overflow(need, part, &need))
			need = INT64_MAX;
	}
	if (need > cfg->budget.memory)
		return bad_value(p, node, "memory",
				 "at least %s, which the pools need at their %s worker counts",
				 format_size(need, text, sizeof(text)),
				 at_min ? "minimum" : "starting");
	return 0;
}

/*
 * Checks that the configured pools fit the budget, both at their minimum
 * sizes and at their starting sizes. Templates are not counted, since their
 * pools appear at run time, when the controller keeps within the budget.
 */
static int check_budget_fits(struct parser *p, const yaml_node_t *node)
{
	const struct budget_config *budget = &p->cfg->budget;
	yaml_node_t *v[BUDGET_NR];
	int ret;

	/* parse_budget() read this mapping already; reading it again finds its keys' lines. */
	ret = read_mapping(p, node, "budget", "budget", budget_keys, v);
	if (!ret && budget->has_cpus)
		ret = check_cpus_fit(p, v[BUDGET_CPUS], true);
	if (!ret && budget->has_cpus)
		ret = check_cpus_fit(p, v[BUDGET_CPUS], false);
	if (!ret && budget->memory > 0)
		ret = check_memory_fits(p, v[BUDGET_MEMORY], true);
	if (!ret && budget->memory > 0)
		ret = check_memory_fits(p, v[BUDGET_MEMORY], false);
	return ret;
}

enum {
	EMERGE_OPT_KEY, EMERGE_OPT_TEMPLATE, EMERGE_OPT_RATE, EMERGE_OPT_FOR_S,
	EMERGE_OPT_TABLE_SIZE, EMERGE_OPT_MAX_POOLS, EMERGE_OPT_NR
};

static const char *const emerge_keys[] = {
	[EMERGE_OPT_KEY] = "key",
	[EMERGE_OPT_TEMPLATE] = "template",
	[EMERGE_OPT_RATE] = "rate",
	[EMERGE_OPT_FOR_S] = "for_s",
	[EMERGE_OPT_TABLE_SIZE] = "table_size",
	[EMERGE_OPT_MAX_POOLS] = "max_pools",
	[EMERGE_OPT_NR] = NULL,
};

/* The path and the Host header come from the payload, which connection mode never reads. */
static int parse_emerge_key(struct parser *p, const yaml_node_t *node)
{
	const char *text = text_of(node);

	if (text && !strcmp(text, "path"))
		p->cfg->emerge.key = EMERGE_PATH;
	else if (text && !strcmp(text, "host"))
		p->cfg->emerge.key = EMERGE_HOST;
	else
		return bad_value(p, node, "key", "path or host");
	if (p->cfg->mode == TRIAGE_MODE_CONNECTION)
		return fail(p, -EINVAL, node,
			    "key 'key': emerging pools need mode: payload, but this config sets mode: connection");
	return 0;
}

/* Looks up the template named by NODE and stores its index in OUT. */
static int get_template(struct parser *p, const yaml_node_t *node, int *out)
{
	const char *names[CONFIG_MAX_TEMPLATES + 1];
	char got[QUOTE_MAX + 8], list[CONFIG_MAX_TEMPLATES * (TRIAGE_NAME_LEN + 2)];
	const char *text = text_of(node);
	int i;

	for (i = 0; text && i < p->cfg->nr_templates; i++) {
		if (!strcmp(p->cfg->templates[i].name, text)) {
			*out = i;
			return 0;
		}
	}
	if (!p->cfg->nr_templates)
		return fail(p, -EINVAL, node,
			    "key 'template': unknown template; expected a name from the templates list, which is missing or empty, got %s",
			    quote(node, got, sizeof(got)));
	for (i = 0; i < p->cfg->nr_templates; i++)
		names[i] = p->cfg->templates[i].name;
	names[i] = NULL;
	return fail(p, -EINVAL, node,
		    "key 'template': unknown template; expected one of: %s, got %s",
		    join(names, list, sizeof(list)), quote(node, got, sizeof(got)));
}

/* Emerged pools take the entries of pools[] after the configured ones. */
static int check_emerge_room(struct parser *p, const yaml_node_t *node)
{
	const struct config *cfg = p->cfg;
	int room = TRIAGE_MAX_POOLS - cfg->nr_pools;

	if ((int)cfg->emerge.max_pools <= room)
		return 0;
	return fail(p, -EINVAL, node,
		    "key 'max_pools': expected at most %d, the room that %d configured pools leave of %d, got %u",
		    room, cfg->nr_pools, TRIAGE_MAX_POOLS, cfg->emerge.max_pools);
}

static int parse_emerge_limits(struct parser *p, const yaml_node_t *map, yaml_node_t **v)
{
	struct emerge_config *emerge = &p->cfg->emerge;
	int ret;

	ret = get_number(p, v[EMERGE_OPT_RATE], "rate", 0, 1000000, &emerge->rate);
	if (!ret && v[EMERGE_OPT_FOR_S])
		ret = get_uint32(p, v[EMERGE_OPT_FOR_S], "for_s", 1, 3600, &emerge->for_s);
	if (!ret && v[EMERGE_OPT_TABLE_SIZE])
		ret = get_uint32(p, v[EMERGE_OPT_TABLE_SIZE], "table_size", 16, 65536,
				 &emerge->table_size);
	if (!ret && v[EMERGE_OPT_MAX_POOLS])
		ret = get_uint32(p, v[EMERGE_OPT_MAX_POOLS], "max_pools", 1, TRIAGE_MAX_POOLS,
				 &emerge->max_pools);
	if (!ret)
		ret = check_emerge_room(p, v[EMERGE_OPT_MAX_POOLS] ? v[EMERGE_OPT_MAX_POOLS] : map);
	return ret;
}

/* Parses emerge after the templates, because emerge.template names one. */
static int parse_emerge(struct parser *p, const yaml_node_t *node)
{
	struct emerge_config *emerge = &p->cfg->emerge;
	yaml_node_t *v[EMERGE_OPT_NR];
	int i, ret;

	ret = read_mapping(p, node, "emerge", "emerge", emerge_keys, v);
	if (ret)
		return ret;
	/* key, template and rate are required and come first in emerge_keys. */
	for (i = EMERGE_OPT_KEY; i <= EMERGE_OPT_RATE; i++)
		if (!v[i])
			return missing(p, node, "emerge", emerge_keys[i]);
	emerge->for_s = 10;
	emerge->table_size = 1024;
	emerge->max_pools = 4;

	ret = parse_emerge_key(p, v[EMERGE_OPT_KEY]);
	if (!ret)
		ret = get_template(p, v[EMERGE_OPT_TEMPLATE], &emerge->template);
	if (!ret)
		ret = parse_emerge_limits(p, node, v);
	return ret;
}

/* Attach to a running service */

enum { ATTACH_PID, ATTACH_POOL, ATTACH_MOVE, ATTACH_NR };

static const char *const attach_keys[] = {
	[ATTACH_PID] = "pid",
	[ATTACH_POOL] = "pool",
	[ATTACH_MOVE] = "move_to_pool",
	[ATTACH_NR] = NULL,
};

static int parse_attach(struct parser *p, const yaml_node_t *node)
{
	struct attach_config *at = &p->cfg->attach;
	yaml_node_t *v[ATTACH_NR];
	const char *text;
	long long pid;
	int ret, pool;

	ret = read_mapping(p, node, "attach", "attach", attach_keys, v);
	if (ret)
		return ret;
	/* 'triage attach --pid' gives the pid, so the file may leave it out then. */
	if (!v[ATTACH_PID] && !p->cli_attach)
		return missing(p, node, "attach", "pid");
	at->line = line_of(node);
	if (v[ATTACH_PID]) {
		ret = get_integer(p, v[ATTACH_PID], "pid", 1, INT32_MAX, &pid);
		if (ret)
			return ret;
		at->pid = (int)pid;
	}
	if (v[ATTACH_POOL]) {
		ret = get_pool(p, v[ATTACH_POOL], "pool", &pool);
		if (ret)
			return ret;
		snprintf(at->pool, sizeof(at->pool), "%s", p->cfg->pools[pool].name);
	}
	if (v[ATTACH_MOVE]) {
		text = text_of(v[ATTACH_MOVE]);
		if (!text || (strcmp(text, "true") && strcmp(text, "false")))
			return bad_value(p, v[ATTACH_MOVE], "move_to_pool", "true or false");
		at->move_to_pool = !strcmp(text, "true");
	}
	return 0;
}

/* Applies the command line's attach settings, which take precedence over the file's. */
static int apply_cli_attach(struct parser *p)
{
	struct attach_config *at = &p->cfg->attach;

	at->pid = p->cli_attach->pid;
	at->move_to_pool = at->move_to_pool || p->cli_attach->move_to_pool;
	at->line = 0;
	if (p->cli_attach->pool[0])
		snprintf(at->pool, sizeof(at->pool), "%s", p->cli_attach->pool);
	if (config_pool_index(p->cfg, at->pool) >= 0 || !at->pool[0])
		return 0;
	return fail(p, -EINVAL, NULL, "--pool '%s': no pool of that name in 'pools'", at->pool);
}

/* Every pool needs a command, except the pool that an attached service's sockets form. */
static int check_commands(struct parser *p)
{
	struct config *cfg = p->cfg;
	int i;

	if (cfg->attach.pid && !cfg->attach.pool[0])
		snprintf(cfg->attach.pool, sizeof(cfg->attach.pool), "%s",
			 cfg->pools[cfg->default_pool].name);
	i = cfg->attach.pid ? config_pool_index(cfg, cfg->attach.pool) : -1;
	/* The service's pool is its own sockets: triage neither sizes nor removes it. */
	if (i >= 0 && (cfg->pools[i].scaling.enabled || cfg->pools[i].removable)) {
		if (p->err && p->err_len)
			snprintf(p->err, p->err_len, "%s:%d: pool '%s': key '%s': the attached service's pool consists of the service's own sockets, so triage cannot scale or remove it; remove the key or attach to another pool",
				 p->file, cfg->pools[i].line, cfg->pools[i].name,
				 cfg->pools[i].scaling.enabled ? "scaling" : "removable");
		return -EINVAL;
	}
	for (i = 0; i < cfg->nr_pools; i++) {
		if (cfg->pools[i].argc ||
		    (cfg->attach.pid && !strcmp(cfg->attach.pool, cfg->pools[i].name)))
			continue;
		if (p->err && p->err_len)
			snprintf(p->err, p->err_len, "%s:%d: pool '%s': missing required key 'command'; only the pool of an attached service may leave it out, so add 'attach: {pid: PID, pool: %s}' or pass the file to 'triage attach --pid PID --pool %s'",
				 p->file, cfg->pools[i].line, cfg->pools[i].name, cfg->pools[i].name,
				 cfg->pools[i].name);
		return -EINVAL;
	}
	return 0;
}

/* Document */

enum {
	TOP_PORT, TOP_ADDRESS, TOP_MODE, TOP_CGROUP_ROOT, TOP_INTERFACES, TOP_TICK_MS,
	TOP_SYN_PLACEMENT, TOP_DEFAULT_POOL, TOP_POOLS, TOP_CATEGORIES, TOP_BUDGET,
	TOP_TEMPLATES, TOP_EMERGE, TOP_ATTACH, TOP_NR
};

static const char *const top_keys[] = {
	[TOP_PORT] = "port",
	[TOP_ADDRESS] = "address",
	[TOP_MODE] = "mode",
	[TOP_CGROUP_ROOT] = "cgroup_root",
	[TOP_INTERFACES] = "interfaces",
	[TOP_TICK_MS] = "tick_ms",
	[TOP_SYN_PLACEMENT] = "syn_placement",
	[TOP_DEFAULT_POOL] = "default_pool",
	[TOP_POOLS] = "pools",
	[TOP_CATEGORIES] = "categories",
	[TOP_BUDGET] = "budget",
	[TOP_TEMPLATES] = "templates",
	[TOP_EMERGE] = "emerge",
	[TOP_ATTACH] = "attach",
	[TOP_NR] = NULL,
};

/* Settings of the listener and the controller, read before pools and categories. */
static int parse_settings(struct parser *p, yaml_node_t **v)
{
	struct config *cfg = p->cfg;
	long long value = 0;
	int ret;

	ret = get_integer(p, v[TOP_PORT], "port", 1, 65535, &value);
	cfg->port = (uint16_t)value;
	if (!ret && v[TOP_ADDRESS])
		ret = parse_address(p, v[TOP_ADDRESS]);
	if (!ret && v[TOP_MODE])
		ret = parse_mode(p, v[TOP_MODE]);
	if (!ret && v[TOP_CGROUP_ROOT])
		ret = parse_cgroup_root(p, v[TOP_CGROUP_ROOT]);
	if (!ret && v[TOP_INTERFACES])
		ret = parse_interfaces(p, v[TOP_INTERFACES]);
	if (!ret && v[TOP_SYN_PLACEMENT])
		ret = parse_syn_placement(p, v[TOP_SYN_PLACEMENT]);
	if (!ret && v[TOP_TICK_MS]) {
		ret = get_integer(p, v[TOP_TICK_MS], "tick_ms", 100, 60000, &value);
		cfg->tick_ms = (int)value;
	}
	if (!ret && v[TOP_BUDGET])
		ret = parse_budget(p, v[TOP_BUDGET]);
	return ret;
}

static int parse_root(struct parser *p, const yaml_node_t *root)
{
	yaml_node_t *v[TOP_NR];
	int ret;

	if (root->type != YAML_MAPPING_NODE)
		return fail(p, -EINVAL, root,
			    "expected a mapping with port, default_pool and pools");
	ret = read_mapping(p, root, "config", "config", top_keys, v);
	if (ret)
		return ret;
	if (!v[TOP_PORT])
		return missing(p, root, NULL, "port");
	if (!v[TOP_POOLS])
		return missing(p, root, NULL, "pools");
	if (!v[TOP_DEFAULT_POOL])
		return missing(p, root, NULL, "default_pool");

	ret = parse_settings(p, v);
	if (!ret)
		ret = parse_pools(p, v[TOP_POOLS]);
	if (!ret && v[TOP_TEMPLATES])
		ret = parse_templates(p, v[TOP_TEMPLATES]);
	if (!ret)
		ret = get_pool(p, v[TOP_DEFAULT_POOL], "default_pool", &p->cfg->default_pool);
	if (!ret && v[TOP_CATEGORIES])
		ret = parse_categories(p, v[TOP_CATEGORIES]);
	if (!ret && v[TOP_EMERGE])
		ret = parse_emerge(p, v[TOP_EMERGE]);
	if (!ret && v[TOP_BUDGET])
		ret = check_budget_fits(p, v[TOP_BUDGET]);
	if (!ret && v[TOP_ATTACH])
		ret = parse_attach(p, v[TOP_ATTACH]);
	if (!ret && p->cli_attach)
		ret = apply_cli_attach(p);
	if (!ret)
		ret = check_commands(p);
	return ret;
}

static int yaml_error(struct parser *p, const yaml_parser_t *parser)
{
	const char *problem = parser->problem ? parser->problem : "unknown error";

	if (parser->error == YAML_MEMORY_ERROR)
		return out_of_memory(p);
	if (!p->err || !p->err_len)
		return -EINVAL;
	if (parser->error == YAML_READER_ERROR)
		snprintf(p->err, p->err_len, "%s: invalid YAML: %s at byte %zu", p->file,
			 problem, parser->problem_offset);
	else if (parser->context)
		snprintf(p->err, p->err_len, "%s:%zu:%zu: invalid YAML: %s (%s on line %zu)",
			 p->file, parser->problem_mark.line + 1, parser->problem_mark.column + 1,
			 problem, parser->context, parser->context_mark.line + 1);
	else
		snprintf(p->err, p->err_len, "%s:%zu:%zu: invalid YAML: %s", p->file,
			 parser->problem_mark.line + 1, parser->problem_mark.column + 1, problem);
	return -EINVAL;
}

/* Rejects a second document, which would otherwise be silently ignored. */
static int check_single_document(struct parser *p, yaml_parser_t *parser)
{
	yaml_document_t next;
	yaml_node_t *root;
	int ret = 0;

	if (!yaml_parser_load(parser, &next))
		return yaml_error(p, parser);
	root = yaml_document_get_root_node(&next);
	if (root)
		ret = fail(p, -EINVAL, root, "expected one YAML document, found a second one");
	yaml_document_delete(&next);
	return ret;
}

static int parse_document(struct parser *p, yaml_parser_t *parser)
{
	yaml_node_t *root = yaml_document_get_root_node(p->doc);
	int ret;

	if (!root)
		return fail(p, -EINVAL, NULL,
			    "the config is empty; expected a mapping with port, default_pool and pools");
	ret = check_single_document(p, parser);
	if (!ret)
		ret = parse_root(p, root);
	return ret;
}

static int compare_rules(const void *a, const void *b)
{
	const struct rule_config *x = a, *y = b;

	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	return x->order - y->order;
}

static void init_config(struct config *cfg, const char *name)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->file, sizeof(cfg->file), "%s", name);
	cfg->family = AF_INET;
	strcpy(cfg->addr_text, "0.0.0.0");
	cfg->mode = TRIAGE_MODE_PAYLOAD;
	cfg->tick_ms = 1000;
	cfg->budget.memory = -1;
	cfg->emerge.template = -1;
}

static int parse_text(const char *name, const char *text, size_t len, struct config *cfg,
		      const struct attach_config *cli_attach, char *err, size_t err_len)
{
	struct parser p = {
		.file = name ? name : "<config>",
		.cfg = cfg,
		.err = err,
		.err_len = err_len,
		.cli_attach = cli_attach,
	};
	yaml_parser_t parser;
	yaml_document_t doc;
	int ret;

	if (err && err_len)
		err[0] = '\0';
	init_config(cfg, p.file);
	if (!yaml_parser_initialize(&parser))
		return out_of_memory(&p);
	/* libyaml asserts on a NULL input, even for an empty one. */
	yaml_parser_set_input_string(&parser, (const unsigned char *)(text ? text : ""),
				     text ? len : 0);

	if (yaml_parser_load(&parser, &doc)) {
		p.doc = &doc;
		ret = parse_document(&p, &parser);
		yaml_document_delete(&doc);
	} else {
		ret = yaml_error(&p, &parser);
	}
	yaml_parser_delete(&parser);

	if (ret) {
		config_free(cfg);
		memset(cfg, 0, sizeof(*cfg));
		return ret;
	}
	qsort(cfg->rules, cfg->nr_rules, sizeof(cfg->rules[0]), compare_rules);
	return 0;
}

int config_parse(const char *name, const char *text, size_t len, struct config *cfg,
		 char *err, size_t err_len)
{
	return parse_text(name, text, len, cfg, NULL, err, err_len);
}

/*
 * Reads FILE into a NUL-terminated buffer. A file of CONFIG_MAX_FILE_SIZE
 * bytes or more fails with -EFBIG.
 */
static int read_file(const char *file, char **text, size_t *len)
{
	size_t size = 4096, used = 0;
	char *buf = NULL, *bigger;
	ssize_t n;
	int fd, ret = 0;

	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		if (!buf || used + 1 == size) {
			size = buf ? size * 2 : size;
			if (size > CONFIG_MAX_FILE_SIZE + 1) {
				ret = -EFBIG;
				break;
			}
			bigger = realloc(buf, size);
			if (!bigger) {
				ret = -ENOMEM;
				break;
			}
			buf = bigger;
		}
		n = read(fd, buf + used, size - used - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? -errno : 0;
			break;
		}
		used += (size_t)n;
	}
	close(fd);
	if (ret) {
		free(buf);
		return ret;
	}
	buf[used] = '\0';
	*text = buf;
	*len = used;
	return 0;
}

int config_load(const char *file, struct config *cfg, char *err, size_t err_len)
{
	return config_load_attach(file, NULL, cfg, err, err_len);
}

int config_load_attach(const char *file, const struct attach_config *cli, struct config *cfg,
		       char *err, size_t err_len)
{
	char *text = NULL;
	size_t len = 0;
	int ret;

	ret = read_file(file, &text, &len);
	if (ret) {
		memset(cfg, 0, sizeof(*cfg));
		if (err && err_len)
			snprintf(err, err_len, "%s: cannot read: %s", file, strerror(-ret));
		return ret;
	}
	ret = parse_text(file, text, len, cfg, cli, err, err_len);
	free(text);
	return ret;
}

/* Strings of a borrowed pool belong to its template, which frees them. */
static void free_pool_strings(struct pool_config *pool)
{
	int i;

	if (pool->borrowed)
		return;
	for (i = 0; i < CONFIG_MAX_ARGS; i++) {
		free(pool->argv[i]);
		pool->argv[i] = NULL;
	}
	for (i = 0; i < CONFIG_MAX_ENV; i++) {
		free(pool->env[i]);
		pool->env[i] = NULL;
	}
	pool->argc = 0;
	pool->envc = 0;
}

void config_free(struct config *cfg)
{
	int i;

	for (i = 0; i < TRIAGE_MAX_POOLS; i++)
		free_pool_strings(&cfg->pools[i]);
	for (i = 0; i < CONFIG_MAX_TEMPLATES; i++)
		free_pool_strings(&cfg->templates[i]);
}

int config_pool_index(const struct config *cfg, const char *name)
{
	int i;

	for (i = 0; name && i < cfg->nr_pools; i++)
		if (!strcmp(cfg->pools[i].name, name))
			return i;
	return -1;
}

const char *config_mode_name(uint32_t mode)
{
	switch (mode) {
	case TRIAGE_MODE_PAYLOAD:
		return "payload";
	case TRIAGE_MODE_CONNECTION:
		return "connection";
	default:
		return "unknown";
	}
}
