#pragma once

// A new guest's first batches, held back in the correlator stage until its
// VM is known, so that they are stored with `vm` and `vm_uuid` like every
// later one. Only sources that told the resolver their identity are held
// (agents); other `os:*` data goes on at once.
//
// An agent usually sends its first batch before the hypervisor has named
// its VM, so the resolver cannot attribute it yet. The correlator's logic
// keeps copies of such events for the join (correlator::observe); this
// keeps the batches themselves, not yet stored and so not yet
// acknowledged, and passes them on with the VM filled in as soon as a later
// batch of the same source is attributed. A source is held once: after its
// first attribution, or once it is given up on, its batches pass at once.
// They are also passed on as soon as the resolver binds the source because
// of another source's batch (settle()).
//
// A source is given up on (its batches pass on as they are) when
// * the hypervisors' samples have advanced `span` of event time since its
//   hold began, and none named its VM (the guest's own event times do not
//   count: a first batch may carry old log lines, a clock may be off),
// * or its first batch has been held for `wall` (a guest no hypervisor
//   reports: time alone tells; checked every second),
// * or when the batches held from all sources, resends included, exceed
//   `max_bytes`, the source held longest first: held batches keep the
//   collector's credit, so the bound must stay well below
//   parallax.collector.max-inflight-bytes.
//
// The client resends a batch it has no reply for (ingest_client's
// `resend_after`, 10 s). A resend of a held batch is kept behind it,
// neither attributed nor learned from again, and passed on after it: the
// store answers it `duplicate`, which frees its credit in the collector.
//
// Not thread-safe: the correlator actor owns it.

#include "parallax/pipeline/actors.hpp"
#include "parallax/pipeline/identity_resolver.hpp"
#include "parallax/pipeline/string_map.hpp"

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

namespace parallax {

class correlator;

/// A VM attribution that owns its strings.
struct owned_attribution {
  std::string vm;
  std::string vm_uuid;
  bool conflict = false;
};

/// What attribute_batch() found in a batch.
struct batch_attribution {
  std::size_t attributed = 0; ///< events that got `vm` and `vm_uuid`
  std::size_t guest_unattributed = 0; ///< `os:*` events that did not
  /// The source has told its identity (os:identity, os:nic) and has no VM
  /// yet: an agent waiting for its hypervisor. Files sent with `parallax
  /// ingest` under an `os:*` sourcetype carry no identity and never wait.
  bool guest_pending = false;
  time_ns hv_newest = INT64_MIN;      ///< of its `hv:*` events
  /// The first attributed `os:*` event's VM: the source's guest is known.
  std::optional<owned_attribution> guest;
};

/// Attributes every event of `item` (adding `vm`, `vm_uuid` and, when the
/// evidence conflicted, `vm_conflict`).
batch_attribution attribute_batch(ingest_item& item, correlator& c);

/// The VM that `r` has bound guest source `source_id` to, if it has.
std::optional<owned_attribution> bound_vm(const identity_resolver& r,
                                          std::string_view source_id);

/// Adds `a` to every `os:*` event of `item` that has no `vm` yet; returns
/// how many events got it.
std::size_t attribute_guest_events(ingest_item& item,
                                   const owned_attribution& a);

class batch_hold {
public:
  using clock = std::chrono::steady_clock;

  /// `span` or `wall` 0: nothing is held.
  struct options {
    time_ns span = 40'000'000'000;             ///< two 20 s windows
    clock::duration wall = std::chrono::seconds{40};
    std::uint64_t max_bytes = 16u << 20;
  };

  struct counters {
    std::uint64_t attributed = 0; ///< batches passed on with their VM added
    std::uint64_t given_up = 0;   ///< batches passed on as they came
    std::uint64_t resends = 0;    ///< resends of held batches
    std::uint64_t events_attributed = 0; ///< events given their VM late
  };

  explicit batch_hold(options opts) : opts_{opts} {
  }
  batch_hold() : batch_hold(options{}) {
  }

  /// True when `item` resends a held batch: it is kept (taken from
  /// `item`), and the caller does nothing more with it but pass on what
  /// the bytes bound released into `out`.
  bool take_resend(ingest_ptr& item, std::vector<ingest_ptr>& out);

  /// Takes an attributed batch (`found` from attribute_batch) and appends
  /// to `out`, in order, whatever may go on to the store now: the batch
  /// itself unless its source is held, a newly known source's held batches
  /// (with the VM added) before it, batches given up on. When the source
  /// was held, the batch that makes it known also gets the VM added to its
  /// `os:*` events that have none.
  void admit(ingest_ptr item, const batch_attribution& found,
             clock::time_point now, std::vector<ingest_ptr>& out);

  /// Passes on, with the VM added, the batches of held sources that `r`
  /// has bound meanwhile (another source's batch, the hypervisor's, named
  /// the VM): a client that waits for its acknowledgements before it
  /// sends more must not wait for `wall`.
  void settle(const identity_resolver& r, std::vector<ingest_ptr>& out);

  /// Gives up on the sources held for `wall` by `now`, or `span` behind the
  /// hypervisors' samples, appending their batches to `out`. Call it after
  /// settle(): a hypervisor batch may name a VM and move the time on.
  void expire(clock::time_point now, std::vector<ingest_ptr>& out);

  /// Forgets everything held (stopping); returns how many batches, resends
  /// not counted. They were never acknowledged: their clients send them
  /// again to the next server, which can still wait for their VM. Stored
  /// now, they would stay without `vm` for good.
  std::size_t drop_all();

  bool empty() const noexcept {
    return held_.empty();
  }
  std::uint64_t bytes() const noexcept {
    return bytes_;
  }
  const counters& stats() const noexcept {
    return counters_;
  }

private:
  struct source_hold {
    std::deque<ingest_ptr> batches;
    std::vector<ingest_ptr> resends;
    std::uint64_t bytes = 0;
    time_ns hv_start = INT64_MIN; ///< hypervisor time when the hold began

    clock::time_point since;
  };

  /// Gives up on the longest held sources while over `max_bytes`.
  void bound_bytes(std::vector<ingest_ptr>& out);
  /// Passes a source's batches on (with `a` added, when given) and forgets
  /// the hold; the source is settled.
  void release(string_map<source_hold>::iterator it,
               const owned_attribution* a, std::vector<ingest_ptr>& out);

  options opts_;
  string_map<source_hold> held_;
  /// Sources attributed or given up on: one entry per source id ever held
  /// or attributed (an agent's id changes when it restarts).
  string_set settled_;
  std::uint64_t bytes_ = 0;
  time_ns hv_newest_ = INT64_MIN; ///< the newest hypervisor sample admitted
  counters counters_;
};

} // namespace parallax
