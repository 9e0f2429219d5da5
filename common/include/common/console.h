/*
 * Common layer: the console protocol, the lines by which a guest run is
 * judged from its serial console alone. The guest prints them (libsys's test
 * convention, the in-guest suite, the kernel); the runner's judge
 * (iso/console.py) reads this file for its patterns, so the two sides share
 * one definition. Each string starts a console line.
 */
#ifndef COMMON_CONSOLE_H
#define COMMON_CONSOLE_H

/* One check: "[PASS] name", "[FAIL] name: reason", "[SKIP] name: reason".
 * A skip says why the check's premise cannot hold on this machine; it is
 * counted apart and never as a pass. */
#define CONSOLE_PASS "[PASS]"
#define CONSOLE_FAIL "[FAIL]"
#define CONSOLE_SKIP "[SKIP]"

/* The suite's closing line, printed once after every check. */
#define CONSOLE_SUMMARY "%u passed, %u failed, %u skipped"

/* The seed the suite runs with, printed before any check. */
#define CONSOLE_SEED "suite: seed=%lu"

/* The kernel's last line before it powers off with status N. */
#define CONSOLE_SHUTDOWN "tessera: shutdown status %d"

/* The start of the kernel's line when a kernel invariant broke. */
#define CONSOLE_PANIC "PANIC"

/* The start of the line by which the boot path or the kernel refuses a
 * machine it cannot run on (no long mode, a CPU feature it needs), before
 * it halts. boot/boot.asm spells it out too: NASM cannot read this file. */
#define CONSOLE_REFUSED "tessera: cannot run here:"

#endif
