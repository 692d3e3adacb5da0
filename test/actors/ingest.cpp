// End-to-end tests of the ingest path: real TCP sockets on loopback, a real
// LMDB store, the real collector and indexer.

#include "pipeline_fixture.hpp"

#include "parallax/pipeline/ingest_client.hpp"
#include "parallax/schemas/reply.hpp"
#include "parallax/schemas/wire.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <limits>
#include <map>
#include <set>
#include <thread>

#include <zmq.h>

using namespace parallax;
using namespace std::chrono_literals;

namespace {


// Batch `seq` of `n` events from `source`; each event carries its batch and
// position so the store's contents can be checked event by event.
std::string make_frame(std::string_view source, std::uint64_t seq,
                       std::size_t n, time_ns base) {
  wire::batch b;
  b.source_id = source;
  b.sequence = seq;
  for (std::size_t i = 0; i < n; ++i) {
    event e;
    e.time = base + static_cast<time_ns>(seq * 1000 + i);
    e.index = "os";
    e.host = "web-01";
    e.source = "/var/log/auth.log";
    e.sourcetype = "os:auth";
    e.raw = "sshd[42]: Accepted publickey for deploy from 10.0.1.2";
    e.fields = {{"src", std::string{source}},
                {"seq", static_cast<std::int64_t>(seq)},
                {"i", static_cast<std::int64_t>(i)}};
    b.events.push_back(std::move(e));
  }
  return wire::encode(b);
}

// Every (src, seq, i) in the store, with its multiplicity.
std::map<std::tuple<std::string, std::int64_t, std::int64_t>, int>
contents(storage::store& st) {
  std::map<std::tuple<std::string, std::int64_t, std::int64_t>, int> out;
  auto buckets = st.buckets();
  REQUIRE(buckets);
  for (const auto& b : *buckets) {
    auto err = st.scan(b.id, [&](std::uint64_t, const event_view& e) {
      auto src = e.find("src");
      auto seq = e.find("seq");
      auto i = e.find("i");
      REQUIRE((src && seq && i));
      ++out[{std::string{std::get<std::string_view>(*src)},
             std::get<std::int64_t>(*seq), std::get<std::int64_t>(*i)}];
    });
    REQUIRE_FALSE(err);
  }
  return out;
}

// Sends one raw frame from a fresh DEALER and returns the reply.
wire::reply send_raw(zmq::context& ctx, const std::string& endpoint,
                     std::string_view frame) {
  zmq::socket s{ctx, ZMQ_DEALER};
  REQUIRE_FALSE(s.connect(endpoint));
  std::string_view parts[] = {frame};
  REQUIRE_FALSE(s.send(parts));
  zmq::socket* socks[] = {&s};
  bool want[] = {true};
  auto ready = zmq::poll_in(socks, want, 10s);
  REQUIRE(ready);
  REQUIRE_MESSAGE((*ready)[0], "no reply within 10 s");
  auto msg = s.recv();
  REQUIRE(msg);
  auto r = wire::decode_reply(msg->back().view());
  REQUIRE_MESSAGE(static_cast<bool>(r), (r ? "" : r.error().message));
  return *r;
}

} // namespace

TEST_CASE("ingest: acked batches are stored exactly once, resends are "
          "duplicates") {
  test::temp_dir tmp;
  zmq::context zctx;
  test::running_pipeline p{tmp.path, zctx};
  auto base = now_ns() - 3'600'000'000'000;
  ingest_client_options copts;
  copts.endpoint = p.endpoint();
  copts.window = 4;
  auto client = ingest_client::connect(zctx, copts);
  REQUIRE(client);
  for (std::uint64_t seq = 1; seq <= 20; ++seq)
    REQUIRE_FALSE((*client)->send(seq, make_frame("agent-a", seq, 50, base)));
  REQUIRE_FALSE((*client)->drain(30s));
  CHECK((*client)->stats().acked == 20);
  CHECK((*client)->stats().rejected == 0);
  // A client that lost its ack resends: the server answers "duplicate".
  auto dup = send_raw(zctx, p.endpoint(), make_frame("agent-a", 7, 50, base));
  CHECK(dup.status == wire::reply_status::duplicate);
  CHECK(dup.source_id == "agent-a");
  CHECK(dup.sequence == 7u);
  auto all = contents(p.store());
  CHECK(all.size() == 20 * 50); // 20 batches of 50 distinct events
  for (const auto& [key, n] : all)
    CHECK_MESSAGE(n == 1, std::get<1>(key), "/", std::get<2>(key));
  CHECK(p.counter_value("indexer", "stored_events_total") == 1000);
  CHECK(p.counter_value("collector", "replies_total", "duplicate") == 1);
}

