#pragma once

// Self-metrics: every component reports the same counters, named after
// Vector's instrumentation spec, so an operator can see where events go:
//   <component>_received_events_total, <component>_sent_events_total,
//   <component>_dropped_events_total{reason=...}, <component>_errors_total{reason=...}
//
// Caveats: looking a counter up takes a lock; hot paths look it up once and
// keep the reference, which stays valid for the registry's lifetime. Adding
// is a relaxed atomic increment.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace parallax {

/// A monotonically increasing count.
class counter {
public:
  void add(std::uint64_t n = 1) noexcept {
    value_.fetch_add(n, std::memory_order_relaxed);
  }
  std::uint64_t value() const noexcept {
    return value_.load(std::memory_order_relaxed);
  }

private:
  std::atomic<std::uint64_t> value_{0};
};

/// One counter's identity and value at snapshot time.
struct metric_sample {
  std::string component;
  std::string name;   ///< e.g. "received_events_total"
  std::string reason; ///< empty when the counter has no reason label
  std::uint64_t value = 0;
};

class metrics_registry {
public:
  /// The counter for (component, name, reason), created at zero on first use.
  counter& get(std::string_view component, std::string_view name,
               std::string_view reason = {});

  /// All counters, sorted by component, name and reason.
  std::vector<metric_sample> snapshot() const;

  /// Prometheus text exposition format, one line per counter:
  ///   parallax_collector_errors_total{reason="truncated"} 3
  std::string render_prometheus() const;

private:
  using key = std::tuple<std::string, std::string, std::string>;
  mutable std::mutex mtx_;
  std::map<key, std::unique_ptr<counter>, std::less<>> counters_;
};

} // namespace parallax
