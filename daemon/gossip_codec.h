/* gossip_codec: the full mesh's overlay messages on the wire — struct
 * overlay_msg to and from peer.proto's Gossip. Kept out of node.c so that
 * the wiring does not know an overlay's wire format, and so that the fuzz
 * harnesses can exercise the real decoder. */
#ifndef PARTISAN_GOSSIP_CODEC_H
#define PARTISAN_GOSSIP_CODEC_H

#include <stddef.h>

#include "overlay.h"
#include "peer.pb-c.h"

/* Builds the Gossip for m and hands it to send(), which must not keep it.
 * Returns send()'s result, or -1 out of memory. */
int gossip_encode(const struct overlay_msg *m, int (*send)(void *ctx, const Partisan__Peer__Gossip *g), void *ctx);

/* Reads g into *out; its members (if any) are a new array in *members,
 * for the caller to free(). Returns 0, or -1 with the reason in err: an
 * unknown kind, a malformed member entry, or out of memory. Nothing from
 * a rejected message reaches the caller. */
int gossip_decode(const Partisan__Peer__Gossip *g, struct overlay_msg *out, struct member **members, char *err,
                  size_t errlen);

#endif
