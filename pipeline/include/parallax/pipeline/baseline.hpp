#pragma once

// A robust online baseline and drift detector for one metric series (a
// hypervisor-minus-guest delta, or any metric). One `baseline` per series;
// each sample costs O(1) time and the state is a fixed number of doubles
// plus a fixed-size time-of-day profile, so the correlator can keep one per
// (VM, metric) and persist it with `save()`/`load()` across restarts.
//
// Model, per sample (x at event time t):
//
// 1. Expectation. A robust level (EWMA whose update clips the residual at
//    `clip` scale units, so one spike barely moves it) plus, when it fits
//    the series better, a daily profile: `season_buckets` time-of-day
//    buckets, each an EWMA of x minus the level. The profile is used only
//    once every bucket has `season_min_samples` samples and its residuals
//    are clearly smaller than the plain level's (both scales are tracked).
// 2. Scale. An EW mean absolute deviation of the residual (x - expected),
//    never below a floor: max(`scale_floor`, `scale_floor_rel` x |level|,
//    `scale_floor_long` x the long-run scale). A constant series therefore
//    has a finite, small scale and any change stands out.
// 3. Deviation z = |x - expected| / scale (also the severity measure).
// 4. Score in [0,1], like Numenta's "anomaly likelihood": a short EWMA of
//    the clipped deviation is compared with the long-run distribution
//    (EW mean and variance) of that same short average; the Gaussian tail
//    probability q of the excess, as s = -log10(q), is mapped to
//    1 - 2^(-s/5): 0.5 means "1 in 100,000", 0.75 "1 in 10^10"; it never
//    saturates, so rarer stays higher. The (refractory) score is what the
//    NAB benchmark consumes (bench/nab.hpp).
// 5. Alert state machine with hysteresis: a sample is "hot" when its raw
//    score is >= `open_score` and its own deviation >= `open_deviation`, or
//    its deviation alone is >= `hot_deviation` (off by default);
//    an alert opens after `open_samples` consecutive hot samples (a single
//    spike does not open one, however large), or at once on a raw score
//    >= `open_now_score` (off by default). It is updated while open
//    (severity only rises) and resolves after `close_samples` consecutive
//    samples with a raw score below `close_score`. Severity: critical when
//    a deviation reaches `critical_z` scale units while open (or the raw
//    score `critical_score`, off by default), else warning.
//
// Time. Rates are per *sample*, but a sample that arrives after a gap
// counts as dt / typical_dt samples (typical_dt is a robust EWMA of the
// spacing), so irregular spacing, gaps and bursts are handled from event
// time deltas. Samples whose time goes backwards count as one step.
//
// Level-shift policy. While an alert has been open for `adapt_after`
// samples, the level and profile learn `adapt_boost` times faster and
// without clipping, so a lasting shift becomes the new normal: the score
// falls, the alert resolves, and the detector does not stay open forever.
// The short alert before that is the drift report.
//
// Refractory period. The reported `score` signals each episode once:
// after a reported score >= `fire_score`, `score` is 0 for the next
// `refractory_samples` samples (`raw_score` keeps the likelihood, and the
// alert state machine runs on `raw_score`). Consumers that threshold the
// score, such as NAB, then see an episode's onset, not every sample of it.
// The period counts samples, not time (measured better on NAB).
//
// Warm-up. No score (0) and no alert before `warmup_samples` samples and
// `warmup_time` of event time; the model learns meanwhile.
//
// Non-finite samples (NaN, inf) are ignored and counted (`ignored()`).
//
// Caveat: not thread-safe; one owner per series.

#include "parallax/schemas/error.hpp"
#include "parallax/schemas/event.hpp"

#include <array>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace parallax {

/// Tuning of a `baseline`. The defaults are one global configuration, good
/// for 20 s hypervisor/guest metrics and for the NAB corpus (5 min data);
/// NAB's score with them is printed by `parallax bench nab`.
struct baseline_options {
  // -- expectation and scale --------------------------------------------------
  double level_samples = 16;      ///< EWMA time constant of the level (samples)
  double scale_samples = 128;     ///< time constant of the residual scale
  double clip = 5.0;              ///< residuals are clipped here (scale units)
  double scale_floor = 1e-9;      ///< absolute scale floor
  double scale_floor_rel = 1e-2;  ///< scale floor relative to |level|
  double scale_floor_long = 0.5;  ///< floor relative to the long-run scale
  double long_samples = 2000;     ///< time constant of the long-run scale
  // -- daily profile ------------------------------------------------------------
  std::size_t season_buckets = 48;     ///< time-of-day buckets; 0 disables
  time_ns season_period = 86'400'000'000'000; ///< one day
  double season_periods = 4;           ///< EWMA time constant (periods)
  double season_min_samples = 3;       ///< samples per bucket before use
  double season_gain = 0.5;            ///< used if its scale < gain x plain
  // -- score (anomaly likelihood) -------------------------------------------
  double z_cap = 20.0;            ///< deviation cap before averaging
  double short_samples = 4;       ///< short average of the deviation
  double dist_samples = 4000;     ///< long-run distribution of that average
  double min_dist_std = 0.05;     ///< floor of that distribution's std
  // -- refractory period ----------------------------------------------------
  double fire_score = 0.55;       ///< a reported score this high ...
  double refractory_samples = 100;///< ... silences `score` this long
  // -- warm-up -------------------------------------------------------------------
  std::uint64_t warmup_samples = 200;
  time_ns warmup_time = 0;
  // -- alerts ----------------------------------------------------------------------
  double open_score = 0.5;        ///< a sample is "hot" with this score ...
  double open_deviation = 3.0;    ///< ... and this deviation (scale units)
  std::uint32_t open_samples = 3; ///< consecutive hot samples open an alert
  double open_now_score = 2.0;    ///< opens at once (> 1: never)
  /// A sample is also hot with this deviation alone, whatever its score
  /// (infinite: off). The score needs a long history to mean much; live
  /// monitoring of a fresh series wants large sustained shifts reported
  /// from the end of the warm-up on (the correlator sets 6).
  double hot_deviation = std::numeric_limits<double>::infinity();
  /// An open alert counts towards resolving only while the deviation is
  /// also below this (infinite: the score alone decides).
  double close_deviation = std::numeric_limits<double>::infinity();
  double close_score = 0.3;       ///< below this for `close_samples` resolves
  std::uint32_t close_samples = 10;
  double critical_z = 8.0;        ///< deviation (scale units) for critical
  double critical_score = 2.0;    ///< or raw score for critical (> 1: off)
  std::uint32_t adapt_after = 30; ///< open samples before the level re-learns
  /// While an alert is open (and not yet adapting) nothing is learned: the
  /// baseline stays what it was before the anomaly, so the alert lasts as
  /// long as the anomaly (up to `adapt_after` samples). Off for NAB.
  bool freeze_while_open = false;
  double adapt_boost = 4.0;       ///< learning-rate factor while adapting
};

