// The correlator actor leaves drift work behind the batches waiting in its
// mailbox (correlator_config::drift_defer): the deltas go first, the drift
// work runs once the mailbox is empty, or at stop, and nothing is lost or
// reordered per VM. A real actor system, a simulated fleet, a sink actor in
// the indexer's place.

#include "parallax/actors/correlator.hpp"
#include "parallax/pipeline/metrics.hpp"
#include "parallax/pipeline/simulator.hpp"
#include "parallax/pipeline/system.hpp"
#include "parallax/pipeline/vsphere.hpp"
#include "parallax/schemas/wire.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <fmt/format.h>

using namespace parallax;
using namespace std::chrono_literals;

namespace {

constexpr time_ns s = 1'000'000'000;

sim::fleet_options fleet_options() {
  sim::fleet_options fo;
  fo.seed = 1;
  fo.vms = 12;
  fo.hosts = 3;
  fo.start = 1'795'600'000 * s;
  fo.duration = 3600 * s;
  auto sc = sim::load_scenario(std::string{PARALLAX_SOURCE_DIR}
                               + "/etc/scenarios/demo.toml");
  REQUIRE_MESSAGE(sc, (sc ? "" : sc.error().message));
  fo.injected = std::move(*sc);
  return fo;
}

correlator_options fleet_correlator_options() {
  correlator_options co;
  co.admin_users = {"root", "deploy"}; // the simulated fleet's
  co.service_owners = {{"app-*", {"appuser"}}};
  return co;
}

// The fleet's batches as the parser hands them on: through the wire
// format, vCenter counters normalised, each source's sequence counting up.
std::vector<ingest_ptr> fleet_batches() {
  auto fleet = sim::fleet::make(fleet_options());
  REQUIRE_MESSAGE(fleet, (fleet ? "" : fleet.error().message));
  std::vector<ingest_ptr> out;
  std::map<std::string, std::uint64_t> sequences;
  std::vector<sim::sim_batch> step;
  while (fleet->step(step)) {
    for (auto& b : step) {
      wire::batch wb;
      wb.source_id = b.source_id;
      wb.sequence = ++sequences[b.source_id];
      wb.events = std::move(b.events);
      auto view = wire::decode(wire::encode(wb));
      REQUIRE(view);
      auto item = std::make_shared<ingest_item>();
      item->batch = std::move(*view);
      std::size_t n = 0;
      for (const auto& e : item->batch.events())
        n += e.fields.size() + 16;
      item->fields.reserve(n); // the parsed events' spans point into it
      for (const auto& e : item->batch.events()) {
        auto first = item->fields.size();
        item->fields.insert(item->fields.end(), e.fields.begin(),
                            e.fields.end());
        if (e.sourcetype == vsphere_sourcetype)
          normalize_vsphere(e.fields, [&](std::string_view k, value_view v) {
            item->fields.push_back({k, v});
          });
        auto parsed = e;
        parsed.fields = std::span<const field_view>{
          item->fields.data() + first, item->fields.size() - first};
        item->parsed.push_back(parsed);
      }
      REQUIRE(item->fields.size() <= n); // not moved: the spans hold
      out.push_back(std::move(item));
    }
    step.clear();
  }
  return out;
}

// One line per message, without log_context (the guest's log lines around
// an alert: lines that came in while the work waited may be among them).
std::string line_of(const correlator_message& m) {
  auto line = fmt::format("{} {}", m.topic, m.time);
  for (const auto& f : m.fields)
    if (f.name != "log_context")
      line += fmt::format(" {}={}", f.name, std::visit([](const auto& v) {
        return fmt::format("{}", v);
      }, f.value));
  return line;
}

std::string text_of(const correlator_message& m, std::string_view name) {
  for (const auto& f : m.fields)
    if (f.name == name)
      if (auto v = std::get_if<std::string>(&f.value))
        return *v;
  return {};
}

// Per VM, topic, kind and metric: the messages in their order.
using by_series = std::map<std::string, std::vector<std::string>>;

by_series series_of(const std::vector<correlator_message>& msgs) {
  by_series out;
  for (const auto& m : msgs)
    out[fmt::format("{} {} {} {}", text_of(m, "vm"), m.topic,
                    text_of(m, "kind"), text_of(m, "metric"))]
      .push_back(line_of(m));
  return out;
}

bool drift_alert(const correlator_message& m) {
  return m.topic == "alert.drift" && text_of(m, "kind") == "drift";
}

// The indexer's place: counts what it is given to store.
struct sink_state {
  std::mutex mu;
  std::size_t events = 0;   ///< the fleet's
  std::size_t messages = 0; ///< the correlator's own (parallax:*)
};

ingest_sink spawn_sink(caf::actor_system& sys, sink_state& st) {
  return sys.spawn([&st]() -> ingest_sink::behavior_type {
    return {
      [&st](ingest_atom, ingest_ptr& item) {
        std::lock_guard lock{st.mu};
        for (const auto& e : item->events())
          ++(e.sourcetype.starts_with("parallax:") ? st.messages : st.events);
      },
    };
  });
}

// What the correlator publishes, and a hook that may stall it.
struct published {
  std::mutex mu;
  std::vector<correlator_message> messages;
  std::function<void(const message_view&)> hook;

