#include "parallax/pipeline/simulator.hpp"

#include "parallax/schemas/json.hpp"

#include "parallax/pipeline/ingest_client.hpp"
#include "parallax/pipeline/zmq.hpp"
#include "parallax/schemas/identity.hpp"
#include "parallax/schemas/wire.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <ctime>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <thread>

#include <fmt/format.h>

// toml++ header-only without exceptions, as in config.cpp: parse errors then
// carry their line and column. (Header-only mode makes everything inline,
// so a second translation unit doing the same is fine.)
#define TOML_HEADER_ONLY 1
#define TOML_EXCEPTIONS 0
#include <toml++/toml.h>

namespace parallax::sim {

namespace {

constexpr time_ns ns_per_s = 1'000'000'000;
constexpr time_ns forever = std::numeric_limits<time_ns>::max();
constexpr std::int64_t mib = 1024 * 1024;

// -- small helpers -----------------------------------------------------------

/// Portable randomness: std::mt19937_64 is specified bit for bit, the
/// standard distributions are not, so the few we need are written here.
struct rng_t {
  std::mt19937_64 g;
  explicit rng_t(std::uint64_t seed) : g{seed} {
  }
  double u01() {
    return static_cast<double>(g() >> 11) * 0x1.0p-53;
  }
  double gauss() { // Box-Muller
    double u = u01(), v = u01();
    return std::sqrt(-2.0 * std::log(1.0 - u)) * std::cos(6.283185307179586 * v);
  }
  /// A multiplicative noise around 1 (log-normal, mean 1).
  double noise(double sigma) {
    return std::exp(sigma * gauss() - sigma * sigma / 2);
  }
  std::uint64_t below(std::uint64_t n) {
    return n ? g() % n : 0;
  }
  bool chance(double p) {
    return u01() < p;
  }
  double uniform(double a, double b) {
    return a + (b - a) * u01();
  }
};

std::uint64_t splitmix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

struct fnv {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  void add(std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 0x100000001b3ULL;
    }
    add_byte(0xff);
  }
  void add_byte(unsigned char c) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  void add(std::uint64_t v) {
    for (int i = 0; i < 8; ++i)
      add_byte(static_cast<unsigned char>(v >> (8 * i)));
  }
  void add(double d) {
    add(fmt::format("{}", d));
  }
};

double r2(double x) {
  return std::round(x * 100) / 100;
}

std::int64_t i64(double x) {
  return static_cast<std::int64_t>(std::llround(x));
}

std::string json_escape(std::string_view s) {
  std::string out;
  json::append_string(out, s);
  return out;
}

/// "Nov 25 10:00:01" (day space-padded), as rsyslog writes it; guests run UTC.
std::string syslog_time(time_ns t) {
  static constexpr std::array<const char*, 12> months = {
    "Jan", "Feb", "Mar", "Apr", "May", "Jun",
    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::time_t secs = static_cast<std::time_t>(t / ns_per_s);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  return fmt::format("{} {:>2} {:02}:{:02}:{:02}", months[static_cast<std::size_t>(tm.tm_mon)],
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

void put(event& e, std::string name, std::string v) {
  e.fields.push_back({std::move(name), value{std::move(v)}});
}
void put(event& e, std::string name, const char* v) {
  e.fields.push_back({std::move(name), value{std::string{v}}});
}
void put(event& e, std::string name, std::int64_t v) {
  e.fields.push_back({std::move(name), value{v}});
}
void put(event& e, std::string name, int v) {
  e.fields.push_back({std::move(name), value{static_cast<std::int64_t>(v)}});
}
void put(event& e, std::string name, double v) {
  e.fields.push_back({std::move(name), value{v}});
}
void put(event& e, std::string name, bool v) {
  e.fields.push_back({std::move(name), value{v}});
}

// -- the model ---------------------------------------------------------------

enum class flavour { libvirt, vsphere };

struct host_info {
  std::string name;
  flavour fl;
};

struct proc {
  int pid = 0, ppid = 1;
  std::string command, args, user, group;
  int uid = 0, gid = 0;
  time_ns start_time = 0;
  double cpu_base = 0; // mean % of one core
  std::int64_t rss_base = 0, vsz = 0;
  int threads = 1;
  bool kernel = false;
  bool hidden = false;           // not in the guest's process table
  time_ns from = 0, until = forever; // alive in [from, until)
  bool seen = false;             // the agent has sampled it (cpu_pct known)
  // This step's values.
  double cpu = 0;
  std::int64_t rss = 0;
};

/// Cumulative traffic counters of one interface.
struct counters {
  std::int64_t rx = 0, tx = 0, rxp = 0, txp = 0;
};

struct nic {
  std::string mac; // normalised
  std::string ip;
  std::string guest_dev, hv_dev;
  double rx_rate = 0, tx_rate = 0; // bytes/s, mean
  std::int64_t rx = 0, tx = 0, rxp = 0, txp = 0; // cumulative since boot
  // At the previous hypervisor sample, for rates.
  std::int64_t hv_rx = 0, hv_tx = 0, hv_rxp = 0, hv_txp = 0;
  // The guest's own counters (os:net): the host's, less the few frames the
  // virtio ring dropped on receive, plus the few the tap dropped on send.
  counters guest, guest_prev; // guest_prev: at the agent's previous sample
};

/// Cumulative block I/O counters of one disk: bytes and requests.
struct io_counters {
  std::int64_t rd = 0, wr = 0, rdq = 0, wrq = 0;
};

struct disk {
  std::string guest_dev, hv_dev; // vda (virtio-blk) on libvirt, sda (pvscsi) on vSphere
  double rd_rate = 0, wr_rate = 0; // the guest's I/O, bytes/s, mean
  // The host's counters: the guest's requests plus a little I/O of its own
  // on the disk image.
  io_counters host;
  std::int64_t hv_rd = 0, hv_wr = 0; // at the previous hypervisor sample
  io_counters guest, guest_prev;     // guest_prev: at the agent's previous sample
};

struct vm_model {
  std::size_t index = 0; // 1-based, clones after the base VMs
  std::string name, hostname, role, workload, agent_id;
  flavour fl = flavour::libvirt;
  std::size_t host = 0;
  std::string uuid, guest_uuid, serial;
  bool swapped = false;
  int cpus = 2;
  std::int64_t mem_bytes = 0;
  int mac_notation = 0;
  bool docker = false;
  double docker_rate = 0;                 // docker0's mean rx bytes/s
  counters docker_ctr, docker_prev;       // docker0 (guest only)
  double cache_frac = 0.4;
  std::int64_t cache_touched = -1; // guest page cache the host has backed
  std::vector<nic> nics;
  std::vector<proc> procs;
  rng_t rng{0};
  // Draws for os:net and libvirt's vCPU delay only, so that adding them left
  // every other event as it was.
  rng_t net_rng{0};
  // Draws for the disks (os:disk, hv:libvirt:disk, vSphere virtualDisk.*)
  // only, for the same reason.
  rng_t disk_rng{0};
  std::vector<disk> disks;
  int next_pid = 30000;
  time_ns boot = 0;
  time_ns present_from = 0, present_until = forever;
  std::string clone_of;
  std::vector<std::pair<time_ns, std::size_t>> host_history;
  std::int64_t swap_total = 0;
  // Agent state.
  bool agent_fresh = true;
  time_ns last_identity = std::numeric_limits<time_ns>::min();
  double load1 = 0, load5 = 0, load15 = 0;
  // This step's values.
  double busy = 0, iowait = 0, steal = 0, visible_cpu = 0;
  std::int64_t used_real = 0, used = 0, total = 0, cache = 0, balloon = 0;
  // Hypervisor accumulators over its 20 s interval.
  double hv_busy_acc = 0, hv_steal_acc = 0;
  int hv_steps = 0;
  std::int64_t cpu_time_ns = 0;
  std::int64_t vcpu_delay_ns = 0; // libvirt: Σ vcpu.N.delay
  bool hv_fresh = true; // the poller on its host has not sampled it yet
};

/// A scenario entry resolved against the fleet.
struct active {
  injection inj;
  std::size_t vm = 0;       // index into vms
  time_ns from = 0, until = forever; // absolute
  std::size_t proc = static_cast<std::size_t>(-1); // leak, hog, rogue, non-admin
  std::size_t other_vm = 0; // clone: the new VM
  std::size_t from_host = 0, to_host = 0; // vmotion
  bool live(time_ns t) const {
    return t >= from && t < until;
  }
};

constexpr std::array<std::string_view, 4> roles = {"web", "db", "app", "cache"};

std::string format_mac(const std::string& mac, int notation) {
  std::string hex;
  for (char c : mac)
    if (c != ':')
      hex += c;
  auto upper = [](std::string s) {
    for (auto& c : s)
      c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
  };
  auto sep = [&](char s) {
    std::string out;
    for (std::size_t i = 0; i < 12; i += 2) {
      if (i)
        out += s;
      out += hex.substr(i, 2);
    }
    return out;
  };
  switch (notation % 5) {
    case 0: return upper(sep('-'));                  // 52-54-00-A1-00-01 (Windows)
    case 1: return mac;                              // 52:54:00:a1:00:01
    case 2: return hex.substr(0, 4) + "." + hex.substr(4, 4) + "."
                   + hex.substr(8, 4);               // 5254.00a1.0001 (Cisco)
    case 3: return upper(mac);                       // 52:54:00:A1:00:01
    default: return hex;                             // 525400a10001
  }
}

std::string_view notation_name(int notation) {
  switch (notation % 5) {
    case 0: return "upper-dash";
    case 1: return "lower-colon";
    case 2: return "cisco-dot";
    case 3: return "upper-colon";
    default: return "bare-hex";
  }
}

std::string make_uuid(rng_t& rng, bool vmware) {
  std::array<unsigned, 16> b{};
  for (auto& x : b)
    x = static_cast<unsigned>(rng.below(256));
  if (vmware)
    b[0] = 0x42; // vCenter's config.uuid starts with 42
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  std::string s;
  for (std::size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      s += '-';
    s += fmt::format("{:02x}", b[i]);
  }
  return s;
}

// "VMware-42 1f 24 5c 7f a8 60 fa-9d 1c ..." from config.uuid (no swap).
std::string vmware_serial(const std::string& uuid) {
  std::string hex;
  for (char c : uuid)
    if (c != '-')
      hex += c;
  std::string out = "VMware-";
  for (std::size_t i = 0; i < 16; ++i) {
    if (i == 8)
      out += '-';
    else if (i)
      out += ' ';
    out += hex.substr(2 * i, 2);
  }
  return out;
}

constexpr std::array<std::pair<std::string_view, int>, 14> known_users = {{
  {"root", 0}, {"www-data", 33}, {"messagebus", 101}, {"syslog", 104},
  {"_chrony", 105}, {"postgres", 114}, {"redis", 115}, {"deploy", 1000},
  {"appuser", 1001}, {"alice", 1002}, {"bob", 1003}, {"nobody", 65534},
  {"systemd-resolve", 990}, {"backup", 34}}};

int uid_of(std::string_view user) {
  for (auto& [n, u] : known_users)
    if (n == user)
      return u;
  // Unknown users get a stable uid in the normal-user range.
  fnv h;
  h.add(user);
  return 2000 + static_cast<int>(h.h % 5000);
}

std::string group_of(std::string_view user) {
  if (user == "nobody")
    return "nogroup";
  return std::string{user};
}

// -- scenario parsing --------------------------------------------------------

std::string where(std::string_view origin, const toml::source_region& r) {
  return fmt::format("{}:{}:{}", origin, r.begin.line, r.begin.column);
}

} // namespace

std::string rfc3339(time_ns t) {
  auto secs = t / ns_per_s;
  auto ms = (t % ns_per_s) / 1'000'000;
  if (ms < 0) {
    ms += 1000;
    --secs;
  }
  std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ms);
}

std::string_view to_string(kind k) noexcept {
  switch (k) {
    case kind::memory_leak: return "memory-leak";
    case kind::cpu_hog: return "cpu-hog";
    case kind::rogue_process: return "rogue-process";
    case kind::non_admin_process: return "non-admin-process";
    case kind::ballooning: return "ballooning";
    case kind::cpu_contention: return "cpu-contention";
    case kind::agent_outage: return "agent-outage";
    case kind::vmotion: return "vmotion";
    case kind::clone: return "clone";
    case kind::clock_skew: return "clock-skew";
  }
  return "?";
}

std::optional<kind> kind_from_string(std::string_view name) noexcept {
  for (int i = 0; i <= static_cast<int>(kind::clock_skew); ++i)
    if (to_string(static_cast<kind>(i)) == name)
      return static_cast<kind>(i);
  return std::nullopt;
}

result<time_ns> parse_duration(std::string_view text) {
  auto bad = [&] {
    return error{ec::config_bad_value,
                 fmt::format("\"{}\" is not a duration (e.g. 90s, 5m, 1h30m, "
                             "2d)",
                             text)};
  };
  if (text.empty())
    return bad();
  time_ns total = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::int64_t n = 0;
    auto [p, err] = std::from_chars(text.data() + i, text.data() + text.size(), n);
    if (err != std::errc{} || n < 0)
      return bad();
    i = static_cast<std::size_t>(p - text.data());
    std::string_view unit;
    auto j = i;
    while (j < text.size() && std::isalpha(static_cast<unsigned char>(text[j])))
      ++j;
    unit = text.substr(i, j - i);
    i = j;
    time_ns mul = 0;
    if (unit.empty() || unit == "s")
      mul = ns_per_s;
    else if (unit == "ms")
      mul = 1'000'000;
    else if (unit == "m" || unit == "min")
      mul = 60 * ns_per_s;
    else if (unit == "h")
      mul = 3600 * ns_per_s;
    else if (unit == "d")
      mul = 86400 * ns_per_s;
    else
      return bad();
    if (n > std::numeric_limits<time_ns>::max() / mul / 2)
      return bad();
    total += n * mul;
    if (unit.empty() && i < text.size())
      return bad();
  }
  return total;
}

result<scenario> parse_scenario(std::string_view text, std::string_view origin) {
  scenario sc;
  sc.origin = std::string{origin};
  auto doc = toml::parse(text, origin);
  if (!doc) {
    const auto& e = doc.error();
    return error{ec::config_parse, fmt::format("{}: {}", where(origin, e.source()),
                                               e.description())};
  }
  const auto& root = doc.table();
  for (auto&& [k, node] : root) {
    if (k.str() == "description") {
      if (!node.is_string())
        return error{ec::config_bad_value,
                     fmt::format("{}: description: expected a string",
                                 where(origin, node.source()))};
      continue;
    }
    if (k.str() != "event")
      return error{ec::config_unknown_key,
                   fmt::format("{}: {}: unknown key; a scenario holds "
                               "`description` and [[event]] tables",
                               where(origin, node.source()), k.str())};
    auto arr = node.as_array();
    if (!arr || !arr->is_array_of_tables())
      return error{ec::config_bad_value,
                   fmt::format("{}: event: expected [[event]] tables",
                               where(origin, node.source()))};
    std::size_t n = 0;
    for (auto&& el : *arr) {
      ++n;
      const auto& tbl = *el.as_table();
      injection inj;
      inj.origin = where(origin, tbl.source());
      auto kind_node = tbl.get("kind");
      if (!kind_node)
        return error{ec::config_bad_value,
                     fmt::format("{}: event[{}].kind: missing; one of memory-leak, "
                                 "cpu-hog, rogue-process, non-admin-process, "
                                 "ballooning, cpu-contention, agent-outage, "
                                 "vmotion, clone, clock-skew",
                                 inj.origin, n)};
      auto kind_str = kind_node->value_exact<std::string>();
      auto kd = kind_str ? kind_from_string(*kind_str) : std::nullopt;
      if (!kd)
        return error{ec::config_bad_value,
                     fmt::format("{}: event[{}].kind: unknown kind {}; one of "
                                 "memory-leak, cpu-hog, rogue-process, "
                                 "non-admin-process, ballooning, cpu-contention, "
                                 "agent-outage, vmotion, clone, clock-skew",
                                 where(origin, kind_node->source()), n,
                                 kind_str ? "\"" + *kind_str + "\"" : "(not a string)")};
      inj.kind = *kd;
      // The parameters each kind reads, beyond kind, vm, start, duration.
      std::vector<std::string_view> allowed;
      switch (inj.kind) {
        case kind::memory_leak: allowed = {"process", "rate-mb-per-min"}; break;
        case kind::cpu_hog: allowed = {"process", "cpu-pct"}; break;
        case kind::rogue_process:
          allowed = {"process", "user", "cpu-pct", "hidden"};
          break;
        case kind::non_admin_process:
          allowed = {"process", "user", "cpu-pct"};
          break;
        case kind::ballooning: allowed = {"balloon-mb"}; break;
        case kind::cpu_contention: allowed = {"ready-pct"}; break;
        case kind::agent_outage: break;
        case kind::vmotion: allowed = {"target-host"}; break;
        case kind::clone: allowed = {"name", "target-host"}; break;
        case kind::clock_skew: allowed = {"skew-s"}; break;
      }
      bool have_vm = false;
      for (auto&& [key, v] : tbl) {
        auto name = key.str();
        auto at = where(origin, v.source());
        auto full = fmt::format("event[{}].{}", n, name);
        auto bad = [&](std::string_view expected) {
          return error{ec::config_bad_value,
                       fmt::format("{}: {}: expected {}", at, full, expected)};
        };
        auto str = v.value_exact<std::string>();
        auto number = [&]() -> std::optional<double> {
          if (auto d = v.value_exact<double>())
            return *d;
          if (auto i = v.value_exact<std::int64_t>())
            return static_cast<double>(*i);
          return std::nullopt;
        };
        if (name == "kind") {
          continue;
        } else if (name == "vm") {
          if (!str || str->empty())
            return bad("a VM name such as \"db-02\"");
          inj.vm = *str;
          have_vm = true;
        } else if (name == "start" || name == "duration") {
          if (!str)
            return bad("a duration string such as \"5m\"");
          auto d = parse_duration(*str);
          if (!d)
            return error{ec::config_bad_value,
                         fmt::format("{}: {}: {}", at, full, d.error().message)};
          (name == "start" ? inj.start : inj.duration) = *d;
        } else if (std::find(allowed.begin(), allowed.end(), name)
                   == allowed.end()) {
          std::string list = "kind, vm, start, duration";
          for (auto a : allowed)
            list += fmt::format(", {}", a);
          return error{ec::config_unknown_key,
                       fmt::format("{}: {}: unknown key for kind {}; it takes "
                                   "{}",
                                   at, full, to_string(inj.kind), list)};
        } else if (name == "process" || name == "user" || name == "name"
                   || name == "target-host") {
          if (!str || str->empty())
            return bad("a non-empty string");
          (name == "process" ? inj.process
           : name == "user"  ? inj.user
           : name == "name"  ? inj.name
                             : inj.target_host)
            = *str;
        } else if (name == "hidden") {
          auto b = v.value_exact<bool>();
          if (!b)
            return bad("true or false");
          inj.hidden = *b;
        } else {
          auto d = number();
          if (!d)
            return bad("a number");
          if (name == "rate-mb-per-min") {
            if (*d <= 0 || *d > 100000)
              return bad("a number of MB per minute above 0");
            inj.rate_mb_per_min = *d;
          } else if (name == "cpu-pct") {
            if (*d <= 0 || *d > 6400)
              return bad("a percentage of one core, above 0 (100 = one core)");
            inj.cpu_pct = *d;
          } else if (name == "balloon-mb") {
            if (*d <= 0)
              return bad("a size in MB above 0");
            inj.balloon_mb = *d;
          } else if (name == "ready-pct") {
            if (*d <= 0 || *d > 100)
              return bad("a percentage from 0 to 100");
            inj.ready_pct = *d;
          } else if (name == "skew-s") {
            if (*d == 0 || std::abs(*d) > 86400 * 365)
              return bad("a non-zero number of seconds");
            inj.skew_s = *d;
          }
        }
      }
      if (!have_vm)
        return error{ec::config_bad_value,
                     fmt::format("{}: event[{}].vm: missing; the VM's name, "
                                 "such as \"db-02\"",
                                 inj.origin, n)};
      sc.injections.push_back(std::move(inj));
    }
  }
  return sc;
}

result<scenario> load_scenario(const std::filesystem::path& file) {
  std::ifstream in{file, std::ios::binary};
  if (!in)
    return error{ec::config_parse,
                 fmt::format("{}: cannot read the scenario file", file.string())};
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_scenario(ss.str(), file.string());
}

// -- the fleet ---------------------------------------------------------------

struct fleet::impl {
  fleet_options opts;
  std::vector<host_info> hosts;
  std::vector<vm_model> vms;
  std::vector<active> acts;
  time_ns start = 0;
  time_ns end = forever;
  time_ns next = 0;
  time_ns last_done = 0; // time of the last completed step
  std::string run;

