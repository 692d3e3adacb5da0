#pragma once

// Search inside `parallax serve`: queries run as map-reduce over the store's
// buckets on CAF workers, and a ZeroMQ endpoint takes requests for them
// (docs/search.md, "The search endpoint"; messages in query_protocol.hpp).
//
// A search job (one actor per query) holds the plan (search.hpp). It spawns
// one worker actor per bucket, at most `max_inflight` at a time, newest
// bucket first; a worker calls plan.map on its bucket and sends the partial
// back. The job merges the partials: in events mode strictly in bucket
// order, so the rows of each bucket can be passed on as soon as it is merged
// (they are final: only older rows can follow), and it stops dispatching
// once plan.satisfied says older buckets cannot change the result. Other
// queries merge in any order. plan.finish gives the rows at the end.
//
// Bounds: the engine stops a map or merge past options.max_memory or the
// deadline with query_limit; the job also checks the deadline and the
// cancel flag every 50 ms, so a query ends on time even while a worker is
// busy (that worker's late partial is dropped).
//
// The job actor type lives here rather than in pipeline/actors.hpp because
// its messages carry the search engine's types, which only searches need.
//
// Caveats:
// - Workers read the store from scheduler threads (read transactions are
//   per call, MDB_NOTLS): the store must outlive every job and worker; in
//   `parallax serve` it outlives the actor system, whose destructor waits
//   for them.
// - The endpoint's ROUTER socket belongs to the service's own thread. Jobs
//   hand their replies over through a mutex-guarded outbox that the thread
//   drains (at most 10 ms later).

#include "parallax/pipeline/actors.hpp"
#include "parallax/pipeline/metrics.hpp"
#include "parallax/pipeline/search.hpp"
#include "parallax/pipeline/zmq.hpp"
#include "parallax/schemas/error.hpp"
#include "parallax/storage/store.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <caf/fwd.hpp>

namespace parallax {

// -- the job ------------------------------------------------------------------

using mapped_atom = caf::atom_constant<caf::atom("mapped")>;

/// One bucket's partial, from a worker to its job (local only).
using partial_ptr = std::shared_ptr<search::partial>;

/// One query's map-reduce.
using search_job_actor = caf::typed_actor<
  // A worker's partial for the plan's bucket number `index`.
  caf::reacts_to<mapped_atom, std::size_t, partial_ptr>,
  // Checks the cancel flag and the deadline; sent by the job to itself.
  caf::reacts_to<tick_atom>>;

/// Where a job's results go. Both are called from the job's actor, never
/// at the same time.
struct search_sink {
  /// Events mode: each bucket's rows once they are final, newest first.
  /// Not called for other queries.
  std::function<void(std::vector<search::row>)> rows;
  /// Exactly once at the end: the whole result (all rows, including the
  /// first `streamed` already passed to `rows`) or the error.
  std::function<void(result<search::results>, std::size_t streamed)> done;
};

struct search_job_config {
  std::shared_ptr<const search::plan> plan;
  const storage::store* store = nullptr; ///< must outlive the job
  /// The flag the plan's options.cancel points to; the job sets it too when
  /// the deadline passes, so busy workers stop early.
  std::shared_ptr<std::atomic<bool>> cancel;
  std::size_t max_inflight = 4; ///< buckets mapped at once
  search_sink sink;
};

/// Whether the rows of a query may be passed on bucket by bucket before the
/// query ends (only events, and only commands that keep or drop each event
/// on its own, a head at most at the end), and then how many at most (the
/// head's limit, else unbounded); nullopt: the rows come at the end.
std::optional<std::size_t> stream_cap(const search::query& q);

/// Parses and plans `text` over `st` and spawns its job; a query that does
/// not parse (bad_query, with the column in `offset`) or plan is returned
/// as the error and no job runs. `opts.cancel` is replaced by `cancel`.
/// `max_inflight` 0 means two per core.
error start_search(caf::actor_system& sys, const storage::store& st,
                   std::string_view text, search::options opts, time_ns now,
                   std::shared_ptr<std::atomic<bool>> cancel, search_sink sink,
                   std::size_t max_inflight = 0);

// -- the endpoint ------------------------------------------------------------

struct search_service_config {
  std::string endpoint;                   ///< e.g. tcp://127.0.0.1:7402
  const storage::store* store = nullptr;  ///< must outlive the service's jobs
  /// Bounds and the late-binding schema (query_config.hpp,
  /// search_options_of); a request's limit may only lower max_results.
  search::options options;
  std::chrono::milliseconds job_ttl{std::chrono::minutes{10}};
  zmq::context* zmq = nullptr;            ///< must outlive the service
  metrics_registry* metrics = nullptr;    ///< must outlive the service
};

class search_service {
public:
  /// Binds the endpoint (errors name parallax.search.endpoint) and starts
  /// the thread that serves it.
  static result<std::unique_ptr<search_service>>
  start(caf::actor_system& sys, search_service_config cfg);

  ~search_service();

  /// Cancels every running job, stops serving and joins the thread.
  /// Idempotent.
  void stop();

  /// The bound endpoint (with the real port if the configured one was 0).
  const std::string& endpoint() const noexcept {
    return bound_;
  }

  /// Shared with the jobs' sinks, which may outlive the service.
  struct hub;

private:
  search_service() = default;
  void run();

  caf::actor_system* sys_ = nullptr;
  search_service_config cfg_;
  std::string bound_;
  std::unique_ptr<zmq::socket> router_;
  std::shared_ptr<hub> hub_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

} // namespace parallax

// Local-only message type (never serialized).
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parallax::partial_ptr)
