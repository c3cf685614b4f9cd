/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* A small levelled logger: stderr in the foreground, one line per call. */
#ifndef TRIAGE_LOG_H
#define TRIAGE_LOG_H

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

extern enum log_level log_threshold;

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Routes libbpf's own messages through log_msg(), one level down. */
void log_setup_libbpf(void);

#define pr_err(...)	log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define pr_warn(...)	log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define pr_info(...)	log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define pr_debug(...)	log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif /* TRIAGE_LOG_H */
