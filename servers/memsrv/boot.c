/*
 * Memory-server layer: taking over physical memory at start. Called once by
 * memsrv.c's main (and by the host tests) through memsrv_start.
 *
 * The kernel lists, through SYS_MS_BOOTINFO, the RAM regions and then the
 * spans already in use: kernel spans (never movable: recorded as locked
 * segments of kind KERNEL) and existing segments (memsrv's own image and
 * stack, init's, boot module images: ordinary movable segments charged to
 * their owner). Everything else in the regions is free. The regions and
 * kernel ranges (the "world", read once) are the same for a restarted
 * server, which takes the segments from SYS_MS_SEGMENTS instead and builds
 * its books in rebuild.c.
 *
 * The books (span slots, records, sid hash) start small, sized for the
 * spans in use at boot, not for the RAM: two segments memsrv takes for
 * itself, placed by a small bootstrap instance of the span allocator that
 * sees the same regions and used spans, then recorded, locked, in the real
 * books. From then on they grow and shrink with use (books.c).
 */
#include <common/cmdline.h>
#include <common/string.h>

#include "ms_server.h"

/* A kernel that never says -ENOENT must not keep the server looping. */
#define BOOTINFO_MAX 4096u

static struct span_alloc boot_span;
static struct span_node boot_nodes[MS_BOOT_NODES];

bool memsrv_parse_policy(const char *args, enum span_policy *out)
{
    const char *value;
    size_t len;
    unsigned p;

    *out = SPAN_POLICY_BEST_FIT;
    if (args == NULL || !cmdline_get(args, "memsrv.policy", &value, &len))
        return true;
    for (p = 0; p < SPAN_POLICY_COUNT; p++) {
        const char *name = span_policy_name((enum span_policy)p);
        if (strlen(name) == len && memcmp(name, value, len) == 0) {
            *out = (enum span_policy)p;
            return true;
        }
    }
    return false;
}

static uint64_t granule_down(uint64_t x) { return x & ~(SPAN_GRANULE - 1); }
static uint64_t granule_up(uint64_t x)
{
    return x > UINT64_MAX - (SPAN_GRANULE - 1) ? granule_down(UINT64_MAX) : granule_down(x + SPAN_GRANULE - 1);
}

/* Region [base, base+size) shrunk to whole granules; false if nothing is left. */
static bool region_range(const struct abi_mem_range *r, uint64_t *lo, uint64_t *hi)
{
    uint64_t end = r->size > UINT64_MAX - r->base ? UINT64_MAX : r->base + r->size;

    *lo = granule_up(r->base);
    *hi = granule_down(end);
    return *lo < *hi;
}

/* A used span grown to whole granules, so no partly used granule is free. */
static void used_range(const struct abi_mem_range *r, uint64_t *lo, uint64_t *hi)
{
    uint64_t end = r->size > UINT64_MAX - r->base ? UINT64_MAX : r->base + r->size;

    *lo = granule_down(r->base);
    *hi = granule_up(end);
}

/* Inserts [base, end) into a sorted array of n ranges (room checked). */
static void range_insert(struct ms_range *r, unsigned n, uint64_t base, uint64_t end)
{
    unsigned i = n;

    while (i > 0 && r[i - 1].base > base) {
        r[i] = r[i - 1];
        i--;
    }
    r[i] = (struct ms_range){ base, end };
}

/* Kernel ranges may overlap or touch: one range for each run of them, so
 * that a walk in address order meets each address at most once. */
static unsigned range_merge(struct ms_range *r, unsigned n)
{
    unsigned i, out = 0;

    for (i = 0; i < n; i++) {
        if (out > 0 && r[i].base <= r[out - 1].end) {
            if (r[i].end > r[out - 1].end)
                r[out - 1].end = r[i].end;
        } else {
            r[out++] = r[i];
        }
    }
    return out;
}

int boot_world_read(struct memsrv *ms, struct ms_world *w)
{
    struct abi_mem_range r;
    unsigned i;

    memset(w, 0, sizeof(*w));
    for (i = 0; i < BOOTINFO_MAX && ms->k->bootinfo(ms->k->ctx, i, &r) == 0; i++) {
        uint64_t lo, hi;
        if (r.kind == ABI_MEM_SEGMENT)
            break;
        if (r.kind == ABI_MEM_REGION) {
            if (!region_range(&r, &lo, &hi))
                continue;
            if (w->nregions == MS_WORLD_MAX) {
                ms_log(ms, "memsrv: RAM region %#llx+%#llx left out: more than %u regions", (unsigned long long)r.base,
                       (unsigned long long)r.size, MS_WORLD_MAX);
                continue;
            }
            range_insert(w->region, w->nregions++, lo, hi);
            continue;
        }
        if (r.kind != ABI_MEM_KERNEL)
            ms_log(ms, "memsrv: boot range %u of unknown kind %u: kept as a kernel span", i, r.kind);
        used_range(&r, &lo, &hi);
        if (lo >= hi)
            continue;
        if (w->nkernel == MS_WORLD_MAX) {
            /* The kernel keeps fewer: a kernel that lists more is not one
             * whose ranges the server can trust to keep out of. */
            ms_log(ms, "memsrv: more than %u kernel ranges", MS_WORLD_MAX);
            return -E2BIG;
        }
        range_insert(w->kernel, w->nkernel++, lo, hi);
    }
    w->first_segment = i;
    w->nkernel = range_merge(w->kernel, w->nkernel);
    return w->nregions > 0 ? 0 : -ENOMEM;
}

