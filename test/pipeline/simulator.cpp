// The fleet simulator: determinism, both-sides consistency, every scenario
// kind visible in the events within its window, scenario file errors, and
// the ground truth's identities.

#include "parallax/pipeline/simulator.hpp"

#include "parallax/pipeline/join.hpp"
#include "parallax/pipeline/vsphere.hpp"
#include "parallax/schemas/identity.hpp"
#include "parallax/schemas/wire.hpp"

#include "as_parsed.hpp"
#include "temp_dir.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

using namespace parallax;
using namespace parallax::sim;

namespace {

constexpr time_ns sec = 1'000'000'000;
constexpr time_ns minute = 60 * sec;
// 2026-11-25T10:00:00Z: a multiple of 20 s, so the start is not moved.
constexpr time_ns t0 = 1'795'600'800 * sec;

struct tagged {
  std::string vm_or_host; // from the source id
  bool guest;
  event e;
};

std::string who(const std::string& source_id) {
  auto colon = source_id.find(':');
  auto slash = source_id.rfind('/');
  return source_id.substr(colon + 1, slash - colon - 1);
}

std::vector<tagged> run(fleet_options o, std::vector<sim_batch>* batches = nullptr) {
  auto f = fleet::make(std::move(o));
  REQUIRE(static_cast<bool>(f));
  std::vector<tagged> out;
  std::vector<sim_batch> step;
  while (f->step(step)) {
    for (auto& b : step) {
      for (auto& e : b.events)
        out.push_back({who(b.source_id), b.source_id.starts_with("sim-agent:"), e});
      if (batches)
        batches->push_back(std::move(b));
    }
    step.clear();
  }
  return out;
}

double num(const event& e, std::string_view name) {
  auto v = e.find(name);
  REQUIRE_MESSAGE(v != nullptr, "missing field ", name, " in ", e.sourcetype);
  if (auto i = std::get_if<std::int64_t>(v))
    return static_cast<double>(*i);
  return std::get<double>(*v);
}

std::string str(const event& e, std::string_view name) {
  auto v = e.find(name);
  REQUIRE_MESSAGE(v != nullptr, "missing field ", name);
  return std::get<std::string>(*v);
}

fleet_options base(std::string_view scenario_text = {}) {
  fleet_options o;
  o.seed = 7;
  o.start = t0;
  o.duration = 40 * minute;
  if (!scenario_text.empty()) {
    auto sc = parse_scenario(scenario_text, "test.toml");
    REQUIRE_MESSAGE(static_cast<bool>(sc), (sc ? std::string{} : sc.error().message));
    o.injected = std::move(*sc);
  }
  return o;
}

std::string encode_all(const std::vector<sim_batch>& bs) {
  std::string out;
  for (const auto& b : bs) {
    wire::batch w;
    w.source_id = b.source_id;
    w.events = b.events;
    wire::encode(w, out);
  }
  return out;
}

} // namespace

TEST_CASE("simulator: the same seed gives the same bytes, another seed others") {
  std::vector<sim_batch> a, b, c;
  run(base(), &a);
  run(base(), &b);
  auto o = base();
  o.seed = 8;
  run(o, &c);
  CHECK(encode_all(a) == encode_all(b));
  CHECK(encode_all(a) != encode_all(c));
  // 12 VMs x 240 steps of os:system, plus 3 hosts x 120 hypervisor batches
  // (less kvm/esx VMs' own events): every agent step yields one batch.
  auto agent = std::count_if(a.begin(), a.end(), [](const sim_batch& x) {
    return x.source_id.starts_with("sim-agent:");
  });
  CHECK(agent == 12 * 240);
}

TEST_CASE("simulator: both sides agree in a steady fleet") {
  auto evs = run(base());
  // Guest samples by (VM, time); the agent source id names the VM.
  std::map<std::pair<std::string, time_ns>, const event*> sys;
  std::map<std::pair<std::string, time_ns>, double> proc_cpu;
  std::size_t processes = 0, checked_cpu = 0, checked_mem = 0, checked_sum = 0;
  for (const auto& t : evs) {
    if (t.e.sourcetype == "os:system")
      sys[{t.vm_or_host, t.e.time}] = &t.e;
    if (t.e.sourcetype == "os:process") {
      ++processes;
      if (auto v = t.e.find("cpu_pct"))
        proc_cpu[{t.vm_or_host, t.e.time}] += std::get<double>(*v);
    }
  }
  // 20 to 40 processes per VM (12 VMs, 240 steps).
  CHECK(processes >= 12 * 240 * 20);
  CHECK(processes <= 12 * 240 * 40);
  for (const auto& [key, s] : sys) {
    auto busy = s->find("cpu_busy_pct");
    if (!busy)
      continue; // the agent's first sample has no rates
    auto cpus = num(*s, "cpus");
    auto sum = proc_cpu[key];
    // Busy = (process CPU + 0.4 + 1.5 % of it as kernel time) / cpus.
    CHECK(sum <= num(*s, "cpu_busy_pct") * cpus + 0.5);
    CHECK(sum >= num(*s, "cpu_busy_pct") * cpus * 0.97 - 1.0);
    ++checked_sum;
    CHECK(num(*s, "mem_used_bytes") + num(*s, "mem_available_bytes")
          == num(*s, "mem_total_bytes"));
  }
  for (const auto& t : evs) {
    if (t.guest || (t.e.sourcetype != "hv:libvirt:vm" && t.e.sourcetype != "hv:vsphere"))
      continue;
    auto vm = str(t.e, "vm_name");
    auto now = sys.find({vm, t.e.time});
    auto before = sys.find({vm, t.e.time - 10 * sec});
    REQUIRE(now != sys.end());
    auto used = num(*now->second, "mem_used_bytes");
    double consumed = t.e.sourcetype == "hv:vsphere"
                        ? num(t.e, "mem.consumed.average") * 1024
                        : num(t.e, "mem_rss_bytes");
    CHECK(consumed >= used);
    ++checked_mem;
    double hv_cpu = t.e.sourcetype == "hv:vsphere"
                      ? num(t.e, "cpu.usage.average") / 100
                      : (t.e.find("cpu_pct") ? num(t.e, "cpu_pct") : -1);
    if (hv_cpu < 0 || before == sys.end() || !before->second->find("cpu_busy_pct")
        || !now->second->find("cpu_busy_pct"))
      continue;
    // The hypervisor's 20 s covers the agent's last two 10 s intervals.
    double guest = (num(*now->second, "cpu_busy_pct")
                    + num(*before->second, "cpu_busy_pct"))
                   / 2;
    CHECK(hv_cpu >= guest - 0.05);
    CHECK(hv_cpu <= guest * 1.05 + 1.0);
    ++checked_cpu;
  }
  CHECK(checked_sum > 2000);
  CHECK(checked_mem > 1000);
  CHECK(checked_cpu > 1000);
}

