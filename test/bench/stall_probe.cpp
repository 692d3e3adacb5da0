// The machine-stall probe of `parallax bench correlate`.

#include "parallax/bench/stall_probe.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <thread>

using namespace parallax;
using namespace parallax::bench;
using namespace std::chrono_literals;

TEST_CASE("stall probe: intervals that overlap a stall are counted once "
          "each") {
  std::vector<stall> stalls = {{100, 110}, {200, 260}, {300, 301}};
  std::vector<stall> intervals = {
    {90, 100},  // ends where the first stall begins: no
    {95, 105},  // yes
    {105, 205}, // yes (two stalls, counted once)
    {150, 199}, // between: no
    {250, 400}, // yes
    {301, 500}, // after the last: no
    {120, 130}, // no (out of order on purpose)
  };
  CHECK(overlapping(stalls, intervals) == 3);
  // Stalls of two CPUs overlap each other; a long interval before a short
  // one must not make the short one count.
  std::vector<stall> two_cpus = {{100, 400}, {150, 160}, {500, 510}};
  CHECK(overlapping(two_cpus, {{0, 600}, {410, 420}, {300, 305},
                               {505, 506}}) == 3);
  CHECK(overlapping({}, intervals) == 0);
  CHECK(overlapping(stalls, {}) == 0);
}

TEST_CASE("stall probe: wakes about once a millisecond and reports what it "
          "saw") {
  stall_probe probe;
  std::this_thread::sleep_for(300ms);
  auto f = probe.stop();
  // One wakeup a millisecond per probe, less what stalls took (each stall
  // skips the wakeups it missed); a loaded machine may make fewer, never
  // more.
  REQUIRE(f.probes >= 1);
  CHECK(f.seconds >= 0.3);
  auto ms = f.seconds * 1000;
  CHECK(static_cast<double>(f.wakeups) <= static_cast<double>(f.probes) * (ms + 2));
  CHECK(static_cast<double>(f.wakeups) >= static_cast<double>(f.probes) * 100);
  CHECK(f.steal_pct >= 0); // this is Linux: /proc/stat is there
  CHECK(f.steal_pct <= 100);
  double longest = 0, sum = 0;
  for (const auto& s : f.stalls) {
    CHECK(s.to - s.from > 1'000'000); // over the 1 ms threshold
    longest = std::max(longest, static_cast<double>(s.to - s.from) / 1e6);
    sum += static_cast<double>(s.to - s.from) / 1e6;
  }
  CHECK(f.max_ms == doctest::Approx(longest));
  CHECK(f.total_ms == doctest::Approx(sum));
}

TEST_CASE("stall probe: times the fixed loop every so many wakeups") {
  // Every 50th wakeup: about 6 samples per probe in 300 ms.
  stall_probe probe{1ms, 1ms, 50};
  std::this_thread::sleep_for(300ms);
  auto f = probe.stop();
  REQUIRE(f.probes >= 1);
  // One sample per 50 wakeups of each probe (each on its own phase).
  CHECK(f.loop_us.size() + f.probes >= f.wakeups / 50);
  CHECK(f.loop_us.size() <= f.wakeups / 50 + f.probes);
  CHECK(std::is_sorted(f.loop_us.begin(), f.loop_us.end()));
  for (auto us : f.loop_us) {
    CHECK(us > 0);
    CHECK(us < 300'000); // within the probe's life
  }
  // The compute loop is timed with every memory loop.
  CHECK(f.compute_us.size() == f.loop_us.size());
  CHECK(std::is_sorted(f.compute_us.begin(), f.compute_us.end()));
  for (auto us : f.compute_us) {
    CHECK(us > 0);
    CHECK(us < 300'000);
  }
  // No samples when asked for none.
  stall_probe quiet{1ms, 1ms, 0};
  std::this_thread::sleep_for(50ms);
  auto q = quiet.stop();
  CHECK(q.loop_us.empty());
  CHECK(q.compute_us.empty());
}

TEST_CASE("stall probe: the fixed loop depends on every step and entry") {
  std::vector<std::uint32_t> table(1024);
  for (std::size_t i = 0; i < table.size(); ++i)
    table[i] = static_cast<std::uint32_t>(i * 2654435761u);
  auto a = speed_loop(table, 10'000);
  CHECK(a == speed_loop(table, 10'000)); // deterministic
  CHECK(a != speed_loop(table, 9'999));
  // It reads the table: change every entry and the result changes.
  auto changed = table;
  for (auto& v : changed)
    v ^= 0x5555u;
  CHECK(a != speed_loop(changed, 10'000));
  CHECK(speed_loop({}, 10) == 0);
  auto c = compute_loop(7, 1'000);
  CHECK(c == compute_loop(7, 1'000));
  CHECK(c != compute_loop(7, 999));
  CHECK(c != compute_loop(9, 1'000));
}
