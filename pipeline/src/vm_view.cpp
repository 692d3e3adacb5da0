#include "parallax/pipeline/vm_view.hpp"

#include "parallax/storage/store.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <set>
#include <thread>

#include <fmt/format.h>

namespace parallax::vm_view {

namespace {

constexpr time_ns ns_per_s = 1'000'000'000;

// The hypervisor's per-VM samples (not its per-NIC or per-disk ones).
constexpr std::string_view hv_samples
  = "(sourcetype=hv:libvirt:vm OR sourcetype=hv:vsphere)";

double seconds(time_ns t) {
  return static_cast<double>(t) / 1e9;
}

// Runs `text` over [earliest, latest) with the base options. Aggregations
// map their buckets on up to 4 threads (partials merge in any order):
// a chart of a day reads a few thousand events spread over every block of
// the day, and the decoding is what costs.
result<search::results> query(const storage::store& st,
                              const search::options& base, time_ns now,
                              const std::string& text, time_ns earliest,
                              time_ns latest) {
  auto opts = base;
  opts.earliest = std::max(opts.earliest, earliest);
  opts.latest = std::min(opts.latest, latest);
  auto threads = std::min(std::thread::hardware_concurrency(), 4u);
  auto q = search::parse(text, now);
  if (!q)
    return q.error();
  auto p = search::plan::make(st, std::move(*q), opts);
  if (!p)
    return p.error();
  const auto& buckets = p->buckets();
  if (p->events_mode() || threads < 2 || buckets.size() < 2)
    return search::run(st, text, opts, now);
  std::vector<search::partial> parts(buckets.size());
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t i; (i = next.fetch_add(1)) < buckets.size();)
      parts[i] = p->map(st, buckets[i]);
  };
  std::vector<std::thread> helpers;
  for (unsigned i = 1; i < threads && i < buckets.size(); ++i)
    helpers.emplace_back(work);
  work();
  for (auto& t : helpers)
    t.join();
  search::partial total;
  for (auto& part : parts) {
    p->merge(total, std::move(part));
    if (total.err)
      return total.err;
  }
  search::results out;
  out.stats = total.stats;
  out.stats.buckets = buckets.size();
  out.events = false;
  auto rows = p->finish(std::move(total));
  if (!rows)
    return rows.error();
  out.rows = std::move(*rows);
  out.columns = search::columns_of(out.rows);
  return out;
}

number num(const search::row& r, std::string_view name) {
  auto v = r.get(name);
  if (!v)
    return std::nullopt;
  auto n = search::to_number(*v);
  if (n && !std::isfinite(*n))
    return std::nullopt;
  return n;
}

std::string text(const search::row& r, std::string_view name) {
  auto v = r.get(name);
  return v ? search::to_text(*v) : std::string{};
}

// Event times (start_time, window_*) are stored in ns; the API speaks
// seconds. Values below 1e12 are taken as seconds already.
number epoch_seconds(number n) {
  if (n && std::abs(*n) > 1e12)
    return *n / 1e9;
  return n;
}

alert alert_of(const search::row& r) {
  alert a;
  a.id = text(r, "id");
  a.kind = text(r, "kind");
  a.state = text(r, "state");
  a.severity = text(r, "severity");
  a.metric = text(r, "metric");
  a.message = text(r, "message");
  a.process = text(r, "process");
  a.user = text(r, "user");
  if (auto p = num(r, "pid"))
    a.pid = static_cast<std::int64_t>(*p);
  a.time = num(r, "_time").value_or(0);
  return a;
}

delta delta_of(const search::row& r) {
  return {num(r, "hv_value"), num(r, "guest_value"), num(r, "rel_diff"),
          text(r, "unit"), text(r, "metric")};
}