TEST_CASE("simulator: guest MACs in mixed notations normalise to the hypervisor's") {
  auto evs = run(base());
  std::map<std::string, std::set<std::string>> hv, guest;
  std::set<std::string> raw_notations;
  std::map<std::string, std::string> host_of;
  for (const auto& t : evs) {
    if (t.e.sourcetype == "os:identity") {
      auto macs = str(t.e, "macs");
      std::size_t pos = 0;
      while (pos <= macs.size()) {
        auto comma = macs.find(',', pos);
        auto m = macs.substr(pos, comma == std::string::npos ? comma : comma - pos);
        raw_notations.insert(m);
        auto n = normalize_mac(m);
        REQUIRE_MESSAGE(n.has_value(), m);
        guest[t.vm_or_host].insert(*n);
        if (comma == std::string::npos)
          break;
        pos = comma + 1;
      }
    }
    if (t.e.sourcetype == "hv:libvirt:nic")
      hv[str(t.e, "vm_name")].insert(str(t.e, "mac"));
    if (t.e.sourcetype == "hv:vsphere")
      hv[str(t.e, "vm_name")].insert(str(t.e, "macs")); // one NIC unless db
  }
  CHECK(guest.size() == 12);
  for (auto& [vm, macs] : guest) {
    if (hv[vm].size() == 1 && hv[vm].begin()->find(',') != std::string::npos) {
      auto s = *hv[vm].begin();
      hv[vm] = {s.substr(0, s.find(',')), s.substr(s.find(',') + 1)};
    }
    CHECK_MESSAGE(macs == hv[vm], vm);
  }
  // The guests really used several notations.
  bool dash = false, dot = false, upper = false;
  for (const auto& m : raw_notations) {
    dash |= m.find('-') != std::string::npos;
    dot |= m.find('.') != std::string::npos;
    upper |= std::any_of(m.begin(), m.end(), [](char c) { return c >= 'A' && c <= 'F'; });
  }
  CHECK(dash);
  CHECK(dot);
  CHECK(upper);
}

