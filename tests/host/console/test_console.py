"""Host tests of iso/console.py, the runner's judge and typist: the verdict
on good and bad consoles, prompts cut across reads, the protocol's one
definition, whole runs of fake emulators (a panic, a hang, typed input),
and iso/run's refusal of settings that cannot work.
Run by ctest as console_test; by hand: python3 -m unittest -v test_console."""
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "iso"))
import console  # noqa: E402

P = console.Protocol()
GOOD = """\
tessera: booting
suite: seed=77
[PASS] basics.hello
[SKIP] edu.device: no edu device
[PASS] kill
2 passed, 0 failed, 1 skipped
tessera: shutdown status 0
"""


def lines(text):
    return console.console_lines(text)


class ProtocolTest(unittest.TestCase):
    def test_strings_come_from_the_header(self):
        self.assertEqual(P.pass_tag, "[PASS]")
        self.assertEqual(P.skip_tag, "[SKIP]")
        self.assertTrue(P.summary.match("12 passed, 3 failed, 4 skipped"))
        self.assertEqual(P.shutdown.match("tessera: shutdown status -1").group(1), "-1")

    def test_a_header_without_a_string_is_refused(self):
        with tempfile.NamedTemporaryFile("w", suffix=".h") as h:
            h.write('#define CONSOLE_PASS "[PASS]"\n')
            h.flush()
            with self.assertRaises(ValueError):
                console.Protocol(h.name)

    def test_the_guest_prints_the_header_strings(self):
        # libsys's test convention uses the macros, not copies of them.
        test_c = (REPO / "libsys/src/test.c").read_text()
        self.assertIn("<common/console.h>", test_c)
        self.assertNotRegex(test_c, r'"\[(PASS|FAIL|SKIP)\]')
        # The kernel still spells its two lines out: they must agree.
        kernel = "".join(p.read_text() for p in (REPO / "kernel").rglob("*.c"))
        shutdown = P.strings["CONSOLE_SHUTDOWN"]
        self.assertIn(f'"{shutdown}\\n"', kernel)
        self.assertIn(f'kprintf("{P.panic}: ', kernel)
        # A refusal comes from the boot path (NASM, which cannot include the
        # header) and from the kernel (through the macro).
        refused = P.strings["CONSOLE_REFUSED"]
        boot = (REPO / "boot/boot.asm").read_text()
        self.assertEqual(boot.count(f'db "{refused} '), 2)
        self.assertIn("CONSOLE_REFUSED", kernel)


class JudgeTest(unittest.TestCase):
    def verdict(self, text, test_mode=True, **kw):
        return console.judge(lines(text), test_mode, P, **kw)

    def test_a_good_run_passes_and_reports_its_skips(self):
        v = self.verdict(GOOD)
        self.assertTrue(v.ok, v.reason)
        self.assertEqual((v.passed, v.failed, v.skipped, v.seed), (2, 0, 1, 77))
        self.assertEqual(v.skips, ["edu.device: no edu device"])

    def test_carriage_returns_and_escapes_are_ignored(self):
        v = self.verdict(GOOD.replace("\n", "\r\n").replace("[PASS] kill", "\x1b[0m[PASS] kill"))
        self.assertTrue(v.ok, v.reason)

    def test_failures(self):
        cases = {
            "failed, first: [FAIL] x: broke": GOOD.replace("[PASS] kill", "[FAIL] x: broke")
                                                  .replace("2 passed, 0 failed", "1 passed, 1 failed"),
            "summary says 0 failed but": GOOD.replace("[PASS] kill", "[PASS] kill\n[FAIL] y: z"),
            "no summary line": GOOD.replace("2 passed, 0 failed, 1 skipped\n", ""),
            "no test passed": "0 passed, 0 failed, 0 skipped\ntessera: shutdown status 0\n",
            "kernel panic: PANIC: oops": GOOD.replace("[PASS] kill", "PANIC: oops"),
            "the machine was refused: tessera: cannot run here: no SYSCALL":
                GOOD.replace("[PASS] kill", "tessera: cannot run here: no SYSCALL"),
            "status 1": GOOD.replace("status 0", "status 1"),
            "after the summary": GOOD.replace("tessera: shutdown status 0\n", ""),
            # A count that disagrees with the lines: a pass claimed but not
            # printed, or a skip printed but counted as nothing.
            "but the log has 2 [PASS]": GOOD.replace("2 passed", "3 passed"),
            "and 2 [SKIP] lines": GOOD.replace("[PASS] kill", "[PASS] kill\n[SKIP] q: r"),
        }
        for want, text in cases.items():
            with self.subTest(want=want):
                v = self.verdict(text)
                self.assertFalse(v.ok)
                self.assertIn(want, v.reason)

    def test_the_last_summary_counts(self):
        v = self.verdict(GOOD.replace("[PASS] basics", "0 passed, 5 failed, 0 skipped\n[PASS] basics"))
        self.assertTrue(v.ok, v.reason)

    def test_a_timeout_fails_even_after_a_good_console(self):
        v = self.verdict(GOOD, timed_out_after=30)
        self.assertFalse(v.ok)
        self.assertEqual(v.reason, "timeout after 30 s")

    def test_without_tests_only_the_shutdown_counts(self):
        self.assertTrue(self.verdict("memctl> \ntessera: shutdown status 0\n", test_mode=False).ok)
        v = self.verdict("memctl> \n", test_mode=False, exit_note="qemu exited with status 1")
        self.assertIn("no closing line", v.reason)
        self.assertIn("qemu exited with status 1", v.reason)