  error build();
  vm_model make_vm(std::size_t index, const std::string& name,
                   const std::string& role, std::size_t host,
                   time_ns boot_before);
  void advance_vm(vm_model& v, std::size_t vi, time_ns t);
  void guest_batch(vm_model& v, std::size_t vi, time_ns t, sim_batch& b);
  void hv_event(vm_model& v, std::size_t vi, time_ns t, std::vector<event>& out);
  void logs(vm_model& v, std::size_t vi, time_ns t, time_ns skew,
            std::vector<event>& out);
  const active* find(std::size_t vi, kind k, time_ns t) const {
    for (const auto& a : acts)
      if (a.vm == vi && a.inj.kind == k && a.live(t))
        return &a;
    return nullptr;
  }
  std::string truth() const;
};

vm_model fleet::impl::make_vm(std::size_t index, const std::string& name,
                              const std::string& role, std::size_t host,
                              time_ns boot_before) {
  vm_model v;
  v.index = index;
  v.rng = rng_t{splitmix(opts.seed * 0x100000001b3ULL + index)};
  v.net_rng = rng_t{splitmix(splitmix(opts.seed ^ 0x6e65740000000000ULL) + index)};
  v.disk_rng = rng_t{splitmix(splitmix(opts.seed ^ 0x6469736b00000000ULL) + index)};
  auto& rng = v.rng;
  v.name = name;
  v.role = role;
  v.host = host;
  v.fl = hosts[host].fl;
  v.host_history.push_back({start, host});
  // Guest host names differ from VM names for some VMs: FQDNs, cloud-style.
  if (index % 3 == 0)
    v.hostname = name + ".prod.example.com";
  else if (index % 5 == 0)
    v.hostname = fmt::format("ip-10-{}-0-{}", host + 1, 10 + index);
  else
    v.hostname = name;
  v.agent_id = fmt::format("{}-{:08x}", v.hostname.substr(0, v.hostname.find('.')),
                           static_cast<std::uint32_t>(rng.g()));
  v.uuid = make_uuid(rng, v.fl == flavour::vsphere);
  // From VM hardware version 13 vSphere guests show the first three groups
  // byte-swapped; libvirt guests (SMBIOS from QEMU) match.
  v.swapped = v.fl == flavour::vsphere && rng.chance(0.5);
  v.guest_uuid = v.swapped ? swap_uuid_byte_order(v.uuid) : v.uuid;
  if (v.fl == flavour::vsphere)
    v.serial = vmware_serial(v.uuid);
  static constexpr std::array<int, 3> cpu_choices = {2, 4, 8};
  v.cpus = cpu_choices[rng.below(3)];
  v.mem_bytes = static_cast<std::int64_t>(v.cpus) * 2 * 1024 * mib;
  v.swap_total = 1024 * mib;
  v.mac_notation = static_cast<int>(index % 5);
  v.cache_frac = rng.uniform(0.3, 0.6);
  v.boot = start - boot_before;
  v.next_pid = 2000 + static_cast<int>(rng.below(3000));
  // NICs: the OUI says who assigned the MAC (QEMU 52:54:00, vCenter 00:50:56).
  std::size_t n_nics = role == "db" ? 2 : 1;
  for (std::size_t k = 0; k < n_nics; ++k) {
    nic c;
    if (v.fl == flavour::vsphere)
      c.mac = fmt::format("00:50:56:{:02x}:{:02x}:{:02x}", (index >> 8) & 0x3f,
                          index & 0xff, k + 1);
    else
      c.mac = fmt::format("52:54:00:{:02x}:{:02x}:{:02x}", (index >> 8) & 0xff,
                          index & 0xff, k + 1);
    c.ip = fmt::format("10.{}.{}.{}", k + 1, index / 250, 10 + index % 250);
    c.guest_dev = v.fl == flavour::vsphere ? fmt::format("ens{}", 192 + 32 * k)
                                           : fmt::format("enp{}s0", k + 1);
    c.hv_dev = fmt::format("vnet{}", (index * 2 + k) % 1000);
    double scale = role == "web" ? 6.0 : role == "db" ? 3.0 : 1.5;
    c.rx_rate = rng.uniform(50e3, 400e3) * scale / static_cast<double>(k + 1);
    c.tx_rate = c.rx_rate * (role == "web" ? 4.0 : 0.8);
    auto up = static_cast<double>(boot_before) / ns_per_s;
    c.rx = i64(c.rx_rate * up);
    c.tx = i64(c.tx_rate * up);
    c.rxp = c.rx / 900;
    c.txp = c.tx / 1100;
    c.guest = {i64(static_cast<double>(c.rx) * 0.9992), i64(static_cast<double>(c.tx) * 1.0004),
               i64(static_cast<double>(c.rxp) * 0.9992), i64(static_cast<double>(c.txp) * 1.0004)};
    v.nics.push_back(c);
  }
  v.docker = role == "app";
  if (v.docker) { // containers talking to each other and out through NAT
    v.docker_rate = v.net_rng.uniform(2e3, 30e3);
    auto up = static_cast<double>(boot_before) / ns_per_s;
    v.docker_ctr.rx = i64(v.docker_rate * up);
    v.docker_ctr.tx = i64(v.docker_rate * 1.3 * up);
    v.docker_ctr.rxp = v.docker_ctr.rx / 600;
    v.docker_ctr.txp = v.docker_ctr.tx / 700;
  }
  // Disks: a system disk; databases have a data disk that takes most of
  // their I/O. Rates are the guest's, in bytes/s.
  {
    auto& dr = v.disk_rng;
    double rd = 0, wr = 0;
    if (role == "web") {
      rd = dr.uniform(20e3, 200e3);
      wr = dr.uniform(50e3, 400e3); // access logs
    } else if (role == "db") {
      rd = dr.uniform(1e6, 8e6);
      wr = dr.uniform(0.5e6, 4e6);
    } else if (role == "app") {
      rd = dr.uniform(50e3, 500e3);
      wr = dr.uniform(100e3, 800e3);
    } else {
      rd = dr.uniform(5e3, 50e3);
      wr = dr.uniform(200e3, 2e6); // snapshots of the dataset
    }
    std::size_t n_disks = role == "db" ? 2 : 1;
    auto up = static_cast<double>(boot_before) / ns_per_s;
    for (std::size_t k = 0; k < n_disks; ++k) {
      disk d;
      char letter = static_cast<char>('a' + k);
      d.guest_dev = fmt::format("{}d{}", v.fl == flavour::vsphere ? 's' : 'v', letter);
      d.hv_dev = fmt::format("vd{}", letter);
      double share = n_disks == 1 ? 1.0 : k == 0 ? 0.1 : 0.9;
      d.rd_rate = rd * share;
      d.wr_rate = wr * share;
      // Since boot, in whole sectors; the host a little more.
      d.guest.rd = i64(d.rd_rate * up / 512) * 512;
      d.guest.wr = i64(d.wr_rate * up / 512) * 512;
      d.guest.rdq = d.guest.rd / 32768;
      d.guest.wrq = d.guest.wr / 16384;
      d.host = {i64(static_cast<double>(d.guest.rd) * 1.003 / 512) * 512,
                i64(static_cast<double>(d.guest.wr) * 1.005 / 512) * 512,
                d.guest.rdq + d.guest.rd / 32768 / 300,
                d.guest.wrq + d.guest.wr / 16384 / 200};
      v.disks.push_back(d);
    }
  }
  // vCPUs wait for a host CPU now and then (0.2 % of the time, on average).
  v.vcpu_delay_ns = i64(static_cast<double>(boot_before) * v.cpus * 0.002);
  v.cpu_time_ns = i64(static_cast<double>(boot_before) * v.cpus * 0.1);
  // The process table.
  auto at_boot = [&](double secs) { return v.boot + i64(secs * 1e9); };
  auto add = [&](int pid, int ppid, std::string cmd, std::string args,
                 std::string user, double cpu, double rss_mb, double vsz_mb,
                 int threads, double started) {
    proc p;
    p.pid = pid;
    p.ppid = ppid;
    p.command = std::move(cmd);
    p.args = std::move(args);
    p.user = user;
    p.uid = uid_of(user);
    p.group = group_of(user);
    p.gid = p.uid;
    p.cpu_base = cpu;
    p.rss_base = i64(rss_mb * static_cast<double>(mib));
    p.vsz = i64(vsz_mb * static_cast<double>(mib));
    p.threads = threads;
    p.start_time = at_boot(started);
    v.procs.push_back(std::move(p));
  };
  add(1, 0, "systemd", "/sbin/init", "root", 0.05, 12, 165, 1, 0);
  {
    proc k;
    k.pid = 2;
    k.ppid = 0;
    k.command = "kthreadd";
    k.user = "root";
    k.group = "root";
    k.kernel = true;
    k.start_time = v.boot;
    v.procs.push_back(k);
    for (int i = 0; i < v.cpus && i < 4; ++i) {
      k.pid = 20 + i;
      k.ppid = 2;
      k.command = fmt::format("kworker/{}:1-events", i);
      k.cpu_base = 0.1;
      v.procs.push_back(k);
    }
    k.pid = 12;
    k.command = "rcu_sched";
    v.procs.push_back(k);
  }
  add(310, 1, "systemd-journal", "/lib/systemd/systemd-journald", "root", 0.1,
      28, 90, 1, 2);
  add(335, 1, "systemd-udevd", "/lib/systemd/systemd-udevd", "root", 0.0, 7,
      25, 1, 2);
  add(512, 1, "dbus-daemon",
      "/usr/bin/dbus-daemon --system --address=systemd: --nofork "
      "--nopidfile --systemd-activation --syslog-only",
      "messagebus", 0.0, 5, 9, 1, 3);
  add(520, 1, "rsyslogd", "/usr/sbin/rsyslogd -n -iNONE", "syslog", 0.05, 6,
      220, 4, 3);
  add(523, 1, "systemd-logind", "/lib/systemd/systemd-logind", "root", 0.0, 8,
      17, 1, 3);
  add(540, 1, "chronyd", "/usr/sbin/chronyd -F 1", "_chrony", 0.0, 3, 18, 1, 3);
  add(601, 1, "cron", "/usr/sbin/cron -f", "root", 0.0, 3, 7, 1, 4);
  add(640, 1, "sshd", "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups",
      "root", 0.0, 9, 15, 1, 4);
  add(655, 1, "agetty", "/sbin/agetty -o -p -- \\u --noclear tty1 linux",
      "root", 0.0, 2, 6, 1, 4);
  if (v.fl == flavour::vsphere)
    add(700, 1, "vmtoolsd", "/usr/bin/vmtoolsd", "root", 0.2, 9, 170, 3, 4);
  else
    add(700, 1, "qemu-ga", "/usr/sbin/qemu-ga", "root", 0.0, 4, 80, 2, 4);
  add(720, 1, "parallax", "/usr/bin/parallax agent --config /etc/parallax/agent.toml",
      "root", 0.3, 24, 600, 6, 5);
  auto mem_mb = static_cast<double>(v.mem_bytes / mib);
  if (role == "web") {
    v.workload = "nginx";
    add(900, 1, "nginx", "nginx: master process /usr/sbin/nginx -g daemon on; master_process on;",
        "root", 0.0, 6, 60, 1, 6);
    for (int i = 0; i < v.cpus; ++i)
      add(901 + i, 900, "nginx", "nginx: worker process", "www-data",
          rng.uniform(2, 9), rng.uniform(25, 60), 90, 1, 6);
    add(950, 1, "php-fpm8.2", "php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)",
        "root", 0.1, 20, 250, 1, 6);
    for (int i = 0; i < 4; ++i)
      add(951 + i, 950, "php-fpm8.2", "php-fpm: pool www", "www-data",
          rng.uniform(1, 6), rng.uniform(60, 120), 300, 1, 7);
  } else if (role == "db") {
    v.workload = "postgres";
    add(1100, 1, "postgres",
        "/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main "
        "-c config_file=/etc/postgresql/15/main/postgresql.conf",
        "postgres", 0.5, mem_mb * 0.25, mem_mb * 0.3, 1, 6);
    static constexpr std::array<const char*, 5> aux = {
      "postgres: 15/main: checkpointer", "postgres: 15/main: background writer",
      "postgres: 15/main: walwriter", "postgres: 15/main: autovacuum launcher",
      "postgres: 15/main: logical replication launcher"};
    for (std::size_t i = 0; i < aux.size(); ++i)
      add(1101 + static_cast<int>(i), 1100, "postgres", aux[i], "postgres",
          rng.uniform(0.1, 1.5), rng.uniform(8, 40), mem_mb * 0.3, 1, 6);
    for (int i = 0; i < 2 * v.cpus; ++i)
      add(1200 + i, 1100, "postgres",
          fmt::format("postgres: 15/main: app appdb 10.1.0.{}({}) idle", 20 + i,
                      40000 + 17 * i),
          "postgres", rng.uniform(1, 12), rng.uniform(30, 90), mem_mb * 0.3, 1,
          rng.uniform(60, 3600));
  } else if (role == "app") {
    v.workload = "java";
    add(1300, 1, "java",
        fmt::format("/usr/bin/java -Xms{0}m -Xmx{0}m -jar /opt/app/service.jar",
                    static_cast<int>(mem_mb * 0.4)),
        "appuser", rng.uniform(25, 60) * v.cpus / 2, mem_mb * 0.38,
        mem_mb * 0.9, 40 + v.cpus * 4, 8);
    add(1000, 1, "dockerd", "/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock",
        "root", 0.3, 70, 1500, 12, 5);
    add(990, 1, "containerd", "/usr/bin/containerd", "root", 0.2, 40, 1300, 10, 5);
  } else {
    v.workload = "redis-server";
    add(1400, 1, "redis-server", "/usr/bin/redis-server 127.0.0.1:6379",
        "redis", rng.uniform(5, 20), mem_mb * 0.35, mem_mb * 0.4, 5, 6);
    add(1450, 1, "redis-sentinel", "/usr/bin/redis-sentinel *:26379 [sentinel]",
        "redis", 0.3, 8, 60, 5, 6);
  }
  // A logged-in operator.
  add(22001, 640, "sshd", "sshd: deploy [priv]", "root", 0.0, 10, 17, 1,
      static_cast<double>(boot_before) / ns_per_s - 3600);
  add(22010, 22001, "sshd", "sshd: deploy@pts/0", "deploy", 0.0, 7, 17, 1,
      static_cast<double>(boot_before) / ns_per_s - 3600);
  add(22011, 22010, "bash", "-bash", "deploy", 0.0, 5, 9, 1,
      static_cast<double>(boot_before) / ns_per_s - 3600);
  if (role == "web" || role == "cache")
    add(23000, 22011, "tmux", "tmux new -s ops", "deploy", 0.0, 4, 12, 1,
        static_cast<double>(boot_before) / ns_per_s - 3500);
  for (auto& p : v.procs)
    p.rss = p.rss_base;
  return v;
}

error fleet::impl::build() {
  if (opts.vms < 1 || opts.vms > 100000)
    return error{ec::usage, "--vms: from 1 to 100000"};
  if (opts.hosts < 1 || opts.hosts > 10000)
    return error{ec::usage, "--hosts: from 1 to 10000"};
  start = opts.start - ((opts.start % hv_interval) + hv_interval) % hv_interval;
  end = opts.duration > 0 ? start + opts.duration : forever;
  next = start;
  last_done = start;
  for (std::size_t h = 0; h < opts.hosts; ++h) {
    auto fl = h % 2 == 0 ? flavour::libvirt : flavour::vsphere;
    hosts.push_back({fmt::format("{}-{:02}", fl == flavour::libvirt ? "kvm" : "esx",
                                 h + 1),
                     fl});
  }
  for (std::size_t i = 1; i <= opts.vms; ++i) {
    auto role = std::string{roles[(i - 1) % roles.size()]};
    auto name = fmt::format("{}-{:02}", role, i);
    // Booted 1 to 30 days before the start.
    auto up = static_cast<time_ns>(86400 + splitmix(opts.seed ^ (i * 7919)) % (29 * 86400))
              * ns_per_s;
    vms.push_back(make_vm(i, name, role, (i - 1) % hosts.size(), up));
  }
  // Resolve the scenario against the fleet.
  auto vm_named = [&](const std::string& n) -> std::optional<std::size_t> {
    for (std::size_t i = 0; i < vms.size(); ++i)
      if (vms[i].name == n)
        return i;
    return std::nullopt;
  };
  auto host_named = [&](const std::string& n) -> std::optional<std::size_t> {
    for (std::size_t i = 0; i < hosts.size(); ++i)
      if (hosts[i].name == n)
        return i;
    return std::nullopt;
  };
  const auto& origin = opts.injected.origin;
  std::size_t n = 0;
  for (const auto& inj : opts.injected.injections) {
    ++n;
    auto bad = [&](std::string_view key, std::string msg) {
      return error{ec::config_bad_value,
                   fmt::format("{}: event[{}].{}: {}",
                               inj.origin.empty() ? origin : inj.origin, n, key,
                               msg)};
    };
    auto vi = vm_named(inj.vm);
    if (!vi) {
      std::string names;
      for (std::size_t i = 0; i < vms.size() && i < 6; ++i)
        names += (i ? ", " : "") + vms[i].name;
      return bad("vm", fmt::format("no VM named \"{}\" in this fleet ({} VMs: "
                                   "{}{})",
                                   inj.vm, vms.size(), names,
                                   vms.size() > 6 ? ", ..." : ""));
    }
    active a;
    a.inj = inj;
    a.vm = *vi;
    a.from = start + inj.start;
    a.until = inj.duration > 0 ? a.from + inj.duration : forever;
    auto& v = vms[*vi];
    switch (inj.kind) {
      case kind::memory_leak:
      case kind::cpu_hog: {
        if (a.inj.process.empty())
          a.inj.process = v.workload;
        auto it = std::find_if(v.procs.begin(), v.procs.end(), [&](const proc& p) {
          return p.command == a.inj.process && !p.kernel;
        });
        if (it == v.procs.end())
          return bad("process", fmt::format("VM {} runs no process \"{}\" (its "
                                            "workload is {})",
                                            v.name, a.inj.process, v.workload));
        // The hungriest process of that name: the one a leak or hog is in.
        for (auto j = it; j != v.procs.end(); ++j)
          if (j->command == a.inj.process && !j->kernel
              && (inj.kind == kind::memory_leak ? j->rss_base > it->rss_base
                                                : j->cpu_base > it->cpu_base))
            it = j;
        a.proc = static_cast<std::size_t>(it - v.procs.begin());
        if (a.inj.cpu_pct <= 0)
          a.inj.cpu_pct = 95.0 * std::min(v.cpus, it->threads);
        break;
      }
      case kind::rogue_process:
      case kind::non_admin_process: {
        bool rogue = inj.kind == kind::rogue_process;
        if (a.inj.process.empty())
          a.inj.process = rogue ? "kdevtmpfsi" : "python3";
        if (a.inj.user.empty())
          a.inj.user = rogue ? "nobody" : "alice";
        if (a.inj.cpu_pct <= 0)
          a.inj.cpu_pct = rogue ? 100.0 * std::min(v.cpus, 2) * 0.9 : 15.0;
        if (!rogue && uid_of(a.inj.user) < 1000)
          return bad("user", fmt::format("\"{}\" is a system account; a "
                                         "non-admin user has a uid from 1000",
                                         a.inj.user));
        proc p;
        p.pid = v.next_pid += 7;
        p.ppid = rogue ? 1 : 22011;
        p.command = a.inj.process;
        p.args = rogue ? fmt::format("/tmp/.{} -o pool.example.net:3333",
                                     a.inj.process)
                       : fmt::format("{} -m http.server 8000", a.inj.process);
        p.user = a.inj.user;
        p.uid = uid_of(p.user);
        p.group = group_of(p.user);
        p.gid = p.uid;
        p.start_time = a.from;
        p.cpu_base = a.inj.cpu_pct;
        p.rss_base = (rogue ? 220 : 35) * mib;
        p.vsz = (rogue ? 900 : 120) * mib;
        p.threads = rogue ? std::min(v.cpus, 2) : 1;
        p.hidden = rogue && a.inj.hidden;
        p.from = a.from;
        p.until = a.until;
        p.rss = p.rss_base;
        a.proc = v.procs.size();
        v.procs.push_back(std::move(p));
        break;
      }
      case kind::ballooning:
        if (a.inj.balloon_mb * mib > static_cast<double>(v.mem_bytes) * 0.6)
          return bad("balloon-mb",
                     fmt::format("{} MB is more than 60 % of {}'s {} MB", a.inj.balloon_mb,
                                 v.name, v.mem_bytes / mib));
        break;
      case kind::vmotion: {
        // Migration stays within a flavour: libvirt to libvirt, ESXi to ESXi.
        std::size_t from = v.host;
        for (const auto& h : v.host_history)
          if (h.first <= a.from)
            from = h.second;
        std::optional<std::size_t> to;
        if (!inj.target_host.empty()) {
          to = host_named(inj.target_host);
          if (!to)
            return bad("target-host", fmt::format("no host named \"{}\" (hosts "
                                                  "are {}..{})",
                                                  inj.target_host, hosts.front().name,
                                                  hosts.back().name));
          if (hosts[*to].fl != hosts[from].fl || *to == from)
            return bad("target-host",
                       fmt::format("{} cannot move from {} to {}: another "
                                   "flavour of hypervisor, or the same host",
                                   v.name, hosts[from].name, hosts[*to].name));
        } else {
          for (std::size_t k = 1; k < hosts.size() && !to; ++k) {
            auto h = (from + k) % hosts.size();
            if (hosts[h].fl == hosts[from].fl)
              to = h;
          }
          if (!to)
            return bad("vm", fmt::format("{} is on {}, and no other host has "
                                         "the same flavour (add --hosts)",
                                         v.name, hosts[from].name));
        }
        a.from_host = from;
        a.to_host = *to;
        a.until = a.from; // instantaneous
        v.host_history.push_back({a.from, *to});
        std::sort(v.host_history.begin(), v.host_history.end());
        break;
      }
      case kind::clone: {
        auto cname = inj.name.empty() ? v.name + "-clone" : inj.name;
        if (vm_named(cname))
          return bad("name", fmt::format("a VM named \"{}\" exists already", cname));
        std::size_t h = v.host;
        if (!inj.target_host.empty()) {
          auto t = host_named(inj.target_host);
          if (!t || hosts[*t].fl != v.fl)
            return bad("target-host",
                       fmt::format("no host \"{}\" of {}'s flavour", inj.target_host,
                                   v.name));
          h = *t;
        }
        auto c = make_vm(vms.size() + 1, cname, v.role, h, 45 * ns_per_s);
        // What a clone keeps: MACs, host name, agent identity (and the guest's
        // MAC notation); what it gets anew: BIOS UUID, IPs, boot, processes.
        c.host_history = {{a.from, h}};
        c.boot += a.from - start;
        for (auto& p : c.procs)
          p.start_time += a.from - start;
        c.hostname = v.hostname;
        c.agent_id = v.agent_id;
        c.mac_notation = v.mac_notation;
        c.swapped = v.swapped;
        c.guest_uuid = c.swapped ? swap_uuid_byte_order(c.uuid) : c.uuid;
        for (std::size_t k = 0; k < c.nics.size() && k < v.nics.size(); ++k)
          c.nics[k].mac = v.nics[k].mac;
        c.present_from = a.from;
        c.present_until = a.until;
        c.clone_of = v.name;
        a.other_vm = vms.size();
        vms.push_back(std::move(c));
        break;
      }
      case kind::cpu_contention:
      case kind::agent_outage:
      case kind::clock_skew:
        break;
    }
    acts.push_back(std::move(a));
  }
  // The run tag: everything that determines the events.
  fnv h;
  h.add(opts.seed);
  h.add(static_cast<std::uint64_t>(opts.vms));
  h.add(static_cast<std::uint64_t>(opts.hosts));
  h.add(static_cast<std::uint64_t>(start));
  h.add(static_cast<std::uint64_t>(end));
  h.add_byte(opts.mixed_mac_notation ? 1 : 0);
  for (const auto& a : acts) {
    h.add(to_string(a.inj.kind));
    h.add(a.inj.vm);
    h.add(static_cast<std::uint64_t>(a.from));
    h.add(static_cast<std::uint64_t>(a.until));
    h.add(a.inj.process);
    h.add(a.inj.user);
    h.add(a.inj.name);
    h.add(a.inj.target_host);
    h.add(a.inj.rate_mb_per_min);
    h.add(a.inj.cpu_pct);
    h.add(a.inj.balloon_mb);
    h.add(a.inj.ready_pct);
    h.add(a.inj.skew_s);
    h.add_byte(a.inj.hidden ? 1 : 0);
  }
  run = fmt::format("{:08x}", static_cast<std::uint32_t>(h.h ^ (h.h >> 32)));
  return {};
}

// Computes a VM's state over the agent interval ending at `t`.
void fleet::impl::advance_vm(vm_model& v, std::size_t vi, time_ns t) {
  auto& rng = v.rng;
  auto leak = find(vi, kind::memory_leak, t);
  auto hog = find(vi, kind::cpu_hog, t);
  double all_cpu = 0, visible = 0;
  std::int64_t rss_sum = 0;
  for (std::size_t i = 0; i < v.procs.size(); ++i) {
    auto& p = v.procs[i];
    if (t < p.from || t >= p.until)
      continue;
    if (p.kernel) {
      p.cpu = p.cpu_base * rng.noise(0.5);
      p.rss = 0;
    } else {
      p.cpu = p.cpu_base * rng.noise(0.35);
      p.rss = i64(static_cast<double>(p.rss_base) * (1 + 0.004 * rng.gauss()));
    }
    if (hog && hog->proc == i)
      p.cpu = hog->inj.cpu_pct * rng.noise(0.03);
    if (leak && leak->proc == i)
      p.rss += i64(leak->inj.rate_mb_per_min * mib
                   * (static_cast<double>(t - leak->from) / (60.0 * ns_per_s)));
    p.cpu = std::min(p.cpu, 100.0 * std::min(p.threads, v.cpus));
    all_cpu += p.cpu;
    if (!p.hidden)
      visible += p.cpu;
    rss_sum += p.rss;
  }
  // Kernel time not charged to any process (interrupts, softirq).
  double kernel = 0.4 + 0.015 * all_cpu;
  double cap = 98.0 * v.cpus;
  if (all_cpu + kernel > cap) { // the CPUs are saturated: everyone gets less
    double f = (cap - kernel) / all_cpu;
    for (auto& p : v.procs)
      if (t >= p.from && t < p.until)
        p.cpu *= f;
    visible *= f;
    all_cpu *= f;
  }
  v.visible_cpu = visible;
  v.busy = (all_cpu + kernel) / v.cpus;
  v.iowait = (v.role == "db" ? 1.5 : 0.3) * rng.noise(0.4);
  auto cont = find(vi, kind::cpu_contention, t);
  v.steal = cont ? cont->inj.ready_pct * rng.noise(0.1)
                 : (v.fl == flavour::vsphere ? 0.6 : 0.2) * rng.noise(0.5);
  // Memory: guest "used" (MemTotal - MemAvailable) is what processes hold
  // plus unreclaimable kernel memory.
  auto balloon_act = find(vi, kind::ballooning, t);
  v.balloon = 0;
  if (balloon_act) {
    // Inflates over two minutes, deflates at once at the end.
    double ramp = std::min(1.0, static_cast<double>(t - balloon_act->from)
                                  / (120.0 * ns_per_s));
    v.balloon = i64(balloon_act->inj.balloon_mb * mib * ramp);
  }
  std::int64_t kernel_mem = 160 * mib + v.mem_bytes / 50;
  v.used_real = rss_sum + kernel_mem;
  if (v.fl == flavour::libvirt) { // virtio-balloon lowers MemTotal
    v.total = v.mem_bytes - v.balloon;
    v.used = v.used_real;
  } else { // vmmemctl pins pages: they count as used
    v.total = v.mem_bytes;
    v.used = v.used_real + v.balloon;
  }
  v.used = std::min(v.used, v.total * 97 / 100); // the OOM killer's line
  v.used_real = std::min(v.used_real, v.used);
  v.cache = i64(static_cast<double>(v.total - v.used) * v.cache_frac
                * (1 + 0.01 * rng.gauss()));
  // NICs.
  for (auto& c : v.nics) {
    auto rx = i64(c.rx_rate * rng.noise(0.3) * 10);
    auto tx = i64(c.tx_rate * rng.noise(0.3) * 10);
    c.rx += rx;
    c.tx += tx;
    c.rxp += rx / 900 + 1;
    c.txp += tx / 1100 + 1;
    // The guest's view: up to 0.2 % of received frames dropped in the ring
    // (counted by the host, not the guest), up to 0.1 % of sent ones lost
    // in the tap (counted by the guest, not the host).
    double rx_drop = v.net_rng.uniform(0, 0.002), tx_drop = v.net_rng.uniform(0, 0.001);
    auto rxp = rx / 900 + 1, txp = tx / 1100 + 1;
    c.guest.rx += rx - i64(static_cast<double>(rx) * rx_drop);
    c.guest.tx += tx + i64(static_cast<double>(tx) * tx_drop);
    c.guest.rxp += rxp - i64(static_cast<double>(rxp) * rx_drop);
    c.guest.txp += txp + i64(static_cast<double>(txp) * tx_drop);
  }
  // Disks: whole sectors. The host counts every request of the guest and
  // a little I/O of its own on the disk image (metadata updates: 0.1 to
  // 0.5 % more read, 0.2 to 0.8 % more written, and a 4 KiB write).
  for (auto& d : v.disks) {
    auto& dr = v.disk_rng;
    auto rd = i64(d.rd_rate * dr.noise(0.15) * 10 / 512) * 512;
    auto wr = i64(d.wr_rate * dr.noise(0.15) * 10 / 512) * 512;
    auto rdq = rd / 32768 + 1, wrq = wr / 16384 + 1;
    d.guest.rd += rd;
    d.guest.wr += wr;
    d.guest.rdq += rdq;
    d.guest.wrq += wrq;
    auto extra_rd = i64(static_cast<double>(rd) * dr.uniform(0.001, 0.005) / 512) * 512;
    auto extra_wr = i64(static_cast<double>(wr) * dr.uniform(0.002, 0.008) / 512) * 512
                    + 4096;
    d.host.rd += rd + extra_rd;
    d.host.wr += wr + extra_wr;
    d.host.rdq += rdq + extra_rd / 4096;
    d.host.wrq += wrq + extra_wr / 4096;
  }
  if (v.docker) {
    auto rx = i64(v.docker_rate * v.net_rng.noise(0.4) * 10);
    auto tx = i64(v.docker_rate * 1.3 * v.net_rng.noise(0.4) * 10);
    v.docker_ctr.rx += rx;
    v.docker_ctr.tx += tx;
    v.docker_ctr.rxp += rx / 600 + 1;
    v.docker_ctr.txp += tx / 700 + 1;
  }
  // Load averages: exponential moving averages of runnable tasks.
  double runnable = all_cpu / 100 + 0.05;
  if (v.load1 == 0 && v.load5 == 0)
    v.load1 = v.load5 = v.load15 = runnable;
  v.load1 = runnable + (v.load1 - runnable) * std::exp(-10.0 / 60);
  v.load5 = runnable + (v.load5 - runnable) * std::exp(-10.0 / 300);
  v.load15 = runnable + (v.load15 - runnable) * std::exp(-10.0 / 900);
  v.hv_busy_acc += v.busy;
  v.hv_steal_acc += v.steal;
  ++v.hv_steps;
}

void fleet::impl::logs(vm_model& v, std::size_t vi, time_ns t, time_ns skew,
                       std::vector<event>& out) {
  auto& rng = v.rng;
  struct line {
    time_ns at;
    std::string_view st, source;
    std::string text;
  };
  std::vector<line> lines;
  auto host = v.hostname.substr(0, v.hostname.find('.')); // syslog's short name
  auto emit = [&](time_ns at, std::string_view st, std::string text) {
    std::string_view src = st == "os:auth" ? "/var/log/auth.log"
                           : st == "os:cron" ? "/var/log/cron.log"
                                             : "/var/log/syslog";
    lines.push_back({at, st, src, std::move(text)});
  };
  auto pid = [&] { return v.next_pid += 1 + static_cast<int>(rng.below(40)); };
  time_ns lo = t - agent_interval; // the window is (lo, t]
  // Cron: jobs fire at second 1 of their minute.
  for (time_ns m = (lo / (60 * ns_per_s)) * 60 * ns_per_s; m <= t; m += 60 * ns_per_s) {
    auto at = m + ns_per_s;
    if (at <= lo || at > t)
      continue;
    auto minute = (m / (60 * ns_per_s)) % 60;
    std::vector<std::pair<std::string, std::string>> jobs;
    if (minute % 10 == 0)
      jobs.push_back({"root", "command -v debian-sa1 > /dev/null && debian-sa1 1 1"});
    if (minute == 17)
      jobs.push_back({"root", "cd / && run-parts --report /etc/cron.hourly"});
    if (v.role == "db" && minute % 15 == 5)
      jobs.push_back({"postgres", "/usr/local/bin/pg_backup.sh --incremental"});
    if (v.role == "web" && minute % 30 == 0)
      jobs.push_back({"www-data", "/usr/local/bin/rotate-cache.sh"});
    for (auto& [user, cmd] : jobs) {
      auto p = pid();
      emit(at, "os:auth",
           fmt::format("CRON[{}]: pam_unix(cron:session): session opened for user "
                       "{}(uid={}) by (uid=0)",
                       p, user, uid_of(user)));
      emit(at, "os:cron", fmt::format("CRON[{}]: ({}) CMD ({})", p, user, cmd));
    }
  }
  // An operator logs in and uses sudo (and su on databases).
  if (rng.chance(0.02)) {
    auto at = lo + static_cast<time_ns>(1 + rng.below(7)) * ns_per_s;
    auto p = pid();
    auto session = 100 + rng.below(900);
    emit(at, "os:auth",
         fmt::format("sshd[{}]: Accepted publickey for deploy from 10.0.0.5 port {} "
                     "ssh2: ED25519 SHA256:{:016x}{:016x}",
                     p, 40000 + rng.below(20000), rng.g(), rng.g()));
    emit(at, "os:auth",
         fmt::format("sshd[{}]: pam_unix(sshd:session): session opened for user "
                     "deploy(uid=1000) by (uid=0)",
                     p));
    emit(at, "os:syslog",
         fmt::format("systemd-logind[523]: New session {} of user deploy.", session));
    static constexpr std::array<const char*, 4> cmds = {
      "/usr/bin/systemctl status {}", "/usr/bin/journalctl -u {} -n 50",
      "/usr/bin/apt-get update", "/usr/bin/tail -n 100 /var/log/syslog"};
    emit(at + 2 * ns_per_s, "os:auth",
         fmt::format("sudo:   deploy : TTY=pts/1 ; PWD=/home/deploy ; USER=root ; "
                     "COMMAND={}",
                     fmt::format(fmt::runtime(cmds[rng.below(cmds.size())]), v.workload)));
    emit(at + 2 * ns_per_s, "os:auth",
         "sudo: pam_unix(sudo:session): session opened for user root(uid=0) by "
         "deploy(uid=1000)");
    if (v.role == "db") {
      auto sp = pid();
      emit(at + 3 * ns_per_s, "os:auth",
           fmt::format("su[{}]: (to postgres) deploy on pts/1", sp));
      emit(at + 3 * ns_per_s, "os:auth",
           fmt::format("su[{}]: pam_unix(su-l:session): session opened for user "
                       "postgres(uid=114) by deploy(uid=1000)",
                       sp));
    }
  }
  // Background noise from the internet on web servers.
  if (v.role == "web" && rng.chance(0.05)) {
    auto at = lo + static_cast<time_ns>(1 + rng.below(9)) * ns_per_s;
    auto p = pid();
    auto ip = fmt::format("203.0.113.{}", 1 + rng.below(254));
    auto port = 30000 + rng.below(30000);
    emit(at, "os:auth", fmt::format("sshd[{}]: Invalid user admin from {} port {}", p, ip, port));
    emit(at, "os:auth",
         fmt::format("sshd[{}]: Failed password for invalid user admin from {} "
                     "port {} ssh2",
                     p, ip, port));
  }
  // A non-admin user logs in to start the process the scenario injects.
  for (const auto& a : acts)
    if (a.vm == vi && a.inj.kind == kind::non_admin_process && a.from > lo
        && a.from <= t) {
      // On the first whole second of the window at or after the start.
      auto at_s = std::min(t, std::max(lo + ns_per_s,
                                       (a.from + ns_per_s - 1) / ns_per_s * ns_per_s));
      auto p = pid();
      emit(at_s, "os:auth",
           fmt::format("sshd[{}]: Accepted password for {} from 10.0.3.7 port {} ssh2",
                       p, a.inj.user, 40000 + rng.below(20000)));
      emit(at_s, "os:auth",
           fmt::format("sshd[{}]: pam_unix(sshd:session): session opened for user "
                       "{}(uid={}) by (uid=0)",
                       p, a.inj.user, uid_of(a.inj.user)));
    }
  std::stable_sort(lines.begin(), lines.end(),
                   [](const line& a, const line& b) { return a.at < b.at; });
  for (auto& l : lines) {
    event e;
    e.time = l.at + skew;
    e.index = "main";
    e.host = v.hostname;
    e.source = std::string{l.source};
    e.sourcetype = std::string{l.st};
    e.raw = fmt::format("{} {} {}", syslog_time(e.time), host, l.text);
    put(e, "agent_id", v.agent_id);
    out.push_back(std::move(e));
  }
}

void fleet::impl::guest_batch(vm_model& v, std::size_t vi, time_ns t,
                              sim_batch& b) {
  auto skew_act = find(vi, kind::clock_skew, t);
  time_ns skew = skew_act ? i64(skew_act->inj.skew_s * 1e9) : 0;
  auto gt = t + skew; // what the guest's clock says
  auto& out = b.events;
  logs(v, vi, t, skew, out);
  auto base = [&](std::string_view st, std::string_view source) {
    event e;
    e.time = gt;
    e.index = "main";
    e.host = v.hostname;
    e.source = std::string{source};
    e.sourcetype = std::string{st};
    put(e, "agent_id", v.agent_id);
    return e;
  };
  auto mac_text = [&](const std::string& m) {
    return opts.mixed_mac_notation ? format_mac(m, v.mac_notation) : m;
  };
  if (v.agent_fresh || t - v.last_identity >= identity_interval) {
    v.last_identity = t;
    auto e = base("os:identity", "/sys/class/dmi/id");
    std::string macs, ips;
    for (const auto& c : v.nics) {
      macs += (macs.empty() ? "" : ",") + mac_text(c.mac);
      ips += (ips.empty() ? "" : ",") + c.ip;
    }
    put(e, "hostname", v.hostname);
    put(e, "macs", macs);
    put(e, "ips", ips);
    put(e, "bios_uuid", v.guest_uuid);
    if (!v.serial.empty())
      put(e, "bios_serial", v.serial);
    put(e, "bios_readable", true);
    out.push_back(std::move(e));
    auto nic_event = [&](std::string name, std::string mac, std::string ips_,
                         const char* kind_, const char* state) {
      auto n = base("os:nic", "/sys/class/net");
      put(n, "nic", std::move(name));
      put(n, "mac", std::move(mac));
      put(n, "ips", std::move(ips_));
      put(n, "kind", kind_);
      put(n, "operstate", state);
      out.push_back(std::move(n));
    };
    nic_event("lo", "00:00:00:00:00:00", "127.0.0.1", "loopback", "unknown");
    for (const auto& c : v.nics)
      nic_event(c.guest_dev, mac_text(c.mac), c.ip, "physical", "up");
    if (v.docker)
      nic_event("docker0", fmt::format("02:42:ac:{:02x}:00:01", v.index & 0xff),
                "172.17.0.1", "bridge", "up");
  }
  for (auto& p : v.procs) {
    if (t < p.from || t >= p.until || p.hidden)
      continue;
    auto e = base("os:process", "/proc");
    put(e, "pid", p.pid);
    put(e, "ppid", p.ppid);
    put(e, "command", p.command);
    put(e, "args", p.args);
    put(e, "user", p.user);
    put(e, "uid", p.uid);
    put(e, "group", p.group);
    put(e, "gid", p.gid);
    put(e, "state", p.kernel ? "I" : p.cpu > 50 ? "R" : "S");
    put(e, "start_time", p.start_time + skew);
    if (p.seen)
      put(e, "cpu_pct", r2(p.cpu));
    put(e, "rss_bytes", p.rss);
    put(e, "vsz_bytes", p.kernel ? std::int64_t{0} : std::max(p.vsz, p.rss));
    put(e, "threads", p.threads);
    p.seen = true;
    out.push_back(std::move(e));
  }
  auto s = base("os:system", "/proc");
  auto available = v.total - v.used;
  put(s, "mem_total_bytes", v.total);
  put(s, "mem_available_bytes", available);
  put(s, "mem_used_bytes", v.used);
  put(s, "mem_used_pct", r2(static_cast<double>(v.used) * 100 / static_cast<double>(v.total)));
  put(s, "swap_total_bytes", v.swap_total);
  put(s, "swap_free_bytes", v.swap_total - 12 * mib);
  if (!v.agent_fresh) {
    put(s, "cpu_busy_pct", r2(v.busy));
    put(s, "cpu_iowait_pct", r2(v.iowait));
    put(s, "cpu_steal_pct", r2(v.steal));
  }
  put(s, "cpus", v.cpus);
  put(s, "load1", r2(v.load1));
  put(s, "load5", r2(v.load5));
  put(s, "load15", r2(v.load15));
  put(s, "uptime_s", static_cast<double>((t - v.boot) / 1'000'000) / 1000.0);
  out.push_back(std::move(s));
  // NIC counters: every interface but loopback, rates over the agent's
  // (monotonic) interval, none on a fresh agent's first sample.
  auto net_event = [&](std::string name, std::string mac, const char* kind_,
                       const counters& now, counters& prev) {
    auto n = base("os:net", "/sys/class/net");
    put(n, "nic", std::move(name));
    put(n, "mac", std::move(mac));
    put(n, "kind", kind_);
    put(n, "rx_bytes", now.rx);
    put(n, "tx_bytes", now.tx);
    put(n, "rx_packets", now.rxp);
    put(n, "tx_packets", now.txp);
    if (!v.agent_fresh) {
      double dt = static_cast<double>(agent_interval) / ns_per_s;
      put(n, "rx_bytes_per_s", r2(static_cast<double>(now.rx - prev.rx) / dt));
      put(n, "tx_bytes_per_s", r2(static_cast<double>(now.tx - prev.tx) / dt));
      put(n, "rx_packets_per_s", r2(static_cast<double>(now.rxp - prev.rxp) / dt));
      put(n, "tx_packets_per_s", r2(static_cast<double>(now.txp - prev.txp) / dt));
    }
    prev = now;
    out.push_back(std::move(n));
  };
  for (auto& c : v.nics)
    net_event(c.guest_dev, mac_text(c.mac), "physical", c.guest, c.guest_prev);
  if (v.docker)
    net_event("docker0", fmt::format("02:42:ac:{:02x}:00:01", v.index & 0xff),
              "bridge", v.docker_ctr, v.docker_prev);
  // Block devices, as /proc/diskstats counts them (whole sectors).
  for (auto& d : v.disks) {
    auto n = base("os:disk", "/proc/diskstats");
    put(n, "dev", d.guest_dev);
    put(n, "rd_bytes", d.guest.rd);
    put(n, "wr_bytes", d.guest.wr);
    put(n, "rd_reqs", d.guest.rdq);
    put(n, "wr_reqs", d.guest.wrq);
    if (!v.agent_fresh) {
      double dt = static_cast<double>(agent_interval) / ns_per_s;
      put(n, "rd_bytes_per_s", r2(static_cast<double>(d.guest.rd - d.guest_prev.rd) / dt));
      put(n, "wr_bytes_per_s", r2(static_cast<double>(d.guest.wr - d.guest_prev.wr) / dt));
    }
    d.guest_prev = d.guest;
    out.push_back(std::move(n));
  }
  v.agent_fresh = false;
}

void fleet::impl::hv_event(vm_model& v, std::size_t vi, time_ns t,
                           std::vector<event>& out) {
  double busy = v.hv_steps ? v.hv_busy_acc / v.hv_steps : v.busy;
  double steal = v.hv_steps ? v.hv_steal_acc / v.hv_steps : v.steal;
  v.hv_busy_acc = v.hv_steal_acc = 0;
  v.hv_steps = 0;
  // The hypervisor charges the VM for emulation and I/O threads too.
  double cpu_pct = std::min(100.0, busy * 1.02 + 0.4);
  v.cpu_time_ns += i64(cpu_pct / 100 * v.cpus * static_cast<double>(hv_interval));
  // CPU ready (vCPU delay), per vCPU: what the guest saw as steal over the
  // interval; below 1 % unless the host is contended.
  bool contended = find(vi, kind::cpu_contention, t)
                   || find(vi, kind::cpu_contention, t - agent_interval);
  double ready = contended ? steal : std::min(steal, 1.0);
  v.vcpu_delay_ns += i64(ready / 100 * v.cpus * static_cast<double>(hv_interval));
  auto allocated = v.mem_bytes - v.balloon;
  // Host memory backing the guest: what it uses, the page cache it has
  // touched (the host never learns that a freed page is free again), a
  // little overhead; the balloon hands the cache's pages back; never more
  // than the guest was given.
  if (v.cache_touched < 0)
    v.cache_touched = i64(static_cast<double>(v.cache) * 0.85);
  auto consumed = std::min<std::int64_t>(
    allocated, i64(static_cast<double>(v.used_real) * 1.02)
                 + std::max<std::int64_t>(0, v.cache_touched - v.balloon) + 24 * mib);
  std::string macs;
  for (const auto& c : v.nics)
    macs += (macs.empty() ? "" : ",") + c.mac;
  const auto& h = hosts[v.host];
  event e;
  e.time = t;
  e.index = "main";
  e.host = h.name;
  put(e, "vm_name", v.name);
  put(e, "vm_uuid", v.uuid);
  if (h.fl == flavour::libvirt) {
    e.source = "libvirt:qemu:///system";
    e.sourcetype = "hv:libvirt:vm";
    put(e, "state", "running");
    put(e, "vcpus", v.cpus);
    put(e, "mem_max_bytes", v.mem_bytes);
    put(e, "mem_allocated_bytes", allocated);
    put(e, "cpu_time_ns", v.cpu_time_ns);
    if (!v.hv_fresh)
      put(e, "cpu_pct", r2(cpu_pct));
    // vcpu.N.delay: the guest sees the same wait as steal.
    put(e, "vcpu_delay_ns", v.vcpu_delay_ns);
    if (!v.hv_fresh)
      put(e, "cpu_ready_pct", r2(ready));
    put(e, "mem_balloon_bytes", v.balloon);
    put(e, "mem_rss_bytes", consumed + 90 * mib + allocated / 200);
    put(e, "mem_unused_bytes", std::max<std::int64_t>(0, v.total - v.used - v.cache));
    put(e, "mem_available_bytes", v.total);
    put(e, "mem_usable_bytes", v.total - v.used);
    put(e, "macs", macs);
    put(e, "uri", "qemu:///system");
    out.push_back(std::move(e));
    // One event per device, as the poller's (libvirt_poller.cpp).
    auto device_event = [&](std::string_view sourcetype) {
      event n;
      n.time = t;
      n.index = "main";
      n.host = h.name;
      n.source = "libvirt:qemu:///system";
      n.sourcetype = std::string{sourcetype};
      put(n, "vm_name", v.name);
      put(n, "vm_uuid", v.uuid);
      return n;
    };
    for (auto& c : v.nics) {
      auto n = device_event("hv:libvirt:nic");
      put(n, "mac", c.mac);
      put(n, "dev", c.hv_dev);
      put(n, "rx_bytes", c.rx);
      put(n, "tx_bytes", c.tx);
      put(n, "rx_packets", c.rxp);
      put(n, "tx_packets", c.txp);
      if (!v.hv_fresh) {
        double dt = static_cast<double>(hv_interval) / ns_per_s;
        put(n, "rx_bytes_per_s", r2(static_cast<double>(c.rx - c.hv_rx) / dt));
        put(n, "tx_bytes_per_s", r2(static_cast<double>(c.tx - c.hv_tx) / dt));
        put(n, "rx_packets_per_s", r2(static_cast<double>(c.rxp - c.hv_rxp) / dt));
        put(n, "tx_packets_per_s", r2(static_cast<double>(c.txp - c.hv_txp) / dt));
      }
      out.push_back(std::move(n));
    }
    for (auto& d : v.disks) { // as the poller's virDomainBlockStats
      auto n = device_event("hv:libvirt:disk");
      put(n, "dev", d.hv_dev);
      double dt = static_cast<double>(hv_interval) / ns_per_s;
      put(n, "rd_bytes", d.host.rd);
      if (!v.hv_fresh)
        put(n, "rd_bytes_per_s", r2(static_cast<double>(d.host.rd - d.hv_rd) / dt));
      put(n, "wr_bytes", d.host.wr);
      if (!v.hv_fresh)
        put(n, "wr_bytes_per_s", r2(static_cast<double>(d.host.wr - d.hv_wr) / dt));
      put(n, "rd_reqs", d.host.rdq);
      put(n, "wr_reqs", d.host.wrq);
      out.push_back(std::move(n));
    }
  } else {
    e.source = "vcenter:vc-01";
    e.sourcetype = "hv:vsphere";
    std::string ips;
    for (const auto& c : v.nics)
      ips += (ips.empty() ? "" : ",") + c.ip;
    std::int64_t rx = 0, tx = 0;
    for (const auto& c : v.nics) {
      rx += c.rx - c.hv_rx;
      tx += c.tx - c.hv_tx;
    }
    double secs = static_cast<double>(hv_interval) / ns_per_s;
    put(e, "macs", macs);
    put(e, "ips", ips);
    put(e, "interval_s", std::int64_t{20});
    put(e, "vcpus", v.cpus);
    put(e, "mem_allocated_kb", v.mem_bytes / 1024);
    put(e, "cpu.usage.average", i64(cpu_pct * 100));
    put(e, "cpu.usagemhz.average", i64(cpu_pct / 100 * v.cpus * 2600));
    // Ready: ms summed over the interval and all vCPUs.
    put(e, "cpu.ready.summation", i64(steal / 100 * secs * 1000 * v.cpus));
    put(e, "mem.consumed.average", consumed / 1024);
    put(e, "mem.active.average",
        i64((static_cast<double>(v.used_real) * 0.35 + static_cast<double>(v.cache) * 0.05)
            / 1024));
    put(e, "mem.vmmemctl.average", v.balloon / 1024);
    put(e, "mem.swapped.average", std::int64_t{0});
    if (!v.hv_fresh) {
      put(e, "net.received.average", i64(static_cast<double>(rx) / 1024 / secs));
      put(e, "net.transmitted.average", i64(static_cast<double>(tx) / 1024 / secs));
      // Per virtual disk (scsi0:0, ...) in vCenter; the poller sends the
      // VM's sum, KB/s.
      std::int64_t rd = 0, wr = 0;
      for (const auto& d : v.disks) {
        rd += d.host.rd - d.hv_rd;
        wr += d.host.wr - d.hv_wr;
      }
      put(e, "virtualDisk.read.average", i64(static_cast<double>(rd) / 1024 / secs));
      put(e, "virtualDisk.write.average", i64(static_cast<double>(wr) / 1024 / secs));
    }
    out.push_back(std::move(e));
  }
  for (auto& d : v.disks) {
    d.hv_rd = d.host.rd;
    d.hv_wr = d.host.wr;
  }
  for (auto& c : v.nics) {
    c.hv_rx = c.rx;
    c.hv_tx = c.tx;
    c.hv_rxp = c.rxp;
    c.hv_txp = c.txp;
  }
  v.hv_fresh = false;
}

result<fleet> fleet::make(fleet_options opts) {
  auto p = std::make_unique<impl>();
  p->opts = std::move(opts);
  if (auto err = p->build())
    return err;
  return fleet{std::move(p)};
}

fleet::fleet(std::unique_ptr<impl> p) : impl_{std::move(p)} {
}
fleet::fleet(fleet&&) noexcept = default;
fleet& fleet::operator=(fleet&&) noexcept = default;
fleet::~fleet() = default;

time_ns fleet::next_time() const noexcept {
  return impl_->next;
}
time_ns fleet::start() const noexcept {
  return impl_->start;
}
const std::string& fleet::run_tag() const noexcept {
  return impl_->run;
}
std::size_t fleet::vm_count() const noexcept {
  return impl_->vms.size();
}

bool fleet::step(std::vector<sim_batch>& out) {
  auto& s = *impl_;
  auto t = s.next;
  if (t >= s.end)
    return false;
  s.next += agent_interval;
  s.last_done = t;
  bool hv_step = (t - s.start) % hv_interval == 0;
  for (std::size_t vi = 0; vi < s.vms.size(); ++vi) {
    auto& v = s.vms[vi];
    if (t < v.present_from || t >= v.present_until)
      continue;
    // The host at t (vMotion moves it; the new host's poller starts fresh).
    auto host = v.host;
    for (const auto& h : v.host_history)
      if (h.first <= t)
        host = h.second;
    if (host != v.host) {
      v.host = host;
      v.hv_fresh = true;
    }
    s.advance_vm(v, vi, t);
    if (s.find(vi, kind::agent_outage, t)) {
      // The agent is down: nothing leaves the guest; on its return it
      // starts fresh (no rates in its first sample, identity resent).
      v.agent_fresh = true;
      for (auto& p : v.procs)
        p.seen = false;
      continue;
    }
    sim_batch b;
    b.source_id = fmt::format("sim-agent:{}/{}", v.name, s.run);
    b.at = t;
    s.guest_batch(v, vi, t, b);
    out.push_back(std::move(b));
  }
  if (hv_step) {
    for (std::size_t h = 0; h < s.hosts.size(); ++h) {
      sim_batch b;
      b.source_id = fmt::format("sim-hv:{}/{}", s.hosts[h].name, s.run);
      b.at = t;
      for (std::size_t vi = 0; vi < s.vms.size(); ++vi) {
        auto& v = s.vms[vi];
        if (v.host == h && t >= v.present_from && t < v.present_until)
          s.hv_event(v, vi, t, b.events);
      }
      if (!b.events.empty())
        out.push_back(std::move(b));
    }
  }
  return true;
}

std::string fleet::truth_json() const {
  return impl_->truth();
}

std::string fleet::impl::truth() const {
  // The span simulated so far: [start, end of the last step's interval].
  time_ns span_end = next > start ? next - agent_interval : start;
  auto clip = [&](time_ns x) { return std::min(x, std::max(span_end, start)); };
  std::string o;
  auto time_pair = [&](std::string_view key, time_ns t) {
    o += fmt::format("\"{0}_ns\":{1},\"{0}\":\"{2}\"", key, t, rfc3339(t));
  };
  o += "{\"version\":1,";
  o += fmt::format("\"seed\":{},\"vms\":{},\"hosts_requested\":{},\"run\":{},",
                   opts.seed, opts.vms, opts.hosts, json_escape(run));
  time_pair("start", start);
  o += ',';
  time_pair("end", span_end);
  o += fmt::format(",\"agent_interval_s\":{},\"hv_interval_s\":{},"
                   "\"mixed_mac_notation\":{},",
                   agent_interval / ns_per_s, hv_interval / ns_per_s,
                   opts.mixed_mac_notation);
  o += fmt::format("\"scenario\":{},", json_escape(opts.injected.origin));
  o += "\"hosts\":[";
  for (std::size_t h = 0; h < hosts.size(); ++h)
    o += fmt::format("{}{{\"name\":{},\"flavour\":\"{}\",\"source_id\":{}}}",
                     h ? "," : "", json_escape(hosts[h].name),
                     hosts[h].fl == flavour::libvirt ? "libvirt" : "vsphere",
                     json_escape(fmt::format("sim-hv:{}/{}", hosts[h].name, run)));
  o += "],\"fleet\":[";
  for (std::size_t i = 0; i < vms.size(); ++i) {
    const auto& v = vms[i];
    o += i ? ",{" : "{";
    o += fmt::format("\"vm\":{},\"hostname\":{},\"role\":{},\"workload\":{},"
                     "\"flavour\":\"{}\",\"vm_uuid\":{},\"guest_bios_uuid\":{},"
                     "\"uuid_byte_swapped\":{},\"agent_id\":{},\"source_id\":{},"
                     "\"cpus\":{},\"mem_bytes\":{},\"guest_mac_notation\":\"{}\",",
                     json_escape(v.name), json_escape(v.hostname),
                     json_escape(v.role), json_escape(v.workload),
                     v.fl == flavour::libvirt ? "libvirt" : "vsphere",
                     json_escape(v.uuid), json_escape(v.guest_uuid), v.swapped,
                     json_escape(v.agent_id),
                     json_escape(fmt::format("sim-agent:{}/{}", v.name, run)),
                     v.cpus, v.mem_bytes,
                     opts.mixed_mac_notation ? notation_name(v.mac_notation)
                                             : "lower-colon");
    o += "\"macs\":[";
    for (std::size_t k = 0; k < v.nics.size(); ++k)
      o += (k ? "," : "") + json_escape(v.nics[k].mac);
    o += "],\"guest_macs\":[";
    for (std::size_t k = 0; k < v.nics.size(); ++k)
      o += (k ? "," : "")
           + json_escape(opts.mixed_mac_notation
                           ? format_mac(v.nics[k].mac, v.mac_notation)
                           : v.nics[k].mac);
    o += "],\"ips\":[";
    for (std::size_t k = 0; k < v.nics.size(); ++k)
      o += (k ? "," : "") + json_escape(v.nics[k].ip);
    o += "],";
    o += fmt::format("\"clone_of\":{},",
                     v.clone_of.empty() ? "null" : json_escape(v.clone_of));
    time_pair("present_from", std::max(v.present_from, start));
    o += ',';
    time_pair("present_until", clip(v.present_until));
    o += ",\"hosts\":[";
    bool first = true;
    for (const auto& [from, h] : v.host_history) {
      if (from > span_end && from != start)
        continue;
      o += first ? "{" : ",{";
      first = false;
      o += fmt::format("\"host\":{},", json_escape(hosts[h].name));
      time_pair("from", std::max(from, start));
      o += '}';
    }
    o += "]}";
  }
  o += "],\"events\":[";
  for (std::size_t i = 0; i < acts.size(); ++i) {
    const auto& a = acts[i];
    const auto& v = vms[a.vm];
    o += i ? ",{" : "{";
    o += fmt::format("\"id\":{},\"kind\":\"{}\",\"vm\":{},\"hostname\":{},",
                     i + 1, to_string(a.inj.kind), json_escape(v.name),
                     json_escape(v.hostname));
    time_pair("start", a.from);
    o += ',';
    time_pair("end", a.until == forever ? span_end : a.until);
    o += fmt::format(",\"open_ended\":{},\"within_run\":{},", a.until == forever,
                     a.from <= span_end);
    std::string process = "null", user = "null", pid = "null";
    if (a.proc != static_cast<std::size_t>(-1)) {
      const auto& p = v.procs[a.proc];
      process = json_escape(p.command);
      user = json_escape(p.user);
      pid = fmt::format("{}", p.pid);
    }
    o += fmt::format("\"process\":{},\"user\":{},\"pid\":{},", process, user, pid);
    std::string params, signals, expected;
    auto sig = [&](std::initializer_list<std::string_view> s) {
      for (auto x : s)
        signals += (signals.empty() ? "\"" : ",\"") + std::string{x} + "\"";
    };
    const auto& in = a.inj;
    switch (in.kind) {
      case kind::memory_leak:
        params = fmt::format("\"rate_mb_per_min\":{},\"rss_growth_bytes_per_s\":{}",
                             in.rate_mb_per_min, in.rate_mb_per_min * mib / 60);
        sig({"process_rss_grows", "guest_mem_used_grows", "hv_mem_consumed_grows"});
        expected = fmt::format("{}'s RSS grows by {} MB/min; guest mem_used and "
                               "the hypervisor's consumed memory grow with it; "
                               "released at the end",
                               in.process, in.rate_mb_per_min);
        break;
      case kind::cpu_hog:
        params = fmt::format("\"cpu_pct\":{}", in.cpu_pct);
        sig({"process_cpu_high", "guest_cpu_busy_high", "hv_cpu_high"});
        expected = fmt::format("{} uses about {} % of one core; guest busy and "
                               "hypervisor CPU rise together (explained load)",
                               in.process, in.cpu_pct);
        break;
      case kind::rogue_process:
        params = fmt::format("\"cpu_pct\":{},\"hidden\":{}", in.cpu_pct, in.hidden);
        if (in.hidden) {
          sig({"unexplained_hv_cpu", "guest_busy_exceeds_process_sum"});
          expected = "hypervisor CPU and guest busy rise, but no process in the "
                     "guest's table accounts for it (hidden process)";
        } else {
          sig({"unknown_process", "hv_cpu_high"});
          expected = fmt::format("a new process {} owned by {} appears with high CPU",
                                 in.process, in.user);
        }
        break;
      case kind::non_admin_process:
        params = fmt::format("\"cpu_pct\":{},\"uid\":{}", in.cpu_pct, uid_of(in.user));
        sig({"non_admin_process", "password_login"});
        expected = fmt::format("{} (uid {}) logs in with a password and runs {}",
                               in.user, uid_of(in.user), in.process);
        break;
      case kind::ballooning:
        params = fmt::format("\"balloon_mb\":{},\"ramp_s\":120", in.balloon_mb);
        if (v.fl == flavour::libvirt) {
          sig({"hv_balloon_inflated", "hv_mem_allocated_drops", "guest_mem_total_drops"});
          expected = "the balloon inflates over 2 min: mem_balloon_bytes rises, "
                     "mem_allocated_bytes and the guest's MemTotal drop";
        } else {
          sig({"hv_balloon_inflated", "hv_mem_consumed_drops", "guest_mem_used_rises"});
          expected = "vmmemctl inflates over 2 min: the guest counts the balloon as "
                     "used while the host's consumed memory drops";
        }
        break;
      case kind::cpu_contention:
        params = fmt::format("\"ready_pct\":{}", in.ready_pct);
        sig({"hv_cpu_ready_high", "guest_cpu_steal_high"});
        expected = fmt::format("CPU ready ({}) ≈ {} % per vCPU and guest steal "
                               "≈ {} %",
                               v.fl == flavour::vsphere ? "cpu.ready.summation"
                                                        : "libvirt vCPU delay",
                               in.ready_pct, in.ready_pct);
        break;
      case kind::agent_outage:
        params = "";
        sig({"guest_silent"});
        expected = "no guest events from this VM in the window while the "
                   "hypervisor keeps reporting it";
        break;
      case kind::vmotion:
        params = fmt::format("\"from_host\":{},\"to_host\":{}",
                             json_escape(hosts[a.from_host].name),
                             json_escape(hosts[a.to_host].name));
        sig({"hv_host_changes"});
        expected = fmt::format("hypervisor samples move from {} to {}",
                               hosts[a.from_host].name, hosts[a.to_host].name);
        break;
      case kind::clone: {
        const auto& c = vms[a.other_vm];
        std::string macs;
        for (const auto& n : c.nics)
          macs += (macs.empty() ? "" : ",") + json_escape(n.mac);
        params = fmt::format("\"clone\":{},\"clone_vm_uuid\":{},\"shared_macs\":[{}]",
                             json_escape(c.name), json_escape(c.uuid), macs);
        sig({"duplicate_mac", "duplicate_hostname", "duplicate_agent_id"});
        expected = fmt::format("{} appears with {}'s MACs, host name and agent id "
                               "but its own BIOS UUID",
                               c.name, v.name);
        break;
      }
      case kind::clock_skew:
        params = fmt::format("\"skew_s\":{}", in.skew_s);
        sig({"guest_clock_offset"});
        expected = fmt::format("guest event times are {:+} s off the hypervisor's",
                               in.skew_s);
        break;
    }
    o += fmt::format("\"params\":{{{}}},\"signals\":[{}],\"expected\":{},"
                     "\"origin\":{}}}",
                     params, signals, json_escape(expected), json_escape(in.origin));
  }
  o += "]}\n";
  return o;
}

time_ns source_phase(std::string_view source_id) noexcept {
  std::uint64_t h = 1469598103934665603ULL; // FNV-1a
  for (unsigned char c : source_id) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return static_cast<time_ns>(h % static_cast<std::uint64_t>(agent_interval));
}

// -- sinks -------------------------------------------------------------------

error batch_sink::write_frame(const std::string& source_id,
                              std::uint64_t sequence, std::string frame) {
  // The sink's own frame, encoded by this process: no receiver's limits.
  wire::limits lim;
  lim.max_frame_bytes = lim.max_events = lim.max_fields = lim.max_string_bytes
    = lim.max_name_bytes = std::numeric_limits<std::size_t>::max();
  auto b = wire::decode(std::move(frame), lim);
  if (!b)
    return b.error();
  auto events = b->materialize().events;
  return write(source_id, sequence, events);
}

namespace {

class endpoint_sink final : public batch_sink {
public:
  endpoint_sink(std::string endpoint, std::chrono::milliseconds timeout)
    : endpoint_{std::move(endpoint)}, timeout_{timeout} {
  }
  error write(const std::string& source_id, std::uint64_t sequence,
              std::vector<event>& events) override {
    auto c = client(source_id);
    if (!c)
      return c.error();
    wire::batch b;
    b.source_id = source_id;
    b.sequence = sequence;
    b.events = std::move(events);
    std::string frame;
    wire::encode(b, frame);
    events = std::move(b.events);
    return (*c)->send(sequence, std::move(frame), timeout_);
  }
  error write_frame(const std::string& source_id, std::uint64_t sequence,
                    std::string frame) override {
    auto c = client(source_id);
    if (!c)
      return c.error();
    return (*c)->send(sequence, std::move(frame), timeout_);
  }
  // The client of `source_id`, connected on its first batch.
  result<ingest_client*> client(const std::string& source_id) {
    auto it = clients_.find(source_id);
    if (it == clients_.end()) {
      ingest_client_options o;
      o.endpoint = endpoint_;
      o.window = 16;
      o.connect_timeout = std::min<std::chrono::milliseconds>(timeout_, std::chrono::seconds{10});
      auto c = ingest_client::connect(ctx_, o);
      if (!c)
        return c.error();
      (*c)->on_rejected = [this](const wire::reply& r) {
        if (first_rejection_.empty())
          first_rejection_ = fmt::format("{} batch {}: {}: {}", r.source_id,
                                         r.sequence.value_or(0), to_string(r.code),
                                         r.message);
      };
      it = clients_.emplace(source_id, std::move(*c)).first;
    }
    return it->second.get();
  }
  error finish() override {
    for (auto& [id, c] : clients_)
      if (auto err = c->drain(timeout_))
        return error{err.code, fmt::format("{}: {}", id, err.message)};
    return {};
  }
  error barrier() override {
    // The hypervisors first: a new guest's first batches wait at the
    // server until the hypervisor has named its VM
    // (parallax.correlator.hold-new-guests), which this flush's hypervisor
    // samples usually do.
    for (bool hypervisors : {true, false})
      for (auto& [id, c] : clients_)
        if (id.starts_with("sim-hv:") == hypervisors)
          if (auto err = c->drain(timeout_))
            return error{err.code, fmt::format("{}: {}", id, err.message)};
    return {};
  }
  std::uint64_t acked() const override {
    std::uint64_t n = 0;
    for (auto& [id, c] : clients_)
      n += c->stats().acked + c->stats().duplicates;
    return n;
  }
  std::uint64_t rejected() const override {
    std::uint64_t n = 0;
    for (auto& [id, c] : clients_)
      n += c->stats().rejected;
    return n;
  }
  std::string first_rejection_;

private:
  std::string endpoint_;
  std::chrono::milliseconds timeout_;
  zmq::context ctx_;
  std::map<std::string, std::unique_ptr<ingest_client>> clients_;
};

class file_sink final : public batch_sink {
public:
  explicit file_sink(std::ofstream out) : out_{std::move(out)} {
  }
  error write(const std::string& source_id, std::uint64_t sequence,
              std::vector<event>& events) override {
    wire::batch b;
    b.source_id = source_id;
    b.sequence = sequence;
    b.events = std::move(events);
    frame_.clear();
    wire::encode(b, frame_);
    events = std::move(b.events);
    return put(frame_);
  }
  error write_frame(const std::string&, std::uint64_t,
                    std::string frame) override {
    return put(frame);
  }
  error put(const std::string& frame) {
    auto n = static_cast<std::uint32_t>(frame.size());
    char len[4] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                   static_cast<char>(n >> 8), static_cast<char>(n)};
    out_.write(len, 4);
    out_.write(frame.data(), static_cast<std::streamsize>(frame.size()));
    if (!out_)
      return error{ec::system_error, "cannot write the output file"};
    return {};
  }
  error finish() override {
    out_.flush();
    if (!out_)
      return error{ec::system_error, "cannot write the output file"};
    return {};
  }

private:
  std::ofstream out_;
  std::string frame_;
};

} // namespace

