#include "parallax/actors/indexer.hpp"

#include "thread_priority.hpp"

#include "parallax/pipeline/logging.hpp"
#include "parallax/schemas/reply.hpp"

#include <caf/actor_system.hpp>
#include <caf/sec.hpp>
#include <caf/spawn_options.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <zmq.h>

namespace parallax {

caf::error indexer_config::validate() const {
  if (!store || !env || !zmq || !metrics || reply_endpoint.empty())
    return caf::make_error(caf::sec::invalid_argument,
                           "indexer: store, environment, zmq context, "
                           "metrics and reply endpoint are required");
  return caf::none;
}

namespace {

// Sends [peer][reply][frame bytes] to the collector, which owns the ROUTER.
// The collector gives back `bytes` of credit and routes the reply.
void answer(indexer_state& st, const ingest_item& item,
            const wire::reply& r) {
  // Batches made inside the server (the correlator's deltas and alerts)
  // came from no client: nobody waits for their reply.
  if (item.peer.empty())
    return;
  st.buf.clear();
  wire::encode_reply(r, st.buf);
  char bytes[8];
  for (int i = 0; i < 8; ++i)
    bytes[i] = static_cast<char>((item.bytes >> (56 - 8 * i)) & 0xff);
  std::string_view parts[] = {item.peer, st.buf, {bytes, 8}};
  // Never block: once the collector has stopped (shutdown) nobody reads,
  // and a blocked indexer would hold up the actor system forever. A lost
  // reply is safe: the client resends and gets `duplicate`.
  if (auto err = st.replies->send(parts, true)) {
    st.lost_replies->add();
    log::debug("indexer", "reply to {} not delivered: {}",
               item.batch.source_id(), err.message);
  }
}

void flush(indexer_actor::stateful_pointer<indexer_state> self) {
  auto& st = self->state;
  st.flush_scheduled = false;
  if (st.pending.empty())
    return;
  std::vector<storage::incoming_batch> group;
  group.reserve(st.pending.size());
  for (const auto& item : st.pending)
    group.push_back({item->batch.source_id(), item->batch.sequence(),
                     item->events()});
  auto res = st.cfg.store->write(group);
  st.commits->add();
  // Counted before any client hears of it: whoever has every ack sees the
  // stored events in the metrics (bench ingest checks them).
  if (res)
    st.stored_events->add(res->events);
  for (std::size_t i = 0; i < st.pending.size(); ++i) {
    const auto& item = *st.pending[i];
    wire::reply r;
    r.source_id = item.batch.source_id();
    r.sequence = item.batch.sequence();
    if (!res) {
      // Nothing of the group is stored: every client resends later.
      r.status = wire::reply_status::failed;
      r.code = res.error().code;
      r.message = res.error().message;
      st.failed_batches->add();
    } else if (res->outcomes[i] == storage::write_outcome::duplicate) {
      r.status = wire::reply_status::duplicate;
      st.duplicate_batches->add();
    } else {
      r.status = wire::reply_status::ack;
    }
    answer(st, item, r);
  }
  if (!res)
    log::error("indexer", "commit of {} batches failed: {}",
               st.pending.size(), res.error().message);
  st.pending.clear();
  // Keep RSS to what the next commit touches (see release_mapped_pages):
  // without this, resident memory grows with the store.
  st.cfg.env->release_mapped_pages();
}

} // namespace

indexer_actor::behavior_type
indexer(indexer_actor::stateful_pointer<indexer_state> self, indexer_config cfg) {
  if (auto err = cfg.validate()) {
    self->quit(err);
    return indexer_actor::behavior_type::make_empty_behavior();
  }
  auto& st = self->state;
  st.cfg = cfg;
  // The live path (parser, correlator, publisher) goes first when the
  // cores are busy: a delta is worth most the moment its window closes,
  // while a commit can take a few more milliseconds (the collector's
  // credit bounds how far the indexer may fall behind). On Linux a
  // thread's nice value is its own; this one is the detached actor's, and
  // the block-packing helper threads it starts inherit it. With the live
  // path in the normal class, nice 15 rather than 5 took the delta p99 of
  // `parallax bench correlate` from 4.7-5.5 ms to 3.1-4.8 ms over three
  // runs each, the ingest rate unchanged. With the live path real-time it
  // goes first anyway, and nice 15 only made its threads wait on locks a
  // starved indexer held (malloc's arenas, CAF's mailbox mutex): with a
  // busy loop at nice 0 beside the benchmark, delta p99 168 ms at nice 15,
  // 19 ms at 5 and 12 ms at 0; without one, nice 0 cost about 2 ms of p99
  // (3.7 / 5.1 / 4.4 ms against 1.5 / 9.3 / 2.2 ms): 5 in that case.
  // The compactor runs at the same nice (it takes the write lock too).
  detail::set_thread_name("plx-indexer");
  (void)detail::set_thread_priority(0, cfg.nice); // raising it always works
  // Created here, on the detached actor's own thread, and used only here.
  st.replies.emplace(*cfg.zmq, ZMQ_PUSH);
  // Replies are bounded by the collector's in-flight credit; no second
  // limit here, so a reply is never dropped while the collector runs.
  st.replies->set_int(ZMQ_SNDHWM, 0);
  if (auto err = st.replies->connect(cfg.reply_endpoint)) {
    self->quit(caf::make_error(caf::sec::runtime_error, err.message));
    return indexer_actor::behavior_type::make_empty_behavior();
  }
  auto& m = *cfg.metrics;
  st.received_events = &m.get("indexer", "received_events_total");
  st.stored_events = &m.get("indexer", "stored_events_total");
  st.duplicate_batches = &m.get("indexer", "dropped_batches_total", "duplicate");
  st.commits = &m.get("indexer", "commits_total");
  st.failed_batches = &m.get("indexer", "errors_total", "commit_failed");
  st.lost_replies = &m.get("indexer", "errors_total", "reply_undelivered");
  if (cfg.retention.count() > 0)
    self->send(self, expire_atom::value);
  // Stopping: what arrived before the exit message is committed first.
  // The exit message queues behind earlier batches (CAF sends it at normal
  // priority), but the flush that would commit them queues behind it. No
  // client hears of this commit (the collector has stopped); they resend
  // and get `duplicate`. ingest_pipeline::stop sends it once the
  // correlator is gone, so the correlator's last messages are stored too.
  self->set_exit_handler([=](caf::exit_msg& msg) {
    flush(self);
    self->quit(msg.reason);
  });
  return {
    [=](ingest_atom, ingest_ptr& item) {
      auto& s = self->state;
      s.received_events->add(item->events().size());
      s.pending.push_back(std::move(item));
      // The flush goes behind every batch already in the mailbox, so one
      // commit takes all of them: the group grows while a commit syncs.
      if (!s.flush_scheduled) {
        s.flush_scheduled = true;
        self->send(self, flush_atom::value);
      }
    },
    [=](flush_atom) { flush(self); },
    [=](expire_atom) {
      auto& s = self->state;
      auto cutoff = now_ns() - to_ns(s.cfg.retention);
      auto dropped = s.cfg.store->drop_before(cutoff);
      if (!dropped)
        log::error("indexer", "retention: {}", dropped.error().message);
      else if (*dropped > 0)
        log::info("indexer", "retention: dropped {} buckets", *dropped);
      self->delayed_send(self, s.cfg.retention_check, expire_atom::value);
    },
  };
}

indexer_actor spawn_indexer(caf::actor_system& sys, indexer_config cfg) {
  return sys.spawn<caf::detached>(indexer, std::move(cfg));
}

} // namespace parallax
