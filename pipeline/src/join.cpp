#include "parallax/pipeline/join.hpp"

#include "parallax/schemas/hash.hpp"
#include "parallax/schemas/identity.hpp"
#include "parallax/schemas/metric_pairs.hpp"

#include <algorithm>
#include <optional>

namespace parallax {

namespace {

std::optional<double> number(const value_view& v) {
  if (auto i = std::get_if<std::int64_t>(&v))
    return static_cast<double>(*i);
  if (auto d = std::get_if<double>(&v))
    return *d;
  return std::nullopt;
}

std::optional<double> number(const event_view& e, std::string_view name) {
  if (auto v = e.find(name))
    return number(*v);
  return std::nullopt;
}

std::optional<std::string> mac_of(const event_view& e,
                                  std::string_view field = "mac") {
  if (auto v = e.find(field))
    if (auto s = std::get_if<std::string_view>(v))
      return normalize_mac(*s);
  return std::nullopt;
}

time_ns floor_to(time_ns t, time_ns width) {
  auto q = t / width;
  if (t % width < 0)
    --q;
  return q * width;
}

constexpr std::string_view nic_fields[] = {"rx_bytes_per_s", "tx_bytes_per_s"};

// The VM-wide disk inputs (schemas/metric_pairs.hpp). libvirt's per-disk
// samples and the guest's per-device ones are summed per round into them;
// vSphere sends them VM-wide (normalised from virtualDisk.*.average).
constexpr std::string_view hv_disk_rd = "hv:disk_rd_bytes_per_s";
constexpr std::string_view hv_disk_wr = "hv:disk_wr_bytes_per_s";
constexpr std::string_view guest_disk_rd = "guest:disk_rd_bytes_per_s";
constexpr std::string_view guest_disk_wr = "guest:disk_wr_bytes_per_s";

// Whether the catalog reads `<prefix><name>` (prefix "hv:" or "guest:")
// as a plain window mean: the other numeric fields of a sample are not
// kept (a hypervisor sample has dozens).
bool catalog_input(std::string_view prefix, std::string_view name) {
  auto is = [&](std::string_view key) {
    return key.size() == prefix.size() + name.size()
           && key.starts_with(prefix) && key.ends_with(name);
  };
  for (const auto& p : metric_pairs) {
    if (p.per_nic)
      continue;
    if (is(p.hv[0]) || is(p.hv[1]) || is(p.hv_minus) || is(p.guest)
        || is(p.guest_per))
      return true;
  }
  return false;
}

} // namespace

void joiner::window::put(std::string_view key, double x) {
  for (auto& [k, m] : inputs)
    if (same_text(k, key)) {
      m.sum += x;
      ++m.n;
      return;
    }
  inputs.emplace_back(std::string{key}, mean{x, 1});
}

joiner::joiner(join_options opts) : opts_{opts} {
}

joiner::window* joiner::window_for(vm_state& vm, time_ns t) {
  // Windows are (start, start + window]: a sample describes the interval
  // that ends at its time (a rate since the previous sample; a hypervisor
  // poll covers its whole interval), so one stamped on a boundary closes
  // the window it ends.
  auto start = floor_to(t - 1, opts_.window);
  if (start >= vm.closed_before) {
    auto& w = vm.open[start];
    w.start = start;
    return &w;
  }
  // The horizon counts back from the VM's watermark.
  auto watermark = vm.max_time - opts_.allowed_lateness;
  if (start + opts_.window + opts_.correction_horizon < watermark) {
    ++counters_.late_dropped;
    return nullptr;
  }
  auto& w = vm.closed[start];
  w.start = start;
  w.dirty = true;
  vm.any_dirty = true;
  ++counters_.late_joined;
  return &w;
}

void joiner::add(std::string_view vm_name, std::string_view vm_uuid,
                 const event_view& e) {
  auto st = e.sourcetype;
  bool hv_vm = st == "hv:libvirt:vm" || st == "hv:vsphere";
  bool hv_nic = st == "hv:libvirt:nic";
  bool os_system = st == "os:system";
  bool os_process = st == "os:process";
  bool os_net = st == "os:net";
  bool hv_disk = st == "hv:libvirt:disk";
  bool os_disk = st == "os:disk";
  if (!(hv_vm || hv_nic || hv_disk || os_system || os_process || os_net
        || os_disk)) {
    ++counters_.ignored;
    return;
  }
  auto it = vms_.find(vm_uuid);
  if (it == vms_.end())
    it = vms_.emplace(std::string{vm_uuid}, vm_state{}).first;
  auto& vm = it->second;
  if (!vm.touched) {
    vm.touched = true;
    touched_.push_back(&*it);
  }
  if (vm.name != vm_name)
    vm.name = std::string{vm_name};
  auto* w = window_for(vm, e.time);
  vm.max_time = std::max(vm.max_time, e.time);
  latest_ = std::max(latest_, e.time);
  if (!w)
    return;
  ++counters_.samples;
  std::string key;
  if (hv_vm || hv_nic || hv_disk) {
    w->hv = true;
    vm.ever_hv = true;
    if (!e.host.empty()) {
      w->host = std::string{e.host};
      vm.host = w->host;
    }
  } else {
    w->guest = true;
    vm.ever_guest = true;
  }
  if (hv_vm || os_system) {
    std::string_view prefix = hv_vm ? "hv:" : "guest:";
    for (const auto& f : e.fields)
      if (auto x = number(f.value); x && catalog_input(prefix, f.name)) {
        key.assign(prefix);
        key.append(f.name);
        w->put(key, *x);
      }
  }
  if (os_process) {
    auto& round = w->proc_rounds[e.time];
    round.first += number(e, "cpu_pct").value_or(0);
    round.second += number(e, "rss_bytes").value_or(0);
    return;
  }
  if (hv_disk || os_disk) {
    auto& round = (hv_disk ? w->hv_disk_rounds : w->guest_disk_rounds)[e.time];
    ++round.n;
    if (auto x = number(e, "rd_bytes_per_s")) {
      round.rd += *x;
      ++round.rd_n;
    }
    if (auto x = number(e, "wr_bytes_per_s")) {
      round.wr += *x;
      ++round.wr_n;
    }
    return;
  }
  // Per-NIC traffic. A vSphere sample's VM-wide rates belong to its NIC
  // when it has exactly one.
  std::optional<std::string> mac;
  if (hv_nic || os_net) {
    mac = mac_of(e);
  } else if (hv_vm) {
    if (auto v = e.find("macs"))
      if (auto s = std::get_if<std::string_view>(v);
          s && s->find(',') == std::string_view::npos)
        mac = normalize_mac(*s);
  }
  if (!mac || os_system)
    return;
  for (auto field : nic_fields)
    if (auto x = number(e, field)) {
      key.assign(os_net ? "guest:nic:" : "hv:nic:");
      key.append(field).append("|").append(*mac);
      w->put(key, *x);
    }
}

void joiner::close(vm_state& vm, window& w, bool correction,
                   std::vector<delta>& deltas,
                   std::vector<silence>& silences) {
  auto get = [&](std::string_view key) -> std::optional<double> {
    for (const auto& [k, m] : w.inputs)
      if (m.n > 0 && same_text(k, key))
        return m.sum / static_cast<double>(m.n);
    return std::nullopt;
  };
  // Per-process sums: one per agent round, then their mean.
  std::optional<double> proc_cpu;
  if (!w.proc_rounds.empty()) {
    double sum = 0;
    for (const auto& [t, r] : w.proc_rounds)
      sum += r.first;
    proc_cpu = sum / static_cast<double>(w.proc_rounds.size());
  }
  // Disk sums: one per round in which every disk had the rate, then their
  // mean.
  auto disk_mean = [](const std::map<time_ns, disk_round>& rounds,
                      bool rd) -> std::optional<double> {
    double sum = 0;
    std::size_t n = 0;
    for (const auto& [t, r] : rounds)
      if ((rd ? r.rd_n : r.wr_n) == r.n) {
        sum += rd ? r.rd : r.wr;
        ++n;
      }
    if (n == 0)
      return std::nullopt;
    return sum / static_cast<double>(n);
  };
  auto input = [&](std::string_view key) -> std::optional<double> {
    if (key == "guest:proc_cpu_pct")
      return proc_cpu;
    if (key == guest_disk_rd || key == guest_disk_wr)
      return disk_mean(w.guest_disk_rounds, key == guest_disk_rd);
    // libvirt: per-disk samples; vSphere: VM-wide fields, as other inputs.
    if ((key == hv_disk_rd || key == hv_disk_wr) && !w.hv_disk_rounds.empty())
      return disk_mean(w.hv_disk_rounds, key == hv_disk_rd);
    return get(key);
  };
  auto host = w.host.empty() ? vm.host : w.host;
  auto emit = [&](const metric_pair& p, double hv, double guest,
                  std::string mac) {
    // Made in place (the vm_uuid is set by advance(), which knows it).
    auto& d = deltas.emplace_back();
    d.vm = vm.name;
    d.host = host;
    d.metric = std::string{p.name};
    d.unit = std::string{p.unit};
    d.mac = std::move(mac);
    d.window_start = w.start;
    d.window_end = w.start + opts_.window;
    d.hv_value = hv;
    d.guest_value = guest;
    d.abs_diff = hv - guest;
    d.rel_diff = hv != 0 ? (hv - guest) / hv : 0;
    d.explained_share = hv != 0 ? guest / hv : 0;
    d.correction = correction;
    ++counters_.deltas;
    if (correction)
      ++counters_.corrections;
  };
  if (w.hv && w.guest) {
    for (const auto& p : metric_pairs) {
      if (p.per_nic) {
        auto hv_field = p.hv[0].substr(p.hv[0].find("nic:") + 4);
        auto guest_field = p.guest.substr(p.guest.find("nic:") + 4);
        // Keys built in place (this runs for every window of every VM).
        std::string hv_prefix{"hv:nic:"};
        hv_prefix.append(hv_field).append("|");
        std::string guest_key;
        for (const auto& [k, m] : w.inputs) {
          if (!k.starts_with(hv_prefix) || m.n == 0)
            continue;
          auto mac = k.substr(hv_prefix.size());
          guest_key.assign("guest:nic:");
          guest_key.append(guest_field).append("|").append(mac);
          auto g = get(guest_key);
          if (g)
            emit(p, m.sum / static_cast<double>(m.n), *g, mac);
        }
        continue;
      }
      std::optional<double> hv;
      for (auto alt : p.hv)
        if (!alt.empty() && (hv = input(alt)))
          break;
      auto guest = input(p.guest);
      if (!hv || !guest)
        continue;
      if (!p.hv_minus.empty())
        if (auto minus = input(p.hv_minus))
          *hv -= *minus;
      if (!p.guest_per.empty()) {
        auto per = input(p.guest_per);
        if (!per || *per <= 0)
          continue;
        *guest /= *per;
      }
      emit(p, *hv, *guest, {});
    }
  } else if (!correction) {
    // One side silent: a signal, when that side has ever spoken.
    bool guest_missing = w.hv && !w.guest && vm.ever_guest;
    bool hv_missing = w.guest && !w.hv && vm.ever_hv;
    if (guest_missing || hv_missing) {
      silence s;
      s.vm = vm.name;
      s.host = host;
      s.window_start = w.start;
      s.window_end = w.start + opts_.window;
      s.guest_missing = guest_missing;
      silences.push_back(std::move(s));
      ++(guest_missing ? counters_.guest_silent : counters_.hypervisor_silent);
    }
  }
}

time_ns joiner::due(const vm_state& vm) const {
  auto at = INT64_MAX;
  if (!vm.open.empty())
    at = vm.open.begin()->first + opts_.window;
  if (!vm.closed.empty())
    at = std::min(at, vm.closed.begin()->first + opts_.window
                        + opts_.correction_horizon);
  return at;
}

void joiner::advance_vm(const std::string& uuid, vm_state& vm,
                        time_ns fleet_cut, std::vector<delta>& deltas,
                        std::vector<silence>& silences) {
  auto first_delta = deltas.size();
  auto first_silence = silences.size();
  auto cut = vm.max_time == INT64_MIN ? INT64_MIN
                                      : vm.max_time - opts_.allowed_lateness;
  cut = std::max(cut, fleet_cut);
  // Late data first: windows already closed, emitted again.
  if (vm.any_dirty) {
    vm.any_dirty = false;
    for (auto& [start, w] : vm.closed)
      if (w.dirty) {
        w.dirty = false;
        close(vm, w, true, deltas, silences);
      }
  }
  while (!vm.open.empty() && vm.open.begin()->first + opts_.window < cut) {
    auto node = vm.open.extract(vm.open.begin());
    close(vm, node.mapped(), false, deltas, silences);
    ++counters_.windows_closed;
    vm.closed_before = node.key() + opts_.window;
    vm.closed.insert(std::move(node));
  }
  // Forget closed windows beyond the correction horizon.
  while (!vm.closed.empty()
         && vm.closed.begin()->first + opts_.window + opts_.correction_horizon
              < cut)
    vm.closed.erase(vm.closed.begin());
  for (auto i = first_delta; i < deltas.size(); ++i)
    deltas[i].vm_uuid = uuid;
  for (auto i = first_silence; i < silences.size(); ++i)
    silences[i].vm_uuid = uuid;
}

void joiner::advance(std::vector<delta>& deltas,
                     std::vector<silence>& silences) {
  auto fleet_cut = latest_ == INT64_MIN
                     ? INT64_MIN
                     : latest_ - opts_.allowed_lateness - opts_.silence_timeout;
  // A VM not fed since it was last advanced changed nothing but the
  // fleet-wide cut: it has work only once that passes its due(). So the
  // VMs just fed are advanced, and all of them only when the cut passes
  // the least due() of the rest: a call per batch no longer walks the
  // whole fleet (its windows' maps, a few cache misses per VM).
  if (fleet_cut > fleet_due_) {
    auto least = INT64_MAX;
    for (auto& [uuid, vm] : vms_) {
      advance_vm(uuid, vm, fleet_cut, deltas, silences);
      vm.touched = false;
      least = std::min(least, due(vm));
    }
    fleet_due_ = least;
  } else {
    for (auto* kv : touched_) {
      advance_vm(kv->first, kv->second, fleet_cut, deltas, silences);
      kv->second.touched = false;
      fleet_due_ = std::min(fleet_due_, due(kv->second));
    }
  }
  touched_.clear();
}

} // namespace parallax
