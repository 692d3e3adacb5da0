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

/// Width of a storage time bucket. Fixed when a store is created.
inline constexpr std::chrono::milliseconds storage_bucket_span
  = std::chrono::hours{1};

/// Built-in search-time rules per sourcetype (docs/search.md, "Search-time
/// fields"): a common model over the sources of schemas/sourcetypes.md.
/// A `[parallax.sourcetypes."NAME"]` table extends them; the keys it sets
/// replace these.
struct builtin_search_rules {
  std::string_view sourcetype;
  std::string_view extract[3];
  std::string_view aliases[2];
  std::string_view calculated[1];
};
inline constexpr builtin_search_rules search_rules[] = {
  // The hypervisor's view of a VM's memory as a share of its maximum, as
  // the guest's os:system reports its own.
  {"hv:libvirt:vm",
   {},
   {},
   {"mem_used_pct=round(mem_rss_bytes * 100 / mem_max_bytes, 2)"}},
  {"hv:vsphere",
   {},
   {},
   {"mem_used_pct=round(mem_consumed_bytes * 100 / mem_allocated_bytes, 2)"}},
  {"os:process", {}, {"command=process_name"}, {}},
  // Who did it, and from where (sudo's acting user; sshd's login).
  {"os:auth",
   {R"(sudo:\s+(?<user>[^\s:]+) : )",
    R"((?:Accepted|Failed) \S+ for (?:invalid user )?(?<user>\S+) from (?<src_ip>[0-9a-fA-F.:]+))",
    R"(su(?:\[\d+\])?: .*session opened for user (?<run_as>[^\s(]+))"},
   {"USER=run_as"},
   {}},
};

/// Events per stored block. A block is compressed and decoded whole, so
/// this trades compression (larger) against reading a few events, as an
/// indexed search does (smaller): see `parallax bench search
/// --block-events`.
inline constexpr std::uint64_t storage_block_events = 128;

/// A write bringing a bucket this many distinct terms or more stores its
/// postings as one sorted run instead of a key per term: a busy commit
/// (~75,000 terms per 150,000 events) then costs a few hundred puts, not
/// 75,000. A lookup seeks once per run of a segment, so small commits keep
/// per-term keys. As storage::store_options' default.
inline constexpr std::uint64_t storage_run_min_terms = 16384;

/// Width of a metric rollup interval.
inline constexpr std::chrono::milliseconds storage_rollup_interval
  = std::chrono::minutes{1};

/// Buckets that ended longer ago than this are dropped whole; 0 keeps all.
inline constexpr std::chrono::milliseconds storage_retention{0};

/// A bucket that took no events for this long is compacted (store::compact);
/// 0 turns compaction off.
inline constexpr std::chrono::milliseconds storage_compact_after
  = std::chrono::seconds{2};

/// Where the collector accepts batch frames (ZeroMQ ROUTER).
inline constexpr std::string_view collector_endpoint = "tcp://127.0.0.1:7400";

/// Bytes of decoded frames that may wait for their commit; beyond this the
/// collector takes no more frames but agents' small ones (clients see
/// slower acks).
inline constexpr std::uint64_t collector_max_inflight_bytes = 64u << 20;
/// Frames that keep flowing while the credit is spent: an agent's batch of
/// a poll is a few KiB (the simulated fleet's: 7.7 KiB median, 14 KiB at
/// the 99th percentile), a hypervisor poller's one per host, more (the
/// simulated KVM host's 67 VMs: 77 KB, vCenter's: 31 KB); a bulk sender's
/// 1000 events, ~220 KiB. At 64 KiB, the KVM polls waited with the bulk:
/// 86 of 180 more than 50 ms in a run of `parallax bench correlate`.
inline constexpr std::uint64_t collector_live_frame_bytes = 128u << 10;

/// How far in the future an event time may lie (clock skew allowance);
/// later times, and times before 1970, get the batch rejected.
inline constexpr std::chrono::milliseconds collector_max_future
  = std::chrono::hours{24};

/// Wire-format limits a receiver enforces (see schemas/README.md).
inline constexpr std::uint64_t wire_max_frame_bytes = 8u << 20;
inline constexpr std::uint64_t wire_max_events = 100'000;
inline constexpr std::uint64_t wire_max_fields = 256;
inline constexpr std::uint64_t wire_max_string_bytes = 512u << 10;
inline constexpr std::uint64_t wire_max_name_bytes = 256;

/// `parallax agent`: the server it sends to, how often it samples, which
/// inputs run, which root holds proc/ and sys/ (tests use fixture trees).
inline constexpr std::string_view agent_server = "tcp://127.0.0.1:7400";
inline constexpr std::chrono::milliseconds agent_interval
  = std::chrono::seconds{10};
inline constexpr std::string_view agent_inputs[]
  = {"processes", "system", "identity", "logs"};
