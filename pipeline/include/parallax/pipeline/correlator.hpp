#pragma once

// The correlator's logic, free of transport: attributes every event to a
// VM (identity_resolver), joins both views in event time (joiner), keeps a
// baseline per VM and series (baseline) and raises drift alerts, checks the
// guest's processes for security exceptions, and turns all of it into
// messages for the publisher and events for the store. The actor in
// actors/correlator.hpp drives it; tests drive it directly.
//
// Series with a baseline, per VM: for every delta of the catalog
// (schemas/metric_pairs.hpp) `<metric>.hv`, `<metric>.guest` and
// `<metric>.delta` (hv - guest), per MAC for per-NIC pairs.
//
// Security exceptions (topic alert.security):
// * `non_admin_process`: a process owned by a human user (uid above
//   `service_uid_max`) who is not an administrator and not allowed for the
//   VM; resolved when the process is gone.
// * `rogue_process`: a process name neither allowed nor seen during the
//   VM's learning period (its first `learning_period` of guest data).
// * `unexplained_load`: hypervisor CPU that the guest's processes do not
//   explain (delta `cpu_processes`) above `unexplained_cpu_pct` for
//   `unexplained_windows` windows in a row; a hidden process is one cause.
// Each names the VM, process, owner and evidence, and carries the guest's
// auth/cron log lines around it plus a search for more.
//
// Memory leaks: per guest process, a steady RSS growth (see the options)
// raises a `memory_leak` drift alert naming the process; it resolves when
// the growth stops or the process is gone.
//
// Silence: `guest_silent` / `hypervisor_silent` drift alerts open after two
// silent windows in a row and resolve when that side speaks again.
//
// Clock skew: each os:system sample's time is compared with the latest
// hypervisor sample's time of the same VM when it arrives (both come in as
// they happen); beyond `clock_skew_threshold`, `skew_samples` times in a
// row, a `clock_skew` drift alert opens (resolved likewise).
//
// Not thread-safe: one owner.

#include "parallax/pipeline/baseline.hpp"
#include "parallax/pipeline/config.hpp"
#include "parallax/pipeline/identity_resolver.hpp"
#include "parallax/pipeline/join.hpp"
#include "parallax/pipeline/string_map.hpp"

#include <deque>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace parallax {

struct correlator_options {
  join_options join;
  identity_options identity;
  baseline_options baseline = correlator_baseline_defaults();
  std::vector<std::string> admin_users = {"root"};
  std::int64_t service_uid_max = 999;
  std::vector<std::string> allowed_users;
  /// Service owners per VM group: a VM name pattern (`*` matches any run
  /// of characters) and the users whose processes are expected there.
  std::vector<std::pair<std::string, std::vector<std::string>>>
    service_owners;
  std::vector<std::string> allowed_processes;
  time_ns learning_period = 600'000'000'000; ///< 10 min of guest data
  double unexplained_cpu_pct = 10;           ///< of the VM's allocation
  std::uint32_t unexplained_windows = 2;
  std::size_t log_context_lines = 5;
  /// A guest whose sample times run this far ahead of or behind its
  /// hypervisor's, `skew_samples` times in a row, raises `clock_skew`.
  /// Senders batch: a guest's samples may legitimately lead the latest
  /// hypervisor sample by up to two hypervisor intervals, hence a minute.
  time_ns clock_skew_threshold = 60'000'000'000;
  std::uint32_t skew_samples = 2;
  /// A process whose RSS grows steadily (least-squares slope over its last
  /// `leak_samples` samples at least `leak_min_bytes_per_s` with a t
  /// statistic >= 6, 16 MiB in all) raises a `memory_leak` drift alert.
  /// 18 agent samples are 3 minutes: a 40 MB/min leak in a process whose
  /// RSS wobbles by ±25 MB cannot be told from noise much sooner.
  std::size_t leak_samples = 18;
  double leak_min_bytes_per_s = 64.0 * 1024; ///< ~4 MiB per minute

  /// The baseline tuning for 20 s windows: a 5-minute warm-up, and large
  /// sustained shifts open on their second window.
  static baseline_options correlator_baseline_defaults();
};

/// The correlator's options from the configuration (parallax.correlator.*).
correlator_options correlator_options_of(const config& cfg);

