/*
 * Tests of the legacy C ABI against a real relay (moq-relay-ietf, started by run.sh).
 * Environment: MOQ_RELAY_MOQT_URL, MOQ_RELAY_HTTPS_URL, MOQ_RELAY_CA_FILE (also exported as
 * SSL_CERT_FILE so moq_client_create() trusts the relay like any system root), and
 * MOQ_TEST_SCALE (1 normally, smaller under valgrind).
 */
#include "moq_ffi.h"
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

/* Bind a UDP socket on an ephemeral loopback port that never answers; returns the port. */
static int silent_udp_port(int *fd_out) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    bind(fd, (struct sockaddr *)&addr, sizeof addr);
    socklen_t len = sizeof addr;
    getsockname(fd, (struct sockaddr *)&addr, &len);
    *fd_out = fd;
    return ntohs(addr.sin_port);
}

static const char *moqt_url;
static const char *https_url;
static const char *ca_file;
static int scale = 10; /* tenths: 10 = full size */

static int scaled(int n) {
    int v = n * scale / 10;
    return v < 1 ? 1 : v;
}

static int unique_counter;
static void unique_name(char *out, size_t len, const char *prefix) {
    snprintf(out, len, "%s-%d-%d", prefix, (int)getpid(), __atomic_add_fetch(&unique_counter, 1, __ATOMIC_SEQ_CST));
}

/* ---------- connection callback recorder ---------- */
typedef struct {
    atomic_int count;
    int states[16];
} StateLog;

static void on_state(void *user_data, MoqConnectionState state) {
    StateLog *log = user_data;
    int i = atomic_fetch_add(&log->count, 1);
    if (i < 16) log->states[i] = (int)state;
}

static MoqClient *connected_client(const char *url) {
    MoqClient *client = moq_client_create();
    CHECK(client != NULL);
    CHECK_RESULT(moq_connect(client, url, NULL, NULL), MOQ_OK);
    CHECK(moq_is_connected(client));
    return client;
}

/* ---------- data callback recorder ---------- */
typedef struct {
    atomic_int count;
    atomic_int bytes;
    atomic_int order_errors;
    atomic_int content_errors;
    atomic_int after_close; /* callbacks that ran after unsubscribe/destroy returned */
    atomic_int closed;
    int expected_len;
    int next_index;
} DataLog;

static void fill(unsigned char *buf, int len, int index) {
    for (int i = 0; i < len; i++) buf[i] = (unsigned char)(index * 31 + i * 7);
    if (len >= 4) memcpy(buf, &index, 4);
}

static void on_data(void *user_data, const uint8_t *data, size_t len) {
    DataLog *log = user_data;
    if (atomic_load(&log->closed)) atomic_fetch_add(&log->after_close, 1);
    if (log->expected_len >= 0) {
        if ((int)len != log->expected_len) {
            atomic_fetch_add(&log->content_errors, 1);
        } else if (len >= 4) {
            int index;
            memcpy(&index, data, 4);
            if (index != log->next_index) atomic_fetch_add(&log->order_errors, 1);
            log->next_index = index + 1;
            unsigned char expect[2048];
            fill(expect, (int)len, index);
            if (memcmp(expect, data, len) != 0) atomic_fetch_add(&log->content_errors, 1);
        } else if (len == 0 && data != NULL) {
            atomic_fetch_add(&log->content_errors, 1);
        }
    }
    atomic_fetch_add(&log->bytes, (int)len);
    atomic_fetch_add(&log->count, 1);
}

/* =============== argument validation =============== */

static void test_library_functions(void) {
    CHECK(moq_init());
    CHECK(moq_init()); /* idempotent */
    const char *version = moq_version();
    CHECK(version != NULL && strstr(version, "moq_ffi") != NULL && strstr(version, "0.") != NULL);
    moq_free_str(NULL);
    CHECK(moq_last_error() != NULL);
}

