/*
 * Kernel layer: the virtual area allocator of one address space (interface in
 * kernel/vmarea.h). The address-space code (aspace.c) calls it to pick
 * where a transferred or granted segment is mapped and
 * to record fixed areas placed by the loader. It neither maps nor touches
 * page tables. Pure C: built into the kernel and into the host tests.
 *
 * Theory
 * ======
 *
 * 1. Concepts. An instance manages [base, limit) of one address space. That
 *    range is cut into areas, each used (something is mapped there, or is
 *    reserved) or free. The areas cover the range exactly, in address order,
 *    and no two free areas are adjacent (a free merges with free neighbours),
 *    save around the one area whose merge is put off (3a). Used areas are
 *    never merged: each is one segment or one fixed mapping, freed as a
 *    whole by its start address.
 *
 * 2. The area array. One 8-byte word per area: its start address, with bit 0
 *    set when the area is used (starts are page aligned, so bit 0 is spare).
 *    An area ends where the next one starts, or at limit for the last one, so
 *    sizes need no storage and the cover property cannot be broken by a
 *    stale size. Looking up an address is a binary search for the last start
 *    <= addr: O(log n).
 *
 *    The lookup hint. Most lookups name the area the previous call made or
 *    freed: a segment moving through IPC is freed in the address space that
 *    carved it last, and the area a free just made is the one a quick-fit
 *    list hands to the next allocation of that size. So the instance keeps
 *    the index of the area last carved or freed, and a lookup first asks
 *    whether that area contains the address (two loads and two compares)
 *    before the binary search. The hint is a guess, never trusted: an
 *    insert or delete may have shifted it onto another area or past the
 *    end, and the lookup tests the answer itself, so any value is safe.
 *
 *    The kernel has no heap, so the array lives in 4 KiB element pages of 512
 *    words, reached through one directory page of 512 pointers: element i is
 *    directory[i / 512][i % 512]. Elements are dense (every element page but
 *    the last is full), so indexing is a shift and a mask, and an insert or
 *    delete shifts the tail of the array by one or two words, page by page
 *    with memmove. Capacity: 512 * 512 = 262,144 areas (2 MiB of element
 *    pages), beyond the 100,000 asked of a process; an address space this
 *    fragmented fails with -ENOMEM rather than growing a third level.
 *
 * 3. Quick-fit lists. One page holds 65 lists of at most 7 start addresses
 *    (7 = the most that fits: 4096 / 8 / 65, rounded down). List k (1..64)
 *    holds free areas of exactly k pages (4 KiB .. 256 KiB, the sizes of most
 *    messages and small segments); list 0 holds free areas above 64 pages,
 *    searched best-fit. The lists are exact, not lazy: every entry is the
 *    start of a free area of the list's class, at most once. Whatever makes
 *    a free area disappear or change size (carving, coalescing) first removes
 *    it from its list: a search of at most 7 words. A list that is full when
 *    a new free area arrives drops its oldest entry (recent frees are reused
 *    first) and is marked incomplete; a list is "complete" when it holds
 *    every free area of its class. The lists are hints, never the truth: when
 *    they cannot answer and some relevant list is incomplete, one pass over
 *    the array finds the best fit and refills every list (marking complete
 *    each list whose class has at most 7 free areas). A free area that
 *    changes size within its class (a large area carved from, or growing by
 *    a merge) keeps its list entry, rewritten in place; lists are searched
 *    newest first, as the entry touched next is most often the last noted.
 *
 *    Allocation of k <= 64 pages: list k (exact fit, no split); if list k is
 *    empty but incomplete, the pass above (true best fit); else the first
 *    non-empty list above k (best fit among the listed; a mask of the
 *    non-empty lists finds it with one bit scan, not a walk over up to 64
 *    lengths); then list 0; then,
 *    if any list from k up or list 0 is incomplete, the pass; else -ENOSPC.
 *    Larger sizes start at list 0. Sizes >= 2 MiB are placed 2 MiB aligned,
 *    or at the offset from a 2 MiB boundary asked for (vmareas_alloc_phased:
 *    that of the memory mapped there), so the segment maps with large
 *    pages; the area below that start stays a free area. Within the chosen
 *    free area, allocation takes the lowest suitable address.
 *
 * 3a. The unmerged area. A segment moving back and forth through IPC is
 *    freed in one address space and, the next time round, allocated there
 *    again at the same size. Merging it with its free neighbour and carving
 *    it out again would shift the array and move quick-fit entries between
 *    classes twice per trip for nothing. So free marks the area free and,
 *    when a neighbour is free too, leaves both the merge and the listing in
 *    a quick-fit list for later: it records the area as the instance's one
 *    unmerged area, which no list holds (merging lists the merged area).
 *    The next call settles it first, except one: an allocation of
 *    exactly its size (and, at >= 2 MiB, with its start at the offset asked),
 *    which takes it back at once (an exact fit, as list k would give). Every
 *    other allocation, reserve or free merges it before doing anything else,
 *    so the pass, the best-fit search and the -ENOSPC and -EEXIST answers
 *    always see merged free areas, and at most one area is ever unmerged.
 *
 * 4. Invariants (vmareas_check verifies each one):
 *    - count >= 1; starts strictly increase from base and stay below limit,
 *      page aligned; no two adjacent areas free unless one of them is the
 *      unmerged area, which is a free area's start;
 *    - element pages: directory[0 .. element_pages) non-NULL, the rest NULL;
 *      count <= element_pages * 512; and either element_pages == 1 or
 *      count + SHRINK_SLACK > (element_pages - 1) * 512, i.e. at most one
 *      page beyond need is kept, and only briefly; pages_held counts element
 *      pages plus the directory and quick-fit pages;
 *    - each quick-fit entry is the start of a free area of its class, at most
 *      once, never the unmerged area; a complete list holds as many entries
 *      as there are free areas of its class, the unmerged one aside.
 *
 * 5. Failure modes. Bad arguments get -EINVAL, -ERANGE, -EEXIST, -ENOENT or
 *    -ENOSPC and change nothing; nothing here panics on client input.
 *    Allocation and reserve add at most two elements (a used area and a free
 *    remainder on each side, less the free area they came from), so they
 *    need at most one new element page. They choose the place, then get that
 *    page (-ENOMEM if it cannot be had or the directory is full), and only
 *    then change the array, in steps that cannot fail. The one thing a failed
 *    allocation may have changed is the content of the quick-fit lists, if it
 *    refilled them: that is a cache, and it stays exact; and it may have
 *    merged the unmerged area, which changes how the free space is cut into
 *    areas but not what is free. Free removes elements or leaves their
 *    number alone, and so never needs a page; the unmerged area holds at
 *    most two elements a merge would have given back.
 *
 * 6. Pages. Init takes three pages (directory, quick-fit, one element page);
 *    destroy returns all. When the array shrinks, the last element page goes
 *    back once the array is SHRINK_SLACK elements below the previous page's
 *    end: so a process whose segments are all unmapped returns to its
 *    baseline of three pages, while alternating map/unmap at a page boundary
 *    does not get and put a page on every call (and a map right after an
 *    unmap there never fails for want of a page).
 *
 * 7. Costs (n areas): find O(log n); free O(log n) + shift; alloc O(1) list
 *    work + O(log n) search + shift, or O(n) when the pass runs, which needs
 *    an empty incomplete list (refilled with up to 7 areas by the pass, so
 *    at most one pass per 7 allocations of a class while more exist). The
 *    search is O(1) when the hint names the area: a free of the area last
 *    carved, an allocation from the area last freed (the pattern of a
 *    segment moving back and forth through IPC, which the unmerged area
 *    turns into a free and an allocation of O(1) each, with no shift). A
 *    merge put off costs the same when it is done later. The shift moves
 *    the areas above the changed one: at most 8n bytes, in practice far less
 *    because allocation fills free areas from the bottom of the
 *    lowest-addressed fits and the tail of the space is one free area.
 *    See tests/host/vmarea/bench_vmarea.c for measured figures.
 */
