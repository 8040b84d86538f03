/*
 * Benchmark path program for the legacy C ABI (include/moq_ffi.h).
 *
 * Usage: bench <workload> <count> <size>, workload one of burst, paced, datagram, publish, stats.
 * Environment: MOQ_RELAY_MOQT_URL (raw-QUIC relay URL), MOQ_RELAY_CA_FILE (PEM of the CA to
 * trust; system roots are disabled). Prints exactly one `RESULT {json}` line on stdout;
 * everything else goes to stderr. Exit status 0 on success, 1 on any failure.
 *
 * Payload layout: bytes [0..8) object index (LE u64); for paced/datagram [8..16) the send
 * time in ns of this process's CLOCK_MONOTONIC (LE u64); the rest zero.
 */
#define _GNU_SOURCE
#include "moq_ffi.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TRACK "t"
/* How long the subscription may take to be established at the relay. */
#define READY_TIMEOUT_MS 10000
/* burst: how long to wait for the last object after the last publish call. */
#define BURST_WAIT_NS (60ull * 1000000000ull)
/* paced/datagram: how long to wait after the last publish (fixed by the protocol). */
#define PACED_WAIT_NS (10ull * 1000000000ull)
#define PACED_INTERVAL_NS 1000000ull

typedef enum { W_BURST, W_PACED, W_DATAGRAM, W_PUBLISH, W_STATS } Workload;

/* ---------- small helpers ---------- */

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Process CPU time (user + sys, all threads) in ns; precise, unlike tick-based rusage. */
static uint64_t cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct timespec ns_to_timespec(uint64_t ns) {
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    return ts;
}

