#include "parallax/actors/correlator.hpp"

#include "thread_priority.hpp"

#include "parallax/pipeline/logging.hpp"
#include "parallax/schemas/utf8.hpp"
#include "parallax/schemas/wire.hpp"
#include "parallax/storage/store.hpp"

#include <algorithm>
#include <deque>
#include <fstream>
#include <iterator>
#include <sstream>


#include <caf/actor_system.hpp>
#include <caf/send.hpp>
#include <caf/spawn_options.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

namespace parallax {

namespace {

bool storable_name(std::string_view s) {
  return s.size() <= wire::limits{}.max_name_bytes && is_valid_utf8(s);
}

} // namespace

bool storable(const correlator_message& m) {
  wire::limits lim;
  return storable_name(m.topic) && storable_name(m.host)
         && storable_name(m.sourcetype) && m.fields.size() <= lim.max_fields
         && valid_field_names(m.fields, lim.max_name_bytes);
}

ingest_ptr batch_of_messages(std::vector<correlator_message> msgs,
                             std::uint64_t sequence, std::size_t* skipped) {
  // What the wire decoder would reject would make the stored block that
  // holds it unreadable (the store decodes blocks as frames): the topic
  // carries a VM name, which comes from a hypervisor's field value.
  auto bad = std::remove_if(msgs.begin(), msgs.end(),
                            [](const auto& m) { return !storable(m); });
  if (skipped)
    *skipped = static_cast<std::size_t>(msgs.end() - bad);
  msgs.erase(bad, msgs.end());
  if (msgs.empty())
    return nullptr;
  // The batch's source id and sequence, from a frame without events.
  wire::batch header;
  header.source_id = "parallax:correlator";
  header.sequence = sequence;
  auto decoded = wire::decode(wire::encode(header));
  if (!decoded) {
    log::error("correlator", "cannot store {} messages: {}", msgs.size(),
               decoded.error().message);
    return nullptr;
  }
  auto item = std::make_shared<ingest_item>();
  item->batch = std::move(*decoded);
  auto owned = std::make_shared<const std::vector<correlator_message>>(
    std::move(msgs));
  std::size_t fields = 0;
  for (const auto& m : *owned)
    fields += m.fields.size();
  // Reserved: the events' spans point into it.
  item->fields.reserve(fields);
  item->parsed.reserve(owned->size());
  for (const auto& m : *owned) {
    auto first = item->fields.size();
    for (const auto& f : m.fields)
      item->fields.push_back({f.name, view(f.value)});
    event_view e;
    e.time = m.time;
    e.index = "main";
    e.host = m.host;
    e.source = m.topic;
    e.sourcetype = m.sourcetype;
    e.fields = std::span<const field_view>{item->fields.data() + first,
                                           m.fields.size()};
    item->parsed.push_back(e);
  }
  item->owner = std::move(owned);
  item->times.received = now_ns();
  return item;
}

namespace {

struct correlator_state {
  static inline const char* name = "correlator";
  std::unique_ptr<correlator> logic;
  correlator_config cfg;
  batch_hold hold;
  std::vector<ingest_ptr> ready; ///< scratch: batches to pass on
  bool tick_scheduled = false;
  std::vector<correlator_message> out;
  std::vector<correlator_message> unstored; ///< published, to store
  /// Per drift round queued in the logic, the arrival of its batch; and
  /// when the oldest was queued.
  std::deque<batch_times> drift_arrivals;
  std::chrono::steady_clock::time_point drift_since;
  bool store_scheduled = false;
  std::uint64_t sequence = 0;
  counter* received = nullptr;
  counter* attributed = nullptr;
  counter* published = nullptr;
  counter* deltas = nullptr;
  counter* alerts = nullptr;
  counter* identity = nullptr;
  counter* held_replayed = nullptr;
  counter* held_dropped = nullptr;
  counter* batches_attributed = nullptr;
  counter* batches_given_up = nullptr;
  counter* batches_resent = nullptr;
  counter* duplicates = nullptr;
  counter* batches_dropped = nullptr;
  counter* unstorable = nullptr;
  /// Per source, the sequences learned from (or committed before the
  /// first batch this correlator saw of it), and when it last sent.
  struct learned_source {
    storage::source_sequences sequences;
    std::chrono::steady_clock::time_point last;
  };
  string_map<learned_source> learned;
  std::uint64_t batches_since_sweep = 0;

