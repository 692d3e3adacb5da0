#include "parallax/pipeline/rates.hpp"

namespace parallax {

std::optional<double> rate_tracker::update(const std::string& key, time_ns t,
                                           double value) {
  auto [it, fresh] = last_.try_emplace(key, sample{t, value});
  if (fresh)
    return std::nullopt;
  auto prev = it->second;
  if (t <= prev.t)
    return std::nullopt; // keep the older sample: a repeat or reordering
  it->second = sample{t, value};
  if (value < prev.value)
    return std::nullopt; // restart or wrap: the series begins again
  return (value - prev.value) / (static_cast<double>(t - prev.t) / 1e9);
}

void rate_tracker::expire_before(time_ns t) {
  std::erase_if(last_, [t](const auto& kv) { return kv.second.t < t; });
}

} // namespace parallax