// Open alerts: the newest event of each id is not `resolved`, among the
// alerts of the day before `latest` (or of `earliest` on, if earlier).
// Each with its VM.
result<std::vector<std::pair<std::string, alert>>>
open_alerts(const storage::store& st,
                                       const search::options& base,
                                       time_ns now, std::string_view vm,
                                       time_ns earliest, time_ns latest) {
  auto q = fmt::format("sourcetype=parallax:alert{} | dedup id | search "
                       "state!=resolved",
                       vm.empty() ? "" : " vm=" + quote(vm));
  auto res = query(st, base, now, q, std::min(earliest, latest - 86400 * ns_per_s),
                   latest);
  if (!res)
    return res.error();
  std::vector<std::pair<std::string, alert>> out;
  for (const auto& r : res->rows)
    out.emplace_back(text(r, "vm"), alert_of(r));
  return out;
}

// Common bins of a chart: epoch-aligned starts from the range's earliest.
series bins_of(const range& r, std::int64_t span) {
  series s;
  auto lo = static_cast<std::int64_t>(
    std::floor(seconds(r.earliest) / static_cast<double>(span)))
            * span;
  for (auto t = lo; t * ns_per_s < r.latest; t += span)
    s.time.push_back(static_cast<double>(t));
  return s;
}

// Adds the columns `names` of a timechart's rows to `s`, by bin start.
void add_columns(series& s, const search::results& res,
                 std::initializer_list<std::string_view> names) {
  std::map<std::int64_t, const search::row*> by_time;
  for (const auto& r : res.rows)
    if (auto t = num(r, "_time"))
      by_time[std::llround(*t)] = &r;
  for (auto name : names) {
    std::vector<number> col(s.time.size());
    for (std::size_t i = 0; i < s.time.size(); ++i) {
      auto it = by_time.find(std::llround(s.time[i]));
      if (it != by_time.end())
        col[i] = num(*it->second, name);
    }
    s.columns.emplace_back(std::string{name}, std::move(col));
  }
}

// Integral numbers without a fraction (as the search endpoint writes them).
json num_json(double n) {
  if (std::isfinite(n) && n == std::trunc(n) && std::abs(n) < 9e15)
    return json(static_cast<std::int64_t>(n));
  return json(n);
}

json num_json(number n) {
  return n ? num_json(*n) : json(nullptr);
}

json str_json(const std::string& s) {
  return s.empty() ? json(nullptr) : json(s);
}

} // namespace

std::string quote(std::string_view t) {
  std::string out = "\"";
  for (char c : t) {
    if (c == '"' || c == '\\')
      out += '\\';
    out += c;
  }
  return out + '"';
}

std::int64_t span_for(const range& r) {
  static constexpr std::int64_t spans[]
    = {20,   30,    60,    120,   300,   600,   900,  1800,
       3600, 7200,  10800, 21600, 43200, 86400, 604800};
  auto points = std::max<std::size_t>(r.points, 1);
  for (auto s : spans) {
    auto lo = static_cast<std::int64_t>(
      std::floor(seconds(r.earliest) / static_cast<double>(s)));
    auto hi = static_cast<std::int64_t>(
      std::ceil(seconds(r.latest) / static_cast<double>(s)));
    if (static_cast<std::size_t>(std::max<std::int64_t>(hi - lo, 0)) <= points)
      return s;
  }
  return spans[std::size(spans) - 1];
}

