/* client_reply: the daemon's Status, Members and Stats replies (ipc.proto)
 * turned into the library's public structs (partisan.h), each one block
 * that its *_free() releases with a single free(). Pure: no I/O. */
#ifndef PARTISAN_CLIENT_REPLY_H
#define PARTISAN_CLIENT_REPLY_H

#include <stddef.h>

#include "ipc.pb-c.h"
#include "partisan.h"

/* NULL when memory ran out. */
struct partisan_status *reply_convert_status(const Partisan__Ipc__Status *s);
struct partisan_member *reply_convert_members(const Partisan__Ipc__Members *ms, size_t *out_n);
struct partisan_stats *reply_convert_stats(const Partisan__Ipc__Stats *ps);

/* Copies n bytes of s and a NUL to *cursor, advances it; returns the copy. */
char *reply_put_str(char **cursor, const char *s, size_t n);

#endif
