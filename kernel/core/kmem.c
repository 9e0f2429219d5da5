/*
 * Kernel layer: charging kernel memory (see kernel/kmem.h). Called by every
 * code path that takes pool frames or slab objects on a process's behalf.
 */
#include <abi/errno.h>
#include <arch/layout.h>
#include <common/string.h>
#include <kernel/account.h>
#include <kernel/kmem.h>
#include <kernel/pool.h>
#include <kernel/slab.h>

/* Enough for init to load a program (process, tables, a thread and its
 * stack, handle pages) several times over, and never less than 1/32 of
 * the pool. */
#define KMEM_RESERVE_MIN 64u

static uint64_t reserve_frames;

void kmem_init(void)
{
    uint64_t share = pool_total_frames() / 32;
    reserve_frames = share > KMEM_RESERVE_MIN ? share : KMEM_RESERVE_MIN;
}

uint64_t kmem_reserve_frames(void) { return reserve_frames; }

bool kmem_pool_has(const struct account *a, uint64_t frames)
{
    uint64_t held_back = (a && !a->root) ? reserve_frames : 0;
    return pool_free_frames() >= frames + held_back;
}

int kmem_charge(struct account *a, uint64_t bytes, uint64_t frames)
{
    if (bytes == 0 && frames == 0)
        return 0; /* a mapping into tables that exist: nothing taken, nothing to refuse */
    if (!kmem_pool_has(a, frames))
        return -ENOMEM;
    if (!a)
        return 0;
    return account_charge(a, RES_KMEM, bytes);
}

void kmem_uncharge(struct account *a, uint64_t bytes)
{
    if (a && bytes)
        account_uncharge(a, RES_KMEM, bytes);
}

int kmem_frame_alloc(struct account *a, void **out)
{
    int err = kmem_charge(a, PAGE_SIZE, 1);
    if (err)
        return err;
    uint64_t frame = pool_alloc_frame();
    if (!frame) {
        kmem_uncharge(a, PAGE_SIZE);
        return -ENOMEM;
    }
    *out = phys_to_virt(frame);
    memset(*out, 0, PAGE_SIZE);
    return 0;
}

void kmem_frame_free(struct account *a, void *frame)
{
    pool_free_frame(virt_to_phys(frame));
    kmem_uncharge(a, PAGE_SIZE);
}

int kmem_slab_alloc(struct account *a, struct slab_cache *c, void **out)
{
    /* A new slab may be needed: one frame at most. */
    int err = kmem_charge(a, c->object_size, 1);
    if (err)
        return err;
    void *object = slab_alloc(c);
    if (!object) {
        kmem_uncharge(a, c->object_size);
        return -ENOMEM;
    }
    *out = object;
    return 0;
}

void kmem_slab_free(struct account *a, struct slab_cache *c, void *object)
{
    slab_free(c, object);
    kmem_uncharge(a, c->object_size);
}