result<fleet> list_vms(const storage::store& st, const search::options& base,
                       time_ns now, time_ns window) {
  auto earliest = now + std::min<time_ns>(window, 0);
  std::map<std::string, vm_summary> vms;
  auto at = [&](const search::row& r) -> vm_summary& {
    auto name = text(r, "vm");
    auto& v = vms[name];
    v.vm = name;
    if (auto t = num(r, "_time"))
      v.last_seen = std::max(v.last_seen.value_or(0), *t);
    if (v.vm_uuid.empty())
      v.vm_uuid = text(r, "vm_uuid");
    return v;
  };
  auto hv = query(st, base, now,
                  fmt::format("{} vm=* | dedup vm", hv_samples), earliest,
                  now);
  if (!hv)
    return hv.error();
  for (const auto& r : hv->rows) {
    auto& v = at(r);
    v.host = text(r, "host");
    v.state = text(r, "state");
    if (v.state.empty() && text(r, "sourcetype") == "hv:vsphere")
      v.state = "running"; // vCenter sends counters of powered-on VMs only
  }
  auto guest = query(st, base, now, "sourcetype=os:system vm=* | dedup vm",
                     earliest, now);
  if (!guest)
    return guest.error();
  for (const auto& r : guest->rows)
    at(r);
  auto deltas = query(st, base, now,
                      "sourcetype=parallax:delta (metric=mem_used OR "
                      "metric=cpu) | dedup vm, metric",
                      earliest, now);
  if (!deltas)
    return deltas.error();
  for (const auto& r : deltas->rows) {
    auto& v = at(r);
    (text(r, "metric") == "cpu" ? v.cpu_delta : v.mem_delta) = delta_of(r);
  }
  // Identity changes are rare: look at every one up to now.
  auto ids = query(st, base, now,
                   "sourcetype=parallax:identity vm=* | dedup vm", 0, now);
  if (!ids)
    return ids.error();
  for (const auto& r : ids->rows)
    if (auto it = vms.find(text(r, "vm")); it != vms.end())
      it->second.confidence = num(r, "confidence");
  auto alerts = open_alerts(st, base, now, "", earliest, now);
  if (!alerts)
    return alerts.error();
  for (auto& [vm, a] : *alerts)
    if (auto it = vms.find(vm); it != vms.end())
      it->second.open_alerts.push_back(std::move(a));
  fleet f;
  f.time = seconds(now);
  for (auto& [name, v] : vms) {
    if (name.empty())
      continue;
    std::sort(v.open_alerts.begin(), v.open_alerts.end(),
              [](const alert& a, const alert& b) { return a.time > b.time; });
    f.vms.push_back(std::move(v));
  }
  return f;
}

