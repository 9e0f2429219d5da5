#!/usr/bin/env python3
"""tests/guest/judge_shutdown.py: judges a kept console log of a run that is
meant to end the machine with a shutdown status other than 0 (iso/run's own
verdict fails every such run). Called by ctest after iso/run; uses
iso/console.py's protocol and expectation checks, so the rules are the same:

    judge_shutdown.py LOG --status N [--expect FILE]

Succeeds when the log has no panic and no [FAIL] line, the expectation file's
patterns match in order, and the last 'tessera: shutdown status' line says N
(a hang or a timeout leaves none). Exit status: 0 success, 1 failure (one
line on stderr says why)."""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent / "iso"))
import console  # noqa: E402  (iso/console.py)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log")
    parser.add_argument("--status", type=int, required=True)
    parser.add_argument("--expect")
    args = parser.parse_args()
    protocol = console.Protocol()
    lines = console.console_lines(Path(args.log).read_bytes().decode("utf-8", "replace"))
    failures = []
    panic = next((l for l in lines if l.startswith(protocol.panic)), None)
    if panic:
        failures.append(f"kernel panic: {panic}")
    failed = next((l for l in lines if l.startswith(protocol.fail_tag)), None)
    if failed:
        failures.append(f"a test failed: {failed}")
    statuses = [int(m.group(1)) for l in lines if (m := protocol.shutdown.match(l))]
    if not statuses:
        failures.append("no closing line 'tessera: shutdown status N' (a hang, or a timeout)")
    elif statuses[-1] != args.status:
        failures.append(f"shutdown status {statuses[-1]}, expected {args.status}")
    if args.expect:
        failures += console.check_expectations(lines, args.expect)
    for f in failures:
        print(f"judge_shutdown: FAIL: {f}", file=sys.stderr)
    if not failures:
        print(f"judge_shutdown: PASS: shutdown status {args.status} as expected", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
