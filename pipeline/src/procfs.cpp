#include "parallax/pipeline/procfs.hpp"

#include "parallax/schemas/identity.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

namespace parallax::procfs {

namespace fs = std::filesystem;

namespace {

template <class T>
bool to_number(std::string_view s, T& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && p == s.data() + s.size();
}

// Splits off the next space-separated token of `s`.
std::string_view next_token(std::string_view& s) {
  auto b = s.find_first_not_of(" \t\n");
  if (b == std::string_view::npos) {
    s = {};
    return {};
  }
  s.remove_prefix(b);
  auto e = s.find_first_of(" \t\n");
  auto tok = s.substr(0, e);
  s.remove_prefix(e == std::string_view::npos ? s.size() : e);
  return tok;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\t'
                        || s.back() == '\r'))
    s.remove_suffix(1);
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  return s;
}

// "Key:   123 kB" lines of /proc/meminfo: the value in bytes.
std::optional<std::int64_t> meminfo_value(std::string_view text,
                                          std::string_view key) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto eol = text.find('\n', pos);
    auto line = text.substr(pos, eol == std::string_view::npos ? text.npos
                                                               : eol - pos);
    pos = eol == std::string_view::npos ? text.size() : eol + 1;
    if (line.size() > key.size() && line.starts_with(key)
        && line[key.size()] == ':') {
      auto rest = line.substr(key.size() + 1);
      auto num = next_token(rest);
      auto unit = next_token(rest);
      std::int64_t v = 0;
      if (!to_number(num, v))
        return std::nullopt;
      return unit == "kB" ? v * 1024 : v;
    }
  }
  return std::nullopt;
}

std::int64_t to_i64(std::uint64_t v) {
  return static_cast<std::int64_t>(
    std::min<std::uint64_t>(v, static_cast<std::uint64_t>(INT64_MAX)));
}

// The rate series of a block device: name and device number.
std::string disk_series(const diskstat& d) {
  return d.name + '/' + std::to_string(d.major) + ':' + std::to_string(d.minor)
         + '/';
}

} // namespace

int read_file(const fs::path& p, std::string& out, std::size_t max_bytes) {
  out.clear();
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno;
  char buf[4096];
  int err = 0;
  while (out.size() < max_bytes) {
    auto n = ::read(fd, buf, std::min(sizeof buf, max_bytes - out.size()));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      err = errno;
      break;
    }
    if (n == 0)
      break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return err;
}

bool is_system_root(const fs::path& root) {
  std::error_code ec;
  return root.empty() || fs::equivalent(root, "/", ec);
}

std::optional<proc_stat> parse_stat(std::string_view text) {
  proc_stat s;
  auto open = text.find('(');
  auto close = text.rfind(')');
  if (open == text.npos || close == text.npos || close < open)
    return std::nullopt;
  if (!to_number(trim(text.substr(0, open)), s.pid))
    return std::nullopt;
  s.command = std::string{text.substr(open + 1, close - open - 1)};
  auto rest = text.substr(close + 1);
  // Fields 3.. follow; index i below is the field number.
  std::string_view f[25];
  for (int i = 3; i <= 24; ++i) {
    f[i] = next_token(rest);
    if (f[i].empty())
      return std::nullopt;
  }
  if (f[3].size() != 1)
    return std::nullopt;
  s.state = f[3][0];
  if (!to_number(f[4], s.ppid) || !to_number(f[14], s.utime)
      || !to_number(f[15], s.stime) || !to_number(f[20], s.threads)
      || !to_number(f[22], s.starttime) || !to_number(f[23], s.vsize))
    return std::nullopt;
  // rss is signed in the kernel's format; a negative value means 0.
  std::int64_t rss = 0;
  if (!to_number(f[24], rss))
    return std::nullopt;
  s.rss_pages = rss > 0 ? static_cast<std::uint64_t>(rss) : 0;
  return s;
}

