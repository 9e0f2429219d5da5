#!/usr/bin/env python3
"""iso/console.py: runs an emulator for iso/run, types into its serial
console and judges the run from that console alone.

iso/run (the launcher) makes the image and the emulator's command line, then
hands over to `console.py run`, which
  - starts the emulator and streams its serial console to stdout and --log;
  - with --input, types the file's lines into the guest, line k once the
    console holds k prompts (the console is read as a stream, once);
  - stops the emulator 2 s after a PANIC line or a refusal of the machine
    ("tessera: cannot run here: ..."), or at --timeout;
  - judges the console (judge() below) and exits 0 only on success.
`console.py judge LOG` judges a kept log the same way (scripts/soak uses it).

The strings of the console protocol come from common/include/common/console.h,
which the guest's C code includes: one definition for both sides.
Exit status: 0 success, 1 failure (one line on stderr says why), 2 usage.
"""
import argparse
import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

PROG = "iso/run"
REPO = Path(__file__).resolve().parent.parent
PROTOCOL_HEADER = REPO / "common" / "include" / "common" / "console.h"
PANIC_GRACE_S = 2.0   # lets the rest of a panic report through
POLL_S = 0.05


class Protocol:
    """The console protocol's patterns, read from the C header."""

    def __init__(self, header=PROTOCOL_HEADER):
        text = Path(header).read_text()
        strings = dict(re.findall(r'#define\s+(CONSOLE_\w+)\s+"([^"]*)"', text))
        missing = {"CONSOLE_PASS", "CONSOLE_FAIL", "CONSOLE_SKIP", "CONSOLE_SUMMARY",
                   "CONSOLE_SEED", "CONSOLE_SHUTDOWN", "CONSOLE_PANIC", "CONSOLE_REFUSED"} - strings.keys()
        if missing:
            raise ValueError(f"{header}: no {', '.join(sorted(missing))}")
        self.strings = strings
        self.pass_tag = strings["CONSOLE_PASS"]
        self.fail_tag = strings["CONSOLE_FAIL"]
        self.skip_tag = strings["CONSOLE_SKIP"]
        self.panic = strings["CONSOLE_PANIC"]
        self.refused = strings["CONSOLE_REFUSED"]
        self.summary = format_regex(strings["CONSOLE_SUMMARY"])
        self.seed = format_regex(strings["CONSOLE_SEED"])
        self.shutdown = format_regex(strings["CONSOLE_SHUTDOWN"])


def format_regex(c_format):
    """A regex matching a line that starts with the printf format's output;
    each %u, %lu or %d becomes a captured number."""
    parts = re.split(r"%l?[ud]", c_format)
    return re.compile("^" + r"(-?\d+)".join(re.escape(p) for p in parts))


ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def console_lines(text):
    """The console's lines without carriage returns and terminal escapes
    (GRUB draws its menu with them)."""
    return [ESCAPES.sub("", line.replace("\r", "")) for line in text.split("\n")]


@dataclasses.dataclass
class Verdict:
    ok: bool
    reason: str
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    skips: list = dataclasses.field(default_factory=list)
    seed: int = None


