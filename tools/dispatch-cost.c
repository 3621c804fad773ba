/* Instructions per Lua dispatch, repeatable (valgrind cannot run the Swift binary).
 * Loads a script with stub callbacks and calls luaspoa_dispatch N times with one
 * fixed "check-client-ip" message (ip = 192.0.2.10), as LuaWorker.handle does.
 *   gcc -O2 -ISources/CLuaSpoa/include -I/usr/include/$(uname -m)-linux-gnu tools/dispatch-cost.c \
 *       Sources/CLuaSpoa/luaspoa_[a-z]*.c -llua5.4 -lcrypto -lpcre2-8 -ljson-c -lmaxminddb \
 *       -lm -lpthread -o /tmp/dispatch-cost
 *   valgrind --tool=callgrind /tmp/dispatch-cost scripts/ip_reputation.lua 10000 3600000
 *   (instructions per dispatch = (Ir(N) - Ir(0)) / N; callgrind_annotate for hot spots)
 *   /tmp/dispatch-cost benchmarks/empty_handler.lua 1000000   # ns per dispatch
 * The optional third argument is the time budget in ms (default 100, as the
 * agent's): give a large one under valgrind, which runs ~50x slower, or the
 * run stops at the first "execution timeout". Each dispatch is one frame with
 * the agent's default frame budget (4 x the time budget); an optional fourth
 * argument sets another (0: none). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "luaspoa.h"

static size_t actions;

static int append_action(void *ud, int kind, int scope, const char *name, size_t len,
                         const spoa_value *value) {
    (void)ud, (void)kind, (void)scope, (void)name, (void)len, (void)value;
    actions++;
    return 0;
}
static size_t ack_mark(void *ud) { (void)ud; return actions; }
static void ack_rollback(void *ud, size_t mark) { (void)ud; actions = mark; }
static void log_line(void *ud, int level, const char *msg, size_t len) {
    (void)ud, (void)level, (void)msg, (void)len;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s script.lua iterations [timeout_ms]\n", argv[0]);
        return 2;
    }
    long n = atol(argv[2]);
    luaspoa_ctx ctx = {
        .worker_index = 1, .worker_count = 1, .stream_id = 7, .frame_id = 42,
        .engine_id = "bench-engine", .engine_id_len = 12, .max_frame_size = 16380,
        .append_action = append_action, .ack_mark = ack_mark, .ack_rollback = ack_rollback,
        .log = log_line, .timeout_ms = argc > 3 ? (uint32_t)atol(argv[3]) : 100,
    };
    ctx.frame_timeout_ms = argc > 4 ? (uint32_t)atol(argv[4]) : 4 * ctx.timeout_ms;
    char err[2048];
    struct lua_State *L = luaspoa_newstate(&ctx, argv[1], NULL, 0, 0, err, sizeof err);
    if (L == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    spoa_arg arg = {.name = "ip", .name_len = 2, .value = {.type = LUASPOA_T_IPV4}};
    memcpy(arg.value.v.ip, (unsigned char[]){192, 0, 2, 10}, 4);
    static const char name[] = "check-client-ip";
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        luaspoa_frame_begin(L);
        int status = luaspoa_dispatch(L, &ctx, name, sizeof name - 1, &arg, 1, err, sizeof err, NULL);
        if (status != LUASPOA_OK) {
            fprintf(stderr, "dispatch %ld: status %d: %s\n", i, status, err);
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
    printf("%ld dispatches, %zu actions, %.0f ns per dispatch\n", n, actions, n ? ns / n : 0);
    luaspoa_close(L);
    return 0;
}