static void test_null_arguments(void) {
    moq_client_destroy(NULL);
    moq_publisher_destroy(NULL);
    moq_subscriber_destroy(NULL);
    CHECK(!moq_is_connected(NULL));
    CHECK(!moq_is_subscribed(NULL));
    CHECK_RESULT(moq_connect(NULL, moqt_url, NULL, NULL), MOQ_ERROR_INVALID_ARGUMENT);
    CHECK_RESULT(moq_disconnect(NULL), MOQ_ERROR_INVALID_ARGUMENT);
    CHECK_RESULT(moq_announce_namespace(NULL, "ns"), MOQ_ERROR_INVALID_ARGUMENT);
    CHECK_RESULT(moq_subscribe_announces(NULL, NULL, NULL), MOQ_ERROR_INVALID_ARGUMENT);
    CHECK_RESULT(moq_unsubscribe(NULL), MOQ_ERROR_INVALID_ARGUMENT);
    CHECK_RESULT(moq_publish_data(NULL, (const uint8_t *)"x", 1, MOQ_DELIVERY_STREAM), MOQ_ERROR_INVALID_ARGUMENT);
    CHECK(moq_create_publisher(NULL, "ns", "t") == NULL);
    CHECK(strstr(moq_last_error(), "client is NULL") != NULL);
    CHECK(moq_create_publisher_ex(NULL, "ns", "t", MOQ_DELIVERY_STREAM) == NULL);
    CHECK(moq_subscribe(NULL, "ns", "t", on_data, NULL) == NULL);
    CHECK(moq_subscribe_catalog(NULL, "ns", "catalog", NULL, NULL) == NULL);
    CHECK(moq_client_create_ex(NULL) == NULL);
    CHECK(strstr(moq_last_error(), "NULL") != NULL);

    StateLog log = {0};
    MoqClient *client = moq_client_create();
    CHECK_RESULT(moq_connect(client, NULL, on_state, &log), MOQ_ERROR_INVALID_ARGUMENT);
    CHECK(atomic_load(&log.count) == 0); /* no callback for an invalid argument */
    /* Not connected. */
    CHECK_RESULT(moq_announce_namespace(client, "ns"), MOQ_ERROR_NOT_CONNECTED);
    CHECK_RESULT(moq_announce_namespace(client, NULL), MOQ_ERROR_INVALID_ARGUMENT);
    CHECK(moq_create_publisher(client, "ns", "t") == NULL);
    CHECK(strstr(moq_last_error(), "not connected") != NULL);
    CHECK(moq_subscribe(client, "ns", "t", on_data, NULL) == NULL);
    CHECK(moq_subscribe_catalog(client, "ns", "catalog", NULL, NULL) == NULL);
    CHECK_RESULT(moq_subscribe_announces(client, NULL, NULL), MOQ_OK);
    CHECK_RESULT(moq_disconnect(client), MOQ_OK);
    CHECK(!moq_is_connected(client));
    moq_client_destroy(client);
}

static void test_invalid_utf8_and_enums(void) {
    const char bad[] = {'a', (char)0xff, (char)0xfe, 0};
    MoqClient *client = connected_client(moqt_url);
    StateLog log = {0};
    CHECK_RESULT(moq_connect(client, bad, on_state, &log), MOQ_ERROR_INVALID_ARGUMENT);
    CHECK(atomic_load(&log.count) == 0);
    CHECK_RESULT(moq_announce_namespace(client, bad), MOQ_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(moq_last_error(), "UTF-8") != NULL);
    CHECK(moq_create_publisher(client, bad, "t") == NULL);
    CHECK(moq_create_publisher(client, "ns", bad) == NULL);
    CHECK(moq_subscribe(client, bad, "t", NULL, NULL) == NULL);
    CHECK(moq_subscribe(client, "ns", bad, NULL, NULL) == NULL);
    CHECK(moq_subscribe_catalog(client, "ns", bad, NULL, NULL) == NULL);

    char ns[64];
    unique_name(ns, sizeof ns, "enum");
    CHECK_RESULT(moq_announce_namespace(client, ns), MOQ_OK);
    /* Out-of-range enum values are rejected, never undefined behaviour. */
    CHECK(moq_create_publisher_ex(client, ns, "t", (MoqDeliveryMode)7) == NULL);
    CHECK(strstr(moq_last_error(), "delivery_mode") != NULL);
    CHECK(moq_create_publisher_ex(client, ns, "t", (MoqDeliveryMode)-1) == NULL);
    MoqPublisher *pub = moq_create_publisher_ex(client, ns, "t", MOQ_DELIVERY_STREAM);
    CHECK(pub != NULL);
    CHECK_RESULT(moq_publish_data(pub, (const uint8_t *)"x", 1, (MoqDeliveryMode)2), MOQ_ERROR_INVALID_ARGUMENT);
    CHECK_RESULT(moq_publish_data(pub, (const uint8_t *)"x", 1, (MoqDeliveryMode)0x7fffffff), MOQ_ERROR_INVALID_ARGUMENT);
    /* A mode that disagrees with the publisher's is reported, not ignored. */
    CHECK_RESULT(moq_publish_data(pub, (const uint8_t *)"x", 1, MOQ_DELIVERY_DATAGRAM), MOQ_ERROR_INVALID_ARGUMENT);
    /* NULL data with a length is invalid; NULL with zero length is an empty object. */
    CHECK_RESULT(moq_publish_data(pub, NULL, 5, MOQ_DELIVERY_STREAM), MOQ_ERROR_INVALID_ARGUMENT);
    CHECK_RESULT(moq_publish_data(pub, NULL, 0, MOQ_DELIVERY_STREAM), MOQ_OK);
    /* Never-announced namespace. */
    CHECK(moq_create_publisher(client, "never/announced", "t") == NULL);
    CHECK(strstr(moq_last_error(), "announce") != NULL);
    /* Announcing twice is an error, not a crash. */
    CHECK_RESULT(moq_announce_namespace(client, ns), MOQ_ERROR_INVALID_ARGUMENT);
    moq_publisher_destroy(pub);
    moq_client_destroy(client);
}

