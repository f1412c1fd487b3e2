// Native RTP/RTCP forwarding fast path of the relay engine (see ../native-forwarder.ts).
//
// Each forwarding thread owns an epoll set with the UDP sockets of the pairs assigned to it and
// relays datagrams in batches: recvmmsg() drains a ready socket, each datagram is checked,
// counted and (if accepted) queued, and one sendmmsg() sends the batch out of the other leg's
// socket. The control thread (JS) binds sockets, sets peers, reads statistics and releases pairs;
// every such call takes the owning thread's mutex, which the forwarding thread holds while it
// processes one epoll batch, so control calls never see a half-updated channel.
//
// Release: the control thread marks the pair dead, removes its sockets from the epoll set and
// closes them under the mutex; the memory is freed by the forwarding thread itself at the end of
// a batch, so an epoll event returned just before the release (carrying a pointer to the pair)
// finds the pair still allocated and marked dead.
//
// Only node_api.h is used. No C++ exception crosses into Node: every entry point catches.

#include <node_api.h>

#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

constexpr int KIND_RTP = 0;
constexpr int KIND_RTCP = 1;
constexpr int DROP_MALFORMED = 0;
constexpr int DROP_NO_PEER = 1;
constexpr int DROP_STRICT = 2;
constexpr int DROP_SEND = 3;
constexpr int BATCH = 32;
constexpr int MAX_DRAIN_ROUNDS = 4;
constexpr size_t BUF_SIZE = 65536;
constexpr size_t MAX_STREAMS = 64;
constexpr size_t MAX_EVENTS_QUEUED = 10000;
// RFC 3550 A.1
constexpr uint32_t MAX_DROPOUT = 3000;
constexpr uint32_t MAX_MISORDER = 100;
constexpr uint32_t RTP_SEQ_MOD = 0x10000;
// create() flags.
constexpr int FLAG_SHARED_PORTS = 1;  // SO_REUSEPORT, every packet to the oldest socket of a port
constexpr int FLAG_FREEBIND = 2;      // IP_FREEBIND: bind an address not (yet) on this host
#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51
#endif
#ifndef IPV6_FREEBIND
#define IPV6_FREEBIND 78
#endif

double monoMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}
double wallMs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

int staticClockRate(int pt) {
  switch (pt) {
    case 0: case 3: case 4: case 5: case 7: case 8: case 9: case 12: case 13: case 15: case 18: return 8000;
    case 6: return 16000;
    case 10: case 11: return 44100;
    case 16: return 11025;
    case 17: return 22050;
    case 14: case 25: case 26: case 28: case 31: case 32: case 33: case 34: return 90000;
    default: return 0;
  }
}

/** Receive statistics of one SSRC: RFC 3550 A.1 (without probation), A.3, A.8. */
struct Stream {
  uint32_t ssrc = 0;
  int clockRate = 8000;
  double packets = 0;
  double bytes = 0;
  uint32_t maxSeq = 0;
  double cycles = 0;
  uint32_t baseSeq = 0;
  uint32_t badSeq = RTP_SEQ_MOD + 1;
  double received = 0;
  uint32_t lastSeq = 0;
  uint32_t lastTimestamp = 0;
  double lastArrivalMs = 0;
  double transit = 0;
  double jitter = 0;

  void initSeq(uint32_t seq) {
    baseSeq = seq;
    maxSeq = seq;
    badSeq = RTP_SEQ_MOD + 1;
    cycles = 0;
  }

  void update(uint32_t seq, uint32_t ts, size_t len, double arrivalMs) {
    bytes += len;
    if (packets++ == 0) {
      initSeq(seq);
      received = 1;
      transit = arrivalMs * (clockRate / 1000.0) - ts;
    } else {
      bool count = true;
      uint32_t udelta = (seq - maxSeq) & 0xffff;
      if (udelta < MAX_DROPOUT) {
        if (seq < maxSeq) cycles += RTP_SEQ_MOD;
        maxSeq = seq;
      } else if (udelta <= RTP_SEQ_MOD - MAX_MISORDER) {
        if (seq == badSeq) {
          initSeq(seq);
          received = 0;
        } else {
          badSeq = (seq + 1) & 0xffff;
          count = false;
        }
      }
      if (count) received++;
      // A.8: J += (|D| - J) / 16, with the timestamp difference taken modulo 2^32.
      double t = arrivalMs * (clockRate / 1000.0) - ts;
      double d = t - transit;
      transit = t;
      if (d > 2147483648.0) d -= 4294967296.0;
      else if (d < -2147483648.0) d += 4294967296.0;
      if (d < 0) d = -d;
      jitter += (d - jitter) / 16;
    }
    lastSeq = seq;
    lastTimestamp = ts;
    lastArrivalMs = arrivalMs;
  }

  double lost() const {
    if (packets == 0) return 0;
    return cycles + maxSeq - baseSeq + 1 - received;
  }
};

struct Pair;

struct Channel {
  int fd = -1;
  Pair* pair = nullptr;
  int side = 0;
  int kind = KIND_RTP;
  int localPort = 0;
  Channel* other = nullptr;
  sockaddr_storage peer{};
  socklen_t peerLen = 0;  // 0: unknown
  sockaddr_storage sdp{};
  socklen_t sdpLen = 0;
  bool latch = true;
  bool strict = false;
  bool latched = false;
  int clockRate = 8000;
  double packets = 0, bytes = 0, forwarded = 0;
  double dropped[4] = {0, 0, 0, 0};
  double lastArrivalMs = 0;  // monotonic, 0 = none
  double rtcpMux = 0;
  std::vector<Stream> streams;
  size_t lastStream = 0;

  double errors() const { return dropped[0] + dropped[1] + dropped[2] + dropped[3]; }

