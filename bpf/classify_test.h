/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Value of the result map of classify_test.bpf.c, read by its test. */
#ifndef TRIAGE_CLASSIFY_TEST_H
#define TRIAGE_CLASSIFY_TEST_H

#include "triage.h"

struct classify_test_result {
	struct triage_http_req req;
	__u32 category;			/* triage_match_rules() */
	__s32 parse_ret;		/* triage_parse_http() */
};

#endif /* TRIAGE_CLASSIFY_TEST_H */