std::optional<proc_owner> parse_status(std::string_view text) {
  proc_owner o;
  bool uid = false, gid = false;
  std::size_t pos = 0;
  while (pos < text.size() && !(uid && gid)) {
    auto eol = text.find('\n', pos);
    auto line = text.substr(pos, eol == text.npos ? text.npos : eol - pos);
    pos = eol == text.npos ? text.size() : eol + 1;
    auto take = [&](std::string_view key, std::uint32_t& v, bool& seen) {
      if (!line.starts_with(key))
        return;
      auto rest = line.substr(key.size());
      seen = to_number(next_token(rest), v); // the first is the real id
    };
    take("Uid:", o.uid, uid);
    take("Gid:", o.gid, gid);
  }
  if (!uid || !gid)
    return std::nullopt;
  return o;
}

std::string join_cmdline(std::string_view raw) {
  while (!raw.empty() && raw.back() == '\0')
    raw.remove_suffix(1);
  std::string out{raw};
  std::replace(out.begin(), out.end(), '\0', ' ');
  return out;
}

std::unordered_map<std::uint32_t, std::string>
parse_id_file(std::string_view text) {
  std::unordered_map<std::uint32_t, std::string> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto eol = text.find('\n', pos);
    auto line = text.substr(pos, eol == text.npos ? text.npos : eol - pos);
    pos = eol == text.npos ? text.size() : eol + 1;
    if (line.empty() || line.front() == '#')
      continue;
    auto c1 = line.find(':');
    if (c1 == 0 || c1 == line.npos)
      continue;
    auto c2 = line.find(':', c1 + 1);
    if (c2 == line.npos)
      continue;
    auto c3 = line.find(':', c2 + 1);
    auto id_text = line.substr(c2 + 1, c3 == line.npos ? line.npos
                                                       : c3 - c2 - 1);
    std::uint32_t id = 0;
    if (!to_number(id_text, id))
      continue;
    out.emplace(id, std::string{line.substr(0, c1)});
  }
  return out;
}

// -- user_db -----------------------------------------------------------------

user_db::user_db(fs::path root)
  : system_{is_system_root(root)}, root_{std::move(root)} {
}

void user_db::load_files() {
  files_loaded_ = true;
  std::string text;
  if (read_file(root_ / "etc/passwd", text, 16u << 20) == 0)
    users_ = parse_id_file(text);
  if (read_file(root_ / "etc/group", text, 16u << 20) == 0)
    groups_ = parse_id_file(text);
}

const std::string& user_db::user(std::uint32_t uid) {
  if (!system_ && !files_loaded_)
    load_files();
  auto it = users_.find(uid);
  if (it != users_.end())
    return it->second;
  std::string name = std::to_string(uid);
  if (system_) {
    struct passwd pw {};
    struct passwd* res = nullptr;
    std::vector<char> buf(16384);
    if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &res) == 0 && res)
      name = pw.pw_name;
  }
  // Unknown ids are cached too: NSS lookups can be slow (LDAP).
  return users_.emplace(uid, std::move(name)).first->second;
}

const std::string& user_db::group(std::uint32_t gid) {
  if (!system_ && !files_loaded_)
    load_files();
  auto it = groups_.find(gid);
  if (it != groups_.end())
    return it->second;
  std::string name = std::to_string(gid);
  if (system_) {
    struct group gr {};
    struct group* res = nullptr;
    std::vector<char> buf(16384);
    if (::getgrgid_r(gid, &gr, buf.data(), buf.size(), &res) == 0 && res)
      name = gr.gr_name;
  }
  return groups_.emplace(gid, std::move(name)).first->second;
}

// -- processes ---------------------------------------------------------------

