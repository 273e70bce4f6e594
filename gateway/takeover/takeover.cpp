#include "gateway/takeover/takeover.hpp"

namespace acmegw::takeover {

std::string_view to_string(TakeoverStep s) noexcept {
  switch (s) {
    case TakeoverStep::None:
      return "none";
    case TakeoverStep::Conntrack:
      return "conntrack";
    case TakeoverStep::Route:
      return "route";
    case TakeoverStep::Socket:
      return "socket";
    case TakeoverStep::ReuseAddr:
      return "reuseaddr";
    case TakeoverStep::Transparent:
      return "transparent";
    case TakeoverStep::RepairOn:
      return "repair_on";
    case TakeoverStep::Bind:
      return "bind";
    case TakeoverStep::SendSeq:
      return "send_seq";
    case TakeoverStep::RecvSeq:
      return "recv_seq";
    case TakeoverStep::MaxSeg:
      return "maxseg";
    case TakeoverStep::Connect:
      return "connect";
    case TakeoverStep::Options:
      return "options";
    case TakeoverStep::Timestamp:
      return "timestamp";
    case TakeoverStep::Window:
      return "window";
    case TakeoverStep::RepairOff:
      return "repair_off";
    case TakeoverStep::Reset:
      return "reset";
    case TakeoverStep::SourceDenied:
      return "source_denied";
    case TakeoverStep::NotServed:
      return "not_served";
    case TakeoverStep::SessionCap:
      return "session_cap";
    case TakeoverStep::SourceCap:
      return "source_cap";
    case TakeoverStep::Handoff:
      return "handoff";
  }
  return "invalid";
}

}  // namespace acmegw::takeover