class StreamTest(unittest.TestCase):
    def test_typist_counts_prompts_cut_across_reads(self):
        typed = []
        t = console.Typist(["# comment", "", "one", "two", "three"], "memctl> ", typed.append)
        for chunk in [b"banner\nmem", b"ctl", b"> ", b"ok\nmemctl>", b" memctl> mem", b"c"]:
            t.feed(chunk)
        self.assertEqual(typed, [b"one\r", b"two\r", b"three\r"])
        self.assertEqual((t.sent, t.total), (3, 3))

    def test_typist_waits_for_the_next_prompt(self):
        typed = []
        t = console.Typist(["a", "b"], "> ", typed.append)
        t.feed(b"> ")
        self.assertEqual(typed, [b"a\r"])
        t.feed(b"output without a prompt\n")
        self.assertEqual(typed, [b"a\r"])

    def test_line_watch_sees_a_line_start_only(self):
        w = console.LineWatch("PANIC")
        w.feed(b"no PANIC here\nPA")
        self.assertFalse(w.seen)
        w.feed(b"NIC: broken\n")
        self.assertTrue(w.seen)

    def test_expectations_in_order_and_anywhere(self):
        with tempfile.NamedTemporaryFile("w") as f:
            f.write("# header\n^b$\n^c$\nany: ^a$\n^a$\n")
            f.flush()
            failures = console.check_expectations(["a", "b", "c"], f.name)
        self.assertEqual(failures, ["after console line 3, no line matches: ^a$"])