std::optional<proc_stat_file> parse_proc_stat(std::string_view text) {
  proc_stat_file out;
  bool have_cpu = false;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto eol = text.find('\n', pos);
    auto line = text.substr(pos, eol == text.npos ? text.npos : eol - pos);
    pos = eol == text.npos ? text.size() : eol + 1;
    auto rest = line;
    auto key = next_token(rest);
    if (key == "cpu") {
      std::uint64_t* dst[] = {&out.cpu.user,   &out.cpu.nice, &out.cpu.system,
                              &out.cpu.idle,   &out.cpu.iowait, &out.cpu.irq,
                              &out.cpu.softirq, &out.cpu.steal};
      // Old kernels have fewer columns: the missing ones stay 0.
      for (auto* d : dst) {
        auto tok = next_token(rest);
        if (tok.empty())
          break;
        if (!to_number(tok, *d))
          return std::nullopt;
      }
      have_cpu = true;
    } else if (key.size() > 3 && key.starts_with("cpu")) {
      ++out.cpus;
    } else if (key == "btime") {
      to_number(next_token(rest), out.btime);
    }
  }
  if (!have_cpu)
    return std::nullopt;
  return out;
}

std::optional<std::int64_t> boot_time(const fs::path& root) {
  std::string text;
  if (read_file(root / "proc/stat", text) != 0)
    return std::nullopt;
  auto s = parse_proc_stat(text);
  if (!s || s->btime <= 0)
    return std::nullopt;
  return s->btime;
}

process_sampler::process_sampler(fs::path root, host_constants hc)
  : proc_{root / "proc"}, hc_{hc}, users_{root} {
  if (hc_.clk_tck <= 0)
    hc_.clk_tck = ::sysconf(_SC_CLK_TCK);
  if (hc_.page_size <= 0)
    hc_.page_size = ::sysconf(_SC_PAGESIZE);
}

void process_sampler::sample(time_ns wall, std::int64_t mono_ns,
                             std::vector<event>& out) {
  vanished_ = 0;
  next_.clear();
  auto btime = boot_time(proc_.parent_path());
  double dt_s = prev_mono_ ? static_cast<double>(mono_ns - *prev_mono_) / 1e9
                           : 0.0;
  DIR* dir = ::opendir(proc_.c_str());
  if (!dir)
    return;
  std::string path = proc_.string() + "/";
  const auto base_len = path.size();
  // A process that is gone between readdir and any of the reads below
  // (ENOENT; ESRCH from some files of a dying process) is skipped silently.
  auto gone = [](int err) { return err == ENOENT || err == ESRCH; };
  while (auto* de = ::readdir(dir)) {
    std::int64_t pid = 0;
    if (!to_number(std::string_view{de->d_name}, pid))
      continue;
    path.resize(base_len);
    path += de->d_name;
    path += "/stat";
    if (auto err = read_file(path, buf_, 4096)) {
      if (gone(err))
        ++vanished_;
      continue;
    }
    auto st = parse_stat(buf_);
    if (!st)
      continue;
    path.resize(base_len + std::strlen(de->d_name));
    path += "/status";
    if (auto err = read_file(path, buf_, 16384)) {
      if (gone(err))
        ++vanished_;
      continue;
    }
    auto owner = parse_status(buf_);
    if (!owner)
      continue;
    path.resize(base_len + std::strlen(de->d_name));
    path += "/cmdline";
    if (auto err = read_file(path, buf_, 64u << 10)) {
      if (gone(err))
        ++vanished_;
      continue;
    }
    event e;
    e.time = wall;
    e.sourcetype = "os:process";
    e.fields.reserve(16);
    e.fields.push_back({"pid", st->pid});
    e.fields.push_back({"ppid", st->ppid});
    e.fields.push_back({"command", std::move(st->command)});
    e.fields.push_back({"args", join_cmdline(buf_)});
    e.fields.push_back({"user", users_.user(owner->uid)});
    e.fields.push_back({"uid", std::int64_t{owner->uid}});
    e.fields.push_back({"group", users_.group(owner->gid)});
    e.fields.push_back({"gid", std::int64_t{owner->gid}});
    e.fields.push_back({"state", std::string(1, st->state)});
    if (btime) {
      auto tck = static_cast<std::uint64_t>(hc_.clk_tck);
      time_ns start = *btime * 1'000'000'000
                      + to_i64(st->starttime / tck) * 1'000'000'000
                      + to_i64(st->starttime % tck) * 1'000'000'000
                          / hc_.clk_tck;
      e.fields.push_back({"start_time", start});
    }
    auto ticks = st->utime + st->stime;
    key k{st->pid, st->starttime};
    if (auto it = prev_.find(k); it != prev_.end() && dt_s > 0
                                 && ticks >= it->second) {
      double cpu_s = static_cast<double>(ticks - it->second)
                     / static_cast<double>(hc_.clk_tck);
      e.fields.push_back({"cpu_pct", cpu_s / dt_s * 100.0});
    }
    next_.emplace(k, ticks);
    e.fields.push_back(
      {"rss_bytes", to_i64(st->rss_pages
                           * static_cast<std::uint64_t>(hc_.page_size))});
    e.fields.push_back({"vsz_bytes", to_i64(st->vsize)});
    e.fields.push_back({"threads", st->threads});
    out.push_back(std::move(e));
  }
  ::closedir(dir);
  // Only processes seen now are kept: a vanished pid, reused later with
  // another starttime, never matches its predecessor.
  std::swap(prev_, next_);
  prev_mono_ = mono_ns;
}

