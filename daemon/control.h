/* control: the applications' requests (ipc.proto IpcRequest) turned into
 * router and overlay calls, and their replies. Every request gets exactly
 * one reply; nothing here decides where a message goes (the router does). */
#ifndef PARTISAN_CONTROL_H
#define PARTISAN_CONTROL_H

#include <stdint.h>

#include "ipc.pb-c.h"

struct config;
struct control;
struct faults;
struct ipc_session;
struct overlay;
struct overlay_ops;
struct router;
struct transport;

struct control_env {
    void *ctx;
    const struct config *cfg;
    const char *listen_text;            /* host:bound_port */
    uint64_t started_ms;                /* clock_now_ms() at start */
    struct router *router;
    struct transport *transport;
    const struct overlay_ops *ops;
    struct overlay *core;
    struct faults *faults;              /* fault injection rules (partisanctl fault) */
    /* After a join or leave was handed to the core: the node re-arms the
     * core's timer; after a leave it also saves the member table now. */
    void (*joined)(void *ctx);
    void (*left)(void *ctx);
    /* A fault rule was added or cleared (the node warns while any is active). */
    void (*faults_changed)(void *ctx);
};

struct control *control_new(const struct control_env *env);
void control_free(struct control *c);

/* Answers one request (exactly one ipc_reply*; a send with confirm is
 * answered later, by the router's verdict). */
void control_handle(struct control *c, struct ipc_session *s, const Partisan__Ipc__IpcRequest *req);

#endif