#include <abi/errno.h>
#include <common/check.h>
#include <common/string.h>
#include <kernel/vmarea.h>

#define USED_BIT 1ull
/* Any slack >= 2 (the most one call changes the count by) stops a get/put
 * per call at a page boundary; 16 keeps the spare page only a little longer. */
#define SHRINK_SLACK 16u

_Static_assert(VMAREA_PER_PAGE * sizeof(uint64_t) == VMAREA_PAGE_SIZE, "element page is full");
_Static_assert(VMAREA_MAX_PAGES * sizeof(uint64_t *) == VMAREA_PAGE_SIZE, "directory page is full");
_Static_assert(VMAREA_QUICK_CLASSES *VMAREA_QUICK_DEPTH * sizeof(uint64_t) <= VMAREA_PAGE_SIZE,
               "quick-fit lists fit a page");
_Static_assert((VMAREA_QUICK_CLASSES * (VMAREA_QUICK_DEPTH + 1)) * sizeof(uint64_t) > VMAREA_PAGE_SIZE,
               "quick-fit depth is the most that fits");
_Static_assert(VMAREA_QUICK_DEPTH < 256, "quick_len is a uint8_t");
_Static_assert(VMAREA_QUICK_PAGES <= 64, "quick_nonempty has a bit per sized list");
_Static_assert(SHRINK_SLACK >= 2 && SHRINK_SLACK < VMAREA_PER_PAGE, "shrink slack");

