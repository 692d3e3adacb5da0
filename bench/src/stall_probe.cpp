#include "parallax/bench/stall_probe.hpp"

#include <algorithm>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>

#include <pthread.h>
#include <sched.h>

namespace parallax::bench {

namespace {

// The "cpu" line of /proc/stat: steal ticks and all ticks; false when it
// cannot be read.
bool cpu_ticks(std::uint64_t& steal, std::uint64_t& all) {
  std::ifstream f{"/proc/stat"};
  std::string line;
  if (!std::getline(f, line) || !line.starts_with("cpu "))
    return false;
  std::istringstream in{line.substr(4)};
  // user nice system idle iowait irq softirq steal (guest, guest_nice are
  // in user and nice already)
  std::uint64_t v[8] = {};
  for (auto& x : v)
    if (!(in >> x))
      return false;
  steal = v[7];
  all = 0;
  for (auto x : v)
    all += x;
  return true;
}

} // namespace

std::uint64_t speed_loop(const std::vector<std::uint32_t>& table,
                         std::size_t steps) {
  if (table.empty())
    return 0;
  auto mask = table.size() - 1;
  std::uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (std::size_t i = 0; i < steps; ++i)
    x = x * 0xd6e8feb86659fd93ULL + table[(x >> 29) & mask];
  return x;
}

std::uint64_t compute_loop(std::uint64_t seed, std::size_t steps) {
  auto x = seed | 1;
  for (std::size_t i = 0; i < steps; ++i)
    x = x * 0xd6e8feb86659fd93ULL + i;
  return x;
}

stall_probe::stall_probe(std::chrono::microseconds period,
                         std::chrono::microseconds threshold,
                         std::size_t speed_every)
  : period_{period}, threshold_{threshold}, speed_every_{speed_every} {
  if (!cpu_ticks(steal_ticks_, all_ticks_))
    all_ticks_ = 0;
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  std::vector<int> cpus;
  if (::sched_getaffinity(0, sizeof allowed, &allowed) == 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &allowed))
        cpus.push_back(c);
  }
  if (cpus.empty())
    cpus.push_back(-1); // unpinned
  started_ = std::chrono::steady_clock::now();
  probes_ = std::vector<cpu_probe>(cpus.size());
  for (std::size_t i = 0; i < cpus.size(); ++i)
    probes_[i].thread = std::thread{
      [this, cpu = cpus[i], &p = probes_[i],
       phase = speed_every_ * i / cpus.size()] {
        run(cpu, phase, p.figures);
      }};
}

stall_probe::~stall_probe() {
  stop();
}

stall_figures stall_probe::stop() {
  stall_figures all;
  if (std::exchange(stopped_, true))
    return all;
  stop_.store(true);
  all.real_time = true;
  for (auto& p : probes_) {
    if (p.thread.joinable())
      p.thread.join();
    all.real_time = all.real_time && p.figures.real_time;
    all.wakeups += p.figures.wakeups;
    all.max_ms = std::max(all.max_ms, p.figures.max_ms);
    all.total_ms += p.figures.total_ms;
    all.stalls.insert(all.stalls.end(), p.figures.stalls.begin(),
                      p.figures.stalls.end());
    all.loop_us.insert(all.loop_us.end(), p.figures.loop_us.begin(),
                       p.figures.loop_us.end());
    all.compute_us.insert(all.compute_us.end(), p.figures.compute_us.begin(),
                          p.figures.compute_us.end());
  }
  std::sort(all.loop_us.begin(), all.loop_us.end());
  std::sort(all.compute_us.begin(), all.compute_us.end());
  all.probes = probes_.size();
  all.seconds = std::chrono::duration<double>(
                  std::chrono::steady_clock::now() - started_)
                  .count();
  std::sort(all.stalls.begin(), all.stalls.end(),
            [](const stall& a, const stall& b) { return a.from < b.from; });
  std::uint64_t steal = 0, ticks = 0;
  if (all_ticks_ > 0 && cpu_ticks(steal, ticks) && ticks > all_ticks_)
    all.steal_pct = 100.0 * static_cast<double>(steal - steal_ticks_)
                    / static_cast<double>(ticks - all_ticks_);
  return all;
}

