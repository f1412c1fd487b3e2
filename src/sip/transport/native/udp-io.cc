// Batched UDP receive and direct send for the SIP transport's IPv4 sockets (../native-udp.ts).
//
// node:dgram enters JavaScript once per datagram (a callback scope with its microtask and
// nextTick checkpoint, a 64 kB allocation shrunk to the datagram, an rinfo object) and sends
// through a request object and a completion callback. Here the socket, bound by dgram, is
// watched on Node's own event loop (a uv_poll on a duplicate of its descriptor, dgram's reading
// stopped); each wake-up drains it with recvmmsg() and enters JavaScript once per batch of up to
// 32 datagrams, which JavaScript copies out of a shared area before the next batch. A send is one
// sendto() on the same socket, its result returned at once; what JavaScript sends while it handles
// a batch it may instead gather in a send area and hand over at the batch's end, sent with one
// sendmmsg().
//
// Only node_api.h and uv.h are used. No C++ exception crosses into Node.

#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

constexpr int kBatch = 32;
constexpr int kSlot = 65536;
// Per datagram in the meta area: offset, length (-1: truncated), port, IPv4 address (host order).
constexpr int kMeta = 4;

struct Receiver {
  napi_env env = nullptr;
  int fd = -1;
  uv_poll_t poll;
  napi_ref callback = nullptr;
  napi_ref data_ref = nullptr;
  napi_ref meta_ref = nullptr;
  napi_async_context actx = nullptr;
  uint8_t* data = nullptr;
  int32_t* meta = nullptr;
  bool stopped = false;
  mmsghdr msgs[kBatch];
  iovec iov[kBatch];
  sockaddr_in addrs[kBatch];
};

void OnClosed(uv_handle_t* h) {
  Receiver* r = static_cast<Receiver*>(h->data);
  if (r->fd >= 0) close(r->fd);
  napi_env env = r->env;
  if (r->callback) napi_delete_reference(env, r->callback);
  if (r->data_ref) napi_delete_reference(env, r->data_ref);
  if (r->meta_ref) napi_delete_reference(env, r->meta_ref);
  if (r->actx) napi_async_destroy(env, r->actx);
  delete r;
}

void OnReadable(uv_poll_t* h, int status, int events) {
  Receiver* r = static_cast<Receiver*>(h->data);
  if (status < 0 || r->stopped) return;
  napi_env env = r->env;
  // Bounded: other sockets and timers get their turn under a flood.
  for (int round = 0; round < 8 && !r->stopped; round++) {
    for (int i = 0; i < kBatch; i++) {
      r->msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_in);
      r->msgs[i].msg_hdr.msg_flags = 0;
    }
    int n = recvmmsg(r->fd, r->msgs, kBatch, MSG_DONTWAIT, nullptr);
    if (n <= 0) break;
    for (int i = 0; i < n; i++) {
      int32_t* m = r->meta + i * kMeta;
      m[0] = i * kSlot;
      m[1] = (r->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? -1 : static_cast<int32_t>(r->msgs[i].msg_len);
      m[2] = ntohs(r->addrs[i].sin_port);
      m[3] = static_cast<int32_t>(ntohl(r->addrs[i].sin_addr.s_addr));
    }
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) return;
    napi_value cb, recv, count, result;
    if (napi_get_reference_value(env, r->callback, &cb) == napi_ok && napi_get_global(env, &recv) == napi_ok &&  // make_callback wants an object as receiver
        
        napi_create_int32(env, n, &count) == napi_ok) {
      if (napi_make_callback(env, r->actx, recv, cb, 1, &count, &result) != napi_ok) {
        bool pending = false;
        napi_is_exception_pending(env, &pending);
        if (pending) {
          napi_value ex;
          napi_get_and_clear_last_exception(env, &ex);
        }
      }
    }
    napi_close_handle_scope(env, scope);
    if (n < kBatch) break;
  }
}