/// One thing to publish (topic, event time, fields) and to store as an
/// event (sourcetype parallax:delta, parallax:alert, parallax:identity).
struct correlator_message {
  std::string topic;
  time_ns time = 0;
  std::string sourcetype;
  std::string host; ///< the stored event's host: the VM's physical host
  std::vector<field> fields;
};

/// A message as advance()'s `emit` sees it: views of the correlator's
/// data, valid during the call. A delta is published from such a view of
/// the delta itself, before its owned message (for the store) is made.
/// `names_checked`: the field names are the correlator's own literals (a
/// delta's; its tests check them against valid_field_names), so a
/// publisher may skip that check.
struct message_view {
  std::string_view topic;
  time_ns time = 0;
  std::string_view sourcetype;
  std::string_view host;
  std::span<const field_view> fields;
  bool names_checked = false;
};

/// An owned copy of `m`.
correlator_message materialize(const message_view& m);

/// What advance() calls with each message as soon as it is final.
using message_emitter = std::function<void(const message_view&)>;

struct correlator_counters {
  std::uint64_t drift_opened = 0;
  std::uint64_t drift_resolved = 0;
  std::uint64_t security_opened = 0;
  std::uint64_t security_resolved = 0;
  /// Guest events held until their VM was known, then joined and checked.
  std::uint64_t held_replayed = 0;
  /// Held guest events let go unjoined: older than two windows before
  /// their source's newest, or beyond a source's bound (20,000) or all
  /// sources' (200,000).
  std::uint64_t held_dropped = 0;
};

class correlator {
public:
  explicit correlator(correlator_options opts = {});

  /// Attributes `e` (from the batch of `source_id`) and learns from it.
  /// A guest event (`os:*`) whose VM is not known yet (its agent's first
  /// batch usually comes before the hypervisor names the VM) is held, as a
  /// copy, and learned from as soon as an event of the same source is
  /// attributed: its samples still count in their window's deltas. Held
  /// events older than two windows before their source's newest are let go
  /// (counted); the returned attribution, and so the stored event, stays
  /// empty for them either way.
  std::optional<attribution> observe(std::string_view source_id,
                                     const event_view& e);

  /// Closes the windows the watermarks allow and appends everything that
  /// follows from them, and from identity changes, to `out`. `emit`, when
  /// given, sees each message in order as soon as it is final, before the
  /// later ones are worked out: a batch that closes many VMs' windows (a
  /// hypervisor's poll) gets its first VM's deltas out while the
  /// correlator is still at the next VM's.
  /// advance() is advance_windows() and then advance_drift() for every
  /// round queued.
  void advance(std::vector<correlator_message>& out,
               const message_emitter& emit = {});

  /// advance() in two steps, for a caller with more batches waiting: the
  /// deltas (with silences, process sweeps and identity changes) now, what
  /// they tell the baselines later. advance_windows() does all of
  /// advance() but the drift work of its new deltas (the baselines, drift
  /// alerts and the unexplained-load check: about a third of a
  /// window-closing batch's time), which it queues as one round; it
  /// returns whether it did. advance_drift() does the oldest round's. The
  /// rounds keep their order, so each VM's baselines see its windows in
  /// order, and the window work reads nothing the drift work writes (the
  /// baselines, the unexplained-load runs). Until a round has run, save()
  /// and counters() do not reflect it; and an unexplained-load alert's
  /// log_context holds the guest's auth/cron lines as of when its round
  /// runs (lines that came in meanwhile may be among them).
  bool advance_windows(std::vector<correlator_message>& out,
                       const message_emitter& emit = {});
  void advance_drift(std::vector<correlator_message>& out,
                     const message_emitter& emit = {});
  std::size_t drift_rounds() const noexcept {
    return drift_rounds_.size();
  }

  const identity_resolver& identity() const noexcept {
    return resolver_;
  }
  const joiner& join() const noexcept {
    return join_;
  }
  const correlator_counters& counters() const noexcept {
    return counters_;
  }