static void put_u64le(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64le(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void fail_msg(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Report a failed MoqResult (freeing its message); returns whether it was MOQ_OK. */
static bool result_ok(MoqResult r, const char *what) {
    if (r.code == MOQ_OK) return true;
    fail_msg("%s failed: code %d: %s", what, (int)r.code, r.message ? r.message : "(no message)");
    moq_free_str(r.message);
    return false;
}

static bool parse_u64(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-') return false;
    *out = v;
    return true;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted, non-empty list: the ceil(p/100 * n)-th smallest. */
static uint64_t percentile(const uint64_t *sorted, size_t n, unsigned p) {
    size_t rank = (p * n + 99) / 100;
    if (rank < 1) rank = 1;
    return sorted[rank - 1];
}

/* ---------- receiver: state shared with the library's delivery thread ---------- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled when the target is reached or a failure is recorded */
    /* Set before subscribing, read-only afterwards. */
    Workload workload;
    uint64_t target;
    size_t size;
    /* Written by the callback under mu. */
    uint64_t received;
    uint64_t next_index;
    uint64_t *latency_ns; /* paced/datagram: one entry per received object */
    uint8_t *seen;        /* datagram: which indices arrived */
    uint64_t t_done_ns;   /* monotonic time the target-th object arrived */
    uint64_t cpu_done_ns; /* process CPU time at that moment */
    bool failed;
    char reason[256];
} Receiver;

static void receiver_fail(Receiver *r, const char *fmt, ...) {
    if (r->failed) return; /* keep the first reason */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
    va_end(ap);
    r->failed = true;
    pthread_cond_signal(&r->cv);
}

/* Runs on the subscriber's delivery thread, one call per object, in order. The mutex is
 * uncontended while objects flow (the main thread only takes it to wait or to read the
 * results), so holding it here costs a few ns and keeps the hand-off obviously correct. */
static void on_data(void *user_data, const uint8_t *data, size_t len) {
    uint64_t now = mono_ns();
    Receiver *r = user_data;
    pthread_mutex_lock(&r->mu);
    if (r->failed) goto out;
    if (len != r->size) {
        receiver_fail(r, "object %" PRIu64 " has %zu bytes, expected %zu", r->received, len, r->size);
        goto out;
    }
    uint64_t index = get_u64le(data);
    if (r->workload == W_DATAGRAM) {
        /* Lossy: gaps (and, in principle, reordering) are allowed; a duplicate or an index
         * that was never sent is a library bug. */
        if (index >= r->target || r->seen[index]) {
            receiver_fail(r, "datagram index %" PRIu64 " is a duplicate or out of range", index);
            goto out;
        }
        r->seen[index] = 1;
    } else if (index != r->next_index) {
        receiver_fail(r, "object %" PRIu64 " carries index %" PRIu64 " (out of order or missing)",
                      r->next_index, index);
        goto out;
    }
    r->next_index = index + 1;
    if (r->received >= r->target) {
        receiver_fail(r, "more than %" PRIu64 " objects received", r->target);
        goto out;
    }
    if (r->latency_ns != NULL) {
        uint64_t sent = get_u64le(data + 8);
        r->latency_ns[r->received] = now >= sent ? now - sent : 0;
    }
    r->received++;
    if (r->received == r->target) {
        r->t_done_ns = now;
        r->cpu_done_ns = cpu_ns();
        pthread_cond_signal(&r->cv);
    }
out:
    pthread_mutex_unlock(&r->mu);
}

static bool receiver_init(Receiver *r, Workload w, uint64_t target, size_t size) {
    memset(r, 0, sizeof *r);
    r->workload = w;
    r->target = target;
    r->size = size;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&r->mu, NULL);
    if (w == W_PACED || w == W_DATAGRAM) {
        r->latency_ns = calloc((size_t)target, sizeof *r->latency_ns);
        if (w == W_DATAGRAM) r->seen = calloc((size_t)target, 1);
        if (r->latency_ns == NULL || (w == W_DATAGRAM && r->seen == NULL)) {
            fail_msg("out of memory for %" PRIu64 " latencies", target);
            return false;
        }
    }
    return true;
}

static void receiver_destroy(Receiver *r) {
    free(r->latency_ns);
    free(r->seen);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
}

/* Wait until the target is reached, a failure is recorded, or the deadline (monotonic ns). */
static void receiver_wait(Receiver *r, uint64_t deadline_ns) {
    struct timespec deadline = ns_to_timespec(deadline_ns);
    pthread_mutex_lock(&r->mu);
    while (r->received < r->target && !r->failed) {
        if (pthread_cond_timedwait(&r->cv, &r->mu, &deadline) == ETIMEDOUT) break;
    }
    pthread_mutex_unlock(&r->mu);
}

/* ---------- session: the handles one run owns ---------- */

typedef struct {
    MoqClient *pub_client;
    MoqClient *sub_client;
    MoqPublisher *publisher;
    MoqSubscriber *subscriber;
} Session;

static MoqClient *connect_client(const char *url, const char *ca_file) {
    MoqClientConfig config;
    memset(&config, 0, sizeof config);
    config.struct_size = sizeof config;
    config.ca_cert_file = ca_file;
    config.disable_system_roots = true; /* trust exactly the relay's CA */
    MoqClient *client = moq_client_create_ex(&config);
    if (client == NULL) {
        fail_msg("moq_client_create_ex failed: %s", moq_last_error());
        return NULL;
    }
    if (!result_ok(moq_connect(client, url, NULL, NULL), "moq_connect")) {
        moq_client_destroy(client);
        return NULL;
    }
    return client;
}

static void disconnect_client(MoqClient *client) {
    if (client == NULL) return;
    result_ok(moq_disconnect(client), "moq_disconnect");
    moq_client_destroy(client);
}

/* Subscriber first (its delivery thread stops), then the track, then the sessions. */
static void session_close(Session *s) {
    moq_subscriber_destroy(s->subscriber);
    moq_publisher_destroy(s->publisher);
    disconnect_client(s->sub_client);
    disconnect_client(s->pub_client);
    memset(s, 0, sizeof *s);
}

/* Connect the publisher client, announce, and create the publisher; with a receiver, also
 * connect a second client and subscribe, waiting until the subscription is established. */
static bool session_open(Session *s, const char *url, const char *ca_file, const char *ns,
                         MoqDeliveryMode mode, Receiver *receiver) {
    memset(s, 0, sizeof *s);
    s->pub_client = connect_client(url, ca_file);
    if (s->pub_client == NULL) return false;
    if (!result_ok(moq_announce_namespace(s->pub_client, ns), "moq_announce_namespace")) return false;
    s->publisher = moq_create_publisher_ex(s->pub_client, ns, TRACK, mode);
    if (s->publisher == NULL) {
        fail_msg("moq_create_publisher_ex failed: %s", moq_last_error());
        return false;
    }
    if (receiver == NULL) return true;
    s->sub_client = connect_client(url, ca_file);
    if (s->sub_client == NULL) return false;
    s->subscriber = moq_subscribe(s->sub_client, ns, TRACK, on_data, receiver);
    if (s->subscriber == NULL) {
        fail_msg("moq_subscribe failed: %s", moq_last_error());
        return false;
    }
    return result_ok(moq_subscriber_wait_ready(s->subscriber, READY_TIMEOUT_MS),
                     "moq_subscriber_wait_ready");
}

static bool publish(MoqPublisher *pub, const uint8_t *buf, size_t len, MoqDeliveryMode mode,
                    uint64_t index) {
    MoqResult r = moq_publish_data(pub, buf, len, mode);
    if (r.code == MOQ_OK) return true;
    char what[64];
    snprintf(what, sizeof what, "moq_publish_data(object %" PRIu64 ")", index);
    return result_ok(r, what);
}

/* ---------- workloads ---------- */

static bool run_burst(Session *s, Receiver *rx, uint64_t count, size_t size) {
    uint8_t *buf = calloc(1, size);
    if (buf == NULL) {
        fail_msg("out of memory");
        return false;
    }
    uint64_t t0 = mono_ns(), cpu0 = cpu_ns();
    bool ok = true;
    for (uint64_t i = 0; i < count && ok; i++) {
        put_u64le(buf, i);
        ok = publish(s->publisher, buf, size, MOQ_DELIVERY_STREAM, i);
    }
    free(buf);
    if (!ok) return false;
    receiver_wait(rx, mono_ns() + BURST_WAIT_NS);
    /* After unsubscribing no callback runs, so the receiver is final. */
    result_ok(moq_unsubscribe(s->subscriber), "moq_unsubscribe");
    pthread_mutex_lock(&rx->mu);
    bool failed = rx->failed, complete = rx->received == count;
    uint64_t received = rx->received, t1 = rx->t_done_ns, cpu1 = rx->cpu_done_ns;
    pthread_mutex_unlock(&rx->mu);
    if (failed) {
        fail_msg("%s", rx->reason);
        return false;
    }
    if (!complete) {
        fail_msg("received %" PRIu64 " of %" PRIu64 " objects", received, count);
        return false;
    }
    double seconds = (double)(t1 - t0) / 1e9;
    if (seconds <= 0) seconds = 1e-9;
    printf("RESULT {\"objects_per_s\": %.3f, \"mb_per_s\": %.3f, \"cpu_s\": %.6f, \"received\": %" PRIu64 "}\n",
           (double)count / seconds, (double)count * (double)size / seconds / 1e6,
           (double)(cpu1 - cpu0) / 1e9, received);
    return true;
}

static bool run_paced(Session *s, Receiver *rx, uint64_t count, size_t size, MoqDeliveryMode mode) {
    uint8_t *buf = calloc(1, size);
    if (buf == NULL) {
        fail_msg("out of memory");
        return false;
    }
    uint64_t t0 = mono_ns();
    bool ok = true;
    for (uint64_t i = 0; i < count && ok; i++) {
        /* Absolute schedule: a late wake-up does not shift later objects. */
        struct timespec due = ns_to_timespec(t0 + i * PACED_INTERVAL_NS);
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, NULL) == EINTR) {
        }
        put_u64le(buf, i);
        put_u64le(buf + 8, mono_ns());
        ok = publish(s->publisher, buf, size, mode, i);
    }
    free(buf);
    if (!ok) return false;
    receiver_wait(rx, mono_ns() + PACED_WAIT_NS);
    result_ok(moq_unsubscribe(s->subscriber), "moq_unsubscribe");
    pthread_mutex_lock(&rx->mu);
    bool failed = rx->failed;
    uint64_t received = rx->received;
    pthread_mutex_unlock(&rx->mu);
    if (failed) {
        fail_msg("%s", rx->reason);
        return false;
    }
    if (mode == MOQ_DELIVERY_STREAM && received != count) {
        fail_msg("received %" PRIu64 " of %" PRIu64 " objects", received, count);
        return false;
    }
    if (mode == MOQ_DELIVERY_DATAGRAM && received < count) {
        /* Diagnostics only: which datagrams were lost (the first few). */
        fprintf(stderr, "bench: %" PRIu64 " of %" PRIu64 " datagrams lost:", count - received, count);
        int shown = 0;
        for (uint64_t i = 0; i < count && shown < 16; i++) {
            if (!rx->seen[i]) {
                fprintf(stderr, " %" PRIu64, i);
                shown++;
            }
        }
        fprintf(stderr, "%s\n", count - received > 16 ? " ..." : "");
    }
    if (received == 0) {
        fail_msg("no object received: latency percentiles undefined");
        return false;
    }
    qsort(rx->latency_ns, (size_t)received, sizeof *rx->latency_ns, cmp_u64);
    double p50 = (double)percentile(rx->latency_ns, (size_t)received, 50) / 1e3;
    double p99 = (double)percentile(rx->latency_ns, (size_t)received, 99) / 1e3;
    if (mode == MOQ_DELIVERY_DATAGRAM) {
        printf("RESULT {\"ratio\": %.6f, \"p50_us\": %.3f, \"p99_us\": %.3f, \"received\": %" PRIu64 "}\n",
               (double)received / (double)count, p50, p99, received);
    } else {
        printf("RESULT {\"p50_us\": %.3f, \"p99_us\": %.3f, \"received\": %" PRIu64 "}\n", p50, p99,
               received);
    }
    return true;
}