// -- system ------------------------------------------------------------------

system_sampler::system_sampler(fs::path root) : root_{std::move(root)} {
}

std::optional<event> system_sampler::sample(time_ns wall) {
  std::string text;
  if (read_file(root_ / "proc/meminfo", text) != 0)
    return std::nullopt;
  event e;
  e.time = wall;
  e.sourcetype = "os:system";
  auto total = meminfo_value(text, "MemTotal");
  auto avail = meminfo_value(text, "MemAvailable");
  if (total)
    e.fields.push_back({"mem_total_bytes", *total});
  if (avail)
    e.fields.push_back({"mem_available_bytes", *avail});
  if (total && avail) {
    e.fields.push_back({"mem_used_bytes", *total - *avail});
    if (*total > 0)
      e.fields.push_back({"mem_used_pct",
                          static_cast<double>(*total - *avail)
                            / static_cast<double>(*total) * 100.0});
  }
  if (auto v = meminfo_value(text, "SwapTotal"))
    e.fields.push_back({"swap_total_bytes", *v});
  if (auto v = meminfo_value(text, "SwapFree"))
    e.fields.push_back({"swap_free_bytes", *v});
  if (read_file(root_ / "proc/stat", text) != 0)
    return std::nullopt;
  auto st = parse_proc_stat(text);
  if (!st)
    return std::nullopt;
  const auto& c = st->cpu;
  if (prev_) {
    const auto& p = *prev_;
    // Every counter must have moved forward, else the rates are unknown.
    bool monotonic = c.user >= p.user && c.nice >= p.nice
                     && c.system >= p.system && c.idle >= p.idle
                     && c.iowait >= p.iowait && c.irq >= p.irq
                     && c.softirq >= p.softirq && c.steal >= p.steal;
    if (monotonic && c.total() > p.total()) {
      auto dt = static_cast<double>(c.total() - p.total());
      auto busy = static_cast<double>(
        (c.user - p.user) + (c.nice - p.nice) + (c.system - p.system)
        + (c.irq - p.irq) + (c.softirq - p.softirq));
      e.fields.push_back({"cpu_busy_pct", busy / dt * 100.0});
      e.fields.push_back(
        {"cpu_iowait_pct", static_cast<double>(c.iowait - p.iowait) / dt * 100.0});
      e.fields.push_back(
        {"cpu_steal_pct", static_cast<double>(c.steal - p.steal) / dt * 100.0});
    }
  }
  prev_ = c;
  e.fields.push_back({"cpus", st->cpus});
  if (read_file(root_ / "proc/loadavg", text) == 0) {
    std::string_view rest = text;
    const char* names[] = {"load1", "load5", "load15"};
    for (auto* n : names) {
      double v = 0;
      if (!to_number(next_token(rest), v))
        break;
      e.fields.push_back({n, v});
    }
  }
  if (read_file(root_ / "proc/uptime", text) == 0) {
    std::string_view rest = text;
    double v = 0;
    if (to_number(next_token(rest), v))
      e.fields.push_back({"uptime_s", v});
  }
  return e;
}

