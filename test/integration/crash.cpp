// Crash recovery against the real binary: `parallax serve` runs as a separate
// process and is killed with SIGKILL at random points while a real
// ingest_client streams batches to it over TCP; the server is restarted on
// the same data directory and port, and the client resends what was not
// answered. Afterwards every acknowledged event must be in the store exactly
// once, and the store must open cleanly. Nothing is mocked.
//
// The trials are driven by a seeded std::mt19937; set PARALLAX_CRASH_SEED to
// replay another seed.

#include "parallax/pipeline/ingest_client.hpp"
#include "parallax/pipeline/zmq.hpp"
#include "parallax/schemas/wire.hpp"
#include "parallax/storage/environment.hpp"
#include "parallax/storage/store.hpp"

#include "integration/server_process.hpp"
#include "temp_dir.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace parallax;
using namespace std::chrono_literals;
using parallax::test::free_port;
using parallax::test::read_file;
using parallax::test::server_process;

namespace {

using clock_type = std::chrono::steady_clock;

constexpr std::string_view source_id = "crash-client";
constexpr std::size_t events_per_batch = 50;


// Batch `seq` of `events_per_batch` events; each event carries its batch and
// position so the store's contents can be checked event by event. Times lie
// an hour in the past (the server rejects times too far in the future).
std::string make_frame(std::uint64_t seq, time_ns base) {
  wire::batch b;
  b.source_id = source_id;
  b.sequence = seq;
  for (std::size_t i = 0; i < events_per_batch; ++i) {
    event e;
    e.time = base + static_cast<time_ns>(seq * 1000 + i);
    e.index = "main";
    e.host = "crash-host";
    e.source = "/var/log/crash.log";
    e.sourcetype = "crash:test";
    e.raw = "batch " + std::to_string(seq) + " event " + std::to_string(i);
    e.fields = {{"seq", static_cast<std::int64_t>(seq)},
                {"i", static_cast<std::int64_t>(i)}};
    b.events.push_back(std::move(e));
  }
  return wire::encode(b);
}

// Every (seq, i) in the store with its multiplicity, plus events that carry
// no such fields.
struct store_contents {
  std::map<std::pair<std::int64_t, std::int64_t>, int> events;
  std::uint64_t total = 0;
  std::uint64_t foreign = 0;
  std::uint64_t catalog_events = 0;
  std::optional<std::uint64_t> last_sequence;
};

// Opens the store read-only (that alone must succeed after any crash),
// reads everything, closes it again.
store_contents read_store(const std::filesystem::path& dir) {
  storage::environment_options opts;
  opts.read_only = true;
  auto env = storage::environment::open(dir, opts);
  REQUIRE_MESSAGE(static_cast<bool>(env),
                  "LMDB does not open read-only: ",
                  (env ? "" : env.error().message));
  auto st = storage::store::open(*env);
  REQUIRE_MESSAGE(static_cast<bool>(st), "the store does not open: ",
                  (st ? "" : st.error().message));
  store_contents out;
  auto buckets = st->buckets();
  REQUIRE_MESSAGE(static_cast<bool>(buckets),
                  (buckets ? "" : buckets.error().message));
  for (const auto& b : *buckets) {
    out.catalog_events += b.events;
    auto err = st->scan(b.id, [&](std::uint64_t, const event_view& e) {
      ++out.total;
      auto seq = e.find("seq");
      auto i = e.find("i");
      if (!seq || !i || !std::holds_alternative<std::int64_t>(*seq)
          || !std::holds_alternative<std::int64_t>(*i)) {
        ++out.foreign;
        return;
      }
      ++out.events[{std::get<std::int64_t>(*seq), std::get<std::int64_t>(*i)}];
    });
    REQUIRE_MESSAGE(!err, "scanning bucket ", b.id, ": ", err.message);
  }
  auto last = st->last_sequence(source_id);
  REQUIRE_MESSAGE(static_cast<bool>(last),
                  (last ? "" : last.error().message));
  out.last_sequence = *last;
  return out;
}

// Per batch: how many distinct events of it are stored, and whether any is
// stored more than once.
struct batch_census {
  std::map<std::int64_t, std::size_t> distinct;
  std::set<std::int64_t> duplicated;
  std::uint64_t out_of_range = 0; // (seq, i) never sent
};

batch_census census(const store_contents& c, std::uint64_t sent) {
  batch_census out;
  for (const auto& [key, n] : c.events) {
    auto [seq, i] = key;
    if (seq < 1 || static_cast<std::uint64_t>(seq) > sent || i < 0
        || static_cast<std::size_t>(i) >= events_per_batch) {
      out.out_of_range += static_cast<std::uint64_t>(n);
      continue;
    }
    ++out.distinct[seq];
    if (n != 1)
      out.duplicated.insert(seq);
  }
  return out;
}

std::string join(const std::vector<std::int64_t>& v, std::size_t max = 40) {
  std::string s;
  for (std::size_t k = 0; k < v.size() && k < max; ++k)
    s += (k ? "," : "") + std::to_string(v[k]);
  if (v.size() > max)
    s += ",... (" + std::to_string(v.size()) + " in all)";
  return s;
}

std::uint32_t seed_from_env(std::uint32_t fallback) {
  if (const char* s = std::getenv("PARALLAX_CRASH_SEED"))
    return static_cast<std::uint32_t>(std::strtoul(s, nullptr, 0));
  return fallback;
}

} // namespace