inline constexpr std::string_view agent_root = "/";
/// Empty: `<data-dir>/agent`.
inline constexpr std::string_view agent_state_dir = "";
/// Unacknowledged batches kept on disk across restarts and outages; beyond
/// this the oldest are dropped (counted and logged).
inline constexpr std::uint64_t agent_spool_max_bytes = 64u << 20;
/// Log files the agent tails (globs; missing files are skipped).
inline constexpr std::string_view agent_auth_logs[]
  = {"/var/log/auth.log", "/var/log/secure"};
inline constexpr std::string_view agent_syslog_logs[]
  = {"/var/log/syslog", "/var/log/messages"};
inline constexpr std::string_view agent_cron_logs[]
  = {"/var/log/cron.log", "/var/log/cron"};
/// Identity (hostname, NICs, BIOS UUID) is sent at start, on change, and at
/// least this often.
inline constexpr std::chrono::milliseconds agent_identity_interval
  = std::chrono::hours{1};
inline constexpr std::string_view agent_index = "main";

/// libvirt connections `parallax serve` polls (none by default) and how often.
inline constexpr std::chrono::milliseconds libvirt_interval
  = std::chrono::seconds{20};

/// The HTTP endpoint (collectd write_http JSON at /collectd). Empty: off.
/// Anything but a loopback address needs parallax.http.token.
inline constexpr std::string_view http_listen = "127.0.0.1:7480";

/// The web app's files (docs/web.md). Empty: the source tree's web/
/// folder, compiled into http_endpoint.cpp (pipeline/CMakeLists.txt), so
/// the example config does not depend on where the tree is.
inline constexpr std::string_view http_web_root = "";

/// Where deltas, alerts and identity changes are published (ZeroMQ PUB;
/// schemas/README.md, "Published messages"). Empty: off.
inline constexpr std::string_view publisher_endpoint = "tcp://127.0.0.1:7401";
/// Messages queued per subscriber before the publisher drops (and counts)
/// rather than block.
inline constexpr std::uint64_t publisher_high_water_mark = 10'000;

/// The search endpoint of `parallax serve` (ZeroMQ ROUTER, JSON requests;
/// docs/search.md, "The search endpoint"). Empty: off.
inline constexpr std::string_view search_endpoint = "tcp://127.0.0.1:7402";
/// Bytes of rows and aggregates one query may hold at once.
inline constexpr std::uint64_t search_max_memory = std::uint64_t{512} << 20;
/// Wall-clock bound of one query.
inline constexpr std::chrono::milliseconds search_timeout
  = std::chrono::seconds{60};
/// Most rows a query returns (a request's limit may only lower it).
inline constexpr std::uint64_t search_max_results = 10'000;
/// How long a finished `--async` search job keeps its results.
inline constexpr std::chrono::milliseconds search_job_ttl
  = std::chrono::minutes{10};

/// The correlator: windows of the hypervisor interval, how late data may
/// come, how long closed windows take corrections, how long a VM's
/// processes are learned, who may run processes, and how much hypervisor
/// CPU the guest's processes may leave unexplained.
inline constexpr std::chrono::milliseconds correlator_window
  = std::chrono::seconds{20};
inline constexpr std::chrono::milliseconds correlator_allowed_lateness
  = std::chrono::seconds{30};
inline constexpr std::chrono::milliseconds correlator_correction_horizon
  = std::chrono::minutes{5};
/// Two windows: the hypervisor names a new VM within one poll.
inline constexpr std::chrono::milliseconds correlator_hold_new_guests
  = std::chrono::seconds{40};
/// The correlator's thread (and the parser's that feeds it) runs ahead of
/// the rest of ingest (the collector at nice 0, the indexer at 15); below 0
/// needs CAP_SYS_NICE or an RLIMIT_NICE that allows it.
inline constexpr int correlator_nice = -10;
/// Better still, in the real-time class (SCHED_RR) at its lowest priority:
/// no thread of the normal class preempts it, every other real-time thread
/// (the kernel's) still does. Needs CAP_SYS_NICE or an RLIMIT_RTPRIO that
/// allows it, and a cgroup that allows real-time threads; else the nice.
inline constexpr int correlator_rt_priority = 1;
/// While more batches wait, the drift work of a window-closing batch (a
/// third of its time) waits this long at most behind them: its deltas are
/// out already, and the drift alerts' target is 10 ms.
inline constexpr std::chrono::microseconds correlator_drift_defer{3000};
inline constexpr std::chrono::milliseconds correlator_learning_period
  = std::chrono::minutes{10};
inline constexpr std::string_view correlator_admin_users[] = {"root"};
inline constexpr std::uint64_t correlator_service_uid_max = 999;
inline constexpr std::uint64_t correlator_unexplained_cpu_pct = 10;

} // namespace parallax::defaults