// open(fd, data: ArrayBuffer(kBatch * kSlot), meta: Int32Array(kBatch * kMeta), onBatch(count)) -> handle | error string
napi_value Open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_value out;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 4) {
    napi_create_string_utf8(env, "open: bad arguments", NAPI_AUTO_LENGTH, &out);
    return out;
  }
  int32_t fd;
  void* data;
  size_t data_len;
  napi_typedarray_type type;
  size_t meta_len;
  void* meta;
  napi_value meta_buf;
  size_t meta_off;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_arraybuffer_info(env, argv[1], &data, &data_len) != napi_ok ||
      data_len < static_cast<size_t>(kBatch) * kSlot ||
      napi_get_typedarray_info(env, argv[2], &type, &meta_len, &meta, &meta_buf, &meta_off) != napi_ok || type != napi_int32_array ||
      meta_len < static_cast<size_t>(kBatch) * kMeta) {
    napi_create_string_utf8(env, "open: bad arguments", NAPI_AUTO_LENGTH, &out);
    return out;
  }
  int dup_fd = dup(fd);
  if (dup_fd < 0) {
    napi_create_string_utf8(env, strerror(errno), NAPI_AUTO_LENGTH, &out);
    return out;
  }
  Receiver* r = new Receiver();
  r->env = env;
  r->fd = dup_fd;
  r->data = static_cast<uint8_t*>(data);
  r->meta = static_cast<int32_t*>(meta);
  for (int i = 0; i < kBatch; i++) {
    r->iov[i].iov_base = r->data + i * kSlot;
    r->iov[i].iov_len = kSlot;
    memset(&r->msgs[i], 0, sizeof(mmsghdr));
    r->msgs[i].msg_hdr.msg_iov = &r->iov[i];
    r->msgs[i].msg_hdr.msg_iovlen = 1;
    r->msgs[i].msg_hdr.msg_name = &r->addrs[i];
  }
  napi_value name;
  napi_create_string_utf8(env, "tandem.sip.udp", NAPI_AUTO_LENGTH, &name);
  uv_loop_t* loop = nullptr;
  if (napi_create_reference(env, argv[3], 1, &r->callback) != napi_ok || napi_create_reference(env, argv[1], 1, &r->data_ref) != napi_ok ||
      napi_create_reference(env, argv[2], 1, &r->meta_ref) != napi_ok || napi_async_init(env, nullptr, name, &r->actx) != napi_ok ||
      napi_get_uv_event_loop(env, &loop) != napi_ok || uv_poll_init(loop, &r->poll, dup_fd) != 0) {
    // The poll handle was never initialised: OnClosed's clean-up runs here directly.
    r->poll.data = r;
    OnClosed(reinterpret_cast<uv_handle_t*>(&r->poll));
    napi_create_string_utf8(env, "open: cannot watch the socket", NAPI_AUTO_LENGTH, &out);
    return out;
  }
  r->poll.data = r;
  if (uv_poll_start(&r->poll, UV_READABLE, OnReadable) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&r->poll), OnClosed);
    napi_create_string_utf8(env, "open: cannot watch the socket", NAPI_AUTO_LENGTH, &out);
    return out;
  }
  napi_create_external(env, r, nullptr, nullptr, &out);
  return out;
}

// stop(handle): no more batches; the duplicate descriptor is closed.
napi_value Stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_value undef;
  napi_get_undefined(env, &undef);
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 1) return undef;
  void* p = nullptr;
  if (napi_get_value_external(env, argv[0], &p) != napi_ok || p == nullptr) return undef;
  Receiver* r = static_cast<Receiver*>(p);
  if (r->stopped) return undef;
  r->stopped = true;
  uv_poll_stop(&r->poll);
  // uv_close stops watching the descriptor at once (only its callback waits for the loop's close
  // phase), so the duplicate is closed here: the port is free when dgram's close completes.
  uv_close(reinterpret_cast<uv_handle_t*>(&r->poll), OnClosed);
  close(r->fd);
  r->fd = -1;
  return undef;
}

