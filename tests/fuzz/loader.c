/*
 * loader.c -- libFuzzer harness: the pipeline loader, config_load, the
 * function `porch check` uses (src/cmd_check.c), on the input as a file:
 * XML, the schema, the graph and, with the built plugins on
 * PORCH_PLUGIN_PATH (make fuzz sets it), every parameter.  Errors go to
 * /dev/null; the loader must neither crash nor leak, and must return a
 * pipeline exactly when it reported no error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/loader.h"
#include "fuzz.h"

static char path[4096];
static FILE *devnull;

static void
setup(void)
{
	const char *tmp = getenv("TMPDIR");
	char dir[4096];
	snprintf(dir, sizeof dir, "%s/porch-fuzz-loader.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		abort();
	}
	snprintf(path, sizeof path, "%s/pipeline.xml", dir);
	devnull = fopen("/dev/null", "w");
	if (devnull == NULL)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (devnull == NULL)
		setup();
	FILE *f = fopen(path, "wb");
	if (f == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
		perror(path);
		abort();
	}
	struct diag d;
	diag_init(&d, path, devnull);
	struct cfg_pipeline *p = config_load(path, config_schema_path(), NULL, 0, NULL, 0,
	    NULL, &d);
	if ((p != NULL) != (d.errors == 0)) {
		fprintf(stderr, "loader: %s with %d errors reported\n",
		    p ? "a pipeline" : "no pipeline", d.errors);
		abort();
	}
	if (p != NULL)
		config_free(p);
	return 0;
}