def judge(lines, test_mode, protocol, timed_out_after=None, exit_note=""):
    """The run's verdict from its console lines. A test run (test= on the
    command line) succeeds when the last summary line says N >= 1 passed
    and 0 failed, agrees with the [PASS] and [SKIP] lines above it, no
    [FAIL] line appears, and a later line says shutdown status 0. Any other
    run succeeds on a shutdown status 0 line. A panic, a refusal of the
    machine or a timeout fails both."""
    p = protocol
    panic = next((l for l in lines if l.startswith(p.panic)), None)
    refused = next((l for l in lines if l.startswith(p.refused)), None)
    first_fail = next((l for l in lines if l.startswith(p.fail_tag)), None)
    skips = [l[len(p.skip_tag):].strip() for l in lines if l.startswith(p.skip_tag)]
    pass_lines = sum(l.startswith(p.pass_tag) for l in lines)
    summary_at = status_at = -1
    counts = (0, 0, 0)
    status = seed = None
    for i, line in enumerate(lines):
        if m := p.summary.match(line):
            summary_at, counts = i, tuple(int(g) for g in m.groups())
        if m := p.shutdown.match(line):
            status_at, status = i, int(m.group(1))
        if seed is None and (m := p.seed.match(line)):
            seed = int(m.group(1))
    passed, failed, skipped = counts
    v = Verdict(False, "", passed, failed, skipped, skips, seed)

    def fail(reason):
        v.reason = reason
        return v

    if panic:
        return fail(f"kernel panic: {panic}")
    if refused:
        return fail(f"the machine was refused: {refused}")
    if timed_out_after is not None:
        return fail(f"timeout after {timed_out_after} s")
    note = f" ({exit_note})" if exit_note else ""
    no_close = f"no closing line 'tessera: shutdown status N'{note}"
    if test_mode:
        if summary_at < 0:
            return fail(f"no summary line 'N passed, N failed, N skipped'{note}")
        if failed:
            return fail(f"{failed} test(s) failed, first: {first_fail}")
        if first_fail:
            return fail(f"summary says 0 failed but the log has: {first_fail}")
        if passed < 1:
            return fail("no test passed (0 passed, 0 failed)")
        if pass_lines != passed or len(skips) != skipped:
            return fail(f"summary says {passed} passed, {skipped} skipped but the log has "
                        f"{pass_lines} {p.pass_tag} and {len(skips)} {p.skip_tag} lines")
        if status_at < summary_at:
            return fail(f"{no_close} after the summary")
    elif status_at < 0:
        return fail(no_close)
    if status != 0:
        return fail(f"guest shut down with status {status}")
    v.ok = True
    v.reason = (f"{passed} passed, 0 failed, {skipped} skipped, shutdown status 0"
                if test_mode else "shutdown status 0")
    return v


def check_expectations(lines, expect_file):
    """Failures of an expectation file against the console: each pattern (a
    Python regex) must match a line after the previous pattern's; a pattern
    after "any: " may match anywhere. Blank lines and # comments are skipped."""
    failures = []
    at = 0
    for pattern in Path(expect_file).read_text().splitlines():
        if not pattern.strip() or pattern.startswith("#"):
            continue
        if pattern.startswith("any: "):
            regex = re.compile(pattern[len("any: "):])
            if not any(regex.search(l) for l in lines):
                failures.append(f"no line anywhere matches: {regex.pattern}")
            continue
        regex = re.compile(pattern)
        found = next((i for i in range(at, len(lines)) if regex.search(lines[i])), None)
        if found is None:
            failures.append(f"after console line {at}, no line matches: {pattern}")
        else:
            at = found + 1
    return failures


def decode_typed(text):
    """The bytes a line of an --input file stands for: C-like escapes
    (\\xHH, \\e for ESC, \\t, \\r, \\\\) decoded, then Enter (CR) unless the
    line ends with \\c."""
    out = bytearray()
    enter = True
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\" or i + 1 == len(text):
            out += c.encode()
            i += 1
            continue
        e = text[i + 1]
        if e == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", text[i + 2:i + 4]):
            out.append(int(text[i + 2:i + 4], 16))
            i += 4
            continue
        if e == "c" and i + 2 == len(text):
            enter = False
        elif e in "etr\\":
            out += {"e": b"\x1b", "t": b"\t", "r": b"\r", "\\": b"\\"}[e]
        else:
            raise ValueError(f"unknown escape \\{e} in input line: {text!r}")
        i += 2
    return bytes(out) + (b"\r" if enter else b"")