result<std::optional<vm_detail>>
vm_page(const storage::store& st, const search::options& base, time_ns now,
        std::string_view vm, const range& r) {
  auto vmq = "vm=" + quote(vm);
  vm_detail d;
  d.vm = std::string{vm};
  d.earliest = seconds(r.earliest);
  d.latest = seconds(r.latest);
  d.span = span_for(r);
  // Host and state: the newest hypervisor sample up to `latest`.
  auto hv = query(st, base, now,
                  fmt::format("{} {} | head 1", vmq, hv_samples),
                  std::numeric_limits<time_ns>::min(), r.latest);
  if (!hv)
    return hv.error();
  if (hv->rows.empty()) {
    // Does any event at all name the VM (a guest without hypervisor)?
    auto any = query(st, base, now, vmq + " | head 1",
                     std::numeric_limits<time_ns>::min(),
                     std::numeric_limits<time_ns>::max());
    if (!any)
      return any.error();
    if (any->rows.empty())
      return std::optional<vm_detail>{};
    d.vm_uuid = text(any->rows.front(), "vm_uuid");
  } else {
    d.host = text(hv->rows.front(), "host");
    d.state = text(hv->rows.front(), "state");
    if (d.state.empty())
      d.state = "running";
    if (auto u = text(hv->rows.front(), "vm_uuid"); !u.empty())
      d.vm_uuid = u;
  }
  // Series.
  d.chart = bins_of(r, d.span);
  // One query for both sides: their samples sit in the same blocks, which
  // are then decoded once. mem_used_pct exists on both sides (the
  // hypervisor's as a search-time field) and is split by sourcetype.
  auto both = query(
    st, base, now,
    fmt::format("{} (sourcetype=hv:libvirt:vm OR sourcetype=hv:vsphere OR "
                "sourcetype=os:system) | eval guest=if(sourcetype=\"os:system\", "
                "1, null()), hv_mem=if(isnull(guest), mem_used_pct, null()), "
                "guest_mem=if(isnull(guest), null(), mem_used_pct) | timechart "
                "span={}s avg(hv_mem) as hv_mem_pct, avg(guest_mem) as "
                "guest_mem_pct, avg(cpu_pct) as hv_cpu_pct, avg(cpu_busy_pct) "
                "as guest_cpu_pct, avg(cpu_ready_pct) as ready_pct, "
                "avg(cpu_steal_pct) as steal_pct",
                vmq, d.span),
    r.earliest, r.latest);
  if (!both)
    return both.error();
  add_columns(d.chart, *both,
              {"hv_mem_pct", "guest_mem_pct", "hv_cpu_pct", "guest_cpu_pct",
               "ready_pct", "steal_pct"});
  // Processes: the newest sample of each pid in the 2 minutes before the
  // VM's newest process sample in the range. Live, that is the 2 minutes
  // before `latest`, tried first.
  auto process_query = vmq + " sourcetype=os:process | dedup pid | sort "
                             "-cpu_pct, pid";
  auto procs = query(st, base, now, process_query,
                     std::max(r.earliest, r.latest - 120 * ns_per_s),
                     r.latest);
  if (!procs)
    return procs.error();
  if (procs->rows.empty()) {
    auto newest = query(st, base, now,
                        vmq + " sourcetype=os:process | head 1", r.earliest,
                        r.latest);
    if (!newest)
      return newest.error();
    if (!newest->rows.empty()) {
      auto t = num(newest->rows.front(), "_time").value_or(seconds(r.latest));
      auto hi = static_cast<time_ns>(std::llround(t * 1e9)) + 1;
      procs = query(st, base, now, process_query,
                    std::max(r.earliest, hi - 120 * ns_per_s), hi);
      if (!procs)
        return procs.error();
    }
  }
  for (const auto& row : procs->rows) {
    process_info p;
    p.pid = static_cast<std::int64_t>(num(row, "pid").value_or(0));
    p.name = text(row, "process_name");
    if (p.name.empty())
      p.name = text(row, "command");
    p.user = text(row, "user");
    p.args = text(row, "args");
    p.uid = num(row, "uid");
    p.cpu_pct = num(row, "cpu_pct");
    p.rss_bytes = num(row, "rss_bytes");
    p.start_time = epoch_seconds(num(row, "start_time"));
    d.processes.push_back(std::move(p));
  }
  auto open = open_alerts(st, base, now, vm, r.earliest, r.latest);
  if (!open)
    return open.error();
  for (const auto& [_, a] : *open) {
    if (!a.pid)
      continue;
    for (auto& p : d.processes)
      if (p.pid == *a.pid) {
        p.non_admin |= a.kind == "non_admin_process";
        p.rogue |= a.kind == "rogue_process";
      }
  }
  auto alerts = query(st, base, now, vmq + " sourcetype=parallax:alert",
                      r.earliest, r.latest);
  if (!alerts)
    return alerts.error();
  for (auto it = alerts->rows.rbegin(); it != alerts->rows.rend(); ++it)
    d.alerts.push_back(alert_of(*it));
  // The newest of each (not with dedup: that would read every delta of the
  // range).
  for (auto metric : {"mem_used", "cpu"}) {
    auto deltas = query(st, base, now,
                        fmt::format("{} sourcetype=parallax:delta metric={} "
                                    "| head 1",
                                    vmq, metric),
                        r.earliest, r.latest);
    if (!deltas)
      return deltas.error();
    for (const auto& row : deltas->rows)
      d.deltas.push_back(delta_of(row));
  }
  return std::optional{std::move(d)};
}

