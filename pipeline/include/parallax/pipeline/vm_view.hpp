#pragma once

// The per-VM views (issue 7): the data behind the web API of docs/web.md
// and `parallax vm`, built from the store with the search engine only, so
// that what a page shows is what `parallax search` finds. Every function
// runs a few queries of docs/search.md's language on the calling thread;
// each query names `vm="NAME"` and its sourcetypes, terms the keyword index
// answers, so only that VM's events are read.
//
// Where the data comes from (schemas/sourcetypes.md):
// - hypervisor samples: `hv:libvirt:vm` and `hv:vsphere` (host, state,
//   cpu_pct, cpu_ready_pct, the search-time field mem_used_pct);
// - the guest: `os:system` (mem_used_pct, cpu_busy_pct, cpu_steal_pct,
//   cpus, mem_total_bytes), `os:process`, `os:auth`/`os:syslog`/`os:cron`;
// - the correlator: `parallax:delta`, `parallax:alert`, `parallax:identity`.
//
// Caveats: `base` must carry the configuration's search-time schema
// (search_options_of(cfg)), else `mem_used_pct` of the hypervisor samples
// does not exist. Times in the structs are epoch seconds.

#include "parallax/pipeline/search.hpp"
#include "parallax/schemas/error.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace parallax::storage {
class store;
}

namespace parallax::vm_view {

using json = nlohmann::ordered_json;
using number = std::optional<double>;

/// The time range of a view, [earliest, latest) in ns, and the most bins a
/// series may have.
struct range {
  time_ns earliest = 0;
  time_ns latest = 0;
  std::size_t points = 720;
};

/// The span of a series' bins in seconds: the smallest of 20 s, 30 s, 1, 2,
/// 5, 10, 15, 30 min, 1, 2, 3, 6, 12 h, 1 d that gives at most `points`
/// epoch-aligned bins over the range (20 s is the hypervisor's sampling
/// interval: finer bins would be mostly empty).
std::int64_t span_for(const range& r);

/// One hypervisor-minus-guest delta (a `parallax:delta` event).
struct delta {
  number hv, guest, rel_diff;
  std::string unit;
  std::string metric; ///< mem_used, cpu, ... (not in its JSON: the key says)
};

/// One alert event (`parallax:alert`).
struct alert {
  std::string id, kind, state, severity, metric, message;
  std::string process, user; ///< empty: not about a process
  std::optional<std::int64_t> pid;
  double time = 0;
};

/// A VM in the fleet list.
struct vm_summary {
  std::string vm, vm_uuid, host, state; ///< empty: unknown
  number confidence;                    ///< newest parallax:identity
  number last_seen;                     ///< newest sample of either side
  std::optional<delta> mem_delta, cpu_delta;
  std::vector<alert> open_alerts;
};

struct fleet {
  std::vector<vm_summary> vms; ///< by name
  double time = 0;             ///< when the answer was made
};

/// One process as its newest sample shows it.
struct process_info {
  std::int64_t pid = 0;
  std::string name, user, args;
  number uid, cpu_pct, rss_bytes, start_time;
  bool non_admin = false, rogue = false;
};

/// Named series over common bins.
struct series {
  std::vector<double> time; ///< bin starts
  std::vector<std::pair<std::string, std::vector<number>>> columns;
};

struct vm_detail {
  std::string vm, vm_uuid, host, state;
  double earliest = 0, latest = 0;
  std::int64_t span = 0;
  std::vector<process_info> processes; ///< by CPU, descending
  series chart; ///< hv_mem_pct, guest_mem_pct, hv_cpu_pct, guest_cpu_pct,
                ///< ready_pct, steal_pct
  std::vector<alert> alerts; ///< oldest first
  std::vector<delta> deltas; ///< the newest mem_used and cpu in the range
};

struct log_line {
  double time = 0;
  std::string sourcetype, raw;
};

struct process_detail {
  process_info info;
  double earliest = 0, latest = 0;
  std::int64_t span = 0;
  series chart; ///< cpu_pct (of the VM), mem_pct (of the guest's memory),
                ///< rss_bytes
  std::vector<log_line> logs; ///< newest first, at most 50
};

struct process_host {
  std::string vm, host;
  std::vector<std::int64_t> pids;
  number cpu_share, mem_share; ///< 0..1
};

struct process_hosts {
  std::string name;
  std::vector<process_host> vms; ///< by VM name
};

/// The fleet as of [now + window, now) (`window` negative, e.g. -10 min).
result<fleet> list_vms(const storage::store& st, const search::options& base,
                       time_ns now, time_ns window);

/// One VM over `r`; nullopt when no event of the store names the VM.
result<std::optional<vm_detail>>
vm_page(const storage::store& st, const search::options& base, time_ns now,
        std::string_view vm, const range& r);

/// One process of a VM over `r`; nullopt when the VM has no such pid.
result<std::optional<process_detail>>
process_page(const storage::store& st, const search::options& base,
             time_ns now, std::string_view vm, std::int64_t pid,
             const range& r);

/// Every VM that ran a process called `name` in [now + window, now).
result<process_hosts> process_fleet(const storage::store& st,
                                    const search::options& base, time_ns now,
                                    std::string_view name, time_ns window);

/// The VMs the store knows: every `parallax:identity` event's VM, and the
/// VMs of hypervisor samples in the last day. Sorted.
result<std::vector<std::string>> known_vms(const storage::store& st,
                                           const search::options& base,
                                           time_ns now);

/// `"text"` quoted for a query (backslash and quote escaped).
std::string quote(std::string_view text);

json to_json(const delta& d);
json to_json(const alert& a);
json to_json(const vm_summary& v);
json to_json(const fleet& f);
json to_json(const process_info& p);
json to_json(const series& s);
json to_json(const vm_detail& v);
json to_json(const process_detail& p);
json to_json(const process_hosts& p);

} // namespace parallax::vm_view
