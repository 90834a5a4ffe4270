/* router: the names registered on this node, and local delivery.
 *
 * A name is held by at most one session; a session's names are released
 * when it closes. Lookups are hash-table probes, on the hot path of every
 * delivered message. */
#ifndef PARTISAN_ROUTER_H
#define PARTISAN_ROUTER_H

#include <stddef.h>

struct ipc_session;
struct router;

struct router *router_new(void);
void router_free(struct router *r);

/* Returns 0; -1 if another session holds the name; -2 out of memory.
 * Registering a name the same session already holds succeeds. */
int router_register(struct router *r, const char *name, struct ipc_session *owner);

/* Returns 0; -1 if nothing holds the name; -2 if another session does. */
int router_unregister(struct router *r, const char *name, const struct ipc_session *owner);

/* The session holding name, or NULL. */
struct ipc_session *router_lookup(const struct router *r, const char *name);

/* Releases every name owner holds; returns how many. */
size_t router_release(struct router *r, const struct ipc_session *owner);

size_t router_count(const struct router *r);

#endif