result<std::optional<process_detail>>
process_page(const storage::store& st, const search::options& base,
             time_ns now, std::string_view vm, std::int64_t pid,
             const range& r) {
  auto vmq = "vm=" + quote(vm);
  // The newest sample of the pid up to `latest` names its command, an
  // indexed field that narrows the series' query to this process's events.
  auto newest = query(
    st, base, now,
    fmt::format("{} sourcetype=os:process pid={} | head 1", vmq, pid),
    std::numeric_limits<time_ns>::min(), r.latest);
  if (!newest)
    return newest.error();
  if (newest->rows.empty())
    return std::optional<process_detail>{};
  const auto& row = newest->rows.front();
  process_detail d;
  d.info.pid = pid;
  d.info.name = text(row, "process_name");
  auto command = text(row, "command");
  if (d.info.name.empty())
    d.info.name = command;
  d.info.user = text(row, "user");
  d.info.args = text(row, "args");
  d.info.uid = num(row, "uid");
  d.info.cpu_pct = num(row, "cpu_pct");
  d.info.rss_bytes = num(row, "rss_bytes");
  d.info.start_time = epoch_seconds(num(row, "start_time"));
  d.earliest = seconds(r.earliest);
  d.latest = seconds(r.latest);
  d.span = span_for(r);
  // The guest's size: CPUs and memory of its newest os:system sample.
  auto sys = query(st, base, now, vmq + " sourcetype=os:system | head 1",
                   std::numeric_limits<time_ns>::min(), r.latest);
  if (!sys)
    return sys.error();
  number cpus, mem_total;
  if (!sys->rows.empty()) {
    cpus = num(sys->rows.front(), "cpus");
    mem_total = num(sys->rows.front(), "mem_total_bytes");
  }
  d.chart = bins_of(r, d.span);
  auto s = query(st, base, now,
                 fmt::format("{} sourcetype=os:process{} pid={} | timechart "
                             "span={}s avg(cpu_pct) as cpu_pct, avg(rss_bytes) "
                             "as rss_bytes",
                             vmq,
                             command.empty() ? "" : " command=" + quote(command),
                             pid, d.span),
                 r.earliest, r.latest);
  if (!s)
    return s.error();
  add_columns(d.chart, *s, {"cpu_pct", "rss_bytes"});
  auto& cpu = d.chart.columns[0].second;
  auto rss = d.chart.columns[1].second;
  for (auto& v : cpu)
    if (v)
      v = cpus && *cpus > 0 ? number{*v / *cpus} : std::nullopt;
  std::vector<number> mem(rss.size());
  for (std::size_t i = 0; i < rss.size(); ++i)
    if (rss[i] && mem_total && *mem_total > 0)
      mem[i] = *rss[i] * 100.0 / *mem_total;
  d.chart.columns.insert(d.chart.columns.begin() + 1,
                         {"mem_pct", std::move(mem)});
  // Log lines that mention the process by name or pid.
  auto terms = d.info.name.empty()
                 ? std::to_string(pid)
                 : fmt::format("({} OR {})", quote(d.info.name), pid);
  auto logs = query(st, base, now,
                    fmt::format("{} (sourcetype=os:auth OR sourcetype=os:syslog "
                                "OR sourcetype=os:cron) {} | head 50",
                                vmq, terms),
                    r.earliest, r.latest);
  if (!logs)
    return logs.error();
  for (const auto& l : logs->rows)
    d.logs.push_back({num(l, "_time").value_or(0), text(l, "sourcetype"),
                      text(l, "_raw")});
  return std::optional{std::move(d)};
}

