#pragma once

// Realistic mixed events for benchmarks and tests: hypervisor metric samples,
// guest process samples and syslog/auth lines, 150-300 bytes encoded, 4-8
// tokens of raw text. Deterministic for a seed.

#include "parallax/schemas/event.hpp"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace parallax::bench {

struct generator_options {
  std::uint64_t seed = 42;
  /// Time of the first event, ns since the epoch.
  time_ns start = 1'795'635'510'000'000'000; // 2026-11-25T19:38:30Z
  /// Spacing between consecutive events.
  time_ns step = 1'000'000; // 1 ms
  std::size_t vms = 50;
  std::size_t hosts = 4;
};

/// An endless, deterministic stream of mixed events, cycling through the
/// three kinds at a 1:2:1 ratio (hypervisor sample, process sample, log
/// line), for workloads too large to hold in memory.
class mixed_generator {
public:
  explicit mixed_generator(const generator_options& opts = {});
  ~mixed_generator();
  mixed_generator(const mixed_generator&) = delete;
  mixed_generator& operator=(const mixed_generator&) = delete;

  event next();

private:
  struct impl;
  impl* impl_;
};

/// The first `n` events of `mixed_generator{opts}`.
std::vector<event> make_mixed_events(std::size_t n,
                                     const generator_options& opts = {});

} // namespace parallax::bench
