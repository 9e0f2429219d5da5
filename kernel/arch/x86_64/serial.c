/*
 * Architecture layer (x86-64): the COM1 UART, 115200 8N1. Output is polled;
 * input raises IRQ 4. All kernel output goes through console.c, which calls
 * arch_serial_write(); input goes to console.c's buffer.
 */
#include <arch/arch.h>

#define COM1           COM1_PORT
#define UART_DATA      0
#define UART_IER       1
#define UART_FCR       2
#define UART_LCR       3
#define UART_MCR       4
#define UART_LSR       5
#define LSR_DATA_READY 0x01
#define LSR_THR_EMPTY  0x20
#define LSR_TX_IDLE    0x40

void arch_serial_init(void)
{
    outb(COM1 + UART_IER, 0x00);
    outb(COM1 + UART_LCR, 0x80);
    outb(COM1 + UART_DATA, 0x01); /* divisor 1: 115200 baud */
    outb(COM1 + UART_IER, 0x00);
    outb(COM1 + UART_LCR, 0x03);
    outb(COM1 + UART_FCR, 0xc7);
    outb(COM1 + UART_MCR, 0x03);
}

static void serial_putc(char c)
{
    while (!(inb(COM1 + UART_LSR) & LSR_THR_EMPTY))
        ;
    outb(COM1 + UART_DATA, (uint8_t)c);
}

void arch_serial_write(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n')
            serial_putc('\r');
        serial_putc(s[i]);
    }
}

void arch_serial_enable_input(void)
{
    outb(COM1 + UART_IER, 0x01); /* interrupt when a byte arrives */
    outb(COM1 + UART_MCR, 0x0b); /* DTR, RTS, OUT2: OUT2 gates the IRQ line */
}

int arch_serial_read_byte(void)
{
    if (!(inb(COM1 + UART_LSR) & LSR_DATA_READY))
        return -1;
    return inb(COM1 + UART_DATA);
}

void arch_serial_drain(void)
{
    /* Bochs loses bytes still in the FIFO when it shuts down. */
    for (unsigned spins = 0; spins < 10000000u; spins++)
        if (inb(COM1 + UART_LSR) & LSR_TX_IDLE)
            return;
}
