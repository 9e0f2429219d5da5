/*
 * Kernel layer: what the kernel keeps from the boot loader, copied out of
 * the multiboot2 information at boot (which lives in memory the kernel does
 * not keep): the command line and the boot modules.
 */
#ifndef KERNEL_BOOT_H
#define KERNEL_BOOT_H

#include <stdbool.h>
#include <stdint.h>
#include <abi/proc.h>

struct segment;

/* A boot module's image is a segment: held by the kernel at first, then
 * given to init, mapped read-only, for its loader. */
struct boot_module {
    struct segment *seg;
    uint64_t size; /* bytes of the image (the segment is page-rounded) */
    char name[ABI_MODULE_NAME_MAX];
    char args[ABI_ARGS_MAX];
};

#define BOOT_MODULES_MAX 32
extern struct boot_module boot_modules[BOOT_MODULES_MAX];
extern unsigned boot_module_count;
extern char boot_cmdline[ABI_ARGS_MAX];

/* Whether the command line says key=word. A key with any other value (or
 * bare) is logged as not understood and reads as absent, so that a typo
 * never changes how the kernel runs without saying so. */
bool boot_option_is(const char *cmdline, const char *key, const char *word);

#endif