/*
 * Reserves the free parts of [lo, hi) as kernel spans (locked for good):
 * kernel ranges may stick out of RAM, which is fine. For the bootstrap
 * instance only its span books change.
 */
static int reserve_kernel(struct memsrv *ms, struct span_alloc *a, uint64_t lo, uint64_t hi)
{
    uint64_t at = lo;

    while (at < hi) {
        struct span_info info;
        uint64_t end;
        if (span_lookup(a, at, &info) != 0) {
            at += SPAN_GRANULE; /* outside every region: nothing to keep free */
            continue;
        }
        end = info.base + info.size < hi ? info.base + info.size : hi;
        if (end - at > MS_RECORD_MAX)
            end = at + MS_RECORD_MAX; /* one record each */
        if (info.state == SPAN_FREE) {
            if (a == &boot_span) {
                if (span_reserve(a, at, end - at, 0) != 0)
                    return -ENOMEM;
            } else {
                uint32_t index = books_new_record(ms);
                if (index == MS_NO_RECORD || span_reserve(a, at, end - at, index) != 0) {
                    if (index != MS_NO_RECORD)
                        books_drop_new_record(ms, index);
                    return -ENOMEM;
                }
                span_lock(a, at);
                books_commit_record(ms, index, MS_REC_KERNEL, 0, at, end - at, MS_NO_CLIENT);
                ms->kernel_bytes += end - at;
            }
        }
        at = end;
    }
    return 0;
}

int boot_span_world(struct memsrv *ms, struct span_alloc *a, const struct ms_world *w, uint64_t *ram)
{
    unsigned i;
    int err;

    *ram = 0;
    for (i = 0; i < w->nregions; i++) {
        const struct ms_range *r = &w->region[i];
        err = span_add_region(a, r->base, r->end - r->base);
        if (err != 0) {
            if (a != &boot_span)
                ms_log(ms, "memsrv: RAM region %#llx-%#llx left out: %d", (unsigned long long)r->base,
                       (unsigned long long)r->end, err);
            continue;
        }
        *ram += r->end - r->base;
    }
    if (a->region_count == 0)
        return -ENOMEM;
    for (i = 0; i < w->nkernel; i++) {
        err = reserve_kernel(ms, a, w->kernel[i].base, w->kernel[i].end);
        if (err != 0)
            return err;
    }
    return 0;
}

/* A boot segment: must be whole granules inside one region and free;
 * anything else is kept as a kernel span, since the frames are in use. */
static int reserve_segment(struct memsrv *ms, struct span_alloc *a, const struct abi_mem_range *r)
{
    struct span_info info;
    struct abi_seg_info seg;
    uint32_t index, client = MS_NO_CLIENT;
    bool whole = r->size != 0 && r->size <= MS_RECORD_MAX && r->base % SPAN_GRANULE == 0 &&
                 r->size % SPAN_GRANULE == 0 && r->base + r->size > r->base && r->sid != 0 &&
                 span_lookup(a, r->base, &info) == 0 && info.state == SPAN_FREE &&
                 info.base + info.size >= r->base + r->size;
    uint64_t lo, hi;

    if (!whole || a == &boot_span) {
        if (!whole && a != &boot_span)
            ms_log(ms,
                   "memsrv: boot segment sid %llu at %#llx+%#llx is not a whole free span: "
                   "kept as a kernel span",
                   (unsigned long long)r->sid, (unsigned long long)r->base, (unsigned long long)r->size);
        used_range(r, &lo, &hi);
        return reserve_kernel(ms, a, lo, hi);
    }
    index = books_new_record(ms);
    if (index == MS_NO_RECORD || span_reserve(a, r->base, r->size, index) != 0) {
        if (index != MS_NO_RECORD)
            books_drop_new_record(ms, index);
        return -ENOMEM;
    }
    if (ms->k->seg_query(ms->k->ctx, r->sid, &seg) == 0)
        client = books_client(ms, seg.owner_pid, true);
    books_commit_record(ms, index, MS_REC_SEGMENT, r->sid, r->base, r->size, client);
    return 0;
}

