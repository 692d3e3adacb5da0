// The collector alone: real DEALER clients on loopback TCP, the test in the
// indexer's place (it records what it is given, and answers over the inproc
// reply socket to give the credit back when it chooses).

#include "parallax/actors/collector.hpp"
#include "parallax/pipeline/metrics.hpp"
#include "parallax/pipeline/system.hpp"
#include "parallax/schemas/reply.hpp"
#include "parallax/schemas/wire.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <zmq.h>

using namespace parallax;
using namespace std::chrono_literals;

namespace {

// Batch `seq` of `n` events from `source`: ~130 bytes an event.
std::string frame_of(std::string_view source, std::uint64_t seq,
                     std::size_t n) {
  wire::batch b;
  b.source_id = source;
  b.sequence = seq;
  auto base = now_ns() - 60'000'000'000;
  for (std::size_t i = 0; i < n; ++i) {
    event e;
    e.time = base + static_cast<time_ns>(i);
    e.index = "os";
    e.host = "web-01";
    e.sourcetype = "os:auth";
    e.raw = "sshd[42]: Accepted publickey for deploy from 10.0.1.2 port 5022";
    e.fields = {{"i", static_cast<std::int64_t>(i)}};
    b.events.push_back(std::move(e));
  }
  return wire::encode(b);
}

struct taken_frame {
  std::string source;
  std::uint64_t sequence = 0;
  std::string peer;
  std::uint64_t bytes = 0;
};

// The indexer's place: what the collector passed on, in order.
struct recorder {
  std::mutex mu;
  std::vector<taken_frame> frames;

  std::vector<taken_frame> snapshot() {
    std::lock_guard lock{mu};
    return frames;
  }
  std::size_t count(std::string_view source) {
    std::lock_guard lock{mu};
    std::size_t n = 0;
    for (const auto& f : frames)
      n += f.source == source;
    return n;
  }
  // Waits until nothing new came for `quiet`; the count then.
  std::size_t settle(std::chrono::milliseconds quiet = 300ms) {
    auto n = snapshot().size();
    for (int i = 0; i < 100; ++i) {
      std::this_thread::sleep_for(quiet);
      auto m = snapshot().size();
      if (m == n)
        return n;
      n = m;
    }
    return n;
  }
  // Waits up to 10 s for `n` frames of `source`.
  bool wait_for(std::string_view source, std::size_t n) {
    for (int i = 0; i < 1000; ++i) {
      if (count(source) >= n)
        return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }
};

ingest_sink spawn_recorder(caf::actor_system& sys, recorder& r) {
  return sys.spawn([&r]() -> ingest_sink::behavior_type {
    return {
      [&r](ingest_atom, ingest_ptr& item) {
        std::lock_guard lock{r.mu};
        r.frames.push_back({std::string{item->batch.source_id()},
                            item->batch.sequence(), item->peer, item->bytes});
      },
    };
  });
}

struct client {
  zmq::socket sock;
  client(zmq::context& ctx, const std::string& endpoint)
    : sock{ctx, ZMQ_DEALER} {
    REQUIRE_FALSE(sock.connect(endpoint));
  }
  void send(const std::string& frame) {
    std::string_view parts[] = {frame};
    REQUIRE_FALSE(sock.send(parts));
  }
};

// Acknowledges `f` as the indexer would: the credit of its bytes comes back.
void answer(zmq::socket& replies, const taken_frame& f) {
  wire::reply r;
  r.status = wire::reply_status::ack;
  r.source_id = f.source;
  r.sequence = f.sequence;
  std::string buf;
  wire::encode_reply(r, buf);
  char bytes[8];
  for (int i = 0; i < 8; ++i)
    bytes[i] = static_cast<char>((f.bytes >> (56 - 8 * i)) & 0xff);
  std::string_view parts[] = {f.peer, buf, {bytes, 8}};
  REQUIRE_FALSE(replies.send(parts));
}

std::vector<std::uint64_t> sequences_of(const std::vector<taken_frame>& fs,
                                        std::string_view source) {
  std::vector<std::uint64_t> out;
  for (const auto& f : fs)
    if (f.source == source)
      out.push_back(f.sequence);
  return out;
}

std::vector<std::uint64_t> one_to(std::uint64_t n) {
  std::vector<std::uint64_t> out;
  for (std::uint64_t i = 1; i <= n; ++i)
    out.push_back(i);
  return out;
}

struct fixture {
  caf::actor_system_config sys_cfg;
  std::unique_ptr<caf::actor_system> sys;
  zmq::context zctx;
  metrics_registry metrics;
  recorder rec;
  std::unique_ptr<collector> coll;
  std::unique_ptr<zmq::socket> replies;

