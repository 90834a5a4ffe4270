/* Writes a starting corpus for fuzz_frame into the directory argv[1]:
 * well-formed IPC and peer streams (Hello, Gossip with member entries, Data,
 * IpcRequests), so the fuzzer begins from frames that decode. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "ipc.pb-c.h"
#include "peer.pb-c.h"

static uint8_t stream[65536];
static size_t used;

static void begin(uint8_t flags, uint8_t max, uint8_t chunk)
{
    stream[0] = flags;
    stream[1] = max;
    stream[2] = chunk;
    used = 3;
}

/* Frames as the daemon writes them: the envelope, then the raw payload. */
static void add_peer_with(const Partisan__Peer__PeerFrame *f, const char *payload)
{
    size_t n = partisan__peer__peer_frame__get_packed_size(f), p = strlen(payload);
    uint8_t *e = stream + used + frame_env_offset(FRAME_KIND_PEER);
    partisan__peer__peer_frame__pack(f, e);
    memcpy(e + n, payload, p);
    frame_seal(FRAME_KIND_PEER, stream + used, n, p);
    used += frame_size(FRAME_KIND_PEER, n, p);
}

static void add_peer(const Partisan__Peer__PeerFrame *f)
{
    add_peer_with(f, "");
}

static void add_ipc_with(const Partisan__Ipc__IpcRequest *q, const char *payload)
{
    size_t n = partisan__ipc__ipc_request__get_packed_size(q), p = strlen(payload);
    uint8_t *e = stream + used + frame_env_offset(FRAME_KIND_IPC);
    partisan__ipc__ipc_request__pack(q, e);
    memcpy(e + n, payload, p);
    frame_seal(FRAME_KIND_IPC, stream + used, n, p);
    used += frame_size(FRAME_KIND_IPC, n, p);
}

static void add_ipc(const Partisan__Ipc__IpcRequest *q)
{
    add_ipc_with(q, "");
}

static void save(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(stream, 1, used, f) != used) {
        perror(path);
        exit(1);
    }
    fclose(f);
}

static void gossip(uint8_t flags, const char *dir, const char *file, int sorted)
{
    static const char *names[] = { "a", "b", "c", "node-1", "node-2", "b" };
    Partisan__Peer__MemberState ms[6], *pms[6];
    for (int i = 0; i < 6; i++) {
        int k = sorted ? i : 5 - i;
        partisan__peer__member_state__init(&ms[i]);
        ms[i].name = (char *)names[k];
        ms[i].address = (char *)(k % 2 ? "127.0.0.1:10201" : "[::1]:10200");
        ms[i].incarnation = (uint64_t)(k * 7 % 4);
        ms[i].left = k == 3;
        pms[i] = &ms[i];
    }
    Partisan__Peer__Gossip g;
    partisan__peer__gossip__init(&g);
    g.kind = PARTISAN__PEER__GOSSIP__KIND__STATE;
    g.members = pms;
    g.n_members = sorted ? 5 : 6;
    /* The full mesh's Gossip travels as the bytes of PeerFrame.overlay. */
    static uint8_t body[4096];
    Partisan__Peer__PeerFrame f;
    partisan__peer__peer_frame__init(&f);
    f.body_case = PARTISAN__PEER__PEER_FRAME__BODY_OVERLAY;
    f.overlay.data = body;
    f.overlay.len = partisan__peer__gossip__pack(&g, body);
    begin(flags, 0xff, 255);
    add_peer(&f);
    g.n_members = 2;
    f.overlay.len = partisan__peer__gossip__pack(&g, body);
    add_peer(&f);
    save(dir, file);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];

    Partisan__Peer__Hello h;
    partisan__peer__hello__init(&h);
    h.protocol_version = 1;
    h.cluster = "partisan";
    h.node = "node-1";
    h.address = "127.0.0.1:10200";
    h.channel = "control";
    h.incarnation = 3;
    Partisan__Peer__PeerFrame f;
    partisan__peer__peer_frame__init(&f);
    f.body_case = PARTISAN__PEER__PEER_FRAME__BODY_HELLO;
    f.hello = &h;
    begin(1, 0xff, 7);
    add_peer(&f);
    Partisan__Peer__Data d;
    partisan__peer__data__init(&d);
    d.from_node = "node-1";
    d.to_node = "node-2";
    d.name = "echo";
    f.body_case = PARTISAN__PEER__PEER_FRAME__BODY_DATA;
    f.data = &d;
    add_peer_with(&f, "payload");
    save(dir, "peer_hello_data");

    gossip(1, dir, "peer_gossip_sorted", 1);
    gossip(7, dir, "peer_gossip_unsorted_arena", 0);

    Partisan__Ipc__SendRequest s;
    partisan__ipc__send_request__init(&s);
    s.node = "node-2";
    s.name = "echo";
    Partisan__Ipc__IpcRequest q;
    partisan__ipc__ipc_request__init(&q);
    q.id = 42;
    q.body_case = PARTISAN__IPC__IPC_REQUEST__BODY_SEND;
    q.send = &s;
    begin(0, 0xff, 3);
    add_ipc_with(&q, "hi");
    Partisan__Ipc__RegisterRequest rr;
    partisan__ipc__register_request__init(&rr);
    rr.name = "echo";
    q.body_case = PARTISAN__IPC__IPC_REQUEST__BODY_REGISTER;
    q.register_ = &rr;
    add_ipc(&q);
    save(dir, "ipc_send_register");
    return 0;
}