const struct ms_books_seg *boot_books_of(const struct memsrv *ms, uint64_t sid)
{
    unsigned i;

    for (i = 0; i < MS_BOOKS_SEGS; i++)
        if (ms->books[i].use != 0 && ms->books[i].sid == sid)
            return &ms->books[i];
    return NULL;
}

bool boot_books_known(const struct memsrv *ms, uint64_t sid) { return boot_books_of(ms, sid) != NULL; }

/* The segments of SYS_MS_BOOTINFO, after the world's entries. */
static int reserve_boot_segments(struct memsrv *ms, struct span_alloc *a, const struct ms_world *w)
{
    struct abi_mem_range r;
    unsigned i;

    for (i = w->first_segment; i < BOOTINFO_MAX && ms->k->bootinfo(ms->k->ctx, i, &r) == 0; i++) {
        uint64_t lo, hi;
        int err = 0;
        if (r.kind == ABI_MEM_SEGMENT) {
            /* A kernel that lists live segments may list the books too. */
            if (a != &boot_span && boot_books_known(ms, r.sid))
                continue;
            err = reserve_segment(ms, a, &r);
        } else if (r.kind != ABI_MEM_REGION) {
            ms_log(ms, "memsrv: boot range %u (%u) after the segments: kept as a kernel span", i, r.kind);
            used_range(&r, &lo, &hi);
            err = reserve_kernel(ms, a, lo, hi);
        }
        if (err != 0)
            return err;
    }
    return 0;
}

int boot_books_map(struct memsrv *ms, uint64_t phys, uint64_t bytes, void **addr, uint64_t *sid)
{
    int64_t h, mapped = 0;

    *sid = 0;
    h = ms->k->seg_create(ms->k->ctx, phys, bytes, 0, sid);
    if (h < 0) {
        ms_log(ms, "memsrv: kernel refused the books segment at %#llx: %lld", (unsigned long long)phys, (long long)h);
        return (int)h;
    }
    if (*sid == 0 || (mapped = ms->k->seg_map_self(ms->k->ctx, (handle_t)h)) <= 0) {
        ms_log(ms, "memsrv: cannot map the books segment (sid %llu): %lld", (unsigned long long)*sid,
               (long long)mapped);
        return mapped < 0 ? (int)mapped : -ENOMEM;
    }
    *addr = (void *)(uintptr_t)mapped;
    return 0;
}

int boot_books_create(struct memsrv *ms, enum ms_books_use use, uint64_t phys, uint64_t bytes, void **addr)
{
    uint64_t sid;
    int err = boot_books_map(ms, phys, bytes, addr, &sid);

    return err != 0 ? err : books_adopt(ms, use, sid, phys, bytes, *addr);
}

/* Places (in the bootstrap books), creates and maps one books segment. */
static int take_boot_books(struct memsrv *ms, enum ms_books_use use, uint64_t bytes, void **addr)
{
    struct span_request req = { .size = bytes, .flags = SPAN_LARGE_OK | SPAN_HIGH };
    uint64_t phys;
    int err;

    err = span_alloc(&boot_span, &req, 0, &phys);
    if (err != 0) {
        ms_log(ms, "memsrv: no room for %llu KiB of books: %d", (unsigned long long)(bytes >> 10), err);
        return err;
    }
    return boot_books_create(ms, use, phys, bytes, addr);
}

/* The first books: span slots and records for every span in use at boot
 * (as the bootstrap instance counted them) with room to spare. */
static int take_books(struct memsrv *ms, uint32_t *slots_out, struct span_node **store)
{
    struct span_stats st;
    uint64_t slots, bytes;
    uint32_t records;
    void *mem;
    int err;

    span_stats(&boot_span, &st);
    slots = 2 * (st.segments + st.free_spans) + 4 * MS_SLOTS_SPARE + 16;
    bytes = (slots * sizeof(struct span_node) + SPAN_GRANULE - 1) & ~(SPAN_GRANULE - 1);
    err = take_boot_books(ms, MS_BOOKS_FIRST, bytes, &mem);
    if (err != 0)
        return err;
    *store = mem;
    *slots_out = (uint32_t)(bytes / sizeof(struct span_node));
    records = books_records_for(st.segments + 2 * MS_RECS_SPARE + 2);
    bytes = books_records_bytes(records);
    err = take_boot_books(ms, MS_BOOKS_RECORDS, bytes, &mem);
    if (err != 0)
        return err;
    books_records_init(ms, mem, bytes);
    return 0;
}

