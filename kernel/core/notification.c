/*
 * Kernel layer: notifications (see kernel/notification.h).
 */
#include <abi/errno.h>
#include <kernel/console.h>
#include <kernel/ipc.h>
#include <kernel/notification.h>
#include <kernel/proc.h>
#include <kernel/ref.h>
#include <kernel/slab.h>

static struct slab_cache notification_cache;

void notification_init(void) { slab_cache_init(&notification_cache, "notification", sizeof(struct notification)); }

int notification_create(struct account *account, struct notification **out)
{
    return ACCOUNT_OBJECT_CREATE(account, &notification_cache, out);
}

void notification_get(struct notification *n) { n->refs++; }

void notification_put(struct notification *n)
{
    if (!ref_drop(&n->refs))
        return;
    VERIFY(!sched_first_waiter(&n->waiters) && !n->bound);
    account_object_free(n->account, &notification_cache, n);
}

uint64_t notification_take(struct notification *n)
{
    uint64_t bits = n->bits;
    n->bits = 0;
    return bits;
}

void notification_signal(struct notification *n, uint64_t bits)
{
    n->bits |= bits;
    if (!n->bits)
        return;
    /* A thread waiting on the notification itself comes first; then a
     * receiver of the bound endpoint. */
    struct thread *t = sched_first_waiter(&n->waiters);
    if (t) {
        sched_wake(t, (int64_t)notification_take(n));
        return;
    }
    if (n->bound)
        ipc_notification_ready(n->bound);
}

static void notification_put_object(void *n) { notification_put(n); }

int64_t notification_wait(struct notification *n, uint64_t timeout_ns)
{
    if (n->bits)
        return (int64_t)notification_take(n);
    notification_get(n);
    sched_hold(notification_put_object, n);
    /* Bits can exceed what a result can carry only in their top bit. */
    int64_t r = sched_block(&n->waiters, timeout_ns);
    sched_release_wait_hold(current);
    return r;
}