// -- identity ----------------------------------------------------------------

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty())
      out += ',';
    out += s;
  }
  return out;
}

std::string lower(std::string s) {
  for (auto& c : s)
    if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c - 'A' + 'a');
  return s;
}

// Interface name → its addresses, from the running kernel. IPv6 link-local
// addresses are left out: they are derived from the MAC and name nothing.
std::map<std::string, std::vector<std::string>> system_ips() {
  std::map<std::string, std::vector<std::string>> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0)
    return out;
  for (auto* a = list; a; a = a->ifa_next) {
    if (!a->ifa_addr || !a->ifa_name)
      continue;
    char buf[INET6_ADDRSTRLEN] = {};
    if (a->ifa_addr->sa_family == AF_INET) {
      auto* in = reinterpret_cast<sockaddr_in*>(a->ifa_addr);
      ::inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
    } else if (a->ifa_addr->sa_family == AF_INET6) {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(a->ifa_addr);
      if (IN6_IS_ADDR_LINKLOCAL(&in6->sin6_addr))
        continue;
      ::inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
    } else {
      continue;
    }
    out[a->ifa_name].emplace_back(buf);
  }
  ::freeifaddrs(list);
  return out;
}

// physical, loopback, virtual or bridge, from the interface's sysfs
// directory; `text` is scratch space.
std::string nic_kind(const fs::path& dir, const std::string& name,
                     std::string& text) {
  std::error_code ec;
  // ARPHRD_LOOPBACK is 772 in the type file.
  if (name == "lo" || (read_file(dir / "type", text) == 0 && trim(text) == "772"))
    return "loopback";
  if (fs::is_directory(dir / "bridge", ec))
    return "bridge";
  if (fs::exists(dir / "device", ec))
    return "physical";
  return "virtual";
}

} // namespace

identity read_identity(const fs::path& root) {
  identity id;
  std::string text;
  if (read_file(root / "proc/sys/kernel/hostname", text) == 0)
    id.hostname = std::string{trim(text)};
  std::map<std::string, std::vector<std::string>> ips;
  if (is_system_root(root))
    ips = system_ips();
  std::error_code ec;
  auto net = root / "sys/class/net";
  for (fs::directory_iterator it{net, ec}, end; !ec && it != end;
       it.increment(ec)) {
    nic_info n;
    n.name = it->path().filename().string();
    auto dir = it->path();
    if (read_file(dir / "address", text) == 0)
      if (auto mac = normalize_mac(trim(text)))
        n.mac = *mac;
    if (read_file(dir / "operstate", text) == 0)
      n.operstate = std::string{trim(text)};
    n.kind = nic_kind(dir, n.name, text);
    if (auto f = ips.find(n.name); f != ips.end())
      n.ips = f->second;
    id.nics.push_back(std::move(n));
  }
  std::sort(id.nics.begin(), id.nics.end(),
            [](const nic_info& a, const nic_info& b) { return a.name < b.name; });
  auto dmi = root / "sys/class/dmi/id";
  if (read_file(dmi / "product_uuid", text) == 0 && !trim(text).empty()) {
    id.bios_uuid = lower(std::string{trim(text)});
    id.bios_readable = true;
    if (read_file(dmi / "product_serial", text) == 0)
      id.bios_serial = std::string{trim(text)};
  }
  return id;
}

// -- NIC counters ------------------------------------------------------------

net_sampler::net_sampler(fs::path root) : net_{root / "sys/class/net"} {
}