  Stream& stream(uint32_t ssrc, int pt) {
    if (lastStream < streams.size() && streams[lastStream].ssrc == ssrc) return streams[lastStream];
    for (size_t i = 0; i < streams.size(); i++) {
      if (streams[i].ssrc == ssrc) {
        lastStream = i;
        return streams[i];
      }
    }
    // Bounded: a peer cycling SSRCs must not grow memory without limit.
    if (streams.size() >= MAX_STREAMS) streams.erase(streams.begin());
    Stream s;
    s.ssrc = ssrc;
    int r = staticClockRate(pt);
    s.clockRate = r ? r : clockRate;
    streams.push_back(s);
    lastStream = streams.size() - 1;
    return streams[lastStream];
  }
};

struct Pair {
  int id = 0;
  int thread = 0;
  bool dead = false;
  double createdMono = 0;
  Channel ch[4];  // a-rtp, a-rtcp, b-rtp, b-rtcp
};

struct Counters {
  double v[11] = {0};  // rtpPackets rtpBytes rtpErrors rtcpPackets rtcpBytes rtcpErrors forwarded dropped[4]
  void add(const Channel& c) {
    int o = c.kind == KIND_RTP ? 0 : 3;
    v[o] += c.packets;
    v[o + 1] += c.bytes;
    v[o + 2] += c.errors();
    v[6] += c.forwarded;
    for (int i = 0; i < 4; i++) v[7 + i] += c.dropped[i];
  }
};

struct LatchEvent {
  int id, side, kind, port;
  std::string address;
};

struct Engine;

struct Thread {
  Engine* engine = nullptr;
  int epfd = -1;
  int evfd = -1;
  std::mutex mu;
  std::vector<Pair*> graveyard;
  // Released pairs whose sockets this thread closes (see retirePairLater).
  std::vector<Pair*> closing;
  // Pairs whose sockets this thread opens and binds (see OpenLater).
  std::vector<Pair*> opening;
  std::thread th;
  std::atomic<bool> stop{false};
  // Batch buffers, used only by the forwarding thread.
  std::vector<uint8_t> bufs;
  mmsghdr rmsgs[BATCH];
  iovec riov[BATCH];
  sockaddr_storage raddr[BATCH];
  mmsghdr smsgs[BATCH];
  iovec siov[BATCH];
};

struct Engine {
  int family = AF_INET;
  sockaddr_storage bindAddr{};
  socklen_t bindLen = 0;
  int sockBuf = 0;
  int flags = 0;
  std::vector<Thread*> threads;
  std::unordered_map<int, Pair*> pairs;  // control thread only
  std::unordered_map<int, Pair*> openPending;  // control thread only: OpenLater not yet reported by Opened
  std::vector<std::pair<int, std::string>> opened;  // under evMu: OpenLater results (id, "" or "port:error")
  Counters retired;                        // control thread only
  std::mutex evMu;
  std::vector<LatchEvent> events;
  bool destroyed = false;
};

bool sameAddr(const sockaddr_storage& a, socklen_t alen, const sockaddr_storage& b, socklen_t blen) {
  if (alen == 0 || blen == 0 || a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET) {
    auto x = reinterpret_cast<const sockaddr_in*>(&a);
    auto y = reinterpret_cast<const sockaddr_in*>(&b);
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a.ss_family == AF_INET6) {
    auto x = reinterpret_cast<const sockaddr_in6*>(&a);
    auto y = reinterpret_cast<const sockaddr_in6*>(&b);
    return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
  }
  return false;
}

/** Parses an IP literal into an address usable with a socket of `family`; false if it cannot be. */
bool makeAddr(int family, const std::string& ip, int port, sockaddr_storage* out, socklen_t* len) {
  memset(out, 0, sizeof(*out));
  if (port < 0 || port > 65535) return false;
  if (family == AF_INET) {
    auto a = reinterpret_cast<sockaddr_in*>(out);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, ip.c_str(), &a->sin_addr) != 1) return false;
    *len = sizeof(sockaddr_in);
    return true;
  }
  auto a = reinterpret_cast<sockaddr_in6*>(out);
  a->sin6_family = AF_INET6;
  a->sin6_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET6, ip.c_str(), &a->sin6_addr) != 1) {
    in_addr v4;
    if (inet_pton(AF_INET, ip.c_str(), &v4) != 1) return false;
    // IPv4 peer on a dual-stack socket: v4-mapped address.
    a->sin6_addr.s6_addr[10] = 0xff;
    a->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&a->sin6_addr.s6_addr[12], &v4, 4);
  }
  *len = sizeof(sockaddr_in6);
  return true;
}

void addrToString(const sockaddr_storage& a, std::string* ip, int* port) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (a.ss_family == AF_INET) {
    auto x = reinterpret_cast<const sockaddr_in*>(&a);
    inet_ntop(AF_INET, &x->sin_addr, buf, sizeof(buf));
    *port = ntohs(x->sin_port);
  } else if (a.ss_family == AF_INET6) {
    auto x = reinterpret_cast<const sockaddr_in6*>(&a);
    inet_ntop(AF_INET6, &x->sin6_addr, buf, sizeof(buf));
    *port = ntohs(x->sin6_port);
  } else {
    *port = 0;
  }
  *ip = buf;
}

/**
 * Handles one received datagram on channel `c`; returns true when it is to be sent to
 * c->other's peer. RTP needs 12 octets and RTCP 8, both version 2 (RFC 3550 5.1, 6.4.1); on the
 * RTP port, second octet 192..223 is multiplexed RTCP (RFC 5761 4).
 */
