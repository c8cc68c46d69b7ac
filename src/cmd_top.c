/*
 * cmd_top.c -- porch top: a running porch seen live in a terminal.
 *
 * It reads what the running porch's http source serves on GET /metrics
 * (the Prometheus text, parsed by prom.c) every interval, and draws one
 * frame from the last two readings: per stage the rates in and out, what
 * it holds, the 50th and 99th percentile of its latency over the interval
 * (from the histogram buckets' differences), failures and sheds; per
 * channel its depth against its capacity and its refusals; per worker its
 * calls.  On a terminal it redraws in place (ANSI escapes, the alternate
 * screen) until 'q' or Ctrl-C, and puts the terminal back as it was; with
 * --once, or when stdout is not a terminal, it prints one frame and exits.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "prom.h"
#include "util.h"

static const char top_usage[] =
    "usage: porch top [--once] [--interval DURATION] URL\n"
    "\n"
    "Shows a running porch live: every interval it reads GET URL/metrics from the\n"
    "pipeline's http source or its run --control listener (URL as\n"
    "http://HOST:PORT) and draws, per stage, the\n"
    "messages in and out (totals and per second), what it holds, its p50 and p99\n"
    "latency over the interval, failures and sheds; per channel its depth against\n"
    "its capacity and its refusals; per worker its calls.  'q' or Ctrl-C quits.\n"
    "\n"
    "  -1, --once          print one frame (two readings an interval apart) and\n"
    "                      exit; the default when stdout is not a terminal\n"
    "  -i, --interval D    time between readings (default 1s; 100ms to 1h)\n"
    "\n"
    "exit status: 0 done, 1 the URL cannot be reached or is not a porch's\n"
    "/metrics, 2 usage.\n";

/* The longest /metrics text read: far above any pipeline's. */
#define TOP_MAX_BODY (64u << 20)

/* ---- reading /metrics --------------------------------------------------- */

struct body {
	char *p;
	size_t len, cap;
	int too_big;
};

static size_t
on_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct body *b = arg;
	size_t n = size * nmemb;
	if (b->len + n > TOP_MAX_BODY) {
		b->too_big = 1;
		return 0;
	}
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return n;
}

/* A reading: the samples and when they were read (monotonic seconds). */
struct reading {
	struct prom_set set;
	double t;
	int ok;
};

static double
now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * GETs url into r.  0, or -1 with why in err: it cannot be reached, it
 * answers other than 200, or its answer is not a porch's metrics.
 */
static int
fetch(CURL *e, const char *url, double timeout, struct reading *r, char *err, size_t errlen)
{
	struct body b = { NULL, 0, 0, 0 };
	char cerr[CURL_ERROR_SIZE] = "";
	long ms = (long)(timeout * 1000);
	curl_easy_reset(e);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, ms);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "porch-top/" PACKAGE_VERSION);
	CURLcode rc = curl_easy_perform(e);
	r->t = now_mono();
	int ret = -1;
	long status = 0;
	if (rc != CURLE_OK) {
		if (b.too_big)
			snprintf(err, errlen, "%s: the answer is larger than %u MiB: not a porch's "
			    "/metrics", url, TOP_MAX_BODY >> 20);
		else
			snprintf(err, errlen, "cannot read %s: %s", url,
			    cerr[0] ? cerr : curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		snprintf(err, errlen, "%s answered HTTP %ld: not a porch's /metrics (give the "
		    "address of a pipeline's http stage, e.g. http://127.0.0.1:8080)", url, status);
		goto out;
	}
	char perr[128];
	if (prom_parse(b.p != NULL ? b.p : "", b.len, &r->set, perr, sizeof perr) != 0) {
		snprintf(err, errlen, "%s is not in the Prometheus text format (%s): not a porch's "
		    "/metrics", url, perr);
		goto out;
	}
	if (prom_find(&r->set, "porch_requests_accepted_total", NULL) == NULL ||
	    prom_find(&r->set, "porch_stage_info", NULL) == NULL) {
		prom_free(&r->set);
		snprintf(err, errlen, "%s is not a porch's /metrics (no porch_requests_accepted_total "
		    "or porch_stage_info)", url);
		goto out;
	}
	r->ok = 1;
	ret = 0;
out:
	free(b.p);
	return ret;
}