result<process_hosts> process_fleet(const storage::store& st,
                                    const search::options& base, time_ns now,
                                    std::string_view name, time_ns window) {
  auto earliest = now + std::min<time_ns>(window, 0);
  process_hosts out;
  out.name = std::string{name};
  // process_name is command's alias (a search-time field, not indexed):
  // ask for the stored field.
  auto procs = query(st, base, now,
                     fmt::format("sourcetype=os:process command={} vm=* | "
                                 "dedup vm, pid",
                                 quote(name)),
                     earliest, now);
  if (!procs)
    return procs.error();
  struct sums {
    std::vector<std::int64_t> pids;
    double cpu = 0, rss = 0;
  };
  std::map<std::string, sums> per_vm;
  for (const auto& r : procs->rows) {
    auto& s = per_vm[text(r, "vm")];
    s.pids.push_back(static_cast<std::int64_t>(num(r, "pid").value_or(0)));
    s.cpu += num(r, "cpu_pct").value_or(0);
    s.rss += num(r, "rss_bytes").value_or(0);
  }
  if (per_vm.empty())
    return out;
  std::string vms;
  for (const auto& [vm, s] : per_vm)
    vms += (vms.empty() ? "" : ", ") + quote(vm);
  auto sys = query(st, base, now,
                   fmt::format("sourcetype=os:system vm IN ({}) | dedup vm",
                               vms),
                   earliest, now);
  if (!sys)
    return sys.error();
  auto hv = query(st, base, now,
                  fmt::format("{} vm IN ({}) | dedup vm", hv_samples, vms),
                  earliest, now);
  if (!hv)
    return hv.error();
  std::map<std::string, const search::row*> sys_of, hv_of;
  for (const auto& r : sys->rows)
    sys_of[text(r, "vm")] = &r;
  for (const auto& r : hv->rows)
    hv_of[text(r, "vm")] = &r;
  auto share = [](double part, number whole) -> number {
    if (!whole || *whole <= 0)
      return std::nullopt;
    return std::clamp(part / *whole, 0.0, 1.0);
  };
  for (auto& [vm, s] : per_vm) {
    process_host h;
    h.vm = vm;
    std::sort(s.pids.begin(), s.pids.end());
    h.pids = std::move(s.pids);
    if (auto it = hv_of.find(vm); it != hv_of.end())
      h.host = text(*it->second, "host");
    if (auto it = sys_of.find(vm); it != sys_of.end()) {
      // The process's cpu_pct is of one CPU; the VM's busy figure is of
      // all of them.
      auto busy = num(*it->second, "cpu_busy_pct");
      auto cpus = num(*it->second, "cpus");
      number busy_cpu_pct;
      if (busy && cpus)
        busy_cpu_pct = *busy * *cpus;
      h.cpu_share = share(s.cpu, busy_cpu_pct);
      h.mem_share = share(s.rss, num(*it->second, "mem_used_bytes"));
    }
    out.vms.push_back(std::move(h));
  }
  return out;
}

result<std::vector<std::string>> known_vms(const storage::store& st,
                                           const search::options& base,
                                           time_ns now) {
  std::set<std::string> names;
  auto ids = query(st, base, now,
                   "sourcetype=parallax:identity vm=* | dedup vm", 0, now);
  if (!ids)
    return ids.error();
  auto hv = query(st, base, now, fmt::format("{} vm=* | dedup vm", hv_samples),
                  now - 86400 * ns_per_s, now);
  if (!hv)
    return hv.error();
  for (const auto* res : {&*ids, &*hv})
    for (const auto& r : res->rows)
      if (auto v = text(r, "vm"); !v.empty())
        names.insert(v);
  return std::vector<std::string>(names.begin(), names.end());
}

// -- JSON ------------------------------------------------------------------

json to_json(const delta& d) {
  json j = json::object();
  j["hv"] = num_json(d.hv);
  j["guest"] = num_json(d.guest);
  j["unit"] = str_json(d.unit);
  j["rel_diff"] = num_json(d.rel_diff);
  return j;
}

json to_json(const alert& a) {
  json j = json::object();
  j["id"] = a.id;
  j["time"] = num_json(a.time);
  j["kind"] = a.kind;
  j["state"] = a.state;
  j["severity"] = a.severity;
  j["metric"] = str_json(a.metric);
  j["message"] = a.message;
  j["process"] = str_json(a.process);
  j["user"] = str_json(a.user);
  j["pid"] = a.pid ? json(*a.pid) : json(nullptr);
  return j;
}

