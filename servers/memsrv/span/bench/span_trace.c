/*
 * Memory-server layer tool: span-trace replays real programs' allocation
 * traces (traces/NAME.trace, recorded with strace; traces/README.md says how)
 * against the span library, for every policy, on heaps of 1.25, 1.1 and 1.0
 * times each trace's peak live bytes. A host program, not linked into
 * memsrv; ctest runs its --check mode (span_trace_test, and _asan).
 *
 * The heap is one region of that size; every mapping of the trace is a
 * segment (SPAN_LARGE_OK, as memsrv's ALLOC asks). When an allocation
 * fails, it is handled the way memsrv's direct compaction does (compact.c):
 * a targeted plan for the request's size, every move carried out and
 * confirmed, the allocation retried; if that fails too, a full compaction
 * (what memsrv's background compactor would get to) and a last retry.
 * Reported per trace, policy and heap: wall time per operation (median of
 * several replays, compaction included), failures before compaction, after
 * the targeted plan and after the full one, plans run, bytes moved; with
 * --instructions also the instructions per span_alloc and span_free call
 * and in all compaction calls, counted by valgrind's callgrind on a child
 * that replays once. A failed allocation's later free is skipped (the
 * program would have had its mmap fail).
 *
 * --check replays on every heap with span_check every CHECK_EVERY
 * operations, after every compaction and at the end, compares the books'
 * used bytes and segment count with the replayer's own, looks every new
 * segment up, checks every move names the segment where the replayer has
 * it, and requires the books to be exact at the end: every segment freed,
 * free bytes == heap bytes, one free span. Exit status 1 on any fault.
 * Timings are reported, never asserted.
 *
 * Usage: span-trace [--check | --instructions] TRACE...
 *        span-trace --once POLICY PERMILLE TRACE   (one replay, for callgrind)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <span/span.h>

#define G             SPAN_GRANULE
#define KIB           ((uint64_t)1 << 10)
#define HEAP_BASE     ((uint64_t)16 << 20)
#define CHECK_EVERY   256
#define TIMED_REPLAYS 5
#define MAX_IDS       ((uint64_t)1 << 24) /* the converter numbers segments 0, 1, 2, ... */

static const unsigned heap_permille[] = { 1250, 1100, 1000 };
#define HEAPS (sizeof(heap_permille) / sizeof(heap_permille[0]))

/* ---- traces ---------------------------------------------------------- */

struct trace_op {
    uint32_t id;
    uint32_t alloc; /* 1: a <id> <bytes>; 0: f <id> */
    uint64_t bytes; /* the segment's size (a free: the size it was allocated with) */
};

struct trace {
    const char *path;
    char name[64];
    struct trace_op *ops;
    size_t n, cap;
    uint32_t ids;        /* highest id + 1 */
    uint64_t peak_bytes; /* live bytes at the worst moment */
    uint64_t peak_count; /* live segments at the worst moment */
    uint64_t allocs;
};

static int trace_error(const struct trace *t, unsigned line, const char *what)
{
    fprintf(stderr, "span-trace: %s:%u: %s\n", t->path, line, what);
    return -1;
}

/* What loading knows about each id so far. */
struct trace_ids {
    uint8_t *state;    /* per id: 0 unseen, 1 live, 2 freed */
    uint64_t *size_of; /* per live id: its size */
    size_t cap;
    uint64_t live, live_count;
};

/* Room for ids up to `id`: NULL, or why not. */
static const char *ids_reserve(struct trace_ids *ids, uint64_t id)
{
    if (id < ids->cap)
        return NULL;
    size_t cap = ids->cap ? ids->cap : 1024;
    while (cap <= id)
        cap *= 2;
    uint8_t *more_state = realloc(ids->state, cap);
    if (more_state != NULL)
        ids->state = more_state;
    uint64_t *more_size = realloc(ids->size_of, cap * sizeof(*ids->size_of));
    if (more_size != NULL)
        ids->size_of = more_size;
    if (more_state == NULL || more_size == NULL)
        return "out of memory";
    memset(ids->state + ids->cap, 0, cap - ids->cap);
    ids->cap = cap;
    return NULL;
}

