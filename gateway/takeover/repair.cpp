#include "gateway/takeover/repair.hpp"

#include <algorithm>
#include <array>
#include <cerrno>

#include <netinet/tcp.h>

#include "gateway/sys/repair.hpp"

namespace acmegw::takeover {
namespace {

TakeoverResult failed(TakeoverStep step, int err) noexcept {
  return {step, err};
}

}  // namespace

TakeoverResult restore_established(const FlowSnapshot& s, sys::UniqueFd& out) noexcept {
  const auto family = s.tuple.dst.family;
  auto sk = sys::tcp_socket(family);
  if (!sk.ok()) {
    return failed(TakeoverStep::Socket, sk.err);
  }
  sys::UniqueFd& fd = sk.value;
  // From RepairOn on, an early return must not let close() emit a FIN or RST to the client.
  struct SilentClose {
    sys::UniqueFd& fd;
    ~SilentClose() { close_silently(fd); }
  } guard{fd};

  if (auto r = sys::set_reuseaddr(fd); !r.ok()) {
    return failed(TakeoverStep::ReuseAddr, r.err);
  }
  if (auto r = sys::set_tcp_repair(fd, TCP_REPAIR_ON); !r.ok()) {
    return failed(TakeoverStep::RepairOn, r.err);
  }
  if (auto r = sys::set_transparent(fd, family); !r.ok()) {
    return failed(TakeoverStep::Transparent, r.err);
  }
  if (auto r = sys::bind(fd, sys::make_sockaddr(s.tuple.dst, s.tuple.dport)); !r.ok()) {
    return failed(TakeoverStep::Bind, r.err);
  }
  if (auto r = sys::set_queue_seq(fd, sys::RepairQueue::Send, s.snd_nxt); !r.ok()) {
    return failed(TakeoverStep::SendSeq, r.err);
  }
  if (auto r = sys::set_queue_seq(fd, sys::RepairQueue::Recv, s.rcv_nxt); !r.ok()) {
    return failed(TakeoverStep::RecvSeq, r.err);
  }
  if (auto r = sys::set_maxseg(fd, s.options.mss); !r.ok()) {
    return failed(TakeoverStep::MaxSeg, r.err);
  }
  if (auto r = sys::connect(fd, sys::make_sockaddr(s.tuple.src, s.tuple.sport));
      !r.ok() && r.err != EINPROGRESS) {
    return failed(TakeoverStep::Connect, r.err);
  }
  if (auto r = sys::set_repair_options(fd, s.options); !r.ok()) {
    return failed(TakeoverStep::Options, r.err);
  }
  if (s.options.timestamps) {
    if (auto r = sys::set_tcp_timestamp(fd, s.ts_next); !r.ok()) {
      return failed(TakeoverStep::Timestamp, r.err);
    }
  }
  // Keep the receive window the kernel chose at connect() (sized from our buffers, never
  // smaller than what production advertised for a request head) and set what the client told
  // us: its window, and that segment S is the one that last updated it.
  auto w = sys::get_repair_window(fd);
  if (!w.ok()) {
    return failed(TakeoverStep::Window, w.err);
  }
  w.value.snd_wl1 = s.rcv_nxt;
  w.value.snd_wnd = s.snd_wnd;
  w.value.max_window = std::max(w.value.max_window, s.snd_wnd);
  w.value.rcv_wup = s.rcv_nxt;
  if (auto r = sys::set_repair_window(fd, w.value); !r.ok()) {
    return failed(TakeoverStep::Window, r.err);
  }
  if (auto r = sys::set_tcp_repair(fd, TCP_REPAIR_OFF_NO_WP); !r.ok()) {
    return failed(TakeoverStep::RepairOff, r.err);
  }
  out = std::move(fd);  // the guard now holds an empty fd
  return {};
}

void close_silently(sys::UniqueFd& fd) noexcept {
  if (!fd) {
    return;
  }
  // Fails only on a socket that is not ESTABLISHED/CLOSE, which close() cannot hurt then.
  (void)sys::set_tcp_repair(fd, TCP_REPAIR_ON);
  fd.reset();
}

TakeoverResult reset_production(const sys::UniqueFd& raw, const FlowSnapshot& s) noexcept {
  std::array<std::byte, kMaxRstLen> pkt{};
  const std::size_t len = build_rst(s.tuple, s.rcv_nxt, pkt);
  const auto r =
      sys::send_packet(raw, std::span{pkt}.first(len), sys::make_sockaddr(s.tuple.dst, 0));
  if (!r.ok()) {
    return failed(TakeoverStep::Reset, r.err);
  }
  return {};
}

}  // namespace acmegw::takeover