static void test_create_ex_config(void) {
    MoqClientConfig config;
    memset(&config, 0, sizeof config);
    CHECK(moq_client_create_ex(&config) == NULL); /* struct_size unset */
    CHECK(strstr(moq_last_error(), "struct_size") != NULL);
    config.struct_size = sizeof config;
    config.ca_cert_pem = "not a certificate";
    CHECK(moq_client_create_ex(&config) == NULL);
    config.ca_cert_pem = NULL;
    config.ca_cert_file = "/nonexistent/ca.pem";
    CHECK(moq_client_create_ex(&config) == NULL);
    CHECK(strstr(moq_last_error(), "/nonexistent/ca.pem") != NULL);
    config.ca_cert_file = NULL;
    config.pinned_sha256 = "zz";
    CHECK(moq_client_create_ex(&config) == NULL);
    config.pinned_sha256 = NULL;
    /* A private CA through the extension constructor, system roots off. */
    config.ca_cert_file = ca_file;
    config.disable_system_roots = true;
    config.connect_timeout_ms = 3000;
    MoqClient *client = moq_client_create_ex(&config);
    CHECK(client != NULL);
    CHECK_RESULT(moq_connect(client, https_url, NULL, NULL), MOQ_OK);
    CHECK(moq_is_connected(client));
    moq_client_destroy(client);
}

/* =============== connect failures =============== */

static void test_connect_failures(void) {
    StateLog log = {0};
    MoqClient *client = moq_client_create();
    /* Bad URLs. */
    CHECK_RESULT(moq_connect(client, "http://localhost:1", on_state, &log), MOQ_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(moq_last_error(), "scheme") != NULL);
    CHECK_RESULT(moq_connect(client, "not a url", on_state, &log), MOQ_ERROR_INVALID_ARGUMENT);
    CHECK(atomic_load(&log.count) == 0);
    moq_client_destroy(client);

    /* Untrusted certificate: system roots only, relay is self-signed. */
    MoqClientConfig config;
    memset(&config, 0, sizeof config);
    config.struct_size = sizeof config;
    config.disable_system_roots = true;
    client = moq_client_create_ex(&config);
    CHECK(client != NULL);
    memset(&log, 0, sizeof log);
    CHECK_RESULT(moq_connect(client, moqt_url, on_state, &log), MOQ_ERROR_CONNECTION_FAILED);
    CHECK(strstr(moq_last_error(), "TLS") != NULL);
    CHECK(atomic_load(&log.count) == 2);
    CHECK(log.states[0] == MOQ_STATE_CONNECTING && log.states[1] == MOQ_STATE_FAILED);
    CHECK(!moq_is_connected(client));
    moq_client_destroy(client);

    /* Unreachable: a UDP port where nothing answers. */
    config.disable_system_roots = false;
    config.connect_timeout_ms = 600;
    client = moq_client_create_ex(&config);
    memset(&log, 0, sizeof log);
    int silent_fd;
    char silent_url[64];
    snprintf(silent_url, sizeof silent_url, "moqt://127.0.0.1:%d", silent_udp_port(&silent_fd));
    double started = now_ms();
    CHECK_RESULT(moq_connect(client, silent_url, on_state, &log), MOQ_ERROR_TIMEOUT);
    close(silent_fd);
    double took = now_ms() - started;
    CHECK(took >= 500 && took < 3000);
    CHECK(strstr(moq_last_error(), "timed out") != NULL);
    CHECK(atomic_load(&log.count) == 2);
    CHECK(log.states[0] == MOQ_STATE_CONNECTING && log.states[1] == MOQ_STATE_FAILED);
    moq_client_destroy(client);
}

