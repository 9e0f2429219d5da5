/*
 * libsys layer: errors that explain themselves (libsys/explain.h). One
 * table holds what each error means from each source: the kernel's calls
 * row by row from docs/abi.md, the memory server's requests from
 * docs/memsrv.md, the name service's, init's and the key-value store's
 * from their protocol headers (include/proto/): a change to an error there
 * needs its line here (nothing checks that yet). Called by any program
 * that reports an error to a person.
 */
#include <abi/errno.h>
#include <abi/proc.h>
#include <abi/syscall.h>
#include <proto/init.h>
#include <proto/kvstore.h>
#include <proto/memsrv.h>
#include <proto/names.h>
#include <common/fmt.h>
#include <common/string.h>
#include <libsys/explain.h>
#include <libsys/memsrv.h>
#include <libsys/names.h>
#include <libsys/syscall.h>

static const char *const error_names[] = {
#define ERROR_NAME(name, num, text) [num] = #name,
    ABI_ERRORS(ERROR_NAME)
#undef ERROR_NAME
};

static const char *const error_texts[] = {
#define ERROR_TEXT(name, num, text) [num] = #name ": " text,
    ABI_ERRORS(ERROR_TEXT)
#undef ERROR_TEXT
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t code_of(int64_t err) { return err < 0 ? (uint64_t)-err : (uint64_t)err; }

const char *err_name(int64_t err)
{
    uint64_t code = code_of(err);
    return code < COUNT(error_names) && error_names[code] ? error_names[code] : "E?";
}

const char *sys_strerror(int64_t err)
{
    uint64_t code = code_of(err);
    return code < COUNT(error_texts) && error_texts[code] ? error_texts[code] : "unknown error";
}

/* What each code means when nothing more particular is known. */
static const char *general_meaning(int64_t err)
{
    switch (-(int64_t)code_of(err)) {
    case 0: return "success";
    case -EINVAL: return "an argument is malformed or out of its range";
    case -ENOMEM: return "out of memory";
    case -EBADH: return "not a handle this process holds, or a handle of another kind";
    case -EFAULT: return "a buffer lies outside the user half or is not mapped (writable)";
    case -EPERM: return "a right on the handle, or a power of the process, is missing";
    case -EBUSY: return "the object is in use (pinned, in flight or bound)";
    case -ETIMEDOUT: return "the wait ran out";
    case -ENOSYS: return "no such call";
    case -ENOENT: return "no such object";
    case -ERANGE: return "a value is out of range";
    case -E2BIG: return "an argument is too large";
    case -EPEER: return "the other side is gone (no receiver, or the process ended)";
    case -ENOSPC: return "no room left";
    case -ENOEXEC: return "not a program this system can run";
    case -EDQUOT: return "a limit of this process's account, or of an ancestor's, would be passed";
    case -EAGAIN: return "not now: try again";
    case -EEXIST: return "it exists already";
    case -ENOTSUP: return "not supported";
    default: return "an error the ABI does not list";
    }
}

const char *request_error_meaning(int64_t err)
{
    switch (-(int64_t)code_of(err)) {
    case -ENOSYS: return "the server has no such request";
    case -EINVAL: return "the server refused the request as malformed";
    case -EPERM: return "the server does not let this process make that request";
    case -EPEER: return "the server is gone (nobody receives on its endpoint)";
    case -ENOTSUP: return "the receiver does not take handles in messages";
    default: return general_meaning(err);
    }
}

/* The kernel's calls: docs/abi.md, "The system calls", one line per error
 * a row lists (and -EPERM where a right or power is the likely cause). */
static const struct call_meaning {
    unsigned call; /* SYS_* */
    int64_t err;
    const char *text;
} call_meanings[] = {
    { SYS_THREAD_CREATE, -EFAULT, "the entry or the stack lies outside the user half" },
    { SYS_THREAD_CREATE, -EDQUOT, "the account's thread or kernel-memory limit would be passed" },
    { SYS_THREAD_CREATE, -ENOMEM, "the kernel has no frames left for a thread" },
    { SYS_THREAD_WAIT, -EINVAL, "a thread cannot wait for itself" },
    { SYS_THREAD_WAIT, -ETIMEDOUT, "the thread still runs" },
    { SYS_KINFO, -EFAULT, "the statistics buffer is not writable memory" },
    { SYS_PROC_WAIT, -ETIMEDOUT, "the process still runs" },
    { SYS_PROC_WAIT, -EFAULT, "the status pointer is not writable memory" },
    { SYS_PROC_WAIT, -EPERM, "the process handle lacks the WAIT right" },
    { SYS_PROC_KILL, -EPERM, "the process handle lacks the CONTROL right" },
    { SYS_PROC_CREATE, -E2BIG, "the name is 32 bytes or longer" },
    { SYS_PROC_CREATE, -EFAULT, "the name is not readable memory" },
    { SYS_PROC_CREATE, -EINVAL, "an unknown power was asked for" },
    { SYS_PROC_CREATE, -EPERM, "this process lacks POWER_SPAWN, or a power it passes on" },
    { SYS_PROC_CREATE, -EDQUOT, "the account's process or kernel-memory limit would be passed" },
    { SYS_PROC_CREATE, -ENOMEM, "the kernel has no frames left for a process" },
    { SYS_PROC_START, -EFAULT, "the entry or the stack lies outside the user half" },
    { SYS_PROC_START, -EINVAL, "the process was started already" },
    { SYS_PROC_LIMIT, -EPERM, "only the holder of the process's CONTROL right may limit it, never the process itself" },
    { SYS_PROC_LIMIT, -EINVAL, "no such resource (RES_*)" },
    { SYS_PROC_LIMIT, -EPEER, "the process has ended" },
    { SYS_ACCOUNT_INFO, -EFAULT, "the account buffer is not writable memory" },
    { SYS_ACCOUNT_INFO, -EPERM, "the process handle lacks the WAIT right" },
    { SYS_CONSOLE_WRITE, -E2BIG, "more than 64 KiB at once" },
    { SYS_CONSOLE_WRITE, -EFAULT, "the text is not readable memory" },
    { SYS_CONSOLE_READ, -EINVAL, "a read of 0 bytes" },
    { SYS_CONSOLE_READ, -E2BIG, "more than 64 KiB at once" },
    { SYS_CONSOLE_READ, -EFAULT, "the buffer is not writable memory" },
    { SYS_CONSOLE_READ, -ETIMEDOUT, "nothing was typed in time" },
    { SYS_HANDLE_CLOSE, -EINVAL, "a segment is not closed but given back to the memory server (ms_free)" },
    { SYS_HANDLE_GRANT, -EBADH, "only endpoints, devices, processes, notifications and interrupts can be granted" },
    { SYS_HANDLE_GRANT, -EPERM, "the handle lacks GRANT, or the process handle lacks CONTROL" },
    { SYS_HANDLE_GRANT, -EINVAL, "unknown rights, or a receive right moved to its own holder" },
    { SYS_HANDLE_GRANT, -EPEER, "the process has ended" },
    { SYS_HANDLE_GRANT, -EDQUOT, "the process's handle table cannot grow within its account's limits" },
    { SYS_HANDLE_GRANT, -ENOMEM, "the kernel has no frames left for the process's handle table" },
    { SYS_HANDLE_INFO, -EFAULT, "the info buffer is not writable memory" },
    { SYS_KCHECK, -EINVAL, "a kernel invariant is broken (the reason follows)" },
    { SYS_FUTEX_WAIT, -EINVAL, "the word is not 4-byte aligned" },
    { SYS_FUTEX_WAIT, -EFAULT, "the word is not mapped" },
    { SYS_FUTEX_WAIT, -EAGAIN, "the word no longer holds the expected value" },
    { SYS_FUTEX_WAIT, -ETIMEDOUT, "nobody woke the waiter in time" },
    { SYS_FUTEX_WAKE, -EINVAL, "the word is not 4-byte aligned" },
    { SYS_FUTEX_WAKE, -EFAULT, "the word is not mapped" },
    { SYS_MODULE_INFO, -ENOENT, "past the last boot module" },
    { SYS_MODULE_INFO, -EFAULT, "the info buffer is not writable memory" },
    { SYS_MODULE_INFO, -EPERM, "only init (POWER_MODULES) reads the boot modules" },
    { SYS_SHUTDOWN, -EPERM, "only init (POWER_SHUTDOWN) powers off: ask it" },
    { SYS_DEV_OPEN, -EINVAL, "a vendor or device id above 0xffff" },
    { SYS_DEV_OPEN, -ENOENT, "no such PCI device" },
    { SYS_DEV_OPEN, -ENOMEM, "the kernel has no memory left for the device" },
    { SYS_DEV_OPEN, -EPERM, "this process lacks POWER_DEVICES" },
    { SYS_MS_RESTART, -EBUSY, "a memory server is running" },
    { SYS_MS_RESTART, -ENOENT, "the kernel kept no memory-server image" },
    { SYS_MS_RESTART, -E2BIG, "the memory server's arguments would be too long" },
    { SYS_MS_RESTART, -EDQUOT, "the account's limits would be passed" },
    { SYS_MS_RESTART, -ENOMEM, "the kernel has no frames left" },
    { SYS_EP_CREATE, -EDQUOT, "the account's kernel-memory limit would be passed" },
    { SYS_EP_CREATE, -ENOMEM, "the kernel has no frames left for an endpoint" },
    { SYS_IPC_SEND, -EFAULT, "the message is not readable memory" },
    { SYS_IPC_SEND, -EINVAL,
      "payload longer than 128 bytes, a kernel label, unknown rights, or the receive right of the endpoint sent on "
      "moved in it" },
    { SYS_IPC_SEND, -EBUSY, "the segment is pinned, tainted by a device, or in another send" },
    { SYS_IPC_SEND, -ETIMEDOUT, "nobody received in time" },
    { SYS_IPC_SEND, -EPEER, "the endpoint has no receiver any more (its server ended)" },
    { SYS_IPC_SEND, -ENOSPC, "the receiver has no address space left for the segment" },
    { SYS_IPC_SEND, -ENOMEM, "the kernel has no frames left to map the segment" },
    { SYS_IPC_SEND, -EDQUOT, "the receiver's account cannot take the segment or handles" },
    { SYS_IPC_SEND, -ENOTSUP, "the receiver does not take handles in messages" },
    { SYS_IPC_SEND, -EPERM, "the endpoint handle lacks SEND, or a handle sent lacks GRANT" },
    { SYS_IPC_RECV, -EFAULT, "the message buffer is not writable memory" },
    { SYS_IPC_RECV, -ETIMEDOUT, "no message came in time" },
    { SYS_IPC_RECV, -EPEER, "the receive right was moved away" },
    { SYS_IPC_RECV, -EPERM, "the endpoint handle lacks RECV: only its server receives" },
    { SYS_IPC_CALL, -EFAULT, "the message is not readable and writable memory" },
    { SYS_IPC_CALL, -EINVAL, "payload longer than 128 bytes, a kernel label, or unknown rights" },
    { SYS_IPC_CALL, -EBUSY, "the segment is pinned, tainted by a device, or in another send" },
    { SYS_IPC_CALL, -ETIMEDOUT, "no server took the call in time" },
    { SYS_IPC_CALL, -EPEER, "the server is gone, or took the call and will never reply" },
    { SYS_IPC_CALL, -ENOSPC, "no address space left for the segment" },
    { SYS_IPC_CALL, -ENOMEM, "the kernel has no frames left to map the segment" },
    { SYS_IPC_CALL, -EDQUOT, "an account cannot take the segment or handles" },
    { SYS_IPC_CALL, -ENOTSUP, "a handle was sent to, or replied to, a side that does not take handles" },
    { SYS_IPC_CALL, -EPERM, "the endpoint handle lacks SEND, or a handle sent lacks GRANT" },
    { SYS_IPC_REPLY, -ENOENT, "no call is waiting for a reply from this thread" },
    { SYS_IPC_REPLY, -EPEER, "the caller is gone" },
    { SYS_IPC_REPLY_RECV, -EFAULT, "the message buffer is not readable and writable memory" },
    { SYS_IPC_REPLY_RECV, -EPEER, "the receive right was moved away" },
    { SYS_NOTIFY_CREATE, -EDQUOT, "the account's kernel-memory limit would be passed" },
    { SYS_NOTIFY_CREATE, -ENOMEM, "the kernel has no frames left for a notification" },
    { SYS_NOTIFY_SIGNAL, -EINVAL, "no bits, or bit 63" },
    { SYS_NOTIFY_WAIT, -EBUSY, "it is bound to an endpoint: its bits arrive as messages there" },
    { SYS_NOTIFY_WAIT, -ETIMEDOUT, "no bit was signalled in time" },
    { SYS_EP_BIND, -EBUSY, "the endpoint or the notification is bound already, or a thread waits on it" },
    { SYS_EP_WATCH, -EINVAL, "a bit above 62" },
    { SYS_EP_WATCH, -EDQUOT, "the account's kernel-memory limit would be passed" },
    { SYS_EP_WATCH, -ENOMEM, "the kernel has no frames left for the watch" },
    { SYS_EP_UNWATCH, -EINVAL, "a bit above 62" },
    { SYS_EP_UNWATCH, -ENOENT, "no watch of this process's for that endpoint, notification and bit waits to fire" },
    { SYS_SEG_INFO, -EFAULT, "the info buffer is not writable memory" },
    { SYS_SEG_PIN, -EBUSY, "the segment is in flight, or pinned or tainted for another device" },
    { SYS_SEG_PIN, -ERANGE, "the pins nest too deep" },
    { SYS_SEG_PIN, -EDQUOT, "the account's limit on pinned memory (RES_PINNED) would be passed" },
    { SYS_SEG_PIN, -EPERM, "the segment lacks PIN, or the device handle lacks DMA" },
    { SYS_SEG_UNPIN, -EINVAL, "the segment is not pinned" },
    { SYS_SEG_GIVE, -EPEER, "the process has ended" },
    { SYS_SEG_GIVE, -EINVAL, "unknown rights, or an address that is not page-aligned" },
    { SYS_SEG_GIVE, -EBUSY, "the segment is pinned, tainted by a device, or in flight" },
    { SYS_SEG_GIVE, -EFAULT, "no room at that address" },
    { SYS_SEG_GIVE, -ENOSPC, "the process has no address space left for it" },
    { SYS_SEG_GIVE, -EDQUOT, "the process's account cannot take the mapping" },
    { SYS_SEG_GIVE, -ENOMEM, "the kernel has no frames left for page tables" },
    { SYS_MS_BOOTINFO, -ENOENT, "past the last range" },
    { SYS_MS_SEG_CREATE, -EINVAL, "not whole pages of RAM outside the kernel" },
    { SYS_MS_SEG_CREATE, -EPEER, "the paying client has ended" },
    { SYS_MS_SEG_CREATE, -EDQUOT, "the paying client's account is at a limit" },
    { SYS_MS_SEG_REVOKE, -ENOENT, "no live segment has that sid" },
    { SYS_MS_SEG_REVOKE, -EBUSY, "the segment is pinned, tainted or in flight" },
    { SYS_MS_SEG_MIGRATE, -ENOENT, "no live segment has that sid" },
    { SYS_MS_SEG_MIGRATE, -EINVAL, "the destination is not RAM the memory server owns" },
    { SYS_MS_SEG_MIGRATE, -EBUSY, "the segment is pinned or tainted: it cannot move" },
    { SYS_MS_SEG_QUERY, -ENOENT, "no live segment has that sid" },
    { SYS_MS_SEG_DESTROY, -ENOENT, "no live segment has that sid" },
    { SYS_MS_SEG_DESTROY, -EPERM, "a process holds it" },
    { SYS_MS_SEG_DESTROY, -EBUSY, "it is pinned, in flight, or still quarantined" },
    { SYS_DEV_CONFIG_READ, -EINVAL, "an offset past 255 or a width other than 1, 2 or 4" },
    { SYS_DEV_CONFIG_WRITE, -EINVAL, "a bad offset or width, or a value wider than the width" },
    { SYS_DEV_CONFIG_WRITE, -EPERM, "the BARs, the expansion ROM, MSI and the bus-master bit are the kernel's" },
    { SYS_DEV_MAP_BAR, -EINVAL, "no such BAR, or not a memory BAR" },
    { SYS_DEV_MAP_BAR, -EEXIST, "the BAR is mapped already" },
    { SYS_DEV_MAP_BAR, -ENOTSUP, "the BAR is smaller than a page" },
    { SYS_DEV_MAP_BAR, -ENOSPC, "no address space left for the BAR" },
    { SYS_DEV_UNMAP_BAR, -ENOENT, "the BAR is not mapped" },
    { SYS_DEV_DMA, -ENOTSUP, "a bridge: its bus mastering stays as the firmware set it" },
    { SYS_DEV_IRQ, -ENOENT, "the device has no interrupt line the kernel hands out" },
    { SYS_IRQ_BIND, -EINVAL, "a bit above 62" },
    { SYS_IRQ_BIND, -EBUSY, "the interrupt is bound already" },
    { SYS_IRQ_ACK, -EINVAL, "nothing is pending (or it was never bound)" },
    { SYS_DEV_FAULT_BIND, -EINVAL, "a bit above 62" },
    { SYS_DEV_FAULT_BIND, -EBUSY, "the device's faults are bound already" },
};

const char *sys_error_meaning(unsigned call, int64_t err)
{
    int64_t code = -(int64_t)code_of(err);
    for (size_t i = 0; i < COUNT(call_meanings); i++)
        if (call_meanings[i].call == call && call_meanings[i].err == code)
            return call_meanings[i].text;
    return general_meaning(err);
}

/* The servers whose requests libsys explains. */
enum server { MEMSRV, NAMES, INIT, KVSTORE };

/* A server's row for any of its requests. */
#define ANY_REQUEST UINT64_MAX

/* What each server's refusals mean, request by request; the first
 * matching row wins. */
static const struct request_meaning {
    enum server server;
    uint64_t label;
    int64_t err;
    const char *text;
} request_meanings[] = {
    /* The memory server's: docs/memsrv.md, "Protocol". An MS_FREE is a call
     * carrying the segment, so the kernel's refusals to send it come
     * first. */
    { MEMSRV, MS_ALLOC, -EINVAL,
      "a size of 0, an alignment that is not a power of two of at least 4 KiB, or bad flags" },
    { MEMSRV, MS_ALLOC, -E2BIG, "larger than all the RAM the memory server manages" },
    { MEMSRV, MS_ALLOC, -ERANGE, "no RAM region lies below the limit" },
    { MEMSRV, MS_ALLOC, -EDQUOT, "over the memory limit of this process's account, or of an ancestor's" },
    { MEMSRV, MS_ALLOC, -ENOMEM, "no free run that large, even after compaction" },
    { MEMSRV, MS_FREE, -EBUSY, "the segment is pinned (or a device may still reach it): unpin it first" },
    { MEMSRV, MS_FREE, -ENOENT, "not a segment the memory server handed out" },
    { MEMSRV, MS_STATS, -EPERM, "another client's figures are init's to ask for" },
    { MEMSRV, MS_STATS, -ENOENT, "no such client, or past the last region" },
    { MEMSRV, MS_STATS, -EAGAIN,
      "a region's figures walk every span: they share CHECK's fifth of the server's time (w0 says how long to wait)" },
    { MEMSRV, MS_COMPACT, -ENOMEM, "compaction could not make a free run that large" },
    { MEMSRV, MS_COMPACT, -EINVAL, "an unknown mode, or a target of size 0 or a bad alignment" },
    { MEMSRV, MS_MAP, -EAGAIN,
      "more than 8 maps a second (the console is shared), or a whole map too soon after a check: try again in a "
      "moment" },
    { MEMSRV, MS_MAP, -EINVAL, "more than 200 columns" },
    { MEMSRV, MS_CHECK, -EINVAL, "the memory server's books are inconsistent (the reason follows)" },
    { MEMSRV, MS_CHECK, -EAGAIN,
      "a check ran a moment ago: checks take at most a fifth of the server's time (w0 says how long to wait)" },
    { MEMSRV, MS_MOVE, -ENOENT, "not a segment this process holds" },
    { MEMSRV, MS_MOVE, -EBUSY, "the segment is pinned or quarantined: it cannot move" },
    { MEMSRV, MS_MOVE, -ENOMEM, "no other free place that large" },
    { MEMSRV, MS_MOVE, -E2BIG, "larger than MS_MOVE_MAX (4 MiB), the most the memory server moves at once" },
    { MEMSRV, MS_REVOKE, -EPERM, "only init may take a segment back" },
    { MEMSRV, MS_REVOKE, -EBUSY, "the segment is pinned or quarantined" },
    { MEMSRV, MS_REVOKE, -ENOENT, "no segment has that sid" },
    { MEMSRV, 5, -ENOSYS, "request 5 is retired: limits are the kernel's (SYS_PROC_LIMIT)" },
    { MEMSRV, 9, -ENOSYS, "request 9 is retired: the kernel releases quarantine itself" },

    /* The name service's: proto/names.h. */
    { NAMES, NAMES_LOOKUP, -ENOENT, "no server is registered under that name" },
    { NAMES, NAMES_WAIT, -ETIMEDOUT, "no server registered that name in time" },
    { NAMES, NAMES_WAIT, -ENOSPC, "the name service keeps too many waits (or this process's share of them)" },
    { NAMES, NAMES_WATCH, -ENOENT, "no server is registered under that name: nothing to watch" },
    { NAMES, NAMES_WATCH, -ENOSPC, "the name service keeps too many watches (or this process's share of them)" },
    { NAMES, NAMES_REGISTER, -EPERM, "this program's registrar does not allow that name" },
    { NAMES, NAMES_REGISTER, -EEXIST, "another server holds that name" },
    { NAMES, NAMES_REGISTER, -EPEER, "nobody receives on that endpoint" },
    { NAMES, NAMES_REGISTER, -ENOSPC, "the name service holds as many names as it can" },
    { NAMES, NAMES_REGISTER, -EBADH, "this program has no registrar" },
    { NAMES, NAMES_UNREGISTER, -EPERM, "this program's registrar does not allow that name" },
    { NAMES, NAMES_UNREGISTER, -ENOENT, "nothing is registered under that name" },
    { NAMES, NAMES_REGISTRAR, -EPERM, "the registrar may not make registrars, or not for that name" },
    { NAMES, NAMES_REGISTRAR, -ENOSPC, "no more registrars can be made" },
    { NAMES, ANY_REQUEST, -EINVAL,
      "not a name: 1 to 32 characters, dot-separated parts of a-z, 0-9, '_' and '-', each starting "
      "with a letter" },
    { NAMES, ANY_REQUEST, -E2BIG, "longer than a name can be (32 characters)" },
    { NAMES, ANY_REQUEST, -EBADH, "this program was given no name-service endpoint" },

    /* Init's, to the console: proto/init.h. */
    { INIT, INIT_RUN, -ENOENT, "no boot module of that name (Tab after run lists them)" },
    { INIT, INIT_RUN, -EPERM, "init starts that program itself, once" },
    { INIT, INIT_RUN, -ENOSPC, "init runs as many programs as it keeps track of" },
    { INIT, INIT_RUN, -ENOEXEC, "the module is not a program this system can run" },
    { INIT, INIT_RUN, -EINVAL, "the command line is empty, too long or malformed" },
    { INIT, INIT_KILL, -ENOENT, "no running program of init's has that pid" },
    { INIT, INIT_KILL, -EPERM, "the name service and this console cannot be killed" },
    { INIT, INIT_POWEROFF, -EINVAL, "the status must be 0..255" },
    { INIT, INIT_MS_RESTART, -EBUSY, "a restart is under way; try again when it has answered" },
    { INIT, INIT_MS_RESTART, -ENOSYS, "init has no memory server to supervise" },
    { INIT, ANY_REQUEST, -EPERM, "init serves that request only to the console" },
    { INIT, ANY_REQUEST, -EBADH, "init gave this console no endpoint" },

    /* The key-value store's: proto/kvstore.h. */
    { KVSTORE, KV_GET, -ENOENT, "no such key" },
    { KVSTORE, KV_DELETE, -ENOENT, "no such key" },
    { KVSTORE, KV_PUT, -ENOSPC, "the store holds as many keys as it can" },
    { KVSTORE, KV_PUT, -EINVAL, "a key of 1 to 64 bytes and a value of 1 byte to 16 MiB" },
    { KVSTORE, KV_GET, -ENOMEM, "the store has no memory for the value's copy" },
};

static const char *server_meaning(enum server server, uint64_t label, int64_t err)
{
    int64_t code = -(int64_t)code_of(err);
    for (size_t i = 0; i < COUNT(request_meanings); i++) {
        const struct request_meaning *m = &request_meanings[i];
        if (m->server == server && m->err == code && (m->label == label || m->label == ANY_REQUEST))
            return m->text;
    }
    return request_error_meaning(err);
}

const char *ms_error_meaning(uint64_t label, int64_t err) { return server_meaning(MEMSRV, label, err); }
const char *names_error_meaning(uint64_t label, int64_t err) { return server_meaning(NAMES, label, err); }
const char *init_error_meaning(uint64_t label, int64_t err) { return server_meaning(INIT, label, err); }
const char *kv_error_meaning(uint64_t label, int64_t err) { return server_meaning(KVSTORE, label, err); }

const char *size_text(uint64_t bytes, char *buf, size_t len)
{
    static const struct {
        uint64_t unit;
        const char *name;
    } units[] = { { 1ull << 40, "TiB" }, { 1ull << 30, "GiB" }, { 1ull << 20, "MiB" }, { 1ull << 10, "KiB" } };
    for (size_t i = 0; i < COUNT(units); i++) {
        if (bytes != 0 && bytes % units[i].unit == 0) {
            fmt_snprintf(buf, len, "%lu %s", bytes / units[i].unit, units[i].name);
            return buf;
        }
    }
    fmt_snprintf(buf, len, "%lu bytes", bytes);
    return buf;
}

/* Rounded down to a whole KiB, MiB or GiB when it is that large: figures
 * in explanations, not exact sizes. */
static const char *about(uint64_t bytes, char *buf, size_t len)
{
    uint64_t unit = bytes >= (1ull << 30) ? 1ull << 30 : bytes >= (1ull << 20) ? 1ull << 20 : 1ull << 10;
    return size_text(bytes >= 1024 ? bytes / unit * unit : bytes, buf, len);
}
#define ABOUT(bytes) about((bytes), (char[24]){ 0 }, 24)

/* RAM below `limit` and the largest region, from the region statistics. */
struct ram_view {
    uint64_t largest_region;
    uint64_t below;      /* bytes of RAM under the limit */
    uint64_t free_below; /* free bytes in regions wholly under it */
    bool partial;        /* a region straddles the limit: free_below is a lower bound */
};

static void view_ram(uint64_t limit, struct ram_view *v)
{
    *v = (struct ram_view){ 0 };
    struct ms_stats_region r;
    for (unsigned i = 0; ms_stats_region(i, &r) == 0; i++) {
        if (r.size > v->largest_region)
            v->largest_region = r.size;
        if (limit == 0 || r.base >= limit)
            continue;
        uint64_t end = r.base + r.size;
        v->below += (end < limit ? end : limit) - r.base;
        if (end <= limit)
            v->free_below += r.free_bytes;
        else
            v->partial = true;
    }
}

const char *ms_explain_alloc(int64_t err, uint64_t size, unsigned flags, uint64_t limit, char *buf, size_t len)
{
    struct ram_view ram;
    struct ms_stats_global g;
    bool below = flags & MS_ALLOC_BELOW;
    view_ram(below ? limit : 0, &ram);
    bool have_stats = ms_stats_global(&g) == 0;

    if ((err == -E2BIG || err == -ENOMEM || err == -ERANGE) && ram.largest_region && size > ram.largest_region) {
        fmt_snprintf(buf, len, "larger than any RAM region (largest %s)", ABOUT(ram.largest_region));
    } else if (below && (err == -ENOMEM || err == -ERANGE)) {
        if (ram.below == 0)
            fmt_snprintf(buf, len, "no RAM lies below %s", SIZE_TEXT(limit));
        else if (ram.free_below == 0 && !ram.partial)
            fmt_snprintf(buf, len, "no free room below %s (%s of RAM lies below it, none of it free)", SIZE_TEXT(limit),
                         ABOUT(ram.below));
        else
            fmt_snprintf(buf, len, "no free run of %s below %s (%s of RAM lies below it)", SIZE_TEXT(size),
                         SIZE_TEXT(limit), ABOUT(ram.below));
    } else if (err == -ENOMEM && have_stats) {
        fmt_snprintf(buf, len, "no free run of %s%s, even after compaction (largest free run %s, %s free in all)",
                     SIZE_TEXT(size), (flags & MS_ALLOC_LARGE) ? " at 2 MiB alignment" : "", ABOUT(g.largest_free),
                     ABOUT(g.free_bytes));
    } else if (err == -EDQUOT) {
        struct abi_account a;
        if (sys_account_info(HANDLE_SELF, &a) == 0 && a.limit[RES_MEMORY] != ABI_LIMIT_NONE)
            fmt_snprintf(buf, len,
                         "over this process's memory limit (it holds %s of %s; the limit of an ancestor "
                         "may be lower)",
                         ABOUT(a.used[RES_MEMORY]), ABOUT(a.limit[RES_MEMORY]));
        else
            fmt_snprintf(buf, len, "%s", ms_error_meaning(MS_ALLOC, err));
    } else {
        fmt_snprintf(buf, len, "%s", ms_error_meaning(MS_ALLOC, err));
    }
    return buf;
}

const char *exit_status_text(int64_t status, char *buf, size_t len)
{
    static const char *const vectors[32] = {
        [0] = "divide error", [6] = "invalid opcode",   [8] = "double fault",         [13] = "general protection",
        [14] = "page fault",  [17] = "alignment check", [19] = "SIMD floating point",
    };
    if (status >= 0) {
        fmt_snprintf(buf, len, "exit status %ld", status);
    } else if (status == ABI_EXIT_KILLED) {
        fmt_snprintf(buf, len, "killed");
    } else if (ABI_EXIT_IS_FAULT(status)) {
        int v = ABI_EXIT_FAULT_VECTOR(status);
        const char *what = v < 32 ? vectors[v] : NULL;
        fmt_snprintf(buf, len, "killed by CPU exception %d%s%s%s", v, what ? " (" : "", what ? what : "",
                     what ? ")" : "");
    } else {
        fmt_snprintf(buf, len, "ended with status %ld", status);
    }
    return buf;
}
