#include "parallax/pipeline/baseline.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

namespace parallax {

namespace {

// EWMA weight of one step of `r` samples for a time constant of `tau`
// samples: the weight of a gap of r samples equals r steps of one.
double ew(double r, double tau) {
  return tau <= 0 ? 1.0 : -std::expm1(-r / tau);
}

// Gaussian upper tail probability P(Z > z), accurate far into the tail.
// Natural log of the Gaussian upper tail probability P(Z > z), accurate
// far into the tail where erfc underflows (asymptotic expansion).
double log_upper_tail(double z) {
  if (z < 8.0)
    return std::log(0.5 * std::erfc(z / std::sqrt(2.0)));
  constexpr double log_sqrt_2pi = 0.91893853320467274;
  return -0.5 * z * z - std::log(z) - log_sqrt_2pi
         + std::log1p(-1.0 / (z * z));
}

constexpr std::string_view magic = "PXBL";
constexpr std::uint8_t format_version = 1;

class writer {
public:
  void u64(std::uint64_t v) {
    for (int i = 0; i < 8; ++i)
      out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  void f64(double v) {
    u64(std::bit_cast<std::uint64_t>(v));
  }
  void i64(std::int64_t v) {
    u64(static_cast<std::uint64_t>(v));
  }
  std::string& bytes() {
    return out_;
  }

private:
  std::string out_;
};

class reader {
public:
  explicit reader(std::string_view in) : in_{in} {
  }
  std::uint64_t u64() {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
      v |= static_cast<std::uint64_t>(static_cast<unsigned char>(in_[pos_ + i]))
           << (8 * i);
    pos_ += 8;
    return v;
  }
  double f64() {
    return std::bit_cast<double>(u64());
  }
  std::int64_t i64() {
    return static_cast<std::int64_t>(u64());
  }

private:
  std::string_view in_;
  std::size_t pos_ = magic.size() + 1;
};

// Fixed part of the saved state: the count of 8-byte numbers written by
// save() before the profile buckets.
constexpr std::size_t fixed_numbers = 28;

} // namespace

std::string_view to_string(severity s) noexcept {
  switch (s) {
    case severity::normal:
      return "normal";
    case severity::warning:
      return "warning";
    case severity::critical:
      return "critical";
  }
  return "unknown";
}

baseline::baseline(baseline_options opts)
  : opts_{opts},
    unit_{ew(1.0, opts.short_samples), ew(1.0, opts.dist_samples),
          ew(1.0, opts.level_samples), ew(1.0, opts.scale_samples),
          ew(1.0, opts.long_samples)},
    season_(opts.season_buckets) {
}

std::size_t baseline::bucket_of(time_ns t) const {
  if (season_.empty() || opts_.season_period <= 0)
    return 0;
  auto p = opts_.season_period;
  auto phase = ((t % p) + p) % p; // times before 1970 too
  auto b = static_cast<std::size_t>(
    static_cast<double>(phase) / static_cast<double>(p)
    * static_cast<double>(season_.size()));
  return std::min(b, season_.size() - 1);
}

double baseline::expected_at(std::size_t b, bool& seasonal) const {
  seasonal = false;
  if (season_.empty())
    return level_;
  // The profile must cover every bucket (one full period) and explain the
  // series clearly better than the plain level.
  bool ready = std::all_of(season_.begin(), season_.end(), [&](const bucket& k) {
    return k.count >= opts_.season_min_samples;
  });
  if (ready && season_scale_ < opts_.season_gain * scale_) {
    seasonal = true;
    return level_ + season_[b].mean;
  }
  return level_;
}

baseline::verdict baseline::update(time_ns t, double x) {
  verdict v;
  v.state = current_state();
  if (!std::isfinite(x)) {
    ++ignored_;
    v.ignored = true;
    v.warm = n_ >= opts_.warmup_samples
             && last_t_ - first_t_ >= opts_.warmup_time;
    v.sev = open_ ? alert_.sev : severity::normal;
    return v;
  }
  v.value = x;
  if (n_ == 0) {
    first_t_ = last_t_ = t;
    level_ = x;
    ++n_;
    v.expected = v.level = x;
    return v;
  }
  // Step length in samples from the event-time delta (see the header).
  double r = 1.0;
  auto d = static_cast<double>(t - last_t_);
  if (d > 0) {
    if (dt_ <= 0)
      dt_ = d;
    else {
      r = std::clamp(d / dt_, 0.05, 1000.0);
      // Geometric EWMA of the spacing, each step's influence bounded, so a
      // few gaps or bursts do not move it much. (A step of exactly dt_
      // leaves it as it is: log(1) is 0.)
      if (d != dt_)
        dt_ *= std::exp(0.05 * std::clamp(std::log(d / dt_), -1.0, 1.0));
    }
    last_t_ = t;
  }
  ++n_;
  // Early on, run as a plain mean so the first samples are not overweighted.
  double start = 1.0 / static_cast<double>(n_);
  // The weight of this step for a time constant; `unit` is its ew(1, tau).
  auto alpha = [&](double tau, double unit) {
    return std::max(r == 1.0 ? unit : ew(r, tau), start);
  };

  auto b = bucket_of(t);
  bool seasonal = false;
  double expected = expected_at(b, seasonal);
  double floor = std::max({opts_.scale_floor,
                           opts_.scale_floor_rel * std::abs(level_),
                           opts_.scale_floor_long * long_scale_});
  double scale = std::max(seasonal ? season_scale_ : scale_, floor);
  double resid = x - expected;
  double z = std::abs(resid) / scale;
  v.expected = expected;
  v.level = level_;
  v.scale = scale;
  v.deviation = z;
  v.warm = n_ > opts_.warmup_samples && t - first_t_ >= opts_.warmup_time;

  // Score: how unusual the recent deviations are for this series.
  short_ += alpha(opts_.short_samples, unit_.short_w)
            * (std::min(z, opts_.z_cap) - short_);
  if (v.warm) {
    double sd = std::max(std::sqrt(dist_var_), opts_.min_dist_std);
    // -log10 of the tail probability, squashed into [0,1) without
    // saturating (so rare and rarer stay ordered): 0.5 at 1e-5.
    double surprise = -log_upper_tail((short_ - dist_mean_) / sd)
                      / std::log(10.0);
    v.raw_score = -std::expm1(-std::max(0.0, surprise) * std::log(2.0) / 5.0);
    if (quiet_ > 0) {
      quiet_ -= 1;
    } else {
      v.score = v.raw_score;
      if (v.score >= opts_.fire_score)
        quiet_ = opts_.refractory_samples;
    }
  }
  double ad = alpha(opts_.dist_samples, unit_.dist);
  double dm = short_ - dist_mean_;
  dist_mean_ += ad * dm;
  dist_var_ = (1 - ad) * (dist_var_ + ad * dm * dm);

  // Learn. A lasting alert switches to fast, unclipped learning.
  bool adapting = open_ && alert_.samples >= opts_.adapt_after;
  double boost = adapting ? opts_.adapt_boost : 1.0;
  double clip = (adapting || !v.warm) ? std::numeric_limits<double>::infinity()
                                      : opts_.clip;
  // While an alert is open the anomaly does not become the normal, until
  // it lasts `adapt_after` samples (when asked to: freeze_while_open).
  bool frozen = opts_.freeze_while_open && open_ && !adapting;
  double plain_scale = std::max(scale_, floor);
  double r_plain = x - level_;
  if (!frozen) {
    double r_season = seasonal || season_.empty() ? resid
                                                  : x - level_ - season_[b].mean;
    double lim = clip * plain_scale;
    level_ += std::min(1.0, alpha(opts_.level_samples, unit_.level) * boost)
              * std::clamp(r_plain, -lim, lim);
    scale_ += alpha(opts_.scale_samples, unit_.scale)
              * (std::min(std::abs(r_plain), lim) - scale_);
    long_scale_ += alpha(opts_.long_samples, unit_.long_w)
                   * (std::min(std::abs(r_plain), lim) - long_scale_);
    if (!season_.empty()) {
      double slim = clip * std::max(season_scale_, floor);
      season_scale_ += alpha(opts_.scale_samples, unit_.scale)
                       * (std::min(std::abs(r_season), slim) - season_scale_);
      // Per-visit weight: a time constant of `season_samples` periods,
      // whatever the sampling rate.
      auto& k = season_[b];
      double visits = opts_.season_periods;
      if (dt_ > 0)
        visits *= std::max(1.0, static_cast<double>(opts_.season_period)
                                  / (dt_ * static_cast<double>(season_.size())));
      double as = std::max(ew(1.0, visits), 1.0 / (k.count + 1));
      as = std::min(1.0, as * boost);
      double target = x - level_ - k.mean;
      k.mean += as * std::clamp(target, -lim, lim);
      k.count += 1;
    }
  }

  // Alert state machine (hysteresis).
  if (!v.warm)
    return v;
  auto sev_of = [&](double score, double dev) {
    return (dev >= opts_.critical_z || score >= opts_.critical_score)
             ? severity::critical
             : severity::warning;
  };
  if (!open_) {
    if ((v.raw_score >= opts_.open_score && z >= opts_.open_deviation)
        || z >= opts_.hot_deviation) {
      if (above_++ == 0)
        above_since_ = t;
    } else {
      above_ = 0;
    }
    if (above_ >= opts_.open_samples || v.raw_score >= opts_.open_now_score) {
      open_ = true;
      below_ = 0;
      alert_ = alert{};
      alert_.start = above_ > 0 ? above_since_ : t;
      alert_.end = t;
      alert_.peak_score = v.raw_score;
      alert_.peak_value = x;
      alert_.peak_deviation = z;
      alert_.level = v.level;
      alert_.scale = scale;
      alert_.samples = 1;
      alert_.sev = sev_of(v.raw_score, z);
      v.opened = true;
    }
  } else {
    v.updated = true;
    alert_.end = t;
    ++alert_.samples;
    alert_.peak_score = std::max(alert_.peak_score, v.raw_score);
    if (z > alert_.peak_deviation) {
      alert_.peak_deviation = z;
      alert_.peak_value = x;
    }
    alert_.sev = std::max(alert_.sev, sev_of(v.raw_score, z));
    below_ = v.raw_score < opts_.close_score && z < opts_.close_deviation
               ? below_ + 1
               : 0;
    if (below_ >= opts_.close_samples) {
      open_ = false;
      above_ = 0;
      v.resolved = true;
    }
  }
  v.state = current_state();
  v.sev = (open_ || v.resolved) ? alert_.sev : severity::normal;
  return v;
}

std::string baseline::save() const {
  writer w;
  w.bytes().append(magic);
  w.bytes().push_back(static_cast<char>(format_version));
  w.u64(n_);
  w.u64(ignored_);
  w.i64(first_t_);
  w.i64(last_t_);
  w.f64(dt_);
  w.f64(level_);
  w.f64(scale_);
  w.f64(season_scale_);
  w.f64(long_scale_);
  w.f64(short_);
  w.f64(dist_mean_);
  w.f64(dist_var_);
  w.u64(open_ ? 1 : 0);
  w.u64(above_);
  w.u64(below_);
  w.i64(above_since_);
  w.i64(alert_.start);
  w.i64(alert_.end);
  w.f64(alert_.peak_score);
  w.f64(alert_.peak_value);
  w.f64(alert_.peak_deviation);
  w.f64(alert_.level);
  w.f64(alert_.scale);
  w.u64(alert_.samples);
  w.u64(static_cast<std::uint64_t>(alert_.sev));
  w.u64(season_.size());
  w.f64(quiet_);
  w.u64(0); // reserved
  for (const auto& k : season_) {
    w.f64(k.mean);
    w.f64(k.count);
  }
  return std::move(w.bytes());
}

result<baseline> baseline::load(std::string_view bytes, baseline_options opts) {
  auto head = magic.size() + 1;
  if (bytes.size() < head || bytes.substr(0, magic.size()) != magic)
    return error{ec::invalid_value, "baseline state: not a saved baseline"};
  auto version = static_cast<std::uint8_t>(bytes[magic.size()]);
  if (version != format_version)
    return error{ec::unknown_version,
                 "baseline state: format version " + std::to_string(version)
                   + ", this build reads version "
                   + std::to_string(format_version)};
  if (bytes.size() < head + 8 * fixed_numbers)
    return error{ec::invalid_value, "baseline state: truncated"};
  reader in{bytes};
  baseline b{opts};
  b.n_ = in.u64();
  b.ignored_ = in.u64();
  b.first_t_ = in.i64();
  b.last_t_ = in.i64();
  b.dt_ = in.f64();
  b.level_ = in.f64();
  b.scale_ = in.f64();
  b.season_scale_ = in.f64();
  b.long_scale_ = in.f64();
  b.short_ = in.f64();
  b.dist_mean_ = in.f64();
  b.dist_var_ = in.f64();
  b.open_ = in.u64() != 0;
  b.above_ = static_cast<std::uint32_t>(in.u64());
  b.below_ = static_cast<std::uint32_t>(in.u64());
  b.above_since_ = in.i64();
  b.alert_.start = in.i64();
  b.alert_.end = in.i64();
  b.alert_.peak_score = in.f64();
  b.alert_.peak_value = in.f64();
  b.alert_.peak_deviation = in.f64();
  b.alert_.level = in.f64();
  b.alert_.scale = in.f64();
  b.alert_.samples = in.u64();
  auto sev = in.u64();
  if (sev > static_cast<std::uint64_t>(severity::critical))
    return error{ec::invalid_value, "baseline state: bad severity"};
  b.alert_.sev = static_cast<severity>(sev);
  auto buckets = in.u64();
  b.quiet_ = in.f64();
  in.u64();
  if (buckets != opts.season_buckets)
    return error{ec::config_bad_value,
                 "baseline state has " + std::to_string(buckets)
                   + " profile buckets, the options say "
                   + std::to_string(opts.season_buckets)};
  if (bytes.size() != head + 8 * fixed_numbers + 16 * buckets)
    return error{ec::invalid_value, "baseline state: wrong size"};
  for (auto& k : b.season_) {
    k.mean = in.f64();
    k.count = in.f64();
  }
  return b;
}

} // namespace parallax