TEST_CASE("ingest: bad frames are rejected with a reason and other clients "
          "never notice") {
  test::temp_dir tmp;
  zmq::context zctx;
  test::running_pipeline p{tmp.path, zctx};
  auto base = now_ns() - 60'000'000'000;
  ingest_client_options copts;
  copts.endpoint = p.endpoint();
  copts.window = 2;
  auto good = ingest_client::connect(zctx, copts);
  REQUIRE(good);
  std::uint64_t seq = 0;
  auto send_good = [&] {
    ++seq;
    REQUIRE_FALSE((*good)->send(seq, make_frame("good", seq, 20, base)));
  };
  struct bad_case {
    std::string name;
    std::string frame;
    ec code;
  };
  std::vector<bad_case> cases;
  cases.push_back({"not msgpack", std::string{"\xc1\x00\x01", 3}, ec::not_msgpack});
  cases.push_back({"random text", "GET / HTTP/1.1\r\n\r\n", ec::wrong_type});
  auto ok = make_frame("bad", 1, 5, base);
  cases.push_back({"truncated", ok.substr(0, ok.size() / 2), ec::truncated});
  // 10 MB, beyond the 8 MiB default limit but within what ZeroMQ delivers.
  cases.push_back({"10 MB frame", std::string(10'000'000, '\x90'),
                   ec::oversized_frame});
  {
    wire::batch b;
    b.source_id = "bad";
    b.sequence = 2;
    event e;
    e.time = base;
    e.raw = std::string(1'000'000, 'x'); // 1 MB > 512 KiB
    b.events.push_back(e);
    cases.push_back({"1 MB string", wire::encode(b), ec::string_too_long});
    b.events[0].raw = "fine";
    // Year 9999 (253402300799 s) is beyond int64 nanoseconds; the latest
    // representable time (year 2262) stands in for it.
    b.events[0].time = std::numeric_limits<time_ns>::max();
    cases.push_back({"far future time", wire::encode(b), ec::invalid_value});
    b.events[0].time = -1;
    cases.push_back({"time before 1970", wire::encode(b), ec::invalid_value});
    b.events[0].time = base;
    b.events[0].fields = {{"_time_source", std::string{"mine"}}};
    cases.push_back({"reserved field name", wire::encode(b), ec::invalid_value});
  }
  for (const auto& c : cases) {
    send_good();
    auto r = send_raw(zctx, p.endpoint(), c.frame);
    CHECK_MESSAGE(r.status == wire::reply_status::rejected, c.name);
    CHECK_MESSAGE(r.code == c.code, c.name, ": ", r.message);
    CHECK_MESSAGE(!r.message.empty(), c.name);
  }
  send_good();
  REQUIRE_FALSE((*good)->drain(30s));
  CHECK((*good)->stats().acked == seq);
  CHECK((*good)->stats().rejected == 0);
  auto all = contents(p.store());
  CHECK(all.size() == seq * 20); // only the good client's events
  CHECK(p.counter_value("collector", "errors_total", "not_msgpack") == 1);
  CHECK(p.counter_value("collector", "errors_total", "oversized_frame") == 1);
  CHECK(p.counter_value("collector", "errors_total", "invalid_value") == 3);
}

TEST_CASE("ingest: the dedup state survives a restart") {
  test::temp_dir tmp;
  zmq::context zctx;
  auto base = now_ns() - 60'000'000'000;
  std::string endpoint;
  {
    test::running_pipeline p{tmp.path, zctx};
    for (std::uint64_t seq = 1; seq <= 3; ++seq)
      CHECK(send_raw(zctx, p.endpoint(), make_frame("agent-r", seq, 10, base))
              .status
            == wire::reply_status::ack);
  }
  test::running_pipeline p{tmp.path, zctx};
  CHECK(send_raw(zctx, p.endpoint(), make_frame("agent-r", 2, 10, base)).status
        == wire::reply_status::duplicate);
  CHECK(send_raw(zctx, p.endpoint(), make_frame("agent-r", 4, 10, base)).status
        == wire::reply_status::ack);
  CHECK(contents(p.store()).size() == 40); // batches 1-4, 10 events each
}

