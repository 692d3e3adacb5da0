#include "parallax/bench/agent.hpp"

#include "parallax/bench/stats.hpp"
#include "parallax/pipeline/agent.hpp"
#include "parallax/pipeline/config.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace parallax::bench {

namespace fs = std::filesystem;

namespace {

double cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Children that sleep until killed; they also die with this process.
class sleepers {
public:
  explicit sleepers(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      pid_t pid = ::fork();
      if (pid < 0)
        break;
      if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        for (;;)
          ::pause();
      }
      pids_.push_back(pid);
    }
  }
  ~sleepers() {
    for (auto pid : pids_)
      ::kill(pid, SIGKILL);
    for (auto pid : pids_) {
      int status = 0;
      ::waitpid(pid, &status, 0);
    }
  }
  std::size_t size() const {
    return pids_.size();
  }

private:
  std::vector<pid_t> pids_;
};

// utime + stime of process `pid` in seconds, from /proc/PID/stat (fields
// 14 and 15, counted after the command name's closing parenthesis).
std::optional<double> process_cpu_seconds(pid_t pid) {
  std::FILE* f = std::fopen(fmt::format("/proc/{}/stat", pid).c_str(), "r");
  if (!f)
    return std::nullopt;
  char buf[4096];
  auto n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = 0;
  std::string_view text{buf, n};
  auto close = text.rfind(')');
  if (close == std::string_view::npos)
    return std::nullopt;
  std::vector<std::string_view> fields; // field 3 onwards
  for (std::size_t i = close + 2; i < text.size();) {
    auto sp = text.find(' ', i);
    fields.push_back(text.substr(i, sp - i));
    if (sp == std::string_view::npos)
      break;
    i = sp + 1;
  }
  if (fields.size() < 13)
    return std::nullopt;
  auto ticks = std::stod(std::string{fields[11]}) + std::stod(std::string{fields[12]});
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// VmHWM of process `pid` in bytes.
std::uint64_t process_peak_rss(pid_t pid) {
  std::FILE* f = std::fopen(fmt::format("/proc/{}/status", pid).c_str(), "r");
  if (!f)
    return 0;
  char line[256];
  std::uint64_t kb = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "VmHWM: %lu kB", &kb) == 1)
      break;
  std::fclose(f);
  return kb * 1024;
}

struct binary_figures {
  double cpu_per_round = 0; ///< seconds
  std::uint64_t peak_rss = 0;
  std::size_t rounds = 0;
};

// Runs the agent binary as its own process at a 1 s interval with nothing
// listening at its server address (it collects and spools, as during a
// server outage) and reads its CPU time and peak RSS from /proc. CPU per
// round is measured after a 2 s warm-up: ΔCPU / rounds elapsed.
std::optional<binary_figures> measure_binary(const fs::path& binary,
                                             std::size_t rounds,
                                             const fs::path& state) {
  std::vector<std::string> args = {
    binary.string(),
    "--set", "parallax.agent.interval=1s",
    "--set", "parallax.agent.inputs=[\"processes\",\"system\",\"identity\"]",
    "--set", "parallax.agent.state-dir=" + state.string(),
    "--set", "parallax.agent.server=tcp://127.0.0.1:9",
    "--set", "parallax.log-level=error"};
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0)
    return std::nullopt;
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  auto stop = [&] {
    ::kill(pid, SIGTERM);
    int status = 0;
    ::waitpid(pid, &status, 0);
  };
  std::this_thread::sleep_for(std::chrono::seconds{2});
  auto c0 = process_cpu_seconds(pid);
  std::this_thread::sleep_for(std::chrono::seconds{rounds});
  auto c1 = process_cpu_seconds(pid);
  binary_figures out;
  out.peak_rss = process_peak_rss(pid);
  out.rounds = rounds;
  stop();
  if (!c0 || !c1)
    return std::nullopt;
  out.cpu_per_round = (*c1 - *c0) / static_cast<double>(rounds);
  return out;
}

} // namespace