result<std::unique_ptr<batch_sink>>
open_endpoint_sink(std::string endpoint, std::chrono::milliseconds drain_timeout) {
  return std::unique_ptr<batch_sink>{
    new endpoint_sink{std::move(endpoint), drain_timeout}};
}

result<std::unique_ptr<batch_sink>>
open_file_sink(const std::filesystem::path& file) {
  std::ofstream out{file, std::ios::binary | std::ios::trunc};
  if (!out)
    return error{ec::system_error,
                 fmt::format("{}: cannot open for writing", file.string())};
  return std::unique_ptr<batch_sink>{new file_sink{std::move(out)}};
}

result<std::vector<std::string>>
read_frame_file(const std::filesystem::path& file) {
  std::ifstream in{file, std::ios::binary};
  if (!in)
    return error{ec::system_error, fmt::format("{}: cannot read", file.string())};
  std::vector<std::string> frames;
  std::uint64_t offset = 0;
  for (;;) {
    unsigned char len[4];
    if (!in.read(reinterpret_cast<char*>(len), 4)) {
      if (in.gcount() == 0)
        break;
      return error{ec::truncated,
                   fmt::format("{}: truncated length at byte {}", file.string(), offset)};
    }
    std::uint32_t n = (std::uint32_t{len[0]} << 24) | (std::uint32_t{len[1]} << 16)
                      | (std::uint32_t{len[2]} << 8) | len[3];
    std::string f(n, '\0');
    if (!in.read(f.data(), n))
      return error{ec::truncated,
                   fmt::format("{}: truncated frame at byte {}", file.string(), offset)};
    offset += 4 + n;
    frames.push_back(std::move(f));
  }
  return frames;
}

