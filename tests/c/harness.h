/* A tiny test harness for the C ABI tests: CHECK records failures and keeps going. */
#ifndef MOQ_TEST_HARNESS_H
#define MOQ_TEST_HARNESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* run.sh also runs these tests under helgrind, which sees pthread synchronisation only. The
 * tests additionally synchronise through C11 atomics (a callback writes, then bumps a counter
 * the test waits for), and read buffers the library hands to callbacks through its own (Rust)
 * synchronisation. These annotations describe exactly those edges to helgrind; outside
 * valgrind they cost a few instructions and do nothing. */
#if defined(__has_include)
#if __has_include(<valgrind/helgrind.h>)
#include <valgrind/helgrind.h>
#define MOQ_TEST_HELGRIND_ANNOTATIONS 1
#endif
#endif
#ifndef MOQ_TEST_HELGRIND_ANNOTATIONS
#define ANNOTATE_HAPPENS_BEFORE(obj) ((void)(obj))
#define ANNOTATE_HAPPENS_AFTER(obj) ((void)(obj))
#define VALGRIND_HG_CLEAN_MEMORY(start, len) ((void)(start), (void)(len))
#endif

/* A callback received `len` bytes at `data` from the library: per the API they are the
 * callback's to read until it returns (the library published them to this thread). */
#define RECEIVED(data, len) VALGRIND_HG_CLEAN_MEMORY((data), (len))

/* RECEIVED for a NUL-terminated string: each byte is taken over before it is read. */
static void received_string(const char *s) {
    for (size_t i = 0;; i++) {
        RECEIVED(s + i, 1);
        if (s[i] == '\0') break;
    }
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};
    nanosleep(&ts, NULL);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

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

/* Case selection: test names given as arguments run only those cases (all when none). */
enum { MAX_SELECTED = 64 };
static int g_selected_count;
static const char *g_selected[MAX_SELECTED];
static int g_selected_hits[MAX_SELECTED];

static void select_cases(int argc, char **argv) {
    for (int i = 1; i < argc && g_selected_count < MAX_SELECTED; i++) g_selected[g_selected_count++] = argv[i];
}

static int case_selected(const char *name) {
    if (g_selected_count == 0) return 1;
    int hit = 0;
    for (int i = 0; i < g_selected_count; i++) {
        if (strcmp(g_selected[i], name) == 0) {
            g_selected_hits[i]++;
            hit = 1;
        }
    }
    return hit;
}

/* Selected names that matched no case (a typo must not pass as "0 failed"). */
static int unknown_selected_cases(void) {
    int unknown = 0;
    for (int i = 0; i < g_selected_count; i++) {
        if (g_selected_hits[i] == 0) {
            fprintf(stderr, "no test case named %s\n", g_selected[i]);
            unknown++;
        }
    }
    return unknown;
}

/* Watchdog: a case run with a time limit that is still running when the limit passes fails
 * loudly and ends the program (a hung case can neither be joined nor skipped). One thread
 * serves every case; it starts with the first limited case. */
/* MOQ_TEST_WAIT_FACTOR: how much slower than native the run is (valgrind: several times). */
static int g_wait_factor = 1;

/* A timeout for something expected to happen: generous slack, scaled for slow runs. Never a
 * speed measurement. */
static long slack_ms(long ms) {
    return ms * g_wait_factor;
}

static atomic_llong g_watchdog_deadline; /* now_ms() value; 0: no case is being watched */
static const char *_Atomic g_watchdog_case;
static atomic_int g_watchdog_limit_s;

static void *watchdog_thread(void *arg) {
    (void)arg;
    for (;;) {
        sleep_ms(100);
        long long deadline = atomic_load(&g_watchdog_deadline);
        if (deadline == 0 || now_ms() < (double)deadline) continue;
        char line[512]; /* no stdio lock: a hung thread might hold stderr's */
        int n = snprintf(line, sizeof line,
                         "  FAIL [%s]: hung: still running after its %d s limit (watchdog)\n"
                         "case %s FAILED (the run stops here)\n",
                         atomic_load(&g_watchdog_case), atomic_load(&g_watchdog_limit_s),
                         atomic_load(&g_watchdog_case));
        if (n > 0 && write(2, line, (size_t)n) < 0) _exit(1);
        _exit(1);
    }
    return NULL;
}

static void watchdog_arm(const char *name, int limit_s) {
    static int started;
    if (!started) {
        pthread_t thread;
        started = pthread_create(&thread, NULL, watchdog_thread, NULL) == 0;
        if (started) pthread_detach(thread);
    }
    atomic_store(&g_watchdog_case, name);
    atomic_store(&g_watchdog_limit_s, limit_s);
    atomic_store(&g_watchdog_deadline, (long long)now_ms() + 1000LL * limit_s * g_wait_factor);
}

/* Run a selected case; with limit_s > 0 under the watchdog. */
static void run_case_within(const char *name, void (*fn)(void), int limit_s) {
    if (!case_selected(name)) return;
    if (limit_s > 0) watchdog_arm(name, limit_s);
    double started = now_ms();
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
    fprintf(stderr, "  (%.1f s)\n", (now_ms() - started) / 1e3);
    atomic_store(&g_watchdog_deadline, 0);
}

static void run_case(const char *name, void (*fn)(void)) {
    run_case_within(name, fn, 0);
}

/* Count an event on *counter: whatever this thread wrote before is visible to a thread whose
 * wait_for() on that counter then returns true. */
static void signal_event(atomic_int *counter) {
    ANNOTATE_HAPPENS_BEFORE(counter);
    atomic_fetch_add(counter, 1);
}

/* Wait until *counter >= target or slack_ms(timeout_ms); returns whether reached. */
static int wait_for(atomic_int *counter, int target, long timeout_ms) {
    double end = now_ms() + slack_ms(timeout_ms);
    while (atomic_load(counter) < target) {
        if (now_ms() > end) return 0;
        sleep_ms(2);
    }
    ANNOTATE_HAPPENS_AFTER(counter);
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
