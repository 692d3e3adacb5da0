#include "parallax/actors/correlator.hpp"

#include "parallax/schemas/wire.hpp"

#include <doctest/doctest.h>

#include <set>

using namespace parallax;

namespace {

constexpr time_ns s = 1'000'000'000;
constexpr time_ns t0 = 1'795'600'000 * s;

ingest_item item_of(std::string source, std::vector<event> events,
                    std::uint64_t sequence = 1) {
  wire::batch b;
  b.source_id = std::move(source);
  b.sequence = sequence;
  b.events = std::move(events);
  auto d = wire::decode(wire::encode(b));
  REQUIRE(d);
  ingest_item item;
  item.batch = std::move(*d);
  return item;
}

event ev(std::string sourcetype, std::string host,
         std::vector<field> fields) {
  event e;
  e.time = t0;
  e.index = "main";
  e.host = std::move(host);
  e.sourcetype = std::move(sourcetype);
  e.fields = std::move(fields);
  return e;
}

std::string str(const event_view& e, std::string_view name) {
  auto v = e.find(name);
  if (!v || !std::holds_alternative<std::string_view>(*v))
    return "<none>";
  return std::string{std::get<std::string_view>(*v)};
}

} // namespace

TEST_CASE("correlator stage: events get vm and vm_uuid once, and the batch "
          "still encodes") {
  correlator c;
  // The hypervisor sends its own vm_uuid, in upper case.
  auto hv = item_of(
    "hv", {ev("hv:libvirt:vm", "kvm-01",
              {{"vm_name", std::string{"web-01"}},
               {"vm_uuid", std::string{"C13F6C49-AD85-4559-8912-74BE4F9341BB"}},
               {"macs", std::string{"52:54:00:00:01:01"}}})});
  CHECK(attribute_batch(hv, c).attributed == 1);
  auto hv_events = hv.events();
  CHECK(str(hv_events[0], "vm") == "web-01");
  CHECK(str(hv_events[0], "vm_uuid") == "c13f6c49-ad85-4559-8912-74be4f9341bb");
  std::set<std::string_view> names;
  for (const auto& f : hv_events[0].fields)
    CHECK_MESSAGE(names.insert(f.name).second, "duplicate ", f.name);
  // The guest: identity first, then a process sample, mixed MAC notation.
  auto guest = item_of(
    "agent-1",
    {ev("os:identity", "web01.example.com",
        {{"hostname", std::string{"web01.example.com"}},
         {"macs", std::string{"52-54-00-00-01-01"}}}),
     ev("os:process", "web01.example.com",
        {{"pid", std::int64_t{1}}, {"command", std::string{"systemd"}}})});
  CHECK(attribute_batch(guest, c).attributed == 2);
  for (const auto& e : guest.events()) {
    CHECK(str(e, "vm") == "web-01");
    CHECK(str(e, "vm_uuid") == "c13f6c49-ad85-4559-8912-74be4f9341bb");
  }
  // Stored as the indexer stores it: the events re-encode and decode.
  wire::batch again;
  again.source_id = "x";
  again.sequence = 1;
  for (const auto& e : guest.events())
    again.events.push_back(e.materialize());
  for (const auto& e : hv.events())
    again.events.push_back(e.materialize());
  CHECK(wire::decode(wire::encode(again)));
}

TEST_CASE("correlator stage: messages become one storable batch") {
  std::vector<correlator_message> msgs(2);
  msgs[0].topic = "delta.web-01";
  msgs[0].time = t0;
  msgs[0].sourcetype = "parallax:delta";
  msgs[0].host = "kvm-01";
  msgs[0].fields = {{"vm", std::string{"web-01"}}, {"hv_value", 1.5}};
  msgs[1].topic = "alert.drift";
  msgs[1].time = t0 + s;
  msgs[1].sourcetype = "parallax:alert";
  msgs[1].fields = {{"state", std::string{"open"}}};
  auto item = batch_of_messages(msgs, 7);
  REQUIRE(item);
  CHECK(item->peer.empty()); // nobody waits for a reply
  CHECK(item->batch.source_id() == "parallax:correlator");
  CHECK(item->batch.sequence() == 7);
  auto events = item->events();
  REQUIRE(events.size() == 2);
  CHECK(events[0].sourcetype == "parallax:delta");
  CHECK(events[0].source == "delta.web-01");
  CHECK(events[0].host == "kvm-01");
  CHECK(str(events[0], "vm") == "web-01");
  auto hv = events[0].find("hv_value");
  REQUIRE(hv);
  CHECK(std::get<double>(*hv) == 1.5);
  CHECK(events[1].time == t0 + s);
  CHECK(events[1].index == "main");
  CHECK(str(events[1], "state") == "open");
  // The views point into the batch's own copy of the messages.
  msgs.clear();
  CHECK(str(item->events()[0], "vm") == "web-01");
  CHECK_FALSE(batch_of_messages({}, 8));
}