class RunTest(unittest.TestCase):
    """Whole runs of a fake emulator: a Python script given as the command."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.tmp = Path(self.dir.name)

    def tearDown(self):
        self.dir.cleanup()

    def fake(self, body):
        script = self.tmp / "fake_emulator.py"
        script.write_text("import os, sys, time\n" + textwrap.dedent(body))
        return [sys.executable, str(script)]

    def run_console(self, *args):
        start = time.monotonic()
        r = subprocess.run([sys.executable, str(REPO / "iso/console.py"), "run", *args],
                           capture_output=True, text=True, timeout=60)
        return r, time.monotonic() - start

    def test_a_good_run_streams_and_logs_the_console(self):
        serial, log = self.tmp / "serial", self.tmp / "log"
        emu = self.fake(f"""
            with open({str(serial)!r}, "a") as f:
                for line in {GOOD.splitlines()!r}:
                    f.write(line + "\\n"); f.flush(); time.sleep(0.01)
        """)
        r, _ = self.run_console("--serial", str(serial), "--log", str(log), "--test-mode", "--", *emu)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("[PASS] kill", r.stdout)
        self.assertEqual(log.read_text(), GOOD)
        self.assertIn("iso/run: skipped: edu.device", r.stderr)
        self.assertIn("iso/run: PASS: 2 passed, 0 failed, 1 skipped", r.stderr)

    def test_a_panicked_guest_is_stopped_soon(self):
        serial = self.tmp / "serial"
        emu = self.fake(f"""
            with open({str(serial)!r}, "a") as f:
                f.write("PANIC: broken invariant\\n"); f.flush()
            time.sleep(100)
        """)
        r, took = self.run_console("--serial", str(serial), "--timeout", "50", "--test-mode",
                                   "--replay", "iso/run --cmdline 'test=all seed=5'", "--", *emu)
        self.assertEqual(r.returncode, 1)
        self.assertLess(took, 20)
        self.assertIn("FAIL: kernel panic: PANIC: broken invariant; replay: iso/run --cmdline", r.stderr)

    def test_a_refused_machine_is_stopped_soon(self):
        serial = self.tmp / "serial"
        emu = self.fake(f"""
            with open({str(serial)!r}, "a") as f:
                f.write("tessera: cannot run here: this CPU has no long mode (x86-64) or no PAE; halting\\n")
                f.flush()
            time.sleep(100)
        """)
        r, took = self.run_console("--serial", str(serial), "--timeout", "50", "--", *emu)
        self.assertEqual(r.returncode, 1)
        self.assertLess(took, 20)
        self.assertIn("FAIL: the machine was refused: tessera: cannot run here: this CPU has no long mode", r.stderr)

    def test_a_hung_guest_times_out(self):
        serial = self.tmp / "serial"
        emu = self.fake("time.sleep(100)\n")
        r, took = self.run_console("--serial", str(serial), "--timeout", "1", "--", *emu)
        self.assertEqual(r.returncode, 1)
        self.assertLess(took, 15)
        self.assertIn("FAIL: timeout after 1 s", r.stderr)

    def test_a_terminated_run_stops_its_emulator(self):
        serial, pidfile = self.tmp / "serial", self.tmp / "pid"
        emu = self.fake(f"""
            open({str(pidfile)!r}, "w").write(str(os.getpid()))
            time.sleep(100)
        """)
        p = subprocess.Popen([sys.executable, str(REPO / "iso/console.py"), "run", "--serial", str(serial),
                              "--timeout", "50", "--", *emu], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
        deadline = time.monotonic() + 20
        while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        p.terminate()
        _, err = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 143)
        self.assertIn("iso/run: terminated", err)
        emulator_pid = int(pidfile.read_text())
        with self.assertRaises(ProcessLookupError):
            os.kill(emulator_pid, 0)

    def test_input_is_typed_one_line_per_prompt(self):
        fifo = self.tmp / "con"
        os.mkfifo(f"{fifo}.in")
        os.mkfifo(f"{fifo}.out")
        script = self.tmp / "input.txt"
        script.write_text("# typed\nfirst\n\nsecond\nthird\n")
        # Echoes each line it reads after a prompt, like memctl; stops
        # prompting after two, so the third line is never typed.
        emu = self.fake(f"""
            out = os.open({str(fifo)!r} + ".out", os.O_RDWR)
            inp = os.open({str(fifo)!r} + ".in", os.O_RDWR)
            for _ in range(2):
                os.write(out, b"memctl> ")
                line = b""
                while not line.endswith(b"\\r"):
                    line += os.read(inp, 1)
                os.write(out, b"got " + line[:-1] + b"\\n")
            os.write(out, b"tessera: shutdown status 0\\n")
        """)
        r, _ = self.run_console("--fifo", str(fifo), "--input", str(script), "--timeout", "30", "--", *emu)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("memctl> got first\nmemctl> got second\n", r.stdout)
        self.assertIn("input: only 2 of 3 lines", r.stderr)

    def test_judge_a_kept_log(self):
        log = self.tmp / "kept.log"
        log.write_text(GOOD.replace("[PASS] kill", "[FAIL] kill: pool free 10 -> 9"))
        r = subprocess.run([sys.executable, str(REPO / "iso/console.py"), "judge", "--test-mode", str(log)],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertTrue(re.search(r"FAIL: summary says 0 failed but the log has: \[FAIL\] kill", r.stderr))


class LauncherUsageTest(unittest.TestCase):
    """iso/run refuses what cannot work before it reads the ISO: exit 2 and
    the reason, for each combination its checks name."""

    MISSING_ISO = "/nonexistent/tessera.iso"

    def run_launcher(self, *args):
        return subprocess.run([str(REPO / "iso" / "run"), "--iso", self.MISSING_ISO, "--timeout", "5", *args],
                              capture_output=True, text=True, timeout=30)

    def test_refusals(self):
        cases = [
            (["--bogus"], "unknown argument '--bogus'"),
            (["--mem"], "option --mem needs an argument"),
            (["--emulator", "vbox"], "--emulator must be qemu or bochs"),
            (["--machine", "virt"], "--machine must be pc or q35"),
            (["--firmware", "coreboot"], "--firmware must be bios or uefi"),
            (["--smp", "0"], "--smp must be a positive number"),
            (["--smp", "two"], "--smp must be a positive number"),
            (["--mem", "12X"], "--mem must look like"),
            (["--mem", "0"], "--mem must look like"),
            (["--gdb-port", "70000"], "--gdb-port must be a port number"),
            (["--emulator", "bochs", "--machine", "q35"], "--machine is QEMU only"),
            (["--emulator", "bochs", "--edu"], "--edu is QEMU only"),
            (["--emulator", "bochs", "--icount"], "--icount is QEMU only"),
            (["--emulator", "bochs", "--firmware", "uefi"], "--firmware uefi is QEMU only"),
            (["--iommu"], "--iommu needs --machine q35"),
            (["--firmware", "uefi", "--mem", "48M"], "--firmware uefi needs --mem 64M or more"),
            (["--icount", "--smp", "2"], "--icount needs --smp 1"),
            (["--cmdline", "test=all name='x'"], "--cmdline cannot contain quotes or backslashes"),
        ]
        for args, reason in cases:
            with self.subTest(args=args):
                r = self.run_launcher(*args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(reason, r.stderr)

    def test_accepted_settings_reach_the_iso_check(self):
        # The same checks let good combinations through: they stop only at
        # the missing image (exit 1), not at a usage error.
        for args in (["--firmware", "uefi", "--mem", "64M"], ["--icount", "--smp", "1"],
                     ["--machine", "q35", "--iommu", "--smp", "4", "--mem", "5G"]):
            with self.subTest(args=args):
                r = self.run_launcher(*args)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn("no ISO at " + self.MISSING_ISO, r.stderr)


if __name__ == "__main__":
    unittest.main()
