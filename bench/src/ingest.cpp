#include "parallax/bench/ingest.hpp"

#include "parallax/actors/ingest_pipeline.hpp"
#include "parallax/bench/generator.hpp"
#include "parallax/bench/stats.hpp"
#include "parallax/pipeline/ingest_client.hpp"
#include "parallax/pipeline/system.hpp"
#include "parallax/pipeline/zmq.hpp"
#include "parallax/schemas/wire.hpp"
#include "parallax/storage/environment.hpp"
#include "parallax/storage/store.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <fmt/format.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace parallax::bench {

namespace fs = std::filesystem;

namespace {

using clock_type = std::chrono::steady_clock;


// Events end one second before the run starts, 1 µs apart, so every time is
// in the past and the whole run lands in one or two buckets, as live data does.
generator_options workload(std::size_t n, time_ns base) {
  generator_options g;
  g.seed = 7;
  g.step = 1'000;
  g.start = base - static_cast<time_ns>(n) * g.step - 1'000'000'000;
  return g;
}

struct client_result {
  double seconds = 0;
  double p50_us = 0;
  double p99_us = 0;
  unsigned long long acked = 0;
  unsigned long long resent = 0;
  unsigned long long rejected = 0;
  int ok = 0;
};

// The client process: no threads before this point but libzmq's own.
[[noreturn]] void client_main(const ingest_options& o, int in_fd, int out_fd,
                              time_ns base) {
  client_result res;
  char endpoint[256] = {};
  std::size_t len = 0;
  if (!read_all(in_fd, &len, sizeof len) || len >= sizeof endpoint
      || !read_all(in_fd, endpoint, len))
    _exit(3);
  {
    zmq::context ctx;
    ingest_client_options copts;
    copts.endpoint = endpoint;
    copts.window = o.window;
    auto client = ingest_client::connect(ctx, copts);
    if (!client)
      _exit(4);
    mixed_generator gen{workload(o.events, base)};
    wire::batch b;
    b.source_id = "bench-client";
    std::string frame;
    auto t0 = clock_type::now();
    std::size_t sent = 0;
    for (std::uint64_t seq = 1; sent < o.events; ++seq) {
      b.sequence = seq;
      b.events.clear();
      auto n = std::min(o.batch, o.events - sent);
      for (std::size_t i = 0; i < n; ++i)
        b.events.push_back(gen.next());
      frame.clear();
      wire::encode(b, frame);
      if (auto err = (*client)->send(seq, frame)) {
        std::fprintf(stderr, "bench client: %s\n", err.message.c_str());
        _exit(5);
      }
      sent += n;
    }
    if (auto err = (*client)->drain(std::chrono::minutes{5})) {
      std::fprintf(stderr, "bench client: %s\n", err.message.c_str());
      _exit(6);
    }
    res.seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
    const auto& st = (*client)->stats();
    res.p50_us = percentile(st.latencies_us, 0.5);
    res.p99_us = percentile(st.latencies_us, 0.99);
    res.acked = st.acked;
    res.resent = st.resent;
    res.rejected = st.rejected;
    res.ok = 1;
  }
  write_all(out_fd, &res, sizeof res);
  _exit(0);
}

unsigned long long disk_bytes(const fs::path& dir) {
  unsigned long long total = 0;
  std::error_code ec;
  for (const auto& f : fs::recursive_directory_iterator{dir, ec}) {
    struct stat st;
    if (::stat(f.path().c_str(), &st) == 0 && S_ISREG(st.st_mode))
      total += static_cast<unsigned long long>(st.st_blocks) * 512;
  }
  return total;
}

struct peer_result {
  double seconds = 0;
  unsigned long long bytes = 0;
  std::string error;
};

// SQLite FTS5 with the same events, one synced transaction per batch.
peer_result run_sqlite(const ingest_options& o, const fs::path& dir,
                       time_ns base) {
  peer_result r;
  std::error_code fec;
  fs::create_directories(dir, fec);
  auto path = dir / "fts5.db";
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
    r.error = "cannot open SQLite";
    return r;
  }
  auto exec = [&](const char* sql) {
    char* msg = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
      r.error = msg ? msg : "sqlite error";
      sqlite3_free(msg);
      return false;
    }
    return true;
  };
  if (!exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
      || !exec("CREATE VIRTUAL TABLE events USING fts5(time UNINDEXED, idx, "
               "host, source, sourcetype, raw, fields)")) {
    sqlite3_close(db);
    return r;
  }
  sqlite3_stmt* ins = nullptr;
  sqlite3_prepare_v2(db,
                     "INSERT INTO events VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                     -1, &ins, nullptr);
  mixed_generator gen{workload(o.events, base)};
  std::string fields;
  auto t0 = clock_type::now();
  for (std::size_t done = 0; done < o.events;) {
    exec("BEGIN");
    auto n = std::min(o.batch, o.events - done);
    for (std::size_t i = 0; i < n; ++i) {
      auto e = gen.next();
      fields.clear();
      for (const auto& f : e.fields) {
        fields += f.name;
        fields += '=';
        std::visit(
          [&](const auto& v) {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, std::string>)
              fields += v;
            else
              fields += fmt::format("{}", v);
          },
          f.value);
        fields += ' ';
      }
      sqlite3_bind_int64(ins, 1, e.time);
      sqlite3_bind_text(ins, 2, e.index.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(ins, 3, e.host.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(ins, 4, e.source.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(ins, 5, e.sourcetype.c_str(), -1, SQLITE_TRANSIENT);
      if (e.raw)
        sqlite3_bind_text(ins, 6, e.raw->c_str(), -1, SQLITE_TRANSIENT);
      else
        sqlite3_bind_null(ins, 6);
      sqlite3_bind_text(ins, 7, fields.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_step(ins);
      sqlite3_reset(ins);
    }
    exec("COMMIT");
    done += n;
  }
  r.seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
  sqlite3_finalize(ins);
  exec("PRAGMA wal_checkpoint(TRUNCATE)");
  sqlite3_close(db);
  r.bytes = disk_bytes(dir);
  return r;
}

} // namespace

int run_ingest(const ingest_options& o) {
  if (o.events == 0 || o.batch == 0 || o.window == 0) {
    std::fprintf(stderr, "parallax bench ingest: --events, --batch and "
                         "--window must be positive\n");
    return 2;
  }
  bool temp = o.data.empty();
  fs::path dir = o.data;
  if (temp) {
    std::random_device rd;
    dir = fs::temp_directory_path()
          / fmt::format("parallax-bench-{}-{}", ::getpid(), rd());
  }
  std::error_code fec;
  fs::create_directories(dir / "store", fec);
  auto base = now_ns();
  int to_child[2], from_child[2];
  if (::pipe(to_child) != 0 || ::pipe(from_child) != 0) {
    std::perror("pipe");
    return 1;
  }
  auto pid = ::fork();
  if (pid < 0) {
    std::perror("fork");
    return 1;
  }
  if (pid == 0)
    client_main(o, to_child[0], from_child[1], base);
  ::close(to_child[0]);
  ::close(from_child[1]);
  client_result res;
  unsigned long long stored = 0;
  rss_split split;
  int rc = 0;
  {
    storage::environment_options eo;
    auto env = storage::environment::open(dir / "store", eo);
    if (!env) {
      std::fprintf(stderr, "%s\n", env.error().message.c_str());
      ::kill(pid, SIGKILL);
      return 1;
    }
    storage::store_options so;
    so.block_events = o.block_events;
    auto store = storage::store::open(*env, so);
    if (!store) {
      std::fprintf(stderr, "%s\n", store.error().message.c_str());
      ::kill(pid, SIGKILL);
      return 1;
    }
    metrics_registry metrics;
    zmq::context zctx;
    caf::actor_system_config sys_cfg;
    configure_actor_system(sys_cfg, config::defaults());
    caf::actor_system sys{sys_cfg};
    ingest_pipeline_config pcfg;
    pcfg.collector.endpoint = "tcp://127.0.0.1:0";
    pcfg.store = &*store;
    pcfg.env = &*env;
    pcfg.zmq = &zctx;
    pcfg.metrics = &metrics;
    auto pipeline = ingest_pipeline::start(sys, std::move(pcfg));
    if (!pipeline) {
      std::fprintf(stderr, "%s\n", pipeline.error().message.c_str());
      ::kill(pid, SIGKILL);
      return 1;
    }
    auto ep = (*pipeline)->endpoint();
    auto len = ep.size();
    write_all(to_child[1], &len, sizeof len);
    write_all(to_child[1], ep.data(), len);
    if (!read_all(from_child[0], &res, sizeof res) || !res.ok) {
      std::fprintf(stderr, "parallax bench ingest: the client failed\n");
      rc = 1;
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    split = current_rss(); // with the store still mapped
    (*pipeline)->stop();
    stored = metrics.get("indexer", "stored_events_total").value();
  }
  auto rss = peak_rss_bytes();
  auto bytes = disk_bytes(dir / "store");
  if (rc != 0)
    return rc;
  peer_result peer;
  if (!o.skip_peer)
    peer = run_sqlite(o, dir / "sqlite", base);
  if (temp)
    fs::remove_all(dir, fec);
  auto eps = static_cast<double>(o.events) / res.seconds;
  auto per_event = static_cast<double>(bytes) / static_cast<double>(o.events);
  double peer_eps = peer.seconds > 0
                      ? static_cast<double>(o.events) / peer.seconds
                      : 0;
  if (stored != o.events) {
    std::fprintf(stderr, "parallax bench ingest: stored %llu of %zu events\n",
                 stored, o.events);
    return 1;
  }
  if (o.json) {
    fmt::print("{{\"bench\":\"ingest\",\"events\":{},\"batch\":{},"
               "\"window\":{},\"events_per_s\":{:.0f},\"ack_p50_us\":{:.0f},"
               "\"ack_p99_us\":{:.0f},\"disk_bytes_per_event\":{:.1f},"
               "\"server_peak_rss_bytes\":{},\"server_rss_anon_bytes\":{},"
               "\"server_rss_file_bytes\":{},\"resent\":{},"
               "\"sqlite_fts5_events_per_s\":{:.0f},"
               "\"sqlite_fts5_bytes_per_event\":{:.1f},\"ratio\":{:.2f}}}\n",
               o.events, o.batch, o.window, eps, res.p50_us, res.p99_us,
               per_event, rss, split.anon, split.file, res.resent, peer_eps,
               static_cast<double>(peer.bytes) / static_cast<double>(o.events),
               peer_eps > 0 ? eps / peer_eps : 0);
    return 0;
  }
  fmt::print("parallax bench ingest: {} events, {} per batch, window {}, "
             "client in a separate process over tcp loopback\n",
             o.events, o.batch, o.window);
  fmt::print("  parallax        {:>10.0f} events/s  ack p50 {:.1f} ms  p99 "
             "{:.1f} ms  (every ack after a synced commit)\n",
             eps, res.p50_us / 1000, res.p99_us / 1000);
  fmt::print("  disk            {:>10.1f} bytes/event (events, keyword index, "
             "summaries, rollups)\n",
             per_event);
  fmt::print("  server peak RSS {:>10.1f} MB (at the end: {:.1f} MB anonymous, "
             "{:.1f} MB file-backed, i.e. LMDB's map)\n",
             static_cast<double>(rss) / 1e6,
             static_cast<double>(split.anon) / 1e6,
             static_cast<double>(split.file) / 1e6);
  if (!o.skip_peer) {
    if (!peer.error.empty())
      fmt::print("  sqlite fts5     failed: {}\n", peer.error);
    else
      fmt::print("  sqlite fts5     {:>10.0f} events/s  {:.1f} bytes/event  "
                 "(one synced transaction per batch)\n"
                 "  ratio           {:>10.2f}x\n",
                 peer_eps,
                 static_cast<double>(peer.bytes)
                   / static_cast<double>(o.events),
                 eps / peer_eps);
  }
  return 0;
}

} // namespace parallax::bench