TEST_CASE("ingest: backpressure slows clients down and loses nothing") {
  test::temp_dir tmp;
  zmq::context zctx;
  collector_config ccfg;
  ccfg.max_inflight_bytes = 64 << 10; // a few frames at a time
  test::running_pipeline p{tmp.path, zctx, ccfg};
  auto base = now_ns() - 60'000'000'000;
  ingest_client_options copts;
  copts.endpoint = p.endpoint();
  copts.window = 64;
  auto client = ingest_client::connect(zctx, copts);
  REQUIRE(client);
  for (std::uint64_t seq = 1; seq <= 200; ++seq)
    REQUIRE_FALSE((*client)->send(seq, make_frame("agent-b", seq, 100, base)));
  REQUIRE_FALSE((*client)->drain(60s));
  CHECK((*client)->stats().acked == 200);
  CHECK(contents(p.store()).size() == 200 * 100);
  // The 64 KiB credit holds ~5 frames of ~12 KB: the collector had to pause.
  CHECK(p.counter_value("collector", "backpressure_pauses_total") > 0);
}

TEST_CASE("ingest: a full store answers failed, loses nothing, and recovers") {
  test::temp_dir tmp;
  zmq::context zctx;
  auto base = now_ns() - 60'000'000'000;
  ingest_client_options copts;
  copts.window = 4;
  copts.retry_failed_after = std::chrono::milliseconds{100};
  std::uint64_t sent = 0;
  {
    // A 1 MiB map fills after some hundred batches of blocks and index.
    test::running_pipeline p{tmp.path, zctx, {}, {}, std::uint64_t{1} << 20};
    copts.endpoint = p.endpoint();
    auto client = ingest_client::connect(zctx, copts);
    REQUIRE(client);
    for (int i = 0; i < 5000 && (*client)->stats().failed == 0; ++i) {
      ++sent;
      // Once full, the window stays full of batches answered `failed`:
      // send gives up after its wait instead of blocking forever.
      if (auto err = (*client)->send(sent, make_frame("agent-f", sent, 50, base),
                                     std::chrono::seconds{2})) {
        CHECK(err.message.find("cannot store") != std::string::npos);
        --sent;
        break;
      }
    }
    MESSAGE("sent ", sent, ", acked ", (*client)->stats().acked, ", failed ",
            (*client)->stats().failed, ", resent ", (*client)->stats().resent,
            ", outstanding ", (*client)->outstanding());
    REQUIRE_MESSAGE((*client)->stats().failed > 0, "the store never filled up");
    CHECK(p.counter_value("indexer", "errors_total", "commit_failed") > 0);
    CHECK((*client)->outstanding() > 0); // failed batches wait to be resent
  }
  // Space returns: the same data directory with a larger map. A new client
  // (the port changed) sends every batch again, as an agent replaying its
  // spool would: what was stored is answered duplicate, the rest lands.
  test::running_pipeline p{tmp.path, zctx, {}, {}, std::uint64_t{64} << 20};
  copts.endpoint = p.endpoint();
  auto again = ingest_client::connect(zctx, copts);
  REQUIRE(again);
  for (std::uint64_t seq = 1; seq <= sent; ++seq)
    REQUIRE_FALSE((*again)->send(seq, make_frame("agent-f", seq, 50, base)));
  REQUIRE_FALSE((*again)->drain(30s));
  CHECK((*again)->stats().rejected == 0);
  CHECK((*again)->stats().duplicates > 0);
  CHECK((*again)->stats().acked + (*again)->stats().duplicates == sent);
  auto all = contents(p.store());
  CHECK(all.size() == sent * 50);
  for (const auto& [key, n] : all)
    CHECK_MESSAGE(n == 1, std::get<1>(key), "/", std::get<2>(key));
}