bool acceptPacket(Engine* e, Channel* c, const uint8_t* p, size_t len, const sockaddr_storage& src, socklen_t srcLen, double now) {
  if (len < 8 || (p[0] & 0xc0) != 0x80) {
    c->dropped[DROP_MALFORMED]++;
    return false;
  }
  uint8_t b1 = p[1];
  bool rtcpType = b1 >= 192 && b1 <= 223;
  if (c->kind == KIND_RTP) {
    if (rtcpType) c->rtcpMux++;
    else if (len < 12) {
      c->dropped[DROP_MALFORMED]++;
      return false;
    }
  } else if (!rtcpType) {
    c->dropped[DROP_MALFORMED]++;
    return false;
  }
  if (c->latched) {
    if (c->strict && !sameAddr(src, srcLen, c->peer, c->peerLen)) {
      c->dropped[DROP_STRICT]++;
      return false;
    }
  } else if (c->latch) {
    // Symmetric RTP: the first packet's source is the peer from now on.
    memcpy(&c->peer, &src, sizeof(src));
    c->peerLen = srcLen;
    c->latched = true;
    LatchEvent ev;
    ev.id = c->pair->id;
    ev.side = c->side;
    ev.kind = c->kind;
    addrToString(src, &ev.address, &ev.port);
    std::lock_guard<std::mutex> g(e->evMu);
    if (e->events.size() < MAX_EVENTS_QUEUED) e->events.push_back(std::move(ev));
  } else if (c->strict && !sameAddr(src, srcLen, c->peer, c->peerLen)) {
    c->dropped[DROP_STRICT]++;
    return false;
  }
  c->packets++;
  c->bytes += len;
  c->lastArrivalMs = now;
  if (c->kind == KIND_RTP && !rtcpType) {
    uint32_t ssrc = (uint32_t(p[8]) << 24) | (uint32_t(p[9]) << 16) | (uint32_t(p[10]) << 8) | p[11];
    uint32_t seq = (uint32_t(p[2]) << 8) | p[3];
    uint32_t ts = (uint32_t(p[4]) << 24) | (uint32_t(p[5]) << 16) | (uint32_t(p[6]) << 8) | p[7];
    c->stream(ssrc, b1 & 0x7f).update(seq, ts, len, now);
  }
  if (c->other->peerLen == 0) {
    c->dropped[DROP_NO_PEER]++;
    return false;
  }
  return true;
}

/** Drains up to MAX_DRAIN_ROUNDS batches from one ready socket. */
void serveChannel(Thread* t, Channel* c, double now) {
  Engine* e = t->engine;
  for (int round = 0; round < MAX_DRAIN_ROUNDS; round++) {
    for (int i = 0; i < BATCH; i++) {
      t->riov[i].iov_base = t->bufs.data() + size_t(i) * BUF_SIZE;
      t->riov[i].iov_len = BUF_SIZE;
      memset(&t->rmsgs[i].msg_hdr, 0, sizeof(msghdr));
      t->rmsgs[i].msg_hdr.msg_name = &t->raddr[i];
      t->rmsgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
      t->rmsgs[i].msg_hdr.msg_iov = &t->riov[i];
      t->rmsgs[i].msg_hdr.msg_iovlen = 1;
      t->rmsgs[i].msg_len = 0;
    }
    int n = recvmmsg(c->fd, t->rmsgs, BATCH, MSG_DONTWAIT, nullptr);
    if (n <= 0) return;
    Channel* o = c->other;
    int k = 0;
    for (int i = 0; i < n; i++) {
      size_t len = t->rmsgs[i].msg_len;
      if (len > BUF_SIZE) len = BUF_SIZE;
      const uint8_t* p = static_cast<const uint8_t*>(t->riov[i].iov_base);
      if (!acceptPacket(e, c, p, len, t->raddr[i], t->rmsgs[i].msg_hdr.msg_namelen, now)) continue;
      t->siov[k].iov_base = t->riov[i].iov_base;
      t->siov[k].iov_len = len;
      memset(&t->smsgs[k].msg_hdr, 0, sizeof(msghdr));
      t->smsgs[k].msg_hdr.msg_name = &o->peer;
      t->smsgs[k].msg_hdr.msg_namelen = o->peerLen;
      t->smsgs[k].msg_hdr.msg_iov = &t->siov[k];
      t->smsgs[k].msg_hdr.msg_iovlen = 1;
      k++;
    }
    int sent = 0;
    while (sent < k) {
      int r = sendmmsg(o->fd, t->smsgs + sent, static_cast<unsigned>(k - sent), MSG_DONTWAIT);
      if (r > 0) {
        c->forwarded += r;
        sent += r;
      } else {
        if (r < 0 && errno == EINTR) continue;
        // The first unsent datagram failed (buffer full, unreachable): count it, go on.
        c->dropped[DROP_SEND]++;
        sent++;
      }
    }
    if (n < BATCH) return;
  }
}

void freeGraveyard(Thread* t) {
  for (Pair* p : t->graveyard) delete p;
  t->graveyard.clear();
}

/**
 * Closes the sockets of pairs released with retirePairLater, which the caller took out of
 * t->closing under t->mu; called without it. Closing sockets is slow when a call's ports are
 * released (measured: the forwarding thread held the lock 4 ms closing a backlog while the control
 * thread waited in its next peer() call, the p99 of an ng answer), and nothing else can reach
 * these pairs: they are dead, gone from the engine's map, and once their descriptors are out of
 * the epoll set no later event names them. Their memory goes to the graveyard afterwards.
 */
void closeRetired(Thread* t, std::vector<Pair*>& pairs) {
  for (Pair* p : pairs) {
    for (auto& c : p->ch) {
      if (c.fd >= 0) {
        epoll_ctl(t->epfd, EPOLL_CTL_DEL, c.fd, nullptr);
        close(c.fd);
        c.fd = -1;
      }
    }
  }
}