static void test_connect_states_and_disconnect(void) {
    StateLog log = {0};
    MoqClient *client = moq_client_create();
    CHECK_RESULT(moq_connect(client, moqt_url, on_state, &log), MOQ_OK);
    CHECK(moq_is_connected(client)); /* accurate right after connect returns */
    CHECK(atomic_load(&log.count) == 2);
    CHECK(log.states[0] == MOQ_STATE_CONNECTING && log.states[1] == MOQ_STATE_CONNECTED);
    CHECK_RESULT(moq_connect(client, moqt_url, on_state, &log), MOQ_ERROR_INVALID_ARGUMENT);
    CHECK_RESULT(moq_disconnect(client), MOQ_OK);
    CHECK(!moq_is_connected(client));
    CHECK(atomic_load(&log.count) == 3 && log.states[2] == MOQ_STATE_DISCONNECTED);
    /* Reconnect works. */
    CHECK_RESULT(moq_connect(client, https_url, on_state, &log), MOQ_OK);
    CHECK(moq_is_connected(client));
    moq_client_destroy(client);
}

/* =============== publish / subscribe =============== */

static void pubsub(const char *url, MoqDeliveryMode mode, int count, int len, int paced) {
    MoqClient *pub_client = connected_client(url);
    MoqClient *sub_client = connected_client(url);
    char ns[64];
    unique_name(ns, sizeof ns, "pubsub");
    CHECK_RESULT(moq_announce_namespace(pub_client, ns), MOQ_OK);
    MoqPublisher *pub = moq_create_publisher_ex(pub_client, ns, "data", mode);
    CHECK(pub != NULL);
    DataLog log = {0};
    log.expected_len = len;
    MoqSubscriber *sub = moq_subscribe(sub_client, ns, "data", on_data, &log);
    CHECK(sub != NULL);
    CHECK(moq_is_subscribed(sub));
    CHECK_RESULT(moq_subscriber_wait_ready(sub, 5000), MOQ_OK);
    unsigned char buf[2048];
    for (int i = 0; i < count; i++) {
        fill(buf, len, i);
        CHECK_RESULT(moq_publish_data(pub, buf, (size_t)len, mode), MOQ_OK);
        if (paced) sleep_ms(2);
    }
    if (mode == MOQ_DELIVERY_STREAM) {
        CHECK(wait_for(&log.count, count, 20000));
        CHECK(atomic_load(&log.count) == count);
        CHECK(atomic_load(&log.order_errors) == 0);
    } else {
        wait_for(&log.count, count, 2000);
        /* Lossy by design; on an idle loopback most arrive (under valgrind, far fewer). */
        CHECK(atomic_load(&log.count) >= (scale >= 10 ? count * 3 / 4 : 1));
    }
    CHECK(atomic_load(&log.content_errors) == 0);
    moq_subscriber_destroy(sub);
    moq_publisher_destroy(pub);
    moq_client_destroy(sub_client);
    moq_client_destroy(pub_client);
}

static void test_stream_pubsub_both_schemes(void) {
    pubsub(moqt_url, MOQ_DELIVERY_STREAM, scaled(200), 100, 0);
    pubsub(https_url, MOQ_DELIVERY_STREAM, scaled(200), 1500, 0);
}

static void test_stream_burst_1000_in_order(void) {
    pubsub(moqt_url, MOQ_DELIVERY_STREAM, scaled(1000), 100, 0);
}

static void test_datagram_pubsub_both_schemes(void) {
    pubsub(moqt_url, MOQ_DELIVERY_DATAGRAM, scaled(100), 200, 1);
    pubsub(https_url, MOQ_DELIVERY_DATAGRAM, scaled(100), 200, 1);
}

