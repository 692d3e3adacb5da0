// The publisher against real SUB sockets on 127.0.0.1.

#include "parallax/pipeline/publisher.hpp"

#include "parallax/schemas/publish.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include <zmq.h>

using namespace parallax;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

publisher_config local(std::uint64_t hwm = 10'000) {
  return publisher_config{"tcp://127.0.0.1:0", hwm};
}

std::unique_ptr<publisher> start(zmq::context& ctx, const publisher_config& cfg,
                                 metrics_registry* metrics = nullptr) {
  auto p = publisher::start(ctx, cfg, metrics);
  REQUIRE_MESSAGE(p, p.error().render());
  return std::move(*p);
}

struct received {
  std::string frame_topic;
  publish::published_message msg;
};

// One message, decoded, or nothing within `wait`.
std::optional<received> receive(zmq::socket& sub,
                                std::chrono::milliseconds wait = 2000ms) {
  zmq::socket* socks[] = {&sub};
  bool want[] = {true};
  auto ready = zmq::poll_in(socks, want, wait);
  REQUIRE(ready);
  if (!(*ready)[0])
    return std::nullopt;
  auto parts = sub.recv(true);
  REQUIRE(parts);
  REQUIRE(parts->size() == 2);
  auto msg = publish::decode((*parts)[1].view());
  REQUIRE_MESSAGE(msg, msg.error().render());
  return received{std::string{(*parts)[0].view()}, std::move(*msg)};
}

zmq::socket subscriber(zmq::context& ctx, const std::string& endpoint,
                       std::vector<std::string> prefixes) {
  zmq::socket sub{ctx, ZMQ_SUB};
  for (const auto& p : prefixes)
    REQUIRE(zmq_setsockopt(sub.handle(), ZMQ_SUBSCRIBE, p.data(), p.size())
            == 0);
  REQUIRE(!sub.connect(endpoint));
  return sub;
}

// PUB/SUB's slow joiner: publishes `topic` until `sub` has a message (read
// and discarded), so what follows reaches it.
void sync(publisher& pub, zmq::socket& sub, std::string_view topic) {
  auto deadline = clock_type::now() + 10s;
  while (clock_type::now() < deadline) {
    pub.publish(topic, 0, {});
    if (auto r = receive(sub, 20ms)) {
      // Drain the other sync messages.
      while (receive(sub, 50ms)) {
      }
      return;
    }
  }
  FAIL("the subscriber never received anything");
}

std::vector<field> delta_fields(std::string vm, std::int64_t hv) {
  return {{"vm", std::move(vm)},
          {"metric", std::string{"mem_used"}},
          {"hv_value", hv},
          {"rel_diff", 0.125},
          {"correction", false}};
}

} // namespace

TEST_CASE("publisher: a subscriber receives every message with per-topic "
          "sequences") {
  zmq::context ctx;
  metrics_registry metrics;
  auto pub = start(ctx, local(), &metrics);
  CHECK(pub->enabled());
  CHECK(pub->endpoint().starts_with("tcp://127.0.0.1:"));
  CHECK(pub->id().size() == 16);
  auto sub = subscriber(ctx, pub->endpoint(), {""});
  sync(*pub, sub, "sync");

  // Interleaved topics: each counts on its own.
  const char* topics[] = {"delta.web-01", "delta.db-02", "delta.web-01",
                          "alert.drift",  "delta.web-01", "delta.db-02"};
  std::int64_t t = 1'795'635'520'000'000'000;
  for (auto topic : topics)
    CHECK(pub->publish(topic, t++, delta_fields("web-01", 42))
          == publish_status::sent);
  std::map<std::string, std::vector<std::uint64_t>> seqs;
  t = 1'795'635'520'000'000'000;
  for (auto topic : topics) {
    auto r = receive(sub);
    REQUIRE(r);
    CHECK(r->frame_topic == topic);
    CHECK(r->msg.topic == topic);
    CHECK(r->msg.publisher == pub->id());
    CHECK(r->msg.time == t++);
    CHECK(r->msg.fields == delta_fields("web-01", 42));
    seqs[r->msg.topic].push_back(r->msg.sequence);
  }
  CHECK(seqs["delta.web-01"] == std::vector<std::uint64_t>{1, 2, 3});
  CHECK(seqs["delta.db-02"] == std::vector<std::uint64_t>{1, 2});
  CHECK(seqs["alert.drift"] == std::vector<std::uint64_t>{1});
  CHECK(!receive(sub, 100ms));
  // The sync messages count too: published_total is every sent message.
  CHECK(pub->published() >= 7);
  CHECK(metrics.get("publisher", "published_total").value()
        == pub->published());
  CHECK(metrics.get("publisher", "dropped_total").value() == 0);
}

