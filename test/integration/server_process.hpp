#pragma once

// The real `parallax serve` as a child process, for integration tests:
// start (waits for its "listening on" line), kill -9, SIGTERM; a free port.
// Everything the child needs is prepared before fork.

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <string_view>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace parallax::test {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

// A TCP port on 127.0.0.1 that is free right now: bind to port 0, read the
// port the kernel chose, close. Every restart of the server reuses it.
inline std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in{p};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A metric's value from the final counters `parallax serve` logs as it
// stops (`line` is the metric with its labels); UINT64_MAX when absent.
inline std::uint64_t final_counter(const std::string& log,
                                   std::string_view line) {
  auto at = log.rfind(std::string{line} + " ");
  if (at == std::string::npos)
    return UINT64_MAX;
  return std::stoull(log.substr(at + line.size() + 1));
}

// Runs `args` (args[0] is the program) with stdin on /dev/null, stdout into
// `out` (empty: /dev/null) and stderr into `err`; returns the pid.
// Everything the child needs is prepared before fork: after fork only
// async-signal-safe calls are allowed (tests have ZeroMQ threads).
inline pid_t spawn_to(std::vector<std::string> args,
                      const std::filesystem::path& out,
                      const std::filesystem::path& err) {
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string out_path = out.empty() ? std::string{"/dev/null"} : out.string();
  std::string err_path = err.string();
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int o = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int null = ::open("/dev/null", O_RDONLY);
    if (o < 0 || e < 0 || null < 0)
      ::_exit(126);
    ::dup2(null, STDIN_FILENO);
    ::dup2(o, STDOUT_FILENO);
    ::dup2(e, STDERR_FILENO);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

// Starts `args` (argv[0] a path) with stderr to `log`, stdout discarded.
inline pid_t spawn_logged(std::vector<std::string> args,
                          const std::filesystem::path& log) {
  return spawn_to(std::move(args), {}, log);
}

// Waits for `pid` to exit (up to `limit`, then kills it); returns its exit
// code, or -1 when it was killed or died by a signal.
inline int wait_exit(pid_t pid, std::chrono::seconds limit) {
  auto deadline = clock_type::now() + limit;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) != pid) {
    if (clock_type::now() >= deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(10ms);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// `parallax serve` as a child process. Each start logs to its own file.
class server_process {
public:
  /// `extra` are further arguments of `parallax serve`, e.g. {"--set",
  /// "parallax.libvirt.uris=[...]"}. The HTTP, publisher and search
  /// endpoints listen on ports of the kernel's choice unless `extra` says
  /// otherwise.
  server_process(std::filesystem::path dir, std::uint16_t port,
                 std::vector<std::string> extra = {})
    : dir_{std::move(dir)},
      endpoint_{"tcp://127.0.0.1:" + std::to_string(port)},
      extra_{std::move(extra)} {
  }

  server_process(const server_process&) = delete;
  server_process& operator=(const server_process&) = delete;

  ~server_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }

  const std::string& endpoint() const {
    return endpoint_;
  }

  std::filesystem::path data_dir() const {
    return dir_ / "data";
  }

  std::filesystem::path log_path() const {
    return dir_ / ("serve-" + std::to_string(starts_) + ".log");
  }

  /// Starts the server and waits until it logs "listening on" (up to 10 s).
  void start() {
    REQUIRE(pid_ <= 0);
    ++starts_;
    std::vector<std::string> args = {
      PARALLAX_BINARY, "serve", "--data", data_dir().string(),
      "--set", "parallax.collector.endpoint=" + endpoint_,
      "--set", "parallax.http.listen=127.0.0.1:0",
      "--set", "parallax.publisher.endpoint=tcp://127.0.0.1:0",
      "--set", "parallax.search.endpoint=tcp://127.0.0.1:0"};
    args.insert(args.end(), extra_.begin(), extra_.end());
    auto t0 = clock_type::now();
    pid_t pid = spawn_logged(std::move(args), log_path());
    pid_ = pid;
    auto deadline = t0 + 10s;
    while (clock_type::now() < deadline) {
      if (read_file(log_path()).find("listening on") != std::string::npos) {
        startup_times_.push_back(
          std::chrono::duration<double, std::milli>(clock_type::now() - t0)
            .count());
        return;
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        FAIL("parallax serve (start #", starts_, ") exited with status ",
             status, " before listening; its log:\n", read_file(log_path()));
      }
      std::this_thread::sleep_for(10ms);
    }
    FAIL("parallax serve (start #", starts_,
         ") did not log \"listening on\" within 10 s; its log:\n",
         read_file(log_path()));
  }

  /// kill -9 and reap.
  void kill9() {
    REQUIRE(pid_ > 0);
    REQUIRE(::kill(pid_, SIGKILL) == 0);
    int status = 0;
    REQUIRE(::waitpid(pid_, &status, 0) == pid_);
    pid_ = -1;
    CHECK(WIFSIGNALED(status));
    if (WIFSIGNALED(status))
      CHECK(WTERMSIG(status) == SIGKILL);
  }

  /// SIGTERM, then waits (up to 30 s); returns the exit status as waitpid
  /// reports it.
  int terminate() {
    REQUIRE(pid_ > 0);
    REQUIRE(::kill(pid_, SIGTERM) == 0);
    auto deadline = clock_type::now() + 30s;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) != pid_) {
      if (clock_type::now() >= deadline)
        FAIL("parallax serve did not stop within 30 s of SIGTERM; its log:\n",
             read_file(log_path()));
      std::this_thread::sleep_for(10ms);
    }
    pid_ = -1;
    return status;
  }

  /// The port of the HTTP endpoint, read from the current log.
  int http_port() const {
    auto log = read_file(log_path());
    auto at = log.find("http on ");
    if (at == std::string::npos)
      return -1;
    auto colon = log.find(':', at + 8);
    return std::atoi(log.c_str() + colon + 1);
  }

  /// The search endpoint, read from the current log ("search on ...").
  std::string search_endpoint() const {
    auto log = read_file(log_path());
    auto at = log.find("search on ");
    if (at == std::string::npos)
      return {};
    auto end = log.find_first_of(" \n", at + 10);
    return log.substr(at + 10, end - at - 10);
  }

  /// The running server's pid (-1 when none runs).
  pid_t pid() const {
    return pid_;
  }

  const std::vector<double>& startup_times_ms() const {
    return startup_times_;
  }

private:
  std::filesystem::path dir_;
  std::string endpoint_;
  std::vector<std::string> extra_;
  pid_t pid_ = -1;
  int starts_ = 0;
  std::vector<double> startup_times_;
};


} // namespace parallax::test
