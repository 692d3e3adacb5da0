// The correlator's deltas against the simulator's raw data: every
// hypervisor-minus-guest delta the correlator publishes (topic
// `delta.<vm>`) must carry the values that follow from the catalog
// (schemas/metric_pairs.md) applied, independently, to the very samples
// the simulated fleet produced -- and every window the catalog says has a
// delta must have one.
//
// Independent means: VMs are found through the simulator's ground truth
// (docs/simulator.md: an agent's source id names its VM, a hypervisor
// sample's vm_uuid names it), not through the identity resolver; vCenter
// counters are converted here, with the units of schemas/sourcetypes.md,
// not by normalize_vsphere (which only feeds the correlator, as the parser
// would); windows and means are computed here, not by the joiner, and so
// are the VM-wide disk rates (disk_read, disk_write: libvirt's per-disk
// and the guest's per-device rates summed per poll or agent round).

#include "parallax/pipeline/correlator.hpp"
#include "parallax/pipeline/simulator.hpp"
#include "parallax/pipeline/vsphere.hpp"
#include "parallax/schemas/wire.hpp"

#include "as_parsed.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

using namespace parallax;

namespace {

constexpr time_ns s = 1'000'000'000;
// schemas/metric_pairs.md: 20 s event-time windows.
constexpr time_ns window_width = 20 * s;
// join.hpp: a VM's window closes once its latest event time minus the
// allowed lateness (30 s by default) has passed the window's end.
constexpr time_ns allowed_lateness = 30 * s;

// -- raw samples, as the fleet produced them ---------------------------------

enum class kind { libvirt_vm, libvirt_nic, libvirt_disk, vsphere, os_system,
                  os_process, os_net, os_disk };

bool hypervisor_kind(kind k) {
  return k == kind::libvirt_vm || k == kind::libvirt_nic
         || k == kind::libvirt_disk || k == kind::vsphere;
}

struct raw_sample {
  std::string source_id;
  std::size_t arrival = 0; ///< the batch's position in the feed
  kind k = kind::os_system;
  time_ns time = 0;
  std::string host;    ///< the event's host
  std::string vm_uuid; ///< hypervisor samples
  std::string vm_name; ///< hypervisor samples
  std::string mac;     ///< hv:libvirt:nic (normalised), os:net (as written)
  std::string macs;    ///< hypervisor VM samples
  std::string dev;     ///< hv:libvirt:disk, os:disk
  std::map<std::string, double, std::less<>> num; ///< numeric fields
};

std::optional<double> num_of(const value& v) {
  if (auto i = std::get_if<std::int64_t>(&v))
    return static_cast<double>(*i);
  if (auto d = std::get_if<double>(&v))
    return *d;
  return std::nullopt;
}

std::string str_of(const event& e, std::string_view name) {
  if (auto v = e.find(name))
    if (auto x = std::get_if<std::string>(v))
      return *x;
  return {};
}

std::optional<raw_sample> capture(const std::string& source_id,
                                  std::size_t arrival, const event& e) {
  raw_sample r;
  if (e.sourcetype == "hv:libvirt:vm")
    r.k = kind::libvirt_vm;
  else if (e.sourcetype == "hv:libvirt:nic")
    r.k = kind::libvirt_nic;
  else if (e.sourcetype == "hv:libvirt:disk")
    r.k = kind::libvirt_disk;
  else if (e.sourcetype == "hv:vsphere")
    r.k = kind::vsphere;
  else if (e.sourcetype == "os:system")
    r.k = kind::os_system;
  else if (e.sourcetype == "os:process")
    r.k = kind::os_process;
  else if (e.sourcetype == "os:net")
    r.k = kind::os_net;
  else if (e.sourcetype == "os:disk")
    r.k = kind::os_disk;
  else
    return std::nullopt;
  r.source_id = source_id;
  r.arrival = arrival;
  r.time = e.time;
  r.host = e.host;
  r.vm_uuid = str_of(e, "vm_uuid");
  r.vm_name = str_of(e, "vm_name");
  r.mac = str_of(e, "mac");
  r.macs = str_of(e, "macs");
  r.dev = str_of(e, "dev");
  for (const auto& f : e.fields) {
    if (r.k == kind::os_process && f.name != "cpu_pct")
      continue; // all the catalog reads of a process
    if (auto x = num_of(f.value))
      r.num.emplace(f.name, *x);
  }
  return r;
}

std::optional<double> get(const raw_sample& r, std::string_view name) {
  auto it = r.num.find(name);
  if (it == r.num.end())
    return std::nullopt;
  return it->second;
}

// -- the fleet through a correlator ------------------------------------------

struct run_result {
  std::vector<correlator_message> messages;
  std::vector<raw_sample> samples;
  nlohmann::json truth;
  join_counters join;
  correlator_counters correlation;
};

// As test/pipeline/correlator.cpp's run_fleet(), keeping a copy of the raw
// samples each batch held before it went in.
run_result run_fleet(std::size_t vms, time_ns duration) {
  sim::fleet_options fo;
  fo.seed = 1;
  fo.vms = vms;
  fo.hosts = 3;
  fo.start = 1'795'600'000 * s;
  fo.duration = duration;
  auto fleet = sim::fleet::make(fo);
  REQUIRE_MESSAGE(fleet, (fleet ? "" : fleet.error().message));
  correlator_options co;
  co.admin_users = {"root", "deploy"};
  co.service_owners = {{"app-*", {"appuser"}}};
  correlator c{co};
  run_result r;
  std::vector<sim::sim_batch> batches;
  std::size_t arrival = 0;
  while (fleet->step(batches)) {
    for (auto& b : batches) {
      for (const auto& e : b.events)
        if (auto x = capture(b.source_id, arrival, e))
          r.samples.push_back(std::move(*x));
      ++arrival;
      test::as_parsed(b, [&](const event_view& parsed) {
        c.observe(b.source_id, parsed);
      });
      c.advance(r.messages);
    }
    batches.clear();
  }
  r.truth = nlohmann::json::parse(fleet->truth_json());
  r.join = c.join().counters();
  r.correlation = c.counters();
  return r;
}

// -- the catalog, applied independently ---------------------------------------

struct mean_acc {
  double sum = 0;
  std::int64_t n = 0;
  void add(double x) {
    sum += x;
    ++n;
  }
  std::optional<double> get() const {
    if (n == 0)
      return std::nullopt;
    return sum / static_cast<double>(n);
  }
};

// One poll (hv:libvirt:disk) or agent round (os:disk): per device, its
// rates (absent on a disk's first sample).
struct disk_round {
  std::map<std::string, std::optional<double>> rd, wr;
};

// metric_pairs.md: the sum over the disks per poll or round, counting only
// the polls or rounds in which every disk has the rate; the mean of those.
std::optional<double>
disk_mean(const std::map<time_ns, disk_round>& rounds,
          std::map<std::string, std::optional<double>> disk_round::*rate) {
  mean_acc m;
  for (const auto& [t, r] : rounds) {
    const auto& devs = r.*rate;
    if (devs.empty() || !std::all_of(devs.begin(), devs.end(), [](auto& d) {
          return d.second.has_value();
        }))
      continue;
    double sum = 0;
    for (const auto& [dev, x] : devs)
      sum += *x;
    m.add(sum);
  }
  return m.get();
}

// One VM's samples in one window, in the catalog's terms.
struct window_data {
  std::map<std::string, mean_acc> hv;    ///< normalised hypervisor fields
  std::map<std::string, mean_acc> guest; ///< os:system fields
  /// os:process per agent round (sample time): Σ cpu_pct.
  std::map<time_ns, double> proc_rounds;
  /// per normalised MAC: "rx" / "tx" -> mean
  std::map<std::string, std::map<std::string, mean_acc>> hv_nic, guest_nic;
  /// per poll (hv:libvirt:disk) / agent round (os:disk) time
  std::map<time_ns, disk_round> hv_disk, guest_disk;
  std::set<std::string> hosts; ///< hypervisor hosts seen
};

time_ns floor_window(time_ns t) {
  auto q = t / window_width;
  if (t % window_width < 0)
    --q;
  return q * window_width;
}

// The window of a sample stamped t: (start, start + 20 s] holds it (a
// sample describes the interval that ends at its time; metric_pairs.md).
time_ns window_of(time_ns t) {
  return floor_window(t - 1);
}

struct vm_truth {
  std::string name, uuid, flavour;
  std::int64_t cpus = 0;
  std::vector<std::string> macs;                 ///< normalised
  std::map<std::string, std::string> guest_macs; ///< as written -> normalised
  std::string host;                              ///< steady fleet: one host
};

struct key {
  std::string vm, metric, mac;
  time_ns start = 0;
  auto operator<=>(const key&) const = default;
};

struct expected {
  double hv = 0, guest = 0;
  std::string unit, flavour, host;
};

std::string show(const key& k) {
  return fmt::format("{} {}{}{} window ({}, +20s]", k.vm, k.metric,
                     k.mac.empty() ? "" : " mac ", k.mac,
                     sim::rfc3339(k.start));
}

// The catalog's pairs (schemas/metric_pairs.md) for one VM's window.
void pairs_of(const vm_truth& vm, time_ns start, const window_data& w,
              std::map<key, expected>& out) {
  auto hv = [&](std::string_view f) -> std::optional<double> {
    auto it = w.hv.find(std::string{f});
    return it == w.hv.end() ? std::nullopt : it->second.get();
  };
  auto guest = [&](std::string_view f) -> std::optional<double> {
    auto it = w.guest.find(std::string{f});
    return it == w.guest.end() ? std::nullopt : it->second.get();
  };
  std::string host = w.hosts.empty() ? vm.host : *w.hosts.begin();
  auto put = [&](std::string metric, std::string unit, std::string mac,
                 std::optional<double> h, std::optional<double> g) {
    if (!h || !g)
      return; // a side without data: no delta
    out[key{vm.name, std::move(metric), std::move(mac), start}] =
      expected{*h, *g, std::move(unit), vm.flavour, host};
  };
  // mem_used: vSphere consumed, else libvirt's QEMU RSS, vs MemTotal -
  // MemAvailable (mean over the window of the per-sample difference).
  auto consumed = hv("mem_consumed_bytes");
  auto mem_hv = consumed ? consumed : hv("mem_rss_bytes");
  auto used = guest("used_total_minus_available");
  put("mem_used", "bytes", "", mem_hv, used);
  put("mem_active", "bytes", "", hv("mem_active_bytes"), used);
  // mem_visible: the configured memory -- libvirt's mem_max_bytes, else
  // (vSphere has none) mem_allocated_bytes -- minus the balloon (when
  // reported) vs MemTotal. The steady fleet has no ballooning: the balloon
  // is 0 in every sample (counted in the summary), so the subtraction is
  // exercised only as zero here, and libvirt's maximum equals its
  // allocated memory, which this run cannot tell apart.
  auto visible = hv("mem_max_bytes");
  if (!visible)
    visible = hv("mem_allocated_bytes");
  if (visible)
    if (auto balloon = hv("mem_balloon_bytes"))
      *visible -= *balloon;
  put("mem_visible", "bytes", "", visible, guest("mem_total_bytes"));
  put("cpu", "pct", "", hv("cpu_pct"), guest("cpu_busy_pct"));
  // cpu_processes: per round Σ process cpu_pct (100 = one core), mean
  // over the rounds, over the CPU count.
  std::optional<double> procs;
  if (!w.proc_rounds.empty()) {
    double sum = 0;
    for (const auto& [t, x] : w.proc_rounds)
      sum += x;
    procs = sum / static_cast<double>(w.proc_rounds.size());
  }
  auto cpus = guest("cpus");
  if (procs && cpus && *cpus > 0)
    put("cpu_processes", "pct", "", hv("cpu_pct"), *procs / *cpus);
  put("cpu_contention", "pct", "", hv("cpu_ready_pct"),
      guest("cpu_steal_pct"));
  // Per MAC that both sides report.
  for (const auto& [mac, h] : w.hv_nic) {
    auto g = w.guest_nic.find(mac);
    if (g == w.guest_nic.end())
      continue;
    for (auto dir : {"rx", "tx"}) {
      auto hi = h.find(dir);
      auto gi = g->second.find(dir);
      if (hi == h.end() || gi == g->second.end())
        continue;
      put(fmt::format("net_{}", dir), "bytes_per_s", mac, hi->second.get(),
          gi->second.get());
    }
  }
  // VM-wide disk rates: libvirt's per-disk polls, else vSphere's VM-wide
  // figure (converted from virtualDisk.*.average in compute()), vs the
  // guest's per-device rounds.
  for (auto [metric, field, rate] :
       {std::tuple{"disk_read", "disk_rd_bytes_per_s", &disk_round::rd},
        std::tuple{"disk_write", "disk_wr_bytes_per_s", &disk_round::wr}}) {
    auto h = w.hv_disk.empty() ? hv(field) : disk_mean(w.hv_disk, rate);
    put(metric, "bytes_per_s", "", h, disk_mean(w.guest_disk, rate));
  }
}

struct truth_model {
  std::map<std::string, vm_truth> by_agent; ///< agent source id -> VM
  std::map<std::string, vm_truth> by_uuid;  ///< vm_uuid -> VM
  std::map<std::string, std::string> host_source; ///< host -> source id
};

truth_model model_of(const nlohmann::json& truth) {
  truth_model m;
  for (const auto& h : truth["hosts"])
    m.host_source[h["name"].get<std::string>()] =
      h["source_id"].get<std::string>();
  for (const auto& v : truth["fleet"]) {
    vm_truth t;
    t.name = v["vm"].get<std::string>();
    t.uuid = v["vm_uuid"].get<std::string>();
    t.flavour = v["flavour"].get<std::string>();
    t.cpus = v["cpus"].get<std::int64_t>();
    auto macs = v["macs"].get<std::vector<std::string>>();
    auto guest_macs = v["guest_macs"].get<std::vector<std::string>>();
    REQUIRE(macs.size() == guest_macs.size());
    t.macs = macs;
    for (std::size_t i = 0; i < macs.size(); ++i)
      t.guest_macs[guest_macs[i]] = macs[i];
    REQUIRE(v["hosts"].size() == 1); // a steady fleet: no vMotion
    t.host = v["hosts"][0]["host"].get<std::string>();
    m.by_agent[v["source_id"].get<std::string>()] = t;
    m.by_uuid[t.uuid] = t;
  }
  return m;
}

// Every expected delta of the run, and each VM's latest sample time.
struct truth_deltas {
  std::map<key, expected> deltas;
  /// (vm, window start) holding guest samples that reached the correlator
  /// before any hypervisor sample of their VM.
  std::set<std::pair<std::string, time_ns>> early_guest;
  std::map<std::string, time_ns> latest; ///< per VM
  std::size_t inconsistent_mem_used = 0; ///< mem_used_bytes != total - avail
  std::size_t unmapped = 0;              ///< samples of no known VM
  std::size_t ballooned = 0; ///< hypervisor samples with a non-zero balloon
  /// polls / agent rounds lacking one of their VM's disks (the catalog's
  /// "every disk" would then read as a partial sum)
  std::size_t partial_disk_rounds = 0;
  /// VMs whose hypervisor and guest report different numbers of disks
  std::size_t disk_count_mismatch = 0;
};

// `skip_early`: leaves out the guest samples that arrived before the first
// hypervisor sample of their VM (see the test's warm-up comment).
truth_deltas compute(const run_result& r, const truth_model& m,
                     bool skip_early) {
  truth_deltas out;
  std::map<std::string, std::size_t> first_hv; // vm_uuid -> arrival
  for (const auto& x : r.samples)
    if (hypervisor_kind(x.k))
      if (auto [it, fresh] = first_hv.emplace(x.vm_uuid, x.arrival); !fresh)
        it->second = std::min(it->second, x.arrival);
  std::map<std::pair<std::string, time_ns>, window_data> windows;
  std::map<std::string, const vm_truth*> vm_by_name;
  for (const auto& [agent, vm] : m.by_agent)
    vm_by_name[vm.name] = &vm;
  for (const auto& x : r.samples) {
    bool hv_side = hypervisor_kind(x.k);
    const vm_truth* vm = nullptr;
    if (hv_side) {
      auto it = m.by_uuid.find(x.vm_uuid);
      if (it != m.by_uuid.end()) {
        vm = &it->second;
        // The sample comes from the VM's host, under its name.
        CHECK(x.vm_name == vm->name);
        CHECK(x.host == vm->host);
        CHECK(x.source_id == m.host_source.at(vm->host));
        CHECK(!x.vm_uuid.empty());
      }
    } else if (auto it = m.by_agent.find(x.source_id);
               it != m.by_agent.end()) {
      vm = &it->second;
    }
    if (!vm) {
      ++out.unmapped;
      continue;
    }
    auto& latest = out.latest[vm->name];
    latest = std::max(latest, x.time);
    if (!hv_side) {
      auto hv = first_hv.find(vm->uuid);
      if (hv == first_hv.end() || x.arrival < hv->second) {
        out.early_guest.insert({vm->name, window_of(x.time)});
        if (skip_early)
          continue;
      }
    }
    auto& w = windows[{vm->name, window_of(x.time)}];
    switch (x.k) {
    case kind::libvirt_vm:
      w.hosts.insert(x.host);
      for (const auto& [name, v] : x.num)
        w.hv[name].add(v);
      out.ballooned += get(x, "mem_balloon_bytes").value_or(0) != 0;
      break;
    case kind::libvirt_disk: {
      w.hosts.insert(x.host);
      CHECK(vm->flavour == "libvirt");
      auto& poll = w.hv_disk[x.time];
      CHECK_MESSAGE(poll.rd.emplace(x.dev, get(x, "rd_bytes_per_s")).second,
                    vm->name, ": disk ", x.dev, " twice in one poll");
      poll.wr.emplace(x.dev, get(x, "wr_bytes_per_s"));
      break;
    }
    case kind::os_disk: {
      auto& round = w.guest_disk[x.time];
      CHECK_MESSAGE(round.rd.emplace(x.dev, get(x, "rd_bytes_per_s")).second,
                    vm->name, ": disk ", x.dev, " twice in one round");
      round.wr.emplace(x.dev, get(x, "wr_bytes_per_s"));
      break;
    }
    case kind::libvirt_nic: {
      w.hosts.insert(x.host);
      auto& nic = w.hv_nic[x.mac]; // the hypervisor sends it normalised
      if (auto v = get(x, "rx_bytes_per_s"))
        nic["rx"].add(*v);
      if (auto v = get(x, "tx_bytes_per_s"))
        nic["tx"].add(*v);
      break;
    }
    case kind::vsphere: {
      // vCenter's counters in the units of schemas/sourcetypes.md
      // (`hv:vsphere`): KB are KiB, cpu.usage.average is % x 100,
      // cpu.ready.summation is ms summed over the interval and all vCPUs.
      w.hosts.insert(x.host);
      constexpr double kib = 1024;
      auto interval = get(x, "interval_s").value_or(20);
      auto vcpus = get(x, "vcpus");
      CHECK(vcpus == static_cast<double>(vm->cpus));
      if (auto v = get(x, "cpu.usage.average"))
        w.hv["cpu_pct"].add(*v / 100);
      if (auto v = get(x, "cpu.ready.summation"); v && vcpus)
        w.hv["cpu_ready_pct"].add(*v * 100 / (interval * 1000) / *vcpus);
      if (auto v = get(x, "mem_allocated_kb"))
        w.hv["mem_allocated_bytes"].add(*v * kib);
      if (auto v = get(x, "mem.consumed.average"))
        w.hv["mem_consumed_bytes"].add(*v * kib);
      if (auto v = get(x, "mem.active.average"))
        w.hv["mem_active_bytes"].add(*v * kib);
      if (auto v = get(x, "mem.vmmemctl.average")) {
        w.hv["mem_balloon_bytes"].add(*v * kib);
        out.ballooned += *v != 0;
      }
      // KB/s, summed over the VM's virtual disks by the poller.
      if (auto v = get(x, "virtualDisk.read.average"))
        w.hv["disk_rd_bytes_per_s"].add(*v * kib);
      if (auto v = get(x, "virtualDisk.write.average"))
        w.hv["disk_wr_bytes_per_s"].add(*v * kib);
      // VM-wide KB/s belong to the NIC of a VM with exactly one.
      if (!x.macs.empty() && x.macs.find(',') == std::string::npos) {
        CHECK(vm->macs.size() == 1);
        CHECK(x.macs == vm->macs.front());
        auto& nic = w.hv_nic[x.macs];
        if (auto v = get(x, "net.received.average"))
          nic["rx"].add(*v * kib);
        if (auto v = get(x, "net.transmitted.average"))
          nic["tx"].add(*v * kib);
      }
      break;
    }
    case kind::os_system: {
      for (auto f : {"mem_total_bytes", "cpu_busy_pct", "cpu_steal_pct",
                     "cpus"})
        if (auto v = get(x, f))
          w.guest[f].add(*v);
      auto total = get(x, "mem_total_bytes");
      auto avail = get(x, "mem_available_bytes");
      if (total && avail) {
        w.guest["used_total_minus_available"].add(*total - *avail);
        if (get(x, "mem_used_bytes") != *total - *avail)
          ++out.inconsistent_mem_used;
      }
      break;
    }
    case kind::os_process:
      // metric_pairs.md: "Sums over processes are taken per agent round
      // (one sample time), then averaged over the rounds". Read literally:
      // a process without cpu_pct (its first sample) adds nothing, and a
      // round in which no process has one (the agent's first) still counts,
      // with a sum of 0.
      w.proc_rounds[x.time] += get(x, "cpu_pct").value_or(0);
      break;
    case kind::os_net: {
      // The guest writes its MACs in its own notation; the truth says
      // which normalised MAC each is. Interfaces of no hypervisor NIC
      // (docker0) have no pair.
      auto it = vm->guest_macs.find(x.mac);
      if (it == vm->guest_macs.end())
        break;
      auto& nic = w.guest_nic[it->second];
      if (auto v = get(x, "rx_bytes_per_s"))
        nic["rx"].add(*v);
      if (auto v = get(x, "tx_bytes_per_s"))
        nic["tx"].add(*v);
      break;
    }
    }
  }
  // Every poll and round holds all of its VM's disks (the union over the
  // run), and both sides see as many disks (a steady fleet adds none).
  std::map<std::string, std::set<std::string>> hv_devs, guest_devs;
  for (const auto& [k, w] : windows) {
    for (const auto& [t, p] : w.hv_disk)
      for (const auto& [dev, x] : p.rd)
        hv_devs[k.first].insert(dev);
    for (const auto& [t, p] : w.guest_disk)
      for (const auto& [dev, x] : p.rd)
        guest_devs[k.first].insert(dev);
  }
  for (const auto& [k, w] : windows) {
    for (const auto& [t, p] : w.hv_disk)
      out.partial_disk_rounds += p.rd.size() != hv_devs[k.first].size();
    for (const auto& [t, p] : w.guest_disk)
      out.partial_disk_rounds += p.rd.size() != guest_devs[k.first].size();
  }
  for (const auto& [name, devs] : hv_devs)
    out.disk_count_mismatch += devs.size() != guest_devs[name].size();
  for (const auto& [k, w] : windows)
    pairs_of(*vm_by_name.at(k.first), k.second, w, out.deltas);
  return out;
}

// -- the published deltas -----------------------------------------------------

const value* field_of(const correlator_message& m, std::string_view name) {
  for (const auto& f : m.fields)
    if (f.name == name)
      return &f.value;
  return nullptr;
}

std::string text(const correlator_message& m, std::string_view name) {
  if (auto v = field_of(m, name))
    if (auto x = std::get_if<std::string>(v))
      return *x;
  return {};
}

std::optional<double> number(const correlator_message& m,
                             std::string_view name) {
  if (auto v = field_of(m, name))
    return num_of(*v);
  return std::nullopt;
}

std::optional<std::int64_t> integer(const correlator_message& m,
                                    std::string_view name) {
  if (auto v = field_of(m, name))
    if (auto x = std::get_if<std::int64_t>(v))
      return *x;
  return std::nullopt;
}

// Tolerance: the means here and the correlator's add the same numbers,
// possibly in another order and through other conversion formulas (e.g.
// ready ms * 100 / (interval * 1000) / vcpus here vs ms / (interval *
// 1000) * 100 / vcpus there), so they may differ in the last bits: 1e-9
// relative to the larger magnitude of the figures involved, plus 1e-9
// absolute for values at 0. For abs_diff the scale is the larger of the two
// sides (a difference of two close figures loses relative precision).
struct {
  std::size_t equal = 0;     ///< figures found equal
  std::size_t identical = 0; ///< of those: bit for bit
} agreement;

bool near_enough(double want, double got, double scale) {
  auto size = std::max({std::fabs(want), std::fabs(got), scale});
  return std::fabs(want - got) <= 1e-9 * size + 1e-9;
}

constexpr const char* catalog_metrics[] = {
  "mem_used", "mem_active", "mem_visible", "cpu", "cpu_processes",
  "cpu_contention", "net_rx", "net_tx", "disk_read", "disk_write"};

struct tally {
  std::size_t compared = 0, mismatched = 0, warmup = 0, missing = 0,
              unexpected = 0, open = 0;
  std::map<std::string, std::size_t> by_flavour;
  std::vector<std::string> examples;
  void note(std::string what) {
    if (examples.size() < 5)
      examples.push_back(std::move(what));
  }
};

// What in delta `m` differs from `want` (the catalog's figures from the raw
// samples); empty when nothing does.
std::vector<std::string> differences(const correlator_message& m,
                                     const expected& want) {
  std::vector<std::string> bad;
  // The figures, as schemas/metric_pairs.md defines them.
  double abs_diff = want.hv - want.guest;
  double rel_diff = want.hv != 0 ? abs_diff / want.hv : 0;
  double share = want.hv != 0 ? want.guest / want.hv : 0;
  double scale = std::max(std::fabs(want.hv), std::fabs(want.guest));
  auto cmp = [&](std::string_view name, double w, double sc) {
    auto got = number(m, name);
    if (!got)
      bad.push_back(fmt::format("{} absent (expected {})", name, w));
    else if (!near_enough(w, *got, sc))
      bad.push_back(fmt::format("{} {} (expected {}, off by {:.3g})", name,
                                *got, w, *got - w));
    else {
      ++agreement.equal;
      agreement.identical += w == *got;
    }
  };
  cmp("hv_value", want.hv, 0);
  cmp("guest_value", want.guest, 0);
  cmp("abs_diff", abs_diff, scale);
  cmp("rel_diff", rel_diff, 0);
  cmp("explained_share", share, 0);
  if (text(m, "unit") != want.unit)
    bad.push_back(fmt::format("unit {} (catalog: {})", text(m, "unit"),
                              want.unit));
  if (text(m, "host") != want.host)
    bad.push_back(fmt::format("host {} (truth: {})", text(m, "host"),
                              want.host));
  return bad;
}

std::string joined(const std::vector<std::string>& v) {
  std::string all;
  for (const auto& x : v)
    all += (all.empty() ? "" : "; ") + x;
  return all;
}

} // namespace

