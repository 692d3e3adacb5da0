#pragma once

// Which sequence numbers of one source are taken: the store's record of
// committed batches (deduplication by source id and sequence), and the
// correlator's of the batches it has learned from.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace parallax::storage {

/// Every sequence below `floor`, plus the sorted `above` it. Batches can
/// arrive out of order (a client resends old batches after a reconnect
/// while new ones go straight out), so "highest so far" is not enough.
/// When a gap below `above` stays open for more than `max_above`
/// sequences, the floor moves past it: such a sequence is taken as
/// abandoned (a late arrival then counts as seen).
struct source_sequences {
  static constexpr std::size_t max_above = 1024;

  std::uint64_t floor = 0; ///< all sequences < floor are taken
  std::vector<std::uint64_t> above;

  /// Records `seq`; false if it was taken already.
  bool admit(std::uint64_t seq) {
    if (seq < floor)
      return false;
    auto pos = std::lower_bound(above.begin(), above.end(), seq);
    if (pos != above.end() && *pos == seq)
      return false;
    above.insert(pos, seq);
    if (above.size() > max_above) {
      floor = above.front() + 1; // the gaps below it are abandoned
      above.erase(above.begin());
    }
    auto n = std::size_t{0};
    while (n < above.size() && above[n] == floor
           && floor != std::numeric_limits<std::uint64_t>::max()) {
      ++floor;
      ++n;
    }
    above.erase(above.begin(), above.begin() + static_cast<std::ptrdiff_t>(n));
    return true;
  }

  /// The highest sequence taken (floor - 1 when `above` is empty).
  std::uint64_t highest() const {
    return above.empty() ? floor - 1 : above.back();
  }
};

} // namespace parallax::storage