class Typist:
    """Types lines into the guest, in order. Fed the console as it arrives,
    in chunks that may split a prompt. A line is typed once the console
    holds one more prompt than the lines typed at prompts so far (a program
    prints one prompt each time it waits for a line); after a line
    "%after REGEX", the next line is typed instead once REGEX matches the
    console received since the line before it was typed (to type while no
    prompt shows, e.g. Ctrl-C to a running program), and the line after it
    waits for a prompt that comes later still. Lines are decoded by
    decode_typed; blank lines and # comments are skipped."""

    def __init__(self, lines, prompt, write):
        self.steps = []
        after = None
        for line in lines:
            line = line.rstrip("\r")
            if not line.strip() or line.startswith("#"):
                continue
            if line.startswith("%after "):
                after = re.compile(line[len("%after "):])
                continue
            self.steps.append((after, decode_typed(line)))
            after = None
        self.total = len(self.steps)
        self.prompt = prompt.encode()
        self.write = write
        self.prompts = self.sent = self.at_prompts = 0
        self.tail = b""
        self.since = b""  # the console since the last line was typed

    def feed(self, data):
        window = self.tail + data
        self.prompts += window.count(self.prompt)
        # Keep what could be the start of a prompt cut by the chunk's end,
        # but never a whole prompt already counted.
        keep = len(self.prompt) - 1
        self.tail = window[-keep:] if keep else b""
        if self.prompt in self.tail:
            self.tail = b""
        self.since = (self.since + data)[-65536:]
        while self.sent < self.total:
            after, data_out = self.steps[self.sent]
            if after is None:
                if self.prompts <= self.at_prompts:
                    return
                self.at_prompts += 1
            elif not after.search(self.since.decode("utf-8", "replace")):
                return
            else:
                # The prompts seen so far are spent: the next line waits for
                # a new one, never types ahead of a command still running
                # (Bochs's UART drops what the guest does not read in time).
                self.at_prompts = self.prompts
            self.write(data_out)
            self.sent += 1
            self.since = b""


class LineWatch:
    """Notices a line that starts with a given text, across chunks."""

    def __init__(self, start):
        self.start = start.encode()
        self.partial = b""
        self.seen = False

    def feed(self, data):
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()[:256]  # only a line's start matters
        for line in lines + [self.partial]:
            if line.lstrip(b"\r").startswith(self.start):
                self.seen = True


class Stream:
    """The console as it arrives: read from a file or FIFO without blocking,
    copied to stdout and the log, and shown to each watcher's feed()."""

    def __init__(self, fd, log, watchers):
        self.fd, self.log, self.watchers = fd, log, watchers
        self.received = []

    def pump(self):
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            except OSError:  # a pty whose other side closed (EIO)
                return
            if not data:
                return
            self.received.append(data)
            for sink in (sys.stdout.buffer, self.log):
                if sink:
                    sink.write(data)
                    sink.flush()
            for w in self.watchers:
                w.feed(data)

    def lines(self):
        return console_lines(b"".join(self.received).decode("utf-8", "replace"))


class Emulator:
    """The emulator in a session of its own, stopped with SIGTERM and, if
    that is not enough within 5 s, SIGKILL."""

    def __init__(self, command, output):
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                                        start_new_session=True)
        self.stopped_at = None

    def running(self):
        return self.process.poll() is None

    def stop(self):
        if self.stopped_at is None:
            self.stopped_at = time.monotonic()
        if self.running():
            os.killpg(self.process.pid, signal.SIGTERM)

    def enforce_stop(self):
        if self.stopped_at is not None and time.monotonic() - self.stopped_at > 5 and self.running():
            os.killpg(self.process.pid, signal.SIGKILL)


class Keyboard:
    """The user's terminal in raw mode, typed into the guest byte by byte
    (Ctrl-C included: it is the guest's). Ctrl-A X stops the emulator,
    Ctrl-A Ctrl-A types a Ctrl-A, as in QEMU's console."""

    ESCAPE = 0x01

    def __init__(self, write):
        import termios
        import tty
        self.write, self.fd = write, sys.stdin.fileno()
        self.saved = termios.tcgetattr(self.fd)
        tty.setraw(self.fd)
        self.escaped = False
        self.quit = False

    def pump(self):
        try:
            data = os.read(self.fd, 1024)
        except (BlockingIOError, OSError):
            return
        out = bytearray()
        for b in data:
            if self.escaped:
                self.escaped = False
                if b in (ord("x"), ord("X")):
                    self.quit = True
                elif b == self.ESCAPE:
                    out.append(b)
            elif b == self.ESCAPE:
                self.escaped = True
            else:
                out.append(b)
        if out:
            self.write(bytes(out))

    def restore(self):
        import termios
        termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


