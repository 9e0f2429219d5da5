#!/usr/bin/env python3
"""Host tool (span allocator benchmark data): turns an strace log of a real
program into an allocation trace that span-trace replays against the span
library (servers/memsrv/span/bench/span_trace.c). Run by hand when traces
are re-recorded; README.md in this directory gives the commands.

Record with
    strace -f -qq -e trace=%memory,%process -o PROG.strace COMMAND...
and convert with
    strace_to_trace.py PROG.strace --name PROG --command 'COMMAND...' -o PROG.trace

Trace format (one operation per line, ids are decimal and never reused):
    # comment (the header says what was traced and how it was converted)
    a <id> <bytes>      a segment of <bytes> (a multiple of 4 KiB) is allocated
    f <id>              segment <id> is freed
Every segment allocated is freed by the end of the trace.

Model: each mapping of a process is one segment of physical memory of the
mapping's size rounded up to 4 KiB, live from mmap to munmap, as if every
page were touched (virtual size stands for physical size). Every process's
address space is tracked separately (fork, vfork, threads and execve are
followed through %process), and all of them share the one heap, as they
share a machine's memory:
  * mmap: a new segment. A MAP_FIXED mmap that lies wholly inside existing
    mappings replaces their pages in place (the dynamic loader maps a
    library's parts into the range it reserved): no operation. One that
    overlaps only partly unmaps the overlap first, as the kernel does.
  * munmap of part of a mapping: the mapping's segment is freed and the
    parts that stay mapped are allocated again as new segments.
  * mremap: the old range is unmapped, the new one mapped (free, then
    alloc: the kernel moves page tables, it does not copy).
  * brk: a grown break maps [old end, new end) as a new segment; a shrunk
    one unmaps the top.
  * execve, exit, exit_group: a process's mappings are freed when the last
    task using its address space leaves it; everything still mapped when
    the log ends is freed then.
  * Not modelled: copy-on-write sharing after fork (a fork child starts
    with an empty address space, and unmapping what it inherited is no
    operation), madvise(MADV_DONTNEED) and other page-level releases, and
    pages never touched.
With --max-bytes, the output stops after the last whole operation that
keeps the file under that size, then frees whatever is live (said in the
header).
"""
import argparse
import re
import sys

PAGE = 4096
LINE = re.compile(r"^(\d+)\s+(.*)$")
CALL = re.compile(r"^(\w+)\((.*)\)\s+=\s+(.*)$")


def page_up(n):
    return (n + PAGE - 1) & ~(PAGE - 1)


def split_args(text):
    """Top-level comma-separated arguments of an strace call."""
    args, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            args.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        args.append(cur.strip())
    return args


def number(text):
    return 0 if text == "NULL" else int(text, 0)


def merged_calls(lines):
    """(tid, text) per syscall or event, unfinished/resumed halves joined."""
    pending = {}
    for raw in lines:
        m = LINE.match(raw.rstrip("\n"))
        if not m:
            continue
        tid, rest = int(m.group(1)), m.group(2)
        if rest.endswith("<unfinished ...>"):
            pending[tid] = rest[: -len("<unfinished ...>")].rstrip()
            continue
        resumed = re.match(r"^<\.\.\. \w+ resumed>(.*)$", rest)
        if resumed:
            rest = pending.pop(tid, "") + resumed.group(1)
        yield tid, rest


class AddressSpace:
    def __init__(self):
        self.maps = []  # [start, end, id], sorted by start, disjoint
        self.users = 0
        self.brk_end = None


