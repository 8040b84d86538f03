/* A tiny test harness for the C ABI tests: CHECK records failures and keeps going. */
#ifndef MOQ_TEST_HARNESS_H
#define MOQ_TEST_HARNESS_H

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int g_checks_failed;
static int g_cases_passed;
static int g_cases_failed;
static const char *g_case;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            atomic_fetch_add(&g_checks_failed, 1);                                        \
            fprintf(stderr, "  FAIL %s:%d [%s]: %s (last error: %s)\n", __FILE__, __LINE__, \
                    g_case, #cond, moq_last_error());                                     \
        }                                                                                 \
    } while (0)

/* Check a MoqResult's code and free its message; a failing code must carry a message. */
#define CHECK_RESULT(expr, expected)                                                      \
    do {                                                                                  \
        MoqResult r_ = (expr);                                                            \
        if (r_.code != (expected)) {                                                      \
            atomic_fetch_add(&g_checks_failed, 1);                                        \
            fprintf(stderr, "  FAIL %s:%d [%s]: %s returned %d, expected %d (%s)\n",      \
                    __FILE__, __LINE__, g_case, #expr, (int)r_.code, (int)(expected),     \
                    r_.message ? r_.message : "no message");                              \
        }                                                                                 \
        if (r_.code == MOQ_OK && r_.message != NULL) {                                    \
            atomic_fetch_add(&g_checks_failed, 1);                                        \
            fprintf(stderr, "  FAIL %s:%d: MOQ_OK with a message\n", __FILE__, __LINE__);  \
        }                                                                                 \
        if (r_.code != MOQ_OK && (r_.message == NULL || r_.message[0] == '\0')) {         \
            atomic_fetch_add(&g_checks_failed, 1);                                        \
            fprintf(stderr, "  FAIL %s:%d: error without a message\n", __FILE__, __LINE__); \
        }                                                                                 \
        moq_free_str(r_.message);                                                         \
    } while (0)

static void run_case(const char *name, void (*fn)(void)) {
    int before = atomic_load(&g_checks_failed);
    g_case = name;
    fprintf(stderr, "case %s\n", name);
    fn();
    if (atomic_load(&g_checks_failed) == before) {
        g_cases_passed++;
    } else {
        g_cases_failed++;
        fprintf(stderr, "case %s FAILED\n", name);
    }
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Wait until *counter >= target or timeout; returns whether reached. */
static int wait_for(atomic_int *counter, int target, long timeout_ms) {
    double end = now_ms() + timeout_ms;
    while (atomic_load(counter) < target) {
        if (now_ms() > end) return 0;
        sleep_ms(2);
    }
    return 1;
}

static const char *env_or_die(const char *name) {
    const char *value = getenv(name);
    if (value == NULL || value[0] == '\0') {
        fprintf(stderr, "missing environment variable %s (run through tests/c/run.sh)\n", name);
        exit(2);
    }
    return value;
}

#endif