TEST_CASE("simulator: every scenario kind shows in its window") {
  auto o = base(R"(
[[event]]
kind = "memory-leak"
vm = "db-02"
start = "5m"
duration = "10m"
process = "postgres"
rate-mb-per-min = 30
[[event]]
kind = "cpu-hog"
vm = "app-03"
start = "5m"
duration = "5m"
cpu-pct = 150
[[event]]
kind = "rogue-process"
vm = "web-05"
start = "5m"
duration = "10m"
cpu-pct = 120
[[event]]
kind = "non-admin-process"
vm = "web-01"
start = "5m"
duration = "10m"
user = "bob"
process = "nc"
[[event]]
kind = "ballooning"
vm = "cache-04"
start = "5m"
duration = "10m"
balloon-mb = 512
[[event]]
kind = "cpu-contention"
vm = "cache-08"
start = "5m"
duration = "10m"
ready-pct = 30
[[event]]
kind = "agent-outage"
vm = "app-07"
start = "10m"
duration = "5m"
[[event]]
kind = "vmotion"
vm = "web-09"
start = "20m"
[[event]]
kind = "clone"
vm = "db-10"
start = "20m"
[[event]]
kind = "clock-skew"
vm = "app-11"
start = "10m"
duration = "10m"
skew-s = 95
)");
  auto evs = run(o);
  auto in = [](time_ns t, time_ns from, time_ns to) {
    return t >= t0 + from && t < t0 + to;
  };
  SUBCASE("memory-leak: postgres grows 30 MB/min, the guest and host with it") {
    std::map<time_ns, double> rss, consumed;
    for (const auto& t : evs) {
      if (t.vm_or_host == "db-02" && t.e.sourcetype == "os:process"
          && num(t.e, "pid") == 1100)
        rss[t.e.time] = num(t.e, "rss_bytes");
      if (t.e.sourcetype == "hv:vsphere" && str(t.e, "vm_name") == "db-02")
        consumed[t.e.time] = num(t.e, "mem.consumed.average") * 1024;
    }
    // From 5 to 14m50s: 9m50s of growth at 30 MB/min = 295 MB (+-1 % noise
    // on a ~4 GB base RSS, hence the tolerance of 45 MB).
    auto grown = rss[t0 + 14 * minute + 50 * sec] - rss[t0 + 5 * minute];
    CHECK(grown == doctest::Approx(295.0 * 1024 * 1024).epsilon(0.15));
    CHECK(rss[t0 + 16 * minute] < rss[t0 + 14 * minute]); // released
    CHECK(consumed[t0 + 14 * minute + 40 * sec] - consumed[t0 + 5 * minute]
          > 200.0 * 1024 * 1024);
  }
  SUBCASE("cpu-hog: java near 150 % and the hypervisor sees it") {
    double hog = 0, hv = 0, cpus = 0;
    for (const auto& t : evs) {
      if (t.vm_or_host == "app-03" && t.e.sourcetype == "os:system")
        cpus = num(t.e, "cpus");
      if (t.vm_or_host == "app-03" && t.e.sourcetype == "os:process"
          && str(t.e, "command") == "java" && in(t.e.time, 6 * minute, 10 * minute))
        hog = std::max(hog, num(t.e, "cpu_pct"));
      if (t.e.sourcetype == "hv:libvirt:vm" && str(t.e, "vm_name") == "app-03"
          && in(t.e.time, 6 * minute, 10 * minute))
        hv = std::max(hv, num(t.e, "cpu_pct"));
    }
    CHECK(hog > 130);
    CHECK(hv > 130 / cpus); // of allocated: the hog's cores over all vCPUs
  }
  SUBCASE("rogue-process: hidden, yet busy exceeds the sum of processes") {
    std::map<time_ns, double> sum, busy_cores;
    bool seen = false;
    for (const auto& t : evs) {
      if (t.vm_or_host != "web-05")
        continue;
      if (t.e.sourcetype == "os:process") {
        seen |= str(t.e, "command") == "kdevtmpfsi";
        if (auto v = t.e.find("cpu_pct"))
          sum[t.e.time] += std::get<double>(*v);
      }
      if (t.e.sourcetype == "os:system" && t.e.find("cpu_busy_pct"))
        busy_cores[t.e.time] = num(t.e, "cpu_busy_pct") * num(t.e, "cpus");
    }
    CHECK_FALSE(seen);
    auto inside = t0 + 10 * minute, outside = t0 + 20 * minute;
    CHECK(busy_cores[inside] - sum[inside] > 80);   // ~120 % unexplained
    CHECK(busy_cores[outside] - sum[outside] < 5);
  }
  SUBCASE("non-admin-process: bob's nc only in the window, and his login") {
    std::set<time_ns> at;
    bool login = false;
    for (const auto& t : evs) {
      if (t.vm_or_host != "web-01")
        continue;
      if (t.e.sourcetype == "os:process" && str(t.e, "user") == "bob") {
        CHECK(str(t.e, "command") == "nc");
        CHECK(num(t.e, "uid") >= 1000);
        at.insert(t.e.time);
      }
      if (t.e.sourcetype == "os:auth"
          && t.e.raw->find("Accepted password for bob") != std::string::npos)
        login = true;
    }
    CHECK(login);
    REQUIRE(!at.empty());
    CHECK(*at.begin() == t0 + 5 * minute);
    CHECK(*at.rbegin() == t0 + 15 * minute - 10 * sec);
  }
  SUBCASE("ballooning: the balloon inflates, MemTotal drops (libvirt)") {
    double balloon = 0, total_in = 0, total_out = 0;
    for (const auto& t : evs) {
      if (t.e.sourcetype == "hv:libvirt:vm" && str(t.e, "vm_name") == "cache-04"
          && t.e.time == t0 + 10 * minute)
        balloon = num(t.e, "mem_balloon_bytes");
      if (t.vm_or_host == "cache-04" && t.e.sourcetype == "os:system") {
        if (t.e.time == t0 + 10 * minute)
          total_in = num(t.e, "mem_total_bytes");
        if (t.e.time == t0 + 20 * minute)
          total_out = num(t.e, "mem_total_bytes");
      }
    }
    CHECK(balloon == 512.0 * 1024 * 1024);
    CHECK(total_out - total_in == 512.0 * 1024 * 1024);
  }
  SUBCASE("cpu-contention: ready and steal near 30 % (vSphere)") {
    double ready = 0, steal = 0;
    for (const auto& t : evs) {
      if (t.e.sourcetype == "hv:vsphere" && str(t.e, "vm_name") == "cache-08"
          && t.e.time == t0 + 10 * minute)
        ready = num(t.e, "cpu.ready.summation") / (20 * 1000.0) * 100
                / num(t.e, "vcpus");
      if (t.vm_or_host == "cache-08" && t.e.sourcetype == "os:system"
          && t.e.time == t0 + 10 * minute)
        steal = num(t.e, "cpu_steal_pct");
    }
    CHECK(ready == doctest::Approx(30).epsilon(0.3));
    CHECK(steal == doctest::Approx(30).epsilon(0.3));
  }
  SUBCASE("agent-outage: the guest is silent, the hypervisor is not") {
    std::size_t guest = 0, hv = 0, identity_after = 0;
    for (const auto& t : evs) {
      if (t.vm_or_host == "app-07" && in(t.e.time, 10 * minute, 15 * minute))
        ++guest;
      if (!t.guest && t.e.find("vm_name") && str(t.e, "vm_name") == "app-07"
          && in(t.e.time, 10 * minute, 15 * minute))
        ++hv;
      if (t.vm_or_host == "app-07" && t.e.sourcetype == "os:identity"
          && t.e.time == t0 + 15 * minute)
        ++identity_after; // the restarted agent sends its identity again
    }
    CHECK(guest == 0);
    // 15 samples of 20 s: hv:libvirt:vm, one hv:libvirt:nic, one
    // hv:libvirt:disk.
    CHECK(hv == 45);
    CHECK(identity_after == 1);
  }
  SUBCASE("vmotion: web-09's samples move from kvm-03 to kvm-01") {
    std::set<std::string> before, after;
    for (const auto& t : evs)
      if (t.e.sourcetype == "hv:libvirt:vm" && str(t.e, "vm_name") == "web-09")
        (t.e.time < t0 + 20 * minute ? before : after).insert(t.e.host);
    CHECK(before == std::set<std::string>{"kvm-03"});
    CHECK(after == std::set<std::string>{"kvm-01"});
  }
  SUBCASE("clone: two VMs, one MAC set, two UUIDs") {
    std::map<std::string, std::set<std::string>> vms_of_mac;
    std::set<std::string> uuids;
    time_ns first_clone = 0;
    for (const auto& t : evs)
      if (t.e.sourcetype == "hv:libvirt:vm" // db-10 is on kvm-01
          && (str(t.e, "vm_name") == "db-10" || str(t.e, "vm_name") == "db-10-clone")) {
        vms_of_mac[str(t.e, "macs")].insert(str(t.e, "vm_name"));
        uuids.insert(str(t.e, "vm_uuid"));
        if (str(t.e, "vm_name") == "db-10-clone" && !first_clone)
          first_clone = t.e.time;
      }
    CHECK(vms_of_mac.size() == 1);
    CHECK(vms_of_mac.begin()->second.size() == 2);
    CHECK(uuids.size() == 2);
    CHECK(first_clone == t0 + 20 * minute);
  }
  SUBCASE("clock-skew: app-11's guest clock runs 95 s ahead in the window") {
    std::set<time_ns> sys_times;
    for (const auto& t : evs)
      if (t.vm_or_host == "app-11" && t.e.sourcetype == "os:system")
        sys_times.insert(t.e.time);
    CHECK(sys_times.count(t0 + 12 * minute + 95 * sec) == 1);
    CHECK(sys_times.count(t0 + 12 * minute) == 0);
    CHECK(sys_times.count(t0 + 25 * minute) == 1);
    // (Raw lines carry the skewed time too: see the syslog test below.)
  }
  SUBCASE("the ground truth lists every event with its window") {
    auto f = fleet::make(o);
    REQUIRE(static_cast<bool>(f));
    std::vector<sim_batch> step;
    while (f->step(step))
      step.clear();
    auto truth = f->truth_json();
    for (auto k : {"memory-leak", "cpu-hog", "rogue-process", "non-admin-process",
                   "ballooning", "cpu-contention", "agent-outage", "vmotion",
                   "clone", "clock-skew"})
      CHECK_MESSAGE(truth.find(std::string{"\"kind\":\""} + k + "\"") != std::string::npos, k);
    CHECK(truth.find("\"start_ns\":" + std::to_string(t0 + 5 * minute)) != std::string::npos);
    CHECK(truth.find("\"guest_silent\"") != std::string::npos);
    CHECK(truth.find("\"duplicate_mac\"") != std::string::npos);
    CHECK(truth.find("\"vm\":\"db-10-clone\"") != std::string::npos);
    CHECK(truth.find("\"host\":\"kvm-01\",\"from_ns\":" + std::to_string(t0 + 20 * minute))
          != std::string::npos);
  }
}

