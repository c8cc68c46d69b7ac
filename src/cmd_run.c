/*
 * cmd_run.c -- porch run: load, start, and run a pipeline until it is done.
 *
 * The first SIGINT or SIGTERM drains: sources stop, requests in flight
 * finish, and at the drain deadline whatever is left ends as expired.  A
 * second one exits at once.  SIGUSR1 prints the statistics table.  SIGHUP
 * reloads the file (reload.c).  Under systemd (Type=notify), each of
 * these is also told to the service manager (notify.c).
 */
#include <errno.h>
#include <sys/stat.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "cli.h"
#include "nats.h"
#include "node.h"
#include "loader.h"
#include "graph.h"
#include "control.h"
#include "log.h"
#include "notify.h"
#include "run.h"
#include "shards.h"
#include "stats.h"
#include "util.h"

#define DEFAULT_DRAIN_MS 30000
/* how often systemctl status's line is refreshed under systemd */
#define NOTIFY_STATUS_S 5.

static const char run_usage[] =
    "usage: porch run [--plugin-path DIR] [--set NAME.PARAM=VALUE]\n"
    "                 [--stats-json PATH] [--drain-timeout DURATION]\n"
    "                 [--pid-file PATH] [--control HOST:PORT] [--log-format text|json]\n"
    "                 [--log-level error|warn|info|debug] [--threads N|auto]\n"
    "                 [--node NAME] [--nats-url URL] [--nats-shard K] [--quiet] FILE\n"
    "\n"
    "Runs the pipeline until its sources end and every request has an outcome.\n"
    "SIGINT/SIGTERM drain (a second one exits at once); SIGUSR1 prints statistics;\n"
    "SIGHUP (or porch reload) loads the file again and swaps the pipeline for it\n"
    "without dropping a request; an invalid file changes nothing.\n"
    "\n"
    "  -P, --plugin-path DIR  search DIR for plugins first (repeatable)\n"
    "  -s, --set N.P=V        set parameter P of stage or worker N (repeatable)\n"
    "  -j, --stats-json PATH  write the statistics as JSON to PATH on exit\n"
    "  -d, --drain-timeout D  how long a drain may take (default 30s)\n"
    "  -p, --pid-file PATH    write the process id to PATH once running\n"
    "                         (signals are handled from then on); removed on exit\n"
    "  -q, --quiet            do not print the statistics table on exit\n"
    "      --control H:P      serve /metrics, /graph and /healthz on H:P (for porch\n"
    "                         top and the graph page without an http stage)\n"
    "      --log-format F     text (default): each line with its time and level\n"
    "                         first; json: one object a line\n"
    "      --log-level L      the most detailed level written: error, warn,\n"
    "                         info (default) or debug\n"
    "      --threads N|auto   run N shards, a thread and a copy of the pipeline\n"
    "                         each (auto: one per CPU); overrides threads= in FILE\n"
    "      --node NAME        run only the stages with node=\"NAME\" (and those\n"
    "                         with no node=); channels to others go over NATS\n"
    "      --nats-url URL     the NATS server of transport=\"nats\" channels\n"
    "                         (instead of the file's nats-url=)\n"
    "      --nats-shard K     the shard of sessions this node takes from channels\n"
    "                         over NATS with shards=\"N\" (0 to N-1)\n"
    "\n"
    "exit status: 0 ran to the end or drained, 1 runtime failure,\n"
    "2 invalid pipeline or usage, 128+N a second signal N.\n";

static void
on_drain_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop; (void)revents;
	struct run *r = w->data;
	log_warn("drain deadline (%.3gs) passed with %llu requests in flight; "
	    "they end as expired", r->drain_s, (unsigned long long)r->led->inflight);
	for (struct generation *gen = r->retiring; gen != NULL; gen = gen->next)
		graph_abort(gen->g, "the drain deadline passed");
	graph_abort(r->g, "the drain deadline passed");
}

