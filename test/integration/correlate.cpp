// The correlator wired into the real server: `parallax simulate` feeds a
// fleet with injected events through the ingest endpoint; a subscriber on
// the server's PUB socket receives deltas, identity changes and the alerts
// the scenario calls for; afterwards every stored fleet event carries its
// VM, and the deltas and alerts are stored too (searchable).

#include "parallax/pipeline/zmq.hpp"
#include "parallax/schemas/publish.hpp"
#include "parallax/storage/environment.hpp"
#include "parallax/storage/store.hpp"

#include "integration/server_process.hpp"
#include "temp_dir.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include <sched.h>
#include <zmq.h>

using namespace parallax;
using namespace parallax::test;

namespace {

std::string text(const publish::published_message& m, std::string_view name) {
  for (const auto& f : m.fields)
    if (f.name == name)
      if (auto s = std::get_if<std::string>(&f.value))
        return *s;
  return {};
}

std::string view_text(const event_view& e, std::string_view name) {
  if (auto v = e.find(name))
    if (auto s = std::get_if<std::string_view>(v))
      return std::string{*s};
  return {};
}

// The publisher endpoint the server bound, from its log.
std::string publisher_endpoint(const server_process& server) {
  auto log = read_file(server.log_path());
  auto at = log.find("publishing deltas and alerts on ");
  REQUIRE(at != std::string::npos);
  auto endpoint = log.substr(at + 32, log.find(' ', at + 32) - at - 32);
  return endpoint.substr(0, endpoint.find('\n'));
}

// Collects what `endpoint` publishes under `prefix` into `out` until `stop`
// (a SUB socket that never drops: RCVHWM 0).
void subscribe(zmq::context& ctx, const std::string& endpoint,
               std::string_view prefix, const std::atomic<bool>& stop,
               std::vector<publish::published_message>& out) {
  zmq::socket sub{ctx, ZMQ_SUB};
  REQUIRE_FALSE(sub.set_int(ZMQ_RCVHWM, 0));
  REQUIRE_FALSE(sub.connect(endpoint));
  zmq_setsockopt(sub.handle(), ZMQ_SUBSCRIBE, prefix.data(), prefix.size());
  zmq::socket* socks[] = {&sub};
  const bool want[] = {true};
  while (!stop.load()) {
    auto ready = zmq::poll_in(socks, want, std::chrono::milliseconds{50});
    if (!ready || !(*ready)[0])
      continue;
    while (auto parts = sub.recv(true))
      if (parts->size() == 2)
        if (auto m = publish::decode((*parts)[1].view()))
          out.push_back(std::move(*m));
  }
}

// Stored events per sourcetype prefix (`hv`, `os`, `parallax`), and of
// those, how many carry vm and vm_uuid (the server stopped).
struct stored_counts {
  std::map<std::string, std::uint64_t> stored, with_vm;
};

stored_counts count_stored(const server_process& server) {
  storage::environment_options eo;
  eo.read_only = true;
  auto env = storage::environment::open(server.data_dir() / "store", eo);
  REQUIRE(env);
  auto st = storage::store::open(*env);
  REQUIRE(st);
  auto buckets = st->buckets();
  REQUIRE(buckets);
  stored_counts n;
  for (const auto& b : *buckets) {
    auto err = st->scan(b.id, [&](std::uint64_t, const event_view& e) {
      auto kind = std::string{e.sourcetype.substr(0, e.sourcetype.find(':'))};
      ++n.stored[kind];
      if (!view_text(e, "vm").empty() && !view_text(e, "vm_uuid").empty())
        ++n.with_vm[kind];
    });
    REQUIRE_MESSAGE(!err, err.message);
  }
  return n;
}

} // namespace

