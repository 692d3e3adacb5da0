#include "parallax/pipeline/vsphere.hpp"

#include <algorithm>
#include <optional>

namespace parallax {

namespace {

std::optional<double> number(std::span<const field_view> fields,
                             std::string_view name) {
  for (const auto& f : fields)
    if (f.name == name) {
      if (auto i = std::get_if<std::int64_t>(&f.value))
        return static_cast<double>(*i);
      if (auto d = std::get_if<double>(&f.value))
        return *d;
      return std::nullopt;
    }
  return std::nullopt;
}

bool has(std::span<const field_view> fields, std::string_view name) {
  return std::any_of(fields.begin(), fields.end(),
                     [&](const field_view& f) { return f.name == name; });
}

// vCenter's KB are kibibytes.
constexpr double kib = 1024.0;

struct kb_counter {
  std::string_view counter;
  std::string_view normalised;
};

constexpr kb_counter kb_counters[] = {
  {"mem_allocated_kb", "mem_allocated_bytes"},
  {"mem.consumed.average", "mem_consumed_bytes"},
  {"mem.active.average", "mem_active_bytes"},
  {"mem.vmmemctl.average", "mem_balloon_bytes"},
  {"mem.swapped.average", "mem_swapped_bytes"},
};

} // namespace

void normalize_vsphere(
  std::span<const field_view> fields,
  const std::function<void(std::string_view, value_view)>& emit) {
  auto put = [&](std::string_view name, value_view v) {
    if (!has(fields, name))
      emit(name, v);
  };
  auto interval = number(fields, "interval_s").value_or(20.0);
  auto vcpus = std::max(number(fields, "vcpus").value_or(1.0), 1.0);
  if (auto v = number(fields, "cpu.usage.average"))
    put("cpu_pct", *v / 100.0); // fixed point: 2067 is 20.67 %
  if (auto v = number(fields, "cpu.ready.summation"); v && interval > 0)
    put("cpu_ready_pct", *v / (interval * 1000.0) * 100.0 / vcpus);
  for (const auto& c : kb_counters)
    if (auto v = number(fields, c.counter); v && *v >= 0)
      put(c.normalised, static_cast<std::int64_t>(*v * kib));
  if (auto v = number(fields, "net.received.average"))
    put("rx_bytes_per_s", *v * kib);
  if (auto v = number(fields, "net.transmitted.average"))
    put("tx_bytes_per_s", *v * kib);
  // Summed over the VM's virtual disks (vCenter reports them per
  // instance, scsi0:0, ...): VM-wide, as the disk pairs compare them.
  if (auto v = number(fields, "virtualDisk.read.average"))
    put("disk_rd_bytes_per_s", *v * kib);
  if (auto v = number(fields, "virtualDisk.write.average"))
    put("disk_wr_bytes_per_s", *v * kib);
}

} // namespace parallax
