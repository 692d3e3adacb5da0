// `parallax demo`: the README's main job. Runs `parallax serve` on its
// embedded defaults (LMDB under ./var), feeds it a simulated fleet in real
// time (plus, when run as root, this machine's own agent) and prints what
// arrives. Everything travels the real way: simulator and agent send wire
// batches to the collector's ZeroMQ endpoint and get acks after the commit.

#include "commands.hpp"

#include "parallax/pipeline/agent.hpp"
#include "parallax/pipeline/logging.hpp"
#include "parallax/pipeline/simulator.hpp"
#include "parallax/pipeline/zmq.hpp"

#include <atomic>
#include <chrono>
#include <map>
#include <thread>

#include <algorithm>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <unistd.h>
#include <zmq.h>

namespace parallax::tools {

namespace {

// The sourcetypes Parallax's own sources produce (schemas/sourcetypes.md).
constexpr std::string_view known_sourcetypes[] = {
  "hv:libvirt:vm", "hv:libvirt:nic", "hv:libvirt:disk", "hv:vsphere",
  "hv:collectd",   "os:process",     "os:system",       "os:identity",
  "os:nic",        "os:net",         "os:auth",         "os:syslog",
  "os:cron",
};

std::map<std::string, std::uint64_t> stored_by_sourcetype(
  const storage::store& st) {
  std::map<std::string, std::uint64_t> out;
  auto buckets = st.buckets();
  if (!buckets)
    return out;
  for (const auto& b : *buckets)
    for (auto s : known_sourcetypes)
      if (auto n = st.count(b.id, "sourcetype", s); n && *n > 0)
        out[std::string{s}] += *n;
  return out;
}

std::string thousands(std::uint64_t n) {
  auto digits = std::to_string(n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0)
      out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

} // namespace

int run_demo(const demo_args& args) {
  auto cfg = load(args.cfg, "demo");
  if (!cfg)
    return 2;
  // The simulated fleet's administrators and service owners
  // (docs/simulator.md): without them every admin shell would be an
  // exception.
  for (auto user : {"deploy"})
    if (std::find(cfg->correlator.admin_users.begin(),
                  cfg->correlator.admin_users.end(), user)
        == cfg->correlator.admin_users.end())
      cfg->correlator.admin_users.emplace_back(user);
  cfg->correlator.service_owners.emplace_back(
    "app-*", std::vector<std::string>{"appuser"});
  sim::simulation_options live;
  live.fleet.seed = args.seed;
  live.fleet.vms = args.vms;
  live.fleet.hosts = args.hosts;
  live.fleet.duration = 0; // until stopped
  live.live = true;
  if (args.scenario) {
    auto sc = sim::load_scenario(*args.scenario);
    if (!sc) {
      fmt::print(stderr, "parallax demo: {}\n", sc.error().message);
      return 2;
    }
    live.fleet.injected = std::move(*sc);
  }
  std::atomic<bool> stop{false};
  std::thread simulator, agent, subscriber;
  std::atomic<std::uint64_t> deltas_seen{0};
  zmq::context sub_ctx;
  std::map<std::string, std::uint64_t> last;
  auto last_print = std::chrono::steady_clock::now();
  const storage::store* store = nullptr;
  bool run_agent = !args.no_agent && ::geteuid() == 0;
  serve_hooks hooks;
  hooks.started = [&](const serve_context& ctx) {
    store = &ctx.store;
    fmt::print("parallax demo: {} simulated VMs on {} hosts (seed {}{}){}\n"
               "  ingest endpoint {}{}\n"
               "  stop with Ctrl-C; data stays in {}\n",
               args.vms, args.hosts, args.seed,
               args.scenario ? ", scenario " + *args.scenario : "",
               run_agent ? ", plus this machine's own agent"
                         : (args.no_agent ? ""
                                          : " (run as root to add this "
                                            "machine's own agent)"),
               ctx.collector_endpoint,
               ctx.http_port > 0
                 ? fmt::format(", HTTP on port {} (POST /collectd)",
                               ctx.http_port)
                 : "",
               cfg->data_dir.string());
    if (ctx.http_port > 0) {
      // The web view: the VM list, each VM's page, search (docs/web.md).
      auto host = cfg->http.listen.substr(0, cfg->http.listen.rfind(':'));
      if (host.empty() || host == "0.0.0.0")
        host = "127.0.0.1";
      fmt::print("  web view: http://{}:{}/{}\n", host, ctx.http_port,
                 cfg->http.token.empty() ? "" : "?token=<parallax.http.token>");
    }
    std::fflush(stdout);
    // What an SRE's `parallax tail` shows: alerts and identity changes as
    // they happen (deltas are counted in the status line; `parallax tail`
    // on the publisher shows them all).
    if (!ctx.publisher_endpoint.empty()) {
      fmt::print("  live deltas and alerts: parallax tail --endpoint {}\n",
                 ctx.publisher_endpoint);
      subscriber = std::thread{[&, ep = ctx.publisher_endpoint] {
        zmq::socket sub{sub_ctx, ZMQ_SUB};
        (void)sub.set_int(ZMQ_RCVHWM, 100'000);
        if (sub.connect(ep))
          return;
        zmq_setsockopt(sub.handle(), ZMQ_SUBSCRIBE, "", 0);
        zmq::socket* socks[] = {&sub};
        const bool want[] = {true};
        bool color = ::isatty(STDOUT_FILENO) != 0;
        while (!stop.load()) {
          auto ready = zmq::poll_in(socks, want, std::chrono::milliseconds{200});
          if (!ready || !(*ready)[0])
            continue;
          while (auto parts = sub.recv(true)) {
            if (parts->size() != 2)
              continue;
            auto body = (*parts)[1].view();
            auto m = publish::decode(body);
            if (!m)
              continue;
            if (m->topic.starts_with(publish::delta_prefix)) {
              deltas_seen.fetch_add(1);
              continue;
            }
            fmt::print("{}\n", published_line(*m, color));
            std::fflush(stdout);
          }
        }
      }};
    }
    auto endpoint = ctx.collector_endpoint;
    simulator = std::thread{[&, endpoint] {
      auto sink = sim::open_endpoint_sink(endpoint, std::chrono::seconds{5});
      if (!sink) {
        log::error("demo", "simulator: {}", sink.error().message);
        return;
      }
      auto r = sim::run_simulation(live, stop, **sink);
      if (!r)
        log::error("demo", "simulator: {}", r.error().message);
    }};
    if (run_agent)
      agent = std::thread{[&, endpoint] {
        auto acfg = cfg->agent;
        acfg.server = endpoint;
        auto a = guest_agent::open(acfg, cfg->data_dir);
        if (!a) {
          log::error("demo", "agent: {}", a.error().message);
          return;
        }
        auto next = std::chrono::steady_clock::now();
        while (!stop.load()) {
          if (std::chrono::steady_clock::now() >= next) {
            if (auto err = (*a)->collect()) {
              log::error("demo", "agent: {}", err.message);
              return;
            }
            next += acfg.interval;
          }
          (*a)->pump(std::chrono::milliseconds{250});
        }
        (void)(*a)->flush(std::chrono::seconds{2});
      }};
  };
  hooks.tick = [&] {
    auto now = std::chrono::steady_clock::now();
    if (!store || now - last_print < std::chrono::seconds{args.every})
      return true;
    auto secs = std::chrono::duration<double>(now - last_print).count();
    last_print = now;
    auto counts = stored_by_sourcetype(*store);
    std::uint64_t total = 0, fresh = 0;
    std::string parts;
    for (const auto& [st, n] : counts) {
      total += n;
      auto d = n - last[st];
      fresh += d;
      if (d > 0)
        parts += fmt::format("  {} +{}", st, d);
    }
    last = std::move(counts);
    auto d = deltas_seen.exchange(0);
    fmt::print("{:%H:%M:%S}  {} events stored, {:.0f}/s, {} deltas:{}\n",
               fmt::localtime(std::time(nullptr)), thousands(total),
               static_cast<double>(fresh) / secs, d,
               parts.empty() ? (total == 0 ? "  (waiting for the first samples)"
                                         : "  (nothing new)")
                           : parts);
    std::fflush(stdout);
    return true;
  };
  hooks.stopping = [&] {
    stop.store(true);
    if (simulator.joinable())
      simulator.join();
    if (agent.joinable())
      agent.join();
    if (subscriber.joinable())
      subscriber.join();
  };
  auto rc = serve(*cfg, hooks);
  hooks.stopping(); // when serve failed before or after starting
  return rc;
}

} // namespace parallax::tools
