/*
 * control.h -- porch run --control HOST:PORT: a small listener of the
 * runtime's own serving GET /metrics, /graph and /healthz, so that porch
 * top and the live graph page reach a pipeline with no http stage (a
 * stdin batch, a gRPC front door).
 */
#ifndef PORCH_CONTROL_H
#define PORCH_CONTROL_H

#include <stddef.h>

struct run;
struct control;

/*
 * Listens on spec ("HOST:PORT", port 0: the kernel picks one) on r's loop
 * and logs the address.  NULL with err set when it cannot (a bad address,
 * the port in use).  The listener does not keep the loop running.
 */
struct control *control_open(struct run *r, const char *spec, char *err, size_t errlen);
/* Closes the listener and every connection. */
void control_close(struct control *c);

#endif
