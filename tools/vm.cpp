// `parallax vm NAME`: one VM in the terminal, for SREs on a jump host --
// header (host, state, latest deltas, open alerts), memory and CPU charts
// (hypervisor against guest) in Unicode block characters, the process
// table. Reads the data directory read-only (beside a running server), or
// asks a server's HTTP API with --server; both give the JSON of
// GET /api/vm/NAME (docs/web.md), which is what is drawn.

#include "commands.hpp"

#include "parallax/pipeline/query_config.hpp"
#include "parallax/pipeline/vm_view.hpp"
#include "parallax/storage/environment.hpp"
#include "parallax/storage/store.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>
#include <memory>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>
#include <sys/ioctl.h>
#include <unistd.h>

namespace parallax::tools {

namespace {

using json = nlohmann::ordered_json;
using namespace std::chrono_literals;

// Where the views come from: the store, or a server's API.
class source {
public:
  virtual ~source() = default;
  /// The VM's JSON; a null json when the VM is unknown; an error otherwise.
  virtual result<json> vm(const std::string& name, const std::string& earliest,
                          std::size_t points)
    = 0;
  virtual result<std::vector<std::string>> known() = 0;
};

class store_source : public source {
public:
  store_source(const storage::store& st, search::options base)
    : st_{st}, base_{std::move(base)} {
  }

  result<json> vm(const std::string& name, const std::string& earliest,
                  std::size_t points) override {
    auto now = now_ns();
    auto lo = search::parse_time(earliest, now);
    if (!lo)
      return error{ec::usage, fmt::format("--earliest {}: {}", earliest,
                                          lo.error().message)};
    auto d = vm_view::vm_page(st_, base_, now, name, {*lo, now, points});
    if (!d)
      return d.error();
    if (!*d)
      return json{};
    return vm_view::to_json(**d);
  }

  result<std::vector<std::string>> known() override {
    return vm_view::known_vms(st_, base_, now_ns());
  }

private:
  const storage::store& st_;
  search::options base_;
};

class http_source : public source {
public:
  http_source(const std::string& url, std::string token)
    : client_{url}, token_{std::move(token)} {
    client_.set_connection_timeout(5s);
    client_.set_read_timeout(30s);
    if (!token_.empty())
      client_.set_bearer_token_auth(token_.c_str());
  }

  result<json> vm(const std::string& name, const std::string& earliest,
                  std::size_t points) override {
    auto path = fmt::format("/api/vm/{}?earliest={}&points={}",
                            encode(name), encode(earliest), points);
    auto res = client_.Get(path);
    if (!res)
      return error{ec::system_error,
                   fmt::format("GET {}: {}", path, httplib::to_string(res.error()))};
    if (res->status == 404)
      return json{};
    return parse(*res, path);
  }

  result<std::vector<std::string>> known() override {
    auto res = client_.Get("/api/vms?window=-1d");
    if (!res)
      return error{ec::system_error, fmt::format("GET /api/vms: {}",
                                                 httplib::to_string(res.error()))};
    auto j = parse(*res, "/api/vms");
    if (!j)
      return j.error();
    std::vector<std::string> out;
    for (const auto& v : (*j)["vms"])
      out.push_back(v.value("vm", ""));
    return out;
  }

private:
  // Percent-encodes all but unreserved characters (RFC 3986).
  static std::string encode(std::string_view s) {
    std::string out;
    for (unsigned char c : s) {
      if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
        out += static_cast<char>(c);
      else
        out += fmt::format("%{:02X}", c);
    }
    return out;
  }

  static result<json> parse(const httplib::Response& res,
                            const std::string& path) {
    auto j = json::parse(res.body, nullptr, false);
    if (res.status != 200 || j.is_discarded())
      return error{ec::system_error,
                   fmt::format("GET {}: HTTP {}: {}", path, res.status,
                               j.is_object() ? j.value("error", res.body)
                                             : res.body)};
    return j;
  }