static void test_zero_length_objects(void) {
    MoqClient *client = connected_client(moqt_url);
    char ns[64];
    unique_name(ns, sizeof ns, "zero");
    CHECK_RESULT(moq_announce_namespace(client, ns), MOQ_OK);
    MoqPublisher *pub = moq_create_publisher(client, ns, "t");
    DataLog log = {0};
    log.expected_len = 0;
    MoqSubscriber *sub = moq_subscribe(client, ns, "t", on_data, &log);
    CHECK_RESULT(moq_subscriber_wait_ready(sub, 5000), MOQ_OK);
    for (int i = 0; i < 5; i++) CHECK_RESULT(moq_publish_data(pub, NULL, 0, MOQ_DELIVERY_STREAM), MOQ_OK);
    CHECK(wait_for(&log.count, 5, 5000));
    CHECK(atomic_load(&log.bytes) == 0 && atomic_load(&log.content_errors) == 0);
    moq_subscriber_destroy(sub);
    moq_publisher_destroy(pub);
    moq_client_destroy(client);
}

static void test_subscribe_failure_is_visible(void) {
    MoqClientConfig config;
    memset(&config, 0, sizeof config);
    config.struct_size = sizeof config;
    config.rendezvous_timeout_ms = 300;
    MoqClient *client = moq_client_create_ex(&config);
    CHECK_RESULT(moq_connect(client, moqt_url, NULL, NULL), MOQ_OK);
    MoqSubscriber *sub = moq_subscribe(client, "nobody/here", "t", on_data, NULL);
    CHECK(sub != NULL); /* returns without waiting */
    CHECK_RESULT(moq_subscriber_wait_ready(sub, 10000), MOQ_ERROR_TIMEOUT);
    CHECK(strstr(moq_last_error(), "not found") != NULL);
    CHECK(!moq_is_subscribed(sub));
    CHECK_RESULT(moq_unsubscribe(sub), MOQ_OK);
    CHECK_RESULT(moq_unsubscribe(sub), MOQ_OK); /* idempotent */
    moq_subscriber_destroy(sub);
    moq_client_destroy(client);
}

/* =============== catalog and announces =============== */

typedef struct {
    atomic_int count;
    int tracks;
    int width;
    int sample_rate;
    char first_name[32];
    char mime[32];
    char language[8];
} CatalogLog;

static void on_catalog(void *user_data, const MoqTrackInfo *tracks, size_t count) {
    CatalogLog *log = user_data;
    log->tracks = (int)count;
    if (count >= 2) {
        snprintf(log->first_name, sizeof log->first_name, "%s", tracks[0].name);
        snprintf(log->mime, sizeof log->mime, "%s", tracks[0].mime_type ? tracks[0].mime_type : "(null)");
        log->width = (int)tracks[0].width;
        log->sample_rate = (int)tracks[1].sample_rate;
        snprintf(log->language, sizeof log->language, "%s", tracks[1].language ? tracks[1].language : "(null)");
    }
    atomic_fetch_add(&log->count, 1);
}

static void test_catalog_subscription(void) {
    MoqClient *pub_client = connected_client(https_url);
    MoqClient *sub_client = connected_client(moqt_url);
    char ns[64];
    unique_name(ns, sizeof ns, "catalog");
    CHECK_RESULT(moq_announce_namespace(pub_client, ns), MOQ_OK);
    MoqPublisher *pub = moq_create_publisher(pub_client, ns, "catalog");
    CatalogLog log = {0};
    MoqSubscriber *sub = moq_subscribe_catalog(sub_client, ns, "catalog", on_catalog, &log);
    CHECK_RESULT(moq_subscriber_wait_ready(sub, 5000), MOQ_OK);
    const char *broken = "{\"tracks\": [ oops";
    const char *catalog =
        "{\"version\":1,\"tracks\":[{\"name\":\"video\",\"selectionParams\":{\"codec\":\"avc1.64001f\","
        "\"mimeType\":\"video/mp4\",\"width\":1280,\"height\":720}},{\"name\":\"audio\","
        "\"selectionParams\":{\"codec\":\"opus\",\"samplerate\":48000,\"lang\":\"de\"}}]}";
    CHECK_RESULT(moq_publish_data(pub, (const uint8_t *)broken, strlen(broken), MOQ_DELIVERY_STREAM), MOQ_OK);
    CHECK_RESULT(moq_publish_data(pub, (const uint8_t *)catalog, strlen(catalog), MOQ_DELIVERY_STREAM), MOQ_OK);
    CHECK(wait_for(&log.count, 1, 5000));
    sleep_ms(100);
    CHECK(atomic_load(&log.count) == 1); /* the malformed one was skipped */
    CHECK(log.tracks == 2);
    CHECK(strcmp(log.first_name, "video") == 0);
    CHECK(strcmp(log.mime, "video/mp4") == 0);
    CHECK(log.width == 1280 && log.sample_rate == 48000);
    CHECK(strcmp(log.language, "de") == 0);
    moq_subscriber_destroy(sub);
    moq_publisher_destroy(pub);
    moq_client_destroy(sub_client);
    moq_client_destroy(pub_client);
}

