#include "gateway/sys/checks.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string_view>

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "gateway/sys/process.hpp"

namespace acmegw::sys {
namespace {

constexpr std::string_view kConfDir = "/proc/sys/net/ipv4/conf";

// Reads a small /proc file (a sysctl value); returns the text.
SysResult<std::string> read_small_file(const std::string& path) {
  UniqueFd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (!fd) {
    return {{}, errno};
  }
  std::array<char, 64> buf{};
  const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
  if (n < 0) {
    return {{}, errno};
  }
  return {std::string(buf.data(), static_cast<std::size_t>(n)), 0};
}

SysResult<bool> sysctl_is_one(std::string_view conf, std::string_view name) {
  std::string path{kConfDir};
  path += '/';
  path += conf;
  path += '/';
  path += name;
  const auto r = read_small_file(path);
  if (!r.ok()) {
    return {false, r.err};
  }
  return {r.value.starts_with("1"), 0};
}

}  // namespace

SysResult<bool> has_net_admin() noexcept {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  std::array<__user_cap_data_struct, _LINUX_CAPABILITY_U32S_3> data{};
  if (::syscall(SYS_capget, &hdr, data.data()) != 0) {
    return {false, errno};
  }
  return {(data[CAP_TO_INDEX(CAP_NET_ADMIN)].effective & CAP_TO_MASK(CAP_NET_ADMIN)) != 0, 0};
}

SysResult<std::vector<std::string>> src_valid_mark_enabled() {
  const auto all = sysctl_is_one("all", "src_valid_mark");
  if (!all.ok()) {
    return {{}, all.err};
  }
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(kConfDir, ec)) {
    std::string name = entry.path().filename().string();
    // An interface that vanished between listing and reading is not a problem.
    if (const auto one = sysctl_is_one(name, "src_valid_mark");
        name != "all" && one.ok() && one.value) {
      names.push_back(std::move(name));
    }
  }
  if (ec) {
    return {{}, ec.value()};
  }
  std::sort(names.begin(), names.end());
  if (all.value) {
    names.insert(names.begin(), "all");  // makes every interface effectively 1
  }
  return {std::move(names), 0};
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

  if (needs.routing) {
    const auto svm = src_valid_mark_enabled();
    if (!svm.ok()) {
      problems.push_back(std::string{"cannot read "} + std::string{kConfDir} +
                         "/*/src_valid_mark: " + std::strerror(svm.err));
    } else if (!svm.value.empty()) {
      std::string list;
      for (const auto& n : svm.value) {
        list += (list.empty() ? "" : ",") + n;
      }
      if (svm.value.size() > 1) {
        list = '{' + list + '}';
      }
      problems.push_back(
          "net.ipv4.conf." + list +
          ".src_valid_mark=1: the reverse-path check would then look up client addresses with "
          "the TAKEN mark and drop every taken-over packet (DESIGN.md pitfall 7); set them to 0");
    }
  }
  return problems;
}

}  // namespace acmegw::sys