static void print_summary(struct memsrv *ms, uint32_t slots)
{
    struct span_stats st;
    uint64_t seg_bytes = 0, segs = 0;
    uint32_t i;

    span_stats(&ms->span, &st);
    for (i = 0; i < ms->rec_capacity; i++)
        if (ms->recs[i].kind == MS_REC_SEGMENT) {
            seg_bytes += rec_size(&ms->recs[i]);
            segs++;
        }
    ms_log(ms,
           "memsrv: took over %u regions, %llu MiB of RAM: %llu MiB free, %llu KiB kernel, "
           "%llu KiB in %llu boot segments, books %llu KiB (%u slots, %u records, growing "
           "with use); init pid %#llx",
           st.region_count, (unsigned long long)(st.total_bytes >> 20), (unsigned long long)(st.free_bytes >> 20),
           (unsigned long long)(ms->kernel_bytes >> 10), (unsigned long long)(seg_bytes >> 10),
           (unsigned long long)segs, (unsigned long long)(ms->books_size >> 10), slots, ms->rec_capacity,
           (unsigned long long)ms->init_pid);
}

/* The command line's settings; each missing one is logged with what it
 * costs. */
static void read_arguments(struct memsrv *ms, const char *args)
{
    if (!memsrv_parse_policy(args, &ms->policy))
        ms_log(ms, "memsrv: unknown memsrv.policy (quickfit, topheap, instantfit, buddy, marker): using quickfit");
    if (args == NULL || !cmdline_get_u64(args, "init.pid", &ms->init_pid))
        ms_log(ms, "memsrv: no init.pid in the arguments: QUOTA and RELEASE are refused");
    if (args != NULL)
        cmdline_get_u64(args, "memsrv.restart", &ms->restart.number);
    ms_log(ms, "memsrv: policy %s", span_policy_name(ms->policy));
}

/* The books need memory, and where free memory is only the books can
 * tell: a first pass over the world in the static bootstrap nodes finds
 * the place for them (take_books). */
static int bootstrap_books(struct memsrv *ms, const struct ms_world *world, uint32_t *nodes, struct span_node **store)
{
    uint64_t ram;
    int err;

    if (span_init(&boot_span, ms->policy, 0, boot_nodes, MS_BOOT_NODES) != 0 ||
        boot_span_world(ms, &boot_span, world, &ram) != 0) {
        ms_log(ms, "memsrv: the kernel reported no usable RAM region");
        return -ENOMEM;
    }
    err = reserve_boot_segments(ms, &boot_span, world);
    if (err != 0) {
        ms_log(ms, "memsrv: more used spans at boot than %u bootstrap nodes", MS_BOOT_NODES);
        return err;
    }
    ms->books_fixed = true;
    return take_books(ms, nodes, store);
}

/* The real books, built in the same order as the bootstrap pass so that
 * they come out the same, and then holding the books' own segments. */
static int build_books(struct memsrv *ms, const struct ms_world *world, struct span_node *store, uint32_t nodes)
{
    uint64_t ram_again;
    unsigned i;
    int err = span_init(&ms->span, ms->policy, 0, store, nodes);

    if (err == 0)
        err = boot_span_world(ms, &ms->span, world, &ram_again);
    if (err == 0)
        err = reserve_boot_segments(ms, &ms->span, world);
    for (i = 0; err == 0 && i < MS_BOOKS_SEGS; i++) {
        const struct ms_books_seg *b = &ms->books[i];
        uint32_t index;
        if (b->use == 0)
            continue;
        index = books_new_record(ms);
        err = index == MS_NO_RECORD ? -ENOMEM : span_reserve(&ms->span, b->base, b->size, index);
        if (err == 0) {
            span_lock(&ms->span, b->base);
            books_commit_record(ms, index, MS_REC_BOOKS, b->sid, b->base, b->size, MS_NO_CLIENT);
        }
    }
    return err;
}

int memsrv_start(struct memsrv *ms, const struct ms_kernel_ops *k, const char *args, uint64_t self_pid)
{
    static struct ms_world world;
    struct span_node *store = NULL;
    uint32_t nodes = 0;
    int err;

    memset(ms, 0, sizeof(*ms));
    ms->k = k;
    ms->self_pid = self_pid;
    ms->restart.started_ns = k->clock_ns(k->ctx);
    memsrv_server_init(ms);
    read_arguments(ms, args);

    err = boot_world_read(ms, &world);
    if (err != 0) {
        ms_log(ms, "memsrv: the kernel reported no usable RAM region");
        return err;
    }
    if (ms->restart.number != 0)
        return memsrv_rebuild(ms, &world);

    err = bootstrap_books(ms, &world, &nodes, &store);
    if (err != 0)
        return err;
    err = build_books(ms, &world, store, nodes);
    ms->books_fixed = false;
    if (err != 0) {
        ms_log(ms, "memsrv: building the books failed: %d", err);
        return err;
    }
    print_summary(ms, nodes);
    compact_schedule(ms);
    return 0;
}
