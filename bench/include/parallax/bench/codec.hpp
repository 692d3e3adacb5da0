#pragma once

#include <cstddef>

namespace parallax::bench {

struct codec_options {
  std::size_t events = 1'000'000; ///< events per run
  std::size_t batch = 100;        ///< events per frame
  std::size_t runs = 5;           ///< repetitions; the median is reported
  bool json = false;              ///< one machine-readable line instead of a table
};

/// `parallax bench codec`: encode and decode rates of the wire format on
/// realistic mixed events, next to two peers measured in the same run:
/// decoding into owning structs, and msgpack-cxx's unpack into its object
/// tree plus a walk over it. Returns a process exit code.
int run_codec(const codec_options& opts);

} // namespace parallax::bench
