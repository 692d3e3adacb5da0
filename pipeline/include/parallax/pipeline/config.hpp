#pragma once

// Parallax's configuration: one TOML file plus command-line overrides.
//
// Precedence: built-in defaults < the file given with --config < each
// `--set key=value` in order. Keys are `parallax.<component>.<kebab-option>`.
// Every problem is reported as one `error` whose message names the key (and,
// for files, the line and column); tools print it and exit with code 2.

#include "parallax/pipeline/logging.hpp"
#include "parallax/pipeline/sourcetypes.hpp"
#include "parallax/schemas/error.hpp"
#include "parallax/schemas/wire.hpp"
#include "parallax/storage/store.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace parallax {

/// `parallax agent`: what the in-guest agent collects and where it sends it.
struct agent_config {
  std::string server;                        ///< parallax.agent.server
  std::chrono::milliseconds interval{};      ///< parallax.agent.interval
  std::vector<std::string> inputs;           ///< parallax.agent.inputs
  std::filesystem::path root;                ///< parallax.agent.root
  std::filesystem::path state_dir;           ///< parallax.agent.state-dir
  std::uint64_t spool_max_bytes = 0;         ///< parallax.agent.spool-max-bytes
  std::vector<std::string> auth_logs;        ///< parallax.agent.auth-logs
  std::vector<std::string> syslog_logs;      ///< parallax.agent.syslog-logs
  std::vector<std::string> cron_logs;        ///< parallax.agent.cron-logs
  std::chrono::milliseconds identity_interval{}; ///< parallax.agent.identity-interval
  std::string index;                         ///< parallax.agent.index
};

/// The libvirt poller inside `parallax serve`.
struct libvirt_config {
  std::vector<std::string> uris;             ///< parallax.libvirt.uris
  std::chrono::milliseconds interval{};      ///< parallax.libvirt.interval
};

/// The HTTP endpoint inside `parallax serve` (collectd write_http, the
/// web view and its API).
struct http_config {
  std::string listen;                        ///< parallax.http.listen
  std::string token;                         ///< parallax.http.token
  std::string web_root;                      ///< parallax.http.web-root
};

/// The publisher of deltas, alerts and identity changes (publisher.hpp).
struct publisher_config {
  std::string endpoint;                      ///< parallax.publisher.endpoint
  std::uint64_t high_water_mark = 0;         ///< parallax.publisher.high-water-mark
};

/// Search (parallax.search.*): the endpoint of `parallax serve` and the
/// bounds every query runs under, there and in `parallax search`.
struct search_config {
  std::string endpoint;                 ///< .endpoint; empty: off
  std::uint64_t max_memory = 0;         ///< .max-memory (bytes)
  std::chrono::milliseconds timeout{};  ///< .timeout
  std::uint64_t max_results = 0;        ///< .max-results
  std::chrono::milliseconds job_ttl{};  ///< .job-ttl
};

/// The correlator of `parallax serve` (parallax.correlator.*).
struct correlation_config {
  bool enabled = true;                            ///< .enabled
  std::chrono::milliseconds window{};             ///< .window
  std::chrono::milliseconds allowed_lateness{};   ///< .allowed-lateness
  std::chrono::milliseconds correction_horizon{}; ///< .correction-horizon
  std::chrono::milliseconds learning_period{};    ///< .learning-period
  std::chrono::milliseconds hold_new_guests{};    ///< .hold-new-guests
  int nice = 0; ///< .nice (default: defaults::correlator_nice)
  int rt_priority = 0; ///< .rt-priority (default: defaults::correlator_rt_priority)
  std::vector<std::string> admin_users;           ///< .admin-users
  std::vector<std::string> allowed_users;         ///< .allowed-users
  std::vector<std::string> allowed_processes;     ///< .allowed-processes
  std::uint64_t service_uid_max = 0;              ///< .service-uid-max
  std::uint64_t unexplained_cpu_pct = 0;          ///< .unexplained-cpu-pct
  /// [parallax.correlator.service-owners]: VM name pattern -> users.
  std::vector<std::pair<std::string, std::vector<std::string>>>
    service_owners;
};

struct config {
  std::filesystem::path data_dir;                ///< parallax.data-dir
  log_level log = log_level::info;               ///< parallax.log-level
  std::uint64_t scheduler_threads = 0;           ///< parallax.scheduler-threads
  std::chrono::milliseconds metrics_interval{};  ///< parallax.metrics.report-interval
  std::uint64_t storage_map_size = 0;            ///< parallax.storage.map-size
  std::chrono::milliseconds bucket_span{};       ///< parallax.storage.bucket-span
  std::chrono::milliseconds rollup_interval{};   ///< parallax.storage.rollup-interval
  std::uint64_t block_events = 0;                ///< parallax.storage.block-events
  std::uint64_t run_min_terms = 0;               ///< parallax.storage.run-min-terms
  std::chrono::milliseconds retention{};         ///< parallax.storage.retention
  std::chrono::milliseconds compact_after{};     ///< parallax.storage.compact-after
  std::string collector_endpoint;                ///< parallax.collector.endpoint
  std::uint64_t max_inflight_bytes = 0;          ///< parallax.collector.max-inflight-bytes
  std::uint64_t live_frame_bytes = 0;            ///< parallax.collector.live-frame-bytes
  std::chrono::milliseconds max_future{};        ///< parallax.collector.max-future
  wire::limits wire;                             ///< parallax.wire.*
  std::vector<sourcetype_rules> sourcetypes;     ///< parallax.sourcetypes."NAME".*
  agent_config agent;                            ///< parallax.agent.*
  libvirt_config libvirt;                        ///< parallax.libvirt.*
  http_config http;                              ///< parallax.http.*
  publisher_config publisher;                    ///< parallax.publisher.*
  correlation_config correlator;                 ///< parallax.correlator.*
  search_config search;                          ///< parallax.search.*

  /// The built-in defaults (defaults.hpp).
  static config defaults();
};

/// One documented option, as listed by `parallax config --example`.
struct option_info {
  std::string_view key;
  std::string_view type; ///< "string", "strings", "path", "integer", "size", "duration", "level", "bool"
  std::string_view doc;
};

/// Every option, in documentation order.
std::span<const option_info> options();

/// Builds the effective configuration. `file` may be empty (defaults only).
/// Each override is "key=value"; the value is read as a TOML value if it is
/// one (2, "x", true) and as a plain string otherwise (./var, 10s).
result<config> load_config(const std::optional<std::filesystem::path>& file,
                           std::span<const std::string> overrides = {});

/// Parses a TOML document from memory; `origin` names it in errors.
result<config> parse_config(std::string_view toml, std::string_view origin,
                            std::span<const std::string> overrides = {});

/// A TOML document listing every option with its documentation and its value
/// in `cfg`. With `config::defaults()` this is the example config.
std::string render_config(const config& cfg);

/// The store's options (bucket span, rollup interval, block size) from `cfg`.
storage::store_options store_options_of(const config& cfg);

/// Parses "10s", "500ms", "2m", "1h", "1d" (also "1h30m").
std::optional<std::chrono::milliseconds> parse_duration(std::string_view s);

/// Parses "64GiB", "512KiB", "10MB", "4096" into bytes.
std::optional<std::uint64_t> parse_size(std::string_view s);

} // namespace parallax
