#pragma once

// The `hv:vsphere` sourcetype (schemas/sourcetypes.md): vCenter performance
// counters sent unchanged by any poller. The parser calls this for every
// such event and adds the normalised fields the correlator compares with
// the guest's figures. Units: ../shared/domain.md, "vSphere performance
// counters".

#include "parallax/schemas/event.hpp"

#include <functional>
#include <span>
#include <string_view>

namespace parallax {

inline constexpr std::string_view vsphere_sourcetype = "hv:vsphere";

/// Calls `emit` once per normalised field that `fields` allows and does not
/// already hold: `cpu_pct`, `cpu_ready_pct`, `mem_*_bytes`,
/// `rx_bytes_per_s`, `tx_bytes_per_s`, `disk_rd_bytes_per_s`,
/// `disk_wr_bytes_per_s` (from `virtualDisk.read.average`,
/// `virtualDisk.write.average`, KB/s summed over the VM's virtual disks).
/// A counter of a non-numeric type is skipped (the sample is stored as
/// sent).
void normalize_vsphere(
  std::span<const field_view> fields,
  const std::function<void(std::string_view, value_view)>& emit);

} // namespace parallax