TEST_CASE("ingest: a client without a server gives up instead of hanging") {
  zmq::context zctx;
  // A port nothing listens on: bound and released by a throwaway socket.
  std::string endpoint;
  {
    zmq::socket probe{zctx, ZMQ_ROUTER};
    REQUIRE_FALSE(probe.bind("tcp://127.0.0.1:0"));
    endpoint = probe.last_endpoint();
  }
  ingest_client_options copts;
  copts.endpoint = endpoint;
  copts.window = 4;
  copts.resend_after = std::chrono::milliseconds{100};
  auto client = ingest_client::connect(zctx, copts);
  REQUIRE(client);
  auto t0 = std::chrono::steady_clock::now();
  error err;
  for (std::uint64_t seq = 1; seq <= 100 && !err; ++seq)
    err = (*client)->send(seq, make_frame("lonely", seq, 10, now_ns()),
                          std::chrono::seconds{1});
  CHECK(static_cast<bool>(err));
  CHECK(err.message.find("server is down") != std::string::npos);
  // Four batches fill the window; the fifth waits one second, then fails.
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds{5});
  CHECK((*client)->drain(std::chrono::milliseconds{300}));
}

TEST_CASE("ingest: a client sends its batches in order also when its first "
          "found no server") {
  // An agent's first batch carries its identity; the server attributes the
  // rest by it, so the first must not be overtaken by the second.
  zmq::context zctx;
  // A Unix socket: a TCP client retrying an ephemeral port nobody listens
  // on can connect to itself and take the port.
  test::temp_dir tmp;
  auto endpoint = "ipc://" + (tmp.path / "ingest.sock").string();
  ingest_client_options copts;
  copts.endpoint = endpoint;
  auto client = ingest_client::connect(zctx, copts);
  REQUIRE(client);
  // Nobody listens yet: the first batch waits to be tried again.
  REQUIRE_FALSE((*client)->send(1, make_frame("agent-o", 1, 5, now_ns())));
  zmq::socket server{zctx, ZMQ_ROUTER};
  REQUIRE_FALSE(server.bind(endpoint));
  std::this_thread::sleep_for(500ms); // the client's socket reconnects
  for (std::uint64_t seq = 2; seq <= 5; ++seq)
    REQUIRE_FALSE((*client)->send(seq, make_frame("agent-o", seq, 5, now_ns())));
  std::vector<std::uint64_t> order;
  zmq::socket* socks[] = {&server};
  bool want[] = {true};
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (order.size() < 5 && std::chrono::steady_clock::now() < deadline) {
    REQUIRE_FALSE((*client)->poll(10ms));
    auto ready = zmq::poll_in(socks, want, 10ms);
    REQUIRE(ready);
    while ((*ready)[0]) {
      auto parts = server.recv(true);
      if (!parts)
        break;
      auto seq = wire::peek_envelope(parts->back().view()).sequence.value_or(0);
      if (std::find(order.begin(), order.end(), seq) == order.end())
        order.push_back(seq);
    }
  }
  std::string seen;
  for (auto seq : order)
    seen += fmt::format(" {}", seq);
  INFO("first arrivals:", seen);
  CHECK(order == std::vector<std::uint64_t>{1, 2, 3, 4, 5});
}

namespace {

// Batch 1 of hypervisor source `source`: `n` samples of one VM, a minute
// old.
wire::batch hv_batch(std::string source, std::string vm, std::string uuid,
                     std::string mac, std::size_t n) {
  wire::batch b;
  b.source_id = std::move(source);
  b.sequence = 1;
  event e;
  e.time = now_ns() - 60'000'000'000;
  e.index = "hv";
  e.host = "kvm-01";
  e.sourcetype = "hv:libvirt:vm";
  e.fields = {{"vm_name", std::move(vm)},
              {"vm_uuid", std::move(uuid)},
              {"macs", std::move(mac)},
              {"cpu_pct", 12.5}};
  b.events.assign(n, e);
  return b;
}

// A correlator that leaves its thread's priority as it is (neither the
// real-time class nor a nice): these tests are about what it stores.
correlator_config default_priority_correlator() {
  correlator_config cc;
  cc.nice = 0;
  cc.rt_priority = 0;
  return cc;
}

} // namespace

