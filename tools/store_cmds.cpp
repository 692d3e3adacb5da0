#include "commands.hpp"

#include "parallax/storage/dir_lock.hpp"
#include "parallax/storage/environment.hpp"
#include "parallax/storage/store.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>

#include <fmt/format.h>
#include <sys/stat.h>

namespace parallax::tools {

namespace {

std::string iso(time_ns t) {
  auto secs = t / 1'000'000'000;
  auto ms = (t % 1'000'000'000) / 1'000'000;
  if (t < 0 && ms != 0) {
    --secs;
    ms += 1000;
  }
  std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ms);
}

} // namespace

int run_buckets(const buckets_args& args) {
  auto cfg = load(args.cfg, "buckets");
  if (!cfg)
    return 2;
  // Read-only: works next to a running server (LMDB readers never block
  // the writer) and never creates anything.
  storage::environment_options eo;
  eo.read_only = true;
  eo.map_size = cfg->storage_map_size;
  auto dir = cfg->data_dir / "store";
  auto env = storage::environment::open(dir, eo);
  if (!env) {
    fmt::print(stderr, "parallax buckets: {}\n", env.error().message);
    return 1;
  }
  auto st = storage::store::open(*env, store_options_of(*cfg));
  if (!st) {
    fmt::print(stderr, "parallax buckets: {}\n", st.error().message);
    return st.error().code == ec::config_bad_value ? 2 : 1;
  }
  auto all = st->buckets();
  if (!all) {
    fmt::print(stderr, "parallax buckets: {}\n", all.error().message);
    return 1;
  }
  struct stat sb {};
  unsigned long long file_bytes = 0;
  if (::stat((dir / "data.mdb").c_str(), &sb) == 0)
    file_bytes = static_cast<unsigned long long>(sb.st_blocks) * 512;
  std::uint64_t events = 0, bytes = 0;
  for (const auto& b : *all) {
    events += b.events;
    bytes += b.block_bytes;
  }
  if (args.json) {
    for (const auto& b : *all)
      fmt::print("{{\"bucket\":{},\"start\":\"{}\",\"end\":\"{}\","
                 "\"min_time\":\"{}\",\"max_time\":\"{}\",\"events\":{},"
                 "\"block_bytes\":{},\"compacted_events\":{}}}\n",
                 b.id, iso(b.start), iso(b.end), iso(b.min_time),
                 iso(b.max_time), b.events, b.block_bytes, b.compacted_events);
    return 0;
  }
  fmt::print("{:<24}  {:<24}  {:<24}  {:>12}  {:>12}  {:>12}\n",
             "bucket start", "earliest event", "latest event", "events",
             "block bytes", "compacted at");
  for (const auto& b : *all)
    fmt::print("{:<24}  {:<24}  {:<24}  {:>12}  {:>12}  {:>12}\n",
               iso(b.start), iso(b.min_time), iso(b.max_time), b.events,
               b.block_bytes,
               b.compacted_events ? std::to_string(b.compacted_events) : "-");
  fmt::print("{} buckets, {} events, {} bytes of blocks; store file {} bytes "
             "on disk ({:.1f} bytes/event, all indexes included)\n",
             all->size(), events, bytes, file_bytes,
             events ? static_cast<double>(file_bytes)
                        / static_cast<double>(events)
                    : 0.0);
  return 0;
}

int run_rebuild_summaries(const config_args& args) {
  auto cfg = load(args, "rebuild-summaries");
  if (!cfg)
    return 2;
  // Writing: the server must not run on this directory.
  auto lock = storage::dir_lock::acquire(cfg->data_dir);
  if (!lock) {
    fmt::print(stderr, "parallax rebuild-summaries: {}; stop the server "
                       "first\n",
               lock.error().message);
    return 1;
  }
  storage::environment_options eo;
  eo.map_size = cfg->storage_map_size;
  auto env = storage::environment::open(cfg->data_dir / "store", eo);
  if (!env) {
    fmt::print(stderr, "parallax rebuild-summaries: {}\n", env.error().message);
    return 1;
  }
  auto st = storage::store::open(*env, store_options_of(*cfg));
  if (!st) {
    fmt::print(stderr, "parallax rebuild-summaries: {}\n",
               st.error().message);
    return st.error().code == ec::config_bad_value ? 2 : 1;
  }
  auto t0 = std::chrono::steady_clock::now();
  if (auto err = st->rebuild_summaries()) {
    fmt::print(stderr, "parallax rebuild-summaries: {}\n", err.message);
    return 1;
  }
  auto all = st->buckets();
  fmt::print("rebuilt summaries and rollups of {} buckets in {:.2f} s\n",
             all ? all->size() : 0,
             std::chrono::duration<double>(std::chrono::steady_clock::now()
                                           - t0)
               .count());
  return 0;
}

int run_compact(const config_args& args) {
  auto cfg = load(args, "compact");
  if (!cfg)
    return 2;
  // Compaction is safe beside a running server (serve compacts quiet
  // buckets itself); this command is for a store written without one.
  storage::environment_options eo;
  eo.map_size = cfg->storage_map_size;
  auto env = storage::environment::open(cfg->data_dir / "store", eo);
  if (!env) {
    fmt::print(stderr, "parallax compact: {}\n", env.error().message);
    return 1;
  }
  auto st = storage::store::open(*env, store_options_of(*cfg));
  if (!st) {
    fmt::print(stderr, "parallax compact: {}\n", st.error().message);
    return st.error().code == ec::config_bad_value ? 2 : 1;
  }
  auto all = st->buckets();
  if (!all) {
    fmt::print(stderr, "parallax compact: {}\n", all.error().message);
    return 1;
  }
  auto t0 = std::chrono::steady_clock::now();
  storage::compact_result sum;
  std::size_t done = 0, skipped = 0;
  for (const auto& b : *all) {
    if (b.compacted_events == b.events)
      continue;
    auto r = st->compact(b.id);
    if (!r) {
      fmt::print(stderr, "parallax compact: bucket {}: {}\n", b.id,
                 r.error().message);
      return 1;
    }
    if (!r->done) {
      ++skipped;
      continue;
    }
    ++done;
    sum.events += r->events;
    sum.blocks_before += r->blocks_before;
    sum.blocks_after += r->blocks_after;
    sum.bytes_before += r->bytes_before;
    sum.bytes_after += r->bytes_after;
    sum.postings_before += r->postings_before;
    sum.postings_after += r->postings_after;
  }
  fmt::print("compacted {} of {} buckets ({} already compacted, {} changed "
             "meanwhile) in {:.2f} s: {} events, blocks {} -> {}, block "
             "bytes {} -> {}, postings keys {} -> {}\n",
             done, all->size(), all->size() - done - skipped, skipped,
             std::chrono::duration<double>(std::chrono::steady_clock::now()
                                           - t0)
               .count(),
             sum.events, sum.blocks_before, sum.blocks_after,
             sum.bytes_before, sum.bytes_after, sum.postings_before,
             sum.postings_after);
  return 0;
}

} // namespace parallax::tools