/** closeRetired for the whole of t->closing, under t->mu (shutdown). */
void drainClosing(Thread* t) {
  closeRetired(t, t->closing);
  for (Pair* p : t->closing) t->graveyard.push_back(p);
  t->closing.clear();
}

bool shareSocket(Engine* e, int fd);
bool steerToOldest(Engine* e, int fd);

/**
 * Opens and binds a pair's four sockets on `ports`; "" with `fds` set, or "port:error" with
 * nothing left open. Any thread.
 */
std::string bindSockets(Engine* e, const int ports[4], int fds[4]) {
  for (int i = 0; i < 4; i++) fds[i] = -1;
  for (int i = 0; i < 4; i++) {
    int fd = socket(e->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    std::string err;
    if (fd < 0) err = strerror(errno);
    else {
      if (e->sockBuf > 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &e->sockBuf, sizeof(int));
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &e->sockBuf, sizeof(int));
      }
      if (!shareSocket(e, fd)) err = std::string("socket options: ") + strerror(errno);
      sockaddr_storage a = e->bindAddr;
      if (e->family == AF_INET) reinterpret_cast<sockaddr_in*>(&a)->sin_port = htons(static_cast<uint16_t>(ports[i]));
      else reinterpret_cast<sockaddr_in6*>(&a)->sin6_port = htons(static_cast<uint16_t>(ports[i]));
      if (err.empty() && bind(fd, reinterpret_cast<sockaddr*>(&a), e->bindLen) != 0) err = strerror(errno);
      if (err.empty() && !steerToOldest(e, fd)) err = std::string("SO_ATTACH_REUSEPORT_CBPF: ") + strerror(errno);
    }
    if (!err.empty()) {
      if (fd >= 0) close(fd);
      for (int j = 0; j < i; j++) {
        close(fds[j]);
        fds[j] = -1;
      }
      return std::to_string(ports[i]) + ":bind " + std::to_string(ports[i]) + ": " + err;
    }
    fds[i] = fd;
  }
  return "";
}

/**
 * OpenLater's work, on the forwarding thread and without its lock (control calls on this thread's
 * pairs do not wait for the system calls): the pairs are not visible to the control thread until
 * Opened reports them, and their first events come from this thread's next epoll_wait.
 */
void serveOpening(Thread* t) {
  std::vector<Pair*> jobs;
  {
    std::lock_guard<std::mutex> g(t->mu);
    if (t->opening.empty()) return;
    jobs.swap(t->opening);
  }
  Engine* e = t->engine;
  for (Pair* p : jobs) {
    int ports[4], fds[4];
    for (int i = 0; i < 4; i++) ports[i] = p->ch[i].localPort;
    std::string err = bindSockets(e, ports, fds);
    if (err.empty()) {
      p->createdMono = monoMs();
      for (int i = 0; i < 4; i++) p->ch[i].fd = fds[i];
      for (int i = 0; i < 4 && err.empty(); i++) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = &p->ch[i];
        if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, fds[i], &ev) != 0) err = std::string("0:epoll_ctl: ") + strerror(errno);
      }
      if (!err.empty()) {
        for (auto& c : p->ch) {
          epoll_ctl(t->epfd, EPOLL_CTL_DEL, c.fd, nullptr);
          close(c.fd);
          c.fd = -1;
        }
      }
    }
    std::lock_guard<std::mutex> g(e->evMu);
    e->opened.emplace_back(p->id, err);
  }
}

void runThread(Thread* t) {
  epoll_event evs[256];
  while (!t->stop.load(std::memory_order_relaxed)) {
    int n = epoll_wait(t->epfd, evs, 256, 500);
    serveOpening(t);
    std::vector<Pair*> closing;
    {
      std::lock_guard<std::mutex> g(t->mu);
      if (n > 0) {
        double now = monoMs();
        for (int i = 0; i < n; i++) {
          void* ptr = evs[i].data.ptr;
          if (ptr == nullptr) {
            uint64_t v;
            ssize_t r = read(t->evfd, &v, sizeof(v));
            (void)r;
            continue;
          }
          Channel* c = static_cast<Channel*>(ptr);
          if (c->pair->dead) continue;
          serveChannel(t, c, now);
        }
      }
      closing.swap(t->closing);
    }
    // The batch's events are handled: the sockets of released pairs are closed without the lock.
    closeRetired(t, closing);
    std::lock_guard<std::mutex> g(t->mu);
    for (Pair* p : closing) t->graveyard.push_back(p);
    freeGraveyard(t);
  }
  std::lock_guard<std::mutex> g(t->mu);
  drainClosing(t);
  freeGraveyard(t);
}

/**
 * Options that let a hot standby bind a call's ports ahead of a takeover (create() flags).
 *
 * FLAG_SHARED_PORTS: SO_REUSEPORT, so the standby may bind the port the holder has on the same
 * address (one host), plus a classic BPF steering program that returns 0, so the kernel gives
 * every datagram to the socket at index 0 of the port's group, which is the one bound first (the
 * holder's; without the program the kernel would spread the peers over both sockets by a hash of
 * their addresses). When the holder's socket closes (the process died, or it let the call go) the
 * kernel moves the last socket of the group into its place, so the standby's receives from the
 * next packet on. The program is attached after bind (a socket that has a group of its own before
 * bind cannot join another); every socket attaches the same one, so the group's never changes.
 * FLAG_FREEBIND: IP_FREEBIND, the same on two hosts: bind the VIP before it arrives here.
 * Returns false (errno set) when an option is refused.
 */
bool shareSocket(Engine* e, int fd) {
  int one = 1;
  if ((e->flags & FLAG_SHARED_PORTS) && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) return false;
  if (e->flags & FLAG_FREEBIND) {
    if (e->family == AF_INET6) {
      if (setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof(one)) != 0) return false;
    } else if (setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one)) != 0) {
      return false;
    }
  }
  return true;
}

