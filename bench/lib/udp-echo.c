// The datagram floor of a UDP server (bench/udp-floor.bench.ts), two programs in one:
//
//   udp-echo serve PORT          echo every datagram back to its sender, one recvfrom and one
//                                sendto each, blocking: what a C server's socket costs it
//   udp-echo pace PORT RATE SEC SIZE
//                                send SIZE-byte datagrams to 127.0.0.1:PORT at RATE per second
//                                for SEC seconds, evenly spaced as SIPp spaces its calls, read
//                                the answers, and print "sent N answered M"
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static struct sockaddr_in loopback(int port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(0x7f000001);
  return a;
}

static int serve(int port) {
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  int size = 4 << 20;
  setsockopt(s, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  struct sockaddr_in a = loopback(port);
  if (bind(s, (struct sockaddr *)&a, sizeof a) != 0) {
    perror("bind");
    return 1;
  }
  printf("ready\n");
  fflush(stdout);
  char buf[65536];
  for (;;) {
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
    if (n < 0) continue;
    sendto(s, buf, n, 0, (struct sockaddr *)&from, fl);
  }
}

static int pace(int port, double rate, double sec, int size) {
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  int bufsize = 4 << 20;
  setsockopt(s, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof bufsize);
  fcntl(s, F_SETFL, O_NONBLOCK);
  struct sockaddr_in to = loopback(port);
  char out[65536], in[65536];
  memset(out, 'x', size);
  long total = (long)(rate * sec), sent = 0, answered = 0;
  double t0 = now_s();
  while (sent < total || now_s() < t0 + sec + 1.0) {
    double due = t0 + sent / rate;
    double t = now_s();
    if (sent < total && t >= due) {
      sendto(s, out, size, 0, (struct sockaddr *)&to, sizeof to);
      sent++;
      continue;
    }
    while (recv(s, in, sizeof in, 0) > 0) answered++;
    if (sent >= total && answered >= sent) break;
    double wait = sent < total ? due - t : 0.01;
    struct pollfd p = {s, POLLIN, 0};
    struct timespec ts = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
    if (wait > 0) ppoll(&p, 1, &ts, NULL);
  }
  printf("sent %ld answered %ld\n", sent, answered);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "serve") == 0) return serve(atoi(argv[2]));
  if (argc >= 6 && strcmp(argv[1], "pace") == 0) return pace(atoi(argv[2]), atof(argv[3]), atof(argv[4]), atoi(argv[5]));
  fprintf(stderr, "usage: udp-echo serve PORT | udp-echo pace PORT RATE SEC SIZE\n");
  return 2;
}
