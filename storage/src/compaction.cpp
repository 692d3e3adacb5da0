#include "parallax/storage/compaction.hpp"

namespace parallax::storage {

std::vector<std::int64_t>
compaction_policy::due(const std::vector<bucket_info>& catalog,
                       clock::time_point now) {
  std::vector<std::int64_t> out;
  std::map<std::int64_t, seen> next;
  for (const auto& b : catalog) {
    auto [it, fresh] = seen_.try_emplace(b.id, seen{b.events, now});
    auto s = it->second;
    if (!fresh && s.events != b.events)
      s = {b.events, now};
    next.emplace(b.id, s);
    if (b.events <= b.compacted_events || b.events > max_events_)
      continue; // nothing new since the last compaction, or too large
    // A bucket seen for the first time may have been quiet for long (a
    // restart): it counts as quiet from now.
    auto quiet_for = now - s.changed;
    bool grown = b.compacted_events == 0
                 || b.events - b.compacted_events >= b.compacted_events / 2;
    if ((quiet_for >= quiet_ && grown) || quiet_for >= settle_)
      out.push_back(b.id);
  }
  seen_ = std::move(next);
  return out;
}

} // namespace parallax::storage
