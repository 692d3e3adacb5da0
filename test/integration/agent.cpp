// `parallax agent --once` against this machine's real /proc and /sys and a
// real `parallax serve`, both the real binary: processes, system figures,
// identity and a temporary auth log must arrive in the store.

#include "parallax/schemas/event.hpp"
#include "parallax/storage/environment.hpp"
#include "parallax/storage/store.hpp"

#include "integration/server_process.hpp"
#include "temp_dir.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace parallax;
using namespace std::chrono_literals;
using test::read_file;
using test::wait_exit;
namespace fs = std::filesystem;

namespace {

// Runs `parallax ARGS...`, stderr to `log`; returns the pid.
pid_t spawn(std::vector<std::string> args, const fs::path& log) {
  args.insert(args.begin(), PARALLAX_BINARY);
  return test::spawn_logged(std::move(args), log);
}

} // namespace

TEST_CASE("agent: --once on the real /proc and /sys reaches a real server") {
  test::temp_dir tmp{"parallax-agent-it-"};
  // No hypervisor names this machine: the server holds each run's batches
  // (a new source) for a VM until hold-new-guests passes, then stores
  // them as they are. Two seconds keep the acks well within --timeout.
  test::server_process server{
    tmp.path, test::free_port(),
    {"--set", "parallax.correlator.hold-new-guests=2s"}};
  server.start();
  auto endpoint = server.endpoint();
  auto data = server.data_dir();

  auto auth = tmp.path / "logs" / "auth.log";
  fs::create_directories(auth.parent_path());
  const std::string line1 = "Nov 25 10:00:01 guest sshd[2211]: Accepted "
                            "publickey for agent-it-user from 10.0.1.2";
  const std::string line2 = "Nov 25 10:00:02 guest sudo: agent-it-user : "
                            "COMMAND=/bin/true";
  {
    std::ofstream out{auth};
    out << line1 << "\n" << line2 << "\n";
  }
  auto state = tmp.path / "agent-state";
  std::vector<std::string> agent_args = {
    "agent", "--once", "--timeout", "20", "--data", data.string(),
    "--set", "parallax.agent.server=" + endpoint,
    "--set", "parallax.agent.state-dir=" + state.string(),
    "--set", "parallax.agent.auth-logs=[\"" + (tmp.path / "logs" / "auth*.log").string() + "\"]",
    "--set", "parallax.agent.syslog-logs=[]",
    "--set", "parallax.agent.cron-logs=[]"};
  auto agent_log = tmp.path / "agent.log";
  int rc = wait_exit(spawn(agent_args, agent_log), 60s);
  REQUIRE_MESSAGE(rc == 0, "parallax agent --once exited with ", rc,
                  "; its log:\n", read_file(agent_log));
  // Everything acknowledged left the spool.
  CHECK(fs::is_empty(state / "spool"));

  // A second run sends only the new line (checkpoints) and new samples.
  {
    std::ofstream out{auth, std::ios::app};
    out << "Nov 25 10:00:03 guest sshd[2212]: second run line\n";
  }
  rc = wait_exit(spawn(agent_args, agent_log), 60s);
  REQUIRE_MESSAGE(rc == 0, "second run exited with ", rc, "; its log:\n",
                  read_file(agent_log));

  // Stop the server cleanly, then read its store.
  auto status = server.terminate();
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  // Each run's batches waited for a VM, then went on without one.
  auto log = read_file(server.log_path());
  auto given_up = test::final_counter(
    log, "parallax_correlator_held_batches_total{reason=\"given_up\"}");
  CHECK(given_up >= 2);
  CHECK(given_up < 100); // UINT64_MAX: no such line

  storage::environment_options eo;
  eo.read_only = true;
  auto env = storage::environment::open(data / "store", eo);
  REQUIRE_MESSAGE(static_cast<bool>(env), (env ? "" : env.error().message));
  auto st = storage::store::open(*env);
  REQUIRE_MESSAGE(static_cast<bool>(st), (st ? "" : st.error().message));
  auto buckets = st->buckets();
  REQUIRE(buckets);
  std::map<std::string, int> by_type;
  std::map<std::string, int> auth_lines;
  bool saw_self = false, every_event_has_agent_id = true;
  std::int64_t self_pid = ::getpid();
  for (const auto& b : *buckets) {
    auto err = st->scan(b.id, [&](std::uint64_t, const event_view& e) {
      ++by_type[std::string{e.sourcetype}];
      if (!e.find("agent_id"))
        every_event_has_agent_id = false;
      if (e.sourcetype == "os:auth" && e.raw)
        ++auth_lines[std::string{*e.raw}];
      if (e.sourcetype == "os:process") {
        auto pid = e.find("pid");
        if (pid && std::get<std::int64_t>(*pid) == self_pid) {
          saw_self = true;
          auto uid = e.find("uid");
          REQUIRE(uid);
          CHECK(std::get<std::int64_t>(*uid) == static_cast<std::int64_t>(::getuid()));
        }
      }
    });
    REQUIRE_MESSAGE(!err, err.message);
  }
  INFO("agent log:\n", read_file(agent_log));
  // Two rounds: at least this test process in each, one system event and
  // one identity event each (identity is sent at every start).
  CHECK(by_type["os:process"] >= 2);
  CHECK(by_type["os:system"] == 2);
  CHECK(by_type["os:identity"] == 2);
  CHECK(by_type["os:nic"] >= 2); // at least lo, twice
  CHECK(saw_self);
  CHECK(every_event_has_agent_id);
  // Each line exactly once, although the agent ran twice.
  CHECK(by_type["os:auth"] == 3);
  CHECK(auth_lines[line1] == 1);
  CHECK(auth_lines[line2] == 1);
  CHECK(auth_lines["Nov 25 10:00:03 guest sshd[2212]: second run line"] == 1);
}
