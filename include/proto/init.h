/*
 * Protocol layer: what init serves to the programs it starts at boot.
 *
 * Without test= on the command line, init starts the name service, then
 * the boot modules listed by `boot=` in its own module command line, and
 * gives each one, in startup slot ABI_STARTUP_PARENT, an endpoint of its
 * own that init serves (one per program, so that a server receiving on its
 * slot PARENT, as the suite's pair servers do, takes no one else's
 * requests). Requests are SYS_IPC_CALLs with a label below; the reply's
 * label is 0 or -E* as a uint64. Anything else gets -ENOSYS.
 */
#ifndef PROTO_INIT_H
#define PROTO_INIT_H

#include <abi/types.h>
#include <proto/words.h>

/*
 * Labels carry a tag ("init" in the high half) so that a program which
 * mistakes the endpoint for a partner's (say, a test pair's, whose labels
 * are small numbers) is refused with -ENOSYS instead of being obeyed.
 */
#define INIT_LABEL_BASE 0x696e697400000000ull

/* w0 exit status, 0..INIT_POWEROFF_STATUS_MAX. Init prints who asked and
 * powers the machine off with that status (QEMU exits with 2 * status + 1):
 * no reply on success. -EINVAL for a status out of range or other words
 * set. Any program init started may ask: the boot right stays with init,
 * and powering off is how an interactive session ends. */
#define INIT_POWEROFF (INIT_LABEL_BASE + 1)

/* The emulators' exit paths carry a byte (QEMU's isa-debug-exit). */
#define INIT_POWEROFF_STATUS_MAX 255u

/*
 * The memory server's supervisor (servers/init/supervise.c). Init holds
 * memsrv's process handle (startup slot ABI_STARTUP_SUPERVISE) and the power
 * to restart it (SYS_MS_RESTART); a thread of init waits for memsrv to end
 * and starts a successor, which rebuilds its books from the kernel.
 *
 * A crash is an end init did not ask for (a fault, an exit, a failed
 * rebuild). After a crash init restarts at once, then after 25, 50 and
 * 100 ms for the second to fourth crash within INIT_MS_CRASH_WINDOW_NS; at
 * the INIT_MS_CRASHES_MAX-th within it init gives up: it prints why and
 * powers off with status INIT_SHUTDOWN_MEMSRV_LOST. An end init asked for
 * itself (INIT_MS_RESTART) is restarted at once and not counted.
 */
#define INIT_MS_CRASHES_MAX       5u
#define INIT_MS_CRASH_WINDOW_NS   (30ull * 1000 * 1000 * 1000)
#define INIT_SHUTDOWN_MEMSRV_LOST 4

/* Ends memsrv and starts a successor. Any program init started may ask
 * (as it may power off), and the delegate. w0 0 or INIT_MS_RESTART_WAIT:
 * with it, the reply comes once the successor has answered init (w0 its
 * restart number, w1 nanoseconds from the end to its first answer);
 * without, at once after the kill (w0 the restart number it will have).
 * -EBUSY while a restart is under way (until the successor has answered
 * init); -ENOSYS if init has no memory server to supervise; -EINVAL other
 * words set. The kill waits, if need be, until the server running has
 * answered for INIT_MS_UP_FACTOR times as long as its own recovery took:
 * asked restarts in a loop leave it up at least two thirds of the time,
 * however long the rebuilds that the asker's segments make. */
#define INIT_MS_RESTART      (INIT_LABEL_BASE + 3)
#define INIT_MS_RESTART_WAIT 1u
#define INIT_MS_UP_FACTOR    2u

/* The supervisor's record. Anyone init serves may ask (no words). Reply:
 * w0 restarts completed (a successor answered init), w1 how the last
 * memsrv ended (its exit status: ABI_EXIT_*), w2 crashes counted in the
 * current window, w3 nanoseconds from the last end to the successor's
 * first answer. */
#define INIT_MS_STATUS (INIT_LABEL_BASE + 4)

/* Delegate only (the in-guest suite): memsrv's MS_FAULT (w0 MS_FAULT_*),
 * passed on as init's. Reply 0 and w0 1 if memsrv ended during the request
 * (MS_FAULT_NOW), else memsrv's reply. Such a fault is a crash. */
#define INIT_MS_FAULT (INIT_LABEL_BASE + 5)

