/* Board layer for the host build: the serial line is a TCP socket on 127.0.0.1, so the harness
 * talks to it with the same pyserial socket:// URL it uses for QEMU. `firmware [--port N]`
 * listens (N = 0: a free port), prints "KWS_NATIVE_PORT=<port>" on stdout, serves one
 * connection and exits when it closes. Timings are wall-clock nanoseconds (CLOCK_MONOTONIC). */
#ifdef KWS_BOARD_NATIVE
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "board.h"

static int conn = -1;
static uint64_t t0;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void board_init(int argc, char **argv) {
  int port = 0;
  for (int i = 1; i + 1 < argc; i++)
    if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
  int srv = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* never all interfaces */
  if (srv < 0 || bind(srv, (struct sockaddr *)&addr, sizeof addr) || listen(srv, 1)) {
    fprintf(stderr, "native board: cannot listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
    exit(2);
  }
  socklen_t len = sizeof addr;
  getsockname(srv, (struct sockaddr *)&addr, &len);
  printf("KWS_NATIVE_PORT=%d\n", ntohs(addr.sin_port));
  fflush(stdout);
  conn = accept(srv, NULL, NULL);
  close(srv);
  if (conn < 0) exit(2);
  setsockopt(conn, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  t0 = now_ns();
}

int board_uart_read(uint8_t *byte, uint32_t timeout_ms) {
  struct pollfd p = {.fd = conn, .events = POLLIN};
  int r = poll(&p, 1, timeout_ms ? (int)timeout_ms : -1);
  if (r == 0) return 0;
  if (r < 0) return -1;
  ssize_t n = recv(conn, byte, 1, 0);
  return n == 1 ? 1 : -1;
}

void board_uart_write(const uint8_t *data, size_t n) {
  while (n) {
    ssize_t w = send(conn, data, n, MSG_NOSIGNAL);
    if (w <= 0) return;
    data += w;
    n -= (size_t)w;
  }
}

void board_timer_restart(void) { t0 = now_ns(); }
uint64_t board_timer_read(void) { return now_ns() - t0; }
uint32_t board_clock_hz(void) { return 1000000000u; }
const char *board_timing_method(void) { return "preemptible"; }
const char *board_timer_unit(void) { return "ns"; }
const char *board_timer_source(void) { return "clock_gettime-monotonic"; }
const char *board_name(void) { return "native"; }
uint32_t board_ram_bytes(void) { return 0; }
void board_exit(int code) { exit(code); }
#endif
