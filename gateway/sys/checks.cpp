#include "gateway/sys/checks.hpp"

#include <array>
#include <cerrno>
#include <cstring>
#include <string_view>

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "gateway/sys/process.hpp"

namespace acmegw::sys {
SysResult<bool> has_net_admin() noexcept {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  std::array<__user_cap_data_struct, _LINUX_CAPABILITY_U32S_3> data{};
  if (::syscall(SYS_capget, &hdr, data.data()) != 0) {
    return {false, errno};
  }
  return {(data[CAP_TO_INDEX(CAP_NET_ADMIN)].effective & CAP_TO_MASK(CAP_NET_ADMIN)) != 0, 0};
}

std::vector<std::string> startup_checks(const CheckNeeds& needs) {
  std::vector<std::string> problems;
  const auto cap = has_net_admin();
  if (!cap.ok()) {
    problems.push_back(std::string{"cannot read capabilities (capget): "} + std::strerror(cap.err));
  } else if (!cap.value) {
    problems.push_back(
        "missing CAP_NET_ADMIN: run as root, or with AmbientCapabilities=CAP_NET_ADMIN "
        "CAP_NET_RAW (systemd)");
  }

  std::vector<std::string_view> tools;
  if (needs.ipv4) {
    tools.insert(tools.end(), {"iptables-restore", "iptables-save"});
  }
  if (needs.ipv6) {
    tools.insert(tools.end(), {"ip6tables-restore", "ip6tables-save"});
  }
  if (needs.routing) {
    tools.push_back("ip");
  }
  for (const std::string_view t : tools) {
    if (!find_program(t)) {
      problems.push_back(std::string{t} +
                         " not found in /usr/sbin, /sbin, /usr/bin, /bin or $PATH (install "
                         "iptables / iproute2)");
    }
  }

  return problems;
}

}  // namespace acmegw::sys