static inline uint64_t *element(const struct vmareas *a, uint64_t i)
{
    return &a->directory[i / VMAREA_PER_PAGE][i % VMAREA_PER_PAGE];
}

static inline uint64_t area_start(const struct vmareas *a, uint64_t i) { return *element(a, i) & ~USED_BIT; }

static inline bool area_used(const struct vmareas *a, uint64_t i) { return *element(a, i) & USED_BIT; }

static inline uint64_t area_end(const struct vmareas *a, uint64_t i)
{
    return i + 1 < a->count ? area_start(a, i + 1) : a->limit;
}

/* The area containing addr; base <= addr < limit. */
static uint64_t area_search(const struct vmareas *a, uint64_t addr)
{
    uint64_t lo = 0, hi = a->count; /* answer in [lo, hi) */
    while (hi - lo > 1) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (area_start(a, mid) <= addr)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* The same, trying the hint first (theory, section 2). The hint is only a
 * guess, so it is checked like any other candidate and may be anything. */
static inline uint64_t area_index(const struct vmareas *a, uint64_t addr)
{
    uint64_t h = a->hint;
    if (h < a->count && area_start(a, h) <= addr && addr < area_end(a, h))
        return h;
    return area_search(a, addr);
}

/* The words of the areas beside area i, whose word is at e = element(a, i):
 * a neighbour on the same element page is e[-1] or e[1], with no
 * directory lookup. i - 1 and i + 1 must be areas. */
static inline uint64_t word_before(const struct vmareas *a, uint64_t i, const uint64_t *e)
{
    return i % VMAREA_PER_PAGE ? e[-1] : *element(a, i - 1);
}

static inline uint64_t word_after(const struct vmareas *a, uint64_t i, const uint64_t *e)
{
    return (i + 1) % VMAREA_PER_PAGE ? e[1] : *element(a, i + 1);
}

static inline uint64_t min3(uint64_t x, uint64_t y, uint64_t z)
{
    uint64_t m = x < y ? x : y;
    return m < z ? m : z;
}

/* Moves n elements from index src to index dst (ranges may overlap), in
 * pieces that stay within one source and one destination page. */
static void move_elements(struct vmareas *a, uint64_t dst, uint64_t src, uint64_t n)
{
    if (dst > src) {
        while (n) {
            uint64_t src_last = src + n - 1, dst_last = dst + n - 1;
            uint64_t piece = min3(n, src_last % VMAREA_PER_PAGE + 1, dst_last % VMAREA_PER_PAGE + 1);
            memmove(element(a, dst_last - piece + 1), element(a, src_last - piece + 1), piece * sizeof(uint64_t));
            n -= piece;
        }
    } else if (dst < src) {
        while (n) {
            uint64_t piece = min3(n, VMAREA_PER_PAGE - src % VMAREA_PER_PAGE, VMAREA_PER_PAGE - dst % VMAREA_PER_PAGE);
            memmove(element(a, dst), element(a, src), piece * sizeof(uint64_t));
            dst += piece;
            src += piece;
            n -= piece;
        }
    }
}

/* Makes room for `extra` (<= 2) more elements: the only step that can fail. */
static int reserve_elements(struct vmareas *a, uint64_t extra)
{
    if (a->count + extra <= (uint64_t)a->element_pages * VMAREA_PER_PAGE)
        return 0;
    if (a->element_pages == VMAREA_MAX_PAGES)
        return -ENOMEM;
    uint64_t *page = a->pages.get_page(a->pages.ctx);
    if (!page)
        return -ENOMEM;
    a->directory[a->element_pages++] = page;
    a->pages_held++;
    return 0;
}

/* Opens n slots at index i; room was reserved. */
static void insert_slots(struct vmareas *a, uint64_t i, uint64_t n)
{
    move_elements(a, i + n, i, a->count - i);
    a->count += n;
}

static void delete_slots(struct vmareas *a, uint64_t i, uint64_t n)
{
    move_elements(a, i, i + n, a->count - i - n);
    a->count -= n;
    while (a->element_pages > 1 && a->count + SHRINK_SLACK <= (uint64_t)(a->element_pages - 1) * VMAREA_PER_PAGE) {
        a->element_pages--;
        a->pages.put_page(a->pages.ctx, a->directory[a->element_pages]);
        a->directory[a->element_pages] = NULL;
        a->pages_held--;
    }
}

/* ---- quick-fit lists ---- */

static inline unsigned quick_class(uint64_t size)
{
    uint64_t pages = size / VMAREA_PAGE_SIZE;
    return pages <= VMAREA_QUICK_PAGES ? (unsigned)pages : 0;
}

static inline uint64_t *quick_list(const struct vmareas *a, unsigned cls)
{
    return &a->quick[cls * VMAREA_QUICK_DEPTH];
}

/* The mask bit of sized list cls (1..64); list 0 has none. */
static inline uint64_t quick_bit(unsigned cls) { return cls ? 1ull << (cls - 1) : 0; }

/* A free area [start, start + size) now exists. Lists are a few words:
 * plain loops beat a call to memmove. */
static inline void quick_note(struct vmareas *a, uint64_t start, uint64_t size)
{
    unsigned cls = quick_class(size);
    uint64_t *list = quick_list(a, cls);
    unsigned len = a->quick_len[cls];
    if (len == VMAREA_QUICK_DEPTH) {
        for (unsigned j = 0; j + 1 < VMAREA_QUICK_DEPTH; j++)
            list[j] = list[j + 1];
        len--;
        a->quick_complete[cls] = false;
    }
    list[len] = start;
    a->quick_len[cls] = (uint8_t)(len + 1);
    a->quick_nonempty |= quick_bit(cls);
}

/* Where start is in list cls, or -1. Searched newest first: the area
 * touched next is most often the one noted last. */
static inline int quick_find(const struct vmareas *a, unsigned cls, uint64_t start)
{
    const uint64_t *list = quick_list(a, cls);
    for (int j = a->quick_len[cls] - 1; j >= 0; j--)
        if (list[j] == start)
            return j;
    return -1;
}

/* The free area [start, start + size) is about to disappear or change size. */
static inline void quick_forget(struct vmareas *a, uint64_t start, uint64_t size)
{
    unsigned cls = quick_class(size);
    int j = quick_find(a, cls, start);
    if (j < 0)
        return;
    uint64_t *list = quick_list(a, cls);
    unsigned len = a->quick_len[cls];
    for (unsigned k = (unsigned)j; k + 1 < len; k++)
        list[k] = list[k + 1];
    a->quick_len[cls] = (uint8_t)(len - 1);
    if (len == 1)
        a->quick_nonempty &= ~quick_bit(cls);
}

/* The free area [from, from + from_size) becomes [to, to + to_size): the
 * same as forgetting the one and noting the other, but when both are of
 * one class (a large area losing or gaining a few pages) the entry is
 * rewritten in place. */
static inline void quick_move(struct vmareas *a, uint64_t from, uint64_t from_size, uint64_t to, uint64_t to_size)
{
    unsigned cls = quick_class(to_size);
    if (cls == quick_class(from_size)) {
        int j = quick_find(a, cls, from);
        if (j >= 0) {
            quick_list(a, cls)[j] = to;
            return;
        }
    } else {
        quick_forget(a, from, from_size);
    }
    quick_note(a, to, to_size);
}

/* Where a request of size bytes would go in the free area [start, end), if
 * it fits there: at the first address `phase` past a multiple of align
 * (phase < align); guards against wrap-around. */
static bool fits(uint64_t start, uint64_t end, uint64_t size, uint64_t align, uint64_t phase, uint64_t *at)
{
    uint64_t placed = start + ((phase - start) & (align - 1));
    if (placed < start || placed >= end || end - placed < size)
        return false;
    *at = placed;
    return true;
}

/* One pass over the array: refills every quick-fit list and finds the
 * smallest free area that fits the request. */
static bool scan_best_fit(struct vmareas *a, uint64_t size, uint64_t align, uint64_t phase, uint64_t *index,
                          uint64_t *at)
{
    for (unsigned cls = 0; cls < VMAREA_QUICK_CLASSES; cls++) {
        a->quick_len[cls] = 0;
        a->quick_complete[cls] = true;
    }
    a->quick_nonempty = 0;
    bool found = false;
    uint64_t best_size = 0;
    uint64_t start = area_start(a, 0);
    for (uint64_t i = 0; i < a->count; i++) {
        uint64_t word = *element(a, i);
        uint64_t end = area_end(a, i);
        uint64_t place;
        if (!(word & USED_BIT)) {
            quick_note(a, start, end - start);
            if (fits(start, end, size, align, phase, &place) && (!found || end - start < best_size)) {
                found = true;
                best_size = end - start;
                *index = i;
                *at = place;
            }
        }
        start = end;
    }
    return found;
}

/* Picks the free area for a request (see the theory, section 3). */
static bool choose_free_area(struct vmareas *a, uint64_t size, uint64_t align, uint64_t phase, uint64_t *index,
                             uint64_t *at)
{
    unsigned pages_class = quick_class(size);
    if (pages_class) {
        if (!a->quick_len[pages_class] && !a->quick_complete[pages_class])
            return scan_best_fit(a, size, align, phase, index, at);
        uint64_t listed = a->quick_nonempty & (~0ull << (pages_class - 1)); /* lists pages_class and up */
        if (listed) {
            unsigned cls = (unsigned)__builtin_ctzll(listed) + 1;
            *at = quick_list(a, cls)[a->quick_len[cls] - 1];
            *index = area_index(a, *at);
            return true;
        }
    }
    bool found = false;
    uint64_t best_size = 0;
    const uint64_t *large = quick_list(a, 0);
    for (unsigned j = 0; j < a->quick_len[0]; j++) {
        uint64_t i = area_index(a, large[j]);
        uint64_t end = area_end(a, i), place;
        if (fits(large[j], end, size, align, phase, &place) && (!found || end - large[j] < best_size)) {
            found = true;
            best_size = end - large[j];
            *index = i;
            *at = place;
        }
    }
    if (found)
        return true;
    bool maybe_more = !a->quick_complete[0];
    for (unsigned cls = pages_class; pages_class && cls <= VMAREA_QUICK_PAGES; cls++)
        maybe_more |= !a->quick_complete[cls];
    return maybe_more && scan_best_fit(a, size, align, phase, index, at);
}

/* Marks [at, at + size) used inside free area i, leaving free remainders. */
static int carve(struct vmareas *a, uint64_t i, uint64_t at, uint64_t size)
{
    uint64_t start = area_start(a, i), end = area_end(a, i);
    bool head = at > start, tail = at + size < end;
    int err = reserve_elements(a, (uint64_t)head + tail);
    if (err)
        return err;
    /* From here on nothing can fail. */
    if (head)
        quick_move(a, start, end - start, start, at - start);
    else if (tail)
        quick_move(a, start, end - start, at + size, end - at - size);
    else
        quick_forget(a, start, end - start);
    if (head && tail)
        quick_note(a, at + size, end - at - size);
    insert_slots(a, i + 1, (uint64_t)head + tail);
    if (head)
        *element(a, i++) = start;
    a->hint = i;
    *element(a, i++) = at | USED_BIT;
    if (tail)
        *element(a, i) = at + size;
    return 0;
}

/* Merges the unmerged free area with its free neighbours (theory, 3a). */
static void merge_unmerged(struct vmareas *a)
{
    if (!a->has_unmerged)
        return;
    a->has_unmerged = false;
    uint64_t start = a->unmerged, i = area_index(a, start), end = area_end(a, i);
    uint64_t merged_start = start, merged_end = end;
    bool prev_free = i > 0 && !area_used(a, i - 1);
    bool next_free = i + 1 < a->count && !area_used(a, i + 1);
    if (next_free) {
        merged_end = area_end(a, i + 1);
        quick_forget(a, end, merged_end - end);
    }
    /* The unmerged area itself is in no list (theory, 3a). */
    if (prev_free) {
        merged_start = area_start(a, i - 1);
        quick_move(a, merged_start, start - merged_start, merged_start, merged_end - merged_start);
        delete_slots(a, i, 1 + (uint64_t)next_free);
        i--;
    } else {
        quick_note(a, start, merged_end - start);
        if (next_free)
            delete_slots(a, i + 1, 1);
    }
    a->hint = i;
}

/* ---- interface ---- */

int vmareas_init(struct vmareas *a, uint64_t base, uint64_t limit, const struct vmarea_pages *pages)
{
    memset(a, 0, sizeof(*a));
    if (!pages || !pages->get_page || !pages->put_page)
        return -EINVAL;
    if (base % VMAREA_PAGE_SIZE || limit % VMAREA_PAGE_SIZE || base >= limit)
        return -EINVAL;
    a->pages = *pages;
    void *directory = pages->get_page(pages->ctx);
    void *quick = directory ? pages->get_page(pages->ctx) : NULL;
    void *first = quick ? pages->get_page(pages->ctx) : NULL;
    if (!first) {
        if (quick)
            pages->put_page(pages->ctx, quick);
        if (directory)
            pages->put_page(pages->ctx, directory);
        memset(a, 0, sizeof(*a));
        return -ENOMEM;
    }
    a->base = base;
    a->limit = limit;
    a->directory = directory;
    a->quick = quick;
    a->directory[0] = first;
    a->element_pages = 1;
    a->pages_held = 3;
    a->count = 1;
    *element(a, 0) = base;
    for (unsigned cls = 0; cls < VMAREA_QUICK_CLASSES; cls++)
        a->quick_complete[cls] = true;
    quick_note(a, base, limit - base);
    return 0;
}

void vmareas_destroy(struct vmareas *a)
{
    if (!a->directory)
        return;
    for (uint32_t p = 0; p < a->element_pages; p++)
        a->pages.put_page(a->pages.ctx, a->directory[p]);
    a->pages.put_page(a->pages.ctx, a->quick);
    a->pages.put_page(a->pages.ctx, a->directory);
    memset(a, 0, sizeof(*a));
}

/* The area just freed, asked for again at its size (theory, 3a): no list
 * to update, nothing to shift. Any size that is not exactly the area's
 * (zero, unaligned, too large), or a start off the phase asked for,
 * misses. */
static inline bool take_back_unmerged(struct vmareas *a, uint64_t size, uint64_t phase, uint64_t *addr)
{
    uint64_t align = size >= VMAREA_LARGE_SIZE ? VMAREA_LARGE_SIZE : VMAREA_PAGE_SIZE;
    uint64_t start = a->unmerged, i = a->hint;
    /* The unmerged area is a free area's start: the hint names it when its
     * word is that start (the free that made it set the hint). */
    uint64_t *e = i < a->count ? element(a, i) : 0;
    if (!e || *e != start) {
        i = area_search(a, start);
        e = element(a, i);
    }
    uint64_t end = i + 1 < a->count ? word_after(a, i, e) & ~USED_BIT : a->limit;
    if (end - start != size || (start & (align - 1)) != (phase & (align - 1)))
        return false;
    *e = start | USED_BIT;
    a->has_unmerged = false;
    a->hint = i;
    *addr = start;
    return true;
}

/* Out of line: the take-back above then saves no registers. */
static int __attribute__((noinline)) alloc_anywhere(struct vmareas *a, uint64_t size, uint64_t phase, uint64_t *addr)
{
    if (!size || size % VMAREA_PAGE_SIZE || phase % VMAREA_PAGE_SIZE)
        return -EINVAL;
    if (size > a->limit - a->base)
        return -ENOSPC;
    uint64_t align = size >= VMAREA_LARGE_SIZE ? VMAREA_LARGE_SIZE : VMAREA_PAGE_SIZE;
    merge_unmerged(a);
    uint64_t index, at;
    if (!choose_free_area(a, size, align, phase & (align - 1), &index, &at))
        return -ENOSPC;
    int err = carve(a, index, at, size);
    if (err)
        return err;
    *addr = at;
    return 0;
}

int vmareas_alloc(struct vmareas *a, uint64_t size, uint64_t *addr) { return vmareas_alloc_phased(a, size, 0, addr); }

int vmareas_alloc_phased(struct vmareas *a, uint64_t size, uint64_t phase, uint64_t *addr)
{
    if (a->has_unmerged && take_back_unmerged(a, size, phase, addr))
        return 0;
    return alloc_anywhere(a, size, phase, addr);
}

int vmareas_reserve(struct vmareas *a, uint64_t addr, uint64_t size)
{
    if (!size || size % VMAREA_PAGE_SIZE || addr % VMAREA_PAGE_SIZE)
        return -EINVAL;
    if (addr < a->base || addr >= a->limit || size > a->limit - addr)
        return -ERANGE;
    merge_unmerged(a);
    uint64_t i = area_index(a, addr);
    if (area_used(a, i) || area_end(a, i) - addr < size)
        return -EEXIST; /* free neighbours are merged: anything else is used */
    return carve(a, i, addr, size);
}

int vmareas_free(struct vmareas *a, uint64_t addr, uint64_t *size)
{
    if (addr < a->base || addr >= a->limit)
        return -ENOENT;
    uint64_t i = area_index(a, addr);
    uint64_t *e = element(a, i);
    if ((*e & ~USED_BIT) != addr || !(*e & USED_BIT))
        return -ENOENT;
    if (a->has_unmerged) {
        merge_unmerged(a); /* moves the areas above it down */
        i = area_index(a, addr);
        e = element(a, i);
    }
    bool last = i + 1 == a->count;
    uint64_t next = last ? a->limit | USED_BIT : word_after(a, i, e); /* past the end: as if used */
    uint64_t end = next & ~USED_BIT;
    *e = addr;
    a->hint = i;
    /* Merging with a free neighbour, and listing, are put off (theory, 3a). */
    if ((i > 0 && !(word_before(a, i, e) & USED_BIT)) || !(next & USED_BIT)) {
        a->unmerged = addr;
        a->has_unmerged = true;
    } else {
        quick_note(a, addr, end - addr);
    }
    if (size)
        *size = end - addr;
    return 0;
}

int vmareas_find(const struct vmareas *a, uint64_t addr, uint64_t *start, uint64_t *size)
{
    if (addr < a->base || addr >= a->limit)
        return -ENOENT;
    uint64_t i = area_index(a, addr);
    if (!area_used(a, i))
        return -ENOENT;
    if (start)
        *start = area_start(a, i);
    if (size)
        *size = area_end(a, i) - area_start(a, i);
    return 0;
}

uint64_t vmareas_count(const struct vmareas *a) { return a->count; }

void vmareas_settle(struct vmareas *a) { merge_unmerged(a); }

void vmareas_area(const struct vmareas *a, uint64_t i, uint64_t *start, uint64_t *size, bool *used)
{
    *start = area_start(a, i);
    *size = area_end(a, i) - *start;
    *used = area_used(a, i);
}

#define CHECK(cond, text) CHECK_OR_REFUSE(cond, why, text)

int vmareas_check(const struct vmareas *a, const char **why)
{
    CHECK(a->directory && a->quick, "not initialised");
    CHECK(a->base < a->limit && a->base % VMAREA_PAGE_SIZE == 0 && a->limit % VMAREA_PAGE_SIZE == 0, "managed range");
    CHECK(a->element_pages >= 1 && a->element_pages <= VMAREA_MAX_PAGES, "element page count");
    CHECK(a->pages_held == a->element_pages + 2, "page accounting: pages_held");
    for (uint32_t p = 0; p < VMAREA_MAX_PAGES; p++)
        CHECK((a->directory[p] != NULL) == (p < a->element_pages), "directory holds the element pages");
    CHECK(a->count >= 1 && a->count <= (uint64_t)a->element_pages * VMAREA_PER_PAGE, "count fits the pages");
    CHECK(a->element_pages == 1 || a->count + SHRINK_SLACK > (uint64_t)(a->element_pages - 1) * VMAREA_PER_PAGE,
          "a page that should have been returned is kept");

    uint64_t free_in_class[VMAREA_QUICK_CLASSES] = { 0 };
    CHECK(area_start(a, 0) == a->base, "first area starts at base");
    for (uint64_t i = 0; i < a->count; i++) {
        uint64_t word = *element(a, i), start = word & ~USED_BIT;
        CHECK(start % VMAREA_PAGE_SIZE == 0, "area start page aligned");
        CHECK(start < a->limit, "area starts below limit");
        if (i + 1 < a->count)
            CHECK(start < area_start(a, i + 1), "areas sorted, none empty");
        if (!(word & USED_BIT)) {
            bool beside_unmerged =
                a->has_unmerged && i > 0 && (start == a->unmerged || area_start(a, i - 1) == a->unmerged);
            CHECK(i == 0 || area_used(a, i - 1) || beside_unmerged, "no two adjacent free areas");
            if (!a->has_unmerged || start != a->unmerged)
                free_in_class[quick_class(area_end(a, i) - start)]++;
        }
    }
    if (a->has_unmerged) {
        CHECK(a->unmerged >= a->base && a->unmerged < a->limit, "unmerged area in range");
        uint64_t i = area_search(a, a->unmerged);
        CHECK(area_start(a, i) == a->unmerged && !area_used(a, i), "unmerged area is a free area's start");
    }
    /* The hint may hold anything; a lookup through it must still agree with
     * the search, at both ends of the hinted area and of its neighbours. */
    for (uint64_t i = a->hint > 0 ? a->hint - 1 : 0; i <= a->hint + 1 && i < a->count; i++) {
        CHECK(area_index(a, area_start(a, i)) == area_search(a, area_start(a, i)), "hinted lookup at a start");
        CHECK(area_index(a, area_end(a, i) - 1) == area_search(a, area_end(a, i) - 1), "hinted lookup at an end");
    }

    for (unsigned cls = 0; cls < VMAREA_QUICK_CLASSES; cls++) {
        const uint64_t *list = quick_list(a, cls);
        unsigned len = a->quick_len[cls];
        CHECK(len <= VMAREA_QUICK_DEPTH, "quick-fit list length");
        for (unsigned j = 0; j < len; j++) {
            CHECK(list[j] >= a->base && list[j] < a->limit, "quick-fit entry in range");
            CHECK(!a->has_unmerged || list[j] != a->unmerged, "the unmerged area is listed");
            uint64_t i = area_index(a, list[j]);
            CHECK(area_start(a, i) == list[j] && !area_used(a, i), "quick-fit entry is a free area's start");
            CHECK(quick_class(area_end(a, i) - list[j]) == cls, "quick-fit entry in its size's list");
            for (unsigned k = 0; k < j; k++)
                CHECK(list[k] != list[j], "quick-fit entry listed twice");
        }
        if (a->quick_complete[cls])
            CHECK(free_in_class[cls] == len, "complete quick-fit list misses a free area");
        CHECK(!!(a->quick_nonempty & quick_bit(cls)) == (cls && len), "non-empty mask agrees with the lists");
    }
    return 0;
}
