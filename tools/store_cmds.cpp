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
                 "\"block_bytes\":{}}}\n",
                 b.id, iso(b.start), iso(b.end), iso(b.min_time),
                 iso(b.max_time), b.events, b.block_bytes);
    return 0;
  }
  fmt::print("{:<24}  {:<24}  {:<24}  {:>12}  {:>12}\n", "bucket start",
             "earliest event", "latest event", "events", "block bytes");
  for (const auto& b : *all)
    fmt::print("{:<24}  {:<24}  {:<24}  {:>12}  {:>12}\n", iso(b.start),
               iso(b.min_time), iso(b.max_time), b.events, b.block_bytes);
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

} // namespace parallax::tools
