#include "parallax/pipeline/identity_resolver.hpp"

#include "parallax/schemas/identity.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>

namespace parallax {

namespace {

// Evidence names; attributions point at these (static storage).
enum key_id : std::uint8_t {
  k_none,
  k_vm_uuid,
  k_mac_bios_uuid,
  k_bios_uuid,
  k_mac,
  k_mac_ip,
  k_mac_hostname,
  k_ip,
  k_hostname,
  k_host,
  k_mac_vm_name,
  k_vm_name,
  k_count,
};

constexpr std::array<std::string_view, k_count> key_names = {
  "",     "vm_uuid",  "mac+bios_uuid", "bios_uuid", "mac",         "mac+ip",
  "mac+hostname", "ip", "hostname", "host", "mac+vm_name", "vm_name",
};

// Confidence of a UUID-mismatched guest bound by weaker keys after the grace.
constexpr double mismatch_scale = 0.7;

bool is_uuid_key(std::uint8_t k) {
  return k == k_mac_bios_uuid || k == k_bios_uuid;
}

// The fields the resolver reads, in one pass over the event.
struct id_fields {
  std::optional<std::string_view> vm_uuid, vm_name, macs, mac, ips, hostname,
    bios_uuid, kind;
  bool bios_readable = true;
};

id_fields scan(const event_view& e) {
  id_fields f;
  for (const auto& fv : e.fields) {
    if (fv.value.index() == 3) {
      if (fv.name == "bios_readable")
        f.bios_readable = std::get<3>(fv.value);
      continue;
    }
    auto s = std::get_if<std::string_view>(&fv.value);
    if (!s)
      continue;
    auto n = fv.name;
    if (n == "vm_uuid" && !f.vm_uuid)
      f.vm_uuid = *s;
    else if (n == "vm_name" && !f.vm_name)
      f.vm_name = *s;
    else if (n == "macs" && !f.macs)
      f.macs = *s;
    else if (n == "mac" && !f.mac)
      f.mac = *s;
    else if (n == "ips" && !f.ips)
      f.ips = *s;
    else if (n == "hostname" && !f.hostname)
      f.hostname = *s;
    else if (n == "bios_uuid" && !f.bios_uuid)
      f.bios_uuid = *s;
    else if (n == "kind" && !f.kind)
      f.kind = *s;
  }
  return f;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split(std::string_view list) {
  std::vector<std::string_view> out;
  while (!list.empty()) {
    auto c = list.find(',');
    auto item = trim(list.substr(0, c));
    if (!item.empty())
      out.push_back(item);
    if (c == std::string_view::npos)
      break;
    list.remove_prefix(c + 1);
  }
  return out;
}

std::vector<std::string> parse_macs(std::string_view list) {
  std::vector<std::string> out;
  for (auto item : split(list))
    if (auto m = normalize_mac(item); m && std::find(out.begin(), out.end(), *m) == out.end())
      out.push_back(std::move(*m));
  return out;
}

std::vector<std::string> parse_ips(std::string_view list) {
  std::vector<std::string> out;
  for (auto item : split(list))
    if (std::find(out.begin(), out.end(), item) == out.end())
      out.emplace_back(item);
  return out;
}

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

/// The short name in lower case: `DB-02.prod.example.com` -> `db-02`.
std::string name_key(std::string_view name) {
  name = trim(name);
  auto dot = name.find('.');
  if (dot != std::string_view::npos && dot > 0)
    name = name.substr(0, dot);
  std::string out(name);
  for (auto& c : out)
    c = lower(c);
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v)
    out += (out.empty() ? "" : ",") + s;
  return out;
}

template <class Map, class Id>
void index_add(Map& m, std::string_view key, Id id) {
  if (key.empty())
    return;
  auto it = m.find(key);
  if (it == m.end())
    it = m.emplace(std::string{key}, typename Map::mapped_type{}).first;
  if (std::find(it->second.begin(), it->second.end(), id) == it->second.end())
    it->second.push_back(id);
}

template <class Map, class Id>
void index_remove(Map& m, std::string_view key, Id id) {
  auto it = m.find(key);
  if (it == m.end())
    return;
  std::erase(it->second, id);
  if (it->second.empty())
    m.erase(it);
}

template <class Map>
const std::vector<std::uint32_t>* index_find(const Map& m, std::string_view key) {
  auto it = m.find(key);
  return it == m.end() ? nullptr : &it->second;
}

void add_unique(std::vector<std::uint32_t>& v, std::uint32_t x) {
  if (std::find(v.begin(), v.end(), x) == v.end())
    v.push_back(x);
}

} // namespace

std::string_view to_string(identity_change_kind k) noexcept {
  switch (k) {
    case identity_change_kind::vm_added: return "vm_added";
    case identity_change_kind::bound: return "bound";
    case identity_change_kind::rebound: return "rebound";
    case identity_change_kind::unbound: return "unbound";
    case identity_change_kind::host_changed: return "host_changed";
    case identity_change_kind::name_changed: return "name_changed";
    case identity_change_kind::hostname_changed: return "hostname_changed";
    case identity_change_kind::ip_changed: return "ip_changed";
    case identity_change_kind::mac_changed: return "mac_changed";
    case identity_change_kind::mac_conflict: return "mac_conflict";
    case identity_change_kind::conflict_cleared: return "conflict_cleared";
    case identity_change_kind::conflict_settled: return "conflict_settled";
    case identity_change_kind::conflict_unsettled: return "conflict_unsettled";
  }
  return "unknown";
}

event to_event(const identity_change& c) {
  event e;
  e.time = c.time;
  e.host = c.vm;
  e.source = "parallax:identity";
  e.sourcetype = "parallax:identity";
  e.fields = {{"kind", std::string{to_string(c.kind)}},
              {"vm", c.vm},
              {"vm_uuid", c.vm_uuid},
              {"old", c.old_value},
              {"new", c.new_value},
              {"keys", c.keys},
              {"confidence", c.confidence}};
  if (!c.source_id.empty())
    e.fields.push_back({"source_id", c.source_id});
  return e;
}

identity_resolver::identity_resolver(identity_options opts) : opts_{opts} {
}

// -- observing ----------------------------------------------------------------

std::optional<attribution> identity_resolver::observe(std::string_view source_id,
                                                      const event& e) {
  std::vector<field_view> fields;
  fields.reserve(e.fields.size());
  for (const auto& f : e.fields)
    fields.push_back({f.name, view(f.value)});
  return observe(source_id, view_of(e, fields));
}

std::optional<attribution> identity_resolver::observe(std::string_view source_id,
                                                      const event_view& e) {
  ++counters_.events;
  std::optional<attribution> a;
  if (e.sourcetype.starts_with("hv:"))
    a = e.sourcetype == "hv:collectd" ? collectd_event(e) : hv_event(e);
  else
    a = guest_event(source_id, e);
  if (!a)
    ++counters_.unattributed;
  else if (a->vm.empty())
    ++counters_.ambiguous;
  else
    ++counters_.attributed;
  return a;
}

attribution identity_resolver::of_vm(const vm_state& v, std::uint8_t key,
                                     double confidence, bool conflict) const {
  return attribution{v.rec.name, v.rec.uuid, key_names[key], confidence, conflict};
}

std::int64_t identity_resolver::find_uuid(std::string_view uuid) const {
  auto it = uuid_index_.find(uuid);
  return it == uuid_index_.end() ? -1 : static_cast<std::int64_t>(it->second);
}

std::optional<attribution> identity_resolver::hv_event(const event_view& e) {
  auto f = scan(e);
  if (!f.vm_uuid)
    return collectd_event(e); // no UUID: by MAC or (host, name) like collectd
  auto vi = touch_vm(e, *f.vm_uuid);
  if (vi < 0)
    return collectd_event(e);
  const auto& v = vms_[static_cast<std::size_t>(vi)];
  return of_vm(v, k_vm_uuid, 1.0, v.rec.conflict);
}

std::optional<attribution> identity_resolver::collectd_event(const event_view& e) {
  auto f = scan(e);
  auto name_matches = [&](std::uint32_t c, bool need_host) {
    const auto& r = vms_[c].rec;
    return f.vm_name && r.name == *f.vm_name && (!need_host || r.host == e.host);
  };
  if (f.mac) {
    auto c = index_find(mac_vms_, *f.mac);
    if (!c) {
      if (auto m = normalize_mac(*f.mac))
        c = index_find(mac_vms_, *m);
    }
    if (c && c->size() == 1) {
      const auto& v = vms_[(*c)[0]];
      return of_vm(v, k_mac, 0.95, v.rec.conflict);
    }
    if (c && c->size() > 1) {
      std::int64_t hit = -1;
      int n = 0;
      for (auto x : *c)
        if (name_matches(x, true)) {
          hit = x;
          ++n;
        }
      if (n == 1)
        return of_vm(vms_[static_cast<std::size_t>(hit)], k_mac_vm_name, 0.95, true);
    }
  }
  if (f.vm_name && !f.vm_name->empty()) {
    char buf[128];
    auto name = trim(*f.vm_name);
    auto dot = name.find('.');
    if (dot != std::string_view::npos && dot > 0)
      name = name.substr(0, dot);
    if (name.size() > sizeof buf)
      return std::nullopt;
    for (std::size_t i = 0; i < name.size(); ++i)
      buf[i] = lower(name[i]);
    auto c = index_find(name_vms_, std::string_view{buf, name.size()});
    if (!c)
      return std::nullopt;
    std::int64_t on_host = -1, anywhere = -1;
    int n_host = 0, n_any = 0;
    for (auto x : *c) {
      if (name_matches(x, true)) {
        on_host = x;
        ++n_host;
      }
      if (name_matches(x, false)) {
        anywhere = x;
        ++n_any;
      }
    }
    if (n_host == 1) {
      const auto& v = vms_[static_cast<std::size_t>(on_host)];
      return of_vm(v, k_vm_name, 0.9, v.rec.conflict);
    }
    if (n_host == 0 && n_any == 1) {
      const auto& v = vms_[static_cast<std::size_t>(anywhere)];
      return of_vm(v, k_vm_name, 0.7, v.rec.conflict);
    }
  }
  return std::nullopt;
}

// -- the hypervisor inventory ------------------------------------------------

void identity_resolver::open_version(vm_state& v, time_ns t) {
  vm_version ver{t, v.rec.host, v.rec.name, v.rec.macs, v.rec.ips};
  if (!v.rec.history.empty() && v.rec.history.back().from == t)
    v.rec.history.back() = std::move(ver);
  else
    v.rec.history.push_back(std::move(ver));
}

void identity_resolver::index_vm_name(std::size_t vi, bool add) {
  auto key = name_key(vms_[vi].rec.name);
  if (add)
    index_add(name_vms_, key, static_cast<std::uint32_t>(vi));
  else
    index_remove(name_vms_, key, static_cast<std::uint32_t>(vi));
}

void identity_resolver::set_macs(std::size_t vi, std::vector<std::string> macs,
                                 time_ns, ids& affected) {
  auto& v = vms_[vi];
  auto id = static_cast<std::uint32_t>(vi);
  add_unique(affected, id);
  for (const auto& m : v.rec.macs) {
    if (auto c = index_find(mac_vms_, m))
      for (auto x : *c)
        add_unique(affected, x);
    index_remove(mac_vms_, m, id);
  }
  v.rec.macs = std::move(macs);
  for (const auto& m : v.rec.macs) {
    index_add(mac_vms_, m, id);
    for (auto x : *index_find(mac_vms_, m))
      add_unique(affected, x);
  }
}

void identity_resolver::set_ips(std::size_t vi, std::vector<std::string> ips, time_ns) {
  auto& v = vms_[vi];
  auto id = static_cast<std::uint32_t>(vi);
  for (const auto& ip : v.rec.ips)
    index_remove(ip_vms_, ip, id);
  v.rec.ips = std::move(ips);
  for (const auto& ip : v.rec.ips)
    index_add(ip_vms_, ip, id);
}

void identity_resolver::refresh_conflicts(const ids& affected, time_ns t) {
  for (auto vi : affected) {
    auto& v = vms_[vi];
    std::vector<std::string> shared, peers;
    for (const auto& m : v.rec.macs) {
      auto c = index_find(mac_vms_, m);
      if (!c || c->size() < 2)
        continue;
      shared.push_back(m);
      for (auto x : *c)
        if (x != vi && std::find(peers.begin(), peers.end(), vms_[x].rec.name) == peers.end())
          peers.push_back(vms_[x].rec.name);
    }
    std::sort(shared.begin(), shared.end());
    std::sort(peers.begin(), peers.end());
    auto s = join(shared);
    if (s == v.shared_macs)
      continue;
    auto old = std::move(v.shared_macs);
    v.shared_macs = s;
    v.rec.conflict = !s.empty();
    if (!s.empty()) {
      ++counters_.conflicts;
      change(t, &v, identity_change_kind::mac_conflict, s, join(peers), "mac");
    } else {
      change(t, &v, identity_change_kind::conflict_cleared, old, "", "mac");
    }
  }
}

std::int64_t identity_resolver::touch_vm(const event_view& e, std::string_view uuid_raw) {
  auto f = scan(e);
  auto vi = find_uuid(uuid_raw);
  std::optional<std::string> uuid;
  if (vi < 0) {
    uuid = normalize_uuid(uuid_raw);
    if (!uuid)
      return -1;
    vi = find_uuid(*uuid);
    // Remember the sender's spelling, so that its next sample takes the
    // fast path (not saved: relearned after a load).
    if (vi >= 0)
      uuid_index_.emplace(std::string{uuid_raw}, static_cast<std::uint32_t>(vi));
  }
  auto t = e.time;
  if (vi < 0) {
    // A VM the inventory did not know.
    vi = static_cast<std::int64_t>(vms_.size());
    auto id = static_cast<std::uint32_t>(vi);
    vm_state v;
    v.rec.uuid = *uuid;
    v.rec.name = f.vm_name ? std::string{*f.vm_name} : std::string{};
    v.rec.host = std::string{e.host};
    v.rec.first_seen = v.rec.last_seen = t;
    vms_.push_back(std::move(v));
    uuid_index_.emplace(*uuid, id);
    if (uuid_raw != *uuid)
      uuid_index_.emplace(std::string{uuid_raw}, id);
    index_vm_name(id, true);
    ids affected;
    std::vector<std::string> macs;
    if (f.macs) {
      vms_[id].raw_macs = std::string{*f.macs};
      macs = parse_macs(*f.macs);
    }
    if (f.mac)
      if (auto m = normalize_mac(*f.mac); m && std::find(macs.begin(), macs.end(), *m) == macs.end())
        macs.push_back(std::move(*m));
    set_macs(id, std::move(macs), t, affected);
    if (f.ips) {
      vms_[id].raw_ips = std::string{*f.ips};
      set_ips(id, parse_ips(*f.ips), t);
    }
    auto& nv = vms_[id];
    open_version(nv, t);
    change(t, &nv, identity_change_kind::vm_added, "", nv.rec.host, "vm_uuid", 1.0);
    refresh_conflicts(affected, t);
    ids srcs;
    sources_for_vm(vms_[id], srcs);
    reevaluate(std::move(srcs), t);
    return vi;
  }
  auto idx = static_cast<std::size_t>(vi);
  auto* v = &vms_[idx];
  if (t < v->rec.last_seen) {
    // Older than what we know: a late sample (e.g. from the host it left).
    if (e.host != v->rec.host)
      ++counters_.late;
    return vi;
  }
  v->rec.last_seen = t;
  bool host_changed = !e.host.empty() && e.host != v->rec.host;
  bool name_changed = f.vm_name && !f.vm_name->empty() && *f.vm_name != v->rec.name;
  bool macs_changed = f.macs && *f.macs != v->raw_macs;
  bool mac_new = f.mac && std::find(v->rec.macs.begin(), v->rec.macs.end(), *f.mac) == v->rec.macs.end();
  bool ips_changed = f.ips && *f.ips != v->raw_ips;
  if (!host_changed && !name_changed && !macs_changed && !mac_new && !ips_changed)
    return vi; // the common case: nothing new
  // The slow path: something about the VM changed.
  bool version = false;
  ids srcs;
  sources_for_vm(*v, srcs);
  if (host_changed) {
    change(t, v, identity_change_kind::host_changed, v->rec.host, std::string{e.host},
           "vm_uuid", 1.0);
    v->rec.host = std::string{e.host};
    version = true;
  }
  if (name_changed) {
    auto old = v->rec.name;
    index_vm_name(idx, false);
    v->rec.name = std::string{*f.vm_name};
    index_vm_name(idx, true);
    change(t, v, identity_change_kind::name_changed, old, v->rec.name, "vm_uuid", 1.0);
    version = true;
  }
  ids affected;
  if (macs_changed || mac_new) {
    std::vector<std::string> macs;
    if (macs_changed) {
      v->raw_macs = std::string{*f.macs};
      macs = parse_macs(*f.macs);
    } else {
      macs = v->rec.macs;
    }
    if (f.mac)
      if (auto m = normalize_mac(*f.mac); m && std::find(macs.begin(), macs.end(), *m) == macs.end()) {
        // A NIC the VM's list does not name: keep it only with a list of
        // its own when the sample had none.
        if (!f.macs)
          macs.push_back(std::move(*m));
      }
    if (macs != v->rec.macs) {
      auto old = join(v->rec.macs);
      set_macs(idx, std::move(macs), t, affected);
      v = &vms_[idx];
      change(t, v, identity_change_kind::mac_changed, old, join(v->rec.macs), "vm_uuid", 1.0);
      version = true;
    }
  }
  if (ips_changed) {
    v->raw_ips = std::string{*f.ips};
    auto ips = parse_ips(*f.ips);
    if (ips != v->rec.ips) {
      auto old = join(v->rec.ips);
      set_ips(idx, std::move(ips), t);
      change(t, v, identity_change_kind::ip_changed, old, join(v->rec.ips), "vm_uuid", 1.0);
      version = true;
    }
  }
  if (version)
    open_version(*v, t);
  refresh_conflicts(affected, t);
  if (name_changed || !affected.empty() || ips_changed) {
    sources_for_vm(vms_[idx], srcs);
    for (auto x : affected)
      if (x != idx)
        sources_for_vm(vms_[x], srcs);
    reevaluate(std::move(srcs), t);
  }
  return vi;
}

// -- guest bindings ------------------------------------------------------------

identity_resolver::source_state& identity_resolver::source(std::string_view source_id) {
  auto it = src_index_.find(source_id);
  if (it != src_index_.end())
    return srcs_[it->second];
  auto si = static_cast<std::uint32_t>(srcs_.size());
  srcs_.emplace_back();
  srcs_.back().rec.source_id = std::string{source_id};
  src_index_.emplace(std::string{source_id}, si);
  return srcs_.back();
}

void identity_resolver::index_source(std::size_t si, bool add) {
  const auto& s = srcs_[si];
  auto id = static_cast<std::uint32_t>(si);
  auto op = [&](auto& m, std::string_view key) {
    if (add)
      index_add(m, key, id);
    else
      index_remove(m, key, id);
  };
  op(uuid_srcs_, s.rec.bios_uuid);
  if (s.uuid_swapped != s.rec.bios_uuid)
    op(uuid_srcs_, s.uuid_swapped);
  for (const auto& m : s.rec.macs)
    op(mac_srcs_, m);
  for (const auto& ip : s.rec.ips)
    op(ip_srcs_, ip);
  op(name_srcs_, name_key(s.rec.hostname));
}

void identity_resolver::sources_for_vm(const vm_state& v, ids& out) const {
  auto add = [&](const sv_map<ids>& m, std::string_view key) {
    if (auto c = index_find(m, key))
      for (auto x : *c)
        add_unique(out, x);
  };
  add(uuid_srcs_, v.rec.uuid);
  for (const auto& m : v.rec.macs)
    add(mac_srcs_, m);
  for (const auto& ip : v.rec.ips)
    add(ip_srcs_, ip);
  add(name_srcs_, name_key(v.rec.name));
}

void identity_resolver::identity_event(source_state& s, const event_view& e) {
  auto f = scan(e);
  auto hostname = f.hostname.value_or("");
  auto macs = f.macs.value_or("");
  auto ips = f.ips.value_or("");
  auto uuid = f.bios_readable ? f.bios_uuid.value_or("") : std::string_view{};
  auto si = static_cast<std::size_t>(&s - srcs_.data());
  if (s.rec.since != 0 && hostname == s.raw_hostname && macs == s.raw_macs &&
      ips == s.raw_ips && uuid == s.raw_uuid)
    return; // the hourly repeat
  bool first = s.rec.since == 0;
  index_source(si, false);
  auto old_hostname = s.rec.hostname;
  auto old_ips = s.rec.ips;
  s.raw_hostname = std::string{hostname};
  s.raw_macs = std::string{macs};
  s.raw_ips = std::string{ips};
  s.raw_uuid = std::string{uuid};
  s.rec.hostname = std::string{trim(hostname)};
  s.rec.macs = parse_macs(macs);
  s.nic_macs.clear();
  s.rec.ips = parse_ips(ips);
  auto u = normalize_uuid(uuid);
  s.rec.bios_uuid = u ? *u : std::string{};
  s.uuid_swapped = u ? swap_uuid_byte_order(*u) : std::string{};
  s.rec.since = e.time == 0 ? 1 : e.time;
  s.grace_done = false;
  s.last_time = e.time;
  index_source(si, true);
  if (!first && s.rec.state == binding_state::bound) {
    const auto& v = vms_[static_cast<std::size_t>(s.vm)];
    if (s.rec.hostname != old_hostname)
      change(e.time, &v, identity_change_kind::hostname_changed, old_hostname,
             s.rec.hostname, s.rec.keys, s.rec.confidence, s.rec.source_id);
    if (s.rec.ips != old_ips)
      change(e.time, &v, identity_change_kind::ip_changed, join(old_ips), join(s.rec.ips),
             s.rec.keys, s.rec.confidence, s.rec.source_id);
  }
  apply(si, evaluate(s, e.time), e.time);
}

void identity_resolver::nic_event(source_state& s, const event_view& e) {
  auto f = scan(e);
  if (!f.mac || (f.kind && *f.kind != "physical"))
    return; // loopback, bridges, veth, docker: not the VM's identity
  auto m = normalize_mac(*f.mac);
  if (!m || std::find(s.rec.macs.begin(), s.rec.macs.end(), *m) != s.rec.macs.end())
    return;
  auto si = static_cast<std::size_t>(&s - srcs_.data());
  index_source(si, false);
  s.rec.macs.push_back(*m);
  s.nic_macs.push_back(std::move(*m));
  index_source(si, true);
  apply(si, evaluate(s, e.time), e.time);
}

std::optional<attribution> identity_resolver::guest_event(std::string_view source_id,
                                                          const event_view& e) {
  if (e.sourcetype == "os:identity") {
    auto& s = source(source_id);
    identity_event(s, e);
    return of_source(s, e.time);
  }
  auto it = src_index_.find(source_id);
  if (it == src_index_.end())
    return fallback(e);
  auto& s = srcs_[it->second];
  if (e.sourcetype == "os:nic")
    nic_event(s, e);
  return of_source(s, e.time);
}

std::optional<attribution> identity_resolver::of_source(source_state& s, time_ns t) {
  if (t > s.last_time)
    s.last_time = t;
  if (s.rec.state == binding_state::pending && !s.grace_done &&
      t - s.rec.since >= opts_.uuid_grace) {
    // The inventory had its chance: let the weaker keys speak.
    s.grace_done = true;
    apply(static_cast<std::size_t>(&s - srcs_.data()), evaluate(s, t), t);
  }
  switch (s.rec.state) {
    case binding_state::bound:
      return of_vm(vms_[static_cast<std::size_t>(s.vm)], s.key, s.rec.confidence,
                   s.rec.conflict);
    case binding_state::ambiguous:
      return attribution{{}, {}, key_names[k_mac], 0, true};
    case binding_state::pending: break;
  }
  ++counters_.pending;
  return std::nullopt;
}

std::optional<attribution> identity_resolver::fallback(const event_view& e) {
  if (!opts_.host_fallback || e.host.empty())
    return std::nullopt;
  char buf[128];
  auto name = trim(e.host);
  auto dot = name.find('.');
  if (dot != std::string_view::npos && dot > 0)
    name = name.substr(0, dot);
  if (name.size() > sizeof buf)
    return std::nullopt;
  for (std::size_t i = 0; i < name.size(); ++i)
    buf[i] = lower(name[i]);
  auto c = index_find(name_vms_, std::string_view{buf, name.size()});
  if (!c || c->size() != 1)
    return std::nullopt;
  const auto& v = vms_[(*c)[0]];
  if (!v.rec.guest_source.empty())
    return std::nullopt; // a guest is bound to it: this one may be its clone
  ++counters_.host_fallback;
  return of_vm(v, k_host, 0.3, v.rec.conflict);
}

identity_resolver::verdict identity_resolver::evaluate(const source_state& s,
                                                       time_ns now) const {
  verdict r;
  const auto& g = s.rec;
  auto bind = [&](std::uint32_t vi, std::uint8_t key, double conf, bool conflict) {
    r.state = binding_state::bound;
    r.vm = vi;
    r.key = key;
    r.confidence = conf;
    r.conflict = conflict;
    return r;
  };
  // 1. The BIOS UUID, in either byte order: the strongest key.
  bool uuid_unknown = false;
  if (!g.bios_uuid.empty()) {
    auto vi = find_uuid(g.bios_uuid);
    if (vi < 0)
      vi = find_uuid(s.uuid_swapped);
    if (vi >= 0) {
      bool agree = false, other = false;
      for (const auto& m : g.macs)
        if (auto c = index_find(mac_vms_, m))
          for (auto x : *c)
            (x == vi ? agree : other) = true;
      return bind(static_cast<std::uint32_t>(vi), agree ? k_mac_bios_uuid : k_bios_uuid,
                  agree ? 0.99 : 0.97, other);
    }
    uuid_unknown = true;
    // A VM the hypervisor has not reported (yet): wait for it.
    if (!s.grace_done && now - g.since < opts_.uuid_grace)
      return r;
  }
  double scale = uuid_unknown ? mismatch_scale : 1.0;
  // Never onto a VM another guest has proved by its UUID when ours differs.
  auto usable = [&](std::uint32_t c) { return !(uuid_unknown && vms_[c].uuid_proofs > 0); };
  auto names = [&](const ids& c) {
    std::vector<std::string> n;
    for (auto x : c)
      n.push_back(vms_[x].rec.name);
    std::sort(n.begin(), n.end());
    return join(n);
  };
  auto host_key = name_key(g.hostname);
  // 2. MACs.
  ids cands;
  for (const auto& m : g.macs)
    if (auto c = index_find(mac_vms_, m))
      for (auto x : *c)
        if (usable(x))
          add_unique(cands, x);
  if (cands.size() == 1) {
    bool shared = false;
    for (const auto& m : g.macs)
      if (auto c = index_find(mac_vms_, m); c && c->size() > 1)
        shared = true;
    return bind(cands[0], k_mac, 0.95 * scale, uuid_unknown || shared);
  }
  if (cands.size() > 1) {
    // Clones: the MACs name several VMs. Settle by IPs, then the name.
    ids by_ip, by_name;
    for (auto x : cands) {
      for (const auto& ip : vms_[x].rec.ips)
        if (std::find(g.ips.begin(), g.ips.end(), ip) != g.ips.end()) {
          add_unique(by_ip, x);
          break;
        }
      if (!host_key.empty() && name_key(vms_[x].rec.name) == host_key)
        add_unique(by_name, x);
    }
    if (by_ip.size() == 1)
      return bind(by_ip[0], k_mac_ip, 0.85 * scale, true);
    if (by_name.size() == 1)
      return bind(by_name[0], k_mac_hostname, 0.75 * scale, true);
    r.state = binding_state::ambiguous;
    r.conflict = true;
    r.key = k_mac;
    r.candidates = names(cands);
    return r;
  }
  // 3. IPs, 4. the host name: weak keys, never onto a VM a guest proved.
  ids by_ip;
  for (const auto& ip : g.ips)
    if (auto c = index_find(ip_vms_, ip))
      for (auto x : *c)
        if (vms_[x].uuid_proofs == 0)
          add_unique(by_ip, x);
  if (by_ip.size() == 1)
    return bind(by_ip[0], k_ip, 0.7 * scale, uuid_unknown);
  if (by_ip.empty() && !host_key.empty()) {
    ids by_name;
    if (auto c = index_find(name_vms_, host_key))
      for (auto x : *c)
        if (vms_[x].uuid_proofs == 0)
          add_unique(by_name, x);
    if (by_name.size() == 1)
      return bind(by_name[0], k_hostname, 0.5 * scale, uuid_unknown);
  }
  return r; // pending: nothing names a VM (yet)
}

void identity_resolver::apply(std::size_t si, verdict v, time_ns t) {
  auto& s = srcs_[si];
  auto old_state = s.rec.state;
  auto old_vm = s.vm;
  auto old_key = s.key;
  bool old_conflict = s.rec.conflict;
  auto old_candidates = s.rec.candidates;
  bool was_proof = old_state == binding_state::bound && is_uuid_key(old_key);
  bool is_proof = v.state == binding_state::bound && is_uuid_key(v.key);
  s.rec.state = v.state;
  s.vm = v.vm;
  s.key = v.key;
  s.rec.confidence = v.confidence;
  s.rec.conflict = v.conflict;
  s.rec.candidates = std::move(v.candidates);
  s.rec.keys = std::string{key_names[v.key]};
  s.rec.vm_uuid = v.vm >= 0 ? vms_[static_cast<std::size_t>(v.vm)].rec.uuid : std::string{};
  auto id = static_cast<std::uint32_t>(si);
  if (old_state == binding_state::bound)
    std::erase(vms_[static_cast<std::size_t>(old_vm)].bound_srcs, id);
  if (v.state == binding_state::bound)
    vms_[static_cast<std::size_t>(v.vm)].bound_srcs.push_back(id);
  if (was_proof)
    --vms_[static_cast<std::size_t>(old_vm)].uuid_proofs;
  if (is_proof)
    ++vms_[static_cast<std::size_t>(v.vm)].uuid_proofs;
  const auto& sid = s.rec.source_id;
  const vm_state* nv = v.vm >= 0 ? &vms_[static_cast<std::size_t>(v.vm)] : nullptr;
  const vm_state* ov = old_vm >= 0 ? &vms_[static_cast<std::size_t>(old_vm)] : nullptr;
  bool was_bound = old_state == binding_state::bound;
  bool is_bound = v.state == binding_state::bound;
  if (is_bound && !was_bound)
    change(t, nv, identity_change_kind::bound, "", nv->rec.name, s.rec.keys,
           s.rec.confidence, sid);
  else if (is_bound && was_bound && old_vm != v.vm)
    change(t, nv, identity_change_kind::rebound, ov->rec.name, nv->rec.name, s.rec.keys,
           s.rec.confidence, sid);
  else if (!is_bound && was_bound)
    change(t, ov, identity_change_kind::unbound, ov->rec.name, "", "", 0, sid);
  if (is_bound && s.rec.conflict && (!old_conflict || old_vm != v.vm || !was_bound))
    change(t, nv, identity_change_kind::conflict_settled, "", nv->rec.name, s.rec.keys,
           s.rec.confidence, sid);
  if (v.state == binding_state::ambiguous &&
      (old_state != binding_state::ambiguous || old_candidates != s.rec.candidates))
    change(t, nullptr, identity_change_kind::conflict_unsettled, "", s.rec.candidates,
           s.rec.keys, 0, sid);
  if (old_vm != v.vm || old_key != v.key) {
    if (old_vm >= 0)
      refresh_guest_view(static_cast<std::size_t>(old_vm));
    if (v.vm >= 0)
      refresh_guest_view(static_cast<std::size_t>(v.vm));
  } else if (v.vm >= 0) {
    refresh_guest_view(static_cast<std::size_t>(v.vm));
  }
  if (was_proof != is_proof || (is_proof && old_vm != v.vm)) {
    // Whether a VM is proved decides what weaker keys may claim: look again
    // at the guests that could claim it.
    ids again;
    if (old_vm >= 0)
      sources_for_vm(vms_[static_cast<std::size_t>(old_vm)], again);
    if (v.vm >= 0)
      sources_for_vm(vms_[static_cast<std::size_t>(v.vm)], again);
    std::erase(again, static_cast<std::uint32_t>(si));
    if (!again.empty() && depth_ < 4) {
      ++depth_;
      reevaluate(std::move(again), t);
      --depth_;
    }
  }
}

void identity_resolver::reevaluate(ids sources, time_ns t) {
  for (auto si : sources) {
    auto& s = srcs_[si];
    if (s.rec.since == 0)
      continue;
    apply(si, evaluate(s, s.last_time), t);
  }
}

void identity_resolver::refresh_guest_view(std::size_t vi) {
  auto& v = vms_[vi];
  const source_state* best = nullptr;
  for (auto si : v.bound_srcs) {
    const auto& s = srcs_[si];
    if (!best || s.rec.confidence > best->rec.confidence ||
        (s.rec.confidence == best->rec.confidence && s.rec.since > best->rec.since))
      best = &s;
  }
  if (!best) {
    v.rec.guest_source.clear();
    v.rec.guest_hostname.clear();
    v.rec.guest_ips.clear();
    v.rec.keys.clear();
    v.rec.confidence = 0;
    return;
  }
  v.rec.guest_source = best->rec.source_id;
  v.rec.guest_hostname = best->rec.hostname;
  v.rec.guest_ips = best->rec.ips;
  v.rec.keys = best->rec.keys;
  v.rec.confidence = best->rec.confidence;
}

void identity_resolver::change(time_ns t, const vm_state* v, identity_change_kind k,
                               std::string old_value, std::string new_value,
                               std::string keys, double confidence,
                               std::string source_id) {
  identity_change c;
  c.time = t;
  if (v) {
    c.vm = v->rec.name;
    c.vm_uuid = v->rec.uuid;
  }
  c.kind = k;
  c.old_value = std::move(old_value);
  c.new_value = std::move(new_value);
  c.keys = std::move(keys);
  c.confidence = confidence;
  c.source_id = std::move(source_id);
  changes_.push_back(std::move(c));
  ++counters_.changes;
}

// -- queries ---------------------------------------------------------------------

std::vector<identity_change> identity_resolver::take_changes() {
  std::vector<identity_change> out;
  out.swap(changes_);
  return out;
}

const vm_record* identity_resolver::find_vm(std::string_view vm_uuid) const {
  auto vi = find_uuid(vm_uuid);
  if (vi < 0) {
    auto u = normalize_uuid(vm_uuid);
    if (!u)
      return nullptr;
    vi = find_uuid(*u);
    if (vi < 0)
      return nullptr;
  }
  return &vms_[static_cast<std::size_t>(vi)].rec;
}

std::vector<vm_record> identity_resolver::vms() const {
  std::vector<vm_record> out;
  out.reserve(vms_.size());
  for (const auto& v : vms_)
    out.push_back(v.rec);
  std::sort(out.begin(), out.end(), [](const vm_record& a, const vm_record& b) {
    return a.name != b.name ? a.name < b.name : a.uuid < b.uuid;
  });
  return out;
}

const guest_record* identity_resolver::find_source(std::string_view source_id) const {
  auto it = src_index_.find(source_id);
  return it == src_index_.end() ? nullptr : &srcs_[it->second].rec;
}

std::string identity_resolver::host_at(std::string_view vm_uuid, time_ns t) const {
  auto r = find_vm(vm_uuid);
  if (!r)
    return {};
  std::string host;
  for (const auto& ver : r->history) {
    if (ver.from > t)
      break;
    host = ver.host;
  }
  return host;
}

// -- persistence -------------------------------------------------------------------
//
// Format: "PXID" + u32 version (1), then options, counters, VMs, sources and
// the changes not yet taken. Integers little-endian, doubles as their IEEE
// bits, strings and lists as a u32 count followed by their items. The
// indexes are rebuilt on load.

namespace {

constexpr std::string_view magic = "PXID";
constexpr std::uint32_t format_version = 1;

struct writer {
  std::string out;
  void u8(std::uint8_t x) {
    out.push_back(static_cast<char>(x));
  }
  void u64(std::uint64_t x) {
    for (int i = 0; i < 8; ++i)
      out.push_back(static_cast<char>((x >> (8 * i)) & 0xff));
  }
  void u32(std::uint32_t x) {
    for (int i = 0; i < 4; ++i)
      out.push_back(static_cast<char>((x >> (8 * i)) & 0xff));
  }
  void i64(std::int64_t x) {
    u64(static_cast<std::uint64_t>(x));
  }
  void f64(double x) {
    u64(std::bit_cast<std::uint64_t>(x));
  }
  void str(std::string_view s) {
    u32(static_cast<std::uint32_t>(s.size()));
    out.append(s);
  }
  void strs(const std::vector<std::string>& v) {
    u32(static_cast<std::uint32_t>(v.size()));
    for (const auto& s : v)
      str(s);
  }
};

struct reader {
  std::string_view in;
  std::size_t pos = 0;
  bool bad = false;
  bool need(std::size_t n) {
    if (bad || in.size() - pos < n) {
      bad = true;
      return false;
    }
    return true;
  }
  std::uint64_t un(int bytes) {
    if (!need(static_cast<std::size_t>(bytes)))
      return 0;
    std::uint64_t x = 0;
    for (int i = 0; i < bytes; ++i)
      x |= static_cast<std::uint64_t>(static_cast<unsigned char>(in[pos++])) << (8 * i);
    return x;
  }
  std::uint8_t u8() {
    return static_cast<std::uint8_t>(un(1));
  }
  std::uint32_t u32() {
    return static_cast<std::uint32_t>(un(4));
  }
  std::uint64_t u64() {
    return un(8);
  }
  std::int64_t i64() {
    return static_cast<std::int64_t>(un(8));
  }
  double f64() {
    return std::bit_cast<double>(un(8));
  }
  std::string str() {
    auto n = u32();
    if (!need(n))
      return {};
    std::string s{in.substr(pos, n)};
    pos += n;
    return s;
  }
  std::vector<std::string> strs() {
    auto n = u32();
    std::vector<std::string> v;
    for (std::uint32_t i = 0; i < n && !bad; ++i)
      v.push_back(str());
    return v;
  }
  // A count of items that each take at least `min_bytes`.
  std::uint32_t count(std::size_t min_bytes) {
    auto n = u32();
    if (!bad && n > (in.size() - pos) / min_bytes)
      bad = true;
    return bad ? 0 : n;
  }
};

} // namespace

std::string identity_resolver::save() const {
  writer w;
  w.out.append(magic);
  w.u32(format_version);
  w.i64(opts_.uuid_grace);
  w.u8(opts_.host_fallback ? 1 : 0);
  const auto& c = counters_;
  for (auto x : {c.events, c.attributed, c.unattributed, c.pending, c.ambiguous,
                 c.host_fallback, c.conflicts, c.changes, c.late})
    w.u64(x);
  w.u32(static_cast<std::uint32_t>(vms_.size()));
  for (const auto& v : vms_) {
    const auto& r = v.rec;
    w.str(r.uuid);
    w.str(r.name);
    w.str(r.host);
    w.strs(r.macs);
    w.strs(r.ips);
    w.str(r.guest_source);
    w.str(r.guest_hostname);
    w.strs(r.guest_ips);
    w.str(r.keys);
    w.f64(r.confidence);
    w.u8(r.conflict ? 1 : 0);
    w.i64(r.first_seen);
    w.i64(r.last_seen);
    w.u32(static_cast<std::uint32_t>(r.history.size()));
    for (const auto& h : r.history) {
      w.i64(h.from);
      w.str(h.host);
      w.str(h.name);
      w.strs(h.macs);
      w.strs(h.ips);
    }
    w.str(v.raw_macs);
    w.str(v.raw_ips);
    w.str(v.shared_macs);
    w.u32(v.uuid_proofs);
  }
  w.u32(static_cast<std::uint32_t>(srcs_.size()));
  for (const auto& s : srcs_) {
    const auto& r = s.rec;
    w.str(r.source_id);
    w.str(r.hostname);
    w.strs(r.macs);
    w.strs(r.ips);
    w.str(r.bios_uuid);
    w.u8(static_cast<std::uint8_t>(r.state));
    w.str(r.vm_uuid);
    w.str(r.keys);
    w.f64(r.confidence);
    w.u8(r.conflict ? 1 : 0);
    w.str(r.candidates);
    w.i64(r.since);
    w.str(s.raw_hostname);
    w.str(s.raw_macs);
    w.str(s.raw_ips);
    w.str(s.raw_uuid);
    w.str(s.uuid_swapped);
    w.strs(s.nic_macs);
    w.i64(s.vm);
    w.u8(s.key);
    w.u8(s.grace_done ? 1 : 0);
    w.i64(s.last_time);
  }
  w.u32(static_cast<std::uint32_t>(changes_.size()));
  for (const auto& ch : changes_) {
    w.i64(ch.time);
    w.str(ch.vm);
    w.str(ch.vm_uuid);
    w.u8(static_cast<std::uint8_t>(ch.kind));
    w.str(ch.old_value);
    w.str(ch.new_value);
    w.str(ch.keys);
    w.f64(ch.confidence);
    w.str(ch.source_id);
  }
  return std::move(w.out);
}

result<identity_resolver> identity_resolver::load(std::string_view data) {
  if (data.size() < magic.size() + 4 || data.substr(0, magic.size()) != magic)
    return error{ec::unknown_version, "identity state: not an identity resolver's state"};
  reader rd{data, magic.size()};
  auto version = rd.u32();
  if (version != format_version)
    return error{ec::unknown_version,
                 "identity state: format version " + std::to_string(version) +
                   ", this build reads version " + std::to_string(format_version)};
  identity_options o;
  o.uuid_grace = rd.i64();
  o.host_fallback = rd.u8() != 0;
  identity_resolver r{o};
  auto& c = r.counters_;
  for (auto* x : {&c.events, &c.attributed, &c.unattributed, &c.pending, &c.ambiguous,
                  &c.host_fallback, &c.conflicts, &c.changes, &c.late})
    *x = rd.u64();
  auto n_vms = rd.count(64);
  r.vms_.resize(n_vms);
  for (auto& v : r.vms_) {
    auto& rec = v.rec;
    rec.uuid = rd.str();
    rec.name = rd.str();
    rec.host = rd.str();
    rec.macs = rd.strs();
    rec.ips = rd.strs();
    rec.guest_source = rd.str();
    rec.guest_hostname = rd.str();
    rec.guest_ips = rd.strs();
    rec.keys = rd.str();
    rec.confidence = rd.f64();
    rec.conflict = rd.u8() != 0;
    rec.first_seen = rd.i64();
    rec.last_seen = rd.i64();
    auto n_hist = rd.count(24);
    for (std::uint32_t i = 0; i < n_hist && !rd.bad; ++i) {
      vm_version h;
      h.from = rd.i64();
      h.host = rd.str();
      h.name = rd.str();
      h.macs = rd.strs();
      h.ips = rd.strs();
      rec.history.push_back(std::move(h));
    }
    v.raw_macs = rd.str();
    v.raw_ips = rd.str();
    v.shared_macs = rd.str();
    v.uuid_proofs = rd.u32();
    if (rd.bad)
      break;
  }
  auto n_srcs = rd.count(64);
  r.srcs_.resize(n_srcs);
  for (auto& s : r.srcs_) {
    auto& rec = s.rec;
    rec.source_id = rd.str();
    rec.hostname = rd.str();
    rec.macs = rd.strs();
    rec.ips = rd.strs();
    rec.bios_uuid = rd.str();
    auto state = rd.u8();
    if (state > static_cast<std::uint8_t>(binding_state::ambiguous))
      return error{ec::invalid_value, "identity state: bad binding state", rd.pos};
    rec.state = static_cast<binding_state>(state);
    rec.vm_uuid = rd.str();
    rec.keys = rd.str();
    rec.confidence = rd.f64();
    rec.conflict = rd.u8() != 0;
    rec.candidates = rd.str();
    rec.since = rd.i64();
    s.raw_hostname = rd.str();
    s.raw_macs = rd.str();
    s.raw_ips = rd.str();
    s.raw_uuid = rd.str();
    s.uuid_swapped = rd.str();
    s.nic_macs = rd.strs();
    s.vm = rd.i64();
    s.key = rd.u8();
    s.grace_done = rd.u8() != 0;
    s.last_time = rd.i64();
    if (rd.bad)
      break;
    if (s.key >= k_count || s.vm < -1 || s.vm >= static_cast<std::int64_t>(n_vms) ||
        (rec.state == binding_state::bound && s.vm < 0))
      return error{ec::invalid_value, "identity state: bad binding", rd.pos};
  }
  auto n_changes = rd.count(40);
  for (std::uint32_t i = 0; i < n_changes && !rd.bad; ++i) {
    identity_change ch;
    ch.time = rd.i64();
    ch.vm = rd.str();
    ch.vm_uuid = rd.str();
    auto k = rd.u8();
    if (k > static_cast<std::uint8_t>(identity_change_kind::conflict_unsettled))
      return error{ec::invalid_value, "identity state: bad change kind", rd.pos};
    ch.kind = static_cast<identity_change_kind>(k);
    ch.old_value = rd.str();
    ch.new_value = rd.str();
    ch.keys = rd.str();
    ch.confidence = rd.f64();
    ch.source_id = rd.str();
    r.changes_.push_back(std::move(ch));
  }
  if (rd.bad)
    return error{ec::truncated, "identity state: truncated", rd.pos};
  if (rd.pos != data.size())
    return error{ec::trailing_bytes, "identity state: bytes after the end", rd.pos};
  r.rebuild_indexes();
  return r;
}

void identity_resolver::rebuild_indexes() {
  for (std::size_t i = 0; i < vms_.size(); ++i) {
    auto id = static_cast<std::uint32_t>(i);
    const auto& v = vms_[i];
    uuid_index_.emplace(v.rec.uuid, id);
    index_vm_name(i, true);
    for (const auto& m : v.rec.macs)
      index_add(mac_vms_, m, id);
    for (const auto& ip : v.rec.ips)
      index_add(ip_vms_, ip, id);
  }
  for (std::size_t i = 0; i < srcs_.size(); ++i) {
    src_index_.emplace(srcs_[i].rec.source_id, static_cast<std::uint32_t>(i));
    index_source(i, true);
    if (srcs_[i].rec.state == binding_state::bound)
      vms_[static_cast<std::size_t>(srcs_[i].vm)].bound_srcs.push_back(
        static_cast<std::uint32_t>(i));
  }
}

} // namespace parallax