TEST_CASE("correlate: serve publishes deltas and the scenario's alerts, and "
          "stores events with their VM") {
  temp_dir tmp{"parallax-correlate-"};
  server_process server{tmp.path, free_port(),
                        {"--set", "parallax.correlator.admin-users="
                                  "[\"root\",\"deploy\"]",
                         "--config", (tmp.path / "owners.toml").string()}};
  {
    // The simulated fleet's service owners (docs/simulator.md).
    std::ofstream owners{tmp.path / "owners.toml"};
    owners << "[parallax.correlator.service-owners]\n\"app-*\" = "
              "[\"appuser\"]\n";
  }
  server.start();
  auto pub_endpoint = publisher_endpoint(server);

  // Subscribe before anything is sent.
  zmq::context ctx;
  std::atomic<bool> stop{false};
  std::vector<publish::published_message> got;
  std::thread sub_thread{[&] { subscribe(ctx, pub_endpoint, "", stop, got); }};
  std::this_thread::sleep_for(1s); // the subscription reaches the publisher
  // 25 simulated minutes of the demo scenario, as fast as the server takes
  // it: a CPU hog on app-03 from 10 to 20 minutes, a memory leak on db-02
  // from 5 minutes, a vMotion of web-09 at 35 minutes (not reached).
  auto start_s = (now_ns() / 1'000'000'000) - 30 * 60;
  auto sim_log = tmp.path / "simulate.log";
  auto pid = spawn_logged(
    {PARALLAX_BINARY, "simulate", "--endpoint", server.endpoint(),
     "--duration", "25m", "--start", std::to_string(start_s), "--scenario",
     std::string{PARALLAX_SOURCE_DIR} + "/etc/scenarios/demo.toml"},
    sim_log);
  REQUIRE_MESSAGE(wait_exit(pid, 120s) == 0, read_file(sim_log));
  std::this_thread::sleep_for(1s); // the last windows' messages
  stop.store(true);
  sub_thread.join();
  auto status = server.terminate();
  CHECK(WIFEXITED(status));

  std::map<std::string, int> by_topic;
  std::set<std::string> delta_vms, alerts;
  for (const auto& m : got) {
    auto dot = m.topic.find('.');
    ++by_topic[m.topic.substr(0, dot)];
    if (m.topic.starts_with("delta."))
      delta_vms.insert(text(m, "vm"));
    if (m.topic.starts_with("alert.") && text(m, "state") == "open") {
      alerts.insert(text(m, "vm") + " " + text(m, "kind"));
      if (std::getenv("PARALLAX_SHOW_ALERTS"))
        MESSAGE(text(m, "message"));
    }
  }
  for (const auto& a : alerts)
    MESSAGE("alert: ", a);
  CHECK(by_topic["delta"] > 1000);
  CHECK(by_topic["identity"] >= 24); // 12 VMs added, 12 guests bound
  CHECK(delta_vms.size() == 12);
  CHECK(alerts.count("app-03 drift") == 1);       // the CPU hog
  CHECK(alerts.count("db-02 memory_leak") == 1);  // the leak
  // Every message's topic sequence starts at 1 and has no gap (the
  // subscriber never fell behind: RCVHWM 0).
  std::map<std::string, std::uint64_t> last;
  for (const auto& m : got) {
    auto& l = last[m.topic];
    CHECK_MESSAGE(m.sequence == l + 1, m.topic);
    l = m.sequence;
  }

  // The store: fleet events carry vm and vm_uuid; deltas and alerts are
  // events too.
  auto [stored, with_vm] = count_stored(server);
  CHECK(stored["parallax"] > 1000);
  CHECK(with_vm["hv"] == stored["hv"]);
  // Guests' first batches come before the hypervisor has named their VM:
  // they wait for it in the correlator stage and are stored with it.
  CHECK(stored["os"] > 0);
  CHECK(with_vm["os"] == stored["os"]);
}

TEST_CASE("correlate: events go out on event.<sourcetype> only while a "
          "subscriber asks for them") {
  temp_dir tmp{"parallax-events-"};
  server_process server{tmp.path, free_port()};
  server.start();
  auto pub_endpoint = publisher_endpoint(server);

  // One subscriber asks for os:auth events; another takes everything but
  // asks for no events by name.
  zmq::context ctx;
  std::atomic<bool> stop{false};
  std::vector<publish::published_message> auth, all;
  std::thread a{[&] { subscribe(ctx, pub_endpoint, "event.os:auth", stop, auth); }};
  std::thread b{[&] { subscribe(ctx, pub_endpoint, "", stop, all); }};
  // The subscriptions must reach the publisher before the fleet starts;
  // on a loaded machine (ctest -j2) that has taken more than 300 ms.
  std::this_thread::sleep_for(1s);
  auto start_s = (now_ns() / 1'000'000'000) - 10 * 60;
  auto sim_log = tmp.path / "simulate.log";
  auto sim_out_path = tmp.path / "simulate.out"; // its per-sourcetype counts
  auto pid = spawn_to({PARALLAX_BINARY, "simulate", "--endpoint",
                       server.endpoint(), "--vms", "4", "--duration", "5m",
                       "--start", std::to_string(start_s)},
                      sim_out_path, sim_log);
  REQUIRE_MESSAGE(wait_exit(pid, 120s) == 0, read_file(sim_log));
  std::this_thread::sleep_for(1s);
  stop.store(true);
  a.join();
  b.join();
  server.terminate();

  REQUIRE_FALSE(auth.empty());
  // Every os:auth line the fleet sent was published: the simulator says how
  // many (their number depends on the start time: 11 to 37 in 5 minutes).
  auto sim_out = read_file(sim_out_path);
  auto at_auth = sim_out.find("os:auth=");
  REQUIRE_MESSAGE(at_auth != std::string::npos, sim_out);
  CHECK(auth.size() == std::stoull(sim_out.substr(at_auth + 8)));
  // Each carries its VM, also those of a guest's first round.
  std::size_t with_vm = 0;
  for (const auto& m : auth) {
    CHECK(m.topic == "event.os:auth");
    CHECK_FALSE(text(m, "_raw").empty());
    CHECK_FALSE(text(m, "_host").empty());
    with_vm += !text(m, "vm").empty();
  }
  CHECK(with_vm == auth.size());
  std::map<std::string, int> all_topics;
  for (const auto& m : all)
    ++all_topics[m.topic];
  // The catch-all subscriber sees the os:auth events someone asked for,
  // and no other sourcetype's.
  CHECK(all_topics["event.os:auth"] == static_cast<int>(auth.size()));
  for (const auto& [topic, n] : all_topics)
    if (topic.starts_with("event."))
      CHECK_MESSAGE(topic == "event.os:auth", topic);
  CHECK(all_topics.size() > 1); // deltas and identity changes too
}

TEST_CASE("correlate: a guest that speaks before its hypervisor is stored "
          "with its VM") {
  // Paced, each agent and poller on its own phase (as live senders are):
  // some agents' first batches reach the server before their host's first
  // poll names the VM. The server holds them until it does.
  temp_dir tmp{"parallax-hold-"};
  server_process server{tmp.path, free_port()};
  server.start();
  auto start_s = (now_ns() / 1'000'000'000) - 10 * 60;
  auto sim_log = tmp.path / "simulate.log";
  auto pid = spawn_logged({PARALLAX_BINARY, "simulate", "--endpoint",
                           server.endpoint(), "--vms", "12", "--duration",
                           "2m", "--speed", "20", "--start",
                           std::to_string(start_s)},
                          sim_log);
  REQUIRE_MESSAGE(wait_exit(pid, 120s) == 0, read_file(sim_log));
  server.terminate();
  auto log = read_file(server.log_path());
  auto attributed = final_counter(
    log, "parallax_correlator_held_batches_total{reason=\"attributed\"}");
  auto given_up = final_counter(
    log, "parallax_correlator_held_batches_total{reason=\"given_up\"}");
  INFO(log.substr(log.find("final counters")));
  // Some batches waited and went on with their VM (with the hold off, a
  // quarter of such a run's guest events were stored without one).
  CHECK(attributed > 0);
  CHECK(attributed != UINT64_MAX);
  CHECK(given_up == 0);

  auto n = count_stored(server);
  CHECK(n.stored["os"] > 1000);
  CHECK(n.with_vm["os"] == n.stored["os"]);
}

namespace {

// How each thread of process `pid` is scheduled.
struct thread_sched {
  std::string name;
  int nice = 0;
  int rt_priority = 0;
  int policy = 0; // SCHED_OTHER 0, SCHED_FIFO 1, SCHED_RR 2
};

std::vector<thread_sched> threads_of(pid_t pid) {
  std::vector<thread_sched> out;
  auto dir = std::filesystem::path{"/proc"} / std::to_string(pid) / "task";
  for (const auto& t : std::filesystem::directory_iterator{dir}) {
    std::ifstream f{t.path() / "stat"};
    std::string stat{std::istreambuf_iterator<char>{f}, {}};
    auto open = stat.find('(');
    auto close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos)
      continue;
    // After the name, from the state (field 3) on: the nice is field 19,
    // rt_priority 40, policy 41 (proc(5)).
    std::istringstream rest{stat.substr(close + 2)};
    std::vector<std::string> fields{std::istream_iterator<std::string>{rest},
                                    {}};
    if (fields.size() < 39)
      continue; // the thread ended while it was read
    out.push_back({stat.substr(open + 1, close - open - 1),
                   std::stoi(fields[16]), std::stoi(fields[37]),
                   std::stoi(fields[38])});
  }
  return out;
}

bool real_time(const thread_sched& t) {
  return t.policy == SCHED_RR || t.policy == SCHED_FIFO;
}

// Threads in the normal class at `nice`.
int count_at(const std::vector<thread_sched>& threads, int nice) {
  int n = 0;
  for (const auto& t : threads)
    n += !real_time(t) && t.nice == nice;
  return n;
}

// The nice of the one thread called `name`; nullopt when there is not
// exactly one.
std::optional<int> nice_of(const std::vector<thread_sched>& threads,
                           std::string_view name) {
  std::optional<int> nice;
  int n = 0;
  for (const auto& t : threads)
    if (t.name == name) {
      nice = t.nice;
      ++n;
    }
  return n == 1 ? nice : std::nullopt;
}

int count_real_time(const std::vector<thread_sched>& threads, int prio) {
  int n = 0;
  for (const auto& t : threads)
    n += t.policy == SCHED_RR && t.rt_priority == prio;
  return n;
}

} // namespace

TEST_CASE("correlate: the correlator's and the parser's threads run at "
          "parallax.correlator.rt-priority, else parallax.correlator.nice") {
  // The correlator sets its priority on its own thread, which starts
  // beside the one that logs "listening on": poll until it shows.
  auto settled = [](server_process& server, auto&& done) {
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!done(threads_of(server.pid()), read_file(server.log_path()))
           && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(20ms);
    return done(threads_of(server.pid()), read_file(server.log_path()));
  };
  temp_dir tmp{"parallax-nice-"};
  {
    server_process server{tmp.path, free_port()};
    server.start();
    // The default, real-time priority 1, needs CAP_SYS_NICE (or a high
    // enough RLIMIT_RTPRIO) and a cgroup that allows it: with them exactly
    // two threads (the correlator's and the parser's before it) are in the
    // real-time class; without, none is, the log says why, and both run
    // at nice -10 if they may (else the log says that too).
    CHECK(settled(server, [](const auto& threads, const std::string& log) {
      bool rt_warned = log.find("cannot run at real-time priority 1")
                       != std::string::npos;
      bool nice_warned = log.find("nice -10 needs") != std::string::npos;
      if (count_real_time(threads, 1) == 2 && !rt_warned)
        return true;
      return count_real_time(threads, 1) == 0 && rt_warned
             && ((count_at(threads, -10) == 2 && !nice_warned)
                 || (count_at(threads, -10) == 0 && nice_warned));
    }));
    CHECK(server.terminate() == 0);
  }
  // Another directory: the first server's log would already say
  // "listening on".
  temp_dir tmp7{"parallax-nice-"};
  server_process server{tmp7.path, free_port(),
                        {"--set", "parallax.correlator.rt-priority=0",
                         "--set", "parallax.correlator.nice=7"}};
  server.start();
  // Without the real-time class, the nice; a higher nice is always
  // allowed.
  CHECK(settled(server, [](const auto& threads, const std::string& log) {
    int in_real_time = 0;
    for (const auto& t : threads)
      in_real_time += real_time(t);
    return count_at(threads, 7) == 2 && count_at(threads, -10) == 0
           && in_real_time == 0
           && log.find("cannot run") == std::string::npos;
  }));
  // The server's threads are named for what they do (top -H, ps -L):
  // the two at nice 7 are the correlator's and the parser's.
  auto threads = threads_of(server.pid());
  CHECK(nice_of(threads, "plx-correlator") == 7);
  CHECK(nice_of(threads, "plx-parser") == 7);
  CHECK(nice_of(threads, "plx-collector").has_value());
  CHECK(nice_of(threads, "plx-indexer").has_value());
  CHECK(nice_of(threads, "plx-compactor").has_value());
  CHECK(server.terminate() == 0);
}
