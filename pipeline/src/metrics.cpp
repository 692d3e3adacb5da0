#include "parallax/pipeline/metrics.hpp"

#include <fmt/format.h>

namespace parallax {

counter& metrics_registry::get(std::string_view component,
                               std::string_view name, std::string_view reason) {
  std::lock_guard guard{mtx_};
  key k{std::string{component}, std::string{name}, std::string{reason}};
  auto i = counters_.find(k);
  if (i == counters_.end())
    i = counters_.emplace(std::move(k), std::make_unique<counter>()).first;
  return *i->second;
}

std::vector<metric_sample> metrics_registry::snapshot() const {
  std::lock_guard guard{mtx_};
  std::vector<metric_sample> out;
  out.reserve(counters_.size());
  for (const auto& [k, c] : counters_)
    out.push_back(metric_sample{std::get<0>(k), std::get<1>(k), std::get<2>(k),
                                c->value()});
  return out;
}

std::string metrics_registry::render_prometheus() const {
  std::string out;
  for (const auto& s : snapshot()) {
    if (s.reason.empty())
      fmt::format_to(std::back_inserter(out), "parallax_{}_{} {}\n",
                     s.component, s.name, s.value);
    else
      fmt::format_to(std::back_inserter(out),
                     "parallax_{}_{}{{reason=\"{}\"}} {}\n", s.component,
                     s.name, s.reason, s.value);
  }
  return out;
}

} // namespace parallax