#define PUBLISH_ROUNDS 10

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static bool run_publish(Session *s, uint64_t count, size_t size) {
    uint8_t *buf = calloc(1, size ? size : 1);
    if (buf == NULL) {
        fail_msg("out of memory");
        return false;
    }
    /* PUBLISH_ROUNDS rounds, the median round reported (as every path does; see bench/README.md). */
    bool ok = true;
    uint64_t per_round = count / PUBLISH_ROUNDS ? count / PUBLISH_ROUNDS : 1;
    double rounds[PUBLISH_ROUNDS];
    for (int round = 0; round < PUBLISH_ROUNDS && ok; round++) {
        uint64_t t0 = mono_ns();
        for (uint64_t i = 0; i < per_round && ok; i++)
            ok = publish(s->publisher, buf, size, MOQ_DELIVERY_STREAM, round * per_round + i);
        rounds[round] = (double)(mono_ns() - t0) / (double)per_round;
    }
    free(buf);
    if (!ok) return false;
    qsort(rounds, PUBLISH_ROUNDS, sizeof rounds[0], compare_doubles);
    double median = (rounds[PUBLISH_ROUNDS / 2 - 1] + rounds[PUBLISH_ROUNDS / 2]) / 2;
    printf("RESULT {\"ns_per_call\": %.3f}\n", median);
    return true;
}