TEST_CASE("ingest: at stop, the correlator's last published messages are "
          "stored") {
  test::temp_dir tmp;
  zmq::context zctx;
  // The first message (the identity change a hypervisor's first sample
  // makes) stalls the correlator's handler, so that stop() begins while
  // the message is published but not yet stored: the stop must wait for
  // the correlator before it ends the indexer.
  std::atomic<int> published{0};
  std::promise<void> first;
  auto cc = default_priority_correlator();
  // Long enough for stop() to send its exit messages meanwhile.
  batch_times times;
  time_ns published_at = 0;
  cc.publish = [&](const message_view&, const batch_times& t) {
    if (published++ == 0) {
      times = t;
      published_at = now_ns();
      first.set_value();
      std::this_thread::sleep_for(1s);
    }
  };
  auto b = hv_batch("hv-1", "web-01", "c13f6c49-ad85-4559-8912-74be4f9341bb",
                    "52:54:00:00:01:01", 1);
  {
    test::running_pipeline p{tmp.path, zctx, {}, {}, std::uint64_t{1} << 30,
                             std::move(cc)};
    zmq::socket s{zctx, ZMQ_DEALER};
    REQUIRE_FALSE(s.connect(p.endpoint()));
    auto frame = wire::encode(b);
    std::string_view parts[] = {frame};
    REQUIRE_FALSE(s.send(parts));
    REQUIRE(first.get_future().wait_for(10s) == std::future_status::ready);
    p.stop();
  }
  REQUIRE(published.load() >= 1);
  // The batch's way through the stages, in order (the benchmark's
  // breakdown of late deltas rests on these).
  CHECK(times.received > 0);
  CHECK(times.received <= times.passed_on);
  CHECK(times.passed_on <= times.taken);
  CHECK(times.taken <= published_at);
  test::running_pipeline again{tmp.path, zctx};
  auto buckets = again.store().buckets();
  REQUIRE(buckets);
  int identity = 0;
  int samples = 0;
  for (const auto& bucket : *buckets)
    REQUIRE_FALSE(again.store().scan(bucket.id,
                                     [&](std::uint64_t, const event_view& v) {
                                       if (v.sourcetype == "parallax:identity")
                                         ++identity;
                                       else if (v.sourcetype == "hv:libvirt:vm")
                                         ++samples;
                                     }));
  // The hypervisor's batch was passed on before the stall, the message
  // after it: both reached the indexer before its exit message.
  CHECK(samples == 1);
  CHECK(identity == published.load());
}

TEST_CASE("ingest: the correlator learns from a resent batch once, also "
          "after a restart") {
  test::temp_dir tmp;
  zmq::context zctx;
  auto b = hv_batch("hv-2", "db-01", "0c6e3d2a-8f61-4f0e-9d7c-2b1f4e5a6c70",
                    "52:54:00:00:02:01", 2);
  auto frame = wire::encode(b);
  {
    auto cc = default_priority_correlator();
    test::running_pipeline p{tmp.path, zctx, {}, {}, std::uint64_t{1} << 30,
                             cc};
    CHECK(send_raw(zctx, p.endpoint(), frame).status
          == wire::reply_status::ack);
    // The ack came after the commit; the resend is taken for what it is.
    CHECK(send_raw(zctx, p.endpoint(), frame).status
          == wire::reply_status::duplicate);
    CHECK(p.counter_value("correlator", "received_events_total") == 2);
    CHECK(p.counter_value("correlator", "skipped_batches_total", "duplicate")
          == 1);
    // A new sequence of the same source is learned from.
    b.sequence = 2;
    CHECK(send_raw(zctx, p.endpoint(), wire::encode(b)).status
          == wire::reply_status::ack);
    CHECK(p.counter_value("correlator", "received_events_total") == 4);
  }
  // A new correlator knows the committed sequences from the store.
  auto cc = default_priority_correlator();
  test::running_pipeline p{tmp.path, zctx, {}, {}, std::uint64_t{1} << 30,
                           cc};
  CHECK(send_raw(zctx, p.endpoint(), frame).status
        == wire::reply_status::duplicate);
  CHECK(p.counter_value("correlator", "received_events_total") == 0);
  CHECK(p.counter_value("correlator", "skipped_batches_total", "duplicate")
        == 1);
}