namespace {

// The fleet of the hold tests: web-01 with one NIC, its agent "agent-1".
event hv_sample(time_ns t) {
  auto e = ev("hv:libvirt:vm", "kvm-01",
              {{"vm_name", std::string{"web-01"}},
               {"vm_uuid", std::string{"c13f6c49-ad85-4559-8912-74be4f9341bb"}},
               {"macs", std::string{"52:54:00:00:01:01"}}});
  e.time = t;
  return e;
}

ingest_ptr guest_batch(std::string source, std::uint64_t sequence,
                       time_ns t, std::string host = "web01",
                       std::string mac = "52:54:00:00:01:01") {
  auto id = ev("os:identity", host,
               {{"hostname", host}, {"macs", mac}});
  auto p = ev("os:process", host,
              {{"pid", std::int64_t{1}}, {"command", std::string{"init"}}});
  id.time = p.time = t;
  auto item = std::make_shared<ingest_item>(
    item_of(std::move(source), {id, p}, sequence));
  item->bytes = 1000;
  return item;
}

ingest_ptr hv_batch(std::uint64_t sequence, time_ns t) {
  auto item = std::make_shared<ingest_item>(
    item_of("hv", {hv_sample(t)}, sequence));
  item->bytes = 1000;
  return item;
}

std::vector<std::string> vms_of(const ingest_ptr& item) {
  std::vector<std::string> out;
  for (const auto& e : item->events())
    out.push_back(str(e, "vm"));
  return out;
}

// Attributes `item` and admits it, as the correlator actor does, and with
// `settle` also lets the resolver's bindings and the time release what is
// held, as the actor does after every batch.
void admit(batch_hold& hold, correlator& c, ingest_ptr item,
           std::vector<ingest_ptr>& out,
           batch_hold::clock::time_point now = {}, bool settle = false) {
  if (hold.take_resend(item, out))
    return;
  auto found = attribute_batch(*item, c);
  hold.admit(std::move(item), found, now, out);
  if (settle) {
    hold.settle(c.identity(), out);
    hold.expire(now, out);
  }
}

} // namespace

TEST_CASE("correlator stage: a guest's first batches wait for its VM and "
          "are stored with it") {
  // Only admit(): the source's own next batch releases what it held.
  correlator c;
  batch_hold hold;
  std::vector<ingest_ptr> out;
  // The agent speaks before the hypervisor has named its VM: held.
  admit(hold, c, guest_batch("agent-1", 1, t0), out);
  admit(hold, c, guest_batch("agent-1", 2, t0 + 10 * s), out);
  CHECK(out.empty());
  CHECK(hold.bytes() == 2000);
  // The client resends the first: kept behind it, not attributed again.
  admit(hold, c, guest_batch("agent-1", 1, t0), out);
  CHECK(out.empty());
  CHECK(hold.stats().resends == 1);
  // The hypervisor names the VM; its batch is no guest's and goes on.
  admit(hold, c, hv_batch(1, t0 + 20 * s), out);
  REQUIRE(out.size() == 1);
  CHECK(out[0]->batch.source_id() == "hv");
  out.clear();
  // The agent's next batch is attributed: the held ones go first, in
  // order, with the VM added; then the resend; then the new batch.
  admit(hold, c, guest_batch("agent-1", 3, t0 + 20 * s), out);
  REQUIRE(out.size() == 4);
  std::vector<std::uint64_t> order;
  for (const auto& item : out)
    order.push_back(item->batch.sequence());
  CHECK(order == std::vector<std::uint64_t>{1, 2, 1, 3});
  using strings = std::vector<std::string>;
  CHECK(vms_of(out[0]) == strings{"web-01", "web-01"});
  CHECK(vms_of(out[1]) == strings{"web-01", "web-01"});
  CHECK(vms_of(out[2]) == strings{"<none>", "<none>"}); // a duplicate
  CHECK(vms_of(out[3]) == strings{"web-01", "web-01"});
  CHECK(str(out[0]->events()[1], "vm_uuid")
        == "c13f6c49-ad85-4559-8912-74be4f9341bb");
  // The held ones still encode as a batch (what the indexer stores).
  wire::batch again;
  again.source_id = "x";
  again.sequence = 1;
  for (const auto& e : out[0]->events())
    again.events.push_back(e.materialize());
  CHECK(wire::decode(wire::encode(again)));
  CHECK(hold.empty());
  CHECK(hold.bytes() == 0);
  CHECK(hold.stats().attributed == 2);
  CHECK(hold.stats().given_up == 0);
  CHECK(hold.stats().events_attributed == 4);
  // From now on the source's batches pass at once.
  out.clear();
  admit(hold, c, guest_batch("agent-1", 4, t0 + 30 * s), out);
  CHECK(out.size() == 1);
}