  /// Identity, baselines (with their open drift alerts), learned process
  /// sets, and the other open alerts with what they need to resolve under
  /// the same id after a restart: process, leak, unexplained-load,
  /// clock-skew and silence alerts. Windows being filled are not kept.
  std::string save() const;
  static result<correlator> load(std::string_view data,
                                 correlator_options opts);

private:
  struct process_alert {
    std::string id;
    std::string vm, vm_uuid, host, kind, process, user;
    std::int64_t pid = 0;
    time_ns first_seen = 0;
    time_ns last_seen = 0;
  };
  struct rss_track {
    std::string vm, vm_uuid, process, user;
    std::int64_t pid = 0;
    std::int64_t start = 0; ///< the process's start time (its key's)
    std::deque<std::pair<time_ns, double>> samples;
    time_ns last_seen = 0;
    bool open = false;
    std::string id;
  };
  struct log_line {
    time_ns time;
    std::string sourcetype;
    std::string raw;
  };
  struct vm_security {
    time_ns first_guest = INT64_MIN;
    /// Process names of the learning period (looked up by view, once
    /// per process sample).
    string_set learned;
    std::deque<log_line> logs;           ///< recent auth/cron lines
    std::uint32_t unexplained_run = 0;
    bool unexplained_open = false;
    std::string unexplained_id;
    time_ns last_hv = INT64_MIN;
    std::uint32_t skew_run = 0;
    std::uint32_t skew_ok_run = 0;
    double offset_ewma = 0; ///< usual guest-minus-hypervisor time (ns)
    bool offset_known = false;
    bool skew_open = false;
    std::string skew_id;
    time_ns skew = 0;
    std::uint32_t silent_run = 0;
    bool silent_open = false;
    bool silent_guest = true;
    std::string silent_id;
    /// Leak tracks of the VM's processes, by (pid, start time: a reused
    /// pid is another process), the keys apart in a run of memory that
    /// a process sample scans. A fleet-wide hash map missed the cache at
    /// every sample (a tenth of the correlator's time). The scan is
    /// linear: fine for tens to a few hundred processes, the tracks of
    /// gone ones included until the sweep (three windows); a VM with
    /// thousands would want an index.
    std::vector<std::pair<std::int64_t, std::int64_t>> track_keys;
    std::vector<rss_track> tracks; ///< in track_keys' order
  };

  /// What follows from an attributed event: the join, the security and
  /// leak checks, the clock and log bookkeeping.
  void learn(const attribution& a, const event_view& e);
  /// A guest source's events from before its VM was known, replayed into
  /// learn() once it is (see observe()).
  struct held_events {
    std::deque<event> events;
    time_ns newest = INT64_MIN;
  };
  void hold(std::string_view source_id, const event_view& e);
  void release(std::string_view source_id, const attribution& a);

  /// The fields of a process sample that the checks read, found in one
  /// pass over its fields.
  struct process_fields;
  void check_process(vm_security& sec, const attribution& a,
                     const event_view& e, const process_fields& p);
  void check_clock(vm_security& sec, const attribution& a,
                   const event_view& e);
  void check_leak(vm_security& sec, const attribution& a,
                  const event_view& e, const process_fields& p);
  bool service_owner(std::string_view vm, std::string_view user) const;
  void delta_message(const delta& d, std::vector<correlator_message>& out);
  /// Publishes `d` through `emit` from a view of it (no owned message).
  void emit_delta(const delta& d, const message_emitter& emit);
  void on_delta(const delta& d, std::vector<correlator_message>& out);
  void on_silence(const silence& s, std::vector<correlator_message>& out);
  void resolve_gone_processes(std::vector<correlator_message>& out);
  void drift(string_map<baseline>& of_vm, const delta& d,
             std::string_view series, double value,
             std::vector<correlator_message>& out);
  std::string log_context(const std::string& vm_uuid, time_ns t) const;

  correlator_options opts_;
  identity_resolver resolver_;
  joiner join_;
  string_map<string_map<baseline>> baselines_; ///< by vm_uuid, then series
  string_map<vm_security> security_;                      ///< by vm_uuid
  std::map<std::string, process_alert> process_alerts_;   ///< open, by key
  /// "vm_uuid|pid|start": the leak alert's id and the saved state's key.
  static std::string key_text(std::string_view vm_uuid, std::int64_t pid,
                              std::int64_t start);
  std::vector<correlator_message> pending_;  ///< raised in observe()
  string_map<held_events> held_;             ///< by source id
  std::size_t held_total_ = 0;               ///< events in held_
  correlator_counters counters_;
  time_ns last_sweep_ = INT64_MIN;           ///< of resolve_gone_processes
  std::vector<delta> deltas_;                ///< scratch
  std::deque<std::vector<delta>> drift_rounds_; ///< see advance_windows()
  std::vector<silence> silences_;            ///< scratch
  std::string series_scratch_;               ///< scratch of on_delta()
  std::string topic_scratch_;                ///< scratch of emit_delta()
};

} // namespace parallax