/** After bind: the steering program of a shared port (see shareSocket). */
bool steerToOldest(Engine* e, int fd) {
  if (!(e->flags & FLAG_SHARED_PORTS)) return true;
  sock_filter code[] = {{BPF_RET | BPF_K, 0, 0, 0}};
  sock_fprog prog = {1, code};
  return setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof(prog)) == 0;
}

// ---- N-API helpers ---------------------------------------------------------------------------

napi_value undef(napi_env env) {
  napi_value v;
  napi_get_undefined(env, &v);
  return v;
}
napi_value num(napi_env env, double d) {
  napi_value v;
  napi_create_double(env, d, &v);
  return v;
}
napi_value str(napi_env env, const std::string& s) {
  napi_value v;
  napi_create_string_utf8(env, s.c_str(), s.size(), &v);
  return v;
}
bool getNum(napi_env env, napi_value v, double* out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return false;
  return napi_get_value_double(env, v, out) == napi_ok && std::isfinite(*out);
}
bool getStr(napi_env env, napi_value v, std::string* out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string) return false;
  char buf[256];
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, buf, sizeof(buf), &len) != napi_ok) return false;
  out->assign(buf, len);
  return true;
}
bool getBool(napi_env env, napi_value v) {
  bool b = false;
  napi_get_value_bool(env, v, &b);
  return b;
}

Engine* getEngine(napi_env env, napi_value v) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external) return nullptr;
  void* p = nullptr;
  if (napi_get_value_external(env, v, &p) != napi_ok) return nullptr;
  Engine* e = static_cast<Engine*>(p);
  return e && !e->destroyed ? e : nullptr;
}

void wake(Thread* t) {
  uint64_t one = 1;
  ssize_t r = write(t->evfd, &one, sizeof(one));
  (void)r;
}

/**
 * Closes a pair's sockets and hands its memory to the forwarding thread, which frees it at the end
 * of its current batch: the caller must not touch `p` after this returns. Caller holds no lock.
 */
void retirePair(Engine* e, Pair* p) {
  Thread* t = e->threads[p->thread];
  std::lock_guard<std::mutex> g(t->mu);
  p->dead = true;
  for (auto& c : p->ch) {
    if (c.fd >= 0) {
      epoll_ctl(t->epfd, EPOLL_CTL_DEL, c.fd, nullptr);
      close(c.fd);
      c.fd = -1;
    }
    e->retired.add(c);
  }
  t->graveyard.push_back(p);
}

/**
 * Like retirePair, but the sockets are closed by the forwarding thread at its next wake-up (at
 * most its 500 ms epoll timeout; at once under traffic): the control thread makes no system call.
 * For ports that are not bound again soon (quarantined). Caller holds no lock.
 */
void retirePairLater(Engine* e, Pair* p) {
  Thread* t = e->threads[p->thread];
  std::lock_guard<std::mutex> g(t->mu);
  p->dead = true;
  for (auto& c : p->ch) e->retired.add(c);
  t->closing.push_back(p);
}

void destroyEngine(Engine* e) {
  if (e->destroyed) return;
  std::vector<Pair*> all;
  for (auto& kv : e->pairs) all.push_back(kv.second);
  for (Pair* p : all) retirePair(e, p);
  e->pairs.clear();
  for (Thread* t : e->threads) {
    t->stop.store(true);
    wake(t);
  }
  for (Thread* t : e->threads) {
    if (t->th.joinable()) t->th.join();
    close(t->epfd);
    close(t->evfd);
    t->opening.clear();
    delete t;
  }
  e->threads.clear();
  // Opens not reported yet: bound or not, their sockets are closed here (the threads are gone).
  for (auto& kv : e->openPending) {
    for (auto& c : kv.second->ch)
      if (c.fd >= 0) close(c.fd);
    delete kv.second;
  }
  e->openPending.clear();
  e->destroyed = true;
}

void finalizeEngine(napi_env, void* data, void*) {
  Engine* e = static_cast<Engine*>(data);
  try {
    destroyEngine(e);
  } catch (...) {
  }
  delete e;
}

#define ARGS(n)                                                         \
  size_t argc = n;                                                      \
  napi_value argv[n];                                                   \
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < n) \
    return undef(env);

// create(threads, bindAddress, socketBufferBytes, flags) -> external | string (error)
napi_value Create(napi_env env, napi_callback_info info) {
  try {
    ARGS(4)
    double threads = 0, sockBuf = 0, flags = 0;
    std::string bind;
    if (!getNum(env, argv[0], &threads) || !getStr(env, argv[1], &bind) || !getNum(env, argv[2], &sockBuf) || !getNum(env, argv[3], &flags))
      return str(env, "bad arguments");
    if (threads < 1 || threads > 64) return str(env, "bad thread count");
    Engine* e = new Engine();
    e->family = bind.find(':') != std::string::npos ? AF_INET6 : AF_INET;
    if (!makeAddr(e->family, bind, 0, &e->bindAddr, &e->bindLen)) {
      delete e;
      return str(env, "bad bind address");
    }
    e->sockBuf = static_cast<int>(sockBuf);
    e->flags = static_cast<int>(flags);
    for (int i = 0; i < static_cast<int>(threads); i++) {
      Thread* t = new Thread();
      t->engine = e;
      t->bufs.resize(size_t(BATCH) * BUF_SIZE);
      t->epfd = epoll_create1(EPOLL_CLOEXEC);
      t->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
      if (t->epfd < 0 || t->evfd < 0) {
        if (t->epfd >= 0) close(t->epfd);
        if (t->evfd >= 0) close(t->evfd);
        delete t;
        destroyEngine(e);
        delete e;
        return str(env, "epoll/eventfd failed");
      }
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = nullptr;
      epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->evfd, &ev);
      e->threads.push_back(t);
      t->th = std::thread(runThread, t);
    }
    napi_value ext;
    if (napi_create_external(env, e, finalizeEngine, nullptr, &ext) != napi_ok) {
      destroyEngine(e);
      delete e;
      return str(env, "napi_create_external failed");
    }
    return ext;
  } catch (...) {
    return str(env, "native forwarder: create failed");
  }
}

