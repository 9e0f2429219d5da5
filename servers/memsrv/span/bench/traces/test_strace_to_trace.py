"""Host test of strace_to_trace.py (ctest span_trace_converter_test): small
hand-written strace logs, each exercising one rule of the model, against
the operations they must give."""
import unittest

from strace_to_trace import convert

MMAP = "mmap(%s, %d, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS%s, -1, 0) = %s"


def mmap(tid, size, ret, at="NULL", fixed=False):
    return "%d  " % tid + MMAP % (at, size, "|MAP_FIXED" if fixed else "", ret)


def ops(lines):
    return [op[:2] if op[0] == "f" else op for op in convert(lines).ops]


class ConverterTest(unittest.TestCase):
    def test_sizes_round_up_and_everything_is_freed_at_the_end(self):
        self.assertEqual(ops([mmap(1, 100, "0x10000"), mmap(1, 8193, "0x20000")]),
                         [("a", 0, 4096), ("a", 1, 12288), ("f", 0), ("f", 1)])

    def test_unfinished_and_resumed_halves_are_joined(self):
        lines = ["7  mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>",
                 "8  brk(NULL) = 0x5000",
                 "7  <... mmap resumed>) = 0x30000",
                 "7  munmap(0x30000, 4096) = 0"]
        self.assertEqual(ops(lines), [("a", 0, 4096), ("f", 0)])

    def test_loader_maps_into_its_reservation_in_place(self):
        lines = [mmap(1, 65536, "0x40000"),
                 mmap(1, 16384, "0x44000", at="0x44000", fixed=True),
                 "1  munmap(0x40000, 65536) = 0"]
        conv = convert(lines)
        self.assertEqual([op[:2] for op in conv.ops], [("a", 0), ("f", 0)])
        self.assertEqual(conv.counts["fixed_in_place"], 1)

    def test_fixed_map_overlapping_partly_unmaps_the_overlap(self):
        lines = [mmap(1, 8192, "0x40000"), mmap(1, 8192, "0x41000", at="0x41000", fixed=True)]
        self.assertEqual(ops(lines)[:4],
                         [("a", 0, 8192), ("f", 0), ("a", 1, 4096), ("a", 2, 8192)])

    def test_partial_unmap_keeps_the_rest_as_new_segments(self):
        lines = [mmap(1, 5 * 4096, "0x40000"), "1  munmap(0x41000, 8192) = 0"]
        self.assertEqual(ops(lines)[:4],
                         [("a", 0, 20480), ("f", 0), ("a", 1, 4096), ("a", 2, 8192)])

    def test_failed_calls_do_nothing(self):
        lines = ["1  mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, 3, 0) = -1 ENOMEM (Cannot allocate memory)",
                 "1  munmap(0x40000, 4096) = -1 EINVAL (Invalid argument)"]
        self.assertEqual(ops(lines), [])

    def test_brk_grows_and_shrinks(self):
        lines = ["1  brk(NULL) = 0x100000", "1  brk(0x121000) = 0x121000",
                 "1  brk(0x110000) = 0x110000"]
        self.assertEqual(ops(lines), [("a", 0, 0x21000), ("f", 0), ("a", 1, 0x10000), ("f", 1)])

    def test_mremap_is_a_free_and_an_alloc(self):
        lines = [mmap(1, 8192, "0x40000"),
                 "1  mremap(0x40000, 8192, 16384, MREMAP_MAYMOVE) = 0x80000"]
        self.assertEqual(ops(lines), [("a", 0, 8192), ("f", 0), ("a", 1, 16384), ("f", 1)])

    def test_vfork_child_exec_leaves_the_parent_mapped(self):
        lines = [mmap(1, 4096, "0x40000"),
                 "1  vfork() = 2",
                 "2  execve(\"/bin/true\", [\"true\"], 0x0 /* 1 var */) = 0",
                 mmap(2, 4096, "0x40000"),
                 "2  exit_group(0) = ?",
                 mmap(1, 4096, "0x50000")]
        self.assertEqual(ops(lines), [("a", 0, 4096), ("a", 1, 4096), ("f", 1), ("a", 2, 4096),
                                      ("f", 0), ("f", 2)])

    def test_threads_share_the_space_until_exit_group(self):
        lines = ["1  clone3({flags=CLONE_VM|CLONE_FS|CLONE_THREAD, stack=0x1}, 88) = 2",
                 mmap(2, 4096, "0x40000"),
                 "2  exit(0) = ?",
                 mmap(1, 4096, "0x50000"),
                 "1  munmap(0x40000, 4096) = 0",
                 "1  exit_group(0) = ?"]
        self.assertEqual(ops(lines), [("a", 0, 4096), ("a", 1, 4096), ("f", 0), ("f", 1)])

    def test_fork_child_starts_empty(self):
        lines = [mmap(1, 4096, "0x40000"),
                 "1  clone(child_stack=NULL, flags=CLONE_CHILD_SETTID|SIGCHLD) = 2",
                 "2  munmap(0x40000, 4096) = 0",
                 "2  exit_group(0) = ?"]
        conv = convert(lines)
        self.assertEqual([op[:2] for op in conv.ops], [("a", 0), ("f", 0)])
        self.assertEqual(conv.counts["unknown_unmap"], 1)


if __name__ == "__main__":
    unittest.main()
