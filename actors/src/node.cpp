#include "parallax/actors/node.hpp"

#include "parallax/pipeline/logging.hpp"

#include <caf/actor_system.hpp>
#include <caf/sec.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

namespace parallax {

caf::error node_config::validate() const {
  if (metrics == nullptr)
    return caf::make_error(caf::sec::invalid_argument,
                           "node: no metrics registry");
  if (report_interval.count() <= 0)
    return caf::make_error(caf::sec::invalid_argument,
                           "node: report interval must be positive");
  return caf::none;
}

node_actor::behavior_type node(node_actor::stateful_pointer<node_state> self,
                               node_config cfg) {
  if (auto err = cfg.validate()) {
    self->quit(err);
    return node_actor::behavior_type::make_empty_behavior();
  }
  self->state.cfg = cfg;
  self->state.started = std::chrono::steady_clock::now();
  self->delayed_send(self, cfg.report_interval, tick_atom::value);
  return {
    [=](status_atom) -> std::string {
      auto up = std::chrono::duration_cast<std::chrono::seconds>(
        std::chrono::steady_clock::now() - self->state.started);
      return fmt::format("# uptime {}s\n{}", up.count(),
                         self->state.cfg.metrics->render_prometheus());
    },
    [=](tick_atom) {
      auto snap = self->state.cfg.metrics->snapshot();
      for (const auto& s : snap) {
        auto id = s.reason.empty()
                    ? fmt::format("{}_{}", s.component, s.name)
                    : fmt::format("{}_{} reason={}", s.component, s.name,
                                  s.reason);
        auto& last = self->state.last_values[id];
        if (s.value != last)
          log::debug("metrics", "{} = {}", id, s.value);
        last = s.value;
      }
      self->delayed_send(self, self->state.cfg.report_interval,
                         tick_atom::value);
    },
  };
}

node_actor spawn_node(caf::actor_system& sys, node_config cfg) {
  return sys.spawn(node, std::move(cfg));
}

} // namespace parallax
