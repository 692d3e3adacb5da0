#include "parallax/pipeline/correlator.hpp"

#include "parallax/schemas/hash.hpp"
#include "parallax/schemas/publish.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <type_traits>

#include <fmt/format.h>

namespace parallax {

namespace {

// A short, stable alert id: FNV-1a of what identifies the alert.
std::string alert_id(std::string_view a, std::string_view b,
                     std::string_view c, time_ns t) {
  std::uint64_t h = 1469598103934665603ULL;
  auto mix = [&](std::string_view s) {
    for (unsigned char ch : s) {
      h ^= ch;
      h *= 1099511628211ULL;
    }
    h ^= 0xff;
    h *= 1099511628211ULL;
  };
  mix(a);
  mix(b);
  mix(c);
  mix(std::to_string(t));
  return fmt::format("{:016x}", h);
}

std::string rfc3339(time_ns t) {
  auto secs = t / 1'000'000'000;
  std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec);
}

// Passes what `out` gained since `emitted` to `emit` (when given), as
// views, and moves `emitted` past it.
void emit_since(const std::vector<correlator_message>& out,
                std::size_t& emitted, const message_emitter& emit) {
  if (!emit) {
    emitted = out.size();
    return;
  }
  std::vector<field_view> fields;
  for (; emitted < out.size(); ++emitted) {
    const auto& m = out[emitted];
    fields.clear();
    for (const auto& f : m.fields)
      fields.push_back({f.name, view(f.value)});
    emit({m.topic, m.time, m.sourcetype, m.host, fields});
  }
}

// A delta's fields, in order, each through `add(name, value)` (the name a
// literal, a string value the delta's own): the one list both the
// published view and the stored message are made from. The names are
// literals (checked against valid_field_names by the tests:
// message_view::names_checked).
template <class Add>
void delta_fields(const delta& d, Add&& add) {
  add("vm", d.vm);
  add("vm_uuid", d.vm_uuid);
  add("metric", d.metric);
  add("hv_value", d.hv_value);
  add("guest_value", d.guest_value);
  add("unit", d.unit);
  add("abs_diff", d.abs_diff);
  add("rel_diff", d.rel_diff);
  add("explained_share", d.explained_share);
  add("window_start", d.window_start);
  add("window_end", d.window_end);
  add("host", d.host);
  add("correction", d.correction);
  if (!d.mac.empty())
    add("mac", d.mac);
}

constexpr std::size_t max_delta_fields = 14;

bool contains(const std::vector<std::string>& v, std::string_view s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// The head of every alert: where it goes and when, and the fields each
// alert has. Callers append what their kind adds.
correlator_message alert_message(std::string_view topic, time_ns time,
                                 std::string host, std::string id,
                                 std::string_view vm,
                                 std::string_view vm_uuid,
                                 std::string_view kind,
                                 std::string_view state,
                                 std::string_view severity) {
  correlator_message m;
  m.topic = std::string{topic};
  m.time = time;
  m.sourcetype = "parallax:alert";
  m.host = std::move(host);
  m.fields = {{"id", std::move(id)},
              {"vm", std::string{vm}},
              {"vm_uuid", std::string{vm_uuid}},
              {"kind", std::string{kind}},
              {"state", std::string{state}},
              {"severity", std::string{severity}}};
  return m;
}

} // namespace

correlator_message materialize(const message_view& m) {
  correlator_message c;
  c.topic = std::string{m.topic};
  c.time = m.time;
  c.sourcetype = std::string{m.sourcetype};
  c.host = std::string{m.host};
  c.fields.reserve(m.fields.size());
  for (const auto& f : m.fields)
    c.fields.push_back({std::string{f.name}, materialize(f.value)});
  return c;
}

baseline_options correlator_options::correlator_baseline_defaults() {
  baseline_options b;
  b.warmup_samples = 15; // 5 minutes of 20 s windows
  // Report large sustained shifts from the end of the warm-up on, on the
  // second window: "within two windows of its start".
  b.hot_deviation = 6;
  b.close_deviation = 3;
  b.open_samples = 2;
  b.close_samples = 5;
  // An alert lasts as long as its anomaly, up to 30 minutes; then the new
  // level is the normal.
  b.freeze_while_open = true;
  b.adapt_after = 90;
  return b;
}

correlator_options correlator_options_of(const config& cfg) {
  correlator_options o;
  const auto& c = cfg.correlator;
  o.join.window = to_ns(c.window);
  o.join.allowed_lateness = to_ns(c.allowed_lateness);
  o.join.correction_horizon = to_ns(c.correction_horizon);
  o.learning_period = to_ns(c.learning_period);
  o.admin_users = c.admin_users;
  o.allowed_users = c.allowed_users;
  o.allowed_processes = c.allowed_processes;
  o.service_uid_max = static_cast<std::int64_t>(c.service_uid_max);
  o.unexplained_cpu_pct = static_cast<double>(c.unexplained_cpu_pct);
  o.service_owners = c.service_owners;
  return o;
}

correlator::correlator(correlator_options opts)
  : opts_{std::move(opts)}, resolver_{opts_.identity}, join_{opts_.join} {
}

std::optional<attribution> correlator::observe(std::string_view source_id,
                                               const event_view& e) {
  auto a = resolver_.observe(source_id, e);
  if (!a || a->vm.empty()) {
    if (e.sourcetype.starts_with("os:"))
      hold(source_id, e);
    return a;
  }
  if (!held_.empty())
    release(source_id, *a);
  learn(*a, e);
  return a;
}

namespace {

// A source's held events: enough for an agent's first batches, whatever
// its batching. All sources' together: a fleet whose hypervisor side is
// missing (a wrong libvirt URI) must not fill the memory.
constexpr std::size_t max_held_per_source = 20'000;
constexpr std::size_t max_held = 200'000;

} // namespace

void correlator::hold(std::string_view source_id, const event_view& e) {
  auto& h = entry(held_, source_id);
  h.newest = std::max(h.newest, e.time);
  auto horizon = h.newest - 2 * opts_.join.window;
  while (!h.events.empty()
         && (h.events.size() >= max_held_per_source
             || h.events.front().time < horizon)) {
    h.events.pop_front();
    --held_total_;
    ++counters_.held_dropped;
  }
  if (held_total_ >= max_held || e.time < horizon) {
    ++counters_.held_dropped;
    return;
  }
  h.events.push_back(e.materialize());
  ++held_total_;
}

void correlator::release(std::string_view source_id, const attribution& a) {
  auto it = held_.find(source_id);
  if (it == held_.end())
    return;
  auto held = std::move(it->second.events);
  held_.erase(it);
  held_total_ -= held.size();
  auto horizon = join_.latest() - 2 * opts_.join.window;
  std::vector<field_view> fields;
  for (const auto& e : held) {
    if (e.time < horizon) {
      ++counters_.held_dropped;
      continue;
    }
    fields.clear();
    for (const auto& f : e.fields)
      fields.push_back({f.name, view(f.value)});
    learn(a, view_of(e, fields));
    ++counters_.held_replayed;
  }
}

// What a lookup by name (event_view::find) would give for each of these
// fields, the string or integer value of its first occurrence, in one
// pass: most of the fleet's events are process samples, and each lookup
// scanned the fields again (the checks made six).
struct correlator::process_fields {
  std::string_view command, user;
  std::optional<std::int64_t> pid, uid, start_time;
  const value_view* rss = nullptr;