void net_sampler::sample(time_ns wall, std::int64_t mono_ns,
                         std::vector<event>& out) {
  // Sorted by name, as os:nic is, so that events come in a stable order.
  std::vector<fs::path> dirs;
  std::error_code ec;
  for (fs::directory_iterator it{net_, ec}, end; !ec && it != end;
       it.increment(ec))
    dirs.push_back(it->path());
  std::sort(dirs.begin(), dirs.end());
  static constexpr std::array<std::string_view, 4> counters = {
    "rx_bytes", "tx_bytes", "rx_packets", "tx_packets"};
  for (const auto& dir : dirs) {
    auto name = dir.filename().string();
    auto kind = nic_kind(dir, name, buf_);
    if (kind == "loopback")
      continue;
    std::array<std::uint64_t, 4> values{};
    bool ok = true;
    for (std::size_t i = 0; i < counters.size() && ok; ++i)
      ok = read_file(dir / "statistics" / counters[i], buf_) == 0
           && to_number(trim(buf_), values[i]);
    if (!ok)
      continue; // gone meanwhile, or no statistics: nothing to report
    event e;
    e.time = wall;
    e.sourcetype = "os:net";
    e.fields.reserve(12);
    e.fields.push_back({"nic", name});
    if (read_file(dir / "address", buf_) == 0)
      if (auto mac = normalize_mac(trim(buf_)))
        e.fields.push_back({"mac", *mac});
    e.fields.push_back({"kind", std::move(kind)});
    for (std::size_t i = 0; i < counters.size(); ++i)
      e.fields.push_back({std::string{counters[i]}, to_i64(values[i])});
    // A recreated interface (same name, new ifindex) starts a new series.
    std::string series = name + '/';
    if (read_file(dir / "ifindex", buf_) == 0)
      series += trim(buf_);
    series += '/';
    for (std::size_t i = 0; i < counters.size(); ++i)
      if (auto r = rates_.update(series + std::string{counters[i]}, mono_ns,
                                 static_cast<double>(values[i])))
        e.fields.push_back({std::string{counters[i]} + "_per_s", *r});
    out.push_back(std::move(e));
  }
  // Forget interfaces that went away (their series were not updated now).
  if (!prev_mono_ || mono_ns > *prev_mono_) {
    rates_.expire_before(mono_ns);
    prev_mono_ = mono_ns;
  }
}

// -- block device counters ---------------------------------------------------

std::vector<diskstat> parse_diskstats(std::string_view text) {
  std::vector<diskstat> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto eol = text.find('\n', pos);
    auto line = text.substr(pos, eol == text.npos ? text.npos : eol - pos);
    pos = eol == text.npos ? text.size() : eol + 1;
    // major minor name, then the counters.
    std::array<std::string_view, 24> f{};
    std::size_t n = 0;
    for (auto rest = line; n < f.size();) {
      auto tok = next_token(rest);
      if (tok.empty())
        break;
      f[n++] = tok;
    }
    diskstat d;
    if (n < 7 || !to_number(f[0], d.major) || !to_number(f[1], d.minor))
      continue;
    d.name = std::string{f[2]};
    bool ok = false;
    if (n >= 14) // reads, merged, sectors, ms, writes, merged, sectors, ...
      ok = to_number(f[3], d.rd_ios) && to_number(f[5], d.rd_sectors)
           && to_number(f[7], d.wr_ios) && to_number(f[9], d.wr_sectors);
    else if (n == 7) // 2.6.0-2.6.24 partitions: reads, sectors, writes, sectors
      ok = to_number(f[3], d.rd_ios) && to_number(f[4], d.rd_sectors)
           && to_number(f[5], d.wr_ios) && to_number(f[6], d.wr_sectors);
    if (ok)
      out.push_back(std::move(d));
  }
  return out;
}

disk_sampler::disk_sampler(fs::path root) : root_{std::move(root)} {
}