TEST_CASE("simulator: guest os:net traffic matches the hypervisor's per MAC") {
  // An outage, a clone sharing its original's MACs, a vMotion (the new
  // host's poller starts fresh) and contention on a libvirt VM.
  auto evs = run(base(R"(
[[event]]
kind = "agent-outage"
vm = "app-07"
start = "5m"
duration = "5m"
[[event]]
kind = "clone"
vm = "db-10"
start = "20m"
[[event]]
kind = "vmotion"
vm = "web-09"
start = "15m"
[[event]]
kind = "cpu-contention"
vm = "cache-04"
start = "5m"
duration = "10m"
ready-pct = 30
)"));
  struct guest_nic {
    double rx = 0, tx = 0;    // cumulative
    std::optional<double> rx_rate, tx_rate;
  };
  // (VM from the agent's source id, normalised MAC, time) -> the sample.
  std::map<std::tuple<std::string, std::string, time_ns>, guest_nic> guest;
  std::set<std::string> kinds;
  std::size_t app07_in_outage = 0;
  for (const auto& t : evs) {
    if (t.e.sourcetype != "os:net")
      continue;
    REQUIRE(t.guest);
    kinds.insert(str(t.e, "kind"));
    CHECK(str(t.e, "nic") != "lo");
    if (t.vm_or_host == "app-07" && t.e.time >= t0 + 5 * minute
        && t.e.time < t0 + 10 * minute)
      ++app07_in_outage;
    if (str(t.e, "kind") != "physical")
      continue;
    auto mac = normalize_mac(str(t.e, "mac"));
    REQUIRE_MESSAGE(mac.has_value(), str(t.e, "mac"));
    guest_nic g{num(t.e, "rx_bytes"), num(t.e, "tx_bytes"), {}, {}};
    if (t.e.find("rx_bytes_per_s")) {
      g.rx_rate = num(t.e, "rx_bytes_per_s");
      g.tx_rate = num(t.e, "tx_bytes_per_s");
      CHECK(*g.rx_rate >= 0);
      CHECK(*g.tx_rate >= 0);
      CHECK(num(t.e, "rx_packets_per_s") >= 0);
    }
    guest[{t.vm_or_host, *mac, t.e.time}] = g;
  }
  CHECK(kinds == std::set<std::string>{"physical", "bridge"}); // docker0 on app VMs
  CHECK(app07_in_outage == 0);
  // The first sample after the outage has no rates.
  auto after = guest.find({"app-07", "52:54:00:00:07:01", t0 + 10 * minute});
  REQUIRE(after != guest.end());
  CHECK_FALSE(after->second.rx_rate.has_value());

  // The hypervisor's rate covers 20 s, i.e. the agent's last two intervals.
  // Their mean must match within 0.5 % (the guest misses up to 0.2 % of
  // received frames, dropped in the ring; the host misses up to 0.1 % of
  // sent ones) plus the rounding: 0.01 B/s for libvirt, whole KB/s for
  // vSphere (hence + 1 KB/s there).
  auto mean_rate = [&](const std::string& vm, const std::string& mac,
                       time_ns at, bool rx) -> std::optional<double> {
    auto a = guest.find({vm, mac, at});
    auto b = guest.find({vm, mac, at - 10 * sec});
    if (a == guest.end() || b == guest.end() || !a->second.rx_rate
        || !b->second.rx_rate)
      return std::nullopt;
    return rx ? (*a->second.rx_rate + *b->second.rx_rate) / 2
              : (*a->second.tx_rate + *b->second.tx_rate) / 2;
  };
  std::size_t libvirt_checked = 0, vsphere_checked = 0;
  std::set<std::string> vms_checked;
  std::vector<std::string> unmatched;
  for (const auto& t : evs) {
    if (t.e.sourcetype == "hv:libvirt:nic" && t.e.find("rx_bytes_per_s")) {
      auto vm = str(t.e, "vm_name");
      auto mac = str(t.e, "mac");
      auto rx = mean_rate(vm, mac, t.e.time, true);
      auto tx = mean_rate(vm, mac, t.e.time, false);
      if (!rx) {
        unmatched.push_back(vm + " " + mac + " " + std::to_string((t.e.time - t0) / sec));
        continue;
      }
      double hv_rx = num(t.e, "rx_bytes_per_s"), hv_tx = num(t.e, "tx_bytes_per_s");
      CHECK(*rx <= hv_rx + 0.02);
      CHECK(*rx >= hv_rx * 0.995);
      CHECK(*tx >= hv_tx - 0.02);
      CHECK(*tx <= hv_tx * 1.005);
      // The cumulative counters agree as closely (both count since boot).
      const auto& g = guest.at({vm, mac, t.e.time});
      CHECK(g.rx <= num(t.e, "rx_bytes"));
      CHECK(g.rx >= num(t.e, "rx_bytes") * 0.995);
      ++libvirt_checked;
      vms_checked.insert(vm);
    }
    if (t.e.sourcetype == "hv:vsphere" && t.e.find("net.received.average")) {
      // vCenter's counters are per VM: the sum over its NICs.
      auto vm = str(t.e, "vm_name");
      auto macs = str(t.e, "macs");
      double rx = 0, tx = 0;
      bool all = true;
      for (std::size_t pos = 0; pos <= macs.size();) {
        auto comma = macs.find(',', pos);
        auto mac = macs.substr(pos, comma == std::string::npos ? comma : comma - pos);
        auto r = mean_rate(vm, mac, t.e.time, true);
        auto x = mean_rate(vm, mac, t.e.time, false);
        all = all && r && x;
        rx += r.value_or(0);
        tx += x.value_or(0);
        if (comma == std::string::npos)
          break;
        pos = comma + 1;
      }
      if (!all) {
        unmatched.push_back(vm + " " + std::to_string((t.e.time - t0) / sec));
        continue;
      }
      double hv_rx = num(t.e, "net.received.average") * 1024;
      double hv_tx = num(t.e, "net.transmitted.average") * 1024;
      CHECK(std::abs(rx - hv_rx) <= hv_rx * 0.005 + 1024);
      CHECK(std::abs(tx - hv_tx) <= hv_tx * 0.005 + 1024);
      ++vsphere_checked;
      vms_checked.insert(vm);
    }
  }
  CHECK(vms_checked.size() == 13); // the clone too
  CHECK(libvirt_checked > 1000);
  CHECK(vsphere_checked > 300);
  // The only hypervisor rates without a guest counterpart: app-07's from
  // the outage's start to the agent's first sample after it (5m to 10m).
  std::vector<std::string> expected;
  for (time_ns at = 5 * minute; at <= 10 * minute; at += 20 * sec)
    expected.push_back("app-07 52:54:00:00:07:01 " + std::to_string(at / sec));
  CHECK(unmatched == expected);
}

TEST_CASE("simulator: guest os:disk I/O matches the hypervisor's, VM-wide") {
  // An outage (the agent's rates restart) and a vMotion (the new host's
  // poller starts fresh) on top of the steady fleet.
  std::vector<sim_batch> batches;
  auto evs = run(base(R"(
[[event]]
kind = "agent-outage"
vm = "app-07"
start = "5m"
duration = "5m"
[[event]]
kind = "vmotion"
vm = "web-09"
start = "15m"
)"),
                 &batches);
  struct round {
    double rd = 0, wr = 0;
    bool rates = true; // every device had them
  };
  // (VM from the agent's source id, time) -> the sums over its devices.
  std::map<std::pair<std::string, time_ns>, round> guest;
  std::map<std::string, std::set<std::string>> guest_devs, hv_devs;
  std::map<std::string, std::string> flavour; // VM -> libvirt, vsphere
  for (const auto& t : evs) {
    if (t.e.sourcetype == "hv:libvirt:vm")
      flavour[str(t.e, "vm_name")] = "libvirt";
    if (t.e.sourcetype == "hv:vsphere")
      flavour[str(t.e, "vm_name")] = "vsphere";
    if (t.e.sourcetype != "os:disk")
      continue;
    REQUIRE(t.guest);
    std::vector<std::string> names;
    for (const auto& f : t.e.fields)
      names.push_back(f.name);
    auto& r = guest[{t.vm_or_host, t.e.time}];
    if (t.e.find("rd_bytes_per_s")) {
      CHECK(names == std::vector<std::string>{"agent_id", "dev", "rd_bytes",
                                              "wr_bytes", "rd_reqs", "wr_reqs",
                                              "rd_bytes_per_s", "wr_bytes_per_s"});
      r.rd += num(t.e, "rd_bytes_per_s");
      r.wr += num(t.e, "wr_bytes_per_s");
      CHECK(num(t.e, "rd_bytes_per_s") >= 0);
    } else {
      r.rates = false;
    }
    CHECK(static_cast<std::int64_t>(num(t.e, "rd_bytes")) % 512 == 0);
    CHECK(static_cast<std::int64_t>(num(t.e, "wr_bytes")) % 512 == 0);
    guest_devs[t.vm_or_host].insert(str(t.e, "dev"));
  }
  // The hypervisor's 20 s covers the agent's last two 10 s rounds.
  auto guest_mean = [&](const std::string& vm,
                        time_ns at) -> std::optional<std::pair<double, double>> {
    auto a = guest.find({vm, at});
    auto b = guest.find({vm, at - 10 * sec});
    if (a == guest.end() || b == guest.end() || !a->second.rates
        || !b->second.rates)
      return std::nullopt;
    return std::pair{(a->second.rd + b->second.rd) / 2,
                     (a->second.wr + b->second.wr) / 2};
  };
  // libvirt: per poll, the sum over the VM's disks.
  std::map<std::pair<std::string, time_ns>, round> hv;
  for (const auto& t : evs) {
    if (t.e.sourcetype != "hv:libvirt:disk")
      continue;
    REQUIRE_FALSE(t.guest);
    std::vector<std::string> names;
    for (const auto& f : t.e.fields)
      names.push_back(f.name);
    auto& r = hv[{str(t.e, "vm_name"), t.e.time}];
    if (t.e.find("rd_bytes_per_s")) {
      // The libvirt poller's fields, in its order.
      CHECK(names == std::vector<std::string>{"vm_name", "vm_uuid", "dev",
                                              "rd_bytes", "rd_bytes_per_s",
                                              "wr_bytes", "wr_bytes_per_s",
                                              "rd_reqs", "wr_reqs"});
      r.rd += num(t.e, "rd_bytes_per_s");
      r.wr += num(t.e, "wr_bytes_per_s");
    } else {
      r.rates = false;
      CHECK(names == std::vector<std::string>{"vm_name", "vm_uuid", "dev",
                                              "rd_bytes", "wr_bytes",
                                              "rd_reqs", "wr_reqs"});
    }
    hv_devs[str(t.e, "vm_name")].insert(str(t.e, "dev"));
  }
  std::size_t libvirt_checked = 0, vsphere_checked = 0, hv_more = 0;
  std::vector<std::string> unmatched;
  double max_rd_share = 0, max_wr_share = 0;
  for (const auto& [key, h] : hv) {
    if (!h.rates)
      continue;
    auto g = guest_mean(key.first, key.second);
    if (!g) {
      unmatched.push_back(key.first + " " + std::to_string((key.second - t0) / sec));
      continue;
    }
    // The host counts the guest's I/O and up to 0.5 % (reads) or 0.8 %
    // plus 4 KiB per 10 s (writes) of its own; the rates are rounded to
    // 0.01 B/s.
    CHECK(g->first <= h.rd + 0.02);
    CHECK(h.rd - g->first <= h.rd * 0.006 + 0.02);
    CHECK(g->second <= h.wr + 0.02);
    CHECK(h.wr - g->second >= 400); // never nothing: 8 KiB per 20 s at least
    CHECK(h.wr - g->second <= h.wr * 0.01 + 410);
    hv_more += h.rd > g->first;
    if (h.rd > 0)
      max_rd_share = std::max(max_rd_share, (h.rd - g->first) / h.rd);
    if (h.wr > 0)
      max_wr_share = std::max(max_wr_share, (h.wr - g->second - 409.6) / h.wr);
    ++libvirt_checked;
  }
  // vSphere: VM-wide KB/s, rounded to whole KB/s (± 512 B/s).
  for (const auto& t : evs) {
    if (t.e.sourcetype != "hv:vsphere")
      continue;
    if (!t.e.find("virtualDisk.read.average")) {
      CHECK_FALSE(t.e.find("net.received.average")); // the first sample only
      continue;
    }
    auto vm = str(t.e, "vm_name");
    auto g = guest_mean(vm, t.e.time);
    if (!g) {
      unmatched.push_back(vm + " " + std::to_string((t.e.time - t0) / sec));
      continue;
    }
    double rd = num(t.e, "virtualDisk.read.average") * 1024;
    double wr = num(t.e, "virtualDisk.write.average") * 1024;
    CHECK(g->first <= rd + 512.02);
    CHECK(rd - g->first <= rd * 0.006 + 512.02);
    CHECK(wr - g->second >= 409.6 - 512.02); // 4 KiB per 10 s, less rounding
    CHECK(wr - g->second <= wr * 0.01 + 410 + 512.02);
    ++vsphere_checked;
  }
  // Devices: virtio-blk on libvirt, pvscsi on vSphere; a data disk on db VMs.
  CHECK(flavour.size() == 12);
  for (const auto& [vm, fl] : flavour) {
    bool db = vm.starts_with("db-");
    if (fl == "libvirt") {
      CHECK_MESSAGE(guest_devs[vm] == (db ? std::set<std::string>{"vda", "vdb"}
                                          : std::set<std::string>{"vda"}),
                    vm);
      CHECK_MESSAGE(hv_devs[vm] == guest_devs[vm], vm);
    } else {
      CHECK_MESSAGE(guest_devs[vm] == (db ? std::set<std::string>{"sda", "sdb"}
                                          : std::set<std::string>{"sda"}),
                    vm);
      CHECK(hv_devs.count(vm) == 0);
    }
  }
  MESSAGE("disk: ", libvirt_checked, " libvirt polls, ", vsphere_checked,
          " vSphere samples; the host saw more read in ", hv_more,
          "; its own I/O at most ", max_rd_share * 100, " % of reads, ",
          max_wr_share * 100, " % of writes (+ 4 KiB per 10 s)");
  CHECK(libvirt_checked > 700);
  CHECK(vsphere_checked > 400);
  CHECK(hv_more > libvirt_checked * 9 / 10);
  // The only hypervisor rates without a guest counterpart: app-07's from
  // the outage's start to the agent's first sample after it (5m to 10m).
  std::vector<std::string> expected;
  for (time_ns at = 5 * minute; at <= 10 * minute; at += 20 * sec)
    expected.push_back("app-07 " + std::to_string(at / sec));
  CHECK(unmatched == expected);

  // Through the join (and the parser's vSphere normalisation): libvirt and
  // vSphere VMs get disk_read and disk_write deltas every window. A window
  // holds the hypervisor sample stamped at its start (the 20 s before it)
  // and the agent rounds of its first 10 s and the next (the 20 s from 10 s
  // before it): per window the two sides differ by the I/O's own noise, but
  // over the run the hypervisor is a little above the guest.
  joiner j;
  for (auto& b : batches) {
    test::as_parsed(b, [&](const event_view& parsed) {
      std::string vm = b.source_id.starts_with("sim-agent:") ? who(b.source_id) : "";
      if (auto v = parsed.find("vm_name"))
        vm = std::string{std::get<std::string_view>(*v)};
      if (!vm.empty())
        j.add(vm, vm, parsed);
    });
  }
  std::vector<delta> ds;
  std::vector<silence> ss;
  j.advance(ds, ss);
  std::map<std::pair<std::string, std::string>, std::vector<delta>> by;
  for (const auto& d : ds)
    if (d.metric.starts_with("disk_"))
      by[{d.vm, d.metric}].push_back(d);
  for (std::string vm : {"db-10", "web-01", "db-02", "web-05"}) {
    bool vsphere = flavour[vm] == "vsphere";
    for (std::string metric : {"disk_read", "disk_write"}) {
      const auto& v = by[{vm, metric}];
      // 120 windows, the last two still open; none lost but at the start.
      CHECK_MESSAGE(v.size() >= 115, vm, " ", metric);
      double hv_sum = 0, guest_sum = 0, rel_min = 1, rel_max = -1;
      for (const auto& d : v) {
        CHECK(d.unit == "bytes_per_s");
        CHECK(d.host == (vsphere ? "esx-02" : "kvm-01"));
        hv_sum += d.hv_value;
        guest_sum += d.guest_value;
        rel_min = std::min(rel_min, d.rel_diff);
        rel_max = std::max(rel_max, d.rel_diff);
      }
      auto n = static_cast<double>(std::max<std::size_t>(v.size(), 1));
      MESSAGE(vm, " (", flavour[vm], ") ", metric, ": mean hv ", hv_sum / n,
              " B/s, guest ", guest_sum / n, " B/s, delta ",
              (hv_sum - guest_sum) / n, " B/s (",
              (hv_sum - guest_sum) / hv_sum * 100, " %); rel_diff per window ",
              rel_min, " to ", rel_max);
      // Over the run, the sides differ by the host's own I/O and by the one
      // 10 s step at each end that only one side's windows hold.
      if (metric == "disk_write")
        CHECK(hv_sum > guest_sum);
      CHECK(std::abs(hv_sum - guest_sum) <= hv_sum * 0.02);
    }
  }
}

TEST_CASE("simulator: libvirt cpu_ready_pct follows contention, small otherwise") {
  auto evs = run(base(R"(
[[event]]
kind = "cpu-contention"
vm = "cache-04"
start = "5m"
duration = "10m"
ready-pct = 30
)"));
  std::map<std::string, std::pair<time_ns, double>> last_delay;
  std::size_t inside = 0, outside = 0;
  for (const auto& t : evs) {
    if (t.e.sourcetype != "hv:libvirt:vm")
      continue;
    auto vm = str(t.e, "vm_name");
    auto delay = num(t.e, "vcpu_delay_ns");
    auto prev = last_delay.find(vm);
    if (!t.e.find("cpu_ready_pct")) {
      CHECK(t.e.time == t0); // only the poller's first sample lacks it
      last_delay[vm] = {t.e.time, delay};
      continue;
    }
    auto ready = num(t.e, "cpu_ready_pct");
    // As the poller computes it: Δvcpu_delay / (Δt × vcpus) × 100.
    REQUIRE(prev != last_delay.end());
    double dt = static_cast<double>(t.e.time - prev->second.first);
    CHECK(ready == doctest::Approx((delay - prev->second.second) / dt
                                   / num(t.e, "vcpus") * 100)
                     .epsilon(0.01));
    last_delay[vm] = {t.e.time, delay};
    bool contended = vm == "cache-04" && t.e.time > t0 + 5 * minute
                     && t.e.time < t0 + 15 * minute;
    if (contended) {
      CHECK(ready == doctest::Approx(30).epsilon(0.3));
      ++inside;
    } else if (vm != "cache-04" || t.e.time < t0 + 5 * minute
               || t.e.time > t0 + 15 * minute) {
      CHECK(ready >= 0);
      CHECK(ready <= 1);
      ++outside;
    }
  }
  CHECK(inside == 29);
  CHECK(outside > 500);
}

TEST_CASE("simulator: --canonical-macs: os:net MACs are normalised") {
  auto o = base();
  o.mixed_mac_notation = false;
  o.duration = 2 * minute;
  std::size_t n = 0;
  for (const auto& t : run(o))
    if (t.e.sourcetype == "os:net") {
      auto mac = str(t.e, "mac");
      CHECK(normalize_mac(mac) == mac);
      ++n;
    }
  CHECK(n == 12 * 18); // 12 steps x (12 VMs' NICs + 3 db second NICs + 3 docker0)
}

TEST_CASE("simulator: syslog lines carry the event's time") {
  auto evs = run(base());
  std::size_t n = 0;
  for (const auto& t : evs) {
    if (!t.e.raw)
      continue;
    // 2026-11-25T10:05:01Z -> "Nov 25 10:05:01"
    auto iso = rfc3339(t.e.time);
    auto expect = "Nov 25 " + iso.substr(11, 8);
    CHECK(t.e.raw->substr(0, 15) == expect);
    CHECK(t.e.time % sec == 0);
    ++n;
  }
  CHECK(n > 100); // cron alone: every 10 minutes on 12 VMs
}

TEST_CASE("simulator: scenario errors name the file, line and key") {
  auto err = [](std::string_view text) {
    auto r = parse_scenario(text, "bad.toml");
    REQUIRE_FALSE(static_cast<bool>(r));
    return r.error().message;
  };
  CHECK(err("[[event]]\nkind = \"memory-leak\"\nvm = \"db-02\"\nrate = 5\n")
        == "bad.toml:4:8: event[1].rate: unknown key for kind memory-leak; it "
           "takes kind, vm, start, duration, process, rate-mb-per-min");
  CHECK(err("[[event]]\nkind = \"meltdown\"\nvm = \"x\"\n").starts_with(
    "bad.toml:2:8: event[1].kind: unknown kind \"meltdown\""));
  CHECK(err("[[event]]\nkind = \"cpu-hog\"\n").starts_with("bad.toml:1:1: event[1].vm: missing"));
  CHECK(err("[[event]]\nkind = \"cpu-hog\"\nvm = \"a\"\nstart = \"5 parsecs\"\n")
          .starts_with("bad.toml:4:9: event[1].start: \"5 parsecs\" is not a duration"));
  CHECK(err("[[event]]\nkind = \"clock-skew\"\nvm = \"a\"\nskew-s = \"lots\"\n")
        == "bad.toml:4:10: event[1].skew-s: expected a number");
  CHECK(err("[[event]\n").starts_with("bad.toml:1:"));
  CHECK(err("events = 3\n").starts_with("bad.toml:1:"));
  // Names the fleet does not have are caught when the fleet is built.
  auto o = base("[[event]]\nkind = \"cpu-hog\"\nvm = \"db-99\"\n");
  auto f = fleet::make(o);
  REQUIRE_FALSE(static_cast<bool>(f));
  CHECK(f.error().message.starts_with("test.toml:1:1: event[1].vm: no VM named \"db-99\""));
  auto o2 = base("[[event]]\nkind = \"memory-leak\"\nvm = \"web-01\"\nprocess = \"oracle\"\n");
  auto f2 = fleet::make(o2);
  REQUIRE_FALSE(static_cast<bool>(f2));
  CHECK(f2.error().message.find("event[1].process: VM web-01 runs no process \"oracle\"")
        != std::string::npos);
}

TEST_CASE("simulator: the shipped example scenarios run on the default fleet") {
  for (auto name : {"demo.toml", "security.toml"}) {
    auto path = std::string{PARALLAX_SOURCE_DIR} + "/etc/scenarios/" + name;
    auto sc = load_scenario(path);
    REQUIRE_MESSAGE(static_cast<bool>(sc), (sc ? std::string{} : sc.error().message));
    fleet_options o;
    o.start = t0;
    o.duration = 60 * minute;
    o.injected = std::move(*sc);
    auto f = fleet::make(std::move(o));
    REQUIRE_MESSAGE(static_cast<bool>(f), (f ? std::string{} : f.error().message));
    CHECK(f->truth_json().find("\"signals\"") != std::string::npos);
  }
}

TEST_CASE("simulator: durations") {
  CHECK(*parse_duration("90s") == 90 * sec);
  CHECK(*parse_duration("5m") == 5 * minute);
  CHECK(*parse_duration("1h30m") == 90 * minute);
  CHECK(*parse_duration("45") == 45 * sec);
  CHECK_FALSE(parse_duration(""));
  CHECK_FALSE(parse_duration("5x"));
  CHECK_FALSE(parse_duration("-5m"));
}

namespace {

struct collecting_sink : batch_sink {
  std::vector<std::pair<std::string, std::uint64_t>> seen;
  std::uint64_t events = 0;
  error write(const std::string& id, std::uint64_t seq,
              std::vector<event>& evs) override {
    seen.push_back({id, seq});
    events += evs.size();
    return {};
  }
};

} // namespace

TEST_CASE("simulator: run_simulation stops at an event count, sequences grow") {
  simulation_options so;
  so.fleet = base();
  so.fleet.duration = 0;
  so.max_events = 12345;
  collecting_sink sink;
  std::atomic<bool> stop{false};
  auto st = run_simulation(so, stop, sink);
  REQUIRE(static_cast<bool>(st));
  CHECK(st->events == 12345);
  CHECK(sink.events == 12345);
  std::map<std::string, std::uint64_t> last;
  for (const auto& [id, seq] : sink.seen) {
    CHECK(seq == last[id] + 1);
    last[id] = seq;
  }
  CHECK(last.size() == 15); // 12 agents, 3 hypervisors
}

namespace {

// Records when (wall clock) each source's batch left, and what it held.
struct timed_sink : batch_sink {
  struct sent {
    std::string id;
    std::chrono::steady_clock::time_point when;
    time_ns first = 0;
    std::size_t events = 0;
  };
  std::vector<sent> seen;
  error write(const std::string& id, std::uint64_t,
              std::vector<event>& evs) override {
    auto when = std::chrono::steady_clock::now();
    time_ns first = INT64_MAX;
    for (const auto& e : evs)
      first = std::min(first, e.time);
    seen.push_back({id, when, first, evs.size()});
    return {};
  }
};

} // namespace

TEST_CASE("simulator: a pre-rendered replay writes the frames a replay "
          "that encodes as it goes writes, byte for byte") {
  test::temp_dir dir;
  simulation_options so;
  so.fleet = base();
  so.fleet.duration = 2 * minute;
  so.speed = 6000;
  std::atomic<bool> stop{false};
  std::vector<std::vector<std::string>> frames;
  for (bool prerender : {false, true}) {
    so.prerender = prerender;
    auto file = dir.path / (prerender ? "pre.bin" : "live.bin");
    auto sink = open_file_sink(file);
    REQUIRE(static_cast<bool>(sink));
    auto st = run_simulation(so, stop, **sink);
    REQUIRE(static_cast<bool>(st));
    auto read = read_frame_file(file);
    REQUIRE(static_cast<bool>(read));
    CHECK(read->size() == st->batches);
    frames.push_back(std::move(*read));
  }
  REQUIRE(frames[0].size() > 15);
  CHECK(frames[0] == frames[1]);
}

TEST_CASE("simulator: a paced replay sends each source on its own phase, "
          "no earlier than its compressed time, and the same events") {
  constexpr double speed = 600; // 2 simulated minutes in 0.2 s
  simulation_options so;
  so.fleet = base();
  so.fleet.duration = 2 * minute;
  so.speed = speed;
  std::atomic<bool> stop{false};
  // Pre-rendered, the frames are encoded before the clock starts (the
  // timed sink decodes them: batch_sink::write_frame).
  for (bool prerender : {false, true}) {
    CAPTURE(prerender);
    so.prerender = prerender;
    so.speed = speed;
    timed_sink paced;
    auto begin = std::chrono::steady_clock::now();
    auto st = run_simulation(so, stop, paced);
    REQUIRE(static_cast<bool>(st));
    // Every batch leaves at or after its release time, each step on its own.
    std::map<std::string, std::size_t> per_source;
    std::size_t events = 0;
    for (const auto& s : paced.seen) {
      ++per_source[s.id];
      events += s.events;
      auto due = static_cast<double>(s.first - t0 + source_phase(s.id)) / 1e9
                 / speed;
      auto at = std::chrono::duration<double>(s.when - begin).count();
      CHECK(at >= due - 1e-3);
    }
    CHECK(per_source.size() == 15);
    CHECK(events == st->events);
    // The sources' phases differ: they do not all send at once.
    std::set<time_ns> phases;
    for (const auto& [id, n] : per_source) {
      auto ph = source_phase(id);
      CHECK(ph >= 0);
      CHECK(ph < agent_interval);
      phases.insert(ph / 1'000'000'000);
    }
    CHECK(phases.size() >= 6);
    // The same events as a replay at full speed (which merges steps).
    so.speed = 0;
    so.prerender = false;
    collecting_sink fast;
    auto st2 = run_simulation(so, stop, fast);
    REQUIRE(static_cast<bool>(st2));
    CHECK(st->events == st2->events);
    CHECK(st->per_sourcetype == st2->per_sourcetype);
  }
  // Pacing goes with nothing else that decides when to send.
  so.speed = speed;
  so.live = true;
  collecting_sink fast;
  auto bad = run_simulation(so, stop, fast);
  REQUIRE_FALSE(static_cast<bool>(bad));
  CHECK(bad.error().code == ec::usage);
}