TEST_CASE("correlator stage: held batches go on once the hypervisor's "
          "batch names their VM") {
  // A client that waits for its acknowledgements before it sends more (the
  // simulator's historical mode) sends no next batch to settle the hold.
  correlator c;
  batch_hold hold;
  std::vector<ingest_ptr> out;
  admit(hold, c, guest_batch("agent-1", 1, t0), out);
  admit(hold, c, guest_batch("other", 1, t0, "db01", "52:54:00:00:09:09"),
        out);
  hold.settle(c.identity(), out);
  CHECK(out.empty());
  admit(hold, c, hv_batch(1, t0 + 20 * s), out);
  REQUIRE(out.size() == 1);
  hold.settle(c.identity(), out);
  REQUIRE(out.size() == 2);
  CHECK(out[1]->batch.source_id() == "agent-1");
  CHECK(vms_of(out[1]) == std::vector<std::string>{"web-01", "web-01"});
  CHECK(hold.stats().attributed == 1);
  // No VM has the other guest's MAC: it still waits.
  CHECK_FALSE(hold.empty());
  CHECK(hold.bytes() == 1000);
}

TEST_CASE("correlator stage: a guest no VM claims is held until the "
          "hypervisors have moved two windows on, then stored as it is") {
  correlator c;
  batch_hold hold;
  std::vector<ingest_ptr> out;
  auto db = [](std::uint64_t seq, time_ns t) {
    return guest_batch("stray", seq, t, "db01", "52:54:00:00:09:09");
  };
  // Its own time alone does not matter: only the hypervisors' does.
  for (std::uint64_t i = 0; i < 6; ++i)
    admit(hold, c, db(i + 1, t0 + 10 * s * i), out, {}, true);
  CHECK(out.empty());
  // The hypervisors' first sample comes 5 minutes after the guest's (say,
  // it was stopped): their time counts from there.
  admit(hold, c, hv_batch(1, t0 + 300 * s), out, {}, true);
  REQUIRE(out.size() == 1); // the hypervisor's own batch
  CHECK(out[0]->batch.source_id() == "hv");
  out.clear();
  admit(hold, c, hv_batch(2, t0 + 340 * s), out, {}, true);
  REQUIRE(out.size() == 1);
  out.clear();
  admit(hold, c, hv_batch(3, t0 + 341 * s), out, {}, true);
  REQUIRE(out.size() == 7);
  CHECK(out[0]->batch.source_id() == "hv");
  for (std::uint64_t i = 0; i < 6; ++i) {
    CHECK(out[i + 1]->batch.sequence() == i + 1);
    CHECK(vms_of(out[i + 1])[0] == "<none>");
  }
  CHECK(hold.stats().given_up == 6);
  CHECK(hold.empty());
  // Given up on: not held again.
  out.clear();
  admit(hold, c, db(7, t0 + 60 * s), out, {}, true);
  CHECK(out.size() == 1);
}

TEST_CASE("correlator stage: a held guest's old events do not end its "
          "hold") {
  // An agent's first batch may carry log lines hours old: the hypervisors
  // being far past them says nothing about the VM.
  correlator c;
  batch_hold hold;
  std::vector<ingest_ptr> out;
  admit(hold, c, hv_batch(1, t0), out, {}, true);
  out.clear();
  admit(hold, c,
        guest_batch("late", 1, t0 - 3600 * s, "db01", "52:54:00:00:09:09"),
        out, {}, true);
  admit(hold, c, hv_batch(2, t0 + 20 * s), out, {}, true);
  REQUIRE(out.size() == 1);
  CHECK(out[0]->batch.source_id() == "hv");
  CHECK_FALSE(hold.empty());
}