/* One line of a trace as an operation that is valid after those before
 * it: NULL with *op, or why not. */
static const char *parse_op(const char *line, bool whole, struct trace_ids *ids, struct trace_op *op)
{
    unsigned long long id, bytes;
    char kind, extra;

    if (!whole)
        return "line too long";
    int fields = sscanf(line, "%c %llu %llu %c", &kind, &id, &bytes, &extra);
    if (!((kind == 'a' && fields == 3) || (kind == 'f' && fields == 2)))
        return "expected 'a <id> <bytes>' or 'f <id>'";
    if (id >= MAX_IDS)
        return "id too large (ids are dense, below 2^24)";
    const char *why = ids_reserve(ids, id);
    if (why != NULL)
        return why;
    *op = (struct trace_op){ .id = (uint32_t)id, .alloc = kind == 'a' };
    if (!op->alloc) {
        if (ids->state[id] != 1)
            return "free of an id that is not live";
        op->bytes = ids->size_of[id];
        return NULL;
    }
    if (bytes == 0 || bytes % G != 0 || bytes > ((uint64_t)1 << 40))
        return "size is not a multiple of 4 KiB in (0, 1 TiB]";
    if (ids->state[id] != 0)
        return "id allocated twice";
    op->bytes = bytes;
    return NULL;
}

/* Appends a valid operation and follows the live bytes and the peaks:
 * NULL, or why not. */
static const char *trace_append(struct trace *t, struct trace_ids *ids, struct trace_op op)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 4096;
        struct trace_op *more = realloc(t->ops, cap * sizeof(*t->ops));
        if (more == NULL)
            return "out of memory";
        t->ops = more;
        t->cap = cap;
    }
    t->ops[t->n++] = op;
    if (!op.alloc) {
        ids->state[op.id] = 2;
        ids->live -= op.bytes;
        ids->live_count--;
        return NULL;
    }
    ids->state[op.id] = 1;
    ids->size_of[op.id] = op.bytes;
    ids->live += op.bytes;
    ids->live_count++;
    t->allocs++;
    if (ids->live > t->peak_bytes)
        t->peak_bytes = ids->live;
    if (ids->live_count > t->peak_count)
        t->peak_count = ids->live_count;
    if (op.id + 1 > t->ids)
        t->ids = op.id + 1;
    return NULL;
}

/* Reads and validates a whole trace: every id allocated once, freed once
 * after its allocation, sizes non-zero multiples of 4 KiB. Nothing is
 * replayed from a trace that fails. */
static int trace_load(struct trace *t, const char *path)
{
    const char *slash = strrchr(path, '/'), *dot;
    memset(t, 0, sizeof(*t));
    t->path = path;
    slash = slash ? slash + 1 : path;
    dot = strrchr(slash, '.');
    snprintf(t->name, sizeof(t->name), "%.*s", (int)(dot ? dot - slash : (long)strlen(slash)), slash);

    FILE *f = fopen(path, "r");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    struct trace_ids ids = { 0 };
    const char *why = NULL;
    char line[256];
    unsigned lineno = 0;
    while (why == NULL && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        struct trace_op op;
        why = parse_op(line, strchr(line, '\n') != NULL || feof(f), &ids, &op);
        if (why == NULL)
            why = trace_append(t, &ids, op);
    }
    fclose(f);
    free(ids.state);
    free(ids.size_of);
    if (why == NULL && (ids.live != 0 || t->allocs == 0))
        why = ids.live ? "segments still live at the end" : "no allocation";
    if (why == NULL)
        return 0;
    free(t->ops);
    t->ops = NULL;
    return trace_error(t, lineno, why);
}

/* ---- replay ---------------------------------------------------------- */

struct replay {
    /* setup */
    enum span_policy policy;
    uint64_t heap;
    bool check;
    /* books */
    struct span_alloc a;
    struct span_node *nodes;
    void *hash;
    uint64_t *base_of; /* id -> segment base, or NO_BASE */
    uint64_t live_bytes, live_count;
    /* results */
    uint64_t alloc_calls, fail_raw, fail_targeted, fail_after, skipped_frees;
    uint64_t plans, moves, moved_bytes;
    uint64_t ns;
    unsigned faults;
};

