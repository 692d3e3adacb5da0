#include "parallax/pipeline/config.hpp"

#include "parallax/pipeline/defaults.hpp"
#include "parallax/pipeline/search.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <fstream>
#include <sstream>
#include <vector>

#include <fmt/format.h>

// toml++ is used only in this translation unit; without exceptions it
// returns parse results that carry the error position.
// Debian builds the library with exceptions, so the no-exception flavour
// is compiled here, header-only.
#define TOML_HEADER_ONLY 1
#define TOML_EXCEPTIONS 0
#include <toml++/toml.h>

namespace parallax {

config config::defaults() {
  config c;
  c.data_dir = std::filesystem::path{std::string{defaults::data_dir}};
  c.log = log_level::info;
  c.scheduler_threads = defaults::scheduler_threads;
  c.metrics_interval = defaults::metrics_interval;
  c.storage_map_size = defaults::storage_map_size;
  c.bucket_span = defaults::storage_bucket_span;
  c.rollup_interval = defaults::storage_rollup_interval;
  c.block_events = defaults::storage_block_events;
  c.run_min_terms = defaults::storage_run_min_terms;
  c.retention = defaults::storage_retention;
  c.compact_after = defaults::storage_compact_after;
  for (const auto& d : defaults::search_rules) {
    sourcetype_rules r;
    r.name = std::string{d.sourcetype};
    for (auto x : d.extract)
      if (!x.empty())
        r.extract.emplace_back(x);
    for (auto x : d.aliases)
      if (!x.empty())
        r.field_aliases.emplace_back(x);
    for (auto x : d.calculated)
      if (!x.empty())
        r.calculated.emplace_back(x);
    c.sourcetypes.push_back(std::move(r));
  }
  c.collector_endpoint = std::string{defaults::collector_endpoint};
  c.max_inflight_bytes = defaults::collector_max_inflight_bytes;
  c.live_frame_bytes = defaults::collector_live_frame_bytes;
  c.max_future = defaults::collector_max_future;
  c.wire.max_frame_bytes = defaults::wire_max_frame_bytes;
  c.wire.max_events = defaults::wire_max_events;
  c.wire.max_fields = defaults::wire_max_fields;
  c.wire.max_string_bytes = defaults::wire_max_string_bytes;
  c.agent.server = std::string{defaults::agent_server};
  c.agent.interval = defaults::agent_interval;
  for (auto s : defaults::agent_inputs)
    c.agent.inputs.emplace_back(s);
  c.agent.root = std::string{defaults::agent_root};
  c.agent.state_dir = std::string{defaults::agent_state_dir};
  c.agent.spool_max_bytes = defaults::agent_spool_max_bytes;
  for (auto s : defaults::agent_auth_logs)
    c.agent.auth_logs.emplace_back(s);
  for (auto s : defaults::agent_syslog_logs)
    c.agent.syslog_logs.emplace_back(s);
  for (auto s : defaults::agent_cron_logs)
    c.agent.cron_logs.emplace_back(s);
  c.agent.identity_interval = defaults::agent_identity_interval;
  c.agent.index = std::string{defaults::agent_index};
  c.libvirt.interval = defaults::libvirt_interval;
  c.http.listen = std::string{defaults::http_listen};
  c.http.web_root = std::string{defaults::http_web_root};
  c.correlator.window = defaults::correlator_window;
  c.correlator.allowed_lateness = defaults::correlator_allowed_lateness;
  c.correlator.hold_new_guests = defaults::correlator_hold_new_guests;
  c.correlator.nice = defaults::correlator_nice;
  c.correlator.rt_priority = defaults::correlator_rt_priority;
  c.correlator.correction_horizon = defaults::correlator_correction_horizon;
  c.correlator.learning_period = defaults::correlator_learning_period;
  for (auto u : defaults::correlator_admin_users)
    c.correlator.admin_users.emplace_back(u);
  c.correlator.service_uid_max = defaults::correlator_service_uid_max;
  c.correlator.unexplained_cpu_pct = defaults::correlator_unexplained_cpu_pct;
  c.publisher.endpoint = std::string{defaults::publisher_endpoint};
  c.publisher.high_water_mark = defaults::publisher_high_water_mark;
  c.wire.max_name_bytes = defaults::wire_max_name_bytes;
  c.search.endpoint = std::string{defaults::search_endpoint};
  c.search.max_memory = defaults::search_max_memory;
  c.search.timeout = defaults::search_timeout;
  c.search.max_results = defaults::search_max_results;
  c.search.job_ttl = defaults::search_job_ttl;
  return c;
}

static_assert(defaults::storage_run_min_terms
              == storage::store_options{}.run_min_terms);

storage::store_options store_options_of(const config& cfg) {
  storage::store_options o;
  o.bucket_span = to_ns(cfg.bucket_span);
  o.rollup_interval = to_ns(cfg.rollup_interval);
  o.block_events = static_cast<std::size_t>(cfg.block_events);
  o.run_min_terms = static_cast<std::size_t>(cfg.run_min_terms);
  return o;
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view s) {
  using namespace std::chrono;
  if (s.empty())
    return std::nullopt;
  std::int64_t total = 0;
  while (!s.empty()) {
    std::int64_t n = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc{} || p == s.data() || n < 0)
      return std::nullopt;
    s.remove_prefix(static_cast<std::size_t>(p - s.data()));
    std::int64_t unit = 0;
    if (s.starts_with("ms")) {
      unit = 1;
      s.remove_prefix(2);
    } else if (!s.empty()) {
      switch (s.front()) {
        case 's': unit = 1000; break;
        case 'm': unit = 60'000; break;
        case 'h': unit = 3'600'000; break;
        case 'd': unit = 86'400'000; break;
        default: return std::nullopt;
      }
      s.remove_prefix(1);
    } else {
      return std::nullopt; // a unit is required: "10" is ambiguous
    }
    if (n > (std::int64_t{1} << 50) / unit)
      return std::nullopt;
    total += n * unit;
  }
  // At most 100 years: durations become int64 nanoseconds (~292 years).
  if (total > std::int64_t{36'500} * 86'400'000)
    return std::nullopt;
  return milliseconds{total};
}

std::optional<std::uint64_t> parse_size(std::string_view s) {
  std::uint64_t n = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc{} || p == s.data())
    return std::nullopt;
  std::string_view unit{p, static_cast<std::size_t>(s.data() + s.size() - p)};
  static constexpr std::pair<std::string_view, std::uint64_t> units[] = {
    {"", 1},
    {"B", 1},
    {"KiB", std::uint64_t{1} << 10},
    {"MiB", std::uint64_t{1} << 20},
    {"GiB", std::uint64_t{1} << 30},
    {"TiB", std::uint64_t{1} << 40},
    {"KB", 1'000},
    {"MB", 1'000'000},
    {"GB", 1'000'000'000},
    {"TB", 1'000'000'000'000},
  };
  for (auto [name, mult] : units)
    if (unit == name) {
      if (n > std::numeric_limits<std::uint64_t>::max() / mult)
        return std::nullopt;
      return n * mult;
    }
  return std::nullopt;
}

namespace {

std::string render_duration(std::chrono::milliseconds d) {
  auto ms = d.count();
  if (ms != 0 && ms % 86'400'000 == 0)
    return fmt::format("{}d", ms / 86'400'000);
  if (ms != 0 && ms % 3'600'000 == 0)
    return fmt::format("{}h", ms / 3'600'000);
  if (ms != 0 && ms % 60'000 == 0)
    return fmt::format("{}m", ms / 60'000);
  if (ms % 1000 == 0)
    return fmt::format("{}s", ms / 1000);
  return fmt::format("{}ms", ms);
}

std::string render_size(std::uint64_t n) {
  static constexpr std::pair<std::string_view, std::uint64_t> units[] = {
    {"TiB", std::uint64_t{1} << 40},
    {"GiB", std::uint64_t{1} << 30},
    {"MiB", std::uint64_t{1} << 20},
    {"KiB", std::uint64_t{1} << 10},
  };
  for (auto [name, mult] : units)
    if (n != 0 && n % mult == 0)
      return fmt::format("\"{}{}\"", n / mult, name);
  return fmt::format("{}", n);
}

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
          out += fmt::format("\\u{:04X}", c);
        else
          out += c;
    }
  }
  return out + "\"";
}

std::string show(const toml::node& n) {
  std::ostringstream os;
  if (auto s = n.value<std::string>())
    return quote(*s);
  n.visit([&](auto&& v) { os << v; });
  return os.str();
}

// A setter returns an empty string on success, or what was wrong.
using setter = std::string (*)(config&, const toml::node&);
using getter = std::string (*)(const config&);

struct option {
  option_info info;
  setter set;
  getter get;
};

std::string want_uint(const toml::node& n, std::uint64_t lo, std::uint64_t hi,
                      std::uint64_t& out) {
  auto v = n.value_exact<std::int64_t>();
  if (!v)
    return fmt::format("expected an integer, got {}", show(n));
  if (*v < 0 || static_cast<std::uint64_t>(*v) < lo
      || static_cast<std::uint64_t>(*v) > hi)
    return fmt::format("expected an integer from {} to {}, got {}", lo, hi, *v);
  out = static_cast<std::uint64_t>(*v);
  return {};
}

std::string want_int(const toml::node& n, int lo, int hi, int& out) {
  auto v = n.value_exact<std::int64_t>();
  if (!v)
    return fmt::format("expected an integer, got {}", show(n));
  if (*v < lo || *v > hi)
    return fmt::format("expected an integer from {} to {}, got {}", lo, hi, *v);
  out = static_cast<int>(*v);
  return {};
}

std::string want_size(const toml::node& n, std::uint64_t lo, std::uint64_t hi,
                      std::uint64_t& out) {
  std::optional<std::uint64_t> v;
  if (auto i = n.value_exact<std::int64_t>(); i && *i >= 0)
    v = static_cast<std::uint64_t>(*i);
  else if (auto s = n.value_exact<std::string>())
    v = parse_size(*s);
  if (!v)
    return fmt::format("expected a size such as \"64GiB\", \"10MB\" or a "
                       "number of bytes, got {}",
                       show(n));
  if (*v < lo || *v > hi)
    return fmt::format("expected a size from {} to {} bytes, got {}", lo, hi,
                       *v);
  out = *v;
  return {};
}

std::string want_duration(const toml::node& n, std::chrono::milliseconds lo,
                          std::chrono::milliseconds& out) {
  auto s = n.value_exact<std::string>();
  auto d = s ? parse_duration(*s) : std::nullopt;
  if (!d)
    return fmt::format("expected a duration such as \"10s\", \"500ms\" or "
                       "\"1h\" (at most 100 years), got {}",
                       show(n));
  if (*d < lo)
    return fmt::format("expected at least {}, got {}", render_duration(lo),
                       show(n));
  out = *d;
  return {};
}

// An array of strings; `allowed`, when not empty, lists the legal values.
std::string want_strings(const toml::node& n,
                         std::initializer_list<std::string_view> allowed,
                         std::vector<std::string>& out) {
  auto arr = n.as_array();
  std::vector<std::string> v;
  if (arr)
    for (auto&& e : *arr) {
      auto s = e.value_exact<std::string>();
      if (!s) {
        arr = nullptr;
        break;
      }
      if (allowed.size() > 0
          && std::find(allowed.begin(), allowed.end(), *s) == allowed.end()) {
        std::string list;
        for (auto a : allowed)
          list += fmt::format("{}\"{}\"", list.empty() ? "" : ", ", a);
        return fmt::format("expected values among {}, got {}", list,
                           quote(*s));
      }
      v.push_back(*s);
    }
  if (!arr)
    return fmt::format("expected an array of strings, got {}", show(n));
  out = std::move(v);
  return {};
}

std::string render_strings(const std::vector<std::string>& v) {
  std::string out = "[";
  for (const auto& s : v)
    out += fmt::format("{}{}", out.size() > 1 ? ", " : "", quote(s));
  return out + "]";
}

std::string want_endpoint(const toml::node& n, std::string& out) {
  auto s = n.value_exact<std::string>();
  if (!s || s->find("://") == std::string::npos)
    return fmt::format("expected an endpoint such as "
                       "\"tcp://127.0.0.1:7400\", got {}",
                       show(n));
  out = *s;
  return {};
}

std::size_t to_size(std::uint64_t v) {
  return static_cast<std::size_t>(v);
}

// The option table: documentation order, grouped by TOML table.
const option table[] = {
  {{"parallax.data-dir", "path",
    "Directory for the store, locks and state. Relative to the working "
    "directory. `--data DIR` overrides it."},
   [](config& c, const toml::node& n) -> std::string {
     auto s = n.value_exact<std::string>();
     if (!s || s->empty())
       return fmt::format("expected a non-empty path string, got {}", show(n));
     c.data_dir = *s;
     return {};
   },
   [](const config& c) { return quote(c.data_dir.string()); }},
  {{"parallax.log-level", "level",
    "Least severe message written to standard error: error, warning, info "
    "or debug."},
   [](config& c, const toml::node& n) -> std::string {
     auto s = n.value_exact<std::string>();
     for (auto l : {log_level::error, log_level::warning, log_level::info,
                    log_level::debug})
       if (s && *s == to_string(l)) {
         c.log = l;
         return {};
       }
     return fmt::format("expected one of \"error\", \"warning\", \"info\", "
                        "\"debug\", got {}",
                        show(n));
   },
   [](const config& c) { return quote(to_string(c.log)); }},
  {{"parallax.scheduler-threads", "integer",
    "Worker threads of the actor scheduler; 0 means one per core."},
   [](config& c, const toml::node& n) {
     return want_uint(n, 0, 256, c.scheduler_threads);
   },
   [](const config& c) { return fmt::format("{}", c.scheduler_threads); }},
  {{"parallax.metrics.report-interval", "duration",
    "How often `parallax serve` logs its self-metrics (at debug level, only "
    "when they changed)."},
   [](config& c, const toml::node& n) {
     return want_duration(n, std::chrono::milliseconds{100},
                          c.metrics_interval);
   },
   [](const config& c) {
     return quote(render_duration(c.metrics_interval));
   }},
  {{"parallax.storage.map-size", "size",
    "Largest size the LMDB store may reach; writes beyond it fail with "
    "MDB_MAP_FULL. Reserves address space, not memory."},
   [](config& c, const toml::node& n) {
     return want_size(n, std::uint64_t{1} << 20, std::uint64_t{1} << 44,
                      c.storage_map_size);
   },
   [](const config& c) { return render_size(c.storage_map_size); }},
  {{"parallax.storage.bucket-span", "duration",
    "Width of a time bucket. Fixed when a store is created: opening a store "
    "with another span is an error."},
   [](config& c, const toml::node& n) {
     return want_duration(n, std::chrono::minutes{1}, c.bucket_span);
   },
   [](const config& c) { return quote(render_duration(c.bucket_span)); }},
  {{"parallax.storage.rollup-interval", "duration",
    "Width of a metric rollup interval (count, sum, min, max, sum of squares "
    "per host and metric). At most the bucket span."},
   [](config& c, const toml::node& n) {
     return want_duration(n, std::chrono::seconds{1}, c.rollup_interval);
   },
   [](const config& c) { return quote(render_duration(c.rollup_interval)); }},
  {{"parallax.storage.block-events", "integer",
    "Events per stored block. Blocks are compressed whole and decoded whole: "
    "larger blocks compress better, smaller ones make an indexed search "
    "that reads a few events from many blocks faster. Applies to blocks "
    "written from now on."},
   [](config& c, const toml::node& n) {
     return want_uint(n, 1, 65'536, c.block_events);
   },
   [](const config& c) { return std::to_string(c.block_events); }},
  {{"parallax.storage.run-min-terms", "integer",
    "A write that brings a bucket at least this many distinct terms stores "
    "their postings as one sorted run (keys of about 4 KB of packed terms) "
    "instead of one key per term: far fewer B-tree puts for a busy commit. "
    "A term lookup seeks once per run of a 2^18-event segment, so slower "
    "commits keep per-term keys; compaction turns a bucket's runs back "
    "into per-term keys. 0: never."},
   [](config& c, const toml::node& n) {
     return want_uint(n, 0, std::uint64_t{1} << 32, c.run_min_terms);
   },
   [](const config& c) { return std::to_string(c.run_min_terms); }},
  {{"parallax.storage.retention", "duration",
    "Buckets that ended longer ago than this are dropped whole, checked "
    "every minute; \"0s\" keeps everything."},
   [](config& c, const toml::node& n) {
     return want_duration(n, std::chrono::milliseconds{0}, c.retention);
   },
   [](const config& c) { return quote(render_duration(c.retention)); }},
  {{"parallax.storage.compact-after", "duration",
    "A bucket that took no events for this long is compacted in the "
    "background: its events are rewritten grouped by sourcetype and VM, in "
    "time order, so a series is read from a few blocks instead of one per "
    "commit. A bucket still growing is compacted again once it holds half again as many "
    "events. \"0s\" turns compaction off (`parallax compact` does it by "
    "hand)."},
   [](config& c, const toml::node& n) {
     return want_duration(n, std::chrono::milliseconds{0}, c.compact_after);
   },
   [](const config& c) { return quote(render_duration(c.compact_after)); }},
  {{"parallax.collector.endpoint", "string",
    "ZeroMQ endpoint where the collector accepts batch frames (a ROUTER "
    "socket; clients use DEALER)."},
   [](config& c, const toml::node& n) -> std::string {
     auto s = n.value_exact<std::string>();
     if (!s || s->find("://") == std::string::npos)
       return fmt::format("expected an endpoint such as "
                          "\"tcp://127.0.0.1:7400\", got {}",
                          show(n));
     c.collector_endpoint = *s;
     return {};
   },
   [](const config& c) { return quote(c.collector_endpoint); }},
  {{"parallax.collector.max-inflight-bytes", "size",
    "Bytes of frames that may wait for their commit. Beyond this the "
    "collector takes no more (backpressure: clients see slower acks)."},
   [](config& c, const toml::node& n) {
     return want_size(n, std::uint64_t{1} << 20, std::uint64_t{1} << 34,
                      c.max_inflight_bytes);
   },
   [](const config& c) { return render_size(c.max_inflight_bytes); }},
  {{"parallax.collector.live-frame-bytes", "size",
    "While that credit is spent, frames up to this size (an agent's or a "
    "hypervisor poller's periodic batch) from a client with nothing waiting "
    "still go through, from a reserve of an eighth of the credit; larger "
    "ones wait in order. 0: every frame waits (the collector stops reading "
    "at the credit)."},
   [](config& c, const toml::node& n) {
     return want_size(n, 0, std::uint64_t{1} << 30, c.live_frame_bytes);
   },
   [](const config& c) { return render_size(c.live_frame_bytes); }},
  {{"parallax.collector.max-future", "duration",
    "How far ahead of the server's clock an event time may be. A batch with "
    "a later time, or a time before 1970, is rejected (invalid_value)."},
   [](config& c, const toml::node& n) {
     return want_duration(n, std::chrono::milliseconds{0}, c.max_future);
   },
   [](const config& c) { return quote(render_duration(c.max_future)); }},
  {{"parallax.wire.max-frame-bytes", "size",
    "Largest batch frame a receiver accepts; larger frames are rejected "
    "with oversized_frame."},
   [](config& c, const toml::node& n) {
     std::uint64_t v = 0;
     auto e = want_size(n, 64, std::uint64_t{1} << 30, v);
     c.wire.max_frame_bytes = to_size(v);
     return e;
   },
   [](const config& c) {
     return render_size(c.wire.max_frame_bytes);
   }},
  {{"parallax.wire.max-events", "integer",
    "Most events in one batch; more are rejected with too_many_events."},
   [](config& c, const toml::node& n) {
     std::uint64_t v = 0;
     auto e = want_uint(n, 1, 10'000'000, v);
     c.wire.max_events = to_size(v);
     return e;
   },
   [](const config& c) { return fmt::format("{}", c.wire.max_events); }},
  {{"parallax.wire.max-fields", "integer",
    "Most fields in one event; more are rejected with too_many_fields."},
   [](config& c, const toml::node& n) {
     std::uint64_t v = 0;
     auto e = want_uint(n, 1, 65'535, v);
     c.wire.max_fields = to_size(v);
     return e;
   },
   [](const config& c) { return fmt::format("{}", c.wire.max_fields); }},
  {{"parallax.wire.max-string-bytes", "size",
    "Longest raw text or string field value; longer ones are rejected with "
    "string_too_long. At most parallax.wire.max-frame-bytes."},
   [](config& c, const toml::node& n) {
     std::uint64_t v = 0;
     auto e = want_size(n, 1, std::uint64_t{1} << 30, v);
     c.wire.max_string_bytes = to_size(v);
     return e;
   },
   [](const config& c) {
     return render_size(c.wire.max_string_bytes);
   }},
  {{"parallax.wire.max-name-bytes", "integer",
    "Longest field name, index, host, source, sourcetype or source id; at "
    "most 480 (a source id is an LMDB key, at most 511 bytes)."},
   [](config& c, const toml::node& n) {
     std::uint64_t v = 0;
     auto e = want_uint(n, 1, 480, v);
     c.wire.max_name_bytes = to_size(v);
     return e;
   },
   [](const config& c) { return fmt::format("{}", c.wire.max_name_bytes); }},
  {{"parallax.agent.server", "string",
    "`parallax agent`: the ingest endpoint of the server it sends to."},
   [](config& c, const toml::node& n) {
     return want_endpoint(n, c.agent.server);
   },
   [](const config& c) { return quote(c.agent.server); }},
  {{"parallax.agent.interval", "duration",
    "`parallax agent`: how often processes and system figures are sampled "
    "and new log lines sent."},
   [](config& c, const toml::node& n) {
     return want_duration(n, std::chrono::milliseconds{100},
                          c.agent.interval);
   },
   [](const config& c) { return quote(render_duration(c.agent.interval)); }},
  {{"parallax.agent.inputs", "strings",
    "`parallax agent`: which inputs run: \"processes\", \"system\", "
    "\"identity\", \"logs\"."},
   [](config& c, const toml::node& n) {
     return want_strings(n, {"processes", "system", "identity", "logs"},
                         c.agent.inputs);
   },
   [](const config& c) { return render_strings(c.agent.inputs); }},
  {{"parallax.agent.root", "path",
    "`parallax agent`: the directory holding proc/, sys/ and etc/passwd "
    "(\"/\" on a real guest; tests point it at fixture trees)."},
   [](config& c, const toml::node& n) -> std::string {
     auto s = n.value_exact<std::string>();
     if (!s || s->empty())
       return fmt::format("expected a non-empty path string, got {}", show(n));
     c.agent.root = *s;
     return {};
   },
   [](const config& c) { return quote(c.agent.root.string()); }},
  {{"parallax.agent.state-dir", "path",
    "`parallax agent`: where its identity, log checkpoints and spool live; "
    "empty means <data-dir>/agent."},
   [](config& c, const toml::node& n) -> std::string {
     auto s = n.value_exact<std::string>();
     if (!s)
       return fmt::format("expected a path string, got {}", show(n));
     c.agent.state_dir = *s;
     return {};
   },
   [](const config& c) { return quote(c.agent.state_dir.string()); }},
  {{"parallax.agent.spool-max-bytes", "size",
    "`parallax agent`: most bytes of unacknowledged batches kept on disk. "
    "When full, the oldest batches are dropped, counted and logged."},
   [](config& c, const toml::node& n) {
     return want_size(n, std::uint64_t{1} << 16, std::uint64_t{1} << 40,
                      c.agent.spool_max_bytes);
   },
   [](const config& c) { return render_size(c.agent.spool_max_bytes); }},
  {{"parallax.agent.auth-logs", "strings",
    "`parallax agent`: authentication logs to tail (globs), sent as "
    "sourcetype os:auth."},
   [](config& c, const toml::node& n) {
     return want_strings(n, {}, c.agent.auth_logs);
   },
   [](const config& c) { return render_strings(c.agent.auth_logs); }},
  {{"parallax.agent.syslog-logs", "strings",
    "`parallax agent`: system logs to tail (globs), sent as os:syslog."},
   [](config& c, const toml::node& n) {
     return want_strings(n, {}, c.agent.syslog_logs);
   },
   [](const config& c) { return render_strings(c.agent.syslog_logs); }},
  {{"parallax.agent.cron-logs", "strings",
    "`parallax agent`: cron logs to tail (globs), sent as os:cron."},
   [](config& c, const toml::node& n) {
     return want_strings(n, {}, c.agent.cron_logs);
   },
   [](const config& c) { return render_strings(c.agent.cron_logs); }},
  {{"parallax.agent.identity-interval", "duration",
    "`parallax agent`: identity (hostname, NICs, BIOS UUID) is sent at "
    "start, when it changes, and at least this often."},
   [](config& c, const toml::node& n) {
     return want_duration(n, std::chrono::seconds{1},
                          c.agent.identity_interval);
   },
   [](const config& c) {
     return quote(render_duration(c.agent.identity_interval));
   }},
  {{"parallax.agent.index", "string",
    "`parallax agent`: the index its events are stored in."},
   [](config& c, const toml::node& n) -> std::string {
     auto s = n.value_exact<std::string>();
     if (!s || s->empty())
       return fmt::format("expected a non-empty string, got {}", show(n));
     c.agent.index = *s;
     return {};
   },
   [](const config& c) { return quote(c.agent.index); }},
  {{"parallax.libvirt.uris", "strings",
    "libvirt connections `parallax serve` polls, e.g. [\"qemu:///system\"] "
    "(read-only); empty: no polling."},
   [](config& c, const toml::node& n) {
     return want_strings(n, {}, c.libvirt.uris);
   },
   [](const config& c) { return render_strings(c.libvirt.uris); }},
  {{"parallax.libvirt.interval", "duration",
    "How often each libvirt connection is polled."},
   [](config& c, const toml::node& n) {
     return want_duration(n, std::chrono::milliseconds{100},
                          c.libvirt.interval);
   },
   [](const config& c) { return quote(render_duration(c.libvirt.interval)); }},
  {{"parallax.http.listen", "string",
    "host:port of the HTTP endpoint (collectd write_http JSON at "
    "/collectd); empty turns it off. A non-loopback address requires "
    "parallax.http.token."},
   [](config& c, const toml::node& n) -> std::string {
     auto s = n.value_exact<std::string>();
     if (!s)
       return fmt::format("expected \"host:port\" or \"\", got {}", show(n));
     auto colon = s->rfind(':');
     if (!s->empty()
         && (colon == std::string::npos || colon == 0
             || colon + 1 == s->size()))
       return fmt::format("expected \"host:port\" or \"\", got {}", show(n));
     c.http.listen = *s;
     return {};
   },
   [](const config& c) { return quote(c.http.listen); }},
  {{"parallax.http.token", "string",
    "Bearer token HTTP clients must send (Authorization: Bearer TOKEN); "
    "empty: none, allowed only on a loopback address."},
   [](config& c, const toml::node& n) -> std::string {
     auto s = n.value_exact<std::string>();
     if (!s)
       return fmt::format("expected a string, got {}", show(n));
     c.http.token = *s;
     return {};
   },
   [](const config& c) { return quote(c.http.token); }},
  {{"parallax.http.web-root", "string",
    "Folder of the web app's files (index.html, vm.html, ...; docs/web.md) "
    "served on the HTTP endpoint; empty: the web/ folder of the source "
    "tree the binary was built from."},
   [](config& c, const toml::node& n) -> std::string {
     auto s = n.value_exact<std::string>();
     if (!s)
       return fmt::format("expected a string, got {}", show(n));
     c.http.web_root = *s;
     return {};
   },
   [](const config& c) { return quote(c.http.web_root); }},
  {{"parallax.correlator.enabled", "bool",
    "Run the correlator between parser and indexer: VM attribution (the "
    "fields vm and vm_uuid), deltas, drift and security alerts."},
   [](config& c, const toml::node& n) -> std::string {
     auto b = n.value_exact<bool>();
     if (!b)
       return fmt::format("expected true or false, got {}", show(n));
     c.correlator.enabled = *b;
     return {};
   },
   [](const config& c) -> std::string {
     return c.correlator.enabled ? "true" : "false";
   }},
  {{"parallax.correlator.window", "duration",
    "Width of the join windows: the hypervisor's sampling interval."},
   [](config& c, const toml::node& n) {
     return want_duration(n, std::chrono::seconds{1}, c.correlator.window);
   },
   [](const config& c) {
     return quote(render_duration(c.correlator.window));
   }},
  {{"parallax.correlator.allowed-lateness", "duration",
    "How far behind a VM's latest event a window may end and still wait "
    "for data (the watermark's lag)."},
   [](config& c, const toml::node& n) {
     return want_duration(n, std::chrono::milliseconds{0},
                          c.correlator.allowed_lateness);
   },
   [](const config& c) {
     return quote(render_duration(c.correlator.allowed_lateness));
   }},
  {{"parallax.correlator.correction-horizon", "duration",
    "How long after closing a window late data is still joined (its deltas "
    "are sent again, marked correction); older data is dropped, counted."},
   [](config& c, const toml::node& n) {
     return want_duration(n, std::chrono::milliseconds{0},
                          c.correlator.correction_horizon);
   },
   [](const config& c) {
     return quote(render_duration(c.correlator.correction_horizon));
   }},
  {{"parallax.correlator.hold-new-guests", "duration",
    "A new guest's batches usually arrive before the hypervisor has named "
    "its VM: they wait for it, unacknowledged, at most this long in wall "
    "time and in event time, so that they are stored with vm and vm_uuid; "
    "0 stores them at once, without."},
   [](config& c, const toml::node& n) {
     return want_duration(n, std::chrono::milliseconds{0},
                          c.correlator.hold_new_guests);
   },
   [](const config& c) {
     return quote(render_duration(c.correlator.hold_new_guests));
   }},
  {{"parallax.correlator.nice", "integer",
    "Scheduling priority (nice value) of the correlator's own thread and "
    "of the parser's before it, when they are not in the real-time class "
    "(parallax.correlator.rt-priority). Below 0 they run ahead of the rest "
    "of ingest, so a delta does not wait behind the batches of a busy "
    "server; that needs CAP_SYS_NICE (or an RLIMIT_NICE that allows it), "
    "and without it they keep the process's nice and the correlator says "
    "so once."},
   [](config& c, const toml::node& n) {
     return want_int(n, -20, 19, c.correlator.nice);
   },
   [](const config& c) { return fmt::format("{}", c.correlator.nice); }},
  {{"parallax.correlator.rt-priority", "integer",
    "Real-time priority (SCHED_RR, 1-99) of the correlator's own thread and "
    "of the parser's that feeds it; 0 keeps them in the normal class at "
    "parallax.correlator.nice. In the real-time class no normal thread "
    "(the collector, the indexer, searches, other programs) preempts them, "
    "so a delta does not wait while they are descheduled. It needs "
    "CAP_SYS_NICE (or an RLIMIT_RTPRIO that allows it) and a cgroup that "
    "allows real-time threads; without them they run at "
    "parallax.correlator.nice and the correlator says so once."},
   [](config& c, const toml::node& n) {
     return want_int(n, 0, 99, c.correlator.rt_priority);
   },
   [](const config& c) {
     return fmt::format("{}", c.correlator.rt_priority);
   }},
  {{"parallax.correlator.learning-period", "duration",
    "The processes a VM runs in its first period of guest data are its "
    "baseline; a process name never seen then is a rogue process."},
   [](config& c, const toml::node& n) {
     return want_duration(n, std::chrono::milliseconds{0},
                          c.correlator.learning_period);
   },
   [](const config& c) {
     return quote(render_duration(c.correlator.learning_period));
   }},
  {{"parallax.correlator.admin-users", "strings",
    "Users whose processes are never an exception."},
   [](config& c, const toml::node& n) {
     return want_strings(n, {}, c.correlator.admin_users);
   },
   [](const config& c) { return render_strings(c.correlator.admin_users); }},
  {{"parallax.correlator.allowed-users", "strings",
    "Further users allowed to run processes on every VM."},
   [](config& c, const toml::node& n) {
     return want_strings(n, {}, c.correlator.allowed_users);
   },
   [](const config& c) { return render_strings(c.correlator.allowed_users); }},
  {{"parallax.correlator.allowed-processes", "strings",
    "Process names (the kernel's command name) never reported as rogue."},
   [](config& c, const toml::node& n) {
     return want_strings(n, {}, c.correlator.allowed_processes);
   },
   [](const config& c) {
     return render_strings(c.correlator.allowed_processes);
   }},
  {{"parallax.correlator.service-uid-max", "integer",
    "Owners with a uid up to this are service accounts; above it, humans, "
    "whose processes are exceptions unless they are administrators, allowed "
    "users, or service owners of the VM's group "
    "([parallax.correlator.service-owners], below)."},
   [](config& c, const toml::node& n) {
     return want_uint(n, 0, 4'294'967'295ULL, c.correlator.service_uid_max);
   },
   [](const config& c) {
     return fmt::format("{}", c.correlator.service_uid_max);
   }},
  {{"parallax.correlator.unexplained-cpu-pct", "integer",
    "Hypervisor CPU (% of the VM's allocation) the guest's processes may "
    "leave unexplained before a sustained excess is a security exception."},
   [](config& c, const toml::node& n) {
     return want_uint(n, 1, 100, c.correlator.unexplained_cpu_pct);
   },
   [](const config& c) {
     return fmt::format("{}", c.correlator.unexplained_cpu_pct);
   }},
  {{"parallax.publisher.endpoint", "string",
    "ZeroMQ endpoint where deltas, alerts and identity changes are "
    "published (a PUB socket; `parallax tail` subscribes); empty turns "
    "publishing off."},
   [](config& c, const toml::node& n) -> std::string {
     auto s = n.value_exact<std::string>();
     if (s && s->empty()) {
       c.publisher.endpoint.clear();
       return {};
     }
     return want_endpoint(n, c.publisher.endpoint);
   },
   [](const config& c) { return quote(c.publisher.endpoint); }},
  {{"parallax.publisher.high-water-mark", "integer",
    "Messages queued per subscriber. When a subscriber's queue is full the "
    "publisher drops the message (counted; subscribers see a sequence gap) "
    "instead of blocking."},
   [](config& c, const toml::node& n) {
     return want_uint(n, 1, 10'000'000, c.publisher.high_water_mark);
   },
   [](const config& c) {
     return fmt::format("{}", c.publisher.high_water_mark);
   }},
  {{"parallax.search.endpoint", "string",
    "ZeroMQ endpoint where `parallax serve` answers searches (a ROUTER "
    "socket, JSON requests; docs/search.md, \"The search endpoint\"); "
    "empty turns it off."},
   [](config& c, const toml::node& n) -> std::string {
     auto s = n.value_exact<std::string>();
     if (s && s->empty()) {
       c.search.endpoint.clear();
       return {};
     }
     return want_endpoint(n, c.search.endpoint);
   },
   [](const config& c) { return quote(c.search.endpoint); }},
  {{"parallax.search.max-memory", "size",
    "Bytes of rows and aggregates one query may hold at once; a query "
    "beyond it stops with query_limit."},
   [](config& c, const toml::node& n) {
     return want_size(n, std::uint64_t{1} << 20, std::uint64_t{1} << 40,
                      c.search.max_memory);
   },
   [](const config& c) { return render_size(c.search.max_memory); }},
  {{"parallax.search.timeout", "duration",
    "Wall-clock bound of one query; a query beyond it stops with "
    "query_limit."},
   [](config& c, const toml::node& n) {
     return want_duration(n, std::chrono::milliseconds{100},
                          c.search.timeout);
   },
   [](const config& c) { return quote(render_duration(c.search.timeout)); }},
  {{"parallax.search.max-results", "integer",
    "Most rows a query returns (events: the newest); a request's limit may "
    "only lower it."},
   [](config& c, const toml::node& n) {
     return want_uint(n, 1, 100'000'000, c.search.max_results);
   },
   [](const config& c) { return fmt::format("{}", c.search.max_results); }},
  {{"parallax.search.job-ttl", "duration",
    "How long the server keeps the results of a finished `parallax search "
    "--async` job for fetching."},
   [](config& c, const toml::node& n) {
     return want_duration(n, std::chrono::seconds{1}, c.search.job_ttl);
   },
   [](const config& c) { return quote(render_duration(c.search.job_ttl)); }},
};

const std::vector<option_info>& infos() {
  static const auto v = [] {
    std::vector<option_info> out;
    for (const auto& o : table)
      out.push_back(o.info);
    return out;
  }();
  return v;
}

const option* find_option(std::string_view key) {
  for (const auto& o : table)
    if (o.info.key == key)
      return &o;
  return nullptr;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j)
    prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1,
                         prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

error unknown_key(std::string_view key, std::string_view where) {
  const option* best = nullptr;
  std::size_t best_d = 4; // suggest only close matches
  for (const auto& o : table) {
    auto d = edit_distance(key, o.info.key);
    if (d < best_d) {
      best_d = d;
      best = &o;
    }
  }
  auto hint = best ? fmt::format("; did you mean {}?", best->info.key)
                   : std::string{"; `parallax config --example` lists every "
                                 "option"};
  return error{ec::config_unknown_key,
               fmt::format("{}: unknown key ({}){}", key, where, hint)};
}

std::string where(std::string_view origin, const toml::source_region& r) {
  return fmt::format("{}:{}:{}", origin, r.begin.line, r.begin.column);
}

error apply(config& c, std::string_view key, const toml::node& n,
            std::string_view at) {
  auto opt = find_option(key);
  if (!opt)
    return unknown_key(key, at);
  if (auto msg = opt->set(c, n); !msg.empty())
    return error{ec::config_bad_value,
                 fmt::format("{}: {} ({})", key, msg, at)};
  return {};
}

// [parallax.sourcetypes."NAME"] tables: one set of parsing rules each.
error apply_sourcetypes(config& c, const toml::table& tbl,
                        std::string_view origin) {
  for (auto&& [name, node] : tbl) {
    auto base = fmt::format("parallax.sourcetypes.\"{}\"", name.str());
    auto sub = node.as_table();
    if (!sub)
      return error{ec::config_bad_value,
                   fmt::format("{}: expected a table of rules ({})", base,
                               where(origin, node.source()))};
    // A table extends the built-in rules of its sourcetype, if any: the
    // keys it sets replace theirs.
    sourcetype_rules r;
    r.name = name.str();
    for (const auto& x : c.sourcetypes)
      if (x.name == r.name)
        r = x;
    for (auto&& [k, v] : *sub) {
      auto key = fmt::format("{}.{}", base, k.str());
      auto at = where(origin, v.source());
      auto bad = [&](std::string_view expected) {
        return error{ec::config_bad_value,
                     fmt::format("{}: expected {}, got {} ({})", key, expected,
                                 show(v), at)};
      };
      if (k.str() == "time-format" || k.str() == "kv"
          || k.str() == "line-breaker") {
        auto str = v.value_exact<std::string>();
        if (!str)
          return bad("a string");
        (k.str() == "time-format" ? r.time_format
         : k.str() == "kv"        ? r.kv
                                  : r.line_breaker)
          = *str;
      } else if (k.str() == "time-lookahead") {
        auto i = v.value_exact<std::int64_t>();
        if (!i || *i < 1 || *i > 65536)
          return bad("an integer from 1 to 65536");
        r.time_lookahead = static_cast<std::size_t>(*i);
      } else if (k.str() == "sedcmd" || k.str() == "extract"
                 || k.str() == "field-aliases" || k.str() == "calculated") {
        auto& list = k.str() == "sedcmd"          ? r.sedcmd
                     : k.str() == "extract"       ? r.extract
                     : k.str() == "field-aliases" ? r.field_aliases
                                                  : r.calculated;
        list.clear();
        if (auto str = v.value_exact<std::string>()) {
          list.push_back(*str);
        } else if (auto arr = v.as_array()) {
          for (auto&& e : *arr) {
            auto es = e.value_exact<std::string>();
            if (!es)
              return bad("a string or an array of strings");
            list.push_back(*es);
          }
        } else {
          return bad("a string or an array of strings");
        }
      } else {
        return error{ec::config_unknown_key,
                     fmt::format("{}: unknown key ({}); a sourcetype takes "
                                 "time-format, time-lookahead, sedcmd, kv, "
                                 "line-breaker, extract, field-aliases and "
                                 "calculated",
                                 key, at)};
      }
    }
    // Compile now, so a bad regex or format stops the start, naming the key.
    if (auto compiled = compile(r); !compiled)
      return error{compiled.error().code,
                   fmt::format("{} ({})", compiled.error().message,
                               where(origin, node.source()))};
    // The search-time rules too, although only searches apply them.
    if (auto late = search::compile_late_rules(r.name, r.extract,
                                               r.field_aliases, r.calculated);
        !late)
      return error{ec::config_bad_value,
                   fmt::format("{} ({})", late.error().message,
                               where(origin, node.source()))};
    // In place, so the order of the rules survives rendering and parsing.
    auto same = std::find_if(
      c.sourcetypes.begin(), c.sourcetypes.end(),
      [&](const sourcetype_rules& x) { return x.name == r.name; });
    if (same != c.sourcetypes.end())
      *same = std::move(r);
    else
      c.sourcetypes.push_back(std::move(r));
  }
  return {};
}

// Applies every leaf of `tbl`; `prefix` is the dotted path of `tbl`.
error apply_table(config& c, const toml::table& tbl, const std::string& prefix,
                  std::string_view origin) {
  for (auto&& [k, node] : tbl) {
    auto key = prefix.empty() ? std::string{k.str()}
                              : fmt::format("{}.{}", prefix, k.str());
    if (key == "parallax.correlator.service-owners") {
      auto sub = node.as_table();
      if (!sub)
        return error{ec::config_bad_value,
                     fmt::format("{}: expected a table of VM name patterns "
                                 "to arrays of users ({})",
                                 key, where(origin, node.source()))};
      for (auto&& [pattern, users] : *sub) {
        std::vector<std::string> list;
        if (auto msg = want_strings(users, {}, list); !msg.empty())
          return error{ec::config_bad_value,
                       fmt::format("{}.\"{}\": {} ({})", key, pattern.str(),
                                   msg, where(origin, users.source()))};
        std::erase_if(c.correlator.service_owners, [&](const auto& x) {
          return x.first == pattern.str();
        });
        c.correlator.service_owners.emplace_back(std::string{pattern.str()},
                                                 std::move(list));
      }
      continue;
    }
    if (key == "parallax.sourcetypes") {
      auto sub = node.as_table();
      if (!sub)
        return error{ec::config_bad_value,
                     fmt::format("parallax.sourcetypes: expected a table "
                                 "({})",
                                 where(origin, node.source()))};
      if (auto err = apply_sourcetypes(c, *sub, origin))
        return err;
      continue;
    }
    if (auto sub = node.as_table()) {
      if (auto err = apply_table(c, *sub, key, origin))
        return err;
      continue;
    }
    if (auto err = apply(c, key, node, where(origin, node.source())))
      return err;
  }
  return {};
}

error apply_override(config& c, const std::string& ov) {
  auto eq = ov.find('=');
  if (eq == std::string::npos || eq == 0)
    return error{ec::config_bad_value,
                 fmt::format("--set {}: expected key=value", ov)};
  auto key = ov.substr(0, eq);
  auto text = ov.substr(eq + 1);
  if (key.starts_with("parallax.sourcetypes"))
    return error{ec::config_bad_value,
                 fmt::format("--set {}: sourcetype rules are set in the "
                             "config file",
                             key)};
  // A TOML value if it is one ("2", "true", "\"x\""), a string otherwise.
  auto doc = toml::parse("v = " + text);
  if (doc && doc.table().contains("v") && doc.table().size() == 1)
    return apply(c, key, *doc.table().get("v"), "from --set");
  toml::value<std::string> s{text};
  return apply(c, key, s, "from --set");
}

error validate(const config& c) {
  if (c.rollup_interval > c.bucket_span)
    return error{ec::config_bad_value,
                 "parallax.storage.rollup-interval: longer than "
                 "parallax.storage.bucket-span"};
  if (c.wire.max_string_bytes > c.wire.max_frame_bytes)
    return error{ec::config_bad_value,
                 fmt::format("parallax.wire.max-string-bytes: {} exceeds "
                             "parallax.wire.max-frame-bytes ({})",
                             c.wire.max_string_bytes, c.wire.max_frame_bytes)};
  if (!c.http.listen.empty() && c.http.token.empty()) {
    auto host = c.http.listen.substr(0, c.http.listen.rfind(':'));
    if (host != "127.0.0.1" && host != "localhost" && host != "[::1]")
      return error{ec::config_bad_value,
                   fmt::format("parallax.http.listen: \"{}\" is not a "
                               "loopback address, so parallax.http.token "
                               "must be set",
                               c.http.listen)};
  }
  return {};
}

} // namespace

std::span<const option_info> options() {
  return infos();
}

result<config> parse_config(std::string_view text, std::string_view origin,
                            std::span<const std::string> overrides) {
  auto c = config::defaults();
  if (!text.empty()) {
    auto doc = toml::parse(text, origin);
    if (!doc) {
      const auto& e = doc.error();
      return error{ec::config_parse,
                   fmt::format("{}: {}", where(origin, e.source()),
                               e.description())};
    }
    if (auto err = apply_table(c, doc.table(), "", origin))
      return err;
  }
  for (const auto& ov : overrides)
    if (auto err = apply_override(c, ov))
      return err;
  if (auto err = validate(c))
    return err;
  return c;
}

result<config> load_config(const std::optional<std::filesystem::path>& file,
                           std::span<const std::string> overrides) {
  std::string text;
  std::string origin = "(defaults)";
  if (file) {
    std::ifstream in{*file, std::ios::binary};
    if (!in)
      return error{ec::config_parse,
                   fmt::format("{}: cannot read the config file",
                               file->string())};
    std::ostringstream ss;
    ss << in.rdbuf();
    text = ss.str();
    origin = file->string();
  }
  return parse_config(text, origin, overrides);
}

std::string render_config(const config& c) {
  std::string out = "# Parallax configuration. Every option, its meaning and "
                    "its value.\n"
                    "# Generated by `parallax config --example`; keys are "
                    "parallax.<component>.<option>.\n";
  std::string section;
  for (const auto& o : table) {
    auto key = o.info.key;
    auto dot = key.rfind('.');
    auto sec = std::string{key.substr(0, dot)};
    if (sec != section) {
      out += fmt::format("\n[{}]\n", sec);
      section = sec;
    }
    // Wrap the documentation at ~76 columns.
    std::string line = "#";
    std::istringstream words{std::string{o.info.doc}};
    for (std::string w; words >> w;) {
      if (line.size() + 1 + w.size() > 78) {
        out += line + "\n";
        line = "#";
      }
      line += " " + w;
    }
    out += line + "\n";
    out += fmt::format("# type: {}\n", o.info.type);
    out += fmt::format("{} = {}\n", key.substr(dot + 1), o.get(c));
  }
  out += "\n# Service owners per VM group: a VM name pattern (* matches "
         "anything) and\n# the users whose processes are expected there, "
         "e.g.\n#\n# [parallax.correlator.service-owners]\n"
         "# \"web-*\" = [\"www-data\", \"nginx\"]\n";
  if (!c.correlator.service_owners.empty()) {
    out += "\n[parallax.correlator.service-owners]\n";
    for (const auto& [pattern, users] : c.correlator.service_owners)
      out += fmt::format("{} = {}\n", quote(pattern), render_strings(users));
  }
  out += "\n# Parsing rules per sourcetype, one table each. A sourcetype "
         "without rules\n# gets the defaults shown in this example "
         "(uncomment to use):\n#\n"
         "# [parallax.sourcetypes.\"os:auth\"]\n"
         "# time-format = \"auto\"    # auto, syslog, rfc3339, epoch, apache, "
         "strptime:FORMAT\n"
         "# time-lookahead = 128    # bytes of raw text searched for a "
         "timestamp\n"
         "# sedcmd = []             # e.g. ['s/password=\\S+/password=***/g'] "
         "(RE2)\n"
         "# kv = \"auto\"             # auto (a=b, a=\"b c\", a: b), equals "
         "(a=b only), none\n"
         "# line-breaker = \"\"       # RE2; a line matching it starts an "
         "event (parallax ingest)\n"
         "#\n# and the search-time rules, applied when a search reads an "
         "event (changing\n# them needs no re-indexing; docs/search.md):\n#\n"
         "# extract = []            # RE2 with named groups over _raw, e.g. "
         "['user (?<user>\\S+)']\n"
         "# field-aliases = []      # \"existing=alias\", e.g. "
         "[\"src_ip=client_ip\"]\n"
         "# calculated = []         # \"name=EXPRESSION\" (eval), e.g. "
         "[\"kb=bytes / 1024\"]\n";
  for (const auto& r : c.sourcetypes) {
    out += fmt::format("\n[parallax.sourcetypes.{}]\n", quote(r.name));
    out += fmt::format("time-format = {}\n", quote(r.time_format));
    out += fmt::format("time-lookahead = {}\n", r.time_lookahead);
    out += "sedcmd = [";
    for (std::size_t i = 0; i < r.sedcmd.size(); ++i)
      out += (i ? ", " : "") + quote(r.sedcmd[i]);
    out += "]\n";
    out += fmt::format("kv = {}\n", quote(r.kv));
    out += fmt::format("line-breaker = {}\n", quote(r.line_breaker));
    out += fmt::format("extract = {}\n", render_strings(r.extract));
    out += fmt::format("field-aliases = {}\n", render_strings(r.field_aliases));
    out += fmt::format("calculated = {}\n", render_strings(r.calculated));
  }
  return out;
}

} // namespace parallax
