#include "parallax/pipeline/baseline.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

using namespace parallax;

namespace {

constexpr time_ns step = 20'000'000'000; // 20 s, the hypervisor cadence

// Deterministic uniform noise in [-0.5, 0.5) (a 64-bit LCG), so every
// expected outcome below is reproducible.
struct noise {
  std::uint64_t s = 42;
  double operator()() {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<double>(s >> 11) * 0x1.0p-53 - 0.5;
  }
};

// Feeds `n` samples of 100 + 2*noise (sd ~0.58) at 20 s spacing.
void feed_normal(baseline& b, time_ns& t, noise& rnd, int n) {
  for (int i = 0; i < n; ++i)
    b.update(t += step, 100 + 2 * rnd());
}

} // namespace

TEST_CASE("baseline: warm-up suppresses scores and alerts") {
  baseline b{};
  noise rnd;
  time_ns t = 0;
  // A huge excursion during the first 200 samples (the default warm-up)
  // gives neither a score nor an alert.
  for (int i = 0; i < 200; ++i) {
    auto v = b.update(t += step, i >= 100 && i < 150 ? 1e6 : 100 + 2 * rnd());
    CHECK_FALSE(v.warm);
    CHECK(v.score == 0);
    CHECK_FALSE(v.opened);
    CHECK(v.state == baseline::state::normal);
  }
  // Afterwards the detector is warm.
  CHECK(b.update(t += step, 100).warm);

  // warmup_time also holds it back: 10 samples but only 90 s of event time.
  baseline_options o;
  o.warmup_samples = 5;
  o.warmup_time = 100'000'000'000; // 100 s
  baseline c{o};
  time_ns u = 0;
  for (int i = 0; i < 10; ++i)
    CHECK_FALSE(c.update(u += 10'000'000'000, 1.0).warm);
  CHECK(c.update(u += 10'000'000'000, 1.0).warm); // 100 s after the first
}

TEST_CASE("baseline: a single spike does not open an alert, a shift does") {
  baseline b{};
  noise rnd;
  time_ns t = 0;
  feed_normal(b, t, rnd, 600);
  SUBCASE("single spikes, however large, do not open") {
    for (double spike : {6.0, 50.0, 1e6}) {
      bool fired = false, opened = false;
      for (int i = 0; i < 40; ++i) {
        auto v = b.update(t += step, 100 + 2 * rnd() + (i == 0 ? spike : 0));
        fired |= v.score > 0.9; // the score does report the spike
        opened |= v.opened;
      }
      CHECK(fired);
      CHECK_FALSE(opened);
      CHECK(b.current_state() == baseline::state::normal);
      feed_normal(b, t, rnd, 300);
    }
  }
  SUBCASE("a sustained shift opens, and the alert resolves after it ends") {
    // +10 (about 17 noise sd, 10 scale units) for 20 samples.
    int opened_at = -1, resolved_at = -1;
    for (int i = 0; i < 200; ++i) {
      auto v = b.update(t += step, 100 + 2 * rnd() + (i < 20 ? 10 : 0));
      if (v.opened && opened_at < 0)
        opened_at = i;
      if (v.resolved && resolved_at < 0)
        resolved_at = i;
    }
    // Three consecutive hot samples open it: the third sample of the shift.
    CHECK(opened_at == 2);
    CHECK(resolved_at > 20);
    CHECK(b.current_state() == baseline::state::normal);
    const auto& a = b.current_alert();
    CHECK(a.start < a.end);
    CHECK(a.samples >= 20);
    CHECK(a.peak_deviation >= 5);
    CHECK(a.level == doctest::Approx(100).epsilon(0.01));
  }
}

TEST_CASE("baseline: a lasting level shift becomes the new normal") {
  // Policy (header): while open the level re-learns quickly, so an alert
  // over a permanent shift resolves instead of staying open forever.
  baseline b{};
  noise rnd;
  time_ns t = 0;
  feed_normal(b, t, rnd, 600);
  bool opened = false;
  baseline::verdict v;
  for (int i = 0; i < 500; ++i) {
    v = b.update(t += step, 150 + 2 * rnd());
    opened |= v.opened;
  }
  CHECK(opened);
  CHECK(v.state == baseline::state::normal);
  CHECK(v.level == doctest::Approx(150).epsilon(0.01));
  CHECK(v.score < 0.5);
}

TEST_CASE("baseline: severity grows with the deviation") {
  auto peak_severity = [](double shift) {
    baseline b{};
    noise rnd;
    time_ns t = 0;
    feed_normal(b, t, rnd, 600);
    severity worst = severity::normal;
    for (int i = 0; i < 30; ++i) {
      auto v = b.update(t += step, 100 + 2 * rnd() + (i < 10 ? shift : 0));
      if (v.sev > worst)
        worst = v.sev;
    }
    return worst;
  };
  // The scale is floored at 1% of the level (1.0 here): +5 is 5 scale
  // units (warning, below critical_z = 8), +30 is 30 (critical).
  CHECK(peak_severity(0.0) == severity::normal);
  CHECK(peak_severity(5.0) == severity::warning);
  CHECK(peak_severity(30.0) == severity::critical);
  CHECK(severity::normal < severity::warning);
  CHECK(severity::warning < severity::critical);
  CHECK(to_string(severity::critical) == "critical");
}

TEST_CASE("baseline: a constant series has a finite scale and flags change") {
  baseline b{};
  time_ns t = 0;
  baseline::verdict v;
  for (int i = 0; i < 500; ++i) {
    v = b.update(t += step, 45.0);
    CHECK(std::isfinite(v.score));
    CHECK_FALSE(v.opened);
  }
  // Nothing unusual: the score is the floor of the likelihood mapping
  // (a tail probability of 1/2 reads 0.04).
  CHECK(v.score < 0.1);
  CHECK(v.scale > 0); // the floor: 1% of |level| = 0.45
  CHECK(v.scale == doctest::Approx(0.45));
  // A constant 0 (|level| floor does not help) still has a positive scale.
  baseline z{};
  time_ns u = 0;
  for (int i = 0; i < 300; ++i)
    v = z.update(u += step, 0.0);
  CHECK(v.scale > 0);
  CHECK(v.score < 0.1);
  // A sustained change of a constant series opens an alert.
  bool opened = false;
  for (int i = 0; i < 10; ++i)
    opened |= b.update(t += step, 50.0).opened;
  CHECK(opened);
}

TEST_CASE("baseline: non-finite samples are ignored and counted") {
  baseline b{};
  time_ns t = 0;
  noise rnd;
  feed_normal(b, t, rnd, 300);
  auto before = b.save();
  for (double x : {std::numeric_limits<double>::quiet_NaN(),
                   std::numeric_limits<double>::infinity(),
                   -std::numeric_limits<double>::infinity()}) {
    auto v = b.update(t += step, x);
    CHECK(v.ignored);
    CHECK(v.score == 0);
  }
  CHECK(b.ignored() == 3);
  CHECK(b.samples() == 300);
  // Nothing but the counter changed: the state saved before them gives
  // the same verdicts from here on.
  auto restored = baseline::load(before, baseline_options{});
  REQUIRE(restored);
  CHECK(restored->ignored() == 0);
  for (int i = 0; i < 50; ++i) {
    double x = 100 + 2 * rnd();
    t += step;
    CHECK(b.update(t, x).score == restored->update(t, x).score);
  }
}

TEST_CASE("baseline: irregular time stamps") {
  // The same series sampled every 20 s, and with random spacing between
  // 5 s and 35 s plus a 30 min gap and bursts with repeated time stamps:
  // no alerts on plain noise, and the level follows.
  baseline b{};
  noise rnd, gap;
  time_ns t = 0;
  baseline::verdict v;
  int opened = 0;
  for (int i = 0; i < 2000; ++i) {
    time_ns dt = static_cast<time_ns>((20 + 30 * gap()) * 1e9);
    if (i == 1000)
      dt = 1'800'000'000'000; // 30 min gap
    if (i % 97 == 0)
      dt = 0; // a repeated time stamp
    v = b.update(t += dt, 100 + 2 * rnd());
    opened += v.opened;
  }
  CHECK(opened == 0);
  CHECK(v.level == doctest::Approx(100).epsilon(0.01));
  // A time going backwards counts as one step: still no alert.
  v = b.update(t - 3'600'000'000'000, 100);
  CHECK_FALSE(v.opened);
  CHECK(std::isfinite(v.score));
}

TEST_CASE("baseline: save and load give identical subsequent verdicts") {
  baseline_options o;
  baseline a{o};
  noise rnd;
  time_ns t = 1'700'000'000'000'000'000; // a realistic epoch time
  // A daily pattern at 5 min spacing for 3 days (the profile fills), then
  // an alert that is open at the moment of saving.
  auto x_at = [&](int i) {
    return 50 + 20 * std::sin(i * 2 * 3.14159265358979 / 288) + rnd();
  };
  int i = 0;
  for (; i < 3 * 288; ++i)
    a.update(t += 300'000'000'000, x_at(i));
  for (int k = 0; k < 5; ++k, ++i)
    a.update(t += 300'000'000'000, x_at(i) + 80);
  auto bytes = a.save();
  auto b = baseline::load(bytes, o);
  REQUIRE(b);
  CHECK(b->save() == bytes);
  CHECK(b->current_state() == a.current_state());
  for (int k = 0; k < 1000; ++k, ++i) {
    double x = x_at(i) + (k % 300 < 10 ? 60 : 0);
    auto va = a.update(t += 300'000'000'000, x);
    auto vb = b->update(t, x);
    REQUIRE(va.score == vb.score);
    REQUIRE(va.raw_score == vb.raw_score);
    REQUIRE(va.level == vb.level);
    REQUIRE(va.scale == vb.scale);
    REQUIRE(va.state == vb.state);
    REQUIRE(va.opened == vb.opened);
    REQUIRE(va.resolved == vb.resolved);
    REQUIRE(va.sev == vb.sev);
  }
  // Bad input is rejected with a typed error.
  CHECK(baseline::load("nonsense", o).error().code == ec::invalid_value);
  CHECK(baseline::load(bytes.substr(0, bytes.size() - 1), o).error().code
        == ec::invalid_value);
  auto newer = bytes;
  newer[4] = 9;
  CHECK(baseline::load(newer, o).error().code == ec::unknown_version);
  baseline_options other = o;
  other.season_buckets = 24;
  CHECK(baseline::load(bytes, other).error().code == ec::config_bad_value);
  // The state is compact: fixed part + 16 bytes per profile bucket.
  CHECK(bytes.size() == 5 + 8 * 28 + 16 * o.season_buckets);
}