// The arguments open and openLater share: (h, thread, id, rtpA, rtcpA, rtpB, rtcpB). Empty when
// they are good (the id is checked by each caller), else the error to return.
static std::string pairArgs(napi_env env, napi_value* argv, Engine* e, int* thread, int* id, int ports[4]) {
  double th = 0, key = 0, pt[4];
  if (!getNum(env, argv[1], &th) || !getNum(env, argv[2], &key)) return "0:bad arguments";
  for (int i = 0; i < 4; i++)
    if (!getNum(env, argv[3 + i], &pt[i]) || pt[i] < 1 || pt[i] > 65535) return "0:bad port";
  if (th < 0 || th >= e->threads.size()) return "0:bad thread or id";
  *thread = static_cast<int>(th);
  *id = static_cast<int>(key);
  for (int i = 0; i < 4; i++) ports[i] = static_cast<int>(pt[i]);
  return "";
}

// A pair's record: RTP and RTCP of side A, then of side B, each channel linked to its opposite.
// fds: the bound sockets, or null when its forwarding thread opens them later.
static Pair* newPair(int id, int thread, const int ports[4], const int* fds) {
  Pair* p = new Pair();
  p->id = id;
  p->thread = thread;
  p->createdMono = monoMs();
  for (int i = 0; i < 4; i++) {
    Channel& c = p->ch[i];
    c.fd = fds ? fds[i] : -1;
    c.pair = p;
    c.side = i < 2 ? 0 : 1;
    c.kind = (i & 1) ? KIND_RTCP : KIND_RTP;
    c.localPort = ports[i];
    c.other = &p->ch[i ^ 2];
  }
  return p;
}

// open(h, thread, id, rtpA, rtcpA, rtpB, rtcpB) -> undefined | "port:error"
napi_value Open(napi_env env, napi_callback_info info) {
  try {
    ARGS(7)
    Engine* e = getEngine(env, argv[0]);
    if (!e) return str(env, "0:engine stopped");
    int thread = 0, id = 0, ports[4], fds[4];
    std::string aerr = pairArgs(env, argv, e, &thread, &id, ports);
    if (!aerr.empty()) return str(env, aerr);
    if (e->pairs.count(id)) return str(env, "0:bad thread or id");
    std::string berr = bindSockets(e, ports, fds);
    if (!berr.empty()) return str(env, berr);
    Pair* p = newPair(id, thread, ports, fds);
    Thread* t = e->threads[p->thread];
    std::string err;
    {
      std::lock_guard<std::mutex> g(t->mu);
      for (int i = 0; i < 4 && err.empty(); i++) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = &p->ch[i];
        if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, p->ch[i].fd, &ev) != 0) err = std::string("epoll_ctl: ") + strerror(errno);
      }
      if (!err.empty()) {
        // An event for the fds already added may be on its way to the forwarding thread: close
        // them and let that thread free p, as for a release.
        for (auto& c : p->ch) {
          epoll_ctl(t->epfd, EPOLL_CTL_DEL, c.fd, nullptr);
          close(c.fd);
          c.fd = -1;
        }
        p->dead = true;
        t->graveyard.push_back(p);
      }
    }
    if (!err.empty()) return str(env, "0:" + err);
    e->pairs[p->id] = p;
    return undef(env);
  } catch (...) {
    return str(env, "0:native forwarder: open failed");
  }
}

// openLater(h, thread, id, rtpA, rtcpA, rtpB, rtcpB) -> undefined | "0:error" (bad arguments).
// The pair's sockets are opened and bound by its forwarding thread; the result comes from opened().
napi_value OpenLater(napi_env env, napi_callback_info info) {
  try {
    ARGS(7)
    Engine* e = getEngine(env, argv[0]);
    if (!e) return str(env, "0:engine stopped");
    int thread = 0, key = 0, ports[4];
    std::string aerr = pairArgs(env, argv, e, &thread, &key, ports);
    if (!aerr.empty()) return str(env, aerr);
    if (e->pairs.count(key) || e->openPending.count(key)) return str(env, "0:bad thread or id");
    Pair* p = newPair(key, thread, ports, nullptr);
    e->openPending[key] = p;
    Thread* t = e->threads[p->thread];
    {
      std::lock_guard<std::mutex> g(t->mu);
      t->opening.push_back(p);
    }
    wake(t);
    return undef(env);
  } catch (...) {
    return str(env, "0:native forwarder: open failed");
  }
}

// opened(h) -> flat [id, "" | "port:error", ...]: openLater results since the last call. A bound
// pair is usable from here on (peer, stats, close); a failed one holds nothing.
napi_value Opened(napi_env env, napi_callback_info info) {
  try {
    ARGS(1)
    Engine* e = getEngine(env, argv[0]);
    napi_value arr;
    napi_create_array(env, &arr);
    if (!e) return arr;
    std::vector<std::pair<int, std::string>> done;
    {
      std::lock_guard<std::mutex> g(e->evMu);
      done.swap(e->opened);
    }
    uint32_t k = 0;
    for (auto& r : done) {
      auto it = e->openPending.find(r.first);
      if (it == e->openPending.end()) continue;
      Pair* p = it->second;
      e->openPending.erase(it);
      if (r.second.empty()) e->pairs[p->id] = p;
      else delete p;  // its sockets are closed and out of the epoll set; no thread refers to it
      napi_set_element(env, arr, k++, num(env, r.first));
      napi_set_element(env, arr, k++, str(env, r.second));
    }
    return arr;
  } catch (...) {
    return undef(env);
  }
}