typedef struct {
    atomic_int count;
    char wanted[64];
    atomic_int seen_wanted;
} AnnounceLog;

static void on_announce(void *user_data, const char *ns, const char *track) {
    AnnounceLog *log = user_data;
    if (track == NULL || ns == NULL) return;
    if (strcmp(ns, log->wanted) == 0) atomic_store(&log->seen_wanted, 1);
    atomic_fetch_add(&log->count, 1);
}

static void test_subscribe_announces_before_and_after_connect(void) {
    AnnounceLog before = {0}, after = {0};
    unique_name(before.wanted, sizeof before.wanted, "ann");
    strcpy(after.wanted, before.wanted);
    MoqClient *watcher = moq_client_create();
    CHECK_RESULT(moq_subscribe_announces(watcher, on_announce, &before), MOQ_OK); /* before connect */
    CHECK_RESULT(moq_connect(watcher, moqt_url, NULL, NULL), MOQ_OK);
    CHECK_RESULT(moq_subscribe_announces(watcher, on_announce, &after), MOQ_OK); /* after connect */
    sleep_ms(200);
    MoqClient *publisher = connected_client(https_url);
    CHECK_RESULT(moq_announce_namespace(publisher, before.wanted), MOQ_OK);
    CHECK(wait_for(&before.seen_wanted, 1, 5000));
    CHECK(wait_for(&after.seen_wanted, 1, 5000));
    moq_client_destroy(publisher);
    moq_client_destroy(watcher);
}

/* =============== lifecycle and concurrency =============== */

static void test_unsubscribe_while_callbacks_in_flight(void) {
    MoqClient *client = connected_client(moqt_url);
    char ns[64];
    unique_name(ns, sizeof ns, "inflight");
    CHECK_RESULT(moq_announce_namespace(client, ns), MOQ_OK);
    MoqPublisher *pub = moq_create_publisher(client, ns, "t");
    int rounds = scaled(30);
    for (int round = 0; round < rounds; round++) {
        DataLog log = {0};
        log.expected_len = -1;
        MoqSubscriber *sub = moq_subscribe(client, ns, "t", on_data, &log);
        CHECK_RESULT(moq_subscriber_wait_ready(sub, 5000), MOQ_OK);
        for (int i = 0; i < 50; i++) moq_free_str(moq_publish_data(pub, (const uint8_t *)"0123456789", 10, MOQ_DELIVERY_STREAM).message);
        wait_for(&log.count, 1 + round % 20, 2000);
        if (round % 2 == 0) {
            CHECK_RESULT(moq_unsubscribe(sub), MOQ_OK);
            atomic_store(&log.closed, 1);
            CHECK(!moq_is_subscribed(sub));
            sleep_ms(5);
            moq_subscriber_destroy(sub);
        } else {
            moq_subscriber_destroy(sub);
            atomic_store(&log.closed, 1);
        }
        sleep_ms(5);
        CHECK(atomic_load(&log.after_close) == 0);
    }
    moq_publisher_destroy(pub);
    moq_client_destroy(client);
}

/* Reentrancy: moq_* calls from inside callbacks. */
typedef struct {
    MoqClient *client;
    MoqPublisher *echo;
    MoqSubscriber *self;
    atomic_int calls;
    atomic_int reentrant_ok;
    atomic_int unsubscribed_inside;
} Reentrant;