TEST_CASE("crash: kill -9 during ingest loses no acknowledged event and "
          "stores none twice") {
  const std::uint32_t seed = seed_from_env(20261125);
  constexpr int trials = 16;
  INFO("seed ", seed, " (replay with PARALLAX_CRASH_SEED=", seed, ")");
  std::mt19937 rng{seed};
  auto uniform = [&](int lo, int hi) {
    return std::uniform_int_distribution<int>{lo, hi}(rng);
  };
  auto t_begin = clock_type::now();

  test::temp_dir tmp{"parallax-crash-"};
  server_process server{tmp.path, free_port()};
  server.start();

  zmq::context zctx;
  ingest_client_options copts;
  copts.endpoint = server.endpoint();
  copts.window = 8;
  copts.resend_after = 300ms;
  copts.retry_failed_after = 200ms;
  auto client = ingest_client::connect(zctx, copts);
  REQUIRE(client);
  auto& c = **client;

  const time_ns base = now_ns() - time_ns{3600} * 1'000'000'000;
  std::uint64_t seq = 0; // last sequence sent
  auto send_next = [&] {
    ++seq;
    auto err = c.send(seq, make_frame(seq, base));
    REQUIRE_MESSAGE(!err, "send of batch ", seq, ": ", err.message);
  };

  std::ostringstream trial_log;
  for (int trial = 1; trial <= trials; ++trial) {
    INFO("trial ", trial);
    // Stream batches for a random while (or at least a random number of
    // them), then kill the server wherever it is.
    auto run_for = std::chrono::milliseconds{uniform(5, 80)};
    auto min_sends = uniform(1, 12);
    auto until = clock_type::now() + run_for;
    int sends = 0;
    while (clock_type::now() < until || sends < min_sends) {
      send_next();
      ++sends;
    }
    auto outstanding = c.outstanding();
    auto acked_so_far = c.stats().acked + c.stats().duplicates;
    server.kill9();

    // The store must open cleanly right after the crash, hold whole batches
    // only and none twice, and never be ahead of what was sent.
    auto snap = read_store(server.data_dir() / "store");
    auto cen = census(snap, seq);
    std::vector<std::int64_t> partial;
    for (const auto& [s, n] : cen.distinct)
      if (n != events_per_batch)
        partial.push_back(s);
    CHECK_MESSAGE(partial.empty(), "batches stored in part after kill #",
                  trial, ": ", join(partial));
    CHECK_MESSAGE(cen.duplicated.empty(), "batches stored twice after kill #",
                  trial);
    CHECK(cen.out_of_range == 0);
    CHECK(snap.foreign == 0);
    if (snap.last_sequence)
      CHECK(*snap.last_sequence <= seq);

    // While the server is down the client keeps going: a few new batches
    // (window permitting) and its resend timer, against a dead endpoint.
    auto down = std::chrono::milliseconds{uniform(0, 400)};
    auto down_until = clock_type::now() + down;
    for (int k = uniform(0, 3); k > 0 && c.outstanding() < copts.window; --k)
      send_next();
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      down_until - clock_type::now());
    if (left > 0ms) {
      if (auto err = c.drain(left))
        CHECK_MESSAGE(err.message.find("still unanswered") != std::string::npos,
                      "unexpected client error while the server was down: ",
                      err.message);
      std::this_thread::sleep_until(down_until);
    }

    server.start();
    trial_log << "  kill " << trial << ": after " << run_for.count()
              << " ms, sent " << seq << ", answered " << acked_so_far
              << ", outstanding " << outstanding << ", stored batches "
              << cen.distinct.size() << ", last committed "
              << (snap.last_sequence ? std::to_string(*snap.last_sequence)
                                     : std::string{"none"})
              << ", down " << down.count() << " ms\n";
  }

  // A last stretch with no crash, then everything must be answered.
  for (int k = 0; k < 20; ++k)
    send_next();
  auto drain_err = c.drain(60s);
  REQUIRE_MESSAGE(!drain_err, "final drain: ", drain_err.message);
  const auto& stats = c.stats();
  CHECK(stats.rejected == 0);
  CHECK(c.outstanding() == 0);
  // drain returned with nothing outstanding and nothing rejected: every
  // batch sent, 1..seq, was acknowledged (ack or duplicate).
  CHECK(stats.acked + stats.duplicates == seq);

  int status = server.terminate();
  CHECK_MESSAGE(WIFEXITED(status), "parallax serve did not exit on SIGTERM ",
                "(status ", status, "); log:\n",
                read_file(server.log_path()));
  if (WIFEXITED(status))
    CHECK_MESSAGE(WEXITSTATUS(status) == 0, "exit code ", WEXITSTATUS(status),
                  "; log:\n", read_file(server.log_path()));

  // LMDB opens cleanly, and holds every acknowledged event exactly once.
  auto all = read_store(server.data_dir() / "store");
  auto cen = census(all, seq);
  std::vector<std::int64_t> missing, partial;
  for (std::uint64_t s = 1; s <= seq; ++s) {
    auto it = cen.distinct.find(static_cast<std::int64_t>(s));
    if (it == cen.distinct.end())
      missing.push_back(static_cast<std::int64_t>(s));
    else if (it->second != events_per_batch)
      partial.push_back(static_cast<std::int64_t>(s));
  }
  std::vector<std::int64_t> duplicated{cen.duplicated.begin(),
                                       cen.duplicated.end()};
  CHECK_MESSAGE(missing.empty(), missing.size(),
                " acknowledged batches are missing from the store (the client "
                "got ",
                stats.duplicates, " `duplicate` answers; last committed "
                "sequence ",
                all.last_sequence ? *all.last_sequence : 0, "): ",
                join(missing));
  CHECK_MESSAGE(partial.empty(), partial.size(),
                " acknowledged batches are stored in part: ", join(partial));
  CHECK_MESSAGE(duplicated.empty(), duplicated.size(),
                " batches have events stored more than once: ",
                join(duplicated));
  CHECK(cen.out_of_range == 0);
  CHECK(all.foreign == 0);
  CHECK(all.total == seq * events_per_batch);
  CHECK(all.catalog_events == all.total);
  REQUIRE(all.last_sequence.has_value());
  CHECK(*all.last_sequence == seq);

  double max_start = 0;
  for (double t : server.startup_times_ms())
    max_start = std::max(max_start, t);
  MESSAGE("seed ", seed, ": ", trials, " kills, ", seq, " batches (",
          seq * events_per_batch, " events), ", stats.acked, " acked, ",
          stats.duplicates, " answered duplicate, ", stats.resent,
          " resends, ", stats.failed, " failed replies; slowest restart ",
          max_start, " ms; ",
          std::chrono::duration<double>(clock_type::now() - t_begin).count(),
          " s in all\n", trial_log.str());
}