// send(fd, bytes: Uint8Array, port, ipv4 (host order)) -> 0 or -errno
napi_value Send(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_value out;
  int32_t fd, port;
  uint32_t addr;
  napi_typedarray_type type;
  size_t len, off;
  void* bytes;
  napi_value ab;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 4 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_typedarray_info(env, argv[1], &type, &len, &bytes, &ab, &off) != napi_ok || napi_get_value_int32(env, argv[2], &port) != napi_ok ||
      napi_get_value_uint32(env, argv[3], &addr) != napi_ok) {
    napi_create_int32(env, -EINVAL, &out);
    return out;
  }
  sockaddr_in to;
  memset(&to, 0, sizeof to);
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(port));
  to.sin_addr.s_addr = htonl(addr);
  ssize_t n = sendto(fd, bytes, len, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&to), sizeof to);
  napi_create_int32(env, n < 0 ? -errno : 0, &out);
  return out;
}

constexpr int kSendBatch = 64;

// sendBatch(fd, area: ArrayBuffer, meta: Int32Array, first, count) -> datagrams sent (> 0), or
// -errno when the first of them could not be sent. Per datagram in meta (from index `first`):
// offset in the area, length, port, IPv4 address (host order). At most kSendBatch per call.
napi_value SendBatch(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_value out;
  int32_t fd, first, count;
  void* area;
  size_t area_len;
  napi_typedarray_type type;
  size_t meta_len, meta_off;
  void* meta_data;
  napi_value meta_buf;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 5 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_arraybuffer_info(env, argv[1], &area, &area_len) != napi_ok ||
      napi_get_typedarray_info(env, argv[2], &type, &meta_len, &meta_data, &meta_buf, &meta_off) != napi_ok || type != napi_int32_array ||
      napi_get_value_int32(env, argv[3], &first) != napi_ok || napi_get_value_int32(env, argv[4], &count) != napi_ok || first < 0 || count <= 0) {
    napi_create_int32(env, -EINVAL, &out);
    return out;
  }
  if (count > kSendBatch) count = kSendBatch;
  if (static_cast<size_t>(first + count) * kMeta > meta_len) {
    napi_create_int32(env, -EINVAL, &out);
    return out;
  }
  const int32_t* meta = static_cast<const int32_t*>(meta_data);
  mmsghdr msgs[kSendBatch];
  iovec iov[kSendBatch];
  sockaddr_in to[kSendBatch];
  for (int i = 0; i < count; i++) {
    const int32_t* m = meta + (first + i) * kMeta;
    if (m[0] < 0 || m[1] < 0 || static_cast<size_t>(m[0]) + static_cast<size_t>(m[1]) > area_len) {
      napi_create_int32(env, i > 0 ? i : -EINVAL, &out);
      return out;
    }
    iov[i].iov_base = static_cast<uint8_t*>(area) + m[0];
    iov[i].iov_len = static_cast<size_t>(m[1]);
    memset(&to[i], 0, sizeof to[i]);
    to[i].sin_family = AF_INET;
    to[i].sin_port = htons(static_cast<uint16_t>(m[2]));
    to[i].sin_addr.s_addr = htonl(static_cast<uint32_t>(m[3]));
    memset(&msgs[i], 0, sizeof msgs[i]);
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &to[i];
    msgs[i].msg_hdr.msg_namelen = sizeof to[i];
  }
  int n = sendmmsg(fd, msgs, static_cast<unsigned int>(count), MSG_DONTWAIT);
  napi_create_int32(env, n < 0 ? -errno : n, &out);
  return out;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", nullptr, Open, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"stop", nullptr, Stop, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"send", nullptr, Send, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sendBatch", nullptr, SendBatch, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  napi_value batch, slot, meta;
  napi_create_int32(env, kBatch, &batch);
  napi_create_int32(env, kSlot, &slot);
  napi_create_int32(env, kMeta, &meta);
  napi_set_named_property(env, exports, "BATCH", batch);
  napi_set_named_property(env, exports, "SLOT", slot);
  napi_set_named_property(env, exports, "META", meta);
  napi_value send_batch;
  napi_create_int32(env, kSendBatch, &send_batch);
  napi_set_named_property(env, exports, "SEND_BATCH", send_batch);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