bool disk_sampler::reported(const diskstat& d, const std::vector<diskstat>& all) {
  std::string_view name = d.name;
  auto starts = [&](std::string_view p) { return name.starts_with(p); };
  if (name.empty() || starts("loop") || starts("ram") || starts("zram"))
    return false;
  if (d.rd_ios == 0 && d.wr_ios == 0 && d.rd_sectors == 0 && d.wr_sectors == 0)
    return false; // never used since boot
  std::error_code ec;
  auto sys_block = root_ / "sys/block";
  if (fs::is_directory(sys_block, ec)) {
    // sysfs writes the '/' of names like cciss/c0d0 as '!'.
    std::string sys_name{name};
    std::replace(sys_name.begin(), sys_name.end(), '/', '!');
    auto dir = sys_block / sys_name;
    if (!fs::exists(dir, ec))
      return false; // a partition: it lives under /sys/block/DISK/
    if (!fs::exists(dir / "device", ec))
      return false; // stacked or virtual: dm, md, nbd, ...
    if (read_file(dir / "removable", buf_) == 0 && trim(buf_) == "1")
      return false; // CD-ROM, floppy
    return true;
  }
  if (starts("dm-") || starts("md") || starts("sr") || starts("fd"))
    return false;
  auto all_digits = [](std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
      return c >= '0' && c <= '9';
    });
  };
  for (const auto& other : all) {
    std::string_view base = other.name;
    if (base.empty() || base.size() >= name.size() || !name.starts_with(base))
      continue;
    auto rest = name.substr(base.size());
    bool base_digit = base.back() >= '0' && base.back() <= '9';
    if (!base_digit && all_digits(rest))
      return false; // sda1, vdb2, xvda1
    if (base_digit && rest.front() == 'p' && all_digits(rest.substr(1)))
      return false; // nvme0n1p1, mmcblk0p2
  }
  return true;
}

void disk_sampler::sample(time_ns wall, std::int64_t mono_ns,
                          std::vector<event>& out) {
  if (read_file(root_ / "proc/diskstats", buf_) != 0)
    return;
  auto all = parse_diskstats(buf_);
  constexpr std::uint64_t sector = 512;
  for (const auto& d : all) {
    if (!reported(d, all))
      continue;
    std::array<std::pair<std::string_view, std::uint64_t>, 4> counters = {{
      {"rd_bytes", d.rd_sectors * sector},
      {"wr_bytes", d.wr_sectors * sector},
      {"rd_reqs", d.rd_ios},
      {"wr_reqs", d.wr_ios},
    }};
    event e;
    e.time = wall;
    e.sourcetype = "os:disk";
    e.fields.reserve(10);
    e.fields.push_back({"dev", d.name});
    for (const auto& [name, v] : counters)
      e.fields.push_back({std::string{name}, to_i64(v)});
    // A device replaced under the same name (another major:minor) starts
    // a new series.
    auto series = disk_series(d);
    for (std::size_t i = 0; i < 2; ++i)
      if (auto r = rates_.update(series + std::string{counters[i].first},
                                 mono_ns,
                                 static_cast<double>(counters[i].second)))
        e.fields.push_back({std::string{counters[i].first} + "_per_s", *r});
    out.push_back(std::move(e));
  }
  // Forget devices that went away (their series were not updated now).
  if (!prev_mono_ || mono_ns > *prev_mono_) {
    rates_.expire_before(mono_ns);
    prev_mono_ = mono_ns;
  }
}

std::vector<event> identity::to_events(time_ns wall) const {
  std::vector<event> out;
  event e;
  e.time = wall;
  e.sourcetype = "os:identity";
  std::vector<std::string> macs, addrs;
  for (const auto& n : nics)
    if (n.kind == "physical") {
      if (!n.mac.empty())
        macs.push_back(n.mac);
      addrs.insert(addrs.end(), n.ips.begin(), n.ips.end());
    }
  e.fields.push_back({"hostname", hostname});
  e.fields.push_back({"macs", join(macs)});
  e.fields.push_back({"ips", join(addrs)});
  if (bios_readable) {
    e.fields.push_back({"bios_uuid", bios_uuid});
    e.fields.push_back({"bios_serial", bios_serial});
  }
  e.fields.push_back({"bios_readable", bios_readable});
  out.push_back(std::move(e));
  for (const auto& n : nics) {
    event ne;
    ne.time = wall;
    ne.sourcetype = "os:nic";
    ne.fields.push_back({"nic", n.name});
    if (!n.mac.empty())
      ne.fields.push_back({"mac", n.mac});
    ne.fields.push_back({"ips", join(n.ips)});
    ne.fields.push_back({"kind", n.kind});
    ne.fields.push_back({"operstate", n.operstate});
    out.push_back(std::move(ne));
  }
  return out;
}

} // namespace parallax::procfs
