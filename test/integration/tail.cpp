// `parallax tail` (the real binary, a child process) subscribed to a real
// publisher in this process: JSON lines, filters, human lines with colours,
// sequence gaps from real drops, and a publisher restart.

#include "parallax/pipeline/publisher.hpp"

#include "integration/server_process.hpp"
#include "temp_dir.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace parallax;
using namespace std::chrono_literals;
using test::read_file;
using test::wait_exit;
namespace fs = std::filesystem;

namespace {

using clock_type = std::chrono::steady_clock;

// 2026-11-25T19:38:40Z
constexpr time_ns t0 = 1'795'635'520'000'000'000;

// `parallax tail ARGS...` with stdout into `out` and stderr into `err`.
pid_t spawn_tail(std::vector<std::string> args, const fs::path& out,
                 const fs::path& err) {
  args.insert(args.begin(), {PARALLAX_BINARY, "tail"});
  return parallax::test::spawn_to(std::move(args), out, err);
}

std::vector<std::string> lines_of(const fs::path& p) {
  std::vector<std::string> out;
  std::istringstream in{read_file(p)};
  for (std::string line; std::getline(in, line);)
    out.push_back(line);
  return out;
}

// PUB/SUB's slow joiner: publishes `topic` (a message tail's own filters
// skip) until tail's stderr says `marker`, so what follows reaches it.
void sync(publisher& pub, std::string_view topic, const fs::path& err,
          std::string_view marker, pid_t tail) {
  auto deadline = clock_type::now() + 15s;
  std::vector<field> fields = {{"vm", std::string{"sync"}},
                               {"severity", std::string{"info"}},
                               {"metric", std::string{"sync"}}};
  while (clock_type::now() < deadline) {
    pub.publish(topic, t0, fields);
    if (read_file(err).find(marker) != std::string::npos)
      return;
    int status = 0;
    if (::waitpid(tail, &status, WNOHANG) == tail)
      FAIL("parallax tail exited early; its stderr:\n", read_file(err));
    std::this_thread::sleep_for(20ms);
  }
  FAIL("parallax tail never said \"", std::string{marker}, "\"; stderr:\n",
       read_file(err));
}

std::vector<field> delta(std::string vm) {
  return {{"vm", std::move(vm)},
          {"vm_uuid", std::string{"4c4c4544-0042-3510-8053-b4c04f4e4d32"}},
          {"metric", std::string{"mem_used"}},
          {"unit", std::string{"bytes"}},
          {"hv_value", std::int64_t{3'328'599'654}},    // 3.10 GiB
          {"guest_value", std::int64_t{2'909'840'179}}, // 2.71 GiB
          {"abs_diff", std::int64_t{418'759'475}},      // 0.39 GiB
          {"rel_diff", 0.1439},
          {"explained_share", 0.87},
          {"correction", false}};
}

std::vector<field> alert(std::string vm, std::string severity,
                         std::string metric, std::string state = "open") {
  return {{"id", std::string{"a-1"}},
          {"vm", std::move(vm)},
          {"kind", std::string{"drift"}},
          {"metric", std::move(metric)},
          {"unit", std::string{"pct"}},
          {"state", std::move(state)},
          {"severity", std::move(severity)},
          {"value", 93.5},
          {"baseline", 41.0},
          {"message", std::string{"CPU far above its baseline"}}};
}

std::unique_ptr<publisher> start_publisher(zmq::context& ctx,
                                           std::string endpoint,
                                           std::uint64_t hwm = 10'000) {
  auto p = publisher::start(ctx, publisher_config{std::move(endpoint), hwm});
  REQUIRE_MESSAGE(p, p.error().render());
  return std::move(*p);
}

bool contains(const std::string& s, std::string_view part) {
  return s.find(part) != std::string::npos;
}

} // namespace

TEST_CASE("tail: --json prints one object per message, --vm filters") {
  test::temp_dir tmp{"parallax-tail-it-"};
  zmq::context ctx;
  auto pub = start_publisher(ctx, "tcp://127.0.0.1:0");
  auto out = tmp.path / "out", err = tmp.path / "err";
  auto pid = spawn_tail({"--json", "--count", "3", "--timeout", "20",
                         "--endpoint", pub->endpoint(), "--vm", "web-01"},
                        out, err);
  sync(*pub, "delta.sync", err, "receiving from publisher", pid);
  CHECK(contains(read_file(err), "waiting for the publisher at "
                                   + pub->endpoint()));
  pub->publish("delta.db-02", t0, delta("db-02")); // another VM
  pub->publish("event.os:auth", t0,
               std::vector<field>{{"_host", std::string{"web-01"}}});
  pub->publish("delta.web-01", t0, delta("web-01"));
  pub->publish("alert.drift", t0 + 1, alert("web-01", "warning", "cpu"));
  pub->publish("identity", t0 + 2,
               std::vector<field>{{"vm", std::string{"web-01"}},
                                  {"change", std::string{"rematched"}},
                                  {"confidence", 0.95}});
  REQUIRE_MESSAGE(wait_exit(pid, 30s) == 0, read_file(err));
  auto lines = lines_of(out);
  REQUIRE(lines.size() == 3);
  auto prefix = "{\"publisher\":\"" + pub->id() + "\",";
  CHECK(lines[0]
        == prefix
             + "\"topic\":\"delta.web-01\",\"sequence\":1,"
               "\"time\":1795635520000000000,\"fields\":{\"vm\":\"web-01\","
               "\"vm_uuid\":\"4c4c4544-0042-3510-8053-b4c04f4e4d32\","
               "\"metric\":\"mem_used\",\"unit\":\"bytes\","
               "\"hv_value\":3328599654,\"guest_value\":2909840179,"
               "\"abs_diff\":418759475,\"rel_diff\":0.1439,"
               "\"explained_share\":0.87,\"correction\":false}}");
  CHECK(lines[1].starts_with(prefix + "\"topic\":\"alert.drift\","
                                      "\"sequence\":1,"
                                      "\"time\":1795635520000000001,"));
  CHECK(contains(lines[1], "\"severity\":\"warning\""));
  CHECK(lines[2].starts_with(prefix + "\"topic\":\"identity\",\"sequence\":1,"));
  // No gap: every topic started at its first message.
  CHECK(!contains(read_file(err), "gap"));
}

TEST_CASE("tail: --topic, --min-severity and --metric") {
  test::temp_dir tmp{"parallax-tail-it-"};
  zmq::context ctx;
  auto pub = start_publisher(ctx, "tcp://127.0.0.1:0");
  auto out = tmp.path / "out", err = tmp.path / "err";
  auto pid = spawn_tail({"--json", "--count", "2", "--timeout", "20",
                         "--endpoint", pub->endpoint(), "--topic", "alert.",
                         "--min-severity", "warning", "--metric", "mem_used"},
                        out, err);
  // The sync alerts are info: received (that is the marker), not printed.
  sync(*pub, "alert.drift", err, "receiving from publisher", pid);
  pub->publish("delta.web-01", t0, delta("web-01")); // not subscribed
  pub->publish("alert.drift", t0, alert("web-01", "info", "mem_used"));
  pub->publish("alert.drift", t0, alert("web-01", "warning", "cpu"));
  pub->publish("alert.drift", t0 + 1, alert("web-01", "warning", "mem_used"));
  pub->publish("alert.security", t0 + 2,
               alert("db-02", "critical", "mem_used", "resolved"));
  REQUIRE_MESSAGE(wait_exit(pid, 30s) == 0, read_file(err));
  auto lines = lines_of(out);
  REQUIRE(lines.size() == 2);
  CHECK(contains(lines[0], "\"topic\":\"alert.drift\""));
  CHECK(contains(lines[0], "\"time\":1795635520000000001"));
  CHECK(contains(lines[1], "\"topic\":\"alert.security\""));
  CHECK(contains(lines[1], "\"state\":\"resolved\""));
}

TEST_CASE("tail: human lines with figures in units and alert colours") {
  test::temp_dir tmp{"parallax-tail-it-"};
  zmq::context ctx;
  auto pub = start_publisher(ctx, "tcp://127.0.0.1:0");
  auto out = tmp.path / "out", err = tmp.path / "err";
  ::setenv("TZ", "UTC", 1); // the child's clock column
  auto pid = spawn_tail({"--no-json", "--color", "always", "--count", "4",
                         "--timeout", "20", "--endpoint", pub->endpoint(),
                         "--vm", "web-01"},
                        out, err);
  sync(*pub, "delta.sync", err, "receiving from publisher", pid);
  pub->publish("delta.web-01", t0, delta("web-01"));
  pub->publish("alert.drift", t0, alert("web-01", "critical", "cpu"));
  pub->publish("alert.drift", t0, alert("web-01", "warning", "cpu"));
  pub->publish("alert.drift", t0, alert("web-01", "critical", "cpu",
                                        "resolved"));
  REQUIRE_MESSAGE(wait_exit(pid, 30s) == 0, read_file(err));
  auto lines = lines_of(out);
  REQUIRE(lines.size() == 4);
  // 3328599654 B = 3.10 GiB, 2909840179 B = 2.71 GiB, Δ 418759475 B =
  // 0.39 GiB; rel_diff 0.1439 = +14.4 %; explained 0.87 = 87 %.
  CHECK(lines[0]
        == "19:38:40 delta web-01 mem_used  hv 3.10 GiB  guest 2.71 GiB  "
           "Δ +0.39 GiB (+14.4 %)  explained 87 %");
  CHECK(lines[1]
        == "\x1b[31m19:38:40 alert.drift web-01 critical open drift cpu  "
           "value 93.5 %  baseline 41.0 %  CPU far above its baseline"
           "\x1b[0m");
  CHECK(lines[2].starts_with("\x1b[33m19:38:40 alert.drift web-01 warning"));
  CHECK(lines[3].starts_with("\x1b[32m19:38:40 alert.drift web-01 critical "
                             "resolved"));
}

TEST_CASE("tail: messages the publisher drops show as a gap on stderr") {
  test::temp_dir tmp{"parallax-tail-it-"};
  zmq::context ctx;
  // A small queue, so a stopped tail fills it quickly.
  auto pub = start_publisher(ctx, "tcp://127.0.0.1:0", 10);
  auto out = tmp.path / "out", err = tmp.path / "err";
  // How many messages get through is known only afterwards: this tail
  // runs until its --timeout, 3 s after the last message.
  auto pid = spawn_tail({"--json", "--timeout", "3", "--endpoint",
                         pub->endpoint(), "--vm", "web-01"},
                        out, err);
  sync(*pub, "delta.sync", err, "receiving from publisher", pid);
  // Stopped, tail reads nothing: its TCP buffers, then the publisher's
  // queue fill, and publish() must drop rather than block.
  REQUIRE(::kill(pid, SIGSTOP) == 0);
  auto fields = delta("web-01");
  fields.push_back({"padding", std::string(1024, 'p')});
  constexpr std::uint64_t n = 20'000; // 20 MB, beyond the socket buffers
  std::uint64_t sent = 0, dropped = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    auto st = pub->publish("delta.web-01", t0 + static_cast<time_ns>(i),
                           fields);
    (st == publish_status::sent ? sent : dropped) += 1;
  }
  REQUIRE(::kill(pid, SIGCONT) == 0);
  MESSAGE("sent ", sent, ", dropped ", dropped);
  REQUIRE(dropped > 0);
  // One more after the drops, so a gap at the very end shows too; retried
  // while tail still works through its backlog (each try that is dropped
  // is one more missed message).
  auto deadline = clock_type::now() + 20s;
  while (pub->publish("delta.web-01", t0 + n, fields) != publish_status::sent) {
    ++dropped;
    REQUIRE(clock_type::now() < deadline);
    std::this_thread::sleep_for(50ms);
  }
  ++sent;
  // tail exits 1 at its --timeout, 3 s after the last message.
  CHECK(wait_exit(pid, 60s) == 1);
  auto log = read_file(err);
  CHECK(contains(log, "gap on delta.web-01: "));
  // Every dropped message is reported missed, and only those.
  CHECK_MESSAGE(contains(log, fmt::format("parallax tail: {} messages missed "
                                          "in ",
                                          dropped)),
                log);
  CHECK(lines_of(out).size() == sent);
}

TEST_CASE("tail: a restarted publisher is announced, not reported as a gap") {
  test::temp_dir tmp{"parallax-tail-it-"};
  zmq::context ctx;
  auto endpoint = "tcp://127.0.0.1:" + std::to_string(test::free_port());
  auto first = start_publisher(ctx, endpoint);
  auto out = tmp.path / "out", err = tmp.path / "err";
  auto pid = spawn_tail({"--json", "--count", "4", "--timeout", "20",
                         "--endpoint", endpoint, "--vm", "web-01"},
                        out, err);
  sync(*first, "delta.sync", err, "receiving from publisher", pid);
  for (int i = 0; i < 3; ++i) // sequences 1, 2, 3
    first->publish("delta.web-01", t0, delta("web-01"));
  auto deadline = clock_type::now() + 10s;
  while (lines_of(out).size() < 3 && clock_type::now() < deadline)
    std::this_thread::sleep_for(20ms);
  auto first_id = first->id();
  first.reset();
  // ZeroMQ closes the listening socket in the background: retry the bind
  // until the port is free again. The tail reconnects on its own.
  std::unique_ptr<publisher> second;
  deadline = clock_type::now() + 10s;
  for (;;) {
    auto p = publisher::start(ctx, publisher_config{endpoint, 10'000});
    if (p) {
      second = std::move(*p);
      break;
    }
    REQUIRE_MESSAGE(clock_type::now() < deadline, p.error().render());
    std::this_thread::sleep_for(20ms);
  }
  sync(*second, "delta.sync", err, "publisher restarted", pid);
  second->publish("delta.web-01", t0, delta("web-01")); // sequence 1 again
  REQUIRE_MESSAGE(wait_exit(pid, 30s) == 0, read_file(err));
  auto log = read_file(err);
  CHECK(contains(log, "publisher restarted: new id " + second->id()));
  CHECK(!contains(log, "gap"));
  CHECK(!contains(log, "went back"));
  auto lines = lines_of(out);
  REQUIRE(lines.size() == 4);
  CHECK(contains(lines[2], first_id));
  CHECK(contains(lines[2], "\"sequence\":3"));
  CHECK(contains(lines[3], second->id()));
  CHECK(contains(lines[3], "\"sequence\":1"));
}