static void
reading_free(struct reading *r)
{
	if (r->ok)
		prom_free(&r->set);
	r->ok = 0;
}

/* ---- a frame ------------------------------------------------------------ */

/* The frame being drawn: its lines, each cut to the width. */
struct frame {
	char *p;
	size_t len, cap;
	int width, height, lines;
	int tty;               /* end lines with "erase to the end of the line" */
};

static void frame_line(struct frame *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
frame_line(struct frame *f, const char *fmt, ...)
{
	if (f->height > 0 && f->lines >= f->height)
		return;
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	size_t n = strlen(line);
	if (f->width > 0 && n > (size_t)f->width)
		n = (size_t)f->width;
	size_t need = f->len + n + 8;
	if (need > f->cap) {
		f->cap = need * 2;
		f->p = xrealloc(f->p, f->cap);
	}
	memcpy(f->p + f->len, line, n);
	f->len += n;
	if (f->tty) {
		memcpy(f->p + f->len, "\033[K", 3);
		f->len += 3;
	}
	/* no newline after the terminal's last line: it would scroll */
	if (!(f->tty && f->height > 0 && f->lines + 1 >= f->height))
		f->p[f->len++] = '\n';
	f->lines++;
}

/* The difference of a counter between two readings, per second; NAN when
 * it cannot be told (no earlier reading, or the counter went back). */
static double
rate(const struct reading *cur, const struct reading *prev, const struct prom_sample *c,
    const char *name, const char *key, const char *value)
{
	if (prev == NULL || c == NULL || cur->t <= prev->t)
		return NAN;
	const struct prom_sample *p = prom_find(&prev->set, name, key, value, NULL);
	if (p == NULL || c->value < p->value)
		return NAN;
	return (c->value - p->value) / (cur->t - prev->t);
}

static void
fmt_rate(char *out, size_t len, double r)
{
	if (isnan(r))
		snprintf(out, len, "-");
	else if (r >= 99999.5)
		snprintf(out, len, "%.0fk", r / 1000);
	else if (r >= 100)
		snprintf(out, len, "%.0f", r);
	else
		snprintf(out, len, "%.1f", r);
}

static void
fmt_count(char *out, size_t len, double v)
{
	if (isnan(v))
		snprintf(out, len, "-");
	else if (v >= 1e10)
		snprintf(out, len, "%.0fM", v / 1e6);
	else
		snprintf(out, len, "%.0f", v);
}

static void
fmt_secs(char *out, size_t len, double s)
{
	if (isnan(s))
		snprintf(out, len, "-");
	else if (s < 0.001)
		snprintf(out, len, "%.0fus", s * 1e6);
	else if (s < 1)
		snprintf(out, len, "%.3gms", s * 1e3);
	else
		snprintf(out, len, "%.3gs", s);
}

/* The most buckets a histogram may have here (porch exposes 19). */
#define TOP_MAX_BUCKETS 64

/*
 * The q-quantiles of a stage's latency over the interval, from the
 * difference of its buckets between the readings; NAN when nothing ended
 * there in the interval.
 */
static void
latency(const struct reading *cur, const struct reading *prev, const char *stage,
    double *p50, double *p99)
{
	double le[TOP_MAX_BUCKETS], cum[TOP_MAX_BUCKETS];
	size_t n = 0;
	*p50 = *p99 = NAN;
	if (prev == NULL)
		return;
	for (size_t i = 0; i < cur->set.n && n < TOP_MAX_BUCKETS; i++) {
		const struct prom_sample *s = &cur->set.s[i];
		if (strcmp(s->name, "porch_stage_latency_seconds_bucket") != 0)
			continue;
		const char *st = prom_label(s, "stage"), *l = prom_label(s, "le");
		if (st == NULL || l == NULL || strcmp(st, stage) != 0)
			continue;
		const struct prom_sample *p = prom_find(&prev->set,
		    "porch_stage_latency_seconds_bucket", "stage", stage, "le", l, NULL);
		if (p == NULL || p->value > s->value)
			return;
		le[n] = strtod(l, NULL);
		cum[n] = s->value - p->value;
		n++;
	}
	*p50 = prom_quantile(0.5, le, cum, n);
	*p99 = prom_quantile(0.99, le, cum, n);
}

/* The width of the widest value of label key among samples named name. */
static int
widest(const struct prom_set *set, const char *name, const char *key, int least)
{
	int w = least;
	for (size_t i = 0; i < set->n; i++) {
		if (strcmp(set->s[i].name, name) != 0)
			continue;
		const char *v = prom_label(&set->s[i], key);
		if (v != NULL && (int)strlen(v) > w)
			w = (int)strlen(v);
	}
	return w > 40 ? 40 : w;
}

static void
draw(struct frame *f, const char *url, const struct reading *cur, const struct reading *prev,
    double interval, const char *status)
{
	const struct prom_set *set = &cur->set;
	char a[32], b[32], c[32], d[32], e[32], g[32], h[32], k[32], m[32];
	const struct prom_sample *acc = prom_find(set, "porch_requests_accepted_total", NULL);
	const char *pipeline = acc != NULL ? prom_label(acc, "pipeline") : NULL;
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	char clock[16];
	strftime(clock, sizeof clock, "%H:%M:%S", &tm);
	frame_line(f, "porch top - pipeline %s at %s - %s, every %gs%s", pipeline ? pipeline : "?",
	    url, clock, interval, f->tty ? " (q quits)" : "");
	fmt_rate(a, sizeof a, rate(cur, prev, acc, "porch_requests_accepted_total", NULL, NULL));
	fmt_count(b, sizeof b, acc != NULL ? acc->value : NAN);
	fmt_count(c, sizeof c, prom_value(set, NAN, "porch_requests_in_flight", NULL));
	fmt_count(d, sizeof d, prom_value(set, NAN, "porch_requests_in_flight_max", NULL));
	fmt_count(e, sizeof e, prom_value(set, NAN, "porch_requests_total", "outcome", "completed",
	    NULL));
	fmt_count(g, sizeof g, prom_value(set, NAN, "porch_requests_total", "outcome", "failed",
	    NULL));
	fmt_count(h, sizeof h, prom_value(set, NAN, "porch_requests_total", "outcome", "shed",
	    NULL));
	fmt_count(k, sizeof k, prom_value(set, NAN, "porch_requests_total", "outcome", "expired",
	    NULL));
	frame_line(f, "requests: %s accepted (%s/s), %s/%s in flight; %s completed, %s failed, "
	    "%s shed, %s expired", b, a, c, d, e, g, h, k);
	frame_line(f, "%s", status != NULL ? status : "");

	int sw = widest(set, "porch_stage_info", "stage", 5);
	int pw = widest(set, "porch_stage_info", "plugin", 6);
	frame_line(f, "%-*s %-*s %9s %9s %8s %8s %5s %8s %8s %7s %7s", sw, "STAGE", pw, "PLUGIN",
	    "IN", "OUT", "IN/s", "OUT/s", "HELD", "P50", "P99", "FAILED", "SHED");
	for (size_t i = 0; i < set->n; i++) {
		const struct prom_sample *s = &set->s[i];
		if (strcmp(s->name, "porch_stage_info") != 0)
			continue;
		const char *st = prom_label(s, "stage"), *pl = prom_label(s, "plugin");
		if (st == NULL)
			continue;
		const struct prom_sample *in = prom_find(set, "porch_stage_messages_in_total",
		    "stage", st, NULL);
		const struct prom_sample *out = prom_find(set, "porch_stage_messages_out_total",
		    "stage", st, NULL);
		fmt_count(a, sizeof a, in ? in->value : NAN);
		fmt_count(b, sizeof b, out ? out->value : NAN);
		fmt_rate(c, sizeof c, rate(cur, prev, in, "porch_stage_messages_in_total", "stage", st));
		fmt_rate(d, sizeof d, rate(cur, prev, out, "porch_stage_messages_out_total", "stage",
		    st));
		fmt_count(e, sizeof e, prom_value(set, NAN, "porch_stage_held", "stage", st, NULL));
		double p50, p99;
		latency(cur, prev, st, &p50, &p99);
		fmt_secs(g, sizeof g, p50);
		fmt_secs(h, sizeof h, p99);
		fmt_count(k, sizeof k, prom_value(set, NAN, "porch_stage_outcomes_total", "stage", st,
		    "outcome", "failed", NULL));
		fmt_count(m, sizeof m, prom_value(set, NAN, "porch_stage_outcomes_total", "stage", st,
		    "outcome", "shed", NULL));
		frame_line(f, "%-*s %-*s %9s %9s %8s %8s %5s %8s %8s %7s %7s", sw, st, pw,
		    pl ? pl : "?", a, b, c, d, e, g, h, k, m);
	}

	frame_line(f, "%s", "");
	int cw = 2 * sw + 4 + widest(set, "porch_channel_info", "port", 0) + 1;
	frame_line(f, "%-*s %11s  %-10s %9s %9s %9s", cw, "CHANNEL", "DEPTH/CAP", "OVERFLOW",
	    "HIGH", "REFUSED", "WAITED");
	for (size_t i = 0; i < set->n; i++) {
		const struct prom_sample *s = &set->s[i];
		if (strcmp(s->name, "porch_channel_capacity") != 0)
			continue;
		const char *from = prom_label(s, "from"), *port = prom_label(s, "port");
		const char *to = prom_label(s, "to");
		if (from == NULL || port == NULL || to == NULL)
			continue;
		char name[128];
		if (strcmp(port, "out") == 0)
			snprintf(name, sizeof name, "%s -> %s", from, to);
		else
			snprintf(name, sizeof name, "%s:%s -> %s", from, port, to);
		double depth = prom_value(set, NAN, "porch_channel_depth", "from", from, "port", port,
		    "to", to, NULL);
		const struct prom_sample *info = prom_find(set, "porch_channel_info", "from", from,
		    "port", port, "to", to, NULL);
		const char *ov = info != NULL ? prom_label(info, "overflow") : NULL;
		double refused = prom_value(set, 0, "porch_channel_refused_total", "from", from,
		    "port", port, "to", to, "reason", "reject", NULL) +
		    prom_value(set, 0, "porch_channel_refused_total", "from", from, "port", port,
		    "to", to, "reason", "drop-oldest", NULL);
		char dc[40];
		snprintf(dc, sizeof dc, "%.0f/%.0f", depth, s->value);
		fmt_count(a, sizeof a, prom_value(set, NAN, "porch_channel_high_water", "from", from,
		    "port", port, "to", to, NULL));
		fmt_count(b, sizeof b, refused);
		fmt_count(c, sizeof c, prom_value(set, NAN, "porch_channel_held_back_total", "from",
		    from, "port", port, "to", to, NULL));
		frame_line(f, "%-*s %11s  %-10s %9s %9s %9s", cw, name, dc, ov ? ov : "?", a, b, c);
	}

	if (prom_find(set, "porch_worker_info", NULL) == NULL)
		return;
	frame_line(f, "%s", "");
	int ww = widest(set, "porch_worker_info", "worker", 6);
	pw = widest(set, "porch_worker_info", "plugin", 6);
	frame_line(f, "%-*s %-*s %9s %8s %9s %7s", ww, "WORKER", pw, "PLUGIN", "CALLS", "CALLS/s",
	    "IN FLIGHT", "ERRORS");
	for (size_t i = 0; i < set->n; i++) {
		const struct prom_sample *s = &set->s[i];
		if (strcmp(s->name, "porch_worker_info") != 0)
			continue;
		const char *w = prom_label(s, "worker"), *pl = prom_label(s, "plugin");
		if (w == NULL)
			continue;
		const struct prom_sample *calls = prom_find(set, "porch_worker_calls_total", "worker",
		    w, NULL);
		fmt_count(a, sizeof a, calls ? calls->value : NAN);
		fmt_rate(b, sizeof b, rate(cur, prev, calls, "porch_worker_calls_total", "worker", w));
		fmt_count(c, sizeof c, prom_value(set, NAN, "porch_worker_in_flight", "worker", w,
		    NULL));
		fmt_count(d, sizeof d, prom_value(set, NAN, "porch_worker_errors_total", "worker", w,
		    NULL));
		frame_line(f, "%-*s %-*s %9s %8s %9s %7s", ww, w, pw, pl ? pl : "?", a, b, c, d);
	}
}

/* ---- the terminal ------------------------------------------------------- */

static volatile sig_atomic_t top_quit, top_resized;

static void
on_quit(int sig)
{
	(void)sig;
	top_quit = 1;
}

static void
on_winch(int sig)
{
	(void)sig;
	top_resized = 1;
}

static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

struct term {
	int raw;                  /* stdin was put in raw mode: saved holds how it was */
	struct termios saved;
};

/* The alternate screen, no cursor, and keys one at a time without echo. */
static void
term_enter(struct term *t)
{
	t->raw = 0;
	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &t->saved) == 0) {
		struct termios raw = t->saved;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		raw.c_cc[VMIN] = 0;
		raw.c_cc[VTIME] = 0;
		if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0)
			t->raw = 1;
	}
	static const char enter[] = "\033[?1049h\033[?25l\033[H\033[2J";
	(void)write_all(STDOUT_FILENO, enter, sizeof enter - 1);
}

