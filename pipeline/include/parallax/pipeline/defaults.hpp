#pragma once

// Every default of Parallax, named and documented in one place. The option
// table in config.cpp refers to these; etc/parallax.example.toml is generated
// from that table (`parallax config --example`) and a test keeps it in sync.

#include <chrono>
#include <cstdint>
#include <string_view>

namespace parallax::defaults {

/// Where the store, locks and state live. Relative paths are relative to the
/// working directory of the process.
inline constexpr std::string_view data_dir = "./var";

/// Messages above this level are discarded.
inline constexpr std::string_view log_level = "info";

/// CAF scheduler worker threads; 0 means one per core.
inline constexpr std::uint64_t scheduler_threads = 0;

/// How often `parallax serve` logs its self-metrics (at debug level, and only
/// when they changed).
inline constexpr std::chrono::milliseconds metrics_interval
  = std::chrono::seconds{10};

/// LMDB map size: the largest the store may grow before writes fail with
/// MDB_MAP_FULL. Address space, not memory: a large value costs nothing.
inline constexpr std::uint64_t storage_map_size = std::uint64_t{64} << 30;

/// Wire-format limits a receiver enforces (see schemas/README.md).
inline constexpr std::uint64_t wire_max_frame_bytes = 8u << 20;
inline constexpr std::uint64_t wire_max_events = 100'000;
inline constexpr std::uint64_t wire_max_fields = 256;
inline constexpr std::uint64_t wire_max_string_bytes = 512u << 10;
inline constexpr std::uint64_t wire_max_name_bytes = 256;

} // namespace parallax::defaults