/* The cost of one moq_client_stats call on a connected client (median round). */
static bool run_stats(Session *s, uint64_t count) {
    uint64_t per_round = count / PUBLISH_ROUNDS ? count / PUBLISH_ROUNDS : 1;
    double rounds[PUBLISH_ROUNDS];
    uint64_t seen = 0;
    for (int round = 0; round < PUBLISH_ROUNDS; round++) {
        uint64_t t0 = mono_ns();
        for (uint64_t i = 0; i < per_round; i++) {
            MoqStats stats;
            stats.struct_size = sizeof stats;
            MoqResult r = moq_client_stats(s->pub_client, &stats);
            if (r.code != MOQ_OK) {
                fail_msg("moq_client_stats: %s", r.message);
                moq_free_str(r.message);
                return false;
            }
            seen += stats.rtt_us; /* used, so the call is not optimised away */
        }
        rounds[round] = (double)(mono_ns() - t0) / (double)per_round;
    }
    if (seen == 0) {
        fail_msg("moq_client_stats reported no RTT on a connected client");
        return false;
    }
    qsort(rounds, PUBLISH_ROUNDS, sizeof rounds[0], compare_doubles);
    double median = (rounds[PUBLISH_ROUNDS / 2 - 1] + rounds[PUBLISH_ROUNDS / 2]) / 2;
    printf("RESULT {\"ns_per_call\": %.3f}\n", median);
    return true;
}

