#include "parallax/pipeline/metrics.hpp"

#include <thread>

#include <doctest/doctest.h>

using namespace parallax;

TEST_CASE("metrics: counters are shared by name and sum across threads") {
  metrics_registry reg;
  auto& a = reg.get("collector", "received_events_total");
  auto& b = reg.get("collector", "received_events_total");
  CHECK(&a == &b);
  std::thread t1{[&] {
    for (int i = 0; i < 10'000; ++i)
      a.add();
  }};
  std::thread t2{[&] {
    for (int i = 0; i < 10'000; ++i)
      b.add(2);
  }};
  t1.join();
  t2.join();
  CHECK(a.value() == 30'000);
}

TEST_CASE("metrics: snapshot is sorted and reasons are labels") {
  metrics_registry reg;
  reg.get("parser", "errors_total", "truncated").add(3);
  reg.get("collector", "dropped_events_total", "oversized_frame").add(1);
  reg.get("collector", "received_events_total").add(5);
  auto snap = reg.snapshot();
  REQUIRE(snap.size() == 3);
  CHECK(snap[0].component == "collector");
  CHECK(snap[0].name == "dropped_events_total");
  CHECK(snap[2].component == "parser");
  CHECK(reg.render_prometheus()
        == "parallax_collector_dropped_events_total{reason=\"oversized_frame\"} 1\n"
           "parallax_collector_received_events_total 5\n"
           "parallax_parser_errors_total{reason=\"truncated\"} 3\n");
}
