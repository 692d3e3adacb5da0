#include "parallax/actors/search.hpp"

#include "parallax/pipeline/logging.hpp"

#include <algorithm>
#include <limits>
#include <map>
#include <optional>
#include <thread>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <fmt/format.h>

namespace parallax {

namespace {

using namespace std::chrono_literals;

constexpr auto check_interval = 50ms;

struct search_job_state {
  static inline const char* name = "search-job";
  search_job_config cfg;
  std::chrono::steady_clock::time_point deadline;
  std::size_t next_dispatch = 0; ///< index into plan.buckets()
  std::size_t inflight = 0;
  std::size_t next_merge = 0; ///< events mode: the next bucket to merge
  /// Events mode: partials that came before an older bucket's turn.
  std::map<std::size_t, partial_ptr> waiting;
  search::partial merged;
  bool stream = false;        ///< events mode and rows may go out early
  std::size_t stream_cap = 0; ///< most rows streamed
  std::size_t streamed = 0;
  bool finished = false;
};

using job_pointer = search_job_actor::stateful_pointer<search_job_state>;

void finish(job_pointer self, result<search::results> res) {
  auto& st = self->state;
  if (st.finished)
    return;
  st.finished = true;
  if (st.cfg.sink.done)
    st.cfg.sink.done(std::move(res), st.streamed);
  self->quit();
}

void fail(job_pointer self, error e) {
  finish(self, result<search::results>{std::move(e)});
}

void dispatch(job_pointer self) {
  auto& st = self->state;
  const auto& buckets = st.cfg.plan->buckets();
  while (st.inflight < st.cfg.max_inflight
         && st.next_dispatch < buckets.size()) {
    auto index = st.next_dispatch++;
    ++st.inflight;
    // Each worker maps one bucket and quits; it holds the plan, not the job.
    self->spawn([plan = st.cfg.plan, store = st.cfg.store, index,
                 bucket = buckets[index],
                 job = caf::actor_cast<search_job_actor>(self)](caf::event_based_actor*) {
      auto p = std::make_shared<search::partial>(plan->map(*store, bucket));
      caf::anon_send(job, mapped_atom::value, index, std::move(p));
    });
  }
}

// Passes on the rows the merged partial gained, within the cap.
void stream_rows(job_pointer self) {
  auto& st = self->state;
  if (!st.stream || !st.cfg.sink.rows)
    return;
  auto end = std::min(st.merged.rows.size(), st.stream_cap);
  if (end <= st.streamed)
    return;
  std::vector<search::row> out(
    st.merged.rows.begin() + static_cast<std::ptrdiff_t>(st.streamed),
    st.merged.rows.begin() + static_cast<std::ptrdiff_t>(end));
  st.streamed = end;
  st.cfg.sink.rows(std::move(out));
}

void complete(job_pointer self) {
  auto& st = self->state;
  const auto& plan = *st.cfg.plan;
  auto stats = st.merged.stats;
  stats.buckets = std::max<std::uint64_t>(stats.buckets,
                                          plan.buckets().size());
  auto rows = plan.finish(std::move(st.merged));
  if (!rows) {
    fail(self, rows.error());
    return;
  }
  search::results res;
  res.columns = search::columns_of(*rows);
  res.events = plan.events_mode();
  res.stats = stats;
  res.rows = std::move(*rows);
  // The streamed rows must be the result's first rows; if the engine
  // reordered them anyway, say so (the client has them already).
  if (st.streamed > 0
      && (res.rows.size() < st.streamed
          || !std::equal(res.rows.begin(),
                         res.rows.begin()
                           + static_cast<std::ptrdiff_t>(st.streamed),
                         res.rows.begin()))) {
    log::warning("search", "streamed rows are not the result's first rows: "
                           "{}",
                 plan.parsed().text);
  }
  finish(self, std::move(res));
}

bool merge_one(job_pointer self, partial_ptr p) {
  auto& st = self->state;
  const auto& plan = *st.cfg.plan;
  if (p->err) {
    fail(self, p->err);
    return false;
  }
  // Into an empty partial first, as search::run does.
  plan.merge(st.merged, std::move(*p));
  if (st.merged.err) {
    fail(self, st.merged.err);
    return false;
  }
  return true;
}

search_job_actor::behavior_type search_job(job_pointer self,
                                           search_job_config cfg) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  const auto& plan = *st.cfg.plan;
  auto cap = stream_cap(plan.parsed());
  st.stream = cap.has_value() && plan.events_mode();
  st.stream_cap = std::min(cap.value_or(0), plan.opts().max_results);
  auto timeout = plan.opts().timeout;
  st.deadline = timeout.count() > 0
                  ? std::chrono::steady_clock::now() + timeout
                  : std::chrono::steady_clock::time_point::max();
  if (plan.buckets().empty()) {
    complete(self);
    return search_job_actor::behavior_type::make_empty_behavior();
  }
  dispatch(self);
  self->delayed_send(self, check_interval, tick_atom::value);
  return {
    [=](mapped_atom, std::size_t index, partial_ptr p) {
      auto& st = self->state;
      if (st.finished)
        return;
      --st.inflight;
      const auto& plan = *st.cfg.plan;
      if (plan.events_mode()) {
        st.waiting.emplace(index, std::move(p));
        // Merge in bucket order: newest first.
        for (auto it = st.waiting.find(st.next_merge); it != st.waiting.end();
             it = st.waiting.find(st.next_merge)) {
          auto next = std::move(it->second);
          st.waiting.erase(it);
          ++st.next_merge;
          if (!merge_one(self, std::move(next)))
            return;
          stream_rows(self);
          if (plan.satisfied(st.merged)) {
            // Older buckets cannot change the result; late workers'
            // partials are dropped with the job.
            complete(self);
            return;
          }
        }
        if (st.next_merge == plan.buckets().size()) {
          complete(self);
          return;
        }
      } else {
        if (!merge_one(self, std::move(p)))
          return;
        if (st.next_dispatch == plan.buckets().size() && st.inflight == 0) {
          complete(self);
          return;
        }
      }
      dispatch(self);
    },
    [=](tick_atom) {
      auto& st = self->state;
      if (st.finished)
        return;
      if (st.cfg.cancel && st.cfg.cancel->load()) {
        fail(self, error{ec::query_cancelled, "the query was cancelled"});
        return;
      }
      if (std::chrono::steady_clock::now() >= st.deadline) {
        // Busy workers see the flag and stop early.
        if (st.cfg.cancel)
          st.cfg.cancel->store(true);
        fail(self,
             error{ec::query_limit,
                   fmt::format("the query ran longer than {} s "
                               "(parallax.search.timeout)",
                               static_cast<double>(
                                 st.cfg.plan->opts().timeout.count())
                                 / 1000.0)});
        return;
      }
      self->delayed_send(self, check_interval, tick_atom::value);
    },
  };
}

} // namespace

