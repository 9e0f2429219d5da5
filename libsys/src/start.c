/*
 * libsys: program start (called by crt0).
 */
#include <common/string.h>
#include <libsys/malloc.h>
#include <libsys/start.h>
#include <libsys/syscall.h>

const struct abi_startup *libsys_startup;
uint64_t libsys_pid;

handle_t startup_handle(unsigned slot)
{
    return libsys_startup != NULL && slot < ABI_STARTUP_HANDLES ? libsys_startup->handles[slot] : HANDLE_NONE;
}

#define ARGV_MAX 32
static char args_copy[ABI_ARGS_MAX];
static char *argv[ARGV_MAX + 1];

void libsys_start(const struct abi_startup *st, uint64_t pid);
void libsys_start(const struct abi_startup *st, uint64_t pid)
{
    int argc = 0;
    libsys_pid = pid;
    if (st && st->magic == ABI_STARTUP_MAGIC) {
        libsys_startup = st;
        strlcpy(args_copy, st->args, sizeof(args_copy));
        char *p = args_copy;
        while (*p && argc < ARGV_MAX) {
            while (*p == ' ')
                *p++ = 0;
            if (!*p)
                break;
            argv[argc++] = p;
            while (*p && *p != ' ')
                p++;
        }
    }
    argv[argc] = 0;
    /* Points the default heap at the memory server; takes nothing yet. */
    malloc_init_memsrv();
    sys_exit(main(argc, argv));
}
