/*
 * cmd_reload.c -- porch reload: tell a running porch to load its pipeline
 * file again, and wait for its answer.
 *
 * The running porch was started with --pid-file PATH; it writes the outcome
 * of every reload to PATH.reload ("N ok|failed MESSAGE", reload.c).  This
 * command notes N, sends SIGHUP, and waits for a higher N.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "run.h"

static const char reload_usage[] =
    "usage: porch reload [--timeout DURATION] PID-FILE\n"
    "\n"
    "Makes the porch that wrote PID-FILE (porch run --pid-file) load its pipeline\n"
    "file again, as SIGHUP does, and waits for the outcome: the new pipeline\n"
    "takes new requests and the old one finishes its own, or, if the file is\n"
    "invalid or a plugin fails to start, the running pipeline goes on unchanged\n"
    "and the reason is printed (porch run's stderr has every error).\n"
    "\n"
    "  -t, --timeout D  how long to wait for the outcome (default 60s)\n"
    "\n"
    "exit status: 0 reloaded, 1 the reload failed or no answer came,\n"
    "2 usage, or no porch runs with that pid file.\n";

/* The attempt number in the status file (0 when none), and its message;
 * when out is not NULL, the lines after the first (the errors of a file
 * that did not load) are copied to it. */
static unsigned long long
read_status(const char *path, char *msg, size_t len, FILE *out)
{
	msg[0] = '\0';
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 0;
	unsigned long long n = 0;
	char line[1200];
	if (fgets(line, sizeof line, f) != NULL) {
		char *end;
		n = strtoull(line, &end, 10);
		while (*end == ' ')
			end++;
		line[strcspn(line, "\n")] = '\0';
		snprintf(msg, len, "%s", end);
		if (out != NULL) {
			int c;
			while ((c = getc(f)) != EOF)
				putc(c, out);
		}
	}
	fclose(f);
	return n;
}

static long
read_pid(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		cli_error("reload: cannot read the pid file %s: %s (is porch running with "
		    "--pid-file %s?)", path, strerror(errno), path);
		return -1;
	}
	long pid = -1;
	if (fscanf(f, "%ld", &pid) != 1 || pid <= 1) {
		cli_error("reload: %s does not hold a process id", path);
		pid = -1;
	}
	fclose(f);
	return pid;
}

int
cmd_reload(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	double timeout = 60;
	int c;
	while ((c = getopt_long(argc, argv, "ht:", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (cli_parse_duration(optarg, &timeout) != 0) {
				cli_error("reload: --timeout '%s' is not a duration (an integer "
				    "with ms, s, m or h, e.g. 30s)", optarg);
				return EXIT_INVALID;
			}
			break;
		case 'h':
			fputs(reload_usage, stdout);
			return EXIT_OK;
		default:
			fputs(reload_usage, stderr);
			return EXIT_INVALID;
		}
	}
	if (optind != argc - 1) {
		cli_error("reload: expected the pid file of a running porch");
		fputs(reload_usage, stderr);
		return EXIT_INVALID;
	}
	const char *pid_path = argv[optind];
	long pid = read_pid(pid_path);
	if (pid < 0)
		return EXIT_INVALID;
	char status[4200], msg[1200];
	run_status_path(pid_path, status, sizeof status);
	unsigned long long before = read_status(status, msg, sizeof msg, NULL);
	if (kill((pid_t)pid, SIGHUP) != 0) {
		cli_error("reload: cannot signal process %ld (from %s): %s", pid, pid_path,
		    strerror(errno));
		return EXIT_INVALID;
	}
	/* polled: the answer is a file another process renames into place */
	struct timespec tick = { 0, 20 * 1000 * 1000 };
	for (double waited = 0; waited < timeout; waited += 0.02) {
		unsigned long long n = read_status(status, msg, sizeof msg, NULL);
		if (n > before) {
			int ok = strncmp(msg, "ok ", 3) == 0;
			if (ok) {
				const char *text = strchr(msg, ' ') + 1;
				printf("porch: reload: %s\n", text);
				return EXIT_OK;
			}
			/* again, printing the file's errors first, as check
			 * prints them */
			read_status(status, msg, sizeof msg, stderr);
			const char *text = strchr(msg, ' ') ? strchr(msg, ' ') + 1 : msg;
			cli_error("reload: %s", text);
			return EXIT_RUNTIME;
		}
		if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
			cli_error("reload: process %ld ended before it answered", pid);
			return EXIT_RUNTIME;
		}
		nanosleep(&tick, NULL);
	}
	cli_error("reload: no answer from process %ld within %.3gs (%s was not updated)",
	    pid, timeout, status);
	return EXIT_RUNTIME;
}
