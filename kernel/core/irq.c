/*
 * Kernel layer: device interrupts for drivers (see kernel/irq.h).
 *
 * Each line has a list of the interrupt objects bound to it and a count of
 * those that fired and were not acknowledged yet; the line is masked while
 * that count is above zero. Unbound lines stay masked.
 */
#include <abi/errno.h>
#include <arch/arch.h>
#include <common/list.h>
#include <kernel/console.h>
#include <kernel/device.h>
#include <kernel/irq.h>
#include <kernel/notification.h>
#include <kernel/proc.h>
#include <kernel/ref.h>
#include <kernel/slab.h>

#define IRQ_LINES 16u

struct irq_object {
    uint32_t refs; /* handles naming it */
    unsigned line;
    struct device *device;      /* a reference */
    struct notify_bit notify;   /* where it signals once bound */
    bool pending;               /* fired, not yet acknowledged */
    struct list_node line_link; /* on its line's list while bound */
    struct account *account;
};

static struct slab_cache irq_cache;
static struct list_node lines[IRQ_LINES];
static unsigned unacknowledged[IRQ_LINES];

void irq_init(void)
{
    slab_cache_init(&irq_cache, "interrupt", sizeof(struct irq_object));
    for (unsigned i = 0; i < IRQ_LINES; i++)
        list_init(&lines[i]);
}

/* Lines the kernel keeps: the timer, the PICs' cascade, the console. */
static bool kernel_line(unsigned line) { return line == 0 || line == 2 || line == ARCH_IRQ_SERIAL; }

int irq_create(struct device *d, struct account *account, struct irq_object **out)
{
    int line = device_irq_line(d);
    if (line < 0 || (unsigned)line >= IRQ_LINES || kernel_line((unsigned)line))
        return -ENOENT;
    struct irq_object *o;
    int err = ACCOUNT_OBJECT_CREATE(account, &irq_cache, &o);
    if (err)
        return err;
    o->line = (unsigned)line;
    o->device = d;
    device_get(d);
    list_init(&o->line_link);
    *out = o;
    return 0;
}

void irq_get(struct irq_object *o) { o->refs++; }

static void settle_line(unsigned line)
{
    if (unacknowledged[line] == 0 && !list_empty(&lines[line]))
        arch_irq_unmask(line);
    else
        arch_irq_mask(line);
}

void irq_handle_dropped(struct irq_object *o)
{
    if (!ref_drop(&o->refs))
        return;
    if (o->notify.to) {
        list_remove(&o->line_link);
        if (o->pending)
            unacknowledged[o->line]--;
        settle_line(o->line);
        notify_bit_unbind(&o->notify);
    }
    device_put(o->device);
    account_object_free(o->account, &irq_cache, o);
}

int irq_bind(struct irq_object *o, struct notification *n, unsigned bit)
{
    int err = notify_bit_bind(&o->notify, n, bit);
    if (err)
        return err;
    o->pending = false;
    list_push_back(&lines[o->line], &o->line_link);
    settle_line(o->line);
    return 0;
}

int irq_ack(struct irq_object *o)
{
    if (!o->notify.to || !o->pending)
        return -EINVAL;
    o->pending = false;
    unacknowledged[o->line]--;
    settle_line(o->line);
    return 0;
}

unsigned irq_line(const struct irq_object *o) { return o->line; }

bool irq_dispatch(unsigned line)
{
    if (line >= IRQ_LINES)
        return false;
    /* Masked first: the devices stay asserted until their drivers quiet
     * them, and a level-triggered line would fire again at once. */
    arch_irq_mask(line);
    bool owned = false;
    struct list_node *n;
    for (n = lines[line].next; n != &lines[line]; n = n->next) {
        struct irq_object *o = LIST_ENTRY(n, struct irq_object, line_link);
        owned = true;
        if (!o->pending) {
            o->pending = true;
            unacknowledged[line]++;
        }
        notify_bit_signal(&o->notify);
    }
    if (!owned)
        settle_line(line);
    return owned;
}