// -- the run loop ------------------------------------------------------------

result<simulation_stats> run_simulation(const simulation_options& opts,
                                        const std::atomic<bool>& stop,
                                        batch_sink& sink) {
  using clock = std::chrono::steady_clock;
  auto fo = opts.fleet;
  if (opts.speed > 0 && (opts.live || opts.rate > 0 || opts.max_events))
    return error{ec::usage,
                 "a paced replay (speed) goes with neither live mode, a "
                 "rate nor an event limit"};
  if (opts.live && fo.start == 0)
    fo.start = now_ns();
  auto fl = fleet::make(std::move(fo));
  if (!fl)
    return fl.error();
  simulation_stats st;
  st.first_time = fl->start();
  auto t0 = clock::now();
  std::map<std::string, std::uint64_t> seq;
  // Historical mode coalesces a source's steps; the order of first
  // appearance keeps flushing deterministic.
  std::vector<std::pair<std::string, std::vector<event>>> pending;
  std::map<std::string, std::size_t> slot;
  bool limit_hit = false;
  // Sleeps until `due`, or until stopped (checked every 100 ms at most).
  auto sleep_until = [&](clock::time_point due) {
    while (clock::now() < due && !stop.load())
      std::this_thread::sleep_for(std::min<clock::duration>(
        due - clock::now(), std::chrono::milliseconds{100}));
  };
  auto send = [&](const std::string& id, std::vector<event>& evs) -> error {
    if (evs.empty())
      return {};
    for (const auto& e : evs)
      ++st.per_sourcetype[e.sourcetype];
    st.events += evs.size();
    ++st.batches;
    if (auto err = sink.write(id, ++seq[id], evs))
      return err;
    evs.clear();
    if (opts.rate > 0 && !opts.live) {
      sleep_until(t0 + std::chrono::duration_cast<clock::duration>(
                         std::chrono::duration<double>(
                           static_cast<double>(st.events) / opts.rate)));
    }
    return {};
  };
  auto flush_all = [&]() -> error {
    for (auto& [id, evs] : pending)
      if (auto err = send(id, evs))
        return err;
    return {};
  };
  // Paced replay: each source's step leaves at its own (compressed) time.
  // Sleeps until the replay's time for a batch of simulated time `at` on
  // its source's `phase` (or until stopped); returns that time.
  auto wait_due = [&](time_ns at, time_ns phase) {
    auto sim = static_cast<double>(at - fl->start() + phase);
    auto due = t0 + std::chrono::duration_cast<clock::duration>(
                      std::chrono::duration<double>(sim / 1e9 / opts.speed));
    sleep_until(due);
    return due;
  };
  auto replay_step = [&](std::vector<sim_batch>& batches) -> error {
    // Each batch's phase, once; the step goes out in phase order.
    std::vector<std::pair<time_ns, sim_batch*>> order;
    order.reserve(batches.size());
    for (auto& b : batches)
      order.emplace_back(source_phase(b.source_id), &b);
    std::stable_sort(order.begin(), order.end(),
                     [](const auto& x, const auto& y) {
                       return x.first < y.first;
                     });
    for (auto [phase, batch] : order) {
      auto& b = *batch;
      auto due = wait_due(b.at, phase);
      if (stop.load())
        return {};
      if (!b.events.empty()) { // counted as send() counts batches
        st.behind.add(clock::now() - due);
        st.last_time = std::max(st.last_time, b.at);
      }
      if (auto err = send(b.source_id, b.events))
        return err;
    }
    return {};
  };
  std::vector<sim_batch> step;
  time_ns pending_since = INT64_MIN;
  if (opts.speed > 0 && opts.prerender) {
    // Every step simulated and encoded before the clock starts, in the
    // order replay_step() sends it: sending is then all the replay does.
    struct encoded {
      const std::string* source_id; // a key of `seq`
      std::uint64_t sequence = 0;
      time_ns at = 0;
      time_ns phase = 0;
      std::size_t events = 0;
      /// Events per sourcetype: (index into `sourcetypes`, count).
      std::vector<std::pair<std::uint32_t, std::uint32_t>> per_sourcetype;
      std::string frame;
    };
    std::vector<std::string> sourcetypes;
    std::map<std::string, std::uint32_t, std::less<>> sourcetype_index;
    std::vector<encoded> frames;
    std::uint64_t events = 0;
    while (!stop.load() && fl->step(step)) {
      auto first = frames.size();
      for (auto& b : step) {
        if (b.events.empty())
          continue;
        auto& f = frames.emplace_back();
        auto id = seq.try_emplace(b.source_id, 0).first;
        f.source_id = &id->first;
        f.sequence = ++id->second;
        f.at = b.at;
        f.phase = source_phase(b.source_id);
        f.events = b.events.size();
        for (const auto& e : b.events) {
          auto [it, fresh] = sourcetype_index.try_emplace(
            e.sourcetype, static_cast<std::uint32_t>(sourcetypes.size()));
          if (fresh)
            sourcetypes.push_back(e.sourcetype);
          if (f.per_sourcetype.empty()
              || f.per_sourcetype.back().first != it->second)
            f.per_sourcetype.emplace_back(it->second, 0);
          ++f.per_sourcetype.back().second;
        }
        wire::encode_head(b.source_id, f.sequence, b.events.size(), f.frame);
        wire::encode_events(b.events, f.frame);
        events += b.events.size();
      }
      std::stable_sort(frames.begin() + static_cast<std::ptrdiff_t>(first),
                       frames.end(), [](const auto& x, const auto& y) {
                         return x.phase < y.phase;
                       });
      step.clear();
    }
    if (opts.ready)
      opts.ready(events);
    std::vector<std::uint64_t> per_sourcetype(sourcetypes.size());
    t0 = clock::now();
    for (auto& f : frames) {
      auto due = wait_due(f.at, f.phase);
      if (stop.load())
        break;
      st.behind.add(clock::now() - due);
      st.last_time = std::max(st.last_time, f.at);
      for (auto [i, n] : f.per_sourcetype)
        per_sourcetype[i] += n;
      st.events += f.events;
      ++st.batches;
      if (auto err = sink.write_frame(*f.source_id, f.sequence,
                                      std::move(f.frame)))
        return err;
    }
    for (std::size_t i = 0; i < sourcetypes.size(); ++i)
      if (per_sourcetype[i] > 0)
        st.per_sourcetype[sourcetypes[i]] += per_sourcetype[i];
  } else if (opts.ready) {
    opts.ready(0);
    t0 = clock::now();
  }
  while (!stop.load() && !limit_hit) {
    if (opts.live) {
      // Wait until the step's time comes (checking the flag now and then).
      for (;;) {
        auto wait = fl->next_time() - now_ns();
        if (wait <= 0 || stop.load())
          break;
        std::this_thread::sleep_for(std::chrono::nanoseconds{
          std::min<time_ns>(wait, 100'000'000)});
      }
      if (stop.load())
        break;
    }
    step.clear();
    if (!fl->step(step))
      break;
    if (opts.speed > 0) {
      if (auto err = replay_step(step))
        return err;
      continue;
    }
    for (auto& b : step) {
      if (opts.max_events) {
        auto queued = st.events;
        for (auto& [id, evs] : pending)
          queued += evs.size();
        if (queued + b.events.size() >= opts.max_events) {
          b.events.resize(opts.max_events - queued);
          limit_hit = true;
        }
      }
      if (!b.events.empty())
        st.last_time = std::max(st.last_time, b.at);
      auto [it, fresh] = slot.emplace(b.source_id, pending.size());
      if (fresh)
        pending.push_back({b.source_id, {}});
      auto& evs = pending[it->second].second;
      std::move(b.events.begin(), b.events.end(), std::back_inserter(evs));
      if (opts.live || evs.size() >= opts.batch_events)
        if (auto err = send(b.source_id, evs))
          return err;
      if (limit_hit)
        break;
    }
    // Historical mode: every source's pending steps go out together once
    // they span `batch_span`, so sources stay as close in time as live
    // ones are (a correlator joins them by event time as they arrive).
    if (!opts.live && !step.empty()) {
      if (pending_since == INT64_MIN)
        pending_since = step.front().at;
      // Flush with a hypervisor step, so each flush ends with the
      // hypervisor samples of the time its guest samples cover.
      bool hv_step = std::any_of(step.begin(), step.end(), [](const auto& b) {
        return b.source_id.starts_with("sim-hv:");
      });
      if (hv_step
          && step.front().at - pending_since + agent_interval
               >= opts.batch_span) {
        if (auto err = flush_all())
          return err;
        // Each source has its own connection, and a server reads them in
        // turn: without this, a source with small batches would run
        // minutes ahead of the others in event time.
        if (auto err = sink.barrier())
          return err;
        pending_since = INT64_MIN;
      }
    }
  }
  if (auto err = flush_all())
    return err;
  if (!opts.truth_file.empty()) {
    std::ofstream out{opts.truth_file, std::ios::binary | std::ios::trunc};
    out << fl->truth_json();
    if (!out)
      return error{ec::system_error, fmt::format("{}: cannot write the truth file",
                                                 opts.truth_file.string())};
  }
  if (auto err = sink.finish())
    return err;
  st.seconds = std::chrono::duration<double>(clock::now() - t0).count();
  st.acked = sink.acked();
  st.rejected = sink.rejected();
  st.vms = fl->vm_count();
  st.hosts = opts.fleet.hosts;
  return st;
}

} // namespace parallax::sim