void stall_probe::run(int cpu, std::size_t phase, stall_figures& out) {
  if (cpu >= 0) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    ::pthread_setaffinity_np(::pthread_self(), sizeof one, &one);
  }
  sched_param sp{};
  sp.sched_priority = ::sched_get_priority_max(SCHED_FIFO);
  out.real_time
    = ::pthread_setschedparam(::pthread_self(), SCHED_FIFO, &sp) == 0;
  auto period = std::chrono::nanoseconds{period_}.count();
  auto threshold = std::chrono::nanoseconds{threshold_}.count();
  // The deadlines on the monotonic clock; the stalls reported on now_ns()'s
  // (the clock the benchmark's latencies are taken on).
  auto mono = [](const timespec& t) {
    return static_cast<time_ns>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
  };
  // 1 MiB: more than a core's own caches hold on most machines, so the
  // loop feels the shared ones. 3,000 steps: about 0.4 ms here, each read
  // waiting for the one before (the table has left the caches in the
  // second between samples), once a second per CPU. The probes take turns
  // (`phase`): never all CPUs at once, and no two loops compete.
  constexpr std::size_t loop_steps = 3'000;
  std::vector<std::uint32_t> table;
  if (speed_every_ > 0) {
    table.resize(std::size_t{1} << 18);
    std::uint32_t r = 2463534242u;
    for (auto& v : table) {
      r ^= r << 13;
      r ^= r >> 17;
      r ^= r << 5;
      v = r;
    }
  }
  std::uint64_t sink = 0;
  timespec next{};
  ::clock_gettime(CLOCK_MONOTONIC, &next);
  auto deadline = mono(next);
  while (!stop_.load(std::memory_order_relaxed)) {
    if (speed_every_ > 0
        && (out.wakeups + phase) % speed_every_ == speed_every_ / 2) {
      timespec a{}, b{};
      ::clock_gettime(CLOCK_MONOTONIC, &a);
      sink += speed_loop(table, loop_steps);
      ::clock_gettime(CLOCK_MONOTONIC, &b);
      out.loop_us.push_back(static_cast<double>(mono(b) - mono(a)) / 1e3);
      // About 0.1 ms: 4 cycles a step.
      sink += compute_loop(sink, 100'000);
      ::clock_gettime(CLOCK_MONOTONIC, &a);
      out.compute_us.push_back(static_cast<double>(mono(a) - mono(b)) / 1e3);
      ::clock_gettime(CLOCK_MONOTONIC, &next);
      deadline = std::max(deadline, mono(next)); // its time is no stall
    }
    deadline += period;
    next.tv_sec = static_cast<time_t>(deadline / 1'000'000'000);
    next.tv_nsec = static_cast<long>(deadline % 1'000'000'000);
    ::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr);
    timespec woke{};
    ::clock_gettime(CLOCK_MONOTONIC, &woke);
    auto late = mono(woke) - deadline;
    ++out.wakeups;
    if (late > threshold) {
      auto now = now_ns();
      out.stalls.push_back({now - late, now});
      auto ms = static_cast<double>(late) / 1e6;
      out.max_ms = std::max(out.max_ms, ms);
      out.total_ms += ms;
      deadline = mono(woke); // no burst of wakeups to catch up
    }
  }
  [[maybe_unused]] volatile std::uint64_t keep = sink; // the loops count
}

std::size_t overlapping(const std::vector<stall>& stalls,
                        const std::vector<stall>& intervals) {
  // An interval overlaps a stall when, of the stalls starting before it
  // ends, the one ending last ends after it starts. The stalls (one list
  // per CPU, merged) may overlap each other: by start, with the running
  // maximum of their ends.
  auto by_start = stalls;
  std::sort(by_start.begin(), by_start.end(),
            [](const stall& a, const stall& b) { return a.from < b.from; });
  std::vector<time_ns> latest_end(by_start.size());
  time_ns latest = INT64_MIN;
  for (std::size_t i = 0; i < by_start.size(); ++i)
    latest_end[i] = latest = std::max(latest, by_start[i].to);
  std::size_t n = 0;
  for (const auto& iv : intervals) {
    auto k = static_cast<std::size_t>(
      std::partition_point(by_start.begin(), by_start.end(),
                           [&](const stall& st) { return st.from < iv.to; })
      - by_start.begin());
    n += k > 0 && latest_end[k - 1] > iv.from;
  }
  return n;
}

} // namespace parallax::bench