  explicit fixture(std::uint64_t live_frame_bytes) {
    configure_actor_system(sys_cfg, config::defaults());
    sys = std::make_unique<caf::actor_system>(sys_cfg);
    collector_config cc;
    cc.endpoint = "tcp://127.0.0.1:0";
    cc.reply_endpoint = zmq::unique_inproc_endpoint("collector-test");
    cc.max_inflight_bytes = 1 << 20;
    cc.live_frame_bytes = live_frame_bytes;
    cc.zmq = &zctx;
    cc.metrics = &metrics;
    cc.next = spawn_recorder(*sys, rec);
    auto c = collector::start(cc);
    REQUIRE(c);
    coll = std::move(*c);
    replies = std::make_unique<zmq::socket>(zctx, ZMQ_PUSH);
    REQUIRE_FALSE(replies->connect(cc.reply_endpoint));
  }
  ~fixture() {
    coll->stop();
  }
  std::uint64_t counter(std::string_view name) {
    return metrics.get("collector", name).value();
  }
  // Answers every frame taken so far, once.
  void answer_all(std::size_t& answered) {
    auto fs = rec.snapshot();
    for (; answered < fs.size(); ++answered)
      answer(*replies, fs[answered]);
  }
};

} // namespace

TEST_CASE("collector: while the credit is spent, an agent's small frames "
          "still go through, the bulk waits, each client in its order") {
  fixture fx{16 << 10};
  auto bulk_frame = [](std::uint64_t seq) {
    return frame_of("bulk", seq, 800);
  };
  REQUIRE(bulk_frame(1).size() > (64u << 10));
  REQUIRE(frame_of("agent", 1, 5).size() < (16u << 10));
  // 15 frames of ~100 KiB against a credit of 1 MiB: some are taken, the
  // rest wait (parked: less than a credit's worth).
  client bulk{fx.zctx, fx.coll->endpoint()};
  for (std::uint64_t seq = 1; seq <= 15; ++seq)
    bulk.send(bulk_frame(seq));
  REQUIRE(fx.rec.wait_for("bulk", 1));
  auto taken = fx.rec.settle();
  CHECK(taken >= 10);
  CHECK(taken < 15);
  CHECK(fx.counter("backpressure_pauses_total") >= 1);
  // The rest was read and parked (less than a credit's worth).
  CHECK(fx.counter("received_batches_total") == 15);
  CHECK(fx.counter("received_bytes_total") == 15 * bulk_frame(1).size());
  CHECK(fx.counter("parked_frames_total") == 15 - taken);
  // An agent's small frames are taken at once, in order.
  client agent{fx.zctx, fx.coll->endpoint()};
  for (std::uint64_t seq = 1; seq <= 3; ++seq)
    agent.send(frame_of("agent", seq, 5));
  CHECK(fx.rec.wait_for("agent", 3));
  CHECK(fx.counter("live_frames_total") == 3);
  // A client with a frame waiting: its small one waits behind it.
  client mixed{fx.zctx, fx.coll->endpoint()};
  mixed.send(frame_of("mixed", 1, 800));
  mixed.send(frame_of("mixed", 2, 5));
  fx.rec.settle();
  CHECK(fx.rec.count("mixed") == 0);
  CHECK(fx.rec.count("bulk") == taken);
  CHECK(fx.counter("live_frames_total") == 3);
  CHECK(fx.counter("parked_frames_total") == 15 - taken + 2);
  // The credit comes back as the frames are answered: what waited is
  // taken, each client's frames in the order they were sent.
  std::size_t answered = 0;
  for (int i = 0; i < 100 && fx.rec.count("mixed") < 2; ++i) {
    fx.answer_all(answered);
    std::this_thread::sleep_for(50ms);
  }
  auto fs = fx.rec.snapshot();
  CHECK(sequences_of(fs, "bulk") == one_to(15));
  CHECK(sequences_of(fs, "agent") == one_to(3));
  CHECK(sequences_of(fs, "mixed") == one_to(2));
  CHECK(fx.counter("live_frames_total") == 3);
}

TEST_CASE("collector: with live-frame-bytes 0, every frame waits for the "
          "credit") {
  fixture fx{0};
  client bulk{fx.zctx, fx.coll->endpoint()};
  for (std::uint64_t seq = 1; seq <= 15; ++seq)
    bulk.send(frame_of("bulk", seq, 800));
  REQUIRE(fx.rec.wait_for("bulk", 1));
  auto taken = fx.rec.settle();
  CHECK(taken < 15);
  // Nothing was read beyond the credit.
  CHECK(fx.counter("received_batches_total") == taken);
  client agent{fx.zctx, fx.coll->endpoint()};
  agent.send(frame_of("agent", 1, 5));
  fx.rec.settle();
  CHECK(fx.rec.count("agent") == 0);
  std::size_t answered = 0;
  for (int i = 0; i < 100 && fx.rec.count("agent") < 1; ++i) {
    fx.answer_all(answered);
    std::this_thread::sleep_for(50ms);
  }
  CHECK(fx.rec.count("agent") == 1);
  CHECK(sequences_of(fx.rec.snapshot(), "bulk") == one_to(15));
  CHECK(fx.counter("live_frames_total") == 0);
  CHECK(fx.counter("parked_frames_total") == 0);
}

namespace {

// Waits until `name` has not changed for 300 ms; its value then.
std::uint64_t settle_counter(fixture& fx, std::string_view name) {
  auto n = fx.counter(name);
  for (int i = 0; i < 100; ++i) {
    std::this_thread::sleep_for(300ms);
    auto m = fx.counter(name);
    if (m == n)
      return n;
    n = m;
  }
  return n;
}

// Answers until `n` frames of `source` arrived (at most ~10 s).
void answer_until(fixture& fx, std::string_view source, std::size_t n) {
  std::size_t answered = 0;
  for (int i = 0; i < 200 && fx.rec.count(source) < n; ++i) {
    fx.answer_all(answered);
    std::this_thread::sleep_for(50ms);
  }
  fx.answer_all(answered);
}

} // namespace

TEST_CASE("collector: parked frames stop at a credit's worth, the socket "
          "is not read beyond that until the credit returns") {
  fixture fx{16 << 10};
  constexpr std::uint64_t credit = 1 << 20;
  auto size = frame_of("bulk", 1, 800).size();
  REQUIRE(size > (64u << 10));
  client bulk{fx.zctx, fx.coll->endpoint()};
  constexpr std::uint64_t sent = 40; // ~4 MiB: a credit taken, one parked
  for (std::uint64_t seq = 1; seq <= sent; ++seq)
    bulk.send(frame_of("bulk", seq, 800));
  REQUIRE(fx.rec.wait_for("bulk", 1));
  auto read = settle_counter(fx, "received_batches_total");
  auto taken = fx.rec.settle();
  auto parked = fx.counter("parked_frames_total");
  // Taken while within the credit: the last one may overshoot it.
  CHECK((taken - 1) * size < credit);
  CHECK(taken * size >= credit);
  // Parked up to the limit, overshot by at most the frame that reached it.
  CHECK((parked - 1) * size < credit);
  CHECK(parked * size >= credit);
  // Everything read was taken or parked; the rest was left unread.
  CHECK(read == taken + parked);
  CHECK(read < sent);
  // Once answered, all of it arrives, in order.
  answer_until(fx, "bulk", sent);
  CHECK(sequences_of(fx.rec.snapshot(), "bulk") == one_to(sent));
  CHECK(fx.counter("received_batches_total") == sent);
  CHECK(fx.counter("parked_frames_total") >= parked);
  CHECK(fx.counter("live_frames_total") == 0);
}

TEST_CASE("collector: live frames beyond the credit come from a reserve of "
          "an eighth of it, once that is spent they are parked too") {
  fixture fx{16 << 10};
  constexpr std::uint64_t credit = 1 << 20, reserve = credit / 8;
  // Bulk frames to take the credit and park two (far below the limit).
  auto size = frame_of("bulk", 1, 800).size();
  const std::uint64_t bulk_n = (credit + size - 1) / size + 2;
  client bulk{fx.zctx, fx.coll->endpoint()};
  for (std::uint64_t seq = 1; seq <= bulk_n; ++seq)
    bulk.send(frame_of("bulk", seq, 800));
  REQUIRE(fx.rec.wait_for("bulk", 1));
  settle_counter(fx, "received_batches_total");
  REQUIRE(fx.rec.settle() == bulk_n - 2);
  std::uint64_t inflight = 0;
  for (const auto& f : fx.rec.snapshot())
    inflight += f.bytes;
  REQUIRE(inflight >= credit);
  REQUIRE(inflight < credit + reserve);
  // 16 agents, one frame each (below live-frame-bytes): as many as fit in
  // what is left of the reserve go through; the others wait.
  auto agent_size = frame_of("agent-00", 1, 90).size();
  REQUIRE(agent_size <= (16u << 10));
  REQUIRE(agent_size > (8u << 10));
  auto fit = std::min<std::uint64_t>((credit + reserve - inflight) / agent_size,
                                     16);
  REQUIRE(fit < 16); // the reserve runs out: a case to test
  std::vector<std::unique_ptr<client>> agents;
  for (int i = 0; i < 16; ++i) {
    auto name = fmt::format("agent-{:02}", i);
    agents.push_back(std::make_unique<client>(fx.zctx, fx.coll->endpoint()));
    agents.back()->send(frame_of(name, 1, 90));
  }
  settle_counter(fx, "received_batches_total");
  fx.rec.settle();
  std::size_t agents_taken = 0;
  for (const auto& f : fx.rec.snapshot())
    agents_taken += f.source.starts_with("agent-");
  CHECK(fx.counter("live_frames_total") == fit);
  CHECK(agents_taken == fit);
  CHECK(fx.counter("received_batches_total") == bulk_n + 16);
  // The credit back: every agent's frame and every bulk frame arrives.
  answer_until(fx, "bulk", bulk_n);
  for (int i = 0; i < 16; ++i)
    answer_until(fx, fmt::format("agent-{:02}", i), 1);
  CHECK(sequences_of(fx.rec.snapshot(), "bulk") == one_to(bulk_n));
  for (int i = 0; i < 16; ++i)
    CHECK(fx.rec.count(fmt::format("agent-{:02}", i)) == 1);
  CHECK(fx.counter("live_frames_total") == fit);
}