static void
on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)revents;
	struct run *r = w->data;
	const char *name = w->signum == SIGINT ? "SIGINT" : "SIGTERM";
	if (++r->signals > 1) {
		log_warn("second %s: exiting at once with %llu requests in flight",
		    name, (unsigned long long)r->led->inflight);
		exit(128 + w->signum);
	}
	log_info("%s: draining %llu requests in flight (deadline %.3gs; "
	    "send again to exit at once)", name, (unsigned long long)r->led->inflight,
	    r->drain_s);
	notify_stopping("draining %llu requests in flight (%s; deadline %.3gs)",
	    (unsigned long long)r->led->inflight, name, r->drain_s);
	ev_timer_init(&r->drain_w, on_drain_deadline, r->drain_s, 0);
	r->drain_w.data = r;
	ev_timer_start(loop, &r->drain_w);
	ev_unref(loop); /* the deadline alone must not keep the loop running */
	for (struct generation *gen = r->retiring; gen != NULL; gen = gen->next)
		graph_drain(gen->g);
	graph_drain(r->g);
}

static void
on_usr1(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop; (void)revents;
	struct run *r = w->data;
	stats_log(r->g, 1);
}

/* systemctl status's line: what the pipeline holds now. */
static void
on_notify_status(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop; (void)revents;
	struct run *r = w->data;
	notify_status("%s %s: %llu requests in flight, %llu accepted",
	    r->signals > 0 ? "draining" : "running", r->cfg->name,
	    (unsigned long long)r->led->inflight,
	    (unsigned long long)r->led->totals.accepted);
}

static void
on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop; (void)revents;
	struct run *r = w->data;
	/* RELOADING=1 ... READY=1 only around a reload that is tried */
	int told = r->signals == 0 && !r->replay;
	uint64_t failures = r->led->reload_failures;
	if (told)
		notify_reloading(r->file);
	run_reload(r);
	if (told)
		notify_ready("running %s: %s; %llu requests in flight", r->cfg->name,
		    r->led->reload_failures == failures ? "reloaded" :
		    "reload failed, the pipeline goes on unchanged",
		    (unsigned long long)r->led->inflight);
}