#define NO_BASE UINT64_MAX

static void fault(struct replay *r, const struct trace *t, size_t op, const char *what, uint64_t addr)
{
    if (r->faults++ < 5)
        fprintf(stderr, "span-trace: %s %s heap %" PRIu64 " KiB, op %zu: %s (%#" PRIx64 ")\n", t->name,
                span_policy_name(r->policy), r->heap / KIB, op, what, addr);
}

/* memsrv resizes the segment hash as span_hash_wanted asks; so does this. */
static void keep_hash(struct replay *r)
{
    size_t want = span_hash_wanted(&r->a);
    void *mem, *old;
    size_t old_bytes;

    if (want == 0)
        return;
    mem = calloc(1, want);
    if (mem == NULL || span_hash_resize(&r->a, mem, want, &old, &old_bytes) != 0) {
        free(mem);
        return;
    }
    free(old);
    r->hash = mem;
}

static int replay_setup(struct replay *r, const struct trace *t, enum span_policy policy, unsigned permille, bool check)
{
    /* A free span takes two slots, a segment one; 2 * (segments + 1) free
     * spans at most, plus what an operation and a plan may hold. */
    size_t slots = (size_t)(3 * t->peak_count + 64);

    memset(r, 0, sizeof(*r));
    r->policy = policy;
    r->check = check;
    r->heap = (t->peak_bytes * permille / 1000 + G - 1) & ~(G - 1);
    r->nodes = calloc(slots, sizeof(*r->nodes));
    r->base_of = malloc(t->ids * sizeof(*r->base_of));
    if (r->nodes == NULL || r->base_of == NULL)
        return -1;
    for (uint32_t i = 0; i < t->ids; i++)
        r->base_of[i] = NO_BASE;
    if (span_init(&r->a, policy, 0, r->nodes, slots) != 0 || span_add_region(&r->a, HEAP_BASE, r->heap) != 0)
        return -1;
    return 0;
}

static void replay_teardown(struct replay *r)
{
    free(r->nodes);
    free(r->hash);
    free(r->base_of);
}

static void check_books(struct replay *r, const struct trace *t, size_t op)
{
    struct span_fault f;
    struct span_stats st;

    if (span_check(&r->a, &f) != 0)
        fault(r, t, op, f.what, f.addr);
    span_stats(&r->a, &st);
    if (st.used_bytes != r->live_bytes || st.segments != r->live_count ||
        st.free_bytes + st.used_bytes + st.transit_bytes != r->heap)
        fault(r, t, op, "books disagree with the trace's live bytes or segments", st.used_bytes);
}

/* Carries out every move of a plan at once (only the books are modelled). */
static int run_plan(struct replay *r, const struct trace *t, size_t op, struct span_plan *plan)
{
    struct span_move mv;
    int ret;

    r->plans++;
    while ((ret = span_plan_next(&r->a, plan, &mv)) == SPAN_PLAN_MOVE) {
        if (span_move_done(&r->a, plan, &mv) != 0) {
            fault(r, t, op, "span_move_done refused a proposed move", mv.from);
            return -1;
        }
        if (mv.tag >= t->ids || r->base_of[mv.tag] != mv.from) {
            fault(r, t, op, "a move names a segment the trace does not have there", mv.from);
            return -1;
        }
        r->base_of[mv.tag] = mv.to;
        r->moves++;
        r->moved_bytes += mv.size;
    }
    if (r->check)
        check_books(r, t, op);
    return ret == SPAN_PLAN_DONE ? 0 : -1;
}

static int try_alloc(struct replay *r, const struct span_request *req, uint32_t id, uint64_t *base)
{
    r->alloc_calls++;
    return span_alloc(&r->a, req, id, base);
}

/* A failed request is handled as memsrv's direct compaction does (a
 * targeted plan for it, without budgets, then the retry); if that fails
 * too, a full compaction, as memsrv's background compactor would run
 * sooner or later, and a last retry. */
