/*
 * In-guest benchmark `bench=ipc`: the cost of messages, segment transfer,
 * handles carried in messages, pinning and migration, in TSC cycles. The
 * suite starts this program twice on one fresh endpoint (startup handle
 * SERVICE): "server" answers every call at once (with the segment and the
 * handles it got, if any); "client" measures and prints
 * `BENCH` lines (median, and a `_p99` line), then stops the server.
 */
#include <abi/ipc.h>
#include <common/string.h>
#include <libsys/memsrv.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>
#include <libsys/test.h>

#include "bench.h"

enum label {
    L_BOUNCE = 1, /* reply at once, with the received segment if there was one */
    L_QUIT,
};

#define WARMUP    1000u
#define N_CHEAP   20000u /* no segment, pin+unpin */
#define N_SEG     5000u  /* a segment there and back */
#define N_MOVE_4K 5000u  /* ms_move of 4 KiB */
#define N_MOVE_2M 200u   /* ms_move of 2 MiB: a 2 MiB copy each */
#define LARGE     (2ull << 20)

static uint64_t samples[N_CHEAP];

static int server(handle_t ep)
{
    struct ipc_msg m = { .seg = HANDLE_NONE };
    m.flags = IPC_RECV_CAPS;
    int64_t r = sys_ipc_recv(ep, &m, TIMEOUT_FOREVER);
    while (r == 0) {
        bool quit = m.label == L_QUIT;
        /* Reply in place: the received segment (m.seg) goes back as is. */
        m.label = quit || m.label == L_BOUNCE ? 0 : (uint64_t)-EINVAL;
        m.len = 0;
        m.flags = IPC_RECV_CAPS;
        /* Handles received go back moved, as the segment does. */
        for (unsigned i = 0; i < IPC_CAPS_MAX; i++)
            if (m.caps[i].handle != HANDLE_NONE)
                m.caps[i] =
                    (struct ipc_cap){ .handle = m.caps[i].handle, .rights = RIGHTS_SAME, .flags = IPC_CAP_MOVE };
        if (quit) {
            sys_ipc_reply(&m);
            return 0;
        }
        r = sys_ipc_reply_recv(ep, &m, TIMEOUT_FOREVER);
    }
    printf("b_ipc server: receive failed: %s\n", sys_strerror(r));
    return 1;
}

static bool failed;

static void fail(const char *what, int64_t err)
{
    printf("b_ipc: %s failed: %s\n", what, sys_strerror(err));
    failed = true;
}

/* Call and reply with no segment. */
static bool measure_call(handle_t ep, struct bench_stats *out)
{
    int64_t err = bench_calls(ep, L_BOUNCE, WARMUP, N_CHEAP, samples, out);
    if (err)
        fail("call", err);
    return err == 0;
}

/* Call with a segment of `size` bytes that the server sends back. */
static bool measure_segment(handle_t ep, uint64_t size, unsigned flags, struct bench_stats *out)
{
    struct ms_segment seg;
    int64_t r = ms_alloc(size, flags ? LARGE : 0, flags, 0, &seg);
    if (r != 0) {
        fail("ms_alloc", r);
        return false;
    }
    handle_t h = seg.handle;
    bool ok = true;
    for (unsigned i = 0; i < WARMUP + N_SEG && ok; i++) {
        struct ipc_msg m = { .label = L_BOUNCE, .seg = h };
        uint64_t t0 = bench_tsc();
        r = sys_ipc_call(ep, &m, TIMEOUT_FOREVER);
        uint64_t t1 = bench_tsc();
        ok = r == 0 && m.label == 0 && m.seg != HANDLE_NONE && m.seg_size == seg.size;
        if (!ok)
            fail("segment round trip", r ? r : -EPEER);
        else
            h = m.seg;
        if (i >= WARMUP)
            samples[i - WARMUP] = t1 - t0;
    }
    ms_free(h);
    *out = bench_summarise(samples, N_SEG);
    return ok;
}

/* Call and reply each carrying `count` endpoint handles, moved there and
 * back: the cost of handles in messages over measure_call's. */
static bool measure_caps(handle_t ep, unsigned count, struct bench_stats *out)
{
    handle_t carried[IPC_CAPS_MAX];
    for (unsigned k = 0; k < count; k++) {
        int64_t h = sys_ep_create();
        if (h < 0) {
            fail("ep_create", h);
            return false;
        }
        carried[k] = (handle_t)h;
    }
    bool ok = true;
    for (unsigned i = 0; i < WARMUP + N_CHEAP && ok; i++) {
        struct ipc_msg m = { .label = L_BOUNCE, .seg = HANDLE_NONE, .flags = IPC_RECV_CAPS };
        for (unsigned k = 0; k < count; k++)
            m.caps[k] = (struct ipc_cap){ .handle = carried[k], .rights = RIGHTS_SAME, .flags = IPC_CAP_MOVE };
        uint64_t t0 = bench_tsc();
        int64_t r = sys_ipc_call(ep, &m, TIMEOUT_FOREVER);
        uint64_t t1 = bench_tsc();
        ok = r == 0 && m.label == 0;
        for (unsigned k = 0; k < count && ok; k++) {
            ok = m.caps[k].handle != HANDLE_NONE;
            carried[k] = m.caps[k].handle;
        }
        if (!ok)
            fail("handle round trip", r ? r : m.label ? (int64_t)m.label : -EPEER);
        if (i >= WARMUP)
            samples[i - WARMUP] = t1 - t0;
    }
    for (unsigned k = 0; k < count && ok; k++)
        sys_handle_close(carried[k]);
    *out = bench_summarise(samples, N_CHEAP);
    return ok;
}

