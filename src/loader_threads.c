/*
 * loader_threads.c -- <pipeline threads="N|auto">: how many shards porch
 * run makes (shards.h), read with the pipeline's other attributes.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loader_int.h"
#include "util.h"

long
threads_attr(xmlNodePtr root, struct diag *d)
{
	char *v = attr(root, "threads");
	long out = 1;
	if (v == NULL)
		return out;
	if (strcmp(v, "auto") == 0) {
		out = 0;
	} else {
		struct cfg_pos at = attr_value_pos(d, root, "threads");
		int64_t n;
		int rc = parse_int64(v, &n);
		if (rc == 0 && n == 0)
			diag_error(d, at.line, at.col, "threads='0': a pipeline needs at least "
			    "one thread (1 to %d, or auto for one per CPU)", THREADS_MAX);
		else if (rc != 0 || n < 1 || n > THREADS_MAX)
			diag_error(d, at.line, at.col, "threads='%s' is not a number of threads "
			    "(1 to %d, or auto for one per CPU)", v, THREADS_MAX);
		else
			out = (long)n;
	}
	free(v);
	return out;
}

unsigned
config_threads_auto(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	return n > THREADS_MAX ? THREADS_MAX : (unsigned)n;
}