static int alloc_compacted(struct replay *r, const struct trace *t, size_t op, const struct span_request *req,
                           uint32_t id, uint64_t *base)
{
    struct span_plan plan;
    struct span_stats st;
    int err = -ENOMEM;

    span_stats(&r->a, &st);
    if (st.free_bytes < req->size)
        return err; /* out of memory, not fragmentation */
    if (span_plan_targeted(&r->a, &plan, req->size, 0, 0) == 0 && run_plan(r, t, op, &plan) == 0)
        err = try_alloc(r, req, id, base);
    if (err == 0)
        return 0;
    r->fail_targeted++;
    if (span_plan_full(&r->a, &plan, 0) == 0 && run_plan(r, t, op, &plan) == 0)
        err = try_alloc(r, req, id, base);
    return err;
}

static void replay_alloc(struct replay *r, const struct trace *t, size_t op, const struct trace_op *o)
{
    struct span_request req = { .size = o->bytes, .flags = SPAN_LARGE_OK };
    uint64_t base;
    int err = try_alloc(r, &req, o->id, &base);

    if (err == -ENOMEM) {
        r->fail_raw++;
        err = alloc_compacted(r, t, op, &req, o->id, &base);
        if (err != 0)
            r->fail_after++;
    } else if (err != 0) {
        fault(r, t, op, "span_alloc refused a request that fits the heap", (uint64_t)-err);
    }
    if (err != 0)
        return;
    r->base_of[o->id] = base;
    r->live_bytes += o->bytes;
    r->live_count++;
    if (r->check) {
        struct span_info info;
        if (span_lookup(&r->a, base, &info) != 0 || info.base != base || info.size != o->bytes ||
            info.state != SPAN_ALLOCATED || info.tag != o->id || base < HEAP_BASE ||
            base + o->bytes > HEAP_BASE + r->heap)
            fault(r, t, op, "a new segment is not booked as returned", base);
    }
}

static void replay_free(struct replay *r, const struct trace *t, size_t op, const struct trace_op *o)
{
    uint64_t base = r->base_of[o->id];
    int err;

    if (base == NO_BASE) {
        r->skipped_frees++; /* its allocation failed */
        return;
    }
    err = span_free(&r->a, base);
    if (err != 0) {
        fault(r, t, op, "span_free refused a live segment", base);
        return;
    }
    r->base_of[o->id] = NO_BASE;
    r->live_bytes -= o->bytes;
    r->live_count--;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* One replay of the whole trace; with r->check, the books are checked
 * along the way and must be exact (all free) at the end. */
static void replay_run(struct replay *r, const struct trace *t)
{
    uint64_t t0 = now_ns();

    for (size_t i = 0; i < t->n; i++) {
        if (t->ops[i].alloc)
            replay_alloc(r, t, i, &t->ops[i]);
        else
            replay_free(r, t, i, &t->ops[i]);
        keep_hash(r);
        if (r->check && i % CHECK_EVERY == 0)
            check_books(r, t, i);
    }
    r->ns = now_ns() - t0;
    if (r->check) {
        struct span_stats st;
        check_books(r, t, t->n);
        span_stats(&r->a, &st);
        if (r->live_count != 0 || st.segments != 0 || st.free_bytes != r->heap || st.free_spans != 1 ||
            st.largest_free != r->heap)
            fault(r, t, t->n, "the books are not all free after the last free", st.free_bytes);
    }
}

/* ---- instruction counts (callgrind) ----------------------------------- */

struct instr {
    uint64_t alloc, free, compact; /* inclusive instructions of the calls */
    bool ok;
};

/* Adds the inclusive instruction count of a line of callgrind_annotate's
 * function list, e.g. "1,234,567 (12.3%)  /src/span.c:span_alloc [/bin/x]",
 * when the function is fn. A function whose inlined parts debug info puts
 * in another file (span_internal.h:span_alloc) has a line for each file;
 * their counts are disjoint, so they are summed. */
static bool annotate_line(const char *line, const char *fn, uint64_t *out)
{
    const char *c = line, *name, *end;
    uint64_t v = 0;
    size_t len = strlen(fn);

    for (; *c == ' ' || *c == ',' || (*c >= '0' && *c <= '9'); c++)
        if (*c >= '0' && *c <= '9')
            v = v * 10 + (uint64_t)(*c - '0');
    if (c == line || *c != '(' || (c = strchr(c, ')')) == NULL)
        return false;
    end = c + strcspn(c, "[\n");
    while (end > c && end[-1] == ' ')
        end--;
    name = end - len;
    if (name <= c || name[-1] != ':' || memcmp(name, fn, len) != 0)
        return false;
    *out += v;
    return true;
}

static struct instr count_instructions(const char *self, const struct trace *t, enum span_policy p, unsigned permille)
{
    static const char *const compaction[] = { "span_plan_targeted", "span_plan_full", "span_plan_next",
                                              "span_move_done" };
    struct instr in = { 0 };
    char out[64], cmd[1024], line[1024];
    FILE *ann;
    int status;

    snprintf(out, sizeof(out), "/tmp/span-trace.%d.callgrind", (int)getpid());
    snprintf(cmd, sizeof(cmd), "valgrind --tool=callgrind --callgrind-out-file=%s %s --once %s %u %s >/dev/null 2>&1",
             out, self, span_policy_name(p), permille, t->path);
    status = system(cmd);
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "span-trace: valgrind failed: %s\n", cmd);
        return in;
    }
    /* From /: run where the sources' relative names resolve, callgrind_annotate
     * lists each function twice (by relative and by absolute name). */
    snprintf(cmd, sizeof(cmd), "cd / && callgrind_annotate --inclusive=yes --threshold=100 --auto=no %s", out);
    ann = popen(cmd, "r");
    if (ann == NULL)
        return in;
    while (fgets(line, sizeof(line), ann) != NULL) {
        in.ok |= annotate_line(line, "span_alloc", &in.alloc);
        annotate_line(line, "span_free", &in.free);
        for (unsigned k = 0; k < sizeof(compaction) / sizeof(compaction[0]); k++)
            annotate_line(line, compaction[k], &in.compact);
    }
    pclose(ann);
    unlink(out);
    return in;
}

