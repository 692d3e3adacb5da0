#pragma once

// A simulated batch as the pipeline hands it to the correlator: through the
// wire format (encoded, decoded), with what the parser adds to vCenter
// counters (normalize_vsphere). Shared by the tests that drive the join or
// the correlator with the simulator's fleet.

#include "parallax/pipeline/simulator.hpp"
#include "parallax/pipeline/vsphere.hpp"
#include "parallax/schemas/wire.hpp"

#include <doctest/doctest.h>

#include <utility>
#include <vector>

namespace parallax::test {

/// Calls f(event_view) for each event of `b` (whose events it consumes).
template <class F>
void as_parsed(sim::sim_batch& b, F&& f) {
  wire::batch wb;
  wb.source_id = b.source_id;
  wb.sequence = 1;
  wb.events = std::move(b.events);
  auto view = wire::decode(wire::encode(wb));
  REQUIRE(view);
  std::vector<field_view> fields;
  for (const auto& e : view->events()) {
    fields.assign(e.fields.begin(), e.fields.end());
    if (e.sourcetype == vsphere_sourcetype)
      normalize_vsphere(e.fields, [&](std::string_view k, value_view v) {
        fields.push_back({k, v});
      });
    auto parsed = e;
    parsed.fields = fields;
    f(static_cast<const event_view&>(parsed));
  }
}

} // namespace parallax::test
