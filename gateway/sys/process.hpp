#pragma once
// Running the netfilter/iproute2 tools (iptables-restore, iptables-save, ip) as child processes:
// posix_spawn with an explicit argv, never a shell, so no configuration value is ever parsed by
// /bin/sh. Control plane only (startup, shutdown, `acmegw rules`).
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "gateway/sys/result.hpp"

namespace acmegw::sys {

struct ProcessOutput {
  int status = -1;  // exit code; 128 + signal number if the child was killed
  std::string out;  // everything it wrote to stdout
  std::string err;  // everything it wrote to stderr
  [[nodiscard]] bool exited_ok() const noexcept { return status == 0; }
};

// Directories searched for tools, in order: a daemon's PATH may be minimal or absent.
inline constexpr std::string_view kToolDirs[] = {"/usr/sbin", "/sbin", "/usr/bin", "/bin"};

// Absolute path of the executable `name` in kToolDirs, else in $PATH; nullopt if none.
[[nodiscard]] std::optional<std::string> find_program(std::string_view name);

// Runs argv (argv[0] is resolved with find_program unless it contains '/'), feeds `input` on its
// stdin and collects stdout/stderr until it exits. After `timeout` the child is killed (SIGKILL)
// and ETIMEDOUT returned. Errors: ENOENT if argv[0] is not found, else the errno of the failing
// pipe/spawn/poll/wait call. The child's own failure is a success here, reported in `status`.
[[nodiscard]] SysResult<ProcessOutput> run_process(
    std::span<const std::string> argv, std::string_view input = {},
    std::chrono::milliseconds timeout = std::chrono::seconds(30));

// Raises the soft RLIMIT_NOFILE toward `wanted`, never above the hard limit (systemd's default
// soft limit of 1024 is for select() users; acmegw uses none). Returns the soft limit in force.
[[nodiscard]] SysResult<std::uint64_t> raise_fd_limit(std::uint64_t wanted) noexcept;

}  // namespace acmegw::sys
