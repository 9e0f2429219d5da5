/*
 * Kernel layer: device interrupts delivered to user-mode drivers. An
 * interrupt object names one device's interrupt line (its legacy INTx
 * line, as firmware routed it, read when the device was opened). A driver
 * binds it to a notification bit; when the line fires, the kernel masks it,
 * sets that bit, and leaves the line masked until every driver bound to it
 * has acknowledged (SYS_IRQ_ACK), having quieted its device. A level
 * triggered line therefore cannot storm, and a driver that never
 * acknowledges silences only its own line.
 *
 * Misuse is an error, never a crash: binding twice (-EBUSY), acknowledging
 * with nothing pending (-EINVAL), a device without an interrupt line, or
 * one on a line the kernel keeps for itself (-ENOENT).
 *
 * Callers: the system calls (sys_dev.c), trap dispatch (irq_dispatch), the
 * process layer (handles).
 */
#ifndef KERNEL_IRQ_H
#define KERNEL_IRQ_H

#include <stdbool.h>
#include <stdint.h>

struct account;
struct device;
struct irq_object;
struct notification;

void irq_init(void);
/* An interrupt object for the device's line, charged to account. */
int irq_create(struct device *d, struct account *account, struct irq_object **out);
void irq_get(struct irq_object *o);
/* A handle naming it went away; the last one unbinds it. */
void irq_handle_dropped(struct irq_object *o);
/* bit < 63. -EBUSY already bound. */
int irq_bind(struct irq_object *o, struct notification *n, unsigned bit);
/* -EINVAL if it has not fired since the last acknowledgement, or is unbound. */
int irq_ack(struct irq_object *o);
unsigned irq_line(const struct irq_object *o);
/* From trap dispatch: line fired. Returns whether a driver owns it. */
bool irq_dispatch(unsigned line);

#endif