/* ---------- main ---------- */

static int usage(void) {
    fail_msg("usage: bench <burst|paced|datagram|publish|stats> <count> <size>");
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 4) return usage();
    Workload workload;
    size_t min_size;
    if (strcmp(argv[1], "burst") == 0) {
        workload = W_BURST;
        min_size = 8;
    } else if (strcmp(argv[1], "paced") == 0) {
        workload = W_PACED;
        min_size = 16;
    } else if (strcmp(argv[1], "datagram") == 0) {
        workload = W_DATAGRAM;
        min_size = 16;
    } else if (strcmp(argv[1], "publish") == 0) {
        workload = W_PUBLISH;
        min_size = 0;
    } else if (strcmp(argv[1], "stats") == 0) {
        workload = W_STATS;
        min_size = 0;
    } else {
        return usage();
    }
    uint64_t count, size64;
    if (!parse_u64(argv[2], &count) || !parse_u64(argv[3], &size64) || count == 0 ||
        size64 > (uint64_t)SIZE_MAX) {
        return usage();
    }
    size_t size = (size_t)size64;
    if (size < min_size) {
        fail_msg("%s needs objects of at least %zu bytes", argv[1], min_size);
        return 1;
    }
    const char *url = getenv("MOQ_RELAY_MOQT_URL");
    const char *ca_file = getenv("MOQ_RELAY_CA_FILE");
    if (url == NULL || *url == '\0' || ca_file == NULL || *ca_file == '\0') {
        fail_msg("MOQ_RELAY_MOQT_URL and MOQ_RELAY_CA_FILE must be set");
        return 1;
    }
    char ns[96];
    snprintf(ns, sizeof ns, "bench-%ld-%s", (long)getpid(), argv[1]);
    moq_init();

    MoqDeliveryMode mode = workload == W_DATAGRAM ? MOQ_DELIVERY_DATAGRAM : MOQ_DELIVERY_STREAM;
    Receiver rx;
    bool ok = receiver_init(&rx, workload, count, size);
    Session session;
    memset(&session, 0, sizeof session);
    if (ok) ok = session_open(&session, url, ca_file, ns, mode, (workload == W_PUBLISH || workload == W_STATS) ? NULL : &rx);
    if (ok) {
        switch (workload) {
        case W_BURST: ok = run_burst(&session, &rx, count, size); break;
        case W_PACED:
        case W_DATAGRAM: ok = run_paced(&session, &rx, count, size, mode); break;
        case W_PUBLISH: ok = run_publish(&session, count, size); break;
        case W_STATS: ok = run_stats(&session, count); break;
        }
    }
    fflush(stdout);
    session_close(&session); /* stops the callback before the receiver goes away */
    receiver_destroy(&rx);
    return ok ? 0 : 1;
}
