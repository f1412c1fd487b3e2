// ng-probe: an ng control client in C for benchmarks, so that the client's own event loop and
// garbage collector are not part of the latency it reports (the npm rtpengine-client, in Node,
// adds a tail of its own on a 2-core machine).
//
// Each call: offer, then answer as soon as the offer's reply is in; the call is held HOLD_MS and
// then deleted ("delete delay" 0). Paced mode starts calls at RATE per second; serial mode starts
// the next call when the previous one is deleted. One line per call on stdout:
//   epoch <µs since 1970 when the first call started>
//   <call index> <offer start, µs since the first call> <offer µs> <answer µs> <ok 1|0>
// then "done <calls> <errors>". A command without a reply within 5 s fails its call.
//
//   cc -O2 -o ng-probe ng-probe.c
//   ng-probe HOST PORT RATE CALLS HOLD_MS paced|serial TAG
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum step { IDLE, OFFER_SENT, ANSWER_SENT, HOLDING, DELETE_SENT, DONE };

struct call {
  enum step step;
  int64_t started, sent, offer_us, answer_us, due;
  int ok;
};

static const int64_t TIMEOUT_US = 5000000;

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int sock;
static const char *tag;

static int sdp(char *out, size_t cap, int port, int sess) {
  return snprintf(out, cap,
                  "v=0\r\no=- %d 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP 0 8 101\r\n"
                  "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
                  "a=ptime:20\r\na=sendrecv\r\n",
                  sess, port);
}

/** Sends one command of call `i`; the cookie names the call and the step so replies need no table. */
static void send_command(int i, enum step step) {
  char call_id[96], from_tag[24], to_tag[24], body[1024], msg[2048];
  snprintf(call_id, sizeof call_id, "%s-%d@ng-probe", tag, i);
  snprintf(from_tag, sizeof from_tag, "f%d", i);
  snprintf(to_tag, sizeof to_tag, "t%d", i);
  int n = snprintf(msg, sizeof msg, "%s_%d_%d d7:call-id%zu:%s8:from-tag%zu:%s", tag, i, (int)step, strlen(call_id), call_id, strlen(from_tag), from_tag);
  if (step == OFFER_SENT || step == ANSWER_SENT) {
    int len = sdp(body, sizeof body, step == OFFER_SENT ? 10000 + (i % 5000) * 2 : 20000 + (i % 5000) * 2, step == OFFER_SENT ? i : i + 1);
    n += snprintf(msg + n, sizeof msg - n, "3:sdp%d:%s5:flagsl13:trust-addresse", len, body);
    if (step == OFFER_SENT) n += snprintf(msg + n, sizeof msg - n, "7:replacel6:origine7:command5:offer");
    else n += snprintf(msg + n, sizeof msg - n, "6:to-tag%zu:%s7:command6:answer", strlen(to_tag), to_tag);
  } else {
    n += snprintf(msg + n, sizeof msg - n, "12:delete delayi0e7:command6:delete");
  }
  n += snprintf(msg + n, sizeof msg - n, "e");
  send(sock, msg, (size_t)n, 0);
}

int main(int argc, char **argv) {
  if (argc != 8) {
    fprintf(stderr, "usage: ng-probe HOST PORT RATE CALLS HOLD_MS paced|serial TAG\n");
    return 2;
  }
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
  inet_pton(AF_INET, argv[1], &to.sin_addr);
  double rate = atof(argv[3]);
  int calls = atoi(argv[4]);
  int64_t hold_us = (int64_t)atoi(argv[5]) * 1000;
  int serial = strcmp(argv[6], "serial") == 0;
  tag = argv[7];
  sock = socket(AF_INET, SOCK_DGRAM, 0);
  int big = 4 << 20;
  setsockopt(sock, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  if (connect(sock, (struct sockaddr *)&to, sizeof to) != 0) {
    perror("connect");
    return 1;
  }
  struct call *c = calloc((size_t)calls, sizeof *c);
  int64_t t0 = now_us();
  struct timespec wall;
  clock_gettime(CLOCK_REALTIME, &wall);
  printf("epoch %lld\n", (long long)wall.tv_sec * 1000000 + wall.tv_nsec / 1000);
  int next = 0, finished = 0, errors = 0;
  char buf[65536];
  while (finished < calls) {
    int64_t now = now_us();
    // Start calls that are due.
    while (next < calls && (serial ? next == finished : t0 + (int64_t)(next * 1e6 / rate) <= now)) {
      c[next].step = OFFER_SENT;
      c[next].started = c[next].sent = now_us();
      send_command(next, OFFER_SENT);
      next++;
    }
    // Deletes that are due, and commands that timed out. A linear scan: a few thousand live calls at most.
    int64_t wake = next < calls && !serial ? t0 + (int64_t)(next * 1e6 / rate) : now + 100000;
    for (int i = finished; i < next; i++) {
      if (c[i].step == HOLDING && c[i].due <= now) {
        c[i].step = DELETE_SENT;
        c[i].sent = now;
        send_command(i, DELETE_SENT);
      }
      if ((c[i].step == OFFER_SENT || c[i].step == ANSWER_SENT || c[i].step == DELETE_SENT) && now - c[i].sent > TIMEOUT_US) {
        c[i].ok = 0;
        c[i].step = DONE;
        errors++;
      }
      if (c[i].step == HOLDING && c[i].due < wake) wake = c[i].due;
    }
    while (finished < next && c[finished].step == DONE) finished++;
    int wait_ms = (int)((wake - now_us() + 999) / 1000);
    struct pollfd p = {.fd = sock, .events = POLLIN};
    if (poll(&p, 1, wait_ms < 0 ? 0 : wait_ms) <= 0) continue;
    for (;;) {
      ssize_t n = recv(sock, buf, sizeof buf - 1, MSG_DONTWAIT);
      if (n <= 0) break;
      buf[n] = 0;
      int64_t at = now_us();
      int i, step;
      char *us = strchr(buf, '_');
      if (!us || sscanf(us + 1, "%d_%d", &i, &step) != 2 || i < 0 || i >= calls || c[i].step != (enum step)step) continue;
      int ok = strstr(buf, "6:result2:ok") != NULL;
      struct call *k = &c[i];
      if (step == OFFER_SENT) {
        k->offer_us = at - k->sent;
        if (!ok) { k->step = DONE; errors++; continue; }
        k->step = ANSWER_SENT;
        k->sent = now_us();
        send_command(i, ANSWER_SENT);
      } else if (step == ANSWER_SENT) {
        k->answer_us = at - k->sent;
        if (!ok) { k->step = DONE; errors++; continue; }
        k->ok = 1;
        k->step = HOLDING;
        k->due = at + hold_us;
      } else {
        k->step = DONE;
      }
    }
    while (finished < next && c[finished].step == DONE) finished++;
  }
  for (int i = 0; i < calls; i++) printf("%d %lld %lld %lld %d\n", i, (long long)(c[i].started - t0), (long long)c[i].offer_us, (long long)c[i].answer_us, c[i].ok);
  printf("done %d %d\n", calls, errors);
  return 0;
}
