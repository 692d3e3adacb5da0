#include "parallax/bench/agent.hpp"

#include "parallax/bench/stats.hpp"
#include "parallax/pipeline/agent.hpp"
#include "parallax/pipeline/config.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <random>
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

double percentile(std::vector<double> xs, double p) {
  std::sort(xs.begin(), xs.end());
  auto i = static_cast<std::size_t>(p * static_cast<double>(xs.size() - 1) + 0.5);
  return xs[std::min(i, xs.size() - 1)];
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
  if (opts.json) {
    fmt::print("{{\"bench\":\"agent\",\"children\":{},\"processes_sampled\":{},"
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
  return 0;
}

} // namespace parallax::bench