class PacedWriter:
    """Bytes for Bochs's serial port, a few at a time: its UART holds 16
    received bytes, and what arrives while the guest has not read them is
    lost, so a whole line written at once can lose its end. PACE_BYTES
    every PACE_S (about a fast typist's speed) keeps well inside that."""

    PACE_BYTES = 4
    PACE_S = 0.02

    def __init__(self, fd):
        self.fd, self.queue, self.last = fd, bytearray(), 0.0

    def __call__(self, data):
        self.queue += data
        self.pump()

    def pending(self):
        return bool(self.queue)

    def pump(self):
        now = time.monotonic()
        if not self.queue or now - self.last < self.PACE_S:
            return
        try:
            n = os.write(self.fd, bytes(self.queue[:self.PACE_BYTES]))
        except BlockingIOError:
            return
        del self.queue[:n]
        self.last = now


def open_pty(config):
    """A pseudo-terminal for the emulator's serial port (Bochs: com1 in
    `term` mode): its name replaces @PTY@ in the config file. Returns the
    master's fd."""
    import pty
    import tty
    master, slave = pty.openpty()
    tty.setraw(slave)  # bytes pass untouched: no echo, no CR/LF rewriting
    text = Path(config).read_text()
    if "@PTY@" not in text:
        raise SystemExit(f"{PROG}: {config} has no @PTY@ to replace")
    Path(config).write_text(text.replace("@PTY@", os.ttyname(slave)))
    # The slave stays open here too, so the master never reads EIO while
    # the emulator opens and reopens it.
    return master, slave


def run(args):
    # Signals first: the emulator runs in a session of its own, so a signal
    # that killed this process before it could stop the emulator would
    # leave the emulator running.
    signals = []
    for number, name in ((signal.SIGTERM, "terminated"), (signal.SIGINT, "interrupted")):
        signal.signal(number, lambda *_, name=name: signals.append(name))
    protocol = Protocol()
    # A panic or a refusal ends the run (the kernel halts after either).
    panic = [LineWatch(protocol.panic), LineWatch(protocol.refused)]
    watchers = list(panic)
    typist = keyboard = None
    feed = None
    if args.fifo:
        # QEMU's pipe chardev: it reads FIFO.in and writes FIFO.out, opening
        # both read-write, so neither side waits for the other. Holding
        # FIFO.in read-write too, writes never block and QEMU never sees
        # the end of its input.
        feed_fd = os.open(args.fifo + ".in", os.O_RDWR)
        source = os.open(args.fifo + ".out", os.O_RDWR | os.O_NONBLOCK)
        feed = lambda b: os.write(feed_fd, b)  # noqa: E731
    elif args.pty:
        source, _slave = open_pty(args.pty)
        os.set_blocking(source, False)
        feed = PacedWriter(source)
    else:
        Path(args.serial).touch()
        source = os.open(args.serial, os.O_RDONLY | os.O_NONBLOCK)
    if args.input:
        typist = Typist(Path(args.input).read_text().splitlines(), args.prompt, feed)
        watchers.append(typist)
    stream = Stream(source, open(args.log, "wb") if args.log else None, watchers)
    output = open(args.emulator_output, "wb") if args.emulator_output else None
    if args.interactive:
        keyboard = Keyboard(feed)
    try:
        emulator = Emulator(args.emulator, output)
        paced = feed if isinstance(feed, PacedWriter) else None
        status, timed_out = watch(emulator, stream, keyboard, panic, signals, args, paced)
    finally:
        if keyboard:
            keyboard.restore()
    if status is not None:
        return status
    if typist and typist.sent < typist.total:
        print(f"{PROG}: input: only {typist.sent} of {typist.total} lines of {args.input} were typed",
              file=sys.stderr)
    note = f"{Path(args.emulator[0]).name} exited with status {emulator.process.returncode}"
    return report(stream.lines(), args, protocol, args.timeout if timed_out else None, note)