TEST_CASE("delta truth: every published delta equals the catalog's figures "
          "computed from the simulator's raw samples") {
  auto t0 = std::chrono::steady_clock::now();
  // A steady fleet: 10 VMs on kvm-01, esx-02, kvm-03 (7 libvirt, 3
  // vSphere), 40 simulated minutes, 120 windows per VM.
  auto r = run_fleet(10, 40 * 60 * s);
  auto model = model_of(r.truth);
  REQUIRE(model.by_agent.size() == 10);
  auto truth = compute(r, model, false);
  // Identity warm-up: in the first step every agent's batch reaches the
  // correlator before the hypervisors' first batch, so the resolver keeps
  // the guest pending and does not attribute its events
  // (identity_resolver.hpp: "it stays *pending* (its events are not
  // attributed)"). The correlator holds them and joins them once the VM is
  // known (correlator::observe), so the first window has its first agent
  // round too. A delta that would equal the catalog applied without those
  // early samples is counted as `warmup`: there must be none.
  auto late = compute(r, model, true);
  CHECK(truth.unmapped == 0);
  CHECK(truth.inconsistent_mem_used == 0);
  CHECK(truth.partial_disk_rounds == 0);
  CHECK(truth.disk_count_mismatch == 0);
  {
    std::set<std::string> vms;
    for (const auto& [vm, start] : truth.early_guest) {
      CHECK_MESSAGE(start == window_of(r.truth["start_ns"].get<time_ns>()),
                    vm, ": early guest samples after the first window");
      vms.insert(vm);
    }
    CHECK(vms.size() <= 10); // at most the first window of each VM
  }

  std::map<std::string, tally> tallies;
  for (auto m : catalog_metrics)
    tallies[m];
  std::map<key, std::size_t> seen; // published, not corrections
  std::size_t corrections = 0, readme_rel_diff = 0, readme_share = 0,
              readme_bytes_type = 0;

  for (const auto& m : r.messages) {
    if (!m.topic.starts_with("delta.") || !field_of(m, "metric"))
      continue; // alerts, identity, silence signals
    key k{text(m, "vm"), text(m, "metric"), text(m, "mac"),
          integer(m, "window_start").value_or(-1)};
    auto& t = tallies[k.metric];
    auto where = show(k);
    bool correction = false;
    if (auto v = field_of(m, "correction"))
      if (auto b = std::get_if<bool>(v))
        correction = *b;
    if (correction)
      ++corrections;
    else
      ++seen[k];
    // Envelope: topic, window, event time, VM.
    std::vector<std::string> bad;
    if (m.topic != "delta." + k.vm)
      bad.push_back(fmt::format("topic {}", m.topic));
    auto end = integer(m, "window_end");
    if (floor_window(k.start) != k.start || end != k.start + window_width)
      bad.push_back(fmt::format("window ({}, {}] is not a 20 s window",
                                k.start, end.value_or(-1)));
    if (m.time != k.start + window_width)
      bad.push_back(fmt::format("time {} is not the window's end", m.time));
    const vm_truth* vm = nullptr;
    for (const auto& [agent, v] : model.by_agent)
      if (v.name == k.vm)
        vm = &v;
    if (!vm || text(m, "vm_uuid") != vm->uuid)
      bad.push_back(fmt::format("vm_uuid {}", text(m, "vm_uuid")));
    auto it = truth.deltas.find(k);
    if (it == truth.deltas.end()) {
      ++t.unexpected;
      t.note(fmt::format("{}: published, but the raw data has no such pair "
                         "(hv {}, guest {})",
                         where, number(m, "hv_value").value_or(NAN),
                         number(m, "guest_value").value_or(NAN)));
      continue;
    }
    const auto& want = it->second;
    ++t.compared;
    ++t.by_flavour[want.flavour];
    auto diff = differences(m, want);
    if (!diff.empty() && bad.empty()
        && truth.early_guest.contains({k.vm, k.start})) {
      if (auto alt = late.deltas.find(k);
          alt != late.deltas.end() && differences(m, alt->second).empty()) {
        ++t.warmup;
        t.note(fmt::format("{}: identity warm-up: {} [without the guest "
                           "samples before the first hypervisor sample: "
                           "hv {}, guest {}]",
                           where, joined(diff), alt->second.hv,
                           alt->second.guest));
        continue;
      }
    }
    bad.insert(bad.end(), diff.begin(), diff.end());
    if (!bad.empty()) {
      ++t.mismatched;
      t.note(fmt::format("{}: {} [catalog: hv {}, guest {}]", where,
                         joined(bad), want.hv, want.guest));
    }
    // Where schemas/README.md ("Fields of a delta") reads otherwise than
    // the catalog: counted for the summary, not failed (the catalog is
    // the reference here).
    double abs_diff = want.hv - want.guest;
    if (auto got = number(m, "rel_diff");
        got && want.guest != 0 && !near_enough(abs_diff / want.guest, *got, 0))
      ++readme_rel_diff; // README: abs_diff / guest_value
    if (auto got = number(m, "explained_share"); got && (*got < 0 || *got > 1))
      ++readme_share; // README: a fraction 0-1
    auto whole = [](double x) { return x == std::floor(x); };
    if (want.unit == "bytes" && whole(want.hv) && whole(want.guest))
      for (auto f : {"hv_value", "guest_value", "abs_diff"})
        if (auto v = field_of(m, f); v && std::holds_alternative<double>(*v)) {
          ++readme_bytes_type; // README: integers where both sides are whole
          break;
        }
  }

  // The converse: every pair with data on both sides in a window that the
  // end of the run has closed was published. A window closes when its VM's
  // latest sample time minus the allowed lateness (30 s) passes its end;
  // the correlator is never flushed, so the last windows of the run (end
  // after latest - 30 s: two of them here) are legitimately still open.
  // Nothing else is exempt: not the first window, not the baselines'
  // warm-up.
  for (const auto& [k, want] : truth.deltas) {
    auto& t = tallies[k.metric];
    if (k.start + window_width >= truth.latest.at(k.vm) - allowed_lateness) {
      ++t.open;
      continue;
    }
    if (!seen.contains(k)) {
      ++t.missing;
      t.note(fmt::format("{}: not published [catalog: hv {}, guest {}]",
                         show(k), want.hv, want.guest));
    }
  }
  std::size_t duplicates = 0;
  for (const auto& [k, n] : seen)
    if (n > 1)
      ++duplicates;

  std::size_t open = 0, warmup = 0;
  for (const auto& [metric, t] : tallies) {
    open += t.open;
    warmup += t.warmup;
  }
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now()
                                            - t0)
                .count();
  MESSAGE(fmt::format("delta truth: 10 VMs, 3 hosts, 40 min; {} deltas "
                      "expected, {} in windows still open at the end; {} "
                      "corrections, {} duplicates; {} of {} figures found "
                      "equal are identical to the bit; {} hypervisor samples "
                      "with a non-zero balloon; {:.1f} s",
                      truth.deltas.size(), open, corrections, duplicates,
                      agreement.identical, agreement.equal, truth.ballooned,
                      secs));
  for (const auto& [metric, t] : tallies) {
    std::string flavours;
    for (const auto& [f, n] : t.by_flavour)
      flavours += fmt::format("{}{} {}", flavours.empty() ? "" : ", ", f, n);
    MESSAGE(fmt::format("{}: compared {} ({}), mismatched {}, identity "
                        "warm-up {}, missing {}, unexpected {}",
                        metric, t.compared, flavours, t.mismatched, t.warmup,
                        t.missing, t.unexpected));
    for (const auto& e : t.examples)
      MESSAGE("  ", e);
  }
  MESSAGE(fmt::format(
    "schemas/README.md vs the catalog: {} deltas' rel_diff (abs_diff / "
    "hv_value, metric_pairs.md) differ from README's abs_diff / guest_value; "
    "{} explained_share outside README's 0-1; {} bytes deltas with whole "
    "sides carry floats where README says integers",
    readme_rel_diff, readme_share, readme_bytes_type));

  // The guests' first rounds were held, then joined: every one of them
  // (a first round is far inside the two windows a held event may wait).
  CHECK(r.correlation.held_replayed > 0);
  CHECK(r.correlation.held_dropped == 0);
  CHECK_MESSAGE(warmup == 0, warmup,
                " deltas of the first window leave out the guest's first "
                "agent round (identity warm-up, see above)");
  for (auto metric : catalog_metrics) {
    const auto& t = tallies[metric];
    CHECK_MESSAGE(t.compared >= 100, metric, ": only ", t.compared,
                  " deltas compared");
    CHECK_MESSAGE(t.mismatched == 0, metric, ": ", t.mismatched,
                  " deltas differ from the raw data");
    CHECK_MESSAGE(t.missing == 0, metric, ": ", t.missing,
                  " closed windows with both sides have no delta");
    CHECK_MESSAGE(t.unexpected == 0, metric, ": ", t.unexpected,
                  " deltas without a pair in the raw data");
  }
  CHECK(tallies.size() == std::size(catalog_metrics)); // no other metric
  CHECK(duplicates == 0);
  CHECK(corrections == 0); // a steady run sends nothing late
}