  httplib::Client client_;
  std::string token_;
};

std::optional<double> num(const json& j) {
  if (j.is_number())
    return j.get<double>();
  return std::nullopt;
}

std::string str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "-";
}

std::string bytes_text(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  auto sign = b < 0 ? "-" : "";
  b = std::abs(b);
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{}{:.0f} {}", sign, b, units[u])
                : fmt::format("{}{:.1f} {}", sign, b, units[u]);
}

std::string value_text(std::optional<double> v, const std::string& unit) {
  if (!v)
    return "-";
  if (unit == "bytes")
    return bytes_text(*v);
  if (unit == "pct")
    return fmt::format("{:.1f} %", *v);
  return fmt::format("{:.3g} {}", *v, unit);
}

std::string clock_text(double t) {
  auto tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec);
}

// Pads/cuts to `w` display columns (the text is ASCII except the charts).
std::string fit(std::string s, std::size_t w) {
  if (s.size() > w)
    s = s.substr(0, w > 1 ? w - 1 : 0) + (w > 1 ? "~" : "");
  s.resize(w, ' ');
  return s;
}

// One series as `rows` lines of block characters, one column per bin
// (the newest `width` bins), 0..100 from bottom to top; an empty bin is a
// blank column.
std::vector<std::string> chart(const json& values, std::size_t width,
                               std::size_t rows) {
  static const char* eighths[] = {" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  std::vector<std::optional<double>> v;
  for (const auto& x : values)
    v.push_back(num(x));
  if (v.size() > width)
    v.erase(v.begin(), v.end() - static_cast<std::ptrdiff_t>(width));
  std::vector<std::string> lines(rows);
  for (std::size_t r = 0; r < rows; ++r) {
    auto floor_eighths = static_cast<double>((rows - 1 - r) * 8);
    for (const auto& x : v) {
      if (!x) {
        lines[r] += ' ';
        continue;
      }
      auto h = std::clamp(*x, 0.0, 100.0) / 100.0 * static_cast<double>(rows * 8);
      auto fill = static_cast<int>(std::clamp(std::round(h - floor_eighths), 0.0, 8.0));
      // A non-zero figure always shows at least a sliver on the bottom row.
      if (r == rows - 1 && fill == 0 && *x > 0)
        fill = 1;
      lines[r] += eighths[fill];
    }
  }
  return lines;
}

std::optional<double> last_value(const json& values) {
  for (auto it = values.rbegin(); it != values.rend(); ++it)
    if (auto n = num(*it))
      return n;
  return std::nullopt;
}

struct style {
  bool ansi = false;
  std::string bold() const {
    return ansi ? "\x1b[1m" : "";
  }
  std::string red() const {
    return ansi ? "\x1b[31m" : "";
  }
  std::string yellow() const {
    return ansi ? "\x1b[33m" : "";
  }
  std::string dim() const {
    return ansi ? "\x1b[2m" : "";
  }
  std::string reset() const {
    return ansi ? "\x1b[0m" : "";
  }
};

std::string render(const json& j, const std::string& earliest,
                   std::size_t width, std::size_t max_processes,
                   const style& st) {
  std::string out;
  auto line = [&](const std::string& s) {
    out += s;
    out += '\n';
  };
  line(fmt::format("{}{}{}  host {}  state {}  uuid {}", st.bold(), str(j, "vm"),
                   st.reset(), str(j, "host"), str(j, "state"),
                   str(j, "vm_uuid")));
  auto latest = num(j.value("latest", json{})).value_or(0);
  line(fmt::format("{}{} .. {} ({}), bins of {} s{}", st.dim(),
                   clock_text(num(j.value("earliest", json{})).value_or(0)),
                   clock_text(latest), earliest,
                   j.value("span", 0), st.reset()));
  // Latest deltas (hypervisor minus guest).
  if (auto it = j.find("deltas"); it != j.end() && it->is_object())
    for (const auto& [metric, d] : it->items()) {
      if (!d.is_object())
        continue;
      auto unit = d["unit"].is_string() ? d["unit"].get<std::string>() : "";
      auto hv = num(d["hv"]);
      auto guest = num(d["guest"]);
      auto rel = num(d["rel_diff"]);
      line(fmt::format("delta {:<9} hv {:>10}  guest {:>10}  diff {:>10}{}",
                       metric, value_text(hv, unit), value_text(guest, unit),
                       hv && guest ? value_text(*hv - *guest, unit) : "-",
                       rel ? fmt::format(" ({:+.0f} %)", *rel * 100) : ""));
    }
  // Open alerts: the newest state of each id in the range.
  std::vector<const json*> open;
  {
    std::map<std::string, const json*> newest;
    for (const auto& a : j["alerts"])
      newest[a.value("id", "")] = &a;
    for (const auto& [id, a] : newest)
      if ((*a).value("state", "") != "resolved")
        open.push_back(a);
    std::stable_sort(open.begin(), open.end(), [](const json* a, const json* b) {
      return (*a).value("time", 0.0) > (*b).value("time", 0.0);
    });
  }
  line(fmt::format("open alerts: {}", open.size()));
  constexpr std::size_t max_alerts = 8;
  for (std::size_t i = 0; i < open.size(); ++i) {
    if (i == max_alerts) {
      line(fmt::format("  ... {} more", open.size() - max_alerts));
      break;
    }
    const auto* a = open[i];
    auto sev = (*a).value("severity", "");
    auto color = sev == "critical" ? st.red() : sev == "warning" ? st.yellow() : "";
    line(fmt::format("  {}{:<8}{} {:<18} {}", color, sev, st.reset(),
                     (*a).value("kind", ""),
                     fit((*a).value("message", ""), width > 32 ? width - 30 : 20)));
  }
  // Charts: hypervisor against guest.
  const auto& s = j["series"];
  auto chart_width = width > 24 ? width - 24 : 8;
  for (auto [title, hv, guest] :
       {std::tuple{"memory %", "hv_mem_pct", "guest_mem_pct"},
        std::tuple{"cpu %", "hv_cpu_pct", "guest_cpu_pct"}}) {
    line("");
    line(fmt::format("{}{}{} (0-100, newest right)", st.bold(), title, st.reset()));
    for (auto [label, key] : {std::pair{"hypervisor", hv}, std::pair{"guest", guest}}) {
      auto rows = chart(s.value(key, json::array()), chart_width, 3);
      auto now = last_value(s.value(key, json::array()));
      for (std::size_t r = 0; r < rows.size(); ++r)
        line(fmt::format("  {:<10} {:>7} |{}", r == 0 ? label : "",
                         r == 0 ? (now ? fmt::format("{:.1f}", *now) : "-") : "",
                         rows[r]));
    }
  }
  // Processes.
  line("");
  const auto& procs = j["processes"];
  line(fmt::format("{}{:>7}  {:<16} {:<10} {:>7} {:>10}  {}{}", st.bold(), "PID",
                   "NAME", "USER", "CPU %", "RSS", "FLAGS", st.reset()));
  std::size_t shown = 0;
  for (const auto& p : procs) {
    if (shown++ == max_processes) {
      line(fmt::format("  ... {} more", procs.size() - max_processes));
      break;
    }
    std::string flags;
    if (p.value("non_admin", false))
      flags += "non-admin ";
    if (p.value("rogue", false))
      flags += "rogue ";
    auto cpu = num(p["cpu_pct"]);
    auto rss = num(p["rss_bytes"]);
    auto user = p["user"].is_string() ? p["user"].get<std::string>() : "-";
    line(fmt::format("{}{:>7}  {} {} {:>7} {:>10}  {}{}",
                     flags.empty() ? "" : st.red(), p.value("pid", 0),
                     fit(p.value("name", ""), 16), fit(user, 10),
                     cpu ? fmt::format("{:.1f}", *cpu) : "-",
                     rss ? bytes_text(*rss) : "-",
                     flags.empty() ? "" : "! " + flags,
                     flags.empty() ? "" : st.reset()));
  }
  if (procs.empty())
    line("  (no process samples in the range)");
  return out;
}

std::pair<std::size_t, std::size_t> terminal_size() {
  winsize ws{};
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
    return {ws.ws_col, ws.ws_row};
  return {100, 40};
}

} // namespace

