/* Logging can never take the process down: with stderr a pipe nobody reads (writes fail with
 * EPIPE, SIGPIPE ignored, as in many daemons) and debug logging on, a connect to a relay that
 * never answers must return MOQ_ERROR_TIMEOUT, not abort. Run by tests/c/run.sh. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "moq_ffi.h"

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    int fds[2];
    if (pipe(fds) != 0) return 2;
    close(fds[0]);           /* nobody will ever read */
    dup2(fds[1], STDERR_FILENO);
    setenv("MOQ_LOG", "debug", 1);
    moq_init();

    /* A UDP port that is bound but never answers: the handshake can only time out. */
    int silent = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(silent, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        getsockname(silent, (struct sockaddr *)&addr, &len) != 0)
        return 2;
    char url[64];
    snprintf(url, sizeof url, "moqt://127.0.0.1:%d", ntohs(addr.sin_port));

    MoqClientConfig config;
    memset(&config, 0, sizeof config);
    config.struct_size = sizeof config;
    config.connect_timeout_ms = 500;
    MoqClient *client = moq_client_create_ex(&config);
    MoqResult r = moq_connect(client, url, NULL, NULL);
    int ok = r.code == MOQ_ERROR_TIMEOUT;
    printf("moq_connect with a closed stderr returned %d (expected %d, MOQ_ERROR_TIMEOUT)\n",
           (int)r.code, (int)MOQ_ERROR_TIMEOUT);
    moq_free_str(r.message);
    moq_client_destroy(client);
    close(silent);
    printf("%s\n", ok ? "1 passed, 0 failed" : "0 passed, 1 failed");
    return ok ? 0 : 1;
}
