#include "gateway/sys/process.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace acmegw::sys {
namespace {

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

SysResult<Pipe> make_pipe() {
  std::array<int, 2> fds{};
  if (::pipe2(fds.data(), O_CLOEXEC) != 0) {
    return {{}, errno};
  }
  return {Pipe{UniqueFd{fds[0]}, UniqueFd{fds[1]}}, 0};
}

// The child's stdin is a socket pair rather than a pipe so that writing to a child that exited
// without reading fails with EPIPE via send(MSG_NOSIGNAL) instead of raising SIGPIPE in us.
SysResult<Pipe> make_stdin_channel() {
  std::array<int, 2> fds{};
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds.data()) != 0) {
    return {{}, errno};
  }
  if (::shutdown(fds[0], SHUT_WR) != 0 || ::shutdown(fds[1], SHUT_RD) != 0) {
    const int e = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    return {{}, e};
  }
  return {Pipe{UniqueFd{fds[0]}, UniqueFd{fds[1]}}, 0};
}

bool executable(const std::string& path) {
  return ::access(path.c_str(), X_OK) == 0;
}

// Owns the posix_spawn_file_actions_t so every exit path destroys it.
class FileActions {
 public:
  FileActions() { ok_ = ::posix_spawn_file_actions_init(&fa_) == 0; }
  ~FileActions() {
    if (ok_) {
      ::posix_spawn_file_actions_destroy(&fa_);
    }
  }
  FileActions(const FileActions&) = delete;
  FileActions& operator=(const FileActions&) = delete;
  [[nodiscard]] bool ok() const noexcept { return ok_; }
  posix_spawn_file_actions_t* get() noexcept { return &fa_; }

 private:
  posix_spawn_file_actions_t fa_{};
  bool ok_ = false;
};

// Waits for `pid`, retrying on EINTR; returns the ProcessOutput status convention.
SysResult<int> wait_child(pid_t pid) {
  int ws = 0;
  while (::waitpid(pid, &ws, 0) < 0) {
    if (errno != EINTR) {
      return {-1, errno};
    }
  }
  if (WIFEXITED(ws)) {
    return {WEXITSTATUS(ws), 0};
  }
  return {128 + WTERMSIG(ws), 0};
}

}  // namespace

std::optional<std::string> find_program(std::string_view name) {
  for (const std::string_view dir : kToolDirs) {
    std::string p{dir};
    p += '/';
    p += name;
    if (executable(p)) {
      return p;
    }
  }
  const char* path = std::getenv("PATH");
  std::string_view rest = path != nullptr ? path : "";
  while (!rest.empty()) {
    const auto colon = rest.find(':');
    const std::string_view dir = rest.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon + 1);
    if (dir.empty() || dir[0] != '/') {
      continue;  // relative PATH entries would make the result depend on the cwd
    }
    std::string p{dir};
    p += '/';
    p += name;
    if (executable(p)) {
      return p;
    }
  }
  return std::nullopt;
}

SysResult<ProcessOutput> run_process(std::span<const std::string> argv, std::string_view input,
                                     std::chrono::milliseconds timeout) {
  if (argv.empty()) {
    return {{}, EINVAL};
  }
  std::string exe = argv[0];
  if (exe.find('/') == std::string::npos) {
    auto found = find_program(exe);
    if (!found) {
      return {{}, ENOENT};
    }
    exe = std::move(*found);
  }

  auto in = make_stdin_channel();
  auto out = make_pipe();
  auto err = make_pipe();
  for (const auto* p : {&in, &out, &err}) {
    if (!p->ok()) {
      return {{}, p->err};
    }
  }
  FileActions fa;
  if (!fa.ok()) {
    return {{}, ENOMEM};
  }
  // dup2 clears O_CLOEXEC on the target; the pipe originals close at exec.
  for (const auto& [fd, target] : {std::pair{in.value.read.get(), STDIN_FILENO},
                                   std::pair{out.value.write.get(), STDOUT_FILENO},
                                   std::pair{err.value.write.get(), STDERR_FILENO}}) {
    if (const int rc = ::posix_spawn_file_actions_adddup2(fa.get(), fd, target); rc != 0) {
      return {{}, rc};
    }
  }

  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  args.push_back(exe.data());
  for (std::size_t i = 1; i < argv.size(); ++i) {
    args.push_back(const_cast<char*>(argv[i].c_str()));  // posix_spawn's C signature
  }
  args.push_back(nullptr);

  pid_t pid = -1;
  if (const int rc = ::posix_spawn(&pid, exe.c_str(), fa.get(), nullptr, args.data(), environ);
      rc != 0) {
    return {{}, rc};
  }
  in.value.read.reset();
  out.value.write.reset();
  err.value.write.reset();

  ProcessOutput result;
  std::string_view pending = input;
  if (pending.empty()) {
    in.value.write.reset();
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::array<char, 4096> buf{};
  int saved_err = 0;
  while (out.value.read || err.value.read) {
    std::array<pollfd, 3> pfds{};
    nfds_t n = 0;
    auto add = [&](const UniqueFd& fd, short events) {
      if (fd) {
        pfds[n++] = pollfd{fd.get(), events, 0};
      }
    };
    add(out.value.read, POLLIN);
    add(err.value.read, POLLIN);
    add(in.value.write, POLLOUT);
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      saved_err = ETIMEDOUT;
      break;
    }
    const int rc = ::poll(pfds.data(), n, static_cast<int>(left.count()));
    if (rc < 0) {
      if (errno == EINTR) {
        continue;
      }
      saved_err = errno;
      break;
    }
    for (nfds_t i = 0; i < n; ++i) {
      if (pfds[i].revents == 0) {
        continue;
      }
      if (pfds[i].fd == in.value.write.get()) {
        const ssize_t w =
            ::send(pfds[i].fd, pending.data(), pending.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
          in.value.write.reset();  // EPIPE: the child stopped reading; its status tells why
        } else if (w > 0) {
          pending.remove_prefix(static_cast<std::size_t>(w));
          if (pending.empty()) {
            in.value.write.reset();
          }
        }
        continue;
      }
      UniqueFd& fd = pfds[i].fd == out.value.read.get() ? out.value.read : err.value.read;
      std::string& sink = &fd == &out.value.read ? result.out : result.err;
      const ssize_t r = ::read(fd.get(), buf.data(), buf.size());
      if (r > 0) {
        sink.append(buf.data(), static_cast<std::size_t>(r));
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        fd.reset();
      }
    }
  }
  if (saved_err != 0) {
    ::kill(pid, SIGKILL);  // our own child, by pid
  }
  const auto status = wait_child(pid);
  if (saved_err != 0) {
    return {std::move(result), saved_err};
  }
  if (!status.ok()) {
    return {std::move(result), status.err};
  }
  result.status = status.value;
  return {std::move(result), 0};
}

SysResult<std::uint64_t> raise_fd_limit(std::uint64_t wanted) noexcept {
  ::rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    return {0, errno};
  }
  if (lim.rlim_cur >= wanted) {
    return {lim.rlim_cur, 0};
  }
  const ::rlim_t before = lim.rlim_cur;
  lim.rlim_cur = lim.rlim_max == RLIM_INFINITY ? wanted : std::min<::rlim_t>(wanted, lim.rlim_max);
  if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) {
    return {before, errno};
  }
  return {lim.rlim_cur, 0};
}

}  // namespace acmegw::sys
