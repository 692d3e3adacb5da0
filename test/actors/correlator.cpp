#include "parallax/actors/correlator.hpp"

#include "parallax/schemas/wire.hpp"

#include <doctest/doctest.h>

#include <set>

using namespace parallax;

namespace {

constexpr time_ns s = 1'000'000'000;
constexpr time_ns t0 = 1'795'600'000 * s;

ingest_item item_of(std::string source, std::vector<event> events) {
  wire::batch b;
  b.source_id = std::move(source);
  b.sequence = 1;
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
  CHECK(attribute_batch(hv, c) == 1);
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
  CHECK(attribute_batch(guest, c) == 2);
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
  CHECK(events[1].time == t0 + s);
  CHECK_FALSE(batch_of_messages({}, 8));
}