  explicit process_fields(const event_view& e) {
    bool seen_command = false, seen_user = false, seen_pid = false,
         seen_uid = false, seen_start = false;
    // The first occurrence decides, as find() does; its value counts if
    // it has the type wanted: text into a string_view, an integer into
    // an optional.
    auto take = [](bool& seen, auto& to, const value_view& v) {
      if (seen)
        return;
      seen = true;
      using wanted
        = std::conditional_t<std::is_same_v<std::decay_t<decltype(to)>,
                                            std::string_view>,
                             std::string_view, std::int64_t>;
      if (auto x = std::get_if<wanted>(&v))
        to = *x;
    };
    for (const auto& f : e.fields) {
      switch (f.name.size()) {
        case 3:
          if (f.name == "pid")
            take(seen_pid, pid, f.value);
          else if (f.name == "uid")
            take(seen_uid, uid, f.value);
          break;
        case 4:
          if (f.name == "user")
            take(seen_user, user, f.value);
          break;
        case 7:
          if (f.name == "command")
            take(seen_command, command, f.value);
          break;
        case 9:
          if (!rss && f.name == "rss_bytes")
            rss = &f.value;
          break;
        case 10:
          if (f.name == "start_time")
            take(seen_start, start_time, f.value);
          break;
        default:
          break;
      }
    }
  }
};

void correlator::learn(const attribution& a, const event_view& e) {
  bool guest = e.sourcetype.starts_with("os:");
  if (!guest && !e.sourcetype.starts_with("hv:")) {
    join_.add(a.vm, a.vm_uuid, e); // collectd and the like: joined only
    return;
  }
  // One lookup of the VM's state per event (most of the fleet's events are
  // os:process samples, and each used to look it up three times).
  auto& sec = entry(security_, a.vm_uuid);
  if (guest && sec.skew_open) {
    // A guest whose clock is known to be off joins on the hypervisor's.
    auto shifted = e;
    shifted.time -= sec.skew;
    join_.add(a.vm, a.vm_uuid, shifted);
  } else {
    join_.add(a.vm, a.vm_uuid, e);
  }
  if (!guest) {
    sec.last_hv = std::max(sec.last_hv, e.time);
    return;
  }
  if (e.sourcetype == "os:system")
    check_clock(sec, a, e);
  if (sec.first_guest == INT64_MIN)
    sec.first_guest = e.time;
  if (e.sourcetype == "os:process") {
    process_fields p{e};
    check_leak(sec, a, e, p);
    check_process(sec, a, e, p);
  } else if ((e.sourcetype == "os:auth" || e.sourcetype == "os:cron")
             && e.raw) {
    sec.logs.push_back({e.time, std::string{e.sourcetype},
                        std::string{*e.raw}});
    while (sec.logs.size() > 64)
      sec.logs.pop_front();
  }
}

std::string correlator::log_context(const std::string& vm_uuid,
                                    time_ns t) const {
  auto it = security_.find(vm_uuid);
  if (it == security_.end())
    return {};
  constexpr time_ns around = 600'000'000'000; // 10 minutes
  std::vector<const log_line*> near;
  for (const auto& l : it->second.logs)
    if (l.time >= t - around && l.time <= t + around)
      near.push_back(&l);
  // The lines closest to the alert.
  std::sort(near.begin(), near.end(), [t](auto* x, auto* y) {
    return std::abs(x->time - t) < std::abs(y->time - t);
  });
  if (near.size() > opts_.log_context_lines)
    near.resize(opts_.log_context_lines);
  std::sort(near.begin(), near.end(),
            [](auto* x, auto* y) { return x->time < y->time; });
  std::string out;
  for (auto* l : near) {
    if (!out.empty())
      out += '\n';
    out += l->raw;
  }
  return out;
}

namespace {

// `*` matches any run of characters, everything else itself.
bool glob_match(std::string_view pattern, std::string_view text) {
  if (pattern.empty())
    return text.empty();
  if (pattern.front() == '*') {
    for (std::size_t i = 0; i <= text.size(); ++i)
      if (glob_match(pattern.substr(1), text.substr(i)))
        return true;
    return false;
  }
  return !text.empty() && pattern.front() == text.front()
         && glob_match(pattern.substr(1), text.substr(1));
}

} // namespace

bool correlator::service_owner(std::string_view vm,
                               std::string_view user) const {
  for (const auto& [pattern, users] : opts_.service_owners)
    if (glob_match(pattern, vm) && contains(users, user))
      return true;
  return false;
}

void correlator::check_clock(vm_security& sec, const attribution& a,
                             const event_view& e) {
  if (sec.last_hv == INT64_MIN)
    return;
  auto offset = e.time - sec.last_hv;
  bool off = offset > opts_.clock_skew_threshold
             || offset < -opts_.clock_skew_threshold;
  if (!off) {
    // The usual offset (up to one hypervisor interval): what a skew is
    // measured against.
    sec.offset_ewma = sec.offset_known
                        ? sec.offset_ewma
                            + 0.1 * (static_cast<double>(offset)
                                     - sec.offset_ewma)
                        : static_cast<double>(offset);
    sec.offset_known = true;
  }
  sec.skew_run = off ? sec.skew_run + 1 : 0;
  sec.skew_ok_run = off ? 0 : sec.skew_ok_run + 1;
  auto message = [&](const char* state, std::string text) {
    // On the hypervisor's clock, like every other alert of the VM.
    auto m = alert_message(
      publish::alert_drift, sec.last_hv,
      resolver_.host_at(a.vm_uuid, sec.last_hv), sec.skew_id, a.vm, a.vm_uuid,
      "clock_skew", state, "warning");
    m.fields.insert(m.fields.end(), {
      {"metric", std::string{"clock_offset_s"}},
      {"value", static_cast<double>(offset) / 1e9},
      {"baseline", 0.0},
      {"unit", std::string{"s"}},
      {"message", std::move(text)},
      {"window_start", sec.last_hv},
      {"window_end", sec.last_hv}
    });
    pending_.push_back(std::move(m));
  };
  if (off && !sec.skew_open && sec.skew_run >= opts_.skew_samples) {
    sec.skew_open = true;
    sec.skew = offset - static_cast<time_ns>(sec.offset_ewma);
    sec.skew_id = alert_id(a.vm_uuid, "clock_skew", "", e.time);
    ++counters_.drift_opened;
    message("open",
            fmt::format("the guest clock of {} is {:+.0f} s off its "
                        "hypervisor's: samples land in the wrong windows",
                        a.vm, static_cast<double>(offset) / 1e9));
  } else if (!off && sec.skew_open && sec.skew_ok_run >= opts_.skew_samples) {
    sec.skew_open = false;
    ++counters_.drift_resolved;
    message("resolved", fmt::format("the guest clock of {} agrees with its "
                                    "hypervisor's again",
                                    a.vm));
  }
}

std::string correlator::key_text(std::string_view vm_uuid, std::int64_t pid,
                                 std::int64_t start) {
  return fmt::format("{}|{}|{}", vm_uuid, pid, start);
}

void correlator::check_leak(vm_security& sec, const attribution& a,
                            const event_view& e, const process_fields& p) {
  auto rss = p.rss;
  auto pid = p.pid;
  if (!rss || !pid || !std::holds_alternative<std::int64_t>(*rss))
    return;
  std::pair<std::int64_t, std::int64_t> key{*pid, p.start_time.value_or(0)};
  auto at = std::find(sec.track_keys.begin(), sec.track_keys.end(), key);
  if (at == sec.track_keys.end()) {
    at = sec.track_keys.insert(at, key);
    sec.tracks.emplace_back().start = key.second;
  }
  auto& tr = sec.tracks[static_cast<std::size_t>(at - sec.track_keys.begin())];
  if (tr.samples.empty()) {
    tr.vm = std::string{a.vm};
    tr.vm_uuid = std::string{a.vm_uuid};
    tr.process = std::string{p.command};
    tr.user = std::string{p.user};
    tr.pid = *pid;
  }
  tr.last_seen = e.time;
  tr.samples.emplace_back(e.time,
                          static_cast<double>(std::get<std::int64_t>(*rss)));
  while (tr.samples.size() > opts_.leak_samples)
    tr.samples.pop_front();
  if (tr.samples.size() < opts_.leak_samples)
    return;
  // A leak needs this much growth over the window: short of it, a process
  // not alerted stays so, whatever the fit (most samples stop here).
  constexpr double leak_min_growth = 16.0 * 1024 * 1024;
  double growth = tr.samples.back().second - tr.samples.front().second;
  if (!tr.open && growth < leak_min_growth)
    return;
  // Least squares of RSS over time (seconds from the first sample).
  double n = static_cast<double>(tr.samples.size());
  double sx = 0, sy = 0, sxx = 0, sxy = 0, syy = 0;
  auto t0 = tr.samples.front().first;
  for (const auto& [t, y] : tr.samples) {
    double x = static_cast<double>(t - t0) / 1e9;
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
    syy += y * y;
  }
  double vx = n * sxx - sx * sx, vy = n * syy - sy * sy;
  if (vx <= 0)
    return;
  double slope = (n * sxy - sx * sy) / vx; // bytes per second
  // The slope's t statistic: the slope over its standard error, from the
  // residuals of the fit. Noise alone rarely passes 6 with 16 degrees of
  // freedom; a real leak does as soon as the window has seen enough of it.
  double sse = std::max(0.0, (vy - (n * sxy - sx * sy) * (n * sxy - sx * sy)
                                       / vx)
                               / n);
  double se = n > 2 ? std::sqrt(sse / (n - 2) / (vx / n)) : 0;
  double t_stat = se > 0 ? slope / se : (slope > 0 ? 1e9 : 0);
  bool leaking = slope >= opts_.leak_min_bytes_per_s && t_stat >= 6
                 && growth >= leak_min_growth;
  bool stopped = slope < opts_.leak_min_bytes_per_s / 4 || t_stat < 2;
  if (leaking == tr.open || (!leaking && !stopped))
    return;
  tr.open = leaking;
  if (leaking) {
    tr.id = alert_id(tr.vm_uuid, "memory_leak",
                     key_text(tr.vm_uuid, tr.pid, tr.start),
                     tr.samples.front().first);
    ++counters_.drift_opened;
  } else {
    ++counters_.drift_resolved;
  }
  auto m = alert_message(
    publish::alert_drift, e.time, resolver_.host_at(tr.vm_uuid, e.time), tr.id,
    tr.vm, tr.vm_uuid, "memory_leak", leaking ? "open" : "resolved", "warning");
  m.fields.insert(m.fields.end(), {
    {"metric", std::string{"process_rss_bytes"}},
    {"process", tr.process},
    {"user", tr.user},
    {"pid", tr.pid},
    {"value", tr.samples.back().second},
    {"rate_bytes_per_s", slope},
    {"unit", std::string{"bytes"}},
    {"message",
     leaking ? fmt::format("{} (pid {}) on {} grows {:.1f} MiB/min, {:.0f} MiB "
                           "in {:.0f} s",
                           tr.process, tr.pid, tr.vm,
                           slope * 60 / (1024 * 1024),
                           growth / (1024 * 1024),
                           static_cast<double>(e.time - t0) / 1e9)
             : fmt::format("{} (pid {}) on {} stopped growing", tr.process,
                           tr.pid, tr.vm)},
    {"window_start", tr.samples.front().first},
    {"window_end", e.time},
  });
  pending_.push_back(std::move(m));
}

void correlator::check_process(vm_security& sec, const attribution& a,
                               const event_view& e, const process_fields& p) {
  // Views into the event: nothing is copied unless an alert is raised.
  auto user = p.user;
  auto command = p.command;
  if (command.empty())
    return;
  bool learning = e.time < sec.first_guest + opts_.learning_period;
  if (learning) {
    if (!sec.learned.contains(command))
      sec.learned.emplace(command);
    return;
  }
  auto uid = p.uid;
  // An open alert's process is seen again at every sample: only its
  // last_seen changes, and nothing is formatted for it.
  auto raise = [&](std::string_view kind, auto&& make_detail) {
    thread_local std::string key;
    key.assign(a.vm_uuid);
    for (auto part : {kind, command, user}) {
      key.push_back('|');
      key.append(part);
    }
    if (auto open = process_alerts_.find(key);
        open != process_alerts_.end()) {
      open->second.last_seen = e.time;
      return;
    }
    auto& pa = process_alerts_[key];
    pa.last_seen = e.time;
    std::string detail = make_detail();
    pa.id = alert_id(a.vm_uuid, kind, fmt::format("{}|{}", command, user),
                     e.time);
    pa.vm = std::string{a.vm};
    pa.vm_uuid = std::string{a.vm_uuid};
    pa.host = resolver_.host_at(a.vm_uuid, e.time);
    pa.kind = std::string{kind};
    pa.process = std::string{command};
    pa.user = std::string{user};
    pa.pid = p.pid.value_or(0);
    pa.first_seen = e.time;
    ++counters_.security_opened;
    auto ctx = log_context(pa.vm_uuid, e.time);
    auto m = alert_message(
      publish::alert_security, e.time, pa.host, pa.id, pa.vm, pa.vm_uuid,
      pa.kind, "open", "warning");
    m.fields.insert(m.fields.end(), {
      {"process", pa.process},
      {"user", pa.user},
      {"pid", pa.pid},
      {"message", std::move(detail)},
      {"window_start", e.time},
      {"window_end", e.time},
      {"related_search",
       fmt::format("vm=\"{}\" (sourcetype=os:auth OR sourcetype=os:cron) "
                   "earliest={} latest={}",
                   pa.vm, rfc3339(e.time - 600'000'000'000),
                   rfc3339(e.time + 600'000'000'000))},
    });
    if (!ctx.empty())
      m.fields.push_back({"log_context", std::move(ctx)});
    pending_.push_back(std::move(m));
  };
  bool human = uid && *uid > opts_.service_uid_max;
  if (human && !contains(opts_.admin_users, user)
      && !contains(opts_.allowed_users, user)
      && !service_owner(a.vm, user))
    raise("non_admin_process", [&] {
      return fmt::format("{} runs {} (pid {}) on {}: neither an "
                         "administrator nor an allowed user",
                         user, command, p.pid.value_or(0), a.vm);
    });
  if (!sec.learned.contains(command)
      && !contains(opts_.allowed_processes, command))
    raise("rogue_process", [&] {
      return fmt::format("{} (pid {}, user {}) on {} was not seen while the "
                         "VM's processes were learned and is not allowed",
                         command, p.pid.value_or(0), user, a.vm);
    });
}

void correlator::resolve_gone_processes(
  std::vector<correlator_message>& out) {
  // A process alert resolves once the process has not been seen for three
  // windows of the fleet's clock.
  auto now = join_.latest();
  auto gone_after = 3 * opts_.join.window;
  // A sweep costs one look at every process of the fleet: once per
  // window of fleet time is enough.
  if (last_sweep_ != INT64_MIN && now - last_sweep_ < opts_.join.window)
    return;
  last_sweep_ = now;
  for (auto& [uuid, sec] : security_) {
    for (std::size_t i = 0; i < sec.tracks.size();) {
      auto& tr = sec.tracks[i];
      if (now - tr.last_seen <= gone_after) {
        ++i;
        continue;
      }
      if (tr.open) {
        ++counters_.drift_resolved;
        auto m = alert_message(
          publish::alert_drift, tr.last_seen,
          resolver_.host_at(tr.vm_uuid, tr.last_seen), tr.id, tr.vm,
          tr.vm_uuid, "memory_leak", "resolved", "warning");
        m.fields.insert(m.fields.end(), {
          {"metric", std::string{"process_rss_bytes"}},
          {"process", tr.process},
          {"user", tr.user},
          {"pid", tr.pid},
          {"message", fmt::format("{} (pid {}) on {} is gone",
                                  tr.process, tr.pid, tr.vm)},
          {"window_start", tr.last_seen},
          {"window_end", tr.last_seen}
        });
        out.push_back(std::move(m));
      }
      // The last track takes its place (the order means nothing).
      if (i + 1 != sec.tracks.size()) {
        sec.tracks[i] = std::move(sec.tracks.back());
        sec.track_keys[i] = sec.track_keys.back();
      }
      sec.tracks.pop_back();
      sec.track_keys.pop_back();
    }
  }
  for (auto it = process_alerts_.begin(); it != process_alerts_.end();) {
    auto& pa = it->second;
    if (now - pa.last_seen <= gone_after) {
      ++it;
      continue;
    }
    auto m = alert_message(
      publish::alert_security, pa.last_seen, pa.host, pa.id, pa.vm, pa.vm_uuid,
      pa.kind, "resolved", "warning");
    m.fields.insert(m.fields.end(), {
      {"process", pa.process},
      {"user", pa.user},
      {"pid", pa.pid},
      {"message", fmt::format("{} is gone", pa.process)},
      {"window_start", pa.first_seen},
      {"window_end", pa.last_seen}
    });
    out.push_back(std::move(m));
    ++counters_.security_resolved;
    it = process_alerts_.erase(it);
  }
}

void correlator::drift(string_map<baseline>& of_vm, const delta& d,
                       std::string_view series, double value,
                       std::vector<correlator_message>& out) {
  auto it = of_vm.find(series);
  if (it == of_vm.end()) {
    // A difference of two large figures is often exactly 0 for a long
    // time (memory visible to the guest): its scale must not shrink to
    // nothing, or the first byte of change would be a huge deviation.
    // 1 % of the hypervisor's figure is the floor.
    // Below these, differences are noise whatever the series' history:
    // a percentage point; 1 % of the hypervisor's figure for byte deltas;
    // 16 MiB of memory; 1 KiB/s of traffic.
    auto opts = opts_.baseline;
    if (d.unit == "pct")
      opts.scale_floor = std::max(opts.scale_floor, 1.0);
    else if (d.unit == "bytes")
      opts.scale_floor = std::max(opts.scale_floor, 16.0 * 1024 * 1024);
    else if (d.unit == "bytes_per_s")
      opts.scale_floor = std::max(opts.scale_floor, 1024.0);
    if (series.ends_with(".delta"))
      opts.scale_floor =
        std::max(opts.scale_floor, 0.01 * std::abs(d.hv_value));
    it = of_vm.emplace(std::string{series}, baseline{opts}).first;
  }
  auto& b = it->second;
  auto v = b.update(d.window_end, value);
  if (!v.opened && !v.resolved)
    return;
  const auto& al = b.current_alert();
  auto state = v.opened ? "open" : "resolved";
  v.opened ? ++counters_.drift_opened : ++counters_.drift_resolved;
  auto m = alert_message(
    publish::alert_drift, d.window_end, d.host,
    alert_id(d.vm_uuid, series, "", al.start), d.vm, d.vm_uuid, "drift", state,
    to_string(v.opened ? v.sev : al.sev));
  m.fields.insert(m.fields.end(), {
    {"metric", std::string{series}},
    {"value", value},
    {"baseline", v.expected},
    {"scale", v.scale},
    {"score", v.score},
    {"unit", d.unit},
    {"message",
     fmt::format("{} {} on {}: {:.4g} {} against a baseline of {:.4g} "
                 "(deviation {:.1f})",
                 series, v.opened ? "drifted" : "is back to normal", d.vm,
                 value, d.unit, v.expected, v.deviation)},
    {"window_start", al.start},
    {"window_end", d.window_end},
  });
  out.push_back(std::move(m));
}

void correlator::delta_message(const delta& d,
                               std::vector<correlator_message>& out) {
  // Built in place: an initializer list would copy every field once more.
  auto& m = out.emplace_back();
  m.topic = publish::delta_topic(d.vm);
  m.time = d.window_end;
  m.sourcetype = "parallax:delta";
  m.host = d.host;
  auto& f = m.fields;
  f.reserve(max_delta_fields);
  // Each field made in place from the literal and the delta's value.
  delta_fields(d, [&](const auto& name, const auto& v) {
    f.emplace_back(name, v);
  });
}

void correlator::emit_delta(const delta& d, const message_emitter& emit) {
  std::array<field_view, max_delta_fields> fields;
  std::size_t n = 0;
  delta_fields(d, [&](std::string_view name, const auto& v) {
    if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::string>)
      fields[n++] = {name, std::string_view{v}};
    else
      fields[n++] = {name, v};
  });
  publish::delta_topic(d.vm, topic_scratch_);
  emit({topic_scratch_, d.window_end, "parallax:delta", d.host,
        std::span<const field_view>{fields.data(), n}, true});
}

void correlator::on_delta(const delta& d,
                          std::vector<correlator_message>& out) {
  // The VM's baselines looked up once; the three series' names built in
  // one buffer (kept: this runs for every delta).
  auto& of_vm = entry(baselines_, d.vm_uuid);
  auto& name = series_scratch_;
  name.assign(d.metric);
  if (!d.mac.empty())
    name.append("/").append(d.mac);
  auto stem = name.size();
  auto series = [&](std::string_view suffix) -> std::string_view {
    name.resize(stem);
    name.append(suffix);
    return name;
  };
  drift(of_vm, d, series(".hv"), d.hv_value, out);
  drift(of_vm, d, series(".guest"), d.guest_value, out);
  drift(of_vm, d, series(".delta"), d.abs_diff, out);
  // Hypervisor CPU the guest's processes do not explain.
  if (d.metric == "cpu_processes") {
    auto& sec = entry(security_, d.vm_uuid);
    bool high = d.abs_diff > opts_.unexplained_cpu_pct;
    sec.unexplained_run = high ? sec.unexplained_run + 1 : 0;
    if (high && !sec.unexplained_open
        && sec.unexplained_run >= opts_.unexplained_windows) {
      sec.unexplained_open = true;
      sec.unexplained_id = alert_id(d.vm_uuid, "unexplained_load", "",
                                    d.window_start);
      ++counters_.security_opened;
      auto ctx = log_context(d.vm_uuid, d.window_end);
      auto a = alert_message(
        publish::alert_security, d.window_end, d.host, sec.unexplained_id, d.vm,
        d.vm_uuid, "unexplained_load", "open", "critical");
      a.fields.insert(a.fields.end(), {
        {"metric", d.metric},
        {"value", d.abs_diff},
        {"baseline", opts_.unexplained_cpu_pct},
        {"message",
         fmt::format("the hypervisor sees {:.1f} % CPU on {}, the guest's "
                     "processes explain {:.1f} %: {:.1f} points unexplained "
                     "for {} windows (a hidden process?)",
                     d.hv_value, d.vm, d.guest_value, d.abs_diff,
                     sec.unexplained_run)},
        {"window_start", d.window_start},
        {"window_end", d.window_end},
        {"related_search",
         fmt::format("vm=\"{}\" sourcetype=os:* earliest={} latest={}", d.vm,
                     rfc3339(d.window_start - 600'000'000'000),
                     rfc3339(d.window_end))},
      });
      if (!ctx.empty())
        a.fields.push_back({"log_context", std::move(ctx)});
      out.push_back(std::move(a));
    } else if (!high && sec.unexplained_open) {
      sec.unexplained_open = false;
      ++counters_.security_resolved;
      auto a = alert_message(
        publish::alert_security, d.window_end, d.host, sec.unexplained_id, d.vm,
        d.vm_uuid, "unexplained_load", "resolved", "critical");
      a.fields.insert(a.fields.end(), {
        {"metric", d.metric},
        {"value", d.abs_diff},
        {"baseline", opts_.unexplained_cpu_pct},
        {"message",
         fmt::format("the guest's processes explain the "
                     "hypervisor's CPU on {} again",
                     d.vm)},
        {"window_start", d.window_start},
        {"window_end", d.window_end}
      });
      out.push_back(std::move(a));
    }
  }
}

void correlator::on_silence(const silence& s,
                            std::vector<correlator_message>& out) {
  auto signal = s.guest_missing ? "guest_silent" : "hypervisor_silent";
  correlator_message m;
  m.topic = publish::delta_topic(s.vm);
  m.time = s.window_end;
  m.sourcetype = "parallax:delta";
  m.host = s.host;
  m.fields = {{"vm", s.vm},
              {"vm_uuid", s.vm_uuid},
              {"metric", std::string{signal}},
              {"signal", std::string{signal}},
              {"window_start", s.window_start},
              {"window_end", s.window_end},
              {"host", s.host}};
  out.push_back(std::move(m));
  auto& sec = entry(security_, s.vm_uuid);
  if (sec.silent_guest != s.guest_missing)
    sec.silent_run = 0;
  sec.silent_guest = s.guest_missing;
  ++sec.silent_run;
  if (sec.silent_open || sec.silent_run < 2)
    return;
  sec.silent_open = true;
  sec.silent_id = alert_id(s.vm_uuid, signal, "", s.window_start);
  ++counters_.drift_opened;
  auto a = alert_message(
    publish::alert_drift, s.window_end, s.host, sec.silent_id, s.vm, s.vm_uuid,
    signal, "open", "warning");
  a.fields.insert(a.fields.end(), {
    {"metric", std::string{signal}},
    {"message",
     fmt::format("{} on {} sent nothing for {} windows",
                 s.guest_missing ? "the guest agent"
                                 : "the hypervisor",
                 s.vm, sec.silent_run)},
    {"window_start", s.window_start - opts_.join.window},
    {"window_end", s.window_end}
  });
  out.push_back(std::move(a));
}

void correlator::advance(std::vector<correlator_message>& out,
                         const message_emitter& emit) {
  advance_windows(out, emit);
  while (!drift_rounds_.empty())
    advance_drift(out, emit);
}

bool correlator::advance_windows(std::vector<correlator_message>& out,
                                 const message_emitter& emit) {
  auto emitted = out.size();
  auto flush = [&] { emit_since(out, emitted, emit); };
  std::move(pending_.begin(), pending_.end(), std::back_inserter(out));
  pending_.clear();
  flush();
  deltas_.clear();
  silences_.clear();
  join_.advance(deltas_, silences_);
  // Silence ends with the first complete window of that VM.
  for (const auto& d : deltas_) {
    if (d.correction)
      continue;
    auto& sec = entry(security_, d.vm_uuid);
    sec.silent_run = 0;
    if (sec.silent_open) {
      sec.silent_open = false;
      ++counters_.drift_resolved;
      auto signal = sec.silent_guest ? "guest_silent" : "hypervisor_silent";
      auto a = alert_message(
        publish::alert_drift, d.window_end, d.host, sec.silent_id, d.vm,
        d.vm_uuid, signal, "resolved", "warning");
      a.fields.insert(a.fields.end(), {
        {"metric", std::string{signal}},
        {"message", fmt::format("both sides of {} report again",
                                d.vm)},
        {"window_start", d.window_start},
        {"window_end", d.window_end}
      });
      out.push_back(std::move(a));
    }
  }
  // The deltas go out first, each published from a view of itself; their
  // owned messages (for the store) are made once the last is out: a
  // host's poll closes hundreds of windows at once, and its last delta
  // should not wait for the copies of all the others.
  flush();
  if (emit)
    for (const auto& d : deltas_)
      emit_delta(d, emit);
  for (const auto& d : deltas_)
    delta_message(d, out);
  emitted = out.size();
  for (const auto& s : silences_)
    on_silence(s, out);
  resolve_gone_processes(out);
  flush();
  for (auto& c : resolver_.take_changes()) {
    correlator_message m;
    m.topic = std::string{publish::identity_topic};
    m.time = c.time;
    m.sourcetype = "parallax:identity";
    m.host = resolver_.host_at(c.vm_uuid, c.time);
    m.fields = {{"vm", c.vm},
                {"vm_uuid", c.vm_uuid},
                {"change", std::string{to_string(c.kind)}},
                {"keys", c.keys},
                {"confidence", c.confidence},
                {"old", c.old_value},
                {"new", c.new_value}};
    if (!c.source_id.empty())
      m.fields.push_back({"source_id", c.source_id});
    out.push_back(std::move(m));
  }
  flush();
  // Corrections are not drift work: baselines see each window once.
  std::erase_if(deltas_, [](const delta& d) { return d.correction; });
  if (deltas_.empty())
    return false;
  drift_rounds_.push_back(std::move(deltas_));
  deltas_ = {};
  return true;
}

void correlator::advance_drift(std::vector<correlator_message>& out,
                               const message_emitter& emit) {
  if (drift_rounds_.empty())
    return;
  auto round = std::move(drift_rounds_.front());
  drift_rounds_.pop_front();
  auto emitted = out.size();
  for (const auto& d : round) {
    on_delta(d, out);
    emit_since(out, emitted, emit);
  }
}

// -- persistence -------------------------------------------------------------

namespace {

constexpr char state_magic[] = "PLXC";
// Version 2 adds the open alerts that no baseline holds (process, leak,
// unexplained load, clock skew, silence); version 1 files still load.
constexpr std::uint32_t state_version = 2;

void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<char>(v >> (8 * i)));
}

void put_blob(std::string& out, std::string_view s) {
  put_u64(out, s.size());
  out.append(s);
}

struct reader {
  std::string_view data;
  bool ok = true;
  std::uint64_t u64() {
    if (data.size() < 8) {
      ok = false;
      return 0;
    }
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
      v |= static_cast<std::uint64_t>(static_cast<unsigned char>(data[i]))
           << (8 * i);
    data.remove_prefix(8);
    return v;
  }
  std::int64_t i64() {
    return static_cast<std::int64_t>(u64());
  }
  double f64() {
    return std::bit_cast<double>(u64());
  }
  std::string str() {
    return std::string{blob()};
  }
  std::string_view blob() {
    auto n = u64();
    if (!ok || n > data.size()) {
      ok = false;
      return {};
    }
    auto s = data.substr(0, n);
    data.remove_prefix(n);
    return s;
  }
};

} // namespace

std::string correlator::save() const {
  std::string out{state_magic, 4};
  put_u64(out, state_version);
  put_blob(out, resolver_.save());
  // Stored flat, as "vm_uuid|series".
  std::uint64_t nbaselines = 0;
  for (const auto& [uuid, of_vm] : baselines_)
    nbaselines += of_vm.size();
  put_u64(out, nbaselines);
  for (const auto& [uuid, of_vm] : baselines_)
    for (const auto& [series, b] : of_vm) {
      put_blob(out, uuid + "|" + series);
      put_u64(out, std::bit_cast<std::uint64_t>(b.options().scale_floor));
      put_blob(out, b.save());
    }
  put_u64(out, security_.size());
  for (const auto& [uuid, sec] : security_) {
    put_blob(out, uuid);
    put_u64(out, static_cast<std::uint64_t>(sec.first_guest));
    put_u64(out, sec.learned.size());
    for (const auto& p : sec.learned)
      put_blob(out, p);
  }
  // Version 2: what open alerts (and their runs) need to resolve under the
  // same id after a restart.
  auto i64 = [&](std::int64_t v) { put_u64(out, static_cast<std::uint64_t>(v)); };
  auto f64 = [&](double v) { put_u64(out, std::bit_cast<std::uint64_t>(v)); };
  put_u64(out, security_.size());
  for (const auto& [uuid, sec] : security_) {
    put_blob(out, uuid);
    i64(sec.last_hv);
    put_u64(out, sec.unexplained_run);
    put_u64(out, sec.unexplained_open);
    put_blob(out, sec.unexplained_id);
    put_u64(out, sec.skew_run);
    put_u64(out, sec.skew_ok_run);
    f64(sec.offset_ewma);
    put_u64(out, sec.offset_known);
    put_u64(out, sec.skew_open);
    put_blob(out, sec.skew_id);
    i64(sec.skew);
    put_u64(out, sec.silent_run);
    put_u64(out, sec.silent_open);
    put_u64(out, sec.silent_guest);
    put_blob(out, sec.silent_id);
  }
  put_u64(out, process_alerts_.size());
  for (const auto& [key, pa] : process_alerts_) {
    put_blob(out, key);
    for (const auto* f : {&pa.id, &pa.vm, &pa.vm_uuid, &pa.host, &pa.kind,
                          &pa.process, &pa.user})
      put_blob(out, *f);
    i64(pa.pid);
    i64(pa.first_seen);
    i64(pa.last_seen);
  }
  // Leak tracks with an open alert, with their samples (the others start
  // over: they had raised nothing yet).
  std::uint64_t open_tracks = 0;
  for (const auto& [uuid, sec] : security_)
    for (const auto& tr : sec.tracks)
      open_tracks += tr.open;
  put_u64(out, open_tracks);
  for (const auto& [uuid, sec] : security_)
    for (const auto& tr : sec.tracks) {
      if (!tr.open)
        continue;
      put_blob(out, key_text(uuid, tr.pid, tr.start));
      for (const auto* f :
           {&tr.vm, &tr.vm_uuid, &tr.process, &tr.user, &tr.id})
        put_blob(out, *f);
      i64(tr.pid);
      i64(tr.last_seen);
      put_u64(out, tr.samples.size());
      for (const auto& [t, v] : tr.samples) {
        i64(t);
        f64(v);
      }
    }
  return out;
}

result<correlator> correlator::load(std::string_view data,
                                    correlator_options opts) {
  if (data.size() < 4 || data.substr(0, 4) != std::string_view{state_magic, 4})
    return error{ec::invalid_value, "correlator state: not a state file"};
  reader r{data.substr(4)};
  auto version = r.u64();
  if (r.ok && version != state_version && version != 1)
    return error{ec::unknown_version,
                 fmt::format("correlator state: version {} (this build reads "
                             "{})",
                             version, state_version)};
  correlator c{opts};
  auto ident = r.blob();
  if (!r.ok)
    return error{ec::truncated, "correlator state: truncated"};
  auto res = identity_resolver::load(ident);
  if (!res)
    return res.error();
  c.resolver_ = std::move(*res);
  auto n = r.u64();
  for (std::uint64_t i = 0; r.ok && i < n; ++i) {
    auto key = r.blob();
    auto bopts = opts.baseline;
    bopts.scale_floor = std::bit_cast<double>(r.u64());
    auto blob = r.blob();
    if (!r.ok)
      break;
    auto b = baseline::load(blob, bopts);
    if (!b)
      return b.error();
    auto bar = key.find('|');
    if (bar == std::string_view::npos)
      return error{ec::invalid_value,
                   fmt::format("correlator state: baseline key \"{}\" has "
                               "no '|'", key)};
    entry(c.baselines_, key.substr(0, bar))
      .emplace(std::string{key.substr(bar + 1)}, std::move(*b));
  }
  auto m = r.u64();
  for (std::uint64_t i = 0; r.ok && i < m; ++i) {
    auto uuid = std::string{r.blob()};
    auto& sec = entry(c.security_, uuid);
    sec.first_guest = static_cast<time_ns>(r.u64());
    auto k = r.u64();
    for (std::uint64_t j = 0; r.ok && j < k; ++j)
      sec.learned.insert(std::string{r.blob()});
  }
  if (version >= 2) {
    auto nsec = r.u64();
    for (std::uint64_t i = 0; r.ok && i < nsec; ++i) {
      auto& sec = entry(c.security_, r.str());
      sec.last_hv = r.i64();
      sec.unexplained_run = static_cast<std::uint32_t>(r.u64());
      sec.unexplained_open = r.u64() != 0;
      sec.unexplained_id = r.str();
      sec.skew_run = static_cast<std::uint32_t>(r.u64());
      sec.skew_ok_run = static_cast<std::uint32_t>(r.u64());
      sec.offset_ewma = r.f64();
      sec.offset_known = r.u64() != 0;
      sec.skew_open = r.u64() != 0;
      sec.skew_id = r.str();
      sec.skew = r.i64();
      sec.silent_run = static_cast<std::uint32_t>(r.u64());
      sec.silent_open = r.u64() != 0;
      sec.silent_guest = r.u64() != 0;
      sec.silent_id = r.str();
    }
    auto nproc = r.u64();
    for (std::uint64_t i = 0; r.ok && i < nproc; ++i) {
      auto key = r.str();
      process_alert pa;
      for (auto* f : {&pa.id, &pa.vm, &pa.vm_uuid, &pa.host, &pa.kind,
                      &pa.process, &pa.user})
        *f = r.str();
      pa.pid = r.i64();
      pa.first_seen = r.i64();
      pa.last_seen = r.i64();
      if (r.ok)
        c.process_alerts_.emplace(std::move(key), std::move(pa));
    }
    auto ntracks = r.u64();
    for (std::uint64_t i = 0; r.ok && i < ntracks; ++i) {
      auto key = r.str();
      rss_track tr;
      for (auto* f : {&tr.vm, &tr.vm_uuid, &tr.process, &tr.user, &tr.id})
        *f = r.str();
      tr.pid = r.i64();
      tr.last_seen = r.i64();
      auto k = r.u64();
      for (std::uint64_t j = 0; r.ok && j < k; ++j) {
        auto t = r.i64();
        tr.samples.emplace_back(t, r.f64());
      }
      tr.open = true;
      // "vm_uuid|pid|start" (key_text)
      auto bar2 = key.rfind('|');
      auto bar1 = bar2 == std::string::npos || bar2 == 0
                    ? std::string::npos
                    : key.rfind('|', bar2 - 1);
      std::int64_t pid = 0;
      if (bar1 == std::string::npos) {
        r.ok = false;
      } else {
        auto num = [&](std::string_view x, std::int64_t& out) {
          auto [p, ec] = std::from_chars(x.data(), x.data() + x.size(), out);
          return ec == std::errc{} && p == x.data() + x.size();
        };
        std::string_view sv{key};
        r.ok = num(sv.substr(bar1 + 1, bar2 - bar1 - 1), pid)
               && num(sv.substr(bar2 + 1), tr.start);
      }
      if (r.ok) {
        auto& sec = entry(c.security_, std::string_view{key}.substr(0, bar1));
        std::pair<std::int64_t, std::int64_t> k{pid, tr.start};
        if (std::find(sec.track_keys.begin(), sec.track_keys.end(), k)
            == sec.track_keys.end()) {
          sec.track_keys.push_back(k);
          sec.tracks.push_back(std::move(tr));
        }
      }
    }
  }
  if (!r.ok)
    return error{ec::truncated, "correlator state: truncated"};
  return c;
}

} // namespace parallax
