#include "parallax/actors/node.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include <doctest/doctest.h>

using namespace parallax;

namespace {

struct fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys;
  fixture() : sys{init(cfg)} {
  }
  static caf::actor_system_config& init(caf::actor_system_config& c) {
    c.set("scheduler.max-threads", size_t{1});
    return c;
  }
};

} // namespace

TEST_CASE_FIXTURE(fixture, "node: status reports uptime and the counters") {
  metrics_registry metrics;
  metrics.get("collector", "received_events_total").add(12);
  node_config ncfg;
  ncfg.metrics = &metrics;
  auto n = spawn_node(sys, ncfg);
  caf::scoped_actor self{sys};
  std::string status;
  self->request(n, std::chrono::seconds{5}, status_atom::value)
    .receive([&](const std::string& s) { status = s; },
             [&](const caf::error& e) { FAIL(sys.render(e)); });
  CHECK(status.find("# uptime ") == 0);
  CHECK(status.find("parallax_collector_received_events_total 12\n")
        != std::string::npos);
  self->send_exit(n, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "node: an unusable config stops the node with a reason") {
  node_config ncfg; // no metrics registry
  CHECK(ncfg.validate());
  auto n = spawn_node(sys, ncfg);
  caf::scoped_actor self{sys};
  self->monitor(n);
  bool down = false;
  self->receive([&](const caf::down_msg& msg) {
    down = true;
    CHECK(sys.render(msg.reason).find("no metrics registry") != std::string::npos);
  });
  CHECK(down);
}
