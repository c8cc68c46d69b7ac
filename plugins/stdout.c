/* stdout.c -- sink stage: prints each answer's session and text, one line each. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <porch/plugin.h>

/*
 * Writes "SESSION\tTEXT\n", or "SESSION\terror: NAME: TEXT\n" for a failed
 * message (one routed here from an error port).  The text's own newlines are
 * written as they are.  Returns 0, or -1 with errno set if writing failed.
 */
static int
stdout_write(const porch_msg *m)
{
	const char *session = porch_msg_session(m);
	enum porch_error err = porch_msg_error(m);
	int failed = 0;

	if (session == NULL)
		session = "";
	if (err != PORCH_ERR_NONE) {
		const char *why = porch_msg_error_text(m);
		if (printf("%s\terror: %s: %s\n", session, porch_error_name(err),
		    why ? why : "") < 0)
			failed = 1;
	} else {
		size_t len = 0;
		const char *text = porch_msg_text(m, &len);
		if (fputs(session, stdout) == EOF || putchar('\t') == EOF)
			failed = 1;
		else if (len > 0 && fwrite(text, 1, len, stdout) != len)
			failed = 1;
		else if (putchar('\n') == EOF)
			failed = 1;
	}
	if (fflush(stdout) == EOF)
		failed = 1;
	if (failed) {
		int e = errno;
		clearerr(stdout); /* report each failing message, not only the first */
		errno = e ? e : EIO;
		return -1;
	}
	return 0;
}

static void
stdout_process(porch_stage *st, porch_msg *m)
{
	errno = 0;
	if (stdout_write(m) != 0) {
		porch_fail(st, m, PORCH_ERR_INTERNAL, "stdout: %s", strerror(errno));
		return;
	}
	porch_done(st, m);
}

const struct porch_plugin porch_plugin = {
	PORCH_PLUGIN_HEADER,
	.kind = PORCH_KIND_STAGE,
	.name = "stdout",
	.summary = "sink: prints each answer's session and text, one line each",
	.params = NULL,
	.outputs = NULL,
	.process = stdout_process,
};
