// collectd write_http JSON, checked against bodies the real collectd 5.12
// sent (../shared/data/collectd/, captured on Debian 12).

#include "parallax/pipeline/collectd.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

using namespace parallax;

namespace {

std::string read_capture(std::string_view name) {
  auto path = std::filesystem::path{PARALLAX_SHARED_DATA} / "collectd" / name;
  std::ifstream in{path};
  REQUIRE_MESSAGE(in, path.string());
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

std::string str(const event& e, std::string_view name) {
  auto v = e.find(name);
  REQUIRE_MESSAGE(v, name);
  REQUIRE(std::holds_alternative<std::string>(*v));
  return std::get<std::string>(*v);
}

} // namespace

TEST_CASE("collectd: one real POST body becomes one event per value list") {
  auto body = read_capture("raw-post-body.json");
  auto lists = nlohmann::json::parse(body).size();
  collectd_converter c;
  auto events = c.convert(body, now_ns());
  REQUIRE_MESSAGE(events, events.error().message);
  CHECK(events->size() == lists);
  for (const auto& e : *events) {
    CHECK(e.sourcetype == "hv:collectd");
    CHECK(e.host == "hv-test-01");
    CHECK(e.time > 1'700'000'000'000'000'000);
  }
  // The first list of the capture: virt/old01 domain_state 5 (shut off).
  const auto& first = events->front();
  CHECK(str(first, "plugin") == "virt");
  CHECK(str(first, "vm_name") == "old01");
  CHECK(str(first, "type") == "domain_state");
  CHECK(std::get<std::int64_t>(*first.find("state")) == 5);
  CHECK(first.time == 1795635548821000000);
}

TEST_CASE("collectd: the virt plugin's interface samples carry the MAC and "
          "derive counters become rates") {
  collectd_converter c;
  auto events = c.convert(read_capture("virt-write_http.json"), now_ns());
  REQUIRE_MESSAGE(events, events.error().message);
  std::set<std::string> macs;
  int rates = 0;
  for (const auto& e : *events) {
    if (str(e, "type") != "if_octets")
      continue;
    macs.insert(str(e, "mac"));
    CHECK(e.find("rx"));
    if (auto r = e.find("rx_per_s")) {
      ++rates;
      CHECK(std::get<double>(*r) >= 0);
    }
  }
  // The five domains of ../shared/data/libvirt/test-node.xml; old01 is shut
  // off, so only running and paused domains report interfaces.
  CHECK(macs.count("52:54:00:a1:00:01") == 1);
  CHECK(macs.count("52:54:00:b2:00:02") == 1);
  CHECK(macs.size() >= 4);
  CHECK(rates > 0); // the capture joins several POSTs: later ones have rates
}

TEST_CASE("collectd: processes plugin and notifications") {
  collectd_converter c;
  auto procs = c.convert(read_capture("processes-write_http.json"), now_ns());
  REQUIRE_MESSAGE(procs, procs.error().message);
  CHECK_FALSE(procs->empty());
  // Notifications: the capture joins several POST bodies (arrays) into one.
  auto posts = nlohmann::json::parse(read_capture("notifications-write_http.json"));
  REQUIRE(posts.is_array());
  std::size_t n = 0;
  for (const auto& post : posts) {
    auto events = c.convert(post.dump(), now_ns());
    REQUIRE_MESSAGE(events, events.error().message);
    for (const auto& e : *events) {
      ++n;
      CHECK(e.sourcetype == "hv:collectd:notification");
      CHECK(e.host == "hv-test-01");
      CHECK(e.raw);
      CHECK(e.find("severity"));
    }
  }
  CHECK(n == posts.size());
}

TEST_CASE("collectd: malformed bodies are refused whole, with the element "
          "and the reason") {
  collectd_converter c;
  auto ok = R"({"values":[10],"dstypes":["derive"],"dsnames":["value"],
    "time":100.0,"interval":10,"host":"h","plugin":"p","plugin_instance":"",
    "type":"t","type_instance":""})";
  struct bad_case {
    std::string body;
    std::string expect;
  } cases[] = {
    {"not json", "not valid JSON"},
    {"{}", "array"},
    {"[1]", "element 0: not an object"},
    {std::string{"["} + ok + R"(,{"values":[1,2],"dstypes":["gauge"],"dsnames":["a"],"time":1,"host":"h","plugin":"p","plugin_instance":"","type":"t","type_instance":""}])",
     "element 1: values, dstypes and dsnames differ"},
    {R"([{"values":[1],"dstypes":["gauge"],"dsnames":["a"],"time":1,"plugin":"p","plugin_instance":"","type":"t","type_instance":""}])",
     "\"host\" must be a string"},
    {R"([{"values":["x"],"dstypes":["gauge"],"dsnames":["a"],"time":1,"host":"h","plugin":"p","plugin_instance":"","type":"t","type_instance":""}])",
     "values[0] must be a number"},
    {R"([{"values":[1],"dstypes":["weird"],"dsnames":["a"],"time":1,"host":"h","plugin":"p","plugin_instance":"","type":"t","type_instance":""}])",
     "is not gauge"},
    {R"([{"values":[1],"dstypes":["gauge"],"dsnames":["_x"],"time":1,"host":"h","plugin":"p","plugin_instance":"","type":"t","type_instance":""}])",
     "dsnames[0]"},
    {R"([{"values":[1],"dstypes":["gauge"],"dsnames":["a"],"time":-5,"host":"h","plugin":"p","plugin_instance":"","type":"t","type_instance":""}])",
     "out of range"},
  };
  for (const auto& k : cases) {
    auto r = c.convert(k.body, now_ns());
    REQUIRE_FALSE_MESSAGE(r, k.body);
    CHECK_MESSAGE(r.error().message.find(k.expect) != std::string::npos,
                  r.error().message);
  }
  // The refused body with a valid first element left no rate state behind:
  // the same series now starts fresh (no rate on its first sample)...
  auto first = c.convert(std::string{"["} + ok + "]", now_ns());
  REQUIRE(first);
  CHECK_FALSE(first->front().find("value_per_s"));
  // ...and its next sample has one: 10 -> 30 over 10 s.
  auto later = std::string{ok};
  later.replace(later.find("[10]"), 4, "[30]");
  later.replace(later.find("100.0"), 5, "110.0");
  auto second = c.convert("[" + later + "]", now_ns());
  REQUIRE(second);
  auto r = second->front().find("value_per_s");
  REQUIRE(r);
  CHECK(std::get<double>(*r) == doctest::Approx(2.0));
}