/* ---- driver ------------------------------------------------------------ */

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

static void bench(const char *trace, enum span_policy p, unsigned permille, const char *what, double value,
                  const char *unit)
{
    printf("BENCH trace_%s_%s_%u_%s %.3f %s\n", trace, span_policy_name(p), permille, what, value, unit);
}

/* Replays TIMED_REPLAYS times (the failures and moves are the same every
 * time: the library is deterministic) and reports the median time. */
static int measure(const char *self, const struct trace *t, enum span_policy p, unsigned permille,
                   bool with_instructions)
{
    uint64_t ns[TIMED_REPLAYS];
    struct replay r;
    struct instr in = { 0 };
    uint64_t frees_called, ops = t->n;

    for (unsigned k = 0; k < TIMED_REPLAYS; k++) {
        if (replay_setup(&r, t, p, permille, false) != 0) {
            fprintf(stderr, "span-trace: cannot set up the heap\n");
            return 1;
        }
        replay_run(&r, t);
        ns[k] = r.ns;
        if (k + 1 < TIMED_REPLAYS)
            replay_teardown(&r);
    }
    qsort(ns, TIMED_REPLAYS, sizeof(ns[0]), cmp_u64);
    if (with_instructions)
        in = count_instructions(self, t, p, permille);
    frees_called = t->allocs - r.skipped_frees;
    printf("%-16s %-10s %5.2fx %9" PRIu64 " %7.1f %6" PRIu64 " %6" PRIu64 " %6" PRIu64 " %6" PRIu64 " %10" PRIu64,
           t->name, span_policy_name(p), permille / 1000.0, r.heap / KIB, (double)ns[TIMED_REPLAYS / 2] / (double)ops,
           r.fail_raw, r.fail_targeted, r.fail_after, r.plans, r.moved_bytes / KIB);
    if (with_instructions && in.ok)
        printf(" %8" PRIu64 " %8" PRIu64 " %11" PRIu64, in.alloc / r.alloc_calls, in.free / frees_called, in.compact);
    printf("\n");
    bench(t->name, p, permille, "ns_per_op", (double)ns[TIMED_REPLAYS / 2] / (double)ops, "ns");
    bench(t->name, p, permille, "fail_raw", (double)r.fail_raw, "count");
    bench(t->name, p, permille, "fail_after_targeted", (double)r.fail_targeted, "count");
    bench(t->name, p, permille, "fail_after_full", (double)r.fail_after, "count");
    bench(t->name, p, permille, "moved", (double)(r.moved_bytes / KIB), "KiB");
    if (with_instructions && in.ok) {
        bench(t->name, p, permille, "instr_per_alloc", (double)in.alloc / (double)r.alloc_calls, "instructions");
        bench(t->name, p, permille, "instr_per_free", (double)in.free / (double)frees_called, "instructions");
        bench(t->name, p, permille, "instr_compaction", (double)in.compact, "instructions");
    }
    replay_teardown(&r);
    return 0;
}

