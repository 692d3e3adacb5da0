#include "parallax/actors/correlator.hpp"

#include "parallax/pipeline/logging.hpp"
#include "parallax/schemas/wire.hpp"

#include <fstream>
#include <iterator>
#include <sstream>

#include <caf/actor_system.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

namespace parallax {

std::size_t attribute_batch(ingest_item& item, correlator& c) {
  auto source = item.batch.source_id();
  auto in = item.events();
  // Attribute first: the views stay valid while the overlay is rebuilt.
  struct extra {
    std::string_view vm, vm_uuid;
    bool conflict = false;
  };
  std::vector<extra> extras(in.size());
  std::size_t attributed = 0;
  // The resolver's strings change as it learns: copy them into the batch,
  // once per distinct value (a batch usually names few VMs).
  std::vector<std::string_view> interned;
  auto intern = [&](std::string_view s) -> std::string_view {
    for (auto x : interned)
      if (x == s)
        return x;
    item.arena.emplace_back(s);
    interned.push_back(item.arena.back());
    return interned.back();
  };
  for (std::size_t i = 0; i < in.size(); ++i) {
    auto a = c.observe(source, in[i]);
    if (!a || a->vm.empty())
      continue;
    extras[i] = {intern(a->vm), intern(a->vm_uuid), a->conflict};
    ++attributed;
  }
  if (attributed == 0)
    return 0;
  // Rebuild the overlay with the new fields after each event's own.
  std::vector<event_view> events(in.begin(), in.end());
  std::vector<field_view> fields;
  std::vector<std::size_t> first(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    first[i] = fields.size();
    if (extras[i].vm.empty()) {
      fields.insert(fields.end(), in[i].fields.begin(), in[i].fields.end());
      continue;
    }
    // A sender's own vm / vm_uuid (hypervisor samples carry vm_uuid) give
    // way to the resolved, normalised ones: a field name appears once.
    for (const auto& f : in[i].fields)
      if (f.name != "vm" && f.name != "vm_uuid" && f.name != "vm_conflict")
        fields.push_back(f);
    fields.push_back({"vm", extras[i].vm});
    fields.push_back({"vm_uuid", extras[i].vm_uuid});
    if (extras[i].conflict)
      fields.push_back({"vm_conflict", true});
  }
  item.fields = std::move(fields);
  for (std::size_t i = 0; i < in.size(); ++i) {
    auto end = i + 1 < in.size() ? first[i + 1] : item.fields.size();
    events[i].fields = std::span<const field_view>{
      item.fields.data() + first[i], end - first[i]};
  }
  item.parsed = std::move(events);
  return attributed;
}

ingest_ptr batch_of_messages(const std::vector<correlator_message>& msgs,
                             std::uint64_t sequence) {
  if (msgs.empty())
    return nullptr;
  wire::batch b;
  b.source_id = "parallax:correlator";
  b.sequence = sequence;
  b.events.reserve(msgs.size());
  for (const auto& m : msgs) {
    event e;
    e.time = m.time;
    e.index = "main";
    e.host = m.host;
    e.source = m.topic;
    e.sourcetype = m.sourcetype;
    e.fields = m.fields;
    b.events.push_back(std::move(e));
  }
  auto decoded = wire::decode(wire::encode(b));
  if (!decoded) {
    log::error("correlator", "cannot store {} messages: {}", msgs.size(),
               decoded.error().message);
    return nullptr;
  }
  auto item = std::make_shared<ingest_item>();
  item->batch = std::move(*decoded);
  item->received = now_ns();
  return item;
}

namespace {

struct correlator_state {
  static inline const char* name = "correlator";
  std::unique_ptr<correlator> logic;
  correlator_config cfg;
  std::vector<correlator_message> out;
  std::vector<correlator_message> unstored; ///< published, to store
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
  correlator_counters last; ///< of the logic, already added to the metrics
  std::chrono::steady_clock::time_point last_save;

  // The messages published since the last call go to the indexer as one
  // batch (sourcetypes parallax:delta, parallax:alert, parallax:identity).
  void store() {
    store_scheduled = false;
    if (unstored.empty())
      return;
    if (auto stored = batch_of_messages(unstored, sequence++))
      caf::anon_send(cfg.next, ingest_atom::value, std::move(stored));
    unstored.clear();
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
    save();
  }
};

using self_ptr = correlator_actor::stateful_pointer<correlator_state>;

// Messages waiting to be stored, at most: beyond, they are stored at once.
constexpr std::size_t max_unstored = 8192;

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

correlator_actor::behavior_type correlator_behavior(self_ptr self,
                                                    correlator_config cfg) {
  auto& st = self->state;
  st.logic = load_state(cfg);
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
  // Stopping: what was published is stored first.
  self->set_exit_handler([=](caf::exit_msg& msg) {
    self->state.store();
    self->quit(msg.reason);
  });
  return {
    [=](ingest_atom, ingest_ptr& item) {
      auto& s = self->state;
      s.received->add(item->events().size());
      s.attributed->add(attribute_batch(*item, *s.logic));
      if (s.cfg.publish_events)
        s.cfg.publish_events(item->events());
      auto arrival = item->received;
      self->send(s.cfg.next, ingest_atom::value, std::move(item));
      s.out.clear();
      // Each message goes out as soon as it is final; all are stored after.
      s.logic->advance(s.out, [&](const correlator_message& msg) {
        if (s.cfg.publish)
          s.cfg.publish(msg, arrival);
        if (msg.sourcetype == "parallax:delta")
          s.deltas->add();
        else if (msg.sourcetype == "parallax:alert")
          s.alerts->add();
        else
          s.identity->add();
      });
      if (!s.out.empty()) {
        s.published->add(s.out.size());
        // Stored later, behind the batches already waiting: encoding them
        // for the store would delay the next batch's deltas.
        std::move(s.out.begin(), s.out.end(), std::back_inserter(s.unstored));
        if (s.unstored.size() >= max_unstored)
          s.store();
        else if (!s.store_scheduled) {
          s.store_scheduled = true;
          self->send(self, flush_atom::value);
        }
      }
      const auto& now = s.logic->counters();
      s.held_replayed->add(now.held_replayed - s.last.held_replayed);
      s.held_dropped->add(now.held_dropped - s.last.held_dropped);
      s.last = now;
      if (std::chrono::steady_clock::now() - s.last_save
          >= s.cfg.save_interval)
        s.save();
    },
    [=](flush_atom) { self->state.store(); },
  };
}

} // namespace

correlator_actor spawn_correlator(caf::actor_system& sys,
                                  correlator_config cfg) {
  return sys.spawn(correlator_behavior, std::move(cfg));
}

} // namespace parallax