/* Written whole under a temporary name, so a reader never sees half a pid. */
int
run_write_pid(const char *path, char *err, size_t errlen)
{
	char tmp[4096];
	struct stat sb;
	/* a renamed file would replace what is there: only a regular file may
	 * be replaced (as root, "--pid-file /dev/null" would remove the device) */
	int special = stat(path, &sb) == 0 && !S_ISREG(sb.st_mode);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(special ? path : tmp, "w");
	if (f == NULL || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0 ||
	    (!special && rename(tmp, path) != 0)) {
		snprintf(err, errlen, "cannot write the pid file %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static const char replay_usage[] =
    "usage: porch replay [--source STAGE] [--plugin-path DIR] [--set NAME.PARAM=VALUE]\n"
    "                    [--stats-json PATH] [--drain-timeout DURATION]\n"
    "                    [--pid-file PATH] [--quiet] DLQ-FILE FILE\n"
    "\n"
    "Feeds the dead letters in DLQ-FILE (written by the dlq sink) back into the\n"
    "pipeline FILE: its source stage reads them instead of its own input, each\n"
    "record's input, session and metadata becoming a request again.  Records\n"
    "that fail again may be appended to DLQ-FILE; they are not read twice.\n"
    "\n"
    "  --source STAGE         the stage to feed (default: the only source)\n"
    "  other options as for porch run\n"
    "\n"
    "exit status: as for porch run.\n";

/*
 * The dead letters are copied to an unlinked temporary file that becomes
 * standard input: the pipeline may append to DLQ-FILE while it runs, and
 * a record that fails again must not be read again.
 */
static int
open_dead_letters(const char *path)
{
	FILE *in = fopen(path, "r");
	if (in == NULL) {
		cli_error("replay: cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	const char *dir = getenv("TMPDIR");
	char tmpl[4096];
	snprintf(tmpl, sizeof tmpl, "%s/porch-replay.XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(tmpl);
	if (fd < 0) {
		cli_error("replay: cannot make a temporary file in %s: %s",
		    dir && *dir ? dir : "/tmp", strerror(errno));
		fclose(in);
		return -1;
	}
	unlink(tmpl);
	char buf[65536];
	size_t n;
	int rc = 0;
	while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
		if (write(fd, buf, n) != (ssize_t)n) {
			cli_error("replay: cannot copy %s: %s", path, strerror(errno));
			rc = -1;
			break;
		}
	}
	if (ferror(in)) {
		cli_error("replay: cannot read %s: %s", path, strerror(errno));
		rc = -1;
	}
	fclose(in);
	if (rc == 0 && (lseek(fd, 0, SEEK_SET) != 0 || dup2(fd, 0) < 0)) {
		cli_error("replay: cannot make %s standard input: %s", path, strerror(errno));
		rc = -1;
	}
	close(fd);
	return rc;
}

static int run_command(int argc, char **argv, int replay);

int
cmd_run(int argc, char **argv)
{
	return run_command(argc, argv, 0);
}

int
cmd_replay(int argc, char **argv)
{
	return run_command(argc, argv, 1);
}

static int
run_command(int argc, char **argv, int replay)
{
	static const struct option opts[] = {
		{ "source", required_argument, NULL, 'S' },
		{ "plugin-path", required_argument, NULL, 'P' },
		{ "set", required_argument, NULL, 's' },
		{ "stats-json", required_argument, NULL, 'j' },
		{ "drain-timeout", required_argument, NULL, 'd' },
		{ "pid-file", required_argument, NULL, 'p' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "log-format", required_argument, NULL, 'F' },
		{ "control", required_argument, NULL, 'C' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "threads", required_argument, NULL, 'T' },
		{ "node", required_argument, NULL, 'N' },
		{ "nats-url", required_argument, NULL, 'U' },
		{ "nats-shard", required_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli_common common = { 0 };
	struct node_opts nopts = { NULL, NULL, -1 };
	const char *stats_path = NULL, *pid_path = NULL, *source = NULL, *control_spec = NULL;
	const char *usage = replay ? replay_usage : run_usage, *cmd = replay ? "replay" : "run";
	int quiet = 0, c, status = EXIT_OK;
	enum log_format log_fmt = LOG_TEXT;
	enum porch_log_level log_level = PORCH_LOG_INFO;
	double drain_s = DEFAULT_DRAIN_MS / 1000.0;
	long threads = -1;            /* -1: the file's; 0: auto */
	char err[2048];
	while ((c = getopt_long(argc, argv, "hqP:s:j:d:p:", opts, NULL)) != -1) {
		switch (c) {
		case 'S':
			if (!replay) {
				fputs(usage, stderr);
				return EXIT_INVALID;
			}
			source = optarg;
			break;
		case 'P':
			cli_add_plugin_dir(&common, optarg);
			break;
		case 's':
			if (cli_add_override(&common, cmd, optarg) != 0)
				return EXIT_INVALID;
			break;
		case 'j':
			stats_path = optarg;
			break;
		case 'd':
			if (cli_parse_duration(optarg, &drain_s) != 0) {
				cli_error("%s: --drain-timeout '%s' is not a duration "
				    "(an integer with ms, s, m or h, e.g. 30s or 500ms)",
				    cmd, optarg);
				return EXIT_INVALID;
			}
			break;
		case 'p':
			pid_path = optarg;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'C':
			control_spec = optarg;
			break;
		case 'F':
			if (log_parse_format(optarg, &log_fmt) != 0) {
				cli_error("%s: --log-format '%s': expected text or json", cmd, optarg);
				return EXIT_INVALID;
			}
			break;
		case 'N':
			nopts.node = optarg;
			break;
		case 'U':
			nopts.nats_url = optarg;
			break;
		case 'K': {
			int64_t k;
			if (parse_int64(optarg, &k) != 0 || k < 0 || k > 1023) {
				cli_error("%s: --nats-shard '%s' is not an integer from 0 to 1023",
				    cmd, optarg);
				return EXIT_INVALID;
			}
			nopts.shard = (int)k;
			break;
		}
		case 'L':
			if (log_parse_level(optarg, &log_level) != 0) {
				cli_error("%s: --log-level '%s': expected error, warn, info or debug",
				    cmd, optarg);
				return EXIT_INVALID;
			}
			break;
		case 'T': {
			int64_t v;
			if (strcmp(optarg, "auto") == 0) {
				threads = 0;
			} else if (parse_int64(optarg, &v) != 0 || v < 1 || v > THREADS_MAX) {
				cli_error("%s: --threads '%s': expected a number of threads from 1 to "
				    "%d, or auto (one per CPU)", cmd, optarg, THREADS_MAX);
				cli_free(&common);
				return EXIT_INVALID;
			} else {
				threads = (long)v;
			}
			break;
		}
		case 'h':
			fputs(usage, stdout);
			return EXIT_OK;
		default:
			fputs(usage, stderr);
			return EXIT_INVALID;
		}
	}
	if (optind != argc - 1 - replay) {
		if (replay)
			cli_error("replay: expected a dead-letter file and a pipeline file");
		else
			cli_error("run: expected exactly one pipeline file");
		fputs(usage, stderr);
		cli_free(&common);
		return EXIT_INVALID;
	}
	const char *file = argv[argc - 1];
	log_setup(log_fmt, log_level);
	/* porch replay: the source reads the dead letters' inputs as JSON lines */
	static const char *const replay_params[] = { "text-field", "input", NULL };
	struct source_swap swap = { source, "stdin", replay_params };
	struct diag d;
	diag_init(&d, file, stderr);
	struct cfg_pipeline *p = config_load(file, config_schema_path(),
	    common.plugin_dirs, common.n_plugin_dirs, common.overrides,
	    common.n_overrides, replay ? &swap : NULL, &d);
	if (p == NULL) {
		cli_free(&common);
		return EXIT_INVALID;
	}
	if (node_select(p, &nopts, &d) != 0) {
		config_free(p);
		cli_free(&common);
		return EXIT_INVALID;
	}
	const char *nats_url = node_nats_url(p);
	if (threads < 0)
		threads = p->threads;
	if (threads == 0)
		threads = (long)config_threads_auto();
	if (nats_url != NULL && nats_probe(nats_url, 3000, err, sizeof err) != 0) {
		cli_error("%s: %s", file, err);
		config_free(p);
		cli_free(&common);
		return EXIT_INVALID;
	}
	if (replay && open_dead_letters(argv[optind]) != 0) {
		config_free(p);
		cli_free(&common);
		return EXIT_RUNTIME;
	}

	/* a closed stdout must fail the write (EPIPE), not kill the process */
	signal(SIGPIPE, SIG_IGN);
	if (threads > 1) {
		char spath[4200];
		struct shards_opts so = { file, &common, drain_s, stats_path, pid_path, NULL,
			control_spec, quiet, replay, &nopts };
		if (pid_path != NULL) {
			run_status_path(pid_path, spath, sizeof spath);
			so.status_path = spath;
		}
		status = shards_run(p, (unsigned)threads, &so);
		cli_free(&common);
		return status;
	}
	struct run r;
	memset(&r, 0, sizeof r);
	r.drain_s = drain_s;
	r.loop = ev_default_loop(EVFLAG_AUTO);
	if (r.loop == NULL) {
		cli_error("%s: cannot create the event loop (bad $LIBEV_FLAGS?)", file);
		config_free(p);
		cli_free(&common);
		return EXIT_RUNTIME;
	}
	r.led = ledger_new();
	r.g = graph_new(p, r.loop, r.led, err, sizeof err);
	if (r.g == NULL) {
		cli_error("%s: %s", file, err);
		ledger_unref(r.led);
		config_free(p);
		cli_free(&common);
		return EXIT_RUNTIME;
	}
	r.cfg = p;
	r.led->current = r.g;
	r.replay = replay;
	r.g->on_finished = run_finished;
	r.g->on_finished_arg = &r;
	char status_path[4200];
	if (pid_path != NULL) {
		run_status_path(pid_path, status_path, sizeof status_path);
		r.status_path = status_path;
	}

	ev_signal_init(&r.sigint_w, on_stop_signal, SIGINT);
	ev_signal_init(&r.sigterm_w, on_stop_signal, SIGTERM);
	ev_signal_init(&r.sigusr1_w, on_usr1, SIGUSR1);
	ev_signal_init(&r.sighup_w, on_hup, SIGHUP);
	r.file = file;
	r.common = &common;
	r.node = &nopts;
	r.sigint_w.data = r.sigterm_w.data = r.sigusr1_w.data = r.sighup_w.data = &r;
	ev_signal_start(r.loop, &r.sigint_w);
	ev_signal_start(r.loop, &r.sigterm_w);
	ev_signal_start(r.loop, &r.sigusr1_w);
	ev_signal_start(r.loop, &r.sighup_w);
	ev_unref(r.loop);
	/* signal watchers wait for signals; they must not keep a finished run alive */
	ev_unref(r.loop);
	ev_unref(r.loop);
	ev_unref(r.loop);

	graph_start(r.g);
	struct control *control = NULL;
	if (control_spec != NULL &&
	    (control = control_open(&r, control_spec, err, sizeof err)) == NULL) {
		cli_error("%s", err);
		status = EXIT_RUNTIME;
		graph_drain(r.g);
	}
	if (status == EXIT_RUNTIME) {
		/* nothing more to start */
	} else if (pid_path != NULL && run_write_pid(pid_path, err, sizeof err) != 0) {
		cli_error("%s", err);
		pid_path = NULL;
		status = EXIT_RUNTIME;
		graph_drain(r.g);
	} else {
		/* every listener is open: systemd's start-up is over */
		notify_ready("running %s: %llu requests in flight", r.cfg->name,
		    (unsigned long long)r.led->inflight);
	}
	if (notify_enabled()) {
		ev_timer_init(&r.status_w, on_notify_status, NOTIFY_STATUS_S, NOTIFY_STATUS_S);
		r.status_w.data = &r;
		ev_timer_start(r.loop, &r.status_w);
		ev_unref(r.loop); /* nor must the status line */
	}
	if (!graph_done(r.g) || r.retiring != NULL)
		ev_run(r.loop, 0);
	if (r.signals == 0)
		notify_stopping("stopping %s: the pipeline ended", r.cfg->name);
	if (!graph_done(r.g)) {
		log_error("%s: internal error: the event loop stopped with %llu requests in "
		    "flight and %zu sources running", file, (unsigned long long)r.g->inflight,
		    r.g->sources_left);
		status = EXIT_RUNTIME;
	}
	if (!quiet)
		stats_log(r.g, 0);
	if (stats_path != NULL && stats_write_json(r.g, stats_path, err, sizeof err) != 0) {
		cli_error("%s", err);
		status = EXIT_RUNTIME;
	}
	ev_ref(r.loop);
	ev_ref(r.loop);
	ev_ref(r.loop);
	ev_signal_stop(r.loop, &r.sigint_w);
	ev_signal_stop(r.loop, &r.sigterm_w);
	ev_signal_stop(r.loop, &r.sigusr1_w);
	ev_ref(r.loop);
	ev_signal_stop(r.loop, &r.sighup_w);
	if (r.signals > 0) {
		ev_ref(r.loop);
		ev_timer_stop(r.loop, &r.drain_w);
	}
	if (ev_is_active(&r.status_w)) {
		ev_ref(r.loop);
		ev_timer_stop(r.loop, &r.status_w);
	}
	control_close(control);
	run_free_generations(&r);
	graph_free(r.g);
	config_free(r.cfg);
	ledger_unref(r.led);
	cli_free(&common);
	ev_loop_destroy(r.loop);
	/* the pid file we wrote, never what it pointed at otherwise (as root,
	 * "--pid-file /dev/null" would remove the device) */
	struct stat sb;
	if (pid_path != NULL && lstat(pid_path, &sb) == 0 && S_ISREG(sb.st_mode))
		unlink(pid_path);
	if (r.status_path != NULL && lstat(r.status_path, &sb) == 0 && S_ISREG(sb.st_mode))
		unlink(r.status_path);
	return status;
}