/// How bad an open alert is; ordered (normal < warning < critical).
enum class severity : std::uint8_t { normal = 0, warning = 1, critical = 2 };

std::string_view to_string(severity s) noexcept;

/// A per-series online baseline and drift detector (see the top of this
/// file for the model and the policies).
class baseline {
public:
  enum class state : std::uint8_t { normal = 0, open = 1 };

  /// What one sample did.
  struct verdict {
    double score = 0;     ///< anomaly score in [0,1]; 0 while warming up
                          ///< and in the refractory period
    double raw_score = 0; ///< the score without the refractory period
    double value = 0;     ///< the sample
    double expected = 0;  ///< expected value (level + profile) before it
    double level = 0;     ///< level before this sample
    double scale = 0;     ///< scale before this sample (floored)
    double deviation = 0; ///< |value - expected| / scale
    bool warm = false;    ///< past the warm-up
    bool ignored = false; ///< non-finite sample: nothing else changed
    baseline::state state = baseline::state::normal; ///< after this sample
    bool opened = false;   ///< an alert opened on this sample
    bool updated = false;  ///< an open alert saw this sample
    bool resolved = false; ///< the alert resolved on this sample
    severity sev = severity::normal; ///< of the open alert (max so far)
  };

  /// The open (or just resolved) alert's evidence.
  struct alert {
    time_ns start = 0;       ///< first of the hot samples that opened it
    time_ns end = 0;         ///< last sample seen while open
    double peak_score = 0;   ///< highest score while open
    double peak_value = 0;   ///< the sample with the highest deviation
    double peak_deviation = 0;
    double level = 0;        ///< level when the alert opened
    double scale = 0;        ///< scale when the alert opened
    std::uint64_t samples = 0; ///< samples while open
    severity sev = severity::normal;
  };

  explicit baseline(baseline_options opts = {});

  /// Feeds one sample. Non-finite values are ignored (counted).
  verdict update(time_ns t, double x);

  /// The current or last alert.
  const alert& current_alert() const noexcept {
    return alert_;
  }
  state current_state() const noexcept {
    return open_ ? state::open : state::normal;
  }
  std::uint64_t samples() const noexcept {
    return n_;
  }
  std::uint64_t ignored() const noexcept {
    return ignored_;
  }
  const baseline_options& options() const noexcept {
    return opts_;
  }

  /// The whole state as a compact, versioned byte string (little-endian;
  /// 8 bytes per number plus 16 per profile bucket).
  std::string save() const;

  /// Restores a state saved by `save()`. Fails with `invalid_value` on a
  /// wrong magic or size, `unknown_version` on a newer format, and
  /// `config_bad_value` if `opts` has another number of profile buckets.
  /// Subsequent verdicts equal those of the saved detector.
  static result<baseline> load(std::string_view bytes, baseline_options opts);

private:
  double expected_at(std::size_t bucket, bool& seasonal) const;
  std::size_t bucket_of(time_ns t) const;

  baseline_options opts_;
  /// ew(1, tau) of the five time constants, from opts_ (not saved): a
  /// step of exactly one sample is the usual one (windows come at their
  /// interval), and expm1 was a quarter of update()'s cost.
  struct unit_weights {
    double short_w, dist, level, scale, long_w;
  } unit_;
  // Everything below is saved.
  std::uint64_t n_ = 0;        // finite samples seen
  std::uint64_t ignored_ = 0;  // non-finite samples
  time_ns first_t_ = 0;
  time_ns last_t_ = 0;
  double dt_ = 0;              // typical spacing (ns), 0 = unknown
  double level_ = 0;
  double scale_ = 0;           // EW abs deviation from the plain level
  double season_scale_ = 0;    // EW abs deviation from level + profile
  double long_scale_ = 0;      // slow EW abs deviation (for the floor)
  double short_ = 0;           // short average of the capped deviation
  double dist_mean_ = 0;       // long-run mean of `short_`
  double dist_var_ = 0;        // long-run variance of `short_`
  bool open_ = false;
  std::uint32_t above_ = 0;    // consecutive hot samples
  std::uint32_t below_ = 0;    // consecutive samples < close_score (open)
  double quiet_ = 0;           // refractory samples left
  time_ns above_since_ = 0;
  alert alert_;
  struct bucket {
    double mean = 0;  // EWMA of x - level in this time-of-day bucket
    double count = 0; // samples seen (saturating use)
  };
  std::vector<bucket> season_;
};

} // namespace parallax
