/*
 * Host test of the protocols' typed words (include/proto/words.h): every
 * field of every PROTO_WORDS struct is the word its protocol header
 * documents, put writes that word and no word past the struct, and get
 * reads it back. The structs' order is the wire format: this is what fails
 * when someone reorders or inserts a field.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <proto/init.h>
#include <proto/kvstore.h>
#include <proto/memsrv.h>

#define MARK      0x1122334455667788ull
#define UNTOUCHED 0xa5a5a5a5a5a5a5a5ull

/* After a put of a struct holding MARK in the field at word n alone: w[n]
 * is MARK, the struct's other words 0, the words past it untouched. */
static void check_put(const struct ipc_msg *m, unsigned n, unsigned used, const char *what)
{
    for (unsigned i = 0; i < IPC_WORDS; i++) {
        uint64_t want = i == n ? MARK : i < used ? 0 : UNTOUCHED;
        if (m->w[i] != want)
            fail_msg("%s: w%u is %#llx, not %#llx", what, i, (unsigned long long)m->w[i], (unsigned long long)want);
    }
}

#define AT(name, field, n)                                                                                             \
    do {                                                                                                               \
        struct ipc_msg m;                                                                                              \
        struct name v;                                                                                                 \
        memset(&m, 0xa5, sizeof(m));                                                                                   \
        memset(&v, 0, sizeof(v));                                                                                      \
        v.field = MARK;                                                                                                \
        name##_put(&m, v);                                                                                             \
        check_put(&m, (n), PROTO_WORDS_USED(name), #name "." #field);                                                  \
        memset(m.w, 0, sizeof(m.w));                                                                                   \
        m.w[(n)] = MARK;                                                                                               \
        assert_true(name##_get(&m).field == MARK);                                                                     \
    } while (0)

static void test_memsrv_words(void **state)
{
    (void)state;
    AT(ms_alloc_req, size, 0);
    AT(ms_alloc_req, align, 1);
    AT(ms_alloc_req, flags, 2);
    AT(ms_alloc_req, limit, 3);
    AT(ms_alloc_reply, sid, 0);
    AT(ms_stats_req, kind, 0);
    AT(ms_stats_req, which, 1);
    AT(ms_compact_req, mode, 0);
    AT(ms_compact_req, size, 1);
    AT(ms_compact_req, align, 2);
    AT(ms_compact_req, limit, 3);
    AT(ms_compact_reply, moves, 0);
    AT(ms_compact_reply, bytes_moved, 1);
    AT(ms_compact_reply, largest_free, 2);
    AT(ms_map_req, columns, 0);
    AT(ms_map_req, base, 1);
    AT(ms_map_req, per_char, 2);
    AT(ms_sid_req, sid, 0);
    AT(ms_move_reply, base, 0);
    AT(ms_fault_req, when, 0);
    AT(ms_recovery_req, ended_ns, 0);
    AT(ms_recovery_reply, restart, 0);
    AT(ms_recovery_reply, recovery_ns, 1);
    AT(ms_recovery_reply, rebuild_ns, 2);
}

static void test_init_words(void **state)
{
    (void)state;
    AT(init_poweroff_req, status, 0);
    AT(init_ms_restart_req, flags, 0);
    AT(init_ms_restart_reply, restart, 0);
    AT(init_ms_restart_reply, recovery_ns, 1);
    AT(init_ms_status_reply, restarts, 0);
    AT(init_ms_status_reply, last_status, 1);
    AT(init_ms_status_reply, crashes, 2);
    AT(init_ms_status_reply, recovery_ns, 3);
    AT(init_ms_fault_reply, ended, 0);
    AT(init_module_req, index, 0);
    AT(init_module_reply, addr, 0);
    AT(init_module_reply, size, 1);
    AT(init_run_reply, pid, 0);
    AT(init_cursor_req, cursor, 0);
    AT(init_ps_reply, pid, 0);
    AT(init_ps_reply, flags, 1);
    AT(init_ps_reply, next, 2);
    AT(init_programs_reply, next, 0);
    AT(init_kill_req, pid, 0);
    AT(init_kill_reply, status, 0);
}

static void test_kvstore_words(void **state)
{
    (void)state;
    AT(kv_put_req, len, 0);
    AT(kv_put_reply, id, 0);
    AT(kv_put_reply, replaced, 1);
    AT(kv_get_reply, len, 0);
    AT(kv_get_reply, id, 1);
    AT(kv_delete_reply, id, 0);
}

/* A put-get round trip keeps every field, and the message around the words
 * is left alone. */
static void test_round_trip_touches_only_words(void **state)
{
    (void)state;
    struct ipc_msg m;
    memset(&m, 0xa5, sizeof(m));
    ms_alloc_req_put(&m, (struct ms_alloc_req){ .size = 1, .align = 2, .flags = 3, .limit = 4 });
    struct ms_alloc_req r = ms_alloc_req_get(&m);
    assert_true(r.size == 1 && r.align == 2 && r.flags == 3 && r.limit == 4);
    assert_true(m.label == UNTOUCHED && m.badge == UNTOUCHED && m.seg_addr == UNTOUCHED);
    assert_int_equal(PROTO_WORDS_USED(ms_alloc_req), 4);
    assert_int_equal(PROTO_WORDS_USED(kv_delete_reply), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memsrv_words),
        cmocka_unit_test(test_init_words),
        cmocka_unit_test(test_kvstore_words),
        cmocka_unit_test(test_round_trip_touches_only_words),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