static void
term_leave(struct term *t)
{
	static const char leave[] = "\033[?25h\033[?1049l";
	(void)write_all(STDOUT_FILENO, leave, sizeof leave - 1);
	if (t->raw)
		tcsetattr(STDIN_FILENO, TCSANOW, &t->saved);
}

static void
term_size(int *w, int *h)
{
	struct winsize ws;
	*w = 80;
	*h = 24;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
		*w = ws.ws_col;
		*h = ws.ws_row;
	}
}

/* Waits until `until` (monotonic) or a key; 1 when 'q' or Ctrl-C asks to quit. */
static int
wait_keys(double until)
{
	while (!top_quit && !top_resized) {
		double left = until - now_mono();
		if (left <= 0)
			return 0;
		struct pollfd p = { STDIN_FILENO, POLLIN, 0 };
		int n = poll(&p, isatty(STDIN_FILENO) ? 1 : 0, (int)(left * 1000) + 1);
		if (n < 0 && errno != EINTR)
			return 0;
		if (n > 0 && (p.revents & POLLIN)) {
			char keys[64];
			ssize_t r = read(STDIN_FILENO, keys, sizeof keys);
			if (r == 0)
				p.fd = -1; /* stdin ended: no more keys */
			for (ssize_t i = 0; i < r; i++)
				if (keys[i] == 'q' || keys[i] == 'Q' || keys[i] == 3)
					return 1;
		} else if (n > 0) {
			/* hang-up or error on stdin: go on with the timer alone */
			struct timespec ts = { 0, 50 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
	}
	return top_quit;
}

static int
live(CURL *e, const char *url, double interval, struct reading *prev, struct reading *cur)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_quit;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_winch;
	sigaction(SIGWINCH, &sa, NULL);

	struct term t;
	term_enter(&t);
	struct frame f = { 0 };
	char status[600] = "";
	double next = cur->t + interval;
	for (;;) {
		top_resized = 0;
		f.len = 0;
		f.lines = 0;
		f.tty = 1;
		term_size(&f.width, &f.height);
		draw(&f, url, cur, prev->ok ? prev : NULL, interval, status);
		(void)write_all(STDOUT_FILENO, "\033[H", 3);
		(void)write_all(STDOUT_FILENO, f.p, f.len);
		(void)write_all(STDOUT_FILENO, "\033[J", 3);
		if (wait_keys(next))
			break;
		if (top_resized)
			continue;
		struct reading r = { 0 };
		char err[600];
		if (fetch(e, url, interval < 2 ? 2 : interval, &r, err, sizeof err) == 0) {
			reading_free(prev);
			*prev = *cur;
			*cur = r;
			status[0] = '\0';
		} else {
			snprintf(status, sizeof status, "%.*s (trying again)", 500, err);
		}
		if (top_quit)
			break;
		next += interval;
		if (next < now_mono())
			next = now_mono() + interval;
	}
	term_leave(&t);
	free(f.p);
	return EXIT_OK;
}

/* URL as given, with /metrics when it names no path. */
static char *
metrics_url(const char *arg)
{
	const char *host = strstr(arg, "://");
	host = host != NULL ? host + 3 : arg;
	const char *path = strchr(host, '/');
	size_t n = strlen(arg);
	if (path == NULL || strcmp(path, "/") == 0) {
		size_t keep = path != NULL ? n - 1 : n;
		char *u = xmalloc(keep + sizeof "/metrics");
		memcpy(u, arg, keep);
		memcpy(u + keep, "/metrics", sizeof "/metrics");
		return u;
	}
	return xstrdup(arg);
}

int
cmd_top(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "once", no_argument, NULL, '1' },
		{ "interval", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int once = 0;
	double interval = 1;
	int c;
	while ((c = getopt_long(argc, argv, "1hi:", opts, NULL)) != -1) {
		switch (c) {
		case '1':
			once = 1;
			break;
		case 'i':
			if (cli_parse_duration(optarg, &interval) != 0 || interval < 0.1 ||
			    interval > 3600) {
				cli_error("top: --interval '%s' is not a duration from 100ms to 1h "
				    "(an integer with ms, s, m or h, e.g. 2s)", optarg);
				return EXIT_INVALID;
			}
			break;
		case 'h':
			fputs(top_usage, stdout);
			return EXIT_OK;
		default:
			fputs(top_usage, stderr);
			return EXIT_INVALID;
		}
	}
	if (optind != argc - 1) {
		cli_error("top: expected the URL of a running porch's http stage, e.g. "
		    "http://127.0.0.1:8080");
		fputs(top_usage, stderr);
		return EXIT_INVALID;
	}
	const char *arg = argv[optind];
	const char *scheme = strstr(arg, "://");
	if (arg[0] == '\0' || (scheme != NULL && strncmp(arg, "http://", 7) != 0 &&
	    strncmp(arg, "https://", 8) != 0)) {
		cli_error("top: '%s' is not an http:// or https:// URL", arg);
		return EXIT_INVALID;
	}
	if (!once && !isatty(STDOUT_FILENO))
		once = 1;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		cli_error("top: libcurl failed to start");
		return EXIT_RUNTIME;
	}
	CURL *e = curl_easy_init();
	char *url = metrics_url(arg);
	struct reading prev = { 0 }, cur = { 0 };
	char err[600];
	int rc = EXIT_RUNTIME;
	if (e == NULL) {
		cli_error("top: out of memory");
		goto out;
	}
	if (fetch(e, url, interval < 5 ? 5 : interval, &cur, err, sizeof err) != 0) {
		cli_error("top: %s", err);
		goto out;
	}
	if (!once) {
		rc = live(e, url, interval, &prev, &cur);
		goto out;
	}
	/* one frame: two readings an interval apart, for the rates */
	struct timespec ts = { (time_t)interval,
		(long)((interval - (double)(time_t)interval) * 1e9) };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	prev = cur;
	memset(&cur, 0, sizeof cur);
	if (fetch(e, url, interval < 5 ? 5 : interval, &cur, err, sizeof err) != 0) {
		cli_error("top: %s", err);
		goto out;
	}
	struct frame f = { 0 };
	draw(&f, url, &cur, &prev, interval, NULL);
	rc = fwrite(f.p, 1, f.len, stdout) == f.len && fflush(stdout) == 0 ? EXIT_OK :
	    EXIT_RUNTIME;
	free(f.p);
out:
	reading_free(&prev);
	reading_free(&cur);
	free(url);
	if (e != NULL)
		curl_easy_cleanup(e);
	curl_global_cleanup();
	return rc;
}