static void on_data_reentrant(void *user_data, const uint8_t *data, size_t len) {
    Reentrant *r = user_data;
    (void)data;
    int n = atomic_fetch_add(&r->calls, 1);
    /* Publishing, querying and announcing from inside a callback work. */
    MoqResult res = moq_publish_data(r->echo, data, len, MOQ_DELIVERY_STREAM);
    if (res.code == MOQ_OK) atomic_fetch_add(&r->reentrant_ok, 1);
    moq_free_str(res.message);
    if (moq_is_connected(r->client)) atomic_fetch_add(&r->reentrant_ok, 1);
    /* Connecting again from a callback returns an error instead of deadlocking. */
    res = moq_connect(r->client, moqt_url, NULL, NULL);
    if (res.code != MOQ_OK) atomic_fetch_add(&r->reentrant_ok, 1);
    moq_free_str(res.message);
    if (n == 2) {
        /* Unsubscribing itself from inside its own callback must not deadlock. */
        res = moq_unsubscribe(r->self);
        if (res.code == MOQ_OK) atomic_store(&r->unsubscribed_inside, 1);
        moq_free_str(res.message);
    }
}

static void on_state_reentrant(void *user_data, MoqConnectionState state) {
    MoqClient *client = user_data;
    (void)state;
    (void)moq_is_connected(client); /* must not deadlock */
}

static void test_reentrant_calls_from_callbacks(void) {
    MoqClient *client = moq_client_create();
    CHECK_RESULT(moq_connect(client, moqt_url, on_state_reentrant, client), MOQ_OK);
    char ns[64];
    unique_name(ns, sizeof ns, "reentrant");
    CHECK_RESULT(moq_announce_namespace(client, ns), MOQ_OK);
    Reentrant r = {0};
    r.client = client;
    MoqPublisher *pub = moq_create_publisher(client, ns, "in");
    r.echo = moq_create_publisher(client, ns, "echo");
    DataLog echo_log = {0};
    echo_log.expected_len = -1;
    MoqSubscriber *echo_sub = moq_subscribe(client, ns, "echo", on_data, &echo_log);
    CHECK_RESULT(moq_subscriber_wait_ready(echo_sub, 5000), MOQ_OK);
    r.self = moq_subscribe(client, ns, "in", on_data_reentrant, &r);
    CHECK_RESULT(moq_subscriber_wait_ready(r.self, 5000), MOQ_OK);
    for (int i = 0; i < 10; i++) CHECK_RESULT(moq_publish_data(pub, (const uint8_t *)"ping", 4, MOQ_DELIVERY_STREAM), MOQ_OK);
    CHECK(wait_for(&r.unsubscribed_inside, 1, 5000));
    sleep_ms(100);
    CHECK(atomic_load(&r.calls) == 3); /* nothing after the in-callback unsubscribe */
    CHECK(atomic_load(&r.reentrant_ok) == 9);
    CHECK(!moq_is_subscribed(r.self));
    CHECK(wait_for(&echo_log.count, 3, 5000));
    moq_subscriber_destroy(r.self);
    moq_subscriber_destroy(echo_sub);
    moq_publisher_destroy(r.echo);
    moq_publisher_destroy(pub);
    moq_client_destroy(client);
}

static void test_destroy_in_every_order(void) {
    for (int order = 0; order < 6; order++) {
        MoqClient *client = connected_client(order % 2 ? https_url : moqt_url);
        char ns[64];
        unique_name(ns, sizeof ns, "order");
        CHECK_RESULT(moq_announce_namespace(client, ns), MOQ_OK);
        MoqPublisher *pub = moq_create_publisher(client, ns, "t");
        DataLog log = {0};
        log.expected_len = -1;
        MoqSubscriber *sub = moq_subscribe(client, ns, "t", on_data, &log);
        CHECK_RESULT(moq_subscriber_wait_ready(sub, 5000), MOQ_OK);
        moq_free_str(moq_publish_data(pub, (const uint8_t *)"x", 1, MOQ_DELIVERY_STREAM).message);
        switch (order) {
        case 0: moq_client_destroy(client); moq_publisher_destroy(pub); moq_subscriber_destroy(sub); break;
        case 1: moq_client_destroy(client); moq_subscriber_destroy(sub); moq_publisher_destroy(pub); break;
        case 2: moq_publisher_destroy(pub); moq_client_destroy(client); moq_subscriber_destroy(sub); break;
        case 3: moq_publisher_destroy(pub); moq_subscriber_destroy(sub); moq_client_destroy(client); break;
        case 4: moq_subscriber_destroy(sub); moq_client_destroy(client); moq_publisher_destroy(pub); break;
        default: moq_subscriber_destroy(sub); moq_publisher_destroy(pub); moq_client_destroy(client); break;
        }
    }
    /* Using a publisher after its client is gone reports not-connected. */
    MoqClient *client = connected_client(moqt_url);
    char ns[64];
    unique_name(ns, sizeof ns, "orphan");
    CHECK_RESULT(moq_announce_namespace(client, ns), MOQ_OK);
    MoqPublisher *pub = moq_create_publisher(client, ns, "t");
    moq_client_destroy(client);
    CHECK_RESULT(moq_publish_data(pub, (const uint8_t *)"x", 1, MOQ_DELIVERY_STREAM), MOQ_ERROR_NOT_CONNECTED);
    moq_publisher_destroy(pub);
}