int run_vm(const vm_args& args) {
  auto cfg = load(args.cfg, "vm");
  if (!cfg)
    return 2;
  {
    auto t = search::parse_time(args.earliest, now_ns());
    if (!t) {
      fmt::print(stderr, "parallax vm: --earliest {}: {}\n", args.earliest,
                 t.error().message);
      return 2;
    }
  }
  std::optional<storage::environment> env;
  std::optional<storage::store> st;
  std::unique_ptr<source> src;
  // Read-only, like `parallax search`: beside a running server. Returns
  // the exit code of a failure, 0 when open.
  auto open_store = [&]() -> int {
    src.reset();
    st.reset();
    env.reset(); // one environment per process at a time (LMDB)
    storage::environment_options eo;
    eo.read_only = true;
    eo.map_size = cfg->storage_map_size;
    auto e = storage::environment::open(cfg->data_dir / "store", eo);
    if (!e) {
      fmt::print(stderr, "parallax vm: {}\n", e.error().message);
      return 1;
    }
    env.emplace(std::move(*e));
    auto s = storage::store::open(*env, store_options_of(*cfg));
    if (!s) {
      fmt::print(stderr, "parallax vm: {}\n", s.error().message);
      return s.error().code == ec::config_bad_value ? 2 : 1;
    }
    st.emplace(std::move(*s));
    src = std::make_unique<store_source>(*st, search_options_of(*cfg));
    return 0;
  };
  if (args.server)
    src = std::make_unique<http_source>(*args.server, cfg->http.token);
  else if (auto rc = open_store(); rc != 0)
    return rc;
  bool tty = ::isatty(STDOUT_FILENO) != 0;
  style sty{tty && !args.once};
  const auto& stop = stop_on_signals();
  for (bool first = true;; first = false) {
    // A format-1 store read as it was opened has no runs table: should a
    // newer server upgrade it meanwhile, what it indexes in runs would be
    // missed. Such a store is opened again for every refresh.
    if (!first && env && env->version() != storage::format_version::latest)
      if (auto rc = open_store(); rc != 0)
        return rc;
    auto [cols, rows] = terminal_size();
    auto width = std::clamp<std::size_t>(cols, 60, 200);
    auto j = src->vm(args.name, args.earliest, width > 24 ? width - 24 : 8);
    if (!j) {
      fmt::print(stderr, "parallax vm: {}\n", j.error().message);
      return j.error().code == ec::usage ? 2 : 1;
    }
    if (j->is_null()) {
      auto known = src->known();
      std::string list;
      if (known)
        for (const auto& k : *known)
          list += (list.empty() ? "" : ", ") + k;
      fmt::print(stderr, "parallax vm: no VM called {} in the store; known "
                         "VMs: {}\n",
                 args.name, list.empty() ? "(none)" : list);
      return 1;
    }
    // Room for the processes: what the header and charts leave.
    auto max_procs = args.once || !tty ? std::size_t{50}
                                       : (rows > 40 ? rows - 36 : 4);
    auto text = render(*j, args.earliest, width, max_procs, sty);
    if (sty.ansi)
      text = "\x1b[H\x1b[2J" + text; // home, clear
    std::fputs(text.c_str(), stdout);
    std::fflush(stdout);
    if (args.once)
      return 0;
    for (int i = 0; i < 20 && !stop.load(); ++i)
      std::this_thread::sleep_for(100ms);
    if (stop.load())
      return 0;
    if (!tty)
      std::fputs("\n", stdout);
  }
}

} // namespace parallax::tools