static int check_all(const struct trace *t)
{
    unsigned faults = 0;

    for (unsigned p = 0; p < SPAN_POLICY_COUNT; p++) {
        for (unsigned h = 0; h < HEAPS; h++) {
            struct replay r;
            if (replay_setup(&r, t, (enum span_policy)p, heap_permille[h], true) != 0) {
                fprintf(stderr, "span-trace: cannot set up the heap\n");
                return 1;
            }
            replay_run(&r, t);
            printf("%s %-10s heap %" PRIu64 " KiB: %zu ops, %" PRIu64 " failures (%" PRIu64
                   " after compaction), %" PRIu64 " moves, %" PRIu64 " KiB moved: %s\n",
                   t->name, span_policy_name((enum span_policy)p), r.heap / KIB, t->n, r.fail_raw, r.fail_after,
                   r.moves, r.moved_bytes / KIB, r.faults ? "FAULTS" : "books exact");
            faults += r.faults;
            replay_teardown(&r);
        }
    }
    return faults ? 1 : 0;
}

static int policy_by_name(const char *name)
{
    for (unsigned p = 0; p < SPAN_POLICY_COUNT; p++)
        if (strcmp(name, span_policy_name((enum span_policy)p)) == 0)
            return (int)p;
    return -1;
}

int main(int argc, char **argv)
{
    bool check = false, instructions = false;
    int first = 1, status = 0;

    if (argc == 5 && strcmp(argv[1], "--once") == 0) {
        struct trace t;
        struct replay r;
        int p = policy_by_name(argv[2]);
        unsigned permille = (unsigned)strtoul(argv[3], NULL, 10);
        if (p < 0 || permille < 1000 || trace_load(&t, argv[4]) != 0 ||
            replay_setup(&r, &t, (enum span_policy)p, permille, false) != 0)
            return 2;
        replay_run(&r, &t);
        replay_teardown(&r);
        free(t.ops);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--check") == 0)
        check = true, first = 2;
    else if (argc > 1 && strcmp(argv[1], "--instructions") == 0)
        instructions = true, first = 2;
    if (first >= argc) {
        fprintf(stderr, "usage: span-trace [--check | --instructions] TRACE...\n"
                        "       span-trace --once POLICY PERMILLE TRACE\n");
        return 2;
    }
    if (!check) {
        printf("trace            policy      heap  heap KiB   ns/op  fails  after  after  plans "
               " moved KiB%s\n",
               instructions ? "  instr/a  instr/f compact-ins" : "");
        printf("%52s targeted   full\n", "");
    }
    for (int i = first; i < argc; i++) {
        struct trace t;
        if (trace_load(&t, argv[i]) != 0)
            return 2;
        if (check) {
            printf("%s: %zu ops, %" PRIu64 " segments, peak %" PRIu64 " KiB in %" PRIu64 " segments\n", t.name, t.n,
                   t.allocs, t.peak_bytes / KIB, t.peak_count);
            status |= check_all(&t);
        } else {
            for (unsigned p = 0; p < SPAN_POLICY_COUNT; p++)
                for (unsigned h = 0; h < HEAPS; h++)
                    status |= measure(argv[0], &t, (enum span_policy)p, heap_permille[h], instructions);
        }
        free(t.ops);
    }
    return status;
}
