#pragma once

// Cumulative counters to per-second rates, for the hypervisor inputs
// (libvirt CPU time and NIC bytes, collectd derive values). A counter that
// goes backwards (the domain restarted, the counter wrapped) restarts the
// series: no rate for that sample, never a negative one.

#include "parallax/schemas/event.hpp"

#include <optional>
#include <string>
#include <unordered_map>

namespace parallax {

class rate_tracker {
public:
  /// Records `value` of series `key` at `t`; returns the rate per second
  /// since the previous sample, or nullopt for the first sample, a counter
  /// that went backwards, or a time that did not advance.
  std::optional<double> update(const std::string& key, time_ns t,
                               double value);

  /// Forgets series not updated since `t` (domains that went away).
  void expire_before(time_ns t);

  std::size_t size() const noexcept {
    return last_.size();
  }

private:
  struct sample {
    time_ns t;
    double value;
  };
  std::unordered_map<std::string, sample> last_;
};

} // namespace parallax