int run_agent(const agent_options& opts) {
  if (opts.rounds == 0) {
    fmt::print(stderr, "parallax bench agent: --rounds must be at least 1\n");
    return 2;
  }
  // Fork first, before anything starts a thread.
  sleepers kids{opts.processes};
  if (kids.size() != opts.processes) {
    fmt::print(stderr, "parallax bench agent: started only {} of {} child "
                       "processes\n",
               kids.size(), opts.processes);
    return 1;
  }
  std::random_device rd;
  auto dir = fs::temp_directory_path()
             / fmt::format("parallax-bench-agent-{:08x}", rd());
  // The installed form first: the `parallax-agent` binary as a process of
  // its own (next to this binary unless --binary says otherwise).
  auto binary = opts.binary.empty()
                  ? fs::read_symlink("/proc/self/exe").parent_path()
                      / "parallax-agent"
                  : fs::path{opts.binary};
  std::optional<binary_figures> bin;
  if (fs::exists(binary))
    bin = measure_binary(binary, opts.rounds, dir / "binary-state");
  else
    fmt::print(stderr, "parallax bench agent: {} not found: only the "
                       "in-process figures follow\n",
               binary.string());
  auto cfg = config::defaults().agent;
  cfg.root = "/";
  cfg.inputs = {"processes", "system", "identity"};
  cfg.state_dir = dir;
  parallax::agent_options ao;
  ao.connect = false;
  std::vector<double> cpu, wall;
  std::uint64_t processes = 0, bytes = 0;
  {
    auto agent = guest_agent::open(cfg, dir, ao);
    if (!agent) {
      fmt::print(stderr, "parallax bench agent: {}\n", agent.error().message);
      return 1;
    }
    auto& a = **agent;
    auto ack_all = [&] {
      for (auto seq : a.spooled().sequences())
        a.spooled().remove(seq);
    };
    // One warm-up round: the first sample has no previous one (no rates),
    // and the user database cache fills.
    if (auto err = a.collect()) {
      fmt::print(stderr, "parallax bench agent: {}\n", err.message);
      return 1;
    }
    ack_all();
    for (std::size_t r = 0; r < opts.rounds; ++r) {
      auto before = a.stats();
      auto c0 = cpu_seconds();
      auto w0 = std::chrono::steady_clock::now();
      if (auto err = a.collect()) {
        fmt::print(stderr, "parallax bench agent: {}\n", err.message);
        return 1;
      }
      ack_all();
      wall.push_back(std::chrono::duration<double>(
                       std::chrono::steady_clock::now() - w0)
                       .count());
      cpu.push_back(cpu_seconds() - c0);
      processes = a.stats().process_events - before.process_events;
      bytes = a.stats().bytes_spooled - before.bytes_spooled;
    }
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  // CPU % of one core when one round runs every 10 s.
  auto pct = [](double s) { return s / 10.0 * 100.0; };
  auto cpu_p50 = median(cpu), cpu_p90 = percentile(cpu, 0.9);
  auto wall_p50 = median(wall), wall_p90 = percentile(wall, 0.9);
  auto rss = peak_rss_bytes();
  // Most of the RSS is file-backed: the pages of this binary and its shared
  // libraries (CAF, RE2, LMDB, ... which the agent links but barely uses).
  auto split = current_rss();
  auto bin_cpu = bin ? bin->cpu_per_round : 0.0;
  auto bin_rss = bin ? bin->peak_rss : 0;
  if (opts.json) {
    fmt::print("{{\"bench\":\"agent\",\"binary_cpu_ms_per_round\":{:.3f},"
               "\"binary_cpu_pct_at_10s\":{:.4f},\"binary_peak_rss_bytes\":{},",
               bin_cpu * 1e3, pct(bin_cpu), bin_rss);
    fmt::print("\"children\":{},\"processes_sampled\":{},"
               "\"rounds\":{},\"frame_bytes\":{},\"cpu_ms_p50\":{:.3f},"
               "\"cpu_ms_p90\":{:.3f},\"cpu_pct_at_10s_p50\":{:.4f},"
               "\"cpu_pct_at_10s_p90\":{:.4f},\"wall_ms_p50\":{:.3f},"
               "\"wall_ms_p90\":{:.3f},\"peak_rss_bytes\":{},"
               "\"rss_anon_bytes\":{},\"rss_file_bytes\":{}}}\n",
               kids.size(), processes, opts.rounds, bytes, cpu_p50 * 1e3,
               cpu_p90 * 1e3, pct(cpu_p50), pct(cpu_p90), wall_p50 * 1e3,
               wall_p90 * 1e3, rss, split.anon, split.file);
    return 0;
  }
  fmt::print("parallax bench agent: {} child processes started, {} processes "
             "sampled per round, {} rounds, {} bytes spooled per round\n",
             kids.size(), processes, opts.rounds, bytes);
  fmt::print("  CPU per round     median {:8.3f} ms   p90 {:8.3f} ms\n",
             cpu_p50 * 1e3, cpu_p90 * 1e3);
  fmt::print("  at a 10 s interval median {:7.4f} %    p90 {:7.4f} % of one "
             "core (target <= 1 %)\n",
             pct(cpu_p50), pct(cpu_p90));
  fmt::print("  wall per round    median {:8.3f} ms   p90 {:8.3f} ms "
             "(fsyncs included)\n",
             wall_p50 * 1e3, wall_p90 * 1e3);
  fmt::print("  peak RSS (VmHWM)  {:.1f} MB (target <= 20 MB); now {:.1f} MB "
             "anonymous + {:.1f} MB file-backed (binary and shared "
             "libraries)\n",
             static_cast<double>(rss) / 1e6,
             static_cast<double>(split.anon) / 1e6,
             static_cast<double>(split.file) / 1e6);
  if (bin)
    fmt::print("parallax-agent as its own process ({}, 1 s interval, {} s, "
               "nothing listening: it spools):\n"
               "  CPU per round     {:8.3f} ms, at a 10 s interval {:.4f} % of "
               "one core (target <= 1 %)\n"
               "  peak RSS (VmHWM)  {:.1f} MB (target <= 20 MB)\n",
               binary.string(), bin->rounds, bin_cpu * 1e3, pct(bin_cpu),
               static_cast<double>(bin_rss) / 1e6);
  return 0;
}

} // namespace parallax::bench
