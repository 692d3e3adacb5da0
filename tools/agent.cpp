// `parallax agent`: runs the in-guest agent (pipeline/agent.hpp) in a plain
// loop on a steady clock until SIGINT or SIGTERM, or for one round with
// --once. Not a CAF actor: see agent.hpp (footprint).

#include "commands.hpp"

#include "parallax/pipeline/agent.hpp"
#include "parallax/pipeline/logging.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>

#include <fmt/format.h>

namespace parallax::tools {

int run_agent(const agent_args& args) {
  auto cfg = load(args.cfg, "agent");
  if (!cfg)
    return 2;
  log::set_level(cfg->log);
  auto agent = guest_agent::open(cfg->agent, cfg->data_dir);
  if (!agent) {
    fmt::print(stderr, "parallax agent: {}\n", agent.error().message);
    return 1;
  }
  auto& a = **agent;
  log::info("agent", "agent {} (source {}) sending to {} every {} ms; state "
                     "in {}",
            a.agent_id(), a.source_id(), cfg->agent.server,
            cfg->agent.interval.count(), a.state_dir().string());
  if (args.once) {
    if (auto err = a.collect()) {
      fmt::print(stderr, "parallax agent: {}\n", err.message);
      return 1;
    }
    if (auto err = a.flush(std::chrono::seconds{args.timeout})) {
      fmt::print(stderr, "parallax agent: {} (is `parallax serve` running on "
                         "{}?)\n",
                 err.message, cfg->agent.server);
      return 1;
    }
    const auto& st = a.stats();
    fmt::print(stderr, "parallax agent: {} process, {} system, {} identity, "
                       "{} log events in {} batches, all acknowledged\n",
               st.process_events, st.system_events, st.identity_events,
               st.log_events, st.batches_spooled);
    return a.stats().batches_rejected ? 1 : 0;
  }
  const auto& stop_requested = stop_on_signals();
  using clock = std::chrono::steady_clock;
  auto next = clock::now();
  while (!stop_requested.load()) {
    if (clock::now() >= next) {
      // Collection never waits for the server: batches pile up in the
      // spool while it is away. Only a spool that cannot be written stops.
      if (auto err = a.collect()) {
        fmt::print(stderr, "parallax agent: {}\n", err.message);
        return 1;
      }
      next += cfg->agent.interval;
      if (next < clock::now()) // fell behind (suspended VM): no catch-up burst
        next = clock::now() + cfg->agent.interval;
    }
    // Short waits so a signal is noticed within a quarter second.
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      next - clock::now());
    a.pump(std::clamp(left, std::chrono::milliseconds{0},
                      std::chrono::milliseconds{250}));
  }
  log::info("agent", "stopping: giving the server 2 s for the last replies");
  // Everything read is already spooled and checkpointed; what stays
  // unanswered is resent at the next start.
  if (auto err = a.flush(std::chrono::seconds{2}))
    log::info("agent", "{}", err.message);
  return 0;
}

} // namespace parallax::tools