TEST_CASE("publisher: subscribers get only the topic prefixes they ask for") {
  zmq::context ctx;
  auto pub = start(ctx, local());
  auto sub = subscriber(ctx, pub->endpoint(), {"alert.", "identity"});
  sync(*pub, sub, "alert.sync");
  for (auto topic : {"delta.web-01", "alert.drift", "identity", "event.os:auth",
                     "alert.security", "delta.alert."})
    pub->publish(topic, 1, {});
  std::vector<std::string> got;
  while (auto r = receive(sub, 300ms))
    got.push_back(r->msg.topic);
  CHECK(got == std::vector<std::string>{"alert.drift", "identity",
                                        "alert.security"});
}

TEST_CASE("publisher: a stuck subscriber never blocks publish(), drops are "
          "counted and show as a sequence gap") {
  zmq::context ctx;
  metrics_registry metrics;
  auto pub = start(ctx, local(10), &metrics);
  // Connected, subscribed, and not reading: small queues and buffers so the
  // backlog fills quickly.
  zmq::socket stuck{ctx, ZMQ_SUB};
  REQUIRE(!stuck.set_int(ZMQ_RCVHWM, 10));
  REQUIRE(!stuck.set_int(ZMQ_RCVBUF, 4096));
  REQUIRE(zmq_setsockopt(stuck.handle(), ZMQ_SUBSCRIBE, "", 0) == 0);
  REQUIRE(!stuck.connect(pub->endpoint()));
  // Wait until its subscription is in (it has a message waiting), without
  // reading anything.
  auto deadline = clock_type::now() + 10s;
  std::uint64_t sync_sent = 0;
  for (;;) {
    REQUIRE(clock_type::now() < deadline);
    if (pub->publish("sync", 0, {}) == publish_status::sent)
      ++sync_sent;
    zmq::socket* socks[] = {&stuck};
    bool want[] = {true};
    auto ready = zmq::poll_in(socks, want, 20ms);
    REQUIRE(ready);
    if ((*ready)[0])
      break;
  }

  // 100,000 messages of 1 KiB (100 MB, far beyond socket buffers).
  std::vector<field> fields = delta_fields("web-01", 1);
  fields.push_back({"padding", std::string(1024, 'p')});
  constexpr std::uint64_t n = 100'000;
  std::uint64_t sent = 0, dropped = 0;
  auto t0 = clock_type::now();
  for (std::uint64_t i = 0; i < n; ++i) {
    auto st = pub->publish("delta.web-01", static_cast<time_ns>(i), fields);
    (st == publish_status::sent ? sent : dropped) += 1;
  }
  auto took = clock_type::now() - t0;
  MESSAGE("100k publishes to a stuck subscriber: ",
          std::chrono::duration<double>(took).count(), " s, sent ", sent,
          ", dropped ", dropped);
  // Generous: a blocking send would hang forever; this takes ~0.2 s.
  CHECK(took < 30s);
  CHECK(sent + dropped == n);
  CHECK(dropped > n / 2);
  CHECK(pub->dropped() == dropped);
  CHECK(metrics.get("publisher", "dropped_total").value() == dropped);
  CHECK(metrics.get("publisher", "published_total").value()
        == pub->published());
  CHECK(pub->published() == sent + sync_sent);

  // Reading now: first what was queued (the sync messages, then delta
  // sequences without a hole), then, after one more publish, a message
  // whose sequence jumps: the drops are visible.
  std::vector<std::uint64_t> seqs;
  while (auto r = receive(stuck, 300ms))
    if (r->msg.topic == "delta.web-01")
      seqs.push_back(r->msg.sequence);
  REQUIRE(!seqs.empty());
  CHECK(seqs.size() == sent);
  CHECK(seqs.front() == 1);
  for (std::size_t i = 1; i < seqs.size(); ++i)
    CHECK(seqs[i] > seqs[i - 1]);
  REQUIRE(pub->publish("delta.web-01", 0, fields) == publish_status::sent);
  auto last = receive(stuck);
  REQUIRE(last);
  // Every number was used once: n messages before this one.
  CHECK(last->msg.sequence == n + 1);
  std::uint64_t missed = last->msg.sequence - seqs.back() - 1;
  CHECK(missed > 0);
}