// `hasLatched`: the peer was latched already (by the node that ran the pair before a takeover):
// send there at once and accept it as latched, as if its first packet had come here.
void setChannelPeer(Engine* e, Channel& c, bool has, const std::string& ip, int port, bool latch, bool strict, int clockRate,
                    bool hasLatched, const std::string& lip, int lport) {
  bool wasLatch = c.latch;
  c.latch = latch;
  c.strict = strict;
  c.clockRate = clockRate;
  if (!has) return;
  sockaddr_storage a;
  socklen_t alen = 0;
  if (!makeAddr(e->family, ip, port, &a, &alen)) alen = 0;
  // A new SDP address restarts latching (re-INVITE, media moved).
  if (!c.latched || !sameAddr(a, alen, c.sdp, c.sdpLen) || wasLatch != latch) {
    c.sdp = a;
    c.sdpLen = alen;
    c.peer = a;
    c.peerLen = port == 0 ? 0 : alen;
    c.latched = false;
  }
  if (hasLatched && latch && lport != 0) {
    sockaddr_storage la;
    socklen_t llen = 0;
    if (makeAddr(e->family, lip, lport, &la, &llen)) {
      c.peer = la;
      c.peerLen = llen;
      c.latched = true;
    }
  }
}

// peer(h, id, side, rtpAddr|null, rtpPort, rtcpAddr|null, rtcpPort, latch, strict, clockRate,
//      latchedRtpAddr|null, latchedRtpPort, latchedRtcpAddr|null, latchedRtcpPort)
napi_value Peer(napi_env env, napi_callback_info info) {
  try {
    ARGS(14)
    Engine* e = getEngine(env, argv[0]);
    if (!e) return undef(env);
    double id = 0, side = 0, rtpPort = 0, rtcpPort = 0, clockRate = 8000;
    if (!getNum(env, argv[1], &id) || !getNum(env, argv[2], &side)) return undef(env);
    auto it = e->pairs.find(static_cast<int>(id));
    if (it == e->pairs.end()) return undef(env);
    std::string rtpAddr, rtcpAddr;
    bool hasRtp = getStr(env, argv[3], &rtpAddr) && getNum(env, argv[4], &rtpPort);
    bool hasRtcp = getStr(env, argv[5], &rtcpAddr) && getNum(env, argv[6], &rtcpPort);
    bool latch = getBool(env, argv[7]);
    bool strict = getBool(env, argv[8]);
    if (!getNum(env, argv[9], &clockRate) || clockRate < 1 || clockRate > 1e7) clockRate = 8000;
    std::string lRtpAddr, lRtcpAddr;
    double lRtpPort = 0, lRtcpPort = 0;
    bool hasLRtp = getStr(env, argv[10], &lRtpAddr) && getNum(env, argv[11], &lRtpPort);
    bool hasLRtcp = getStr(env, argv[12], &lRtcpAddr) && getNum(env, argv[13], &lRtcpPort);
    Pair* p = it->second;
    Thread* t = e->threads[p->thread];
    std::lock_guard<std::mutex> g(t->mu);
    int base = side == 0 ? 0 : 2;
    setChannelPeer(e, p->ch[base], hasRtp, rtpAddr, static_cast<int>(rtpPort), latch, strict, static_cast<int>(clockRate), hasLRtp, lRtpAddr,
                   static_cast<int>(lRtpPort));
    setChannelPeer(e, p->ch[base + 1], hasRtcp, rtcpAddr, static_cast<int>(rtcpPort), latch, strict, static_cast<int>(clockRate), hasLRtcp,
                   lRtcpAddr, static_cast<int>(lRtcpPort));
    return undef(env);
  } catch (...) {
    return undef(env);
  }
}

// close(h, id, later) -> boolean. `later`: the forwarding thread closes the sockets (retirePairLater).
napi_value Close(napi_env env, napi_callback_info info) {
  try {
    size_t argc = 3;
    napi_value argv[3];
    if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 2) return undef(env);
    Engine* e = getEngine(env, argv[0]);
    double id = 0;
    napi_value res;
    if (!e || !getNum(env, argv[1], &id)) {
      napi_get_boolean(env, false, &res);
      return res;
    }
    bool later = argc >= 3 && getBool(env, argv[2]);
    auto it = e->pairs.find(static_cast<int>(id));
    bool found = it != e->pairs.end();
    if (found) {
      Pair* p = it->second;
      Thread* t = e->threads[p->thread];
      e->pairs.erase(it);
      // After this the forwarding thread may free p at any time: p is not touched again.
      if (later) {
        retirePairLater(e, p);
      } else {
        retirePair(e, p);
        wake(t);
      }
    }
    napi_get_boolean(env, found, &res);
    return res;
  } catch (...) {
    return undef(env);
  }
}

