/*
 * graph.c -- GET /graph: a page that draws the pipeline live.
 *
 * The page is plugins/http/graph.html, built into the plugin as a string
 * (graph-page.c, made by make).  It is self-contained: its script and
 * style are inline, and it reads only this source's own GET /metrics,
 * every second, from which it takes the pipeline's shape (porch_stage_info,
 * porch_channel_info, porch_worker_info) and the counters it shows.
 */
#include <string.h>

#include "http.h"

extern const char http_graph_page[];

/* Nothing but the page itself and its own origin's /metrics. */
#define GRAPH_HEADERS \
	"Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; " \
	"style-src 'unsafe-inline'; connect-src 'self'\r\n" \
	"Cache-Control: no-store\r\n"

void
graph_get(struct hreq *h)
{
	wire_answer(&h->w, 200, "text/html; charset=utf-8", http_graph_page,
	    strlen(http_graph_page), GRAPH_HEADERS);
}