  // Whether `item` is new: not learned from before, nor committed.
  bool first_sight(const ingest_item& item) {
    auto source = item.batch.source_id();
    auto now = std::chrono::steady_clock::now();
    auto it = learned.find(source);
    if (it == learned.end()) {
      // One read of the store per source (and per return after a sweep).
      learned_source known;
      if (cfg.store) {
        auto c = cfg.store->committed(source);
        if (!c) {
          // Not remembered: the next batch of the source tries again.
          log::warning("correlator", "cannot read {}'s committed batches: "
                       "{}", source, c.error().message);
          return true;
        }
        known.sequences = std::move(*c);
      }
      it = learned.emplace(std::string{source}, std::move(known)).first;
    }
    it->second.last = now;
    auto fresh = it->second.sequences.admit(item.batch.sequence());
    // Sources come and go (an agent's id is new after a reinstall, each
    // `parallax ingest` run has its own): forget those quiet for ten
    // minutes. Nothing of theirs is still on its way to the store.
    if (++batches_since_sweep >= 4096) {
      batches_since_sweep = 0;
      std::erase_if(learned, [&](const auto& kv) {
        return now - kv.second.last > std::chrono::minutes{10};
      });
    }
    return fresh;
  }
  correlator_counters last; ///< of the logic, already added to the metrics
  batch_hold::counters last_hold; ///< likewise, of the hold

  // Passes `ready`'s batches on to the store and to event subscribers.
  void pass_on() {
    for (auto& item : ready) {
      if (cfg.publish_events)
        cfg.publish_events(item->events());
      caf::anon_send(cfg.next, ingest_atom::value, std::move(item));
    }
    ready.clear();
    const auto& now = hold.stats();
    attributed->add(now.events_attributed - last_hold.events_attributed);
    batches_attributed->add(now.attributed - last_hold.attributed);
    batches_given_up->add(now.given_up - last_hold.given_up);
    batches_resent->add(now.resends - last_hold.resends);
    last_hold = now;
  }
  std::chrono::steady_clock::time_point last_save;

  // The messages published since the last call go to the indexer as one
  // batch (sourcetypes parallax:delta, parallax:alert, parallax:identity).
  void store() {
    store_scheduled = false;
    if (unstored.empty())
      return;
    std::size_t skipped = 0;
    if (auto stored
        = batch_of_messages(std::move(unstored), sequence++, &skipped))
      caf::anon_send(cfg.next, ingest_atom::value, std::move(stored));
    unstored.clear(); // moved from: valid, made empty
    if (skipped > 0) {
      unstorable->add(skipped);
      log::warning("correlator", "{} messages not stored: a name (topic, "
                   "host, sourcetype or field) is not valid UTF-8, empty, "
                   "repeated or too long", skipped);
    }
  }

  // Publishes one message of the logic's, and counts it.
  void emit(const message_view& msg, const batch_times& arrival) {
    if (cfg.publish)
      cfg.publish(msg, arrival);
    if (msg.sourcetype == "parallax:delta")
      deltas->add();
    else if (msg.sourcetype == "parallax:alert")
      alerts->add();
    else
      identity->add();
  }

  void save() {
    if (cfg.state_file.empty() || !logic)
      return;
    auto tmp = cfg.state_file;
    tmp += ".tmp";
    {
      std::ofstream f{tmp, std::ios::binary | std::ios::trunc};
      auto data = logic->save();
      f.write(data.data(), static_cast<std::streamsize>(data.size()));
      if (!f) {
        log::warning("correlator", "cannot write {}", tmp.string());
        return;
      }
    }
    std::error_code ec;
    std::filesystem::rename(tmp, cfg.state_file, ec);
    if (ec)
      log::warning("correlator", "cannot replace {}: {}",
                   cfg.state_file.string(), ec.message());
    last_save = std::chrono::steady_clock::now();
  }

