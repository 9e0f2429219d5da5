/*
 * Host test of the span allocator: libFuzzer harness over operation
 * sequences. Each input is decoded into a policy, a large-page size, a few
 * regions, and a sequence of operations (alloc, free, reserve, lock, unlock,
 * lookup, and plan steps whose moves are confirmed or failed), with
 * span_check after every operation; any invariant break aborts. Built with
 * clang (-fsanitize=fuzzer,address,undefined) by fuzz.cmake.
 */
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>

#include <span/span.h>

#define NODES 64

struct input {
    const uint8_t *p;
    size_t n;
};

static uint64_t take(struct input *in, unsigned bytes)
{
    uint64_t v = 0;

    while (bytes-- > 0) {
        v = (v << 8) | (in->n > 0 ? *in->p : 0);
        if (in->n > 0) {
            in->p++;
            in->n--;
        }
    }
    return v;
}

static void check(const struct span_alloc *a)
{
    struct span_fault f;

    if (span_check(a, &f) != 0) {
        fprintf(stderr, "span_check: %s at %#llx\n", f.what, (unsigned long long)f.addr);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct span_node nodes[NODES];
    struct span_alloc a;
    struct input in = { data, size };
    struct span_plan plan;
    bool have_plan = false;
    uint64_t bases[16] = { 0 };
    unsigned i, steps;

    if (span_init(&a, (enum span_policy)(take(&in, 1) % SPAN_POLICY_COUNT), (uint64_t)8192 << (take(&in, 1) % 10),
                  nodes, NODES) != 0)
        return 0;
    for (i = 0; i < 3; i++)
        span_add_region(&a, (take(&in, 1) % 64) << 16, ((take(&in, 1) % 64) + 1) << 12);
    check(&a);
    for (steps = 0; steps < 200 && in.n > 0; steps++) {
        unsigned op = (unsigned)take(&in, 1);
        unsigned slot = op >> 4;
        struct span_move mv;
        int ret;

        switch (op & 15) {
        case 0:
        case 1:
        case 2:
        case 3: {
            struct span_request req = {
                .size = take(&in, 2) << 10,
                .align = (uint64_t)1 << (take(&in, 1) % 24),
                .limit = take(&in, 1) << 16,
                .flags = (uint32_t)take(&in, 1) % 3,
            };
            span_alloc(&a, &req, op, &bases[slot]);
            break;
        }
        case 4:
        case 5:
        case 6: span_free(&a, bases[slot]); break;
        case 7: span_reserve(&a, take(&in, 2) << 12, take(&in, 1) << 12, 1); break;
        case 8: span_lock(&a, bases[slot]); break;
        case 9: span_unlock(&a, bases[slot]); break;
        case 10: {
            struct span_info info;
            span_lookup(&a, take(&in, 3) << 8, &info);
            break;
        }
        case 11:
            have_plan = span_plan_targeted(&a, &plan, take(&in, 2) << 12, (uint64_t)1 << (take(&in, 1) % 24),
                                           take(&in, 1) << 16) == 0;
            break;
        case 12: have_plan = span_plan_full(&a, &plan, take(&in, 1) << 12) == 0; break;
        case 13: have_plan = span_plan_realign(&a, &plan) == 0; break;
        default:
            if (!have_plan)
                break;
            ret = span_plan_next(&a, &plan, &mv);
            check(&a);
            if (ret == SPAN_PLAN_MOVE) {
                if (op & 0x40) {
                    if (span_move_failed(&a, &plan, &mv, op & 0x20) != 0)
                        abort();
                } else if (span_move_done(&a, &plan, &mv) != 0) {
                    abort();
                }
            } else {
                have_plan = false;
            }
            break;
        }
        check(&a);
    }
    return 0;
}
