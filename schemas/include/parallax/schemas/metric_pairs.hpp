#pragma once

// The catalog of metric pairs: which hypervisor figure is compared with
// which guest figure, in which unit. Declarative: the correlator's join
// reads this table and nothing else decides what a delta is. Documented,
// with the reasoning behind each pair, in schemas/metric_pairs.md.
//
// Inputs are named `<side>:<field>` after the per-window means the join
// keeps (see pipeline/join.hpp):
//   hv:<field>          mean of a numeric field of the VM's hypervisor
//                       samples (hv:libvirt:vm, hv:vsphere) in the window
//   guest:<field>       mean of a numeric field of os:system samples
//   guest:proc_<field>  per agent round, the sum of a field over os:process
//                       samples; then the mean over the rounds
//   hv:nic:<field>, guest:nic:<field>
//                       the same per MAC (hv:libvirt:nic, os:net), one
//                       delta per MAC that both sides report
//   hv:disk_<field>, guest:disk_<field>
//                       VM-wide disk rates: per poll (hv:libvirt:disk) or
//                       agent round (os:disk), the sum of <field> over the
//                       VM's disks, then the mean over the rounds; vSphere
//                       sends them VM-wide (hv:vsphere's normalised
//                       disk_rd_bytes_per_s, disk_wr_bytes_per_s)

#include <array>
#include <string_view>

namespace parallax {

struct metric_pair {
  std::string_view name;  ///< the delta's `metric`
  std::string_view unit;  ///< "bytes", "pct", "bytes_per_s"
  /// Hypervisor inputs, first present wins (vSphere and libvirt name the
  /// same figure differently).
  std::array<std::string_view, 2> hv;
  /// Subtracted from the hypervisor input when present (e.g. the balloon).
  std::string_view hv_minus;
  std::string_view guest;
  /// The guest input is divided by this input when not empty (a sum of
  /// per-process CPU %, 100 = one core, over the CPU count).
  std::string_view guest_per;
  /// Per MAC: inputs are `hv:nic:<field>` / `guest:nic:<field>`.
  bool per_nic = false;
  std::string_view doc;
};

inline constexpr metric_pair metric_pairs[] = {
  {"mem_used", "bytes", {"hv:mem_consumed_bytes", "hv:mem_rss_bytes"}, "",
   "guest:mem_used_bytes", "", false,
   "host memory backing the VM (vSphere consumed, libvirt QEMU RSS) vs the "
   "guest's MemTotal - MemAvailable"},
  {"mem_active", "bytes", {"hv:mem_active_bytes", ""}, "",
   "guest:mem_used_bytes", "", false,
   "the hypervisor's sampled estimate of recently touched memory vs the "
   "guest's used memory"},
  {"mem_visible", "bytes", {"hv:mem_max_bytes", "hv:mem_allocated_bytes"},
   "hv:mem_balloon_bytes", "guest:mem_total_bytes", "", false,
   "the VM's configured memory (libvirt: maximum; vSphere: allocated) minus "
   "what the balloon holds back vs the guest's MemTotal: what ballooning "
   "left the guest"},
  {"cpu", "pct", {"hv:cpu_pct", ""}, "", "guest:cpu_busy_pct", "", false,
   "VM CPU as % of its allocation vs the guest's busy % of all its CPUs"},
  {"cpu_processes", "pct", {"hv:cpu_pct", ""}, "", "guest:proc_cpu_pct",
   "guest:cpus", false,
   "VM CPU % of allocation vs the sum of per-process CPU % over the CPU "
   "count: load no guest process explains shows here"},
  {"cpu_contention", "pct", {"hv:cpu_ready_pct", ""}, "",
   "guest:cpu_steal_pct", "", false,
   "CPU ready (vSphere) or vCPU delay (libvirt) per vCPU vs guest steal"},
  {"net_rx", "bytes_per_s", {"hv:nic:rx_bytes_per_s", ""}, "",
   "guest:nic:rx_bytes_per_s", "", true,
   "bytes/s received on the NIC with this MAC, seen by both sides"},
  {"net_tx", "bytes_per_s", {"hv:nic:tx_bytes_per_s", ""}, "",
   "guest:nic:tx_bytes_per_s", "", true,
   "bytes/s sent on the NIC with this MAC, seen by both sides"},
  {"disk_read", "bytes_per_s", {"hv:disk_rd_bytes_per_s", ""}, "",
   "guest:disk_rd_bytes_per_s", "", false,
   "bytes/s read from all the VM's disks, seen by both sides (VM-wide: the "
   "two sides name the devices differently)"},
  {"disk_write", "bytes_per_s", {"hv:disk_wr_bytes_per_s", ""}, "",
   "guest:disk_wr_bytes_per_s", "", false,
   "bytes/s written to all the VM's disks, seen by both sides (VM-wide: the "
   "two sides name the devices differently)"},
};

} // namespace parallax
