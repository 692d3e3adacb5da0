// `parallax tail`: subscribes to the publisher and prints what it publishes
// (schemas/README.md, "Published messages"), one line per message.

#include "commands.hpp"

#include "parallax/pipeline/zmq.hpp"
#include "parallax/schemas/json.hpp"
#include "parallax/schemas/publish.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <set>
#include <utility>

#include <fmt/format.h>
#include <unistd.h>
#include <zmq.h>

namespace parallax::tools {

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

// How long without a message before a notice (once per silence).
constexpr auto silence_notice = 30s;

namespace ansi {
constexpr std::string_view red = "\x1b[31m";
constexpr std::string_view yellow = "\x1b[33m";
constexpr std::string_view green = "\x1b[32m";
constexpr std::string_view dim = "\x1b[2m";
constexpr std::string_view reset = "\x1b[0m";
} // namespace ansi

const value* find(const publish::published_message& m, std::string_view name) {
  return m.find(name);
}

std::string_view str(const publish::published_message& m,
                     std::string_view name) {
  if (auto v = m.find(name))
    if (auto s = std::get_if<std::string>(v))
      return *s;
  return {};
}

std::optional<double> num(const value* v) {
  if (!v)
    return std::nullopt;
  if (auto i = std::get_if<std::int64_t>(v))
    return static_cast<double>(*i);
  if (auto d = std::get_if<double>(v))
    return *d;
  return std::nullopt;
}

// A unit's display: a divisor and a suffix chosen for `magnitude`, so that
// related figures (hv, guest, Δ) share one scale.
struct scale {
  double div = 1;
  std::string suffix;
  int decimals = 2;
};

scale scale_for(std::string_view unit, double magnitude) {
  magnitude = std::fabs(magnitude);
  if (unit == "bytes" || unit == "bytes_per_s") {
    std::string_view per = unit == "bytes" ? "" : "/s";
    static constexpr std::pair<std::string_view, double> iec[] = {
      {"TiB", 1099511627776.0},
      {"GiB", 1073741824.0},
      {"MiB", 1048576.0},
      {"KiB", 1024.0}};
    for (auto [name, div] : iec)
      if (magnitude >= div)
        return {div, fmt::format(" {}{}", name, per), 2};
    return {1, fmt::format(" B{}", per), 0};
  }
  if (unit == "pct")
    return {1, " %", 1};
  return {1, unit.empty() ? std::string{} : fmt::format(" {}", unit), -1};
}

std::string show(std::optional<double> v, const scale& s, bool sign = false) {
  if (!v)
    return "?";
  auto x = *v / s.div;
  if (s.decimals < 0)
    return sign ? fmt::format("{:+.4g}{}", x, s.suffix)
                : fmt::format("{:.4g}{}", x, s.suffix);
  return sign ? fmt::format("{:+.{}f}{}", x, s.decimals, s.suffix)
              : fmt::format("{:.{}f}{}", x, s.decimals, s.suffix);
}

// Local wall-clock time of day of an event time.
std::string clock_of(time_ns t) {
  auto secs = static_cast<std::time_t>(t / 1'000'000'000);
  if (t < 0 && t % 1'000'000'000 != 0)
    --secs;
  std::tm tm{};
  ::localtime_r(&secs, &tm);
  return fmt::format("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec);
}

std::string plain(const value& v) {
  switch (v.index()) {
    case 0: return std::get<0>(v);
    case 1: return fmt::format("{}", std::get<1>(v));
    case 2: return fmt::format("{:.6g}", std::get<2>(v));
    default: return std::get<3>(v) ? "true" : "false";
  }
}

// "k=v k=v", skipping `skip` names.
std::string key_values(const publish::published_message& m,
                       std::initializer_list<std::string_view> skip) {
  std::string out;
  for (const auto& f : m.fields) {
    if (std::find(skip.begin(), skip.end(), f.name) != skip.end())
      continue;
    auto v = plain(f.value);
    bool quote = v.find(' ') != std::string::npos || v.empty();
    out += fmt::format("{}{}={}", out.empty() ? "" : " ", f.name,
                       quote ? fmt::format("\"{}\"", v) : v);
  }
  return out;
}

// 12:00:20 delta web-01 mem_used  hv 3.10 GiB  guest 2.71 GiB
//   Δ +0.39 GiB (+12.6 %)  explained 87 %
std::string delta_line(const publish::published_message& m) {
  auto unit = str(m, "unit");
  auto hv = num(find(m, "hv_value"));
  auto guest = num(find(m, "guest_value"));
  auto diff = num(find(m, "abs_diff"));
  if (!diff && hv && guest)
    diff = *hv - *guest;
  auto sc = scale_for(unit, std::max(hv ? std::fabs(*hv) : 0.0,
                                     guest ? std::fabs(*guest) : 0.0));
  auto vm = str(m, "vm");
  if (vm.empty() && m.topic.size() > publish::delta_prefix.size())
    vm = std::string_view{m.topic}.substr(publish::delta_prefix.size());
  auto line = fmt::format("{} delta {} {}  hv {}  guest {}  Δ ", clock_of(m.time),
                          vm, str(m, "metric"), show(hv, sc), show(guest, sc));
  if (unit == "pct")
    line += show(diff, scale{1, " pts", 1}, true);
  else
    line += show(diff, sc, true);
  if (auto rel = num(find(m, "rel_diff")))
    line += fmt::format(" ({:+.1f} %)", *rel * 100);
  if (auto ex = num(find(m, "explained_share")))
    line += fmt::format("  explained {:.0f} %", *ex * 100);
  if (auto c = find(m, "correction"); c && std::holds_alternative<bool>(*c)
                                      && std::get<bool>(*c))
    line += "  (correction)";
  return line;
}

// 12:00:20 alert.drift web-01 warning open mem_used  value 3.10 GiB
//   baseline 2.71 GiB  process nginx (user www, pid 812)  message
std::string alert_line(const publish::published_message& m) {
  auto unit = str(m, "unit");
  auto value = num(find(m, "value"));
  auto baseline = num(find(m, "baseline"));
  auto sc = scale_for(unit, std::max(value ? std::fabs(*value) : 0.0,
                                     baseline ? std::fabs(*baseline) : 0.0));
  auto line = fmt::format("{} {} {} {} {}", clock_of(m.time), m.topic,
                          str(m, "vm"), str(m, "severity"), str(m, "state"));
  if (auto kind = str(m, "kind"); !kind.empty())
    line += fmt::format(" {}", kind);
  if (auto metric = str(m, "metric"); !metric.empty())
    line += fmt::format(" {}", metric);
  if (value)
    line += fmt::format("  value {}", show(value, sc));
  if (baseline)
    line += fmt::format("  baseline {}", show(baseline, sc));
  if (auto proc = str(m, "process"); !proc.empty()) {
    line += fmt::format("  process {}", proc);
    std::string who;
    if (auto user = str(m, "user"); !user.empty())
      who = fmt::format("user {}", user);
    if (auto pid = find(m, "pid"))
      who += fmt::format("{}pid {}", who.empty() ? "" : ", ", plain(*pid));
    if (!who.empty())
      line += fmt::format(" ({})", who);
  }
  if (auto msg = str(m, "message"); !msg.empty())
    line += fmt::format("  {}", msg);
  return line;
}

// 12:00:20 identity web-01 rematched  keys bios_uuid,mac  confidence 0.95
//   kvm-01 → kvm-03
std::string identity_line(const publish::published_message& m) {
  auto line = fmt::format("{} identity {} {}", clock_of(m.time), str(m, "vm"),
                          str(m, "change"));
  if (auto keys = str(m, "keys"); !keys.empty())
    line += fmt::format("  keys {}", keys);
  if (auto c = num(find(m, "confidence")))
    line += fmt::format("  confidence {:.2f}", *c);
  auto old_v = str(m, "old");
  auto new_v = str(m, "new");
  if (!old_v.empty() || !new_v.empty())
    line += fmt::format("  {} → {}", old_v.empty() ? "-" : old_v,
                        new_v.empty() ? "-" : new_v);
  return line;
}

// 12:00:20 event.os:auth web-01 Accepted publickey for deploy ...
std::string event_line(const publish::published_message& m) {
  auto line = fmt::format("{} {} {}", clock_of(m.time), m.topic,
                          str(m, "_host"));
  if (auto raw = str(m, "_raw"); !raw.empty())
    return line + " " + std::string{raw};
  return line + " "
         + key_values(m, {"_host", "_index", "_source", "_raw"});
}

std::string human_line(const publish::published_message& m, bool color) {
  std::string line;
  std::string_view paint;
  switch (publish::kind_of(m.topic)) {
    case publish::topic_kind::delta:
      line = delta_line(m);
      break;
    case publish::topic_kind::alert: {
      line = alert_line(m);
      auto sev = str(m, "severity");
      if (str(m, "state") == "resolved")
        paint = ansi::green;
      else if (sev == "critical")
        paint = ansi::red;
      else if (sev == "warning")
        paint = ansi::yellow;
      break;
    }
    case publish::topic_kind::identity:
      line = identity_line(m);
      break;
    case publish::topic_kind::event:
      line = event_line(m);
      break;
    default:
      line = fmt::format("{} {} {}", clock_of(m.time), m.topic,
                         key_values(m, {}));
  }
  if (color && !paint.empty())
    return fmt::format("{}{}{}", paint, line, ansi::reset);
  return line;
}

std::string json_line(const publish::published_message& m) {
  std::string out = "{\"publisher\":";
  json::append_string(out, m.publisher);
  out += ",\"topic\":";
  json::append_string(out, m.topic);
  fmt::format_to(std::back_inserter(out), ",\"sequence\":{},\"time\":{}",
                 m.sequence, m.time);
  out += ",\"fields\":{";
  bool first = true;
  for (const auto& f : m.fields) {
    if (!first)
      out += ',';
    first = false;
    json::append_string(out, f.name);
    out += ':';
    json::append_value(out, view(f.value));
  }
  out += "}}";
  return out;
}

// The filters other than the topic prefixes (those are the subscription).
struct filter {
  std::vector<std::string> vms;
  std::string metric;
  int min_severity = -1;

  bool pass(const publish::published_message& m) const {
    auto kind = publish::kind_of(m.topic);
    if (!vms.empty()) {
      auto vm = str(m, kind == publish::topic_kind::event ? "_host" : "vm");
      if (std::find(vms.begin(), vms.end(), vm) == vms.end())
        return false;
    }
    if (!metric.empty() && str(m, "metric") != metric)
      return false;
    if (min_severity >= 0 && kind == publish::topic_kind::alert
        && publish::severity_rank(str(m, "severity")) < min_severity)
      return false;
    return true;
  }
};

// Sequence tracking per (publisher id, topic) (schemas/README.md,
// "Delivery"): the first message of a pair sets the baseline; a jump is a
// gap; a publisher id not seen before is a restart, not a gap.
class gap_tracker {
public:
  struct outcome {
    bool new_publisher = false;
    bool restart = false;        ///< new id after another one
    std::uint64_t missed = 0;    ///< messages skipped before this one
    bool went_back = false;      ///< sequence lower than expected
  };

  outcome see(const publish::published_message& m) {
    outcome o;
    if (publishers_.insert(m.publisher).second) {
      o.new_publisher = true;
      o.restart = publishers_.size() > 1;
    }
    auto key = std::make_pair(m.publisher, m.topic);
    auto it = next_.find(key);
    if (it != next_.end()) {
      if (m.sequence > it->second) {
        o.missed = m.sequence - it->second;
        missed_ += o.missed;
        ++gaps_;
      } else if (m.sequence < it->second) {
        o.went_back = true;
      }
    }
    next_[key] = m.sequence + 1;
    return o;
  }

  std::uint64_t missed() const noexcept {
    return missed_;
  }
  std::uint64_t gaps() const noexcept {
    return gaps_;
  }

private:
  std::set<std::string> publishers_;
  std::map<std::pair<std::string, std::string>, std::uint64_t> next_;
  std::uint64_t missed_ = 0;
  std::uint64_t gaps_ = 0;
};

bool use_color(const std::string& mode) {
  if (mode == "always")
    return true;
  if (mode == "never")
    return false;
  auto term = std::getenv("TERM");
  return ::isatty(STDOUT_FILENO) && !std::getenv("NO_COLOR")
         && !(term && std::string_view{term} == "dumb");
}

} // namespace

std::string published_line(const publish::published_message& m, bool color) {
  return human_line(m, color);
}

int run_tail(const tail_args& args) {
  auto cfg = load(args.cfg, "tail");
  if (!cfg)
    return 2;
  auto endpoint = args.endpoint.empty() ? cfg->publisher.endpoint
                                        : args.endpoint;
  if (endpoint.empty()) {
    fmt::print(stderr, "parallax tail: publishing is off "
                       "(parallax.publisher.endpoint is empty); give "
                       "--endpoint\n");
    return 2;
  }
  filter flt;
  flt.vms = args.vms;
  flt.metric = args.metric;
  if (!args.min_severity.empty()) {
    flt.min_severity = publish::severity_rank(args.min_severity);
    if (flt.min_severity < 0) {
      fmt::print(stderr, "parallax tail: --min-severity: expected info, "
                         "warning or critical, got {}\n",
                 args.min_severity);
      return 2;
    }
  }
  if (args.timeout && !(*args.timeout > 0)) {
    fmt::print(stderr, "parallax tail: --timeout: expected seconds > 0\n");
    return 2;
  }
  bool json = args.json || (!args.no_json && !::isatty(STDOUT_FILENO));
  bool color = !json && use_color(args.color);
  std::vector<std::string> topics = args.topics;
  if (topics.empty())
    topics = {std::string{publish::delta_prefix},
              std::string{publish::alert_prefix},
              std::string{publish::identity_topic}};

  zmq::context ctx;
  zmq::socket sub{ctx, ZMQ_SUB};
  // A large receive queue: a subscriber that falls behind makes the
  // publisher drop for everyone (schemas/README.md, "Delivery").
  if (auto err = sub.set_int(ZMQ_RCVHWM, 100'000)) {
    fmt::print(stderr, "parallax tail: {}\n", err.message);
    return 1;
  }
  for (const auto& t : topics)
    if (zmq_setsockopt(sub.handle(), ZMQ_SUBSCRIBE, t.data(), t.size()) != 0) {
      fmt::print(stderr, "parallax tail: cannot subscribe to {}: {}\n", t,
                 zmq_strerror(zmq_errno()));
      return 1;
    }
  if (auto err = sub.connect(endpoint)) {
    fmt::print(stderr, "parallax tail: {}\n", err.message);
    return 2; // a malformed endpoint: ZeroMQ connects lazily otherwise
  }
  fmt::print(stderr, "parallax tail: waiting for the publisher at {} ...\n",
             endpoint);
  std::fflush(stderr);

  const auto& stop = stop_on_signals();
  gap_tracker gaps;
  std::uint64_t printed = 0;
  std::uint64_t malformed = 0;
  auto last_received = clock_type::now();
  bool silence_told = false;
  int rc = 0;
  bool finished = false;
  zmq::socket* socks[] = {&sub};
  bool want[] = {true};
  std::string line;
  while (!finished && !stop.load()) {
    auto ready = zmq::poll_in(socks, want, 100ms);
    if (!ready) {
      fmt::print(stderr, "parallax tail: {}\n", ready.error().message);
      rc = 1;
      break;
    }
    // Silence is judged only after a poll found nothing, so a process that
    // was stopped (SIGSTOP, a suspended terminal) first reads its backlog.
    if (!(*ready)[0]) {
      auto silent = clock_type::now() - last_received;
      if (args.timeout
          && silent >= std::chrono::duration<double>(*args.timeout)) {
        fmt::print(stderr, "parallax tail: nothing for {} s from {}\n",
                   *args.timeout, endpoint);
        rc = 1;
        break;
      }
      if (!silence_told && silent >= silence_notice) {
        fmt::print(stderr, "parallax tail: no message for {} s (still "
                           "listening at {})\n",
                   silence_notice.count(), endpoint);
        std::fflush(stderr);
        silence_told = true;
      }
      continue;
    }
    // Everything that is waiting, then back to the checks above.
    for (;;) {
      auto parts = sub.recv(true);
      if (!parts) {
        if (parts.error().message == "EAGAIN")
          break;
        fmt::print(stderr, "parallax tail: {}\n", parts.error().message);
        rc = 1;
        finished = true;
        break;
      }
      last_received = clock_type::now();
      silence_told = false;
      if (parts->size() != 2) {
        ++malformed;
        fmt::print(stderr, "parallax tail: malformed message: {} frames, "
                           "expected 2 (topic, body)\n",
                   parts->size());
        continue;
      }
      auto topic = (*parts)[0].view();
      auto msg = publish::decode((*parts)[1].view());
      if (!msg) {
        ++malformed;
        fmt::print(stderr, "parallax tail: malformed message on {}: {}\n",
                   topic, msg.error().render());
        continue;
      }
      if (msg->topic != topic) {
        ++malformed;
        fmt::print(stderr, "parallax tail: malformed message: frame topic {} "
                           "but body topic {}\n",
                   topic, msg->topic);
        continue;
      }
      auto seen = gaps.see(*msg);
      if (seen.restart)
        fmt::print(stderr, "parallax tail: publisher restarted: new id {} "
                           "(sequences start again)\n",
                   msg->publisher);
      else if (seen.new_publisher)
        fmt::print(stderr, "parallax tail: receiving from publisher {} at "
                           "{}\n",
                   msg->publisher, endpoint);
      if (seen.missed > 0)
        fmt::print(stderr, "parallax tail: gap on {}: {} message{} missed\n",
                   msg->topic, seen.missed, seen.missed == 1 ? "" : "s");
      if (seen.went_back)
        fmt::print(stderr, "parallax tail: sequence went back on {} (to {})\n",
                   msg->topic, msg->sequence);
      std::fflush(stderr);
      if (!flt.pass(*msg))
        continue;
      line = json ? json_line(*msg) : human_line(*msg, color);
      line += '\n';
      std::fwrite(line.data(), 1, line.size(), stdout);
      std::fflush(stdout);
      ++printed;
      if (args.count > 0 && printed >= args.count) {
        finished = true;
        break;
      }
    }
  }
  if (gaps.gaps() > 0)
    fmt::print(stderr, "parallax tail: {} message{} missed in {} gap{}\n",
               gaps.missed(), gaps.missed() == 1 ? "" : "s", gaps.gaps(),
               gaps.gaps() == 1 ? "" : "s");
  if (malformed > 0)
    fmt::print(stderr, "parallax tail: {} malformed message{} skipped\n",
               malformed, malformed == 1 ? "" : "s");
  return rc;
}

} // namespace parallax::tools
