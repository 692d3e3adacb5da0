#pragma once

// The event-time join of the correlator: per VM, hypervisor and guest
// samples are gathered in windows of the hypervisor interval (20 s by
// default), each (start, end]: a sample describes the interval that ends
// at its time (a poll's rates cover the interval since the previous one),
// so one stamped on a boundary belongs to the window it ends. Once the
// VM's watermark passes a window's end, the window is turned into
// hypervisor-minus-guest deltas following the catalog in
// schemas/metric_pairs.hpp -- or into a "guest silent" / "hypervisor
// silent" signal when one side sent nothing.
//
// Watermark: per VM, the latest event time seen from either side minus the
// allowed lateness. A VM whose sources all stopped still gets its windows
// closed: by the fleet-wide watermark minus the silence timeout.
// Late data: an event for a closed window within the correction horizon is
// added and the window's deltas are emitted again, marked `correction`; an
// event older than that is dropped. Every case is counted.
//
// Not thread-safe: one owner (the correlator) feeds and advances it.

#include "parallax/pipeline/string_map.hpp"
#include "parallax/schemas/event.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace parallax {

struct join_options {
  time_ns window = 20'000'000'000;             ///< window width
  time_ns allowed_lateness = 30'000'000'000;   ///< watermark lag
  time_ns correction_horizon = 300'000'000'000;///< closed windows kept
  time_ns silence_timeout = 60'000'000'000;    ///< fleet-wide close lag
};

/// One hypervisor-minus-guest delta (a metric pair in one window).
struct delta {
  std::string vm;
  std::string vm_uuid;
  std::string host;   ///< the physical host in the window
  std::string metric; ///< metric_pair::name
  std::string unit;
  std::string mac;    ///< per-NIC pairs only
  time_ns window_start = 0;
  time_ns window_end = 0;
  double hv_value = 0;
  double guest_value = 0;
  double abs_diff = 0;        ///< hv - guest
  double rel_diff = 0;        ///< (hv - guest) / hv; 0 when hv is 0
  double explained_share = 0; ///< guest / hv; 0 when hv is 0
  bool correction = false;    ///< a window emitted again after late data
};

/// A window in which one side sent nothing.
struct silence {
  std::string vm;
  std::string vm_uuid;
  std::string host;
  time_ns window_start = 0;
  time_ns window_end = 0;
  bool guest_missing = true; ///< false: the hypervisor is the silent one
};

struct join_counters {
  std::uint64_t samples = 0;        ///< events that fed a window
  std::uint64_t ignored = 0;        ///< events with nothing to join
  std::uint64_t windows_closed = 0;
  std::uint64_t deltas = 0;
  std::uint64_t corrections = 0;    ///< deltas emitted again
  std::uint64_t late_joined = 0;    ///< late events added to closed windows
  std::uint64_t late_dropped = 0;   ///< events beyond the horizon
  std::uint64_t guest_silent = 0;
  std::uint64_t hypervisor_silent = 0;
};

class joiner {
public:
  explicit joiner(join_options opts = {});
  // Moves keep the map's nodes, which `touched_` points to; copies would not.
  joiner(joiner&&) = default;
  joiner& operator=(joiner&&) = default;
  joiner(const joiner&) = delete;
  joiner& operator=(const joiner&) = delete;

  /// Feeds one event already attributed to a VM. Events of sourcetypes the
  /// catalog does not use are ignored (counted).
  void add(std::string_view vm, std::string_view vm_uuid,
           const event_view& e);

  /// Closes every window the watermarks allow and appends its deltas and
  /// silences; also re-emits corrected windows.
  void advance(std::vector<delta>& deltas, std::vector<silence>& silences);

  const join_counters& counters() const noexcept {
    return counters_;
  }

  /// The latest event time seen from any source (the fleet-wide clock).
  time_ns latest() const noexcept {
    return latest_;
  }

private:
  struct mean {
    double sum = 0;
    std::uint64_t n = 0;
  };
  /// One poll's or agent round's sums over the VM's disks. A sum counts
  /// only when every disk of the round had the rate (a disk's first
  /// sample has none, and a partial sum would understate the VM's I/O).
  struct disk_round {
    double rd = 0, wr = 0;
    std::uint32_t n = 0, rd_n = 0, wr_n = 0; ///< disks; those with each rate
  };
  struct window {
    time_ns start = 0;
    std::vector<std::pair<std::string, mean>> inputs;
    /// Per agent round (sample time): sums over os:process.
    std::map<time_ns, std::pair<double, double>> proc_rounds; // cpu, rss
    /// Per poll (hv:libvirt:disk) and per agent round (os:disk), by sample
    /// time: sums of rd/wr_bytes_per_s over the VM's disks.
    std::map<time_ns, disk_round> hv_disk_rounds, guest_disk_rounds;
    bool hv = false;
    bool guest = false;
    bool dirty = false; ///< closed, then changed by late data
    std::string host;
    void put(std::string_view key, double x);
  };
  struct vm_state {
    std::string name;
    std::string host;
    time_ns max_time = INT64_MIN;
    bool ever_guest = false;
    bool ever_hv = false;
    std::map<time_ns, window> open;    ///< by start
    std::map<time_ns, window> closed;  ///< by start, within the horizon
    time_ns closed_before = INT64_MIN; ///< windows starting earlier closed
    bool any_dirty = false;            ///< a closed window took late data
    bool touched = false;              ///< fed since advance() last saw it
  };

  window* window_for(vm_state& vm, time_ns t);
  void close(vm_state& vm, window& w, bool correction,
             std::vector<delta>& deltas, std::vector<silence>& silences);

  /// The earliest time at which the fleet-wide cut makes work for `vm`
  /// (a window to close, a closed one to forget); INT64_MAX: none.
  time_ns due(const vm_state& vm) const;
  /// Closes and forgets what `cut` (at least the fleet-wide cut) allows.
  void advance_vm(const std::string& uuid, vm_state& vm, time_ns fleet_cut,
                  std::vector<delta>& deltas, std::vector<silence>& silences);

  join_options opts_;
  string_map<vm_state> vms_; ///< by vm_uuid
  /// The VMs fed since the last advance(): only they, and those the
  /// fleet-wide cut reaches (`fleet_due_`), have anything to close.
  std::vector<string_map<vm_state>::value_type*> touched_;
  /// At most the least due() of the VMs not in `touched_`.
  time_ns fleet_due_ = INT64_MAX;
  time_ns latest_ = INT64_MIN;
  join_counters counters_;
};

} // namespace parallax
