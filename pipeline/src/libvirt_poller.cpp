#include "parallax/pipeline/libvirt_poller.hpp"

#include "parallax/schemas/identity.hpp"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>

#include <fmt/format.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

namespace parallax {

namespace {

// libvirt prints every error to stderr unless told otherwise; errors are
// reported through our results instead.
void quiet(void*, virErrorPtr) {
}

void silence_libvirt() {
  static std::once_flag once;
  std::call_once(once, [] {
    virInitialize();
    virSetErrorFunc(nullptr, quiet);
  });
}

std::string last_error() {
  const char* msg = virGetLastErrorMessage();
  return msg ? msg : "unknown libvirt error";
}

std::string_view state_name(int state) {
  switch (state) {
    case VIR_DOMAIN_RUNNING: return "running";
    case VIR_DOMAIN_BLOCKED: return "blocked";
    case VIR_DOMAIN_PAUSED: return "paused";
    case VIR_DOMAIN_SHUTDOWN: return "shutdown";
    case VIR_DOMAIN_SHUTOFF: return "shutoff";
    case VIR_DOMAIN_CRASHED: return "crashed";
    case VIR_DOMAIN_PMSUSPENDED: return "pmsuspended";
    default: return "nostate";
  }
}

// The value of attribute `name` in the first tag `<tag ...>` of `xml`.
std::string_view attribute(std::string_view xml, std::string_view tag,
                           std::string_view name) {
  auto open = fmt::format("<{}", tag);
  for (auto pos = xml.find(open); pos != std::string_view::npos;
       pos = xml.find(open, pos + 1)) {
    auto after = pos + open.size();
    if (after < xml.size() && xml[after] != ' ' && xml[after] != '/'
        && xml[after] != '>' && xml[after] != '\t' && xml[after] != '\n')
      continue; // <target...> is not <targetx>
    auto end = xml.find('>', after);
    if (end == std::string_view::npos)
      return {};
    auto element = xml.substr(after, end - after);
    for (auto a = element.find(name); a != std::string_view::npos;
         a = element.find(name, a + 1)) {
      auto eq = a + name.size();
      if (a > 0 && element[a - 1] != ' ' && element[a - 1] != '\t'
          && element[a - 1] != '\n')
        continue;
      if (eq + 1 >= element.size() || element[eq] != '=')
        continue;
      auto quote = element[eq + 1];
      if (quote != '\'' && quote != '"')
        continue;
      auto close = element.find(quote, eq + 2);
      if (close == std::string_view::npos)
        return {};
      return element.substr(eq + 2, close - eq - 2);
    }
    return {};
  }
  return {};
}

// Each `<tag ...>...</tag>` block of `xml`, in order.
template <class F>
void each_block(std::string_view xml, std::string_view tag, F f) {
  auto open = fmt::format("<{}", tag);
  auto close = fmt::format("</{}>", tag);
  std::size_t pos = 0;
  while ((pos = xml.find(open, pos)) != std::string_view::npos) {
    auto after = pos + open.size();
    if (after < xml.size() && xml[after] != ' ' && xml[after] != '>') {
      pos = after;
      continue;
    }
    auto end = xml.find(close, after);
    if (end == std::string_view::npos)
      return;
    f(xml.substr(pos, end + close.size() - pos));
    pos = end + close.size();
  }
}

struct domain_deleter {
  void operator()(virDomainPtr d) const {
    virDomainFree(d);
  }
};
using domain_ptr = std::unique_ptr<virDomain, domain_deleter>;

} // namespace

domain_devices parse_domain_xml(std::string_view xml) {
  domain_devices out;
  auto devices = xml.find("<devices>");
  if (devices != std::string_view::npos)
    xml = xml.substr(devices);
  each_block(xml, "interface", [&](std::string_view block) {
    auto mac = normalize_mac(attribute(block, "mac", "address"));
    if (!mac)
      return;
    out.nics.push_back({*mac, std::string{attribute(block, "target", "dev")}});
  });
  each_block(xml, "disk", [&](std::string_view block) {
    if (attribute(block, "disk", "device") != "disk")
      return;
    if (auto dev = attribute(block, "target", "dev"); !dev.empty())
      out.disks.emplace_back(dev);
  });
  return out;
}

struct libvirt_poller::impl {
  virConnectPtr conn = nullptr;
  ~impl() {
    if (conn)
      virConnectClose(conn);
  }
};

libvirt_poller::libvirt_poller(std::string uri)
  : uri_{std::move(uri)}, impl_{std::make_unique<impl>()} {
}

libvirt_poller::~libvirt_poller() = default;

result<std::unique_ptr<libvirt_poller>> libvirt_poller::open(std::string uri) {
  silence_libvirt();
  std::unique_ptr<libvirt_poller> p{new libvirt_poller{std::move(uri)}};
  if (auto err = p->connect())
    return err;
  return p;
}

error libvirt_poller::connect() {
  if (impl_->conn) {
    virConnectClose(impl_->conn);
    impl_->conn = nullptr;
  }
  impl_->conn = virConnectOpenReadOnly(uri_.c_str());
  if (!impl_->conn)
    return error{ec::system_error,
                 fmt::format("libvirt {}: cannot connect: {}", uri_,
                             last_error())};
  if (char* host = virConnectGetHostname(impl_->conn)) {
    hostname_ = host;
    std::free(host);
  }
  return {};
}

result<std::vector<event>> libvirt_poller::poll(time_ns now) {
  if (!impl_->conn || virConnectIsAlive(impl_->conn) != 1)
    if (auto err = connect())
      return err;
  virDomainPtr* raw = nullptr;
  int n = virConnectListAllDomains(impl_->conn, &raw, 0);
  if (n < 0)
    return error{ec::system_error,
                 fmt::format("libvirt {}: cannot list domains: {}", uri_,
                             last_error())};
  std::vector<domain_ptr> domains;
  for (int i = 0; i < n; ++i)
    domains.emplace_back(raw[i]);
  std::free(raw);
  // vCPU delay (time runnable vCPUs waited for a host CPU: libvirt's
  // counterpart of vSphere's CPU ready), summed over the vCPUs, per domain
  // UUID. Drivers without bulk vCPU statistics (the test driver) have none.
  std::map<std::string, double> delay_ns;
  {
    virDomainStatsRecordPtr* records = nullptr;
    int m = virConnectGetAllDomainStats(impl_->conn, VIR_DOMAIN_STATS_VCPU,
                                        &records, 0);
    for (int i = 0; i < m; ++i) {
      double sum = 0;
      bool any = false;
      for (int k = 0; k < records[i]->nparams; ++k) {
        const auto& p = records[i]->params[k];
        std::string_view field = p.field;
        if (field.starts_with("vcpu.") && field.ends_with(".delay")
            && p.type == VIR_TYPED_PARAM_ULLONG) {
          sum += static_cast<double>(p.value.ul);
          any = true;
        }
      }
      char uuid_buf[VIR_UUID_STRING_BUFLEN];
      if (any && virDomainGetUUIDString(records[i]->dom, uuid_buf) == 0)
        delay_ns[normalize_uuid(uuid_buf).value_or(uuid_buf)] = sum;
    }
    if (records)
      virDomainStatsRecordListFree(records);
  }
  std::vector<event> out;
  auto base = [&](std::string_view sourcetype) {
    event e;
    e.time = now;
    e.host = hostname_;
    e.source = fmt::format("libvirt:{}", uri_);
    e.sourcetype = std::string{sourcetype};
    return e;
  };
  for (auto& dom : domains) {
    auto* d = dom.get();
    char uuid_buf[VIR_UUID_STRING_BUFLEN];
    if (virDomainGetUUIDString(d, uuid_buf) != 0)
      continue; // the domain went away while we listed
    std::string uuid = normalize_uuid(uuid_buf).value_or(uuid_buf);
    const char* name_c = virDomainGetName(d);
    std::string name = name_c ? name_c : uuid;
    virDomainInfo info{};
    if (virDomainGetInfo(d, &info) != 0)
      continue;
    auto vm = base("hv:libvirt:vm");
    auto add = [](event& e, std::string n, value v) {
      e.fields.push_back({std::move(n), std::move(v)});
    };
    add(vm, "vm_name", name);
    add(vm, "vm_uuid", uuid);
    add(vm, "state", std::string{state_name(info.state)});
    add(vm, "vcpus", std::int64_t{info.nrVirtCpu});
    add(vm, "mem_max_bytes", static_cast<std::int64_t>(info.maxMem) * 1024);
    add(vm, "mem_allocated_bytes",
        static_cast<std::int64_t>(info.memory) * 1024);
    add(vm, "cpu_time_ns", static_cast<std::int64_t>(info.cpuTime));
    auto active = virDomainIsActive(d) == 1;
    if (active) {
      auto r = rates_.update(uuid + "/cpu", now,
                             static_cast<double>(info.cpuTime));
      if (r && info.nrVirtCpu > 0)
        add(vm, "cpu_pct", *r / 1e9 / info.nrVirtCpu * 100.0);
      if (auto d = delay_ns.find(uuid); d != delay_ns.end()) {
        add(vm, "vcpu_delay_ns", static_cast<std::int64_t>(d->second));
        auto dr = rates_.update(uuid + "/delay", now, d->second);
        if (dr && info.nrVirtCpu > 0)
          add(vm, "cpu_ready_pct", *dr / 1e9 / info.nrVirtCpu * 100.0);
      }
      virDomainMemoryStatStruct stats[VIR_DOMAIN_MEMORY_STAT_NR];
      int m = virDomainMemoryStats(d, stats, VIR_DOMAIN_MEMORY_STAT_NR, 0);
      for (int i = 0; i < m; ++i) {
        auto kib = static_cast<std::int64_t>(stats[i].val) * 1024;
        switch (stats[i].tag) {
          case VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON:
            // libvirt's "actual balloon" is the memory the guest has now;
            // mem_balloon_bytes is what the balloon holds back, as vCenter's
            // mem.vmmemctl (the mem_visible pair subtracts it from the
            // maximum).
            add(vm, "mem_balloon_actual_bytes", kib);
            add(vm, "mem_balloon_bytes",
                std::max<std::int64_t>(
                  0, static_cast<std::int64_t>(info.maxMem) * 1024 - kib));
            break;
          case VIR_DOMAIN_MEMORY_STAT_RSS:
            add(vm, "mem_rss_bytes", kib);
            break;
          case VIR_DOMAIN_MEMORY_STAT_UNUSED:
            add(vm, "mem_unused_bytes", kib);
            break;
          case VIR_DOMAIN_MEMORY_STAT_AVAILABLE:
            add(vm, "mem_available_bytes", kib);
            break;
          case VIR_DOMAIN_MEMORY_STAT_USABLE:
            add(vm, "mem_usable_bytes", kib);
            break;
          default:
            break;
        }
      }
    }
    domain_devices devices;
    if (char* xml = virDomainGetXMLDesc(d, 0)) {
      devices = parse_domain_xml(xml);
      std::free(xml);
    }
    std::string macs;
    for (const auto& nic : devices.nics)
      macs += (macs.empty() ? "" : ",") + nic.mac;
    add(vm, "macs", macs);
    add(vm, "uri", uri_);
    out.push_back(std::move(vm));
    for (const auto& nic : devices.nics) {
      auto e = base("hv:libvirt:nic");
      add(e, "vm_name", name);
      add(e, "vm_uuid", uuid);
      add(e, "mac", nic.mac);
      add(e, "dev", nic.dev);
      virDomainInterfaceStatsStruct st{};
      if (active && !nic.dev.empty()
          && virDomainInterfaceStats(d, nic.dev.c_str(), &st, sizeof st)
               == 0) {
        auto counter = [&](std::string_view field, long long v) {
          if (v < 0)
            return; // -1: not supported by the driver
          add(e, std::string{field}, static_cast<std::int64_t>(v));
          auto key = fmt::format("{}/{}/{}", uuid, nic.mac, field);
          if (auto r = rates_.update(key, now, static_cast<double>(v)))
            add(e, fmt::format("{}_per_s", field), *r);
        };
        counter("rx_bytes", st.rx_bytes);
        counter("tx_bytes", st.tx_bytes);
        counter("rx_packets", st.rx_packets);
        counter("tx_packets", st.tx_packets);
      }
      out.push_back(std::move(e));
    }
    for (const auto& disk : devices.disks) {
      virDomainBlockStatsStruct st{};
      if (!active
          || virDomainBlockStats(d, disk.c_str(), &st, sizeof st) != 0)
        continue; // unsupported (the test driver) or not running
      auto e = base("hv:libvirt:disk");
      add(e, "vm_name", name);
      add(e, "vm_uuid", uuid);
      add(e, "dev", disk);
      auto counter = [&](std::string_view field, long long v, bool rate) {
        if (v < 0)
          return;
        add(e, std::string{field}, static_cast<std::int64_t>(v));
        if (!rate)
          return;
        auto key = fmt::format("{}/{}/{}", uuid, disk, field);
        if (auto r = rates_.update(key, now, static_cast<double>(v)))
          add(e, fmt::format("{}_per_s", field), *r);
      };
      counter("rd_bytes", st.rd_bytes, true);
      counter("wr_bytes", st.wr_bytes, true);
      counter("rd_reqs", st.rd_req, false);
      counter("wr_reqs", st.wr_req, false);
      out.push_back(std::move(e));
    }
  }
  // Series of domains that disappeared an hour ago are forgotten.
  rates_.expire_before(now - to_ns(std::chrono::hours{1}));
  return out;
}

} // namespace parallax
