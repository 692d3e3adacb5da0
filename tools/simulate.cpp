#include "commands.hpp"

#include "parallax/pipeline/simulator.hpp"

#include <atomic>
#include <csignal>
#include <cstdio>

#include <fmt/format.h>

namespace parallax::tools {

int run_simulate(const simulate_args& args) {
  auto fail_usage = [](const std::string& msg) {
    fmt::print(stderr, "parallax simulate: {}\n", msg);
    return 2;
  };
  if (args.endpoint.empty() == args.out.empty())
    return fail_usage("give exactly one of --endpoint tcp://HOST:PORT and --out FILE");
  if (args.duration && args.events)
    return fail_usage("give --duration or --events, not both");
  sim::simulation_options so;
  so.fleet.seed = args.seed;
  so.fleet.vms = args.vms;
  so.fleet.hosts = args.hosts;
  so.fleet.mixed_mac_notation = !args.canonical_macs;
  so.live = args.live;
  if (args.speed) {
    if (args.live || args.events || args.rate != "max")
      return fail_usage("--speed paces the replay itself: not with --live, "
                        "--events or --rate");
    so.speed = *args.speed;
  }
  so.truth_file = args.truth;
  if (args.vms < 1 || args.hosts < 1)
    return fail_usage("--vms and --hosts must be at least 1");
  // How long: --events N runs until N events; --live alone until Ctrl-C.
  time_ns duration = 3'600'000'000'000; // 1h
  if (args.duration) {
    auto d = sim::parse_duration(*args.duration);
    if (!d || *d < sim::agent_interval)
      return fail_usage(fmt::format("--duration: {}", d ? "at least 10s"
                                                        : d.error().message));
    duration = *d;
  } else if (args.events || args.live) {
    duration = 0;
  }
  so.fleet.duration = duration;
  if (args.events)
    so.max_events = *args.events;
  if (args.rate != "max") {
    double r = 0;
    try {
      r = std::stod(args.rate);
    } catch (...) {
      r = -1;
    }
    if (!(r > 0))
      return fail_usage(fmt::format("--rate: \"{}\" is neither a positive number "
                                    "of events per second nor max",
                                    args.rate));
    so.rate = r;
  }
  if (args.start) {
    auto s = sim::parse_duration(*args.start);
    // --start takes seconds since the epoch (a bare integer) or "now-1h" style.
    if (args.start->starts_with("now-")) {
      auto ago = sim::parse_duration(args.start->substr(4));
      if (!ago)
        return fail_usage(fmt::format("--start: {}", ago.error().message));
      so.fleet.start = now_ns() - *ago;
    } else if (s) {
      so.fleet.start = *s;
    } else {
      return fail_usage(fmt::format("--start: \"{}\": seconds since the epoch or "
                                    "now-DURATION",
                                    *args.start));
    }
  } else if (!args.live) {
    // Historical data lands in the recent past, ending now.
    auto span = duration > 0 ? duration
                             : static_cast<time_ns>(*args.events / (args.vms * 20) + 1)
                                 * sim::agent_interval;
    so.fleet.start = now_ns() - span;
  }
  if (args.scenario) {
    auto sc = sim::load_scenario(*args.scenario);
    if (!sc) {
      fmt::print(stderr, "parallax simulate: scenario: {}\n", sc.error().message);
      return 2;
    }
    so.fleet.injected = std::move(*sc);
  }
  std::unique_ptr<sim::batch_sink> sink;
  if (!args.endpoint.empty()) {
    auto s = sim::open_endpoint_sink(args.endpoint,
                                     std::chrono::seconds{args.timeout});
    if (!s) {
      fmt::print(stderr, "parallax simulate: {}\n", s.error().message);
      return 1;
    }
    sink = std::move(*s);
  } else {
    auto s = sim::open_file_sink(args.out);
    if (!s) {
      fmt::print(stderr, "parallax simulate: {}\n", s.error().message);
      return 1;
    }
    sink = std::move(*s);
  }
  const auto& stop_requested = stop_on_signals();
  auto st = sim::run_simulation(so, stop_requested, *sink);
  if (!st) {
    const auto& e = st.error();
    fmt::print(stderr, "parallax simulate: {}{}\n", e.message,
               args.endpoint.empty() ? ""
                                     : " (is `parallax serve` running on "
                                         + args.endpoint + "?)");
    return e.code == ec::config_bad_value || e.code == ec::usage ? 2 : 1;
  }
  std::string per;
  for (const auto& [stype, n] : st->per_sourcetype)
    per += fmt::format("{}{}={}", per.empty() ? "" : " ", stype, n);
  auto rate = st->seconds > 0 ? static_cast<double>(st->events) / st->seconds : 0.0;
  fmt::print("parallax simulate: {} events in {} batches, {} VMs on {} hosts, "
             "simulated {} .. {}, {:.2f} s ({:.0f} events/s)\n",
             st->events, st->batches, st->vms, st->hosts,
             sim::rfc3339(st->first_time), sim::rfc3339(st->last_time), st->seconds,
             rate);
  fmt::print("parallax simulate: per sourcetype: {}\n", per);
  if (!args.endpoint.empty())
    fmt::print("parallax simulate: {} batches acknowledged, {} rejected\n",
               st->acked, st->rejected);
  if (!args.truth.empty())
    fmt::print("parallax simulate: ground truth in {}\n", args.truth);
  return st->rejected ? 1 : 0;
}

} // namespace parallax::tools