json to_json(const vm_summary& v) {
  json j = json::object();
  j["vm"] = v.vm;
  j["vm_uuid"] = str_json(v.vm_uuid);
  j["host"] = str_json(v.host);
  j["state"] = str_json(v.state);
  j["confidence"] = num_json(v.confidence);
  j["last_seen"] = num_json(v.last_seen);
  j["mem_delta"] = v.mem_delta ? to_json(*v.mem_delta) : json(nullptr);
  j["cpu_delta"] = v.cpu_delta ? to_json(*v.cpu_delta) : json(nullptr);
  auto alerts = json::array();
  for (const auto& a : v.open_alerts)
    alerts.push_back(to_json(a));
  j["open_alerts"] = std::move(alerts);
  return j;
}

json to_json(const fleet& f) {
  auto vms = json::array();
  for (const auto& v : f.vms)
    vms.push_back(to_json(v));
  json j = json::object();
  j["vms"] = std::move(vms);
  j["time"] = num_json(f.time);
  return j;
}

json to_json(const process_info& p) {
  json j = json::object();
  j["pid"] = p.pid;
  j["name"] = p.name;
  j["user"] = str_json(p.user);
  j["uid"] = num_json(p.uid);
  j["cpu_pct"] = num_json(p.cpu_pct);
  j["rss_bytes"] = num_json(p.rss_bytes);
  j["args"] = str_json(p.args);
  j["start_time"] = num_json(p.start_time);
  j["non_admin"] = p.non_admin;
  j["rogue"] = p.rogue;
  return j;
}

json to_json(const series& s) {
  json j = json::object();
  auto times = json::array();
  for (auto t : s.time)
    times.push_back(num_json(t));
  j["time"] = std::move(times);
  for (const auto& [name, col] : s.columns) {
    auto a = json::array();
    for (const auto& v : col)
      a.push_back(num_json(v));
    j[name] = std::move(a);
  }
  return j;
}

json to_json(const vm_detail& v) {
  json j = json::object();
  j["vm"] = v.vm;
  j["vm_uuid"] = str_json(v.vm_uuid);
  j["host"] = str_json(v.host);
  j["state"] = str_json(v.state);
  j["earliest"] = num_json(v.earliest);
  j["latest"] = num_json(v.latest);
  j["span"] = v.span;
  auto procs = json::array();
  for (const auto& p : v.processes)
    procs.push_back(to_json(p));
  j["processes"] = std::move(procs);
  j["series"] = to_json(v.chart);
  auto alerts = json::array();
  for (const auto& a : v.alerts)
    alerts.push_back(to_json(a));
  j["alerts"] = std::move(alerts);
  json deltas = json::object();
  deltas["mem_used"] = nullptr;
  deltas["cpu"] = nullptr;
  for (const auto& d : v.deltas)
    deltas[d.metric] = to_json(d);
  j["deltas"] = std::move(deltas);
  return j;
}

json to_json(const process_detail& p) {
  auto j = to_json(p.info);
  j.erase("non_admin");
  j.erase("rogue");
  j["earliest"] = num_json(p.earliest);
  j["latest"] = num_json(p.latest);
  j["span"] = p.span;
  j["series"] = to_json(p.chart);
  auto logs = json::array();
  for (const auto& l : p.logs) {
    json e = json::object();
    e["time"] = num_json(l.time);
    e["sourcetype"] = l.sourcetype;
    e["raw"] = l.raw;
    logs.push_back(std::move(e));
  }
  j["logs"] = std::move(logs);
  return j;
}

json to_json(const process_hosts& p) {
  json j = json::object();
  j["name"] = p.name;
  auto vms = json::array();
  for (const auto& h : p.vms) {
    json e = json::object();
    e["vm"] = h.vm;
    e["host"] = str_json(h.host);
    e["pids"] = h.pids;
    e["cpu_share"] = num_json(h.cpu_share);
    e["mem_share"] = num_json(h.mem_share);
    vms.push_back(std::move(e));
  }
  j["vms"] = std::move(vms);
  return j;
}

} // namespace parallax::vm_view
