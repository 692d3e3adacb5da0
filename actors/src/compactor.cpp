#include "parallax/actors/compactor.hpp"

#include "thread_priority.hpp"

#include "parallax/pipeline/logging.hpp"

#include <malloc.h>

#include <algorithm>

#include <caf/actor_system.hpp>
#include <caf/spawn_options.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

namespace parallax {

compactor_actor::behavior_type
compactor(compactor_actor::stateful_pointer<compactor_state> self,
          compactor_config cfg) {
  auto& st = self->state;
  st.cfg = cfg;
  // Settled after 30 quiet periods: a live bucket's last growth is
  // compacted a minute after it ends (with the default 2 s).
  st.policy.emplace(cfg.quiet, cfg.quiet * 30);
  // As the indexer: its final swap holds LMDB's write lock, which a lower
  // priority would stretch while the indexer waits for it.
  detail::set_thread_name("plx-compactor");
  (void)detail::set_thread_priority(0, cfg.nice); // raising it always works
  auto& m = *cfg.metrics;
  st.compactions = &m.get("compactor", "compactions_total");
  st.events = &m.get("compactor", "compacted_events_total");
  st.abandoned = &m.get("compactor", "abandoned_total");
  st.failures = &m.get("compactor", "errors_total");
  auto poll = std::clamp(cfg.quiet / 2, std::chrono::milliseconds{100},
                         std::chrono::milliseconds{1000});
  self->send(self, tick_atom::value);
  return {
    [=](tick_atom) {
      auto& s = self->state;
      auto catalog = s.cfg.store->buckets();
      if (!catalog) {
        s.failures->add();
        log::error("compactor", "{}", catalog.error().message);
      } else {
        bool compacted = false;
        for (auto id : s.policy->due(*catalog,
                                     storage::compaction_policy::clock::now())) {
          auto t0 = std::chrono::steady_clock::now();
          auto r = s.cfg.store->compact(id);
          if (!r) {
            s.failures->add();
            log::error("compactor", "bucket {}: {}", id, r.error().message);
            continue;
          }
          if (!r->done) {
            s.abandoned->add(); // it took events meanwhile: later
            continue;
          }
          s.compactions->add();
          s.events->add(r->events);
          compacted = true;
          log::debug("compactor",
                     "bucket {}: {} events in {:.1f} ms, blocks {} -> {}, "
                     "postings keys {} -> {}, bytes {} -> {}",
                     id, r->events,
                     std::chrono::duration<double, std::milli>(
                       std::chrono::steady_clock::now() - t0)
                       .count(),
                     r->blocks_before, r->blocks_after, r->postings_before,
                     r->postings_after, r->bytes_before, r->bytes_after);
        }
        // A compaction's buffers (about 1.5 KB per event) go back to the
        // system rather than stay in malloc's free lists as resident memory.
        if (compacted)
          ::malloc_trim(0);
      }
      self->delayed_send(self, poll, tick_atom::value);
    },
  };
}

compactor_actor spawn_compactor(caf::actor_system& sys, compactor_config cfg) {
  if (cfg.quiet.count() <= 0 || !cfg.store || !cfg.metrics)
    return {};
  return sys.spawn<caf::detached>(compactor, std::move(cfg));
}

} // namespace parallax