static bool measure_pin(struct bench_stats *out)
{
    struct ms_segment seg;
    int64_t r = ms_alloc(4096, 0, 0, 0, &seg);
    if (r != 0) {
        fail("ms_alloc", r);
        return false;
    }
    bool ok = true;
    for (unsigned i = 0; i < WARMUP + N_CHEAP && ok; i++) {
        uint64_t t0 = bench_tsc();
        int64_t p = sys_seg_pin(seg.handle, test_dma_device());
        int64_t u = sys_seg_unpin(seg.handle);
        uint64_t t1 = bench_tsc();
        ok = p > 0 && u == 0;
        if (!ok)
            fail("pin/unpin", p <= 0 ? p : u);
        if (i >= WARMUP)
            samples[i - WARMUP] = t1 - t0;
    }
    ms_free(seg.handle);
    *out = bench_summarise(samples, N_CHEAP);
    return ok;
}

/* ms_move: a call to memsrv, which asks the kernel to migrate the segment
 * (copy, remap, flush) and replies. */
static bool measure_move(uint64_t size, unsigned n, struct bench_stats *out)
{
    struct ms_segment seg;
    int64_t r = ms_alloc(size, size >= LARGE ? LARGE : 0, size >= LARGE ? MS_ALLOC_LARGE : 0, 0, &seg);
    if (r != 0) {
        fail("ms_alloc", r);
        return false;
    }
    memset(seg.addr, 0x5a, seg.size);
    bool ok = true;
    unsigned warm = n / 10;
    for (unsigned i = 0; i < warm + n && ok; i++) {
        uint64_t t0 = bench_tsc();
        r = ms_move(seg.sid);
        uint64_t t1 = bench_tsc();
        ok = r == 0;
        if (!ok)
            fail("ms_move", r);
        if (i >= warm)
            samples[i - warm] = t1 - t0;
    }
    const uint8_t *p = seg.addr;
    if (ok && (p[0] != 0x5a || p[seg.size - 1] != 0x5a)) {
        printf("b_ipc: a moved segment lost its contents\n");
        failed = true;
        ok = false;
    }
    ms_free(seg.handle);
    *out = bench_summarise(samples, n);
    return ok;
}

static int client(handle_t ep)
{
    struct bench_stats call = { 0 }, cap1, cap3, seg4k, seg2m, pin, move4k, move2m;
    bool have_call = false;
    uint64_t tsc_per_us = bench_tsc_per_us();
    printf("b_ipc: TSC %lu per us; medians of %u (cheap) / %u (segments) / %u, %u (ms_move) runs\n", tsc_per_us,
           N_CHEAP, N_SEG, N_MOVE_4K, N_MOVE_2M);

    if (measure_call(ep, &call)) {
        have_call = true;
        bench_lines("ipc_call_reply", call, "cycles");
        bench_line("ipc_oneway_est", call.median / 2, "cycles");
        bench_line("ipc_call_reply_min", call.min, "cycles");
    }
    /* Each handle is moved twice per round trip (there and back). */
    if (measure_caps(ep, 1, &cap1)) {
        bench_lines("ipc_call_reply_cap1", cap1, "cycles");
        if (have_call)
            bench_line("ipc_cap_move_est", cap1.median > call.median ? (cap1.median - call.median) / 2 : 0, "cycles");
    }
    if (measure_caps(ep, IPC_CAPS_MAX, &cap3))
        bench_lines("ipc_call_reply_cap3", cap3, "cycles");
    if (measure_segment(ep, 4096, 0, &seg4k))
        bench_lines("ipc_call_reply_seg4k", seg4k, "cycles");
    if (measure_segment(ep, LARGE, MS_ALLOC_LARGE, &seg2m))
        bench_lines("ipc_call_reply_seg2m", seg2m, "cycles");
    if (measure_pin(&pin))
        bench_lines("seg_pin_unpin", pin, "cycles");
    if (measure_move(4096, N_MOVE_4K, &move4k)) {
        bench_lines("ms_move_4k", move4k, "cycles");
        if (have_call)
            bench_line("kernel_migrate_4k_est", move4k.median > call.median ? move4k.median - call.median : 0,
                       "cycles");
    }
    if (measure_move(LARGE, N_MOVE_2M, &move2m))
        bench_lines("ms_move_2m", move2m, "cycles");

    struct ipc_msg quit = { .label = L_QUIT, .seg = HANDLE_NONE };
    sys_ipc_call(ep, &quit, TIMEOUT_FOREVER);
    return failed ? 1 : 0;
}

int main(int argc, char **argv) { return bench_pair_main("b_ipc", argc, argv, server, client); }