  ~correlator_state() {
    // Ended without its exit handler (killed): the drift work left queued
    // still updates the baselines saved; its alerts cannot go out now.
    if (logic && !cfg.state_file.empty()) {
      std::vector<correlator_message> lost;
      while (logic->drift_rounds() > 0)
        logic->advance_drift(lost);
    }
    save();
  }
};

using self_ptr = correlator_actor::stateful_pointer<correlator_state>;

// Passes on what the hold lets go now (sources the resolver has bound,
// holds past their bounds) with what is ready, and checks again in a
// second while anything is held.
void release_held(self_ptr self) {
  auto& s = self->state;
  if (!s.hold.empty()) {
    s.hold.settle(s.logic->identity(), s.ready);
    s.hold.expire(batch_hold::clock::now(), s.ready);
  }
  s.pass_on();
  if (!s.hold.empty() && !s.tick_scheduled) {
    s.tick_scheduled = true;
    self->delayed_send(self, std::chrono::seconds{1}, tick_atom::value);
  }
}

// Messages waiting to be stored, at most: beyond, they are stored at once.
constexpr std::size_t max_unstored = 8192;

// What was published goes to the store after the batches already waiting
// (one batch of messages per flush): the next batch's deltas go first.
void keep(self_ptr self) {
  auto& s = self->state;
  if (s.out.empty())
    return;
  s.published->add(s.out.size());
  std::move(s.out.begin(), s.out.end(), std::back_inserter(s.unstored));
  s.out.clear();
  if (s.unstored.size() >= max_unstored)
    s.store();
  else if (!s.store_scheduled) {
    s.store_scheduled = true;
    self->send(self, flush_atom::value);
  }
}

// Runs the queued drift rounds, each published with its batch's arrival.
void drain_drift(self_ptr self) {
  auto& s = self->state;
  s.out.clear();
  while (!s.drift_arrivals.empty()) {
    auto arrival = s.drift_arrivals.front();
    s.drift_arrivals.pop_front();
    s.logic->advance_drift(s.out, [&](const message_view& msg) {
      s.emit(msg, arrival);
    });
  }
  keep(self);
}

// After every message: the drift work left behind runs once nothing else
// waits, or once the oldest of it has waited drift_defer.
void drain_drift_when_due(self_ptr self) {
  auto& s = self->state;
  if (s.drift_arrivals.empty())
    return;
  if (self->mailbox().empty()
      || std::chrono::steady_clock::now() - s.drift_since >= s.cfg.drift_defer)
    drain_drift(self);
}

std::unique_ptr<correlator> load_state(const correlator_config& cfg) {
  if (cfg.state_file.empty() || !std::filesystem::exists(cfg.state_file))
    return std::make_unique<correlator>(cfg.options);
  std::ifstream f{cfg.state_file, std::ios::binary};
  std::stringstream ss;
  ss << f.rdbuf();
  auto loaded = correlator::load(ss.str(), cfg.options);
  if (loaded) {
    log::info("correlator", "state loaded from {}", cfg.state_file.string());
    return std::make_unique<correlator>(std::move(*loaded));
  }
  auto bad = cfg.state_file;
  bad += ".bad";
  std::error_code ec;
  std::filesystem::rename(cfg.state_file, bad, ec);
  log::warning("correlator", "{}: {}; set aside as {}, starting fresh",
               cfg.state_file.string(), loaded.error().message, bad.string());
  return std::make_unique<correlator>(cfg.options);
}

// Learns from a batch, passes it on, publishes the deltas it completes
// and queues their drift work.
void learn_batch(self_ptr self, ingest_ptr& item) {
  auto& s = self->state;
  item->times.taken = now_ns();
  if (s.hold.take_resend(item, s.ready)) {
    s.pass_on();
    return;
  }
  if (!s.first_sight(*item)) {
    // A resend of what was learned from (and is committed, or on its
    // way to the indexer ahead of this). Should its first try's commit
    // have failed, this one is stored: with the VM of its source.
    s.duplicates->add();
    if (auto a = bound_vm(s.logic->identity(), item->batch.source_id()))
      attribute_guest_events(*item, *a);
    caf::anon_send(s.cfg.next, ingest_atom::value, std::move(item));
    return;
  }
  s.received->add(item->events().size());
  auto found = attribute_batch(*item, *s.logic);
  s.attributed->add(found.attributed);
  auto arrival = item->times;
  s.hold.admit(std::move(item), found, batch_hold::clock::now(), s.ready);
  release_held(self);
  s.out.clear();
  // Each message goes out as soon as it is final; all are stored after.
  auto queued = s.logic->advance_windows(
    s.out, [&](const message_view& msg) { s.emit(msg, arrival); });
  keep(self);
  if (queued) {
    if (s.drift_arrivals.empty())
      s.drift_since = std::chrono::steady_clock::now();
    s.drift_arrivals.push_back(arrival);
  }
  const auto& now = s.logic->counters();
  s.held_replayed->add(now.held_replayed - s.last.held_replayed);
  s.held_dropped->add(now.held_dropped - s.last.held_dropped);
  s.last = now;
}

correlator_actor::behavior_type correlator_behavior(self_ptr self,
                                                    correlator_config cfg) {
  detail::set_thread_name("plx-correlator");
  if (auto why = detail::set_thread_priority(cfg.rt_priority, cfg.nice);
      !why.empty())
    log::warning("correlator", "{}", why);
  auto& st = self->state;
  st.logic = load_state(cfg);
  st.hold = batch_hold{cfg.hold};
  st.cfg = std::move(cfg);
  st.sequence = static_cast<std::uint64_t>(now_ns());
  st.last_save = std::chrono::steady_clock::now();
  auto& m = *st.cfg.metrics;
  st.received = &m.get("correlator", "received_events_total");
  st.attributed = &m.get("correlator", "attributed_events_total");
  st.published = &m.get("correlator", "messages_total");
  st.deltas = &m.get("correlator", "deltas_total");
  st.alerts = &m.get("correlator", "alerts_total");
  st.identity = &m.get("correlator", "identity_changes_total");
  st.held_replayed = &m.get("correlator", "held_events_total", "replayed");
  st.held_dropped = &m.get("correlator", "held_events_total", "dropped");
  st.batches_attributed
    = &m.get("correlator", "held_batches_total", "attributed");
  st.batches_given_up = &m.get("correlator", "held_batches_total", "given_up");
  st.batches_resent = &m.get("correlator", "held_batches_total", "resent");
  st.duplicates = &m.get("correlator", "skipped_batches_total", "duplicate");
  st.batches_dropped
    = &m.get("correlator", "held_batches_total", "dropped_at_stop");
  st.unstorable = &m.get("correlator", "errors_total", "unstorable_message");
  // Stopping: what was published goes to the indexer, which
  // ingest_pipeline::stop ends only after this actor, so it is stored.
  // What is held is not: nothing could name its VM yet, and its clients,
  // never acknowledged, send it again to the next server.
  self->set_exit_handler([=](caf::exit_msg& msg) {
    auto& s = self->state;
    s.batches_dropped->add(s.hold.drop_all());
    drain_drift(self);
    s.store();
    self->quit(msg.reason);
  });
  return {
    [=](ingest_atom, ingest_ptr& item) {
      learn_batch(self, item);
      drain_drift_when_due(self);
      auto& s = self->state;
      if (!s.cfg.state_file.empty()
          && std::chrono::steady_clock::now() - s.last_save
               >= s.cfg.save_interval) {
        drain_drift(self); // the baselines saved are up to date
        s.save();
      }
    },
    [=](flush_atom) {
      // This flush was what kept the mailbox from being empty after a
      // window-closing batch: the drift work first, so that its alerts go
      // out now and into the same stored batch.
      drain_drift_when_due(self);
      self->state.store();
    },
    [=](tick_atom) {
      self->state.tick_scheduled = false;
      release_held(self);
      drain_drift_when_due(self);
    },
  };
}

} // namespace

correlator_actor spawn_correlator(caf::actor_system& sys,
                                  correlator_config cfg) {
  // A thread of its own, so that its priority is its own. With `parallax
  // bench correlate` at 250,000 events/s offered on this 2-core machine,
  // four runs each, alternating: delta p99 62 / 100 / 119 / 8.6 ms on the
  // shared scheduler at nice 0 against 4.6 / 5.0 / 60 / 7.0 ms here at
  // nice -10 (a detached correlator at nice 0 had been measured no better
  // than the shared scheduler). Scheduler traces of the slow runs showed
  // the correlator runnable but preempted by the collector, the parser's
  // worker and ZeroMQ's I/O threads, with a backlog of a few hundred
  // batches forming behind it. At nice -10 it was still preempted: a
  // median of 3-4 times in each window-closing batch (0.4-0.5 ms off the
  // CPU); in the real-time class, none (issue 5's notes have the runs).
  return sys.spawn<caf::detached>(correlator_behavior, std::move(cfg));
}

} // namespace parallax