/*
 * The delegate. With test= or bench= on the command line, init starts the
 * boot module t_suite (the in-guest suite) instead of the servers, with the
 * powers to start processes and open devices, and serves it, on the
 * endpoint in its PARENT slot, what stays init's: the requests below, and
 * memsrv's init-only request. The endpoint is the capability: init gives
 * it to t_suite alone, and what it hands out goes to t_suite's process
 * whoever asks.
 */
/* w0 module index. Init gives the module's image to t_suite, mapped
 * read-only; reply w0 its address there, w1 its size in bytes, payload its
 * name (NUL-terminated). -ENOENT past the last module; -EPERM for init's and
 * memsrv's own images, which init keeps; -EEXIST if given before. */
#define INIT_MODULE (INIT_LABEL_BASE + 2)
/* MS_REVOKE (proto/memsrv.h) sent to the delegate endpoint goes to memsrv as
 * init's; memsrv's reply comes back unchanged. Other memsrv labels get
 * -ENOSYS (ask memsrv directly). */

/*
 * The console's requests. Init serves them only on the endpoint of the
 * console program (memctl, named by `console=` in init's module command
 * line): -EPERM on any other. They start, list and end the programs init
 * started; init keeps a process handle to each.
 */
/* payload: the program's command line, "MODULE ARGS..." (the module is a
 * boot module; its arguments as the program will see them, MODULE first),
 * no NUL. The program gets what a program started at boot gets (docs/
 * names.md): memsrv's and the name service's endpoints, an endpoint of its
 * own to serve and a registrar for its module's name, and init's default
 * limits; no endpoint to init. Reply: caps[0] a copy of init's process
 * handle (CONTROL and WAIT: wait for it, kill it, limit it), w0 its pid.
 * -ENOENT no such module; -EPERM a module that only init starts (init,
 * memsrv, names, t_suite, the console itself); -ENOSPC init runs
 * INIT_CHILDREN_MAX programs; the loader's errors. */
#define INIT_RUN (INIT_LABEL_BASE + 16)
/* w0 a cursor (0: from the first). Reply: one program init started and
 * that still runs: w0 its pid, w1 INIT_PS_* flags, w2 the cursor of the
 * next (0: it was the last), payload its module name (NUL-terminated).
 * -ENOENT none at or after the cursor. */
#define INIT_PS      (INIT_LABEL_BASE + 17)
#define INIT_PS_BOOT 0x1u /* started at boot */
#define INIT_PS_RUN  0x2u /* started by INIT_RUN */
/* w0 a pid: init kills that program and waits for its end. Reply: w0 its
 * exit status (abi/proc.h). -ENOENT not a running program of init's;
 * -EPERM the name service or the asking console itself. */
#define INIT_KILL (INIT_LABEL_BASE + 18)
/* w0 a cursor (0: from the first). Reply: a module INIT_RUN can start,
 * payload its name (NUL-terminated), w0 the cursor of the next (0: it was
 * the last). -ENOENT none at or after the cursor. */
#define INIT_PROGRAMS     (INIT_LABEL_BASE + 19)
#define INIT_CHILDREN_MAX 64u

/*
 * The words of each request and reply above (proto/words.h): a server reads
 * them with init_poweroff_req_get(req), a client fills them with
 * init_poweroff_req_put(&m, (struct init_poweroff_req){ ... }). Words past a
 * struct are 0; INIT_RUN and INIT_MS_STATUS take none.
 */
PROTO_WORDS(init_poweroff_req, status);

PROTO_WORDS(init_ms_restart_req, flags); /* INIT_MS_RESTART_* */
/* restart: the restart number the successor has (or will have, without
 * INIT_MS_RESTART_WAIT); recovery_ns 0 without it. */
PROTO_WORDS(init_ms_restart_reply, restart, recovery_ns);

PROTO_WORDS(init_ms_status_reply, restarts, last_status, crashes, recovery_ns);

/* INIT_MS_FAULT's request is memsrv's (struct ms_fault_req); its reply: */
PROTO_WORDS(init_ms_fault_reply, ended);

PROTO_WORDS(init_module_req, index);
PROTO_WORDS(init_module_reply, addr, size);

PROTO_WORDS(init_run_reply, pid);

/* INIT_PS and INIT_PROGRAMS: where to start. */
PROTO_WORDS(init_cursor_req, cursor);
PROTO_WORDS(init_ps_reply, pid, flags, next);
PROTO_WORDS(init_programs_reply, next);

PROTO_WORDS(init_kill_req, pid);
PROTO_WORDS(init_kill_reply, status); /* abi/proc.h */

#endif