TEST_CASE("publisher: an empty endpoint is off") {
  zmq::context ctx;
  metrics_registry metrics;
  auto pub = start(ctx, publisher_config{"", 10}, &metrics);
  CHECK(!pub->enabled());
  CHECK(pub->endpoint().empty());
  CHECK(pub->publish("delta.x", 1, {}) == publish_status::off);
  CHECK(pub->published() == 0);
  CHECK(pub->dropped() == 0);
}

TEST_CASE("publisher: invalid topics and fields are refused and counted") {
  zmq::context ctx;
  metrics_registry metrics;
  auto pub = start(ctx, local(), &metrics);
  CHECK(pub->publish("", 1, {}) == publish_status::invalid);
  CHECK(pub->publish("bad\xff", 1, {}) == publish_status::invalid);
  std::vector<field> dup = {{"a", std::int64_t{1}}, {"a", std::int64_t{2}}};
  CHECK(pub->publish("delta.x", 1, dup) == publish_status::invalid);
  std::vector<field> unnamed = {{"", true}};
  CHECK(pub->publish("delta.x", 1, unnamed) == publish_status::invalid);
  CHECK(metrics.get("publisher", "errors_total", "invalid_message").value()
        == 4);
  CHECK(pub->published() == 0);
  // No sequence was used: the next valid message on the topic is number 1.
  auto sub = subscriber(ctx, pub->endpoint(), {"delta.x"});
  sync(*pub, sub, "delta.xsync");
  CHECK(pub->publish("delta.x", 1, {}) == publish_status::sent);
  auto r = receive(sub);
  REQUIRE(r);
  CHECK(r->msg.sequence == 1);
}

TEST_CASE("publisher: a second publisher on a bound endpoint fails to start") {
  zmq::context ctx;
  auto pub = start(ctx, local());
  auto again = publisher::start(ctx, publisher_config{pub->endpoint(), 10});
  REQUIRE(!again);
  CHECK(again.error().message.find(pub->endpoint()) != std::string::npos);
}

TEST_CASE("publisher: publish_view sends what publish sends for the same "
          "fields, names_checked skips only the name check") {
  zmq::context ctx;
  metrics_registry metrics;
  auto pub = start(ctx, local(), &metrics);
  auto sub = subscriber(ctx, pub->endpoint(), {"delta."});
  sync(*pub, sub, "delta.sync");
  auto owned = delta_fields("web-01", 42);
  std::vector<field_view> views;
  for (const auto& f : owned)
    views.push_back({f.name, view(f.value)});
  CHECK(pub->publish("delta.web-01", 7, owned) == publish_status::sent);
  CHECK(pub->publish_view("delta.web-01", 7, views) == publish_status::sent);
  CHECK(pub->publish_view("delta.web-01", 7, views, true)
        == publish_status::sent);
  for (std::uint64_t seq = 1; seq <= 3; ++seq) {
    auto r = receive(sub);
    REQUIRE(r);
    CHECK(r->msg.sequence == seq);
    CHECK(r->msg.time == 7);
    CHECK(r->msg.fields == owned);
  }
  // Names: refused unless the caller vouched for them.
  std::vector<field_view> dup = {{"a", std::int64_t{1}}, {"a", true}};
  CHECK(pub->publish_view("delta.x", 1, dup) == publish_status::invalid);
  // The topic and string sizes are checked either way.
  CHECK(pub->publish_view("bad\xff", 1, views, true)
        == publish_status::invalid);
  std::string big(publish::limits{}.max_string_bytes + 1, 'x');
  std::vector<field_view> huge = {{"raw", std::string_view{big}}};
  CHECK(pub->publish_view("delta.x", 1, huge, true)
        == publish_status::invalid);
  CHECK(metrics.get("publisher", "errors_total", "invalid_message").value()
        == 3);
}