class Converter:
    def __init__(self, parents):
        self.parents = parents  # child tid -> (parent tid, shares mm, same thread group)
        self.tasks = {}         # tid -> AddressSpace
        self.group = {}         # tid -> thread group leader
        self.next_id = 0
        self.live = {}          # id -> bytes
        self.ops = []
        self.counts = {"mmap": 0, "munmap": 0, "mremap": 0, "brk": 0, "fixed_in_place": 0,
                       "partial_unmap": 0, "unknown_unmap": 0, "exec": 0, "exit": 0}

    def alloc(self, space, start, end):
        ident = self.next_id
        self.next_id += 1
        self.live[ident] = end - start
        self.ops.append(("a", ident, end - start))
        space.maps.append([start, end, ident])
        space.maps.sort()

    def free(self, ident):
        del self.live[ident]
        self.ops.append(("f", ident))

    def unmap(self, space, start, end):
        hit = [m for m in space.maps if m[0] < end and m[1] > start]
        if not hit:
            self.counts["unknown_unmap"] += 1
        for m in hit:
            space.maps.remove(m)
            self.free(m[2])
            if m[0] < start or m[1] > end:
                self.counts["partial_unmap"] += 1
            if m[0] < start:
                self.alloc(space, m[0], start)
            if m[1] > end:
                self.alloc(space, end, m[1])

    def covered(self, space, start, end):
        pos = start
        for m in space.maps:
            if m[0] <= pos < m[1]:
                pos = m[1]
                if pos >= end:
                    return True
        return False

    def space_of(self, tid):
        if tid not in self.tasks:
            parent, shares, thread = self.parents.get(tid, (None, False, False))
            if parent is not None and parent in self.tasks and shares:
                space = self.tasks[parent]
            else:
                space = AddressSpace()
            space.users += 1
            self.tasks[tid] = space
            self.group[tid] = self.group.get(parent, parent) if thread else tid
        return self.tasks[tid]

    def leave(self, tid):
        space = self.tasks.pop(tid, None)
        self.group.pop(tid, None)
        if space is None:
            return
        space.users -= 1
        if space.users == 0:
            for m in list(space.maps):
                self.free(m[2])
            space.maps = []

    def event(self, tid, text):
        space = self.space_of(tid)
        m = CALL.match(text)
        if not m:
            return
        name, args, ret = m.group(1), split_args(m.group(2)), m.group(3).split()[0]
        if name in ("exit", "exit_group"):
            self.counts["exit"] += 1
            members = [t for t, g in self.group.items() if g == self.group.get(tid)]
            for t in (members if name == "exit_group" else [tid]):
                self.leave(t)
            return
        if ret.startswith("-") or ret == "?":
            return
        if name == "execve":
            self.counts["exec"] += 1
            for t in [t for t, g in self.group.items() if g == self.group.get(tid) and t != tid]:
                self.leave(t)
            self.leave(tid)
            self.tasks[tid] = AddressSpace()
            self.tasks[tid].users = 1
            self.group[tid] = tid
        elif name == "mmap":
            self.counts["mmap"] += 1
            start, end = number(ret), number(ret) + page_up(number(args[1]))
            if "MAP_FIXED" in args[3] and "NOREPLACE" not in args[3] and \
                    self.covered(space, start, end):
                self.counts["fixed_in_place"] += 1
                return
            if any(mm[0] < end and mm[1] > start for mm in space.maps):
                self.unmap(space, start, end)
            self.alloc(space, start, end)
        elif name == "munmap":
            self.counts["munmap"] += 1
            start = number(args[0])
            self.unmap(space, start, start + page_up(number(args[1])))
        elif name == "mremap":
            self.counts["mremap"] += 1
            old = number(args[0])
            self.unmap(space, old, old + page_up(number(args[1])))
            self.alloc(space, number(ret), number(ret) + page_up(number(args[2])))
        elif name == "brk":
            self.counts["brk"] += 1
            new_end = page_up(number(ret))
            if space.brk_end is None:
                space.brk_end = new_end
            elif new_end > space.brk_end:
                self.alloc(space, space.brk_end, new_end)
                space.brk_end = new_end
            elif new_end < space.brk_end:
                self.unmap(space, new_end, space.brk_end)
                space.brk_end = new_end

    def finish(self):
        for tid in list(self.tasks):
            self.leave(tid)


def find_parents(lines):
    parents = {}
    for tid, text in merged_calls(lines):
        m = CALL.match(text)
        if not m or m.group(1) not in ("clone", "clone3", "fork", "vfork"):
            continue
        ret = m.group(3).split()[0]
        if not ret.isdigit():
            continue
        args = m.group(2)
        vm = m.group(1) == "vfork" or "CLONE_VM" in args
        parents[int(ret)] = (tid, vm, "CLONE_THREAD" in args)
    return parents


def convert(lines):
    """The Converter after the whole log: its ops and counts."""
    conv = Converter(find_parents(lines))
    for tid, text in merged_calls(lines):
        conv.event(tid, text)
    conv.finish()
    return conv


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("strace_log")
    ap.add_argument("--name", required=True)
    ap.add_argument("--command", required=True, help="the command that was traced, for the header")
    ap.add_argument("--max-bytes", type=int, default=190000)
    ap.add_argument("-o", "--output", required=True)
    opt = ap.parse_args()

    with open(opt.strace_log) as f:
        conv = convert(f.readlines())

    body, size, live, peak, cut, allocs = [], 0, {}, 0, None, 0
    for i, op in enumerate(conv.ops):
        line = "a %d %d\n" % (op[1], op[2]) if op[0] == "a" else "f %d\n" % op[1]
        closing = sum(len("f %d\n" % k) for k in live)
        if size + len(line) + closing > opt.max_bytes - 4096:
            cut = i
            break
        body.append(line)
        size += len(line)
        if op[0] == "a":
            live[op[1]] = op[2]
            allocs += 1
            peak = max(peak, sum(live.values()))
        else:
            del live[op[1]]
    tail = ["f %d\n" % k for k in live]
    c = conv.counts
    header = [
        "# span allocator trace: %s" % opt.name,
        "# command: %s" % opt.command,
        "# recorded: strace -f -qq -e trace=%memory,%process (strace 6.1, Linux x86-64, "
        "the 2-core build machine)",
        "# converted by strace_to_trace.py (its docstring gives the model)",
        "# syscalls seen: mmap %d, munmap %d, mremap %d, brk %d, execve %d, exit %d"
        % (c["mmap"], c["munmap"], c["mremap"], c["brk"], c["exec"], c["exit"]),
        "# MAP_FIXED in place (no op) %d, partial unmaps %d, unmaps of nothing tracked %d"
        % (c["fixed_in_place"], c["partial_unmap"], c["unknown_unmap"]),
        "# operations: %d allocs, %d frees; peak live %d KiB"
        % (allocs, allocs, peak // 1024),
    ]
    if cut is not None:
        header.append("# TRUNCATED: the first %d of %d operations; the last %d frees release "
                      "what was live then" % (cut, len(conv.ops), len(tail)))
    with open(opt.output, "w") as f:
        f.write("\n".join(header) + "\n")
        f.writelines(body)
        f.writelines(tail)
    print("%s: %d allocs, peak %d KiB, %d bytes%s" % (
        opt.output, allocs, peak // 1024, size + sum(map(len, tail)),
        ", truncated at op %d of %d" % (cut, len(conv.ops)) if cut is not None else ""))


if __name__ == "__main__":
    sys.exit(main())