TEST_CASE("correlator stage: a source never held gets no VM added to its "
          "other events") {
  // A relay of several hosts' lines, attributed line by line (host
  // fallback): one line's VM must not spread to the others.
  correlator c;
  batch_hold hold;
  std::vector<ingest_ptr> out;
  admit(hold, c, hv_batch(1, t0), out, {}, true);
  out.clear();
  auto line = [](std::string host) {
    auto e = ev("os:syslog", std::move(host), {});
    e.raw = "cron[1]: a line";
    return e;
  };
  auto relay = std::make_shared<ingest_item>(
    item_of("relay", {line("web-01"), line("elsewhere")}));
  relay->bytes = 100;
  admit(hold, c, relay, out, {}, true);
  REQUIRE(out.size() == 1);
  CHECK(vms_of(out[0]) == std::vector<std::string>{"web-01", "<none>"});
}

TEST_CASE("correlator stage: held batches are bounded in wall time and in "
          "bytes") {
  correlator c;
  batch_hold::options opts;
  opts.wall = std::chrono::seconds{40};
  opts.max_bytes = 2500;
  batch_hold hold{opts};
  std::vector<ingest_ptr> out;
  batch_hold::clock::time_point start{};
  admit(hold, c, guest_batch("a", 1, t0), out, start);
  admit(hold, c, guest_batch("b", 1, t0), out, start + std::chrono::seconds{1});
  CHECK(out.empty());
  hold.expire(start + std::chrono::seconds{39}, out);
  CHECK(out.empty());
  // 3000 bytes held: the source held longest goes on.
  admit(hold, c, guest_batch("b", 2, t0 + s), out,
        start + std::chrono::seconds{2});
  REQUIRE(out.size() == 1);
  CHECK(out[0]->batch.source_id() == "a");
  CHECK(hold.bytes() == 2000);
  out.clear();
  // Resends count too: b's first batch again makes 3000 bytes.
  admit(hold, c, guest_batch("c", 1, t0), out,
        start + std::chrono::seconds{3});
  REQUIRE(out.size() == 2); // b's two batches
  CHECK(out[0]->batch.source_id() == "b");
  out.clear();
  admit(hold, c, guest_batch("d", 1, t0), out,
        start + std::chrono::seconds{4});
  CHECK(out.empty());
  admit(hold, c, guest_batch("c", 1, t0), out,
        start + std::chrono::seconds{5});
  REQUIRE(out.size() == 2); // c's batch and its resend
  CHECK(out[0]->batch.source_id() == "c");
  CHECK(out[1]->batch.source_id() == "c");
  CHECK(hold.stats().resends == 1);
  CHECK(hold.bytes() == 1000);
  out.clear();
  // Held 40 s: passed on as it is.
  hold.expire(start + std::chrono::seconds{45}, out);
  REQUIRE(out.size() == 1);
  CHECK(out[0]->batch.source_id() == "d");
  CHECK(hold.empty());
  CHECK(hold.stats().given_up == 5);
}

TEST_CASE("correlator stage: at stop, held batches are dropped, not stored "
          "without their VM") {
  correlator c;
  batch_hold hold;
  std::vector<ingest_ptr> out;
  admit(hold, c, guest_batch("agent-1", 1, t0), out);
  admit(hold, c, guest_batch("agent-1", 2, t0 + s), out);
  admit(hold, c, guest_batch("agent-9", 1, t0, "db01", "52:54:00:00:09:09"),
        out);
  CHECK(out.empty());
  CHECK(hold.bytes() > 0);
  CHECK(hold.drop_all() == 3);
  CHECK(hold.empty());
  CHECK(hold.bytes() == 0);
  CHECK(hold.stats().given_up == 0);
}

TEST_CASE("correlator stage: messages the store could not read back are "
          "left out and counted") {
  std::vector<correlator_message> msgs(4);
  for (auto& m : msgs) {
    m.topic = "delta.web-01";
    m.time = t0;
    m.sourcetype = "parallax:delta";
    m.fields = {{"vm", std::string{"web-01"}}};
  }
  msgs[1].topic = "delta.web-\xff"; // a VM name that is not UTF-8
  msgs[2].fields.push_back({"vm", std::string{"again"}});
  msgs[3].fields.push_back({"", 1.0});
  CHECK(storable(msgs[0]));
  CHECK_FALSE(storable(msgs[1]));
  CHECK_FALSE(storable(msgs[2]));
  CHECK_FALSE(storable(msgs[3]));
  std::size_t skipped = 0;
  auto item = batch_of_messages(msgs, 9, &skipped);
  REQUIRE(item);
  CHECK(skipped == 3);
  REQUIRE(item->events().size() == 1);
  CHECK(item->events()[0].source == "delta.web-01");
  CHECK_FALSE(batch_of_messages({msgs[1]}, 10, &skipped));
  CHECK(skipped == 1);
}
