#include "gateway/takeover/leftovers.hpp"

#include <algorithm>
#include <cstring>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include "backends/sys_file.hpp"

namespace acmegw::takeover {

namespace {

// The states a socket closed by its process passes through (TCP_CLOSE ones are gone already).
bool closing(std::uint8_t state) noexcept {
  switch (state) {
    case TCP_FIN_WAIT1:
    case TCP_FIN_WAIT2:
    case TCP_CLOSING:
    case TCP_LAST_ACK:
    case TCP_TIME_WAIT:
      return true;
    default:
      return false;
  }
}

// The address and port (host order) of `ss`, an AF_INET or AF_INET6 sockaddr.
packet::Address address_of(const ::sockaddr_storage& ss, std::uint16_t& port) noexcept {
  packet::Address a;
  if (ss.ss_family == AF_INET) {
    const auto* s4 = reinterpret_cast<const ::sockaddr_in*>(&ss);
    a.family = packet::Family::V4;
    std::memcpy(a.bytes.data(), &s4->sin_addr, 4);
    port = ntohs(s4->sin_port);
  } else {
    const auto* s6 = reinterpret_cast<const ::sockaddr_in6*>(&ss);
    a.family = packet::Family::V6;
    std::memcpy(a.bytes.data(), &s6->sin6_addr, 16);
    port = ntohs(s6->sin6_port);
  }
  return a;
}

bool on_protected(const backends::sys::TcpSocketEntry& s,
                  const std::vector<gateway::Endpoint>& protect) noexcept {
  std::uint16_t port = 0;
  const packet::Address a = address_of(s.local, port);
  return std::any_of(protect.begin(), protect.end(), [&](const gateway::Endpoint& e) {
    return e.port == port && gateway::Cidr{e.addr, e.prefix_len}.contains(a);
  });
}

}  // namespace

LeftoverSockets destroy_leftover_sockets(const std::vector<gateway::Endpoint>& protect) noexcept {
  LeftoverSockets out;
  for (const int family : {AF_INET, AF_INET6}) {
    const auto list = backends::sys::list_tcp_sockets(family);
    if (!list.ok()) {
      out.err = list.err;
      continue;
    }
    for (const auto& s : list.value) {
      if (s.inode != 0 || !closing(s.state) || !on_protected(s, protect)) {
        continue;
      }
      const auto r = backends::sys::destroy_tcp_socket(
          reinterpret_cast<const ::sockaddr*>(&s.local),
          reinterpret_cast<const ::sockaddr*>(&s.remote), s.cookie);
      if (r.ok() || r.err == ENOENT) {  // ENOENT: it ended meanwhile
        ++out.destroyed;
      } else {
        ++out.failed;
        out.err = r.err;
      }
    }
  }
  return out;
}

}  // namespace acmegw::takeover