def watch(emulator, stream, keyboard, panic, signals, args, paced=None):
    """Streams the console until the emulator ends; stops it on a signal, a
    panic or refusal (any of the `panic` watchers), the timeout or the
    keyboard's Ctrl-A X. Returns (an exit status if a signal ended the run,
    whether it timed out)."""
    import select
    started = time.monotonic()
    panic_at = None
    timed_out = False
    # A regular file is always "ready": it is polled instead.
    inputs = ([] if args.serial else [stream.fd]) + ([keyboard.fd] if keyboard else [])
    while emulator.running():
        ready = []
        if inputs:
            try:
                wait = PacedWriter.PACE_S if paced and paced.pending() else POLL_S
                ready, _, _ = select.select(inputs, [], [], wait)
            except InterruptedError:
                pass
        else:
            time.sleep(POLL_S)
        stream.pump()
        if paced:
            paced.pump()
        if keyboard and keyboard.fd in ready:
            keyboard.pump()
        if signals or (keyboard and keyboard.quit):
            emulator.stop()
        now = time.monotonic()
        if panic_at is None and any(w.seen for w in panic):
            panic_at = now
        if panic_at is not None and now - panic_at > PANIC_GRACE_S and emulator.stopped_at is None:
            print(f"{PROG}: kernel panic or refusal: stopping the emulator", file=sys.stderr)
            emulator.stop()
        if args.timeout and now - started > args.timeout and emulator.stopped_at is None:
            timed_out = True
            print(f"{PROG}: timeout after {args.timeout} s", file=sys.stderr)
            emulator.stop()
        emulator.enforce_stop()
    stream.pump()
    if signals:
        print(f"{PROG}: {signals[0]}", file=sys.stderr)
        return (130 if signals[0] == "interrupted" else 143), timed_out
    return None, timed_out


def report(lines, args, protocol, timed_out_after=None, exit_note=""):
    """Prints the verdict (and the skips) on stderr; returns the exit status."""
    v = judge(lines, args.test_mode, protocol, timed_out_after, exit_note)
    failures = [] if v.ok else [v.reason]
    if args.expect:
        failures += check_expectations(lines, args.expect)
    for skip in v.skips:
        print(f"{PROG}: skipped: {skip}", file=sys.stderr)
    replay = f"; replay: {args.replay}" if args.replay else ""
    if failures:
        for f in failures:
            print(f"{PROG}: FAIL: {f}{replay}", file=sys.stderr)
        return 1
    print(f"{PROG}: PASS: {v.reason}", file=sys.stderr)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="iso/console.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run an emulator, stream, type into and judge its console")
    source = r.add_mutually_exclusive_group(required=True)
    source.add_argument("--serial", help="the file the emulator writes the console to")
    source.add_argument("--fifo", help="QEMU pipe chardev path (FIFO.in and FIFO.out)")
    source.add_argument("--pty", metavar="CONFIG",
                        help="a pseudo-terminal for the serial port, named in CONFIG where it says @PTY@ (Bochs)")
    r.add_argument("--emulator-output", help="file for the emulator's own stdout and stderr")
    r.add_argument("--input", help="lines to type, one per prompt (needs --fifo or --pty)")
    r.add_argument("--interactive", action="store_true",
                   help="type the terminal's keys into the guest (needs --fifo or --pty; Ctrl-A X quits)")
    r.add_argument("--prompt", default="memctl> ")
    r.add_argument("--timeout", type=int, help="seconds before the emulator is stopped")
    j = sub.add_parser("judge", help="judge a kept console log")
    j.add_argument("logfile")
    for p in (r, j):
        p.add_argument("--test-mode", action="store_true", help="the command line had test= or bench=")
        p.add_argument("--expect", help="a file of patterns the console must match, in order")
        p.add_argument("--replay", help="the command that repeats this run, printed on failure")
    r.add_argument("--log", help="also write the console here")
    r.add_argument("emulator", nargs=argparse.REMAINDER, help="-- the emulator's command line")
    args = parser.parse_args(argv)
    if args.command == "judge":
        text = Path(args.logfile).read_bytes().decode("utf-8", "replace")
        return report(console_lines(text), args, Protocol())
    if args.emulator[:1] == ["--"]:
        args.emulator = args.emulator[1:]
    if not args.emulator:
        parser.error("run: no emulator command after --")
    if (args.input or args.interactive) and not (args.fifo or args.pty):
        parser.error("run: --input and --interactive need --fifo or --pty")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