// stats(h, id) -> [numbers[], addresses[]] | undefined
// numbers: per channel (a-rtp, a-rtcp, b-rtp, b-rtcp) 8 values: packets bytes errors forwarded
// lastWallMs peerPort(0 = none) latched localPort; then per leg (a, b): stream count, and per
// stream 10 values: ssrc packets bytes lost extendedHighestSeq lastSeq lastTimestamp jitter
// clockRate lastWallMs. addresses: the peer address of each channel ('' when none).
napi_value Stats(napi_env env, napi_callback_info info) {
  try {
    ARGS(2)
    Engine* e = getEngine(env, argv[0]);
    double id = 0;
    if (!e || !getNum(env, argv[1], &id)) return undef(env);
    auto it = e->pairs.find(static_cast<int>(id));
    if (it == e->pairs.end()) return undef(env);
    Pair* p = it->second;
    std::vector<double> v;
    std::string addrs[4];
    double offset = wallMs() - monoMs();
    {
      std::lock_guard<std::mutex> g(e->threads[p->thread]->mu);
      for (int i = 0; i < 4; i++) {
        const Channel& c = p->ch[i];
        int port = 0;
        if (c.peerLen) addrToString(c.peer, &addrs[i], &port);
        v.insert(v.end(), {c.packets, c.bytes, c.errors(), c.forwarded, c.lastArrivalMs == 0 ? 0 : std::round(c.lastArrivalMs + offset),
                           double(port), c.latched ? 1.0 : 0.0, double(c.localPort)});
      }
      for (int leg = 0; leg < 2; leg++) {
        const Channel& c = p->ch[leg * 2];
        v.push_back(double(c.streams.size()));
        for (const Stream& s : c.streams) {
          v.insert(v.end(), {double(s.ssrc), s.packets, s.bytes, s.lost(), s.cycles + s.maxSeq, double(s.lastSeq), double(s.lastTimestamp),
                             s.jitter, double(s.clockRate), std::round(s.lastArrivalMs + offset)});
        }
      }
    }
    napi_value nums, as, out;
    napi_create_array_with_length(env, v.size(), &nums);
    for (size_t i = 0; i < v.size(); i++) napi_set_element(env, nums, static_cast<uint32_t>(i), num(env, v[i]));
    napi_create_array_with_length(env, 4, &as);
    for (uint32_t i = 0; i < 4; i++) napi_set_element(env, as, i, str(env, addrs[i]));
    napi_create_array_with_length(env, 2, &out);
    napi_set_element(env, out, 0, nums);
    napi_set_element(env, out, 1, as);
    return out;
  } catch (...) {
    return undef(env);
  }
}

// idle(h, idleMs) -> ids of pairs with no accepted packet for idleMs (never used: since creation)
napi_value Idle(napi_env env, napi_callback_info info) {
  try {
    ARGS(2)
    Engine* e = getEngine(env, argv[0]);
    double idleMs = 0;
    napi_value arr;
    napi_create_array(env, &arr);
    if (!e || !getNum(env, argv[1], &idleMs)) return arr;
    double cutoff = monoMs() - idleMs;
    uint32_t k = 0;
    for (auto& kv : e->pairs) {
      Pair* p = kv.second;
      double last = p->createdMono;
      {
        std::lock_guard<std::mutex> g(e->threads[p->thread]->mu);
        for (auto& c : p->ch)
          if (c.lastArrivalMs > last) last = c.lastArrivalMs;
      }
      if (last <= cutoff) napi_set_element(env, arr, k++, num(env, p->id));
    }
    return arr;
  } catch (...) {
    return undef(env);
  }
}

// totals(h) -> [rtpPackets rtpBytes rtpErrors rtcpPackets rtcpBytes rtcpErrors forwarded dropped x4]
napi_value Totals(napi_env env, napi_callback_info info) {
  try {
    ARGS(1)
    Engine* e = getEngine(env, argv[0]);
    if (!e) return undef(env);
    Counters sum = e->retired;
    for (auto& kv : e->pairs) {
      Pair* p = kv.second;
      std::lock_guard<std::mutex> g(e->threads[p->thread]->mu);
      for (auto& c : p->ch) sum.add(c);
    }
    napi_value arr;
    napi_create_array_with_length(env, 11, &arr);
    for (uint32_t i = 0; i < 11; i++) napi_set_element(env, arr, i, num(env, sum.v[i]));
    return arr;
  } catch (...) {
    return undef(env);
  }
}

// events(h) -> flat [id, side, kind, address, port, ...] of latching since the last call
napi_value Events(napi_env env, napi_callback_info info) {
  try {
    ARGS(1)
    Engine* e = getEngine(env, argv[0]);
    napi_value arr;
    napi_create_array(env, &arr);
    if (!e) return arr;
    std::vector<LatchEvent> evs;
    {
      std::lock_guard<std::mutex> g(e->evMu);
      evs.swap(e->events);
    }
    uint32_t k = 0;
    for (auto& ev : evs) {
      napi_set_element(env, arr, k++, num(env, ev.id));
      napi_set_element(env, arr, k++, num(env, ev.side));
      napi_set_element(env, arr, k++, num(env, ev.kind));
      napi_set_element(env, arr, k++, str(env, ev.address));
      napi_set_element(env, arr, k++, num(env, ev.port));
    }
    return arr;
  } catch (...) {
    return undef(env);
  }
}

// destroy(h): closes every socket and joins the threads. The handle is unusable afterwards.
napi_value Destroy(napi_env env, napi_callback_info info) {
  try {
    ARGS(1)
    Engine* e = getEngine(env, argv[0]);
    if (e) destroyEngine(e);
    return undef(env);
  } catch (...) {
    return undef(env);
  }
}

napi_value Init(napi_env env, napi_value exports) {
  struct {
    const char* name;
    napi_callback cb;
  } fns[] = {{"create", Create}, {"open", Open},       {"openLater", OpenLater}, {"opened", Opened}, {"peer", Peer},
             {"close", Close},   {"stats", Stats},     {"idle", Idle},           {"totals", Totals}, {"events", Events},
             {"destroy", Destroy}};
  for (auto& f : fns) {
    napi_value fn;
    if (napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.cb, nullptr, &fn) == napi_ok) napi_set_named_property(env, exports, f.name, fn);
  }
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