  std::size_t size() {
    std::lock_guard lock{mu};
    return messages.size();
  }
};

correlator_config config_of(ingest_sink sink, metrics_registry& metrics,
                            published& pub) {
  correlator_config cc;
  cc.options = fleet_correlator_options();
  cc.next = std::move(sink);
  cc.metrics = &metrics;
  cc.rt_priority = 0; // this test's threads keep their priority
  cc.nice = 0;
  // Never by age: only an empty mailbox, or the stop, lets it run.
  cc.drift_defer = std::chrono::hours{1};
  cc.publish = [&pub](const message_view& m, const batch_times&) {
    if (pub.hook)
      pub.hook(m);
    std::lock_guard lock{pub.mu};
    pub.messages.push_back(materialize(m));
  };
  return cc;
}

template <class Predicate>
bool wait_until(Predicate ready, std::chrono::seconds limit = 60s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!ready()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// A correlator stage whose mailbox is full before it handles anything:
// the first message it publishes holds it until every batch is sent.
// `then` sees every message published (on the actor's thread).
struct full_mailbox {
  sink_state stored;
  metrics_registry metrics;
  published pub;
  caf::actor_system_config sys_cfg;
  std::optional<caf::actor_system> sys; // goes before what the actor uses
  correlator_actor corr;

  full_mailbox(std::vector<ingest_ptr>& batches,
               std::function<void(const correlator_message&)> then = {}) {
    configure_actor_system(sys_cfg, config::defaults());
    sys.emplace(sys_cfg);
    std::promise<void> all_sent;
    auto sent = all_sent.get_future().share();
    pub.hook = [sent, then = std::move(then),
                first = true](const message_view& m) mutable {
      if (std::exchange(first, false))
        sent.wait_for(30s);
      if (then)
        then(materialize(m));
    };
    corr = spawn_correlator(*sys, config_of(spawn_sink(*sys, stored),
                                            metrics, pub));
    for (auto& b : batches) {
      b->times.received = now_ns();
      caf::anon_send(corr, ingest_atom::value, std::move(b));
    }
    all_sent.set_value();
  }

  void stop() {
    caf::anon_send_exit(corr, caf::exit_reason::user_shutdown);
  }

  void wait() {
    caf::scoped_actor self{*sys};
    self->wait_for(corr);
  }
};

} // namespace

TEST_CASE("correlator stage: with batches waiting, the deltas go first and "
          "the drift work runs once the mailbox is empty, the same messages "
          "per VM as advance() after every batch") {
  auto batches = fleet_batches();
  std::size_t fleet_events = 0;
  for (const auto& b : batches)
    fleet_events += b->events().size();
  // Expected: the logic alone, advance() after every batch.
  std::vector<correlator_message> expected;
  {
    correlator c{fleet_correlator_options()};
    for (const auto& b : fleet_batches()) {
      for (const auto& e : b->events())
        c.observe(b->batch.source_id(), e);
      c.advance(expected);
    }
  }
  std::size_t expected_drift = 0;
  for (const auto& m : expected)
    expected_drift += drift_alert(m);
  REQUIRE(expected_drift > 10);

  // From the first message on, batches wait behind each other until the
  // last.
  full_mailbox f{batches};
  auto& pub = f.pub;
  auto& stored = f.stored;
  REQUIRE(wait_until([&] { return pub.size() >= expected.size(); }));
  REQUIRE(wait_until([&] {
    std::lock_guard lock{stored.mu};
    return stored.events == fleet_events && stored.messages == pub.size();
  }));
  std::this_thread::sleep_for(100ms); // nothing more comes
  std::lock_guard lock{pub.mu};
  CHECK(pub.messages.size() == expected.size());
  // Deferred: every drift alert came after the last delta.
  std::size_t last_delta = 0, first_drift = pub.messages.size();
  for (std::size_t i = 0; i < pub.messages.size(); ++i) {
    if (pub.messages[i].sourcetype == "parallax:delta")
      last_delta = i;
    if (drift_alert(pub.messages[i]) && first_drift == pub.messages.size())
      first_drift = i;
  }
  CHECK(first_drift > last_delta);
  auto want = series_of(expected);
  auto got = series_of(pub.messages);
  CHECK(want.size() == got.size());
  for (const auto& [key, lines] : want) {
    CAPTURE(key);
    CHECK(got[key] == lines);
  }
  f.stop();
  f.wait();
}

TEST_CASE("correlator stage: at stop, the drift work left behind is done, "
          "published and stored") {
  auto batches = fleet_batches();
  auto late = fleet_options().start + 50 * 60 * s;
  std::promise<void> at_late;
  std::promise<void> exit_sent;
  auto stopped = exit_sent.get_future().share();
  std::size_t drift_before_stop = 0;
  bool stopping = false;
  // As above, the mailbox is full from the first message on; the first
  // delta of a window 50 minutes in (the baselines warm, the scenario's
  // anomalies under way) holds the actor until its exit message is in the
  // mailbox: from then on, the mailbox is not empty before the exit is
  // handled, so only the exit handler can run the drift work.
  full_mailbox f{batches, [&](const correlator_message& m) {
    if (!stopping && drift_alert(m))
      ++drift_before_stop;
    if (!stopping && m.sourcetype == "parallax:delta" && m.time >= late) {
      stopping = true;
      at_late.set_value();
      stopped.wait_for(30s);
    }
  }};
  REQUIRE(at_late.get_future().wait_for(60s) == std::future_status::ready);
  f.stop();
  exit_sent.set_value();
  f.wait();
  // Nothing was drained before the stop; the stop drained it all.
  CHECK(drift_before_stop == 0);
  std::size_t drift = 0;
  {
    std::lock_guard lock{f.pub.mu};
    for (const auto& m : f.pub.messages)
      drift += drift_alert(m);
  }
  CHECK(drift > 5);
  // Everything published went to the store.
  CHECK(wait_until([&] {
    std::lock_guard lock{f.stored.mu};
    return f.stored.messages == f.pub.size();
  }, 10s));
}
