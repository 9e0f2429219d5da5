/*
 * Kernel layer: kernel memory charged to the account tree. Every kernel
 * object a process causes (its own object, threads and their stacks,
 * endpoints, handle-table pages, page tables, area pages, segment records)
 * is charged as RES_KMEM bytes to the account that will hold it, before the
 * pool frames are taken.
 *
 * The pool keeps a reserve: a charge to any account below a root (init's,
 * the memory server's) may not take the pool's free frames below
 * KMEM_RESERVE frames, so whatever a subtree does, init can still start a
 * program and end a subtree. A null account is the kernel's own use: never
 * charged, never held back.
 */
#ifndef KERNEL_KMEM_H
#define KERNEL_KMEM_H

#include <stdbool.h>
#include <stdint.h>

struct account;
struct slab_cache;

/* Sizes the reserve from the pool (after pool_init). */
void kmem_init(void);
uint64_t kmem_reserve_frames(void);
/* Whether `frames` pool frames may be taken for account a. */
bool kmem_pool_has(const struct account *a, uint64_t frames);
/* Charges `bytes` of RES_KMEM to a, checking that `frames` pool frames may
 * be taken for it: 0, -EDQUOT (a limit), -ENOMEM (the pool or its reserve). */
int kmem_charge(struct account *a, uint64_t bytes, uint64_t frames);
void kmem_uncharge(struct account *a, uint64_t bytes);
/* A zeroed pool frame (through the direct map), charged to a. */
int kmem_frame_alloc(struct account *a, void **out);
void kmem_frame_free(struct account *a, void *frame);
/* A zeroed object from a slab cache, its size charged to a. */
int kmem_slab_alloc(struct account *a, struct slab_cache *c, void **out);
void kmem_slab_free(struct account *a, struct slab_cache *c, void *object);

#endif