typedef struct {
    MoqPublisher *pub;
    int base;
    int count;
    atomic_int *failures;
} PublishJob;

static void *publish_thread(void *arg) {
    PublishJob *job = arg;
    unsigned char buf[64];
    for (int i = 0; i < job->count; i++) {
        fill(buf, sizeof buf, job->base + i);
        MoqResult r = moq_publish_data(job->pub, buf, sizeof buf, MOQ_DELIVERY_STREAM);
        if (r.code != MOQ_OK) atomic_fetch_add(job->failures, 1);
        moq_free_str(r.message);
    }
    return NULL;
}

static void test_several_threads_publishing(void) {
    MoqClient *client = connected_client(moqt_url);
    char ns[64];
    unique_name(ns, sizeof ns, "threads");
    CHECK_RESULT(moq_announce_namespace(client, ns), MOQ_OK);
    enum { THREADS = 4 };
    MoqPublisher *shared = moq_create_publisher(client, ns, "shared");
    DataLog log = {0};
    log.expected_len = -1;
    MoqSubscriber *sub = moq_subscribe(client, ns, "shared", on_data, &log);
    CHECK_RESULT(moq_subscriber_wait_ready(sub, 5000), MOQ_OK);
    atomic_int failures = 0;
    pthread_t threads[THREADS];
    PublishJob jobs[THREADS];
    int per = scaled(250);
    for (int t = 0; t < THREADS; t++) {
        jobs[t] = (PublishJob){shared, t * 100000, per, &failures};
        pthread_create(&threads[t], NULL, publish_thread, &jobs[t]);
    }
    for (int t = 0; t < THREADS; t++) pthread_join(threads[t], NULL);
    CHECK(atomic_load(&failures) == 0);
    CHECK(wait_for(&log.count, THREADS * per, 20000));
    CHECK(atomic_load(&log.count) == THREADS * per);
    moq_subscriber_destroy(sub);
    moq_publisher_destroy(shared);
    moq_client_destroy(client);
}

int main(void) {
    moqt_url = env_or_die("MOQ_RELAY_MOQT_URL");
    https_url = env_or_die("MOQ_RELAY_HTTPS_URL");
    ca_file = env_or_die("MOQ_RELAY_CA_FILE");
    if (getenv("MOQ_TEST_SCALE")) scale = atoi(getenv("MOQ_TEST_SCALE"));

    run_case("library_functions", test_library_functions);
    run_case("null_arguments", test_null_arguments);
    run_case("invalid_utf8_and_enums", test_invalid_utf8_and_enums);
    run_case("create_ex_config", test_create_ex_config);
    run_case("connect_failures", test_connect_failures);
    run_case("connect_states_and_disconnect", test_connect_states_and_disconnect);
    run_case("stream_pubsub_both_schemes", test_stream_pubsub_both_schemes);
    run_case("stream_burst_1000_in_order", test_stream_burst_1000_in_order);
    run_case("datagram_pubsub_both_schemes", test_datagram_pubsub_both_schemes);
    run_case("zero_length_objects", test_zero_length_objects);
    run_case("subscribe_failure_is_visible", test_subscribe_failure_is_visible);
    run_case("catalog_subscription", test_catalog_subscription);
    run_case("subscribe_announces_before_and_after_connect", test_subscribe_announces_before_and_after_connect);
    run_case("unsubscribe_while_callbacks_in_flight", test_unsubscribe_while_callbacks_in_flight);
    run_case("reentrant_calls_from_callbacks", test_reentrant_calls_from_callbacks);
    run_case("destroy_in_every_order", test_destroy_in_every_order);
    run_case("several_threads_publishing", test_several_threads_publishing);

    printf("%d passed, %d failed\n", g_cases_passed, g_cases_failed);
    return g_cases_failed == 0 ? 0 : 1;
}