// Streaming early is safe when every command after the search clause keeps
// or drops each event on its own and leaves the order alone (a final head
// only cuts): then the rows of the newest buckets are the first rows of the
// result, exactly as they will be in it.
std::optional<std::size_t> stream_cap(const search::query& q) {
  using k = search::command::kind;
  std::size_t cap = std::numeric_limits<std::size_t>::max();
  const auto& cmds = q.commands;
  for (std::size_t i = 0; i < cmds.size(); ++i) {
    switch (cmds[i].k) {
      case k::search:
      case k::where:
      case k::eval:
      case k::rex:
      case k::rename:
      case k::fields:
      case k::table:
        break;
      case k::head:
        if (i + 1 != cmds.size())
          return std::nullopt;
        cap = cmds[i].limit;
        break;
      default:
        return std::nullopt;
    }
  }
  return cap;
}

error start_search(caf::actor_system& sys, const storage::store& st,
                   std::string_view text, search::options opts, time_ns now,
                   std::shared_ptr<std::atomic<bool>> cancel, search_sink sink,
                   std::size_t max_inflight) {
  if (!cancel)
    cancel = std::make_shared<std::atomic<bool>>(false);
  opts.cancel = cancel.get();
  auto q = search::parse(text, now);
  if (!q)
    return q.error();
  auto plan = search::plan::make(st, std::move(*q), std::move(opts));
  if (!plan)
    return plan.error();
  search_job_config cfg;
  cfg.plan = std::make_shared<const search::plan>(std::move(*plan));
  cfg.store = &st;
  cfg.cancel = std::move(cancel);
  if (max_inflight == 0)
    max_inflight = 2 * std::max(1u, std::thread::hardware_concurrency());
  cfg.max_inflight = max_inflight;
  cfg.sink = std::move(sink);
  sys.spawn(search_job, std::move(cfg));
  return {};
}

} // namespace parallax
