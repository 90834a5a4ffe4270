/* node: one running partisand — wires the IPC server, the router, the peer
 * transport and the overlay core together, and drives the core's timers
 * from libevent. */
#ifndef PARTISAN_NODE_H
#define PARTISAN_NODE_H

#include <stddef.h>

struct config;
struct event_base;
struct node;

/* Starts listening for peers and applications, and starts the overlay
 * (dialling the seeds). Returns NULL with the cause in err. */
struct node *node_new(struct event_base *base, const struct config *cfg, char *err, size_t errlen);

/* Closes every connection, saves state, removes the socket file. */
void node_free(struct node *n);

/* Applies what a reload may change (the log level) and logs each other
 * changed key as needing a restart. */
void node_reload(struct node *n, const struct config *fresh);

#endif
