#include "parallax/bench/correlate.hpp"
#include "parallax/bench/stats.hpp"
#include "parallax/bench/stall_probe.hpp"

#include "parallax/actors/ingest_pipeline.hpp"
#include "parallax/bench/generator.hpp"
#include "parallax/pipeline/ingest_client.hpp"
#include "parallax/pipeline/publisher.hpp"
#include "parallax/pipeline/simulator.hpp"
#include "parallax/pipeline/system.hpp"
#include "parallax/pipeline/zmq.hpp"
#include "parallax/schemas/wire.hpp"
#include "parallax/storage/environment.hpp"
#include "parallax/storage/store.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <fmt/format.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <poll.h>
#include <unistd.h>
#include <zmq.h>

namespace parallax::bench {

namespace fs = std::filesystem;

namespace {

using clock_type = std::chrono::steady_clock;

struct client_result {
  double seconds = 0;
  unsigned long long events = 0;
  unsigned long long batches = 0;
  sim::schedule_lag behind; ///< when paced
  int paced = 0; ///< sent on a schedule (else as fast as it could)
  int ok = 0;
};

std::string read_endpoint(int fd) {
  char endpoint[256] = {};
  std::size_t len = 0;
  if (!read_all(fd, &len, sizeof len) || len >= sizeof endpoint
      || !read_all(fd, endpoint, len))
    _exit(3);
  return endpoint;
}

// The simulated fleet, historical and as fast as the server takes it.
// The clients stand for remote senders: on a real deployment their CPU is
// not the server's. On this machine they share its cores, so they run at
// a lower priority and the server is not starved by its own load.
void lower_priority() {
  (void)::setpriority(PRIO_PROCESS, 0, 10);
}

// A client is ready to send (its data made): it says how many events it
// will send (0: until told to stop) and waits for the parent's go, which
// carries the rate to send at (the filler's). The time measured is only
// the sending.
double ready_then_wait(int in_fd, int out_fd, std::uint64_t events) {
  double rate = 0;
  write_all(out_fd, &events, sizeof events);
  if (!read_all(in_fd, &rate, sizeof rate))
    _exit(3);
  return rate;
}

[[noreturn]] void fleet_client(const correlate_options& o, int in_fd,
                               int out_fd, time_ns start) {
  lower_priority();
  client_result res;
  auto endpoint = read_endpoint(in_fd);
  {
    sim::simulation_options so;
    so.fleet.seed = 1;
    so.fleet.vms = o.vms;
    so.fleet.hosts = o.hosts;
    so.fleet.start = start;
    so.fleet.duration = static_cast<time_ns>(o.minutes) * 60'000'000'000;
    so.batch_events = o.batch;
    if (!o.burst) {
      so.speed = o.speed;
      so.prerender = true;
    }
    so.ready = [&](std::uint64_t events) {
      ready_then_wait(in_fd, out_fd, events);
    };
    auto sc = sim::load_scenario(fs::path{PARALLAX_SCENARIO_DIR} / "demo.toml");
    if (!sc) {
      std::fprintf(stderr, "bench fleet: %s\n", sc.error().message.c_str());
      _exit(4);
    }
    so.fleet.injected = std::move(*sc);
    auto sink = sim::open_endpoint_sink(endpoint);
    if (!sink) {
      std::fprintf(stderr, "bench fleet: %s\n", sink.error().message.c_str());
      _exit(4);
    }
    std::atomic<bool> stop{false};
    auto t0 = clock_type::now();
    auto st = sim::run_simulation(so, stop, **sink);
    if (!st) {
      std::fprintf(stderr, "bench fleet: %s\n", st.error().message.c_str());
      _exit(5);
    }
    res.seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
    res.events = st->events;
    res.batches = st->batches;
    res.behind = st->behind;
    res.paced = !o.burst;
    res.ok = 1;
  }
  write_all(out_fd, &res, sizeof res);
  _exit(0);
}

// Whether the parent wrote to (or closed) `fd`: the fleet is done.
bool told_to_stop(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

// Other traffic: mixed events of no VM from a few sources, in turn, at the
// rate the parent gives until it says the fleet is done. One source's
// window of unacknowledged batches would bound the rate by the commit
// latency; a real server hears from many senders at once.
[[noreturn]] void filler_client(int in_fd, int out_fd, time_ns start) {
  lower_priority();
  client_result res;
  auto endpoint = read_endpoint(in_fd);
  {
    zmq::context ctx;
    ingest_client_options copts;
    copts.endpoint = endpoint;
    constexpr std::size_t sources = 4;
    std::vector<std::string> source_ids;
    std::vector<std::unique_ptr<ingest_client>> clients;
    for (std::size_t i = 0; i < sources; ++i) {
      auto c = ingest_client::connect(ctx, copts);
      if (!c)
        _exit(4);
      clients.push_back(std::move(*c));
      source_ids.push_back(fmt::format("bench-filler-{}", i));
    }
    generator_options g;
    g.seed = 11;
    g.step = 1'000;
    g.start = start;
    mixed_generator gen{g};
    // A pool of batches made and encoded beforehand and sent over and
    // over, each under a new envelope (source and sequence number): the
    // sender's cost is the sending, as a remote one's would be.
    constexpr std::size_t n = 1000, pool_batches = 256;
    std::vector<std::string> pool(pool_batches);
    std::vector<event> events;
    for (auto& encoded : pool) {
      events.clear();
      for (std::size_t i = 0; i < n; ++i) {
        events.push_back(gen.next());
        // Not the fleet's: the correlator attributes nothing of it.
        events.back().sourcetype.insert(0, "filler:");
        events.back().host.insert(0, "filler-");
      }
      wire::encode_events(events, encoded);
    }
    auto rate = ready_then_wait(in_fd, out_fd, 0);
    res.paced = rate > 0;
    auto t0 = clock_type::now();
    std::size_t sent = 0;
    auto due = [&] {
      return t0 + std::chrono::duration_cast<clock_type::duration>(
                    std::chrono::duration<double>(static_cast<double>(sent)
                                                  / rate));
    };
    for (std::uint64_t seq = 1;; ++seq) {
      while (rate > 0 && due() > clock_type::now()
             && !told_to_stop(in_fd))
        std::this_thread::sleep_until(
          std::min(due(), clock_type::now() + std::chrono::milliseconds{50}));
      if (told_to_stop(in_fd))
        break;
      if (rate > 0)
        res.behind.add(clock_type::now() - due());
      ++res.batches;
      auto source = (seq - 1) % sources;
      auto sequence = (seq - 1) / sources + 1;
      const auto& encoded = pool[(seq - 1) % pool_batches];
      std::string frame; // the client keeps it until acknowledged
      frame.reserve(64 + encoded.size());
      wire::encode_head(source_ids[source], sequence, n, frame);
      frame.append(encoded);
      if (clients[source]->send(sequence, std::move(frame)))
        _exit(5);
      sent += n;
    }
    for (auto& c : clients)
      if (c->drain(std::chrono::minutes{5}))
        _exit(6);
    res.seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
    res.events = sent;
    res.ok = 1;
  }
  write_all(out_fd, &res, sizeof res);
  _exit(0);
}

struct latencies {
  std::vector<double> delta_ms, drift_ms, security_ms, identity_ms;
  /// Deltas later than the target: from arrival to publication.
  std::vector<stall> late_deltas;
  /// For those, where the time went: from the collector to the parser
  /// passing the batch on, from there to the correlator beginning on it,
  /// and in the correlator until the delta left.
  std::vector<double> late_parser_ms, late_queue_ms, late_correlator_ms;
};

// One run's headline figures, for the summary over several.
struct run_figures {
  double events_per_s = 0;
  double delta_p99_ms = 0;
  double drift_p99_ms = 0;
  double stall_max_ms = 0; ///< the machine's longest stall (stall_probe)
  double steal_pct = -1;   ///< the hypervisor's steal time (stall_probe)
  double loop_us = 0;      ///< the probes' fixed loop, median (stall_probe)
  double compute_us = 0;   ///< their compute loop, median (stall_probe)
  double fleet_behind_ms = -1;  ///< the fleet's most behind its schedule
  double filler_behind_ms = -1; ///< the filler's (-1: no schedule)
};

int run_once(const correlate_options& o, run_figures& figures);

} // namespace

int run_correlate(const correlate_options& o) {
  if (o.vms < 12 || o.minutes < 5) {
    std::fprintf(stderr, "parallax bench correlate: --vms must be at least "
                         "12 and --minutes at least 5 (the demo scenario "
                         "names 12 VMs and starts at 5 minutes)\n");
    return 2;
  }
  std::vector<run_figures> runs;
  for (std::size_t i = 0; i < std::max<std::size_t>(1, o.runs); ++i) {
    run_figures f;
    if (auto rc = run_once(o, f); rc != 0)
      return rc;
    runs.push_back(f);
  }
  if (runs.size() < 2)
    return 0;
  // The machine is shared: the median run, and how many met the targets.
  auto median = [&](double run_figures::*field) {
    std::vector<double> v;
    for (const auto& r : runs)
      v.push_back(r.*field);
    return percentile(v, 0.5);
  };
  std::size_t met = 0;
  for (const auto& r : runs)
    met += r.events_per_s >= 250'000 && r.delta_p99_ms <= 5
           && r.drift_p99_ms <= 10;
  if (o.json) {
    fmt::print("{{\"bench\":\"correlate-summary\",\"runs\":{},"
               "\"events_per_s_median\":{:.0f},\"delta_p99_ms_median\":{:.3f},"
               "\"drift_p99_ms_median\":{:.3f},\"runs_meeting_targets\":{}}}\n",
               runs.size(), median(&run_figures::events_per_s),
               median(&run_figures::delta_p99_ms),
               median(&run_figures::drift_p99_ms), met);
    return 0;
  }
  auto schedule = [](const char* who, double ms) {
    return ms < 0 ? fmt::format("{} unpaced", who)
                  : fmt::format("{} at most {:.0f} ms behind", who, ms);
  };
  for (std::size_t i = 0; i < runs.size(); ++i)
    fmt::print("run {}: ingest {:.0f} events/s, delta p99 {:.3f} ms, drift p99 "
               "{:.3f} ms; {}, {}; machine: steal {}, longest stall {:.1f} "
               "ms, fixed loops {}\n",
               i + 1, runs[i].events_per_s, runs[i].delta_p99_ms,
               runs[i].drift_p99_ms, schedule("fleet", runs[i].fleet_behind_ms),
               schedule("filler", runs[i].filler_behind_ms),
               runs[i].steal_pct >= 0
                 ? fmt::format("{:.1f} %", runs[i].steal_pct)
                 : std::string{"unknown"},
               runs[i].stall_max_ms,
               runs[i].loop_us > 0
                 ? fmt::format("{:.0f} us (memory) and {:.0f} us (compute)",
                               runs[i].loop_us, runs[i].compute_us)
                 : std::string{"unknown"});
  fmt::print("over {} runs: ingest median {:.0f} events/s, delta p99 median "
             "{:.3f} ms, drift p99 median {:.3f} ms; {} of {} runs met the "
             "targets (ingest >= 250,000 events/s, p99 <= 5 ms and "
             "<= 10 ms)\n",
             runs.size(), median(&run_figures::events_per_s),
             median(&run_figures::delta_p99_ms),
             median(&run_figures::drift_p99_ms), met, runs.size());
  return 0;
}

namespace {

int run_once(const correlate_options& o, run_figures& figures) {
  std::random_device rd;
  auto dir = fs::temp_directory_path()
             / fmt::format("parallax-bench-correlate-{}-{}", ::getpid(), rd());
  std::error_code fec;
  fs::create_directories(dir / "store", fec);
  // Simulated time ends a minute before now: everything is in the past.
  auto start = now_ns() - static_cast<time_ns>(o.minutes + 1) * 60'000'000'000;
  int to_fleet[2], from_fleet[2], to_filler[2], from_filler[2];
  if (::pipe(to_fleet) || ::pipe(from_fleet) || ::pipe(to_filler)
      || ::pipe(from_filler)) {
    std::perror("pipe");
    return 1;
  }
  // Each process keeps only its own pipe ends, so a client that dies is
  // seen as an end of file instead of a wait forever.
  auto fleet_pid = ::fork();
  if (fleet_pid == 0) {
    for (int fd : {to_fleet[1], from_fleet[0], to_filler[0], to_filler[1],
                   from_filler[0], from_filler[1]})
      ::close(fd);
    fleet_client(o, to_fleet[0], from_fleet[1], start);
  }
  auto filler_pid = ::fork();
  if (filler_pid == 0) {
    for (int fd : {to_fleet[0], to_fleet[1], from_fleet[0], from_fleet[1],
                   to_filler[1], from_filler[0]})
      ::close(fd);
    filler_client(to_filler[0], from_filler[1], start);
  }
  for (int fd : {to_fleet[0], from_fleet[1], to_filler[0], from_filler[1]})
    ::close(fd);
  if (fleet_pid < 0 || filler_pid < 0) {
    std::perror("fork");
    return 1;
  }
  client_result fleet_res, filler_res;
  double fleet_rate = 0, filler_rate = 0; // asked
  latencies lat;
  std::uint64_t published = 0, dropped = 0, received = 0;
  double wall = 0;
  stall_figures stalls;
  int rc = 0;
  {
    storage::environment_options eo;
    auto env = storage::environment::open(dir / "store", eo);
    auto store = env ? storage::store::open(*env)
                     : result<storage::store>{env.error()};
    if (!env || !store) {
      std::fprintf(stderr, "parallax bench correlate: %s\n",
                   (env ? store.error() : env.error()).message.c_str());
      ::kill(fleet_pid, SIGKILL);
      ::kill(filler_pid, SIGKILL);
      return 1;
    }
    metrics_registry metrics;
    zmq::context zctx;
    publisher_config pc;
    pc.endpoint = "tcp://127.0.0.1:0";
    pc.high_water_mark = 100'000;
    auto pub = publisher::start(zctx, pc, &metrics);
    if (!pub) {
      std::fprintf(stderr, "%s\n", pub.error().message.c_str());
      return 1;
    }
    // A subscriber on every topic, reading as fast as it can.
    std::atomic<bool> sub_stop{false};
    std::atomic<std::uint64_t> sub_count{0};
    std::thread sub_thread{[&] {
      zmq::socket sub{zctx, ZMQ_SUB};
      (void)sub.set_int(ZMQ_RCVHWM, 0);
      (void)sub.connect((*pub)->endpoint());
      zmq_setsockopt(sub.handle(), ZMQ_SUBSCRIBE, "", 0);
      zmq::socket* socks[] = {&sub};
      const bool want[] = {true};
      while (!sub_stop.load()) {
        auto ready = zmq::poll_in(socks, want, std::chrono::milliseconds{100});
        if (!ready || !(*ready)[0])
          continue;
        while (auto parts = sub.recv(true))
          sub_count.fetch_add(1);
      }
    }};
    std::this_thread::sleep_for(std::chrono::milliseconds{200});
    {
      caf::actor_system_config sys_cfg;
      configure_actor_system(sys_cfg, config::defaults());
      caf::actor_system sys{sys_cfg};
      ingest_pipeline_config pcfg;
      pcfg.collector.endpoint = "tcp://127.0.0.1:0";
      pcfg.store = &*store;
      pcfg.env = &*env;
      pcfg.zmq = &zctx;
      pcfg.metrics = &metrics;
      correlator_config cc;
      cc.nice = o.correlator_nice;
      cc.rt_priority = o.correlator_rt_priority;
      cc.drift_defer = std::chrono::microseconds{
        static_cast<std::int64_t>(o.drift_defer_ms * 1000)};
      cc.options.admin_users = {"root", "deploy"};
      cc.options.service_owners = {{"app-*", {"appuser"}}};
      auto* p = pub->get();
      cc.publish = [p, &lat](const message_view& m, const batch_times& t) {
        p->publish_view(m.topic, m.time, m.fields, m.names_checked);
        auto now = now_ns();
        auto ms = [](time_ns from, time_ns to) {
          return static_cast<double>(to - from) / 1e6;
        };
        auto total = ms(t.received, now);
        if (m.sourcetype == "parallax:delta") {
          lat.delta_ms.push_back(total);
          if (total > 5) {
            lat.late_deltas.push_back({t.received, now});
            lat.late_parser_ms.push_back(ms(t.received, t.passed_on));
            lat.late_queue_ms.push_back(ms(t.passed_on, t.taken));
            lat.late_correlator_ms.push_back(ms(t.taken, now));
          }
        }
        else if (m.topic == "alert.drift")
          lat.drift_ms.push_back(total);
        else if (m.topic == "alert.security")
          lat.security_ms.push_back(total);
        else
          lat.identity_ms.push_back(total);
      };
      pcfg.correlator = std::move(cc);
      auto pipeline = ingest_pipeline::start(sys, std::move(pcfg));
      if (!pipeline) {
        std::fprintf(stderr, "%s\n", pipeline.error().message.c_str());
        ::kill(fleet_pid, SIGKILL);
        ::kill(filler_pid, SIGKILL);
        rc = 1;
      } else {
        auto ep = (*pipeline)->endpoint();
        auto len = ep.size();
        for (int fd : {to_fleet[1], to_filler[1]}) {
          write_all(fd, &len, sizeof len);
          write_all(fd, ep.data(), len);
        }
        // Both have made their data: go, the filler making up the rest of
        // the rate the fleet's replay sends at.
        std::uint64_t fleet_events = 0, none = 0;
        if (!read_all(from_fleet[0], &fleet_events, sizeof fleet_events)
            || !read_all(from_filler[0], &none, sizeof none))
          rc = 1;
        fleet_rate = o.burst ? 0.0
                             : static_cast<double>(fleet_events) * o.speed
                                 / (static_cast<double>(o.minutes) * 60);
        filler_rate = o.rate > 0 ? std::max(1.0, o.rate - fleet_rate) : 0.0;
        stall_probe probe;
        auto t0 = clock_type::now();
        write_all(to_fleet[1], &filler_rate, sizeof filler_rate);
        write_all(to_filler[1], &filler_rate, sizeof filler_rate);
        read_all(from_fleet[0], &fleet_res, sizeof fleet_res);
        char done = 1;
        write_all(to_filler[1], &done, 1);
        read_all(from_filler[0], &filler_res, sizeof filler_res);
        wall = std::chrono::duration<double>(clock_type::now() - t0).count();
        stalls = probe.stop();
        int status = 0;
        ::waitpid(fleet_pid, &status, 0);
        ::waitpid(filler_pid, &status, 0);
        // Let the last messages reach the subscriber.
        std::this_thread::sleep_for(std::chrono::milliseconds{300});
        (*pipeline)->stop();
      }
    }
    published = (*pub)->published();
    dropped = (*pub)->dropped();
    sub_stop.store(true);
    sub_thread.join();
    received = sub_count.load();
  }
  fs::remove_all(dir, fec);
  if (rc != 0)
    return rc;
  if (!fleet_res.ok || !filler_res.ok) {
    std::fprintf(stderr, "parallax bench correlate: a client failed\n");
    return 1;
  }
  auto events = fleet_res.events + filler_res.events;
  auto rate = static_cast<double>(events) / wall;
  figures.events_per_s = rate;
  figures.delta_p99_ms = percentile(lat.delta_ms, 0.99);
  figures.drift_p99_ms = percentile(lat.drift_ms, 0.99);
  figures.stall_max_ms = stalls.max_ms;
  figures.steal_pct = stalls.steal_pct;
  figures.loop_us = percentile(stalls.loop_us, 0.5);
  figures.compute_us = percentile(stalls.compute_us, 0.5);
  if (fleet_res.paced)
    figures.fleet_behind_ms = fleet_res.behind.max_ms;
  if (filler_res.paced)
    figures.filler_behind_ms = filler_res.behind.max_ms;
  // JSON: null with no late deltas to break down.
  auto late_median = [](const std::vector<double>& v) {
    return v.empty() ? std::string{"null"}
                     : fmt::format("{:.3f}", percentile(v, 0.5));
  };
  // JSON: null for a client with no schedule.
  auto json_behind = [](const client_result& r, bool max) {
    if (!r.paced)
      return std::string{"null"};
    return max ? fmt::format("{:.3f}", r.behind.max_ms)
               : fmt::format("{}", r.behind.over_5ms);
  };
  auto late_in_stall = overlapping(stalls.stalls, lat.late_deltas);
  if (o.json) {
    fmt::print("{{\"bench\":\"correlate\",\"vms\":{},\"events\":{},"
               "\"fleet_events\":{},\"seconds\":{:.3f},\"events_per_s\":{:.0f},"
               "\"deltas\":{},\"delta_p50_ms\":{:.3f},\"delta_p99_ms\":{:.3f},"
               "\"delta_max_ms\":{:.3f},\"drift_alerts\":{},"
               "\"drift_p50_ms\":{:.3f},\"drift_p99_ms\":{:.3f},"
               "\"security_alerts\":{},\"security_p99_ms\":{:.3f},"
               "\"published\":{},\"dropped\":{},\"received\":{},"
               "\"mode\":\"{}\",\"speed\":{},\"offered_per_s\":{:.0f},"
               "\"correlator_nice\":{},\"correlator_rt_priority\":{},"
               "\"drift_defer_ms\":{},\"steal_pct\":{:.2f},"
               "\"stall_probe_real_time\":{},"
               "\"stalls\":{},\"stall_max_ms\":{:.3f},"
               "\"stall_total_ms\":{:.3f},\"late_deltas\":{},"
               "\"late_deltas_in_stall\":{},\"loop_us_p50\":{:.1f},"
               "\"loop_us_p90\":{:.1f},\"loop_us_min\":{:.1f},"
               "\"compute_us_p50\":{:.1f},\"compute_us_p90\":{:.1f},"
               "\"compute_us_min\":{:.1f},\"late_parser_ms_p50\":{},"
               "\"late_queue_ms_p50\":{},"
               "\"late_correlator_ms_p50\":{},"
               "\"fleet_batches\":{},\"fleet_behind_5ms\":{},"
               "\"fleet_behind_max_ms\":{},\"filler_batches\":{},"
               "\"filler_behind_5ms\":{},\"filler_behind_max_ms\":{}}}\n",
               o.vms, events, fleet_res.events, wall, rate,
               lat.delta_ms.size(), percentile(lat.delta_ms, 0.5),
               percentile(lat.delta_ms, 0.99), percentile(lat.delta_ms, 1.0),
               lat.drift_ms.size(), percentile(lat.drift_ms, 0.5),
               percentile(lat.drift_ms, 0.99), lat.security_ms.size(),
               percentile(lat.security_ms, 0.99), published, dropped, received,
               o.burst ? "burst" : "paced", o.burst ? 0.0 : o.speed,
               fleet_rate + filler_rate, o.correlator_nice,
               o.correlator_rt_priority, o.drift_defer_ms, stalls.steal_pct,
               stalls.real_time,
               stalls.stalls.size(), stalls.max_ms, stalls.total_ms,
               lat.late_deltas.size(), late_in_stall,
               percentile(stalls.loop_us, 0.5), percentile(stalls.loop_us, 0.9),
               percentile(stalls.loop_us, 0.0),
               percentile(stalls.compute_us, 0.5),
               percentile(stalls.compute_us, 0.9),
               percentile(stalls.compute_us, 0.0),
               late_median(lat.late_parser_ms), late_median(lat.late_queue_ms),
               late_median(lat.late_correlator_ms), fleet_res.batches,
               json_behind(fleet_res, false), json_behind(fleet_res, true),
               filler_res.batches, json_behind(filler_res, false),
               json_behind(filler_res, true));
    return 0;
  }
  fmt::print("parallax bench correlate: {} VMs for {} simulated minutes "
             "({} events) plus {} filler events, through the real endpoint, "
             "every ack after a synced commit\n",
             o.vms, o.minutes, fleet_res.events, filler_res.events);
  if (o.burst)
    fmt::print("  fleet: burst mode, as fast as the server takes it, every "
               "source's 20 simulated seconds at once ({:.0f} events/s)\n",
               static_cast<double>(fleet_res.events) / fleet_res.seconds);
  else
    fmt::print("  fleet: replayed {}x faster than real time, each agent and "
               "poller on its own phase ({:.0f} events/s, as {:.0f} VMs "
               "would send live)\n",
               o.speed,
               static_cast<double>(fleet_res.events) / fleet_res.seconds,
               static_cast<double>(o.vms) * o.speed);
  if (o.correlator_rt_priority > 0)
    fmt::print("  correlator and parser threads at real-time priority {}, "
               "else nice {} "
               "(--correlator-rt-priority, --correlator-nice; a warning "
               "above says when it could not be set)\n",
               o.correlator_rt_priority, o.correlator_nice);
  else
    fmt::print("  correlator and parser threads at nice {} (--correlator-nice; a "
               "warning above says when it could not be set)\n",
               o.correlator_nice);
  fmt::print("  drift work left behind waiting batches for up to {} ms "
             "(--drift-defer-ms; the deltas go first)\n",
             o.drift_defer_ms);
  fmt::print("  filler: {:.0f} events/s (asked: {})\n",
             static_cast<double>(filler_res.events) / filler_res.seconds,
             filler_rate > 0 ? fmt::format("{:.0f}", filler_rate)
                             : std::string{"as fast as possible"});
  auto behind = [](const client_result& r) {
    if (!r.paced)
      return std::string{"unpaced (as fast as it could)"};
    return fmt::format("{} of {} batches more than 5 ms behind (at most {:.1f} "
                       "ms)",
                       r.behind.over_5ms, r.batches, r.behind.max_ms);
  };
  fmt::print("  sent behind schedule: the fleet {}, the filler {} (a client "
             "short of CPU sends in bursts, which queue at the server)\n",
             behind(fleet_res), behind(filler_res));
  fmt::print("  ingest            {:>10.0f} events/s over {:.2f} s, {:.0f} "
             "offered (target: >= 250,000 while correlating)\n",
             rate, wall, fleet_rate + filler_rate);
  auto row = [](const char* what, const std::vector<double>& v,
                const char* target) {
    fmt::print("  {:<17} {:>8} messages   p50 {:7.3f} ms   p99 {:7.3f} ms   "
               "max {:8.3f} ms{}\n",
               what, v.size(), percentile(v, 0.5), percentile(v, 0.99), percentile(v, 1.0), target);
  };
  row("deltas", lat.delta_ms, "   (target p99 <= 5 ms)");
  row("drift alerts", lat.drift_ms, "   (target p99 <= 10 ms)");
  row("security alerts", lat.security_ms, "");
  row("identity changes", lat.identity_ms, "");
  fmt::print("  published {} messages, {} dropped at the high-water mark; "
             "the subscriber received {}\n",
             published, dropped, received);
  fmt::print("  machine: the hypervisor's steal time {}; on each CPU {} "
             "waking every 1 ms was more than 1 ms late {} times (at most "
             "{:.1f} ms, {:.1f} ms in all){}; {} of the {} deltas over 5 ms "
             "waited through such a stall\n",
             stalls.steal_pct >= 0 ? fmt::format("{:.1f} %", stalls.steal_pct)
                                   : std::string{"unknown"},
             stalls.real_time ? "a thread at the top real-time priority"
                              : "a thread in the normal class (no real-time "
                                "class allowed: this counts the server's own "
                                "load too)",
             stalls.stalls.size(), stalls.max_ms, stalls.total_ms,
             stalls.real_time ? ": time nothing else could run there" : "",
             late_in_stall, lat.late_deltas.size());
  if (!stalls.loop_us.empty())
    fmt::print("  machine speed: timed on each CPU once a second, 3,000 "
               "dependent reads of a 1 MiB table took {:.0f} us median "
               "({:.0f} fastest, {:.0f} at the 90th percentile) and 100,000 "
               "dependent multiplications {:.0f} us ({:.0f}, {:.0f}): slower "
               "when others share the caches and memory, or the core\n",
               percentile(stalls.loop_us, 0.5), percentile(stalls.loop_us, 0.0),
               percentile(stalls.loop_us, 0.9),
               percentile(stalls.compute_us, 0.5),
               percentile(stalls.compute_us, 0.0),
               percentile(stalls.compute_us, 0.9));
  if (!lat.late_deltas.empty()) {
    auto stage = [](const std::vector<double>& v) {
      return fmt::format("{:.2f} ms ({:.2f})", percentile(v, 0.5),
                         percentile(v, 0.9));
    };
    fmt::print("  the {} deltas over 5 ms, median (90th percentile): {} from "
               "the collector to the parser passing their batch on, {} "
               "waiting for the correlator, {} in it\n",
               lat.late_deltas.size(), stage(lat.late_parser_ms),
               stage(lat.late_queue_ms), stage(lat.late_correlator_ms));
  }
  fmt::print("  latency: from the collector taking the batch that let a "
             "window close (or raised the alert) to the message leaving "
             "through the PUB socket\n");
  return 0;
}

} // namespace

} // namespace parallax::bench
