#pragma once

// The identity resolver: attributes every event to the VM it describes, as
// the hypervisor names it (issue 5, item 1; the pitfalls are in
// shared/domain.md, "VM identity"; the fields in schemas/sourcetypes.md).
//
// Two kinds of knowledge:
//
// * The hypervisor inventory, learned from `hv:libvirt:vm`, `hv:vsphere`,
//   `hv:libvirt:nic` and `hv:libvirt:disk` (anything `hv:*` with a
//   `vm_uuid`): per VM (key: the normalised `vm_uuid`) its name, physical
//   host (`event.host`), MACs and IPs, versioned in time. A change of host
//   (vMotion), name, MACs or IPs opens a new version and is reported.
//   `hv:collectd` samples carry no UUID: they are attributed through their
//   `mac` when it names exactly one VM, else through (host, `vm_name`); they
//   teach the inventory nothing.
//
// * Guest bindings, one per source id (one agent incarnation: clones share
//   host name, MACs and agent_id, never the source id), from `os:identity`
//   (hostname, macs, ips, bios_uuid) and `os:nic` (physical NICs' MACs).
//   Every MAC is normalised from any notation, the BIOS UUID is matched in
//   both byte orders of its first three groups. The strongest evidence wins:
//
//   | evidence                                    | keys            | confidence |
//   |---------------------------------------------|-----------------|------------|
//   | hypervisor event with its own vm_uuid       | `vm_uuid`       | 1.0        |
//   | BIOS UUID, and the guest's MACs agree       | `mac+bios_uuid` | 0.99       |
//   | BIOS UUID only                              | `bios_uuid`     | 0.97       |
//   | MACs all point to exactly one VM            | `mac`           | 0.95       |
//   | shared MACs (clone), settled by the IPs     | `mac+ip`        | 0.85       |
//   | shared MACs (clone), settled by the name    | `mac+hostname`  | 0.75       |
//   | IPs only                                    | `ip`            | 0.7        |
//   | host name = VM name (short, any case)       | `hostname`      | 0.5        |
//   | no identity yet: `event.host` = a VM name   | `host`          | 0.3        |
//   | collectd: MAC / MAC+(host,name) / (host,name)| `mac`, `mac+vm_name`, `vm_name` | 0.95, 0.95, 0.9 |
//
// Conflict policy (never silently merge two VMs):
// * A MAC claimed by two hypervisor VMs (a clone) is reported (kind
//   `mac_conflict`, both VMs are flagged `conflict`) and every guest
//   binding that involves it is settled by the BIOS UUID, then the IPs,
//   then the host name; the attribution keeps `conflict = true`. When
//   nothing settles it, the guest is attributed to *no* VM: `observe`
//   returns an attribution with empty `vm`/`vm_uuid`, `conflict = true` and
//   confidence 0 (kind `conflict_unsettled` lists the candidates).
// * A guest whose BIOS UUID is readable but unknown to the inventory is a
//   VM the hypervisor has not reported yet (the clone's agent often speaks
//   first): it stays *pending* (its events are not attributed) for
//   `uuid_grace` of its own event time, however well its MACs or host name
//   match another VM. After the grace, weaker keys may bind it -- flagged
//   `conflict`, with 0.7 x their confidence -- but never to a VM whose UUID
//   another guest has proved.
// * Pending guests are re-evaluated whenever the inventory learns a key
//   they carry (UUID, MAC, IP, name): guest-first and hypervisor-first
//   arrival give the same bindings.
// * Before a source's first `os:identity` its events fall back to
//   `event.host` = a VM name (keys `host`), only for a VM that no guest is
//   bound to yet (a clone's host name would otherwise steal the original);
//   after it, only the binding counts.
//
// Cost: `observe` on a non-identity event is one hash lookup (source id),
// or two for hypervisor samples (the UUID as sent, normalised only when the
// sender did not), no allocation; inventory changes and identity events
// take the slow path.
//
// Time: changes carry the event time of the event that caused them (guest
// clock for guest-side changes, hypervisor clock otherwise). A hypervisor
// sample older than the VM's latest one does not change its state (a late
// sample from the host it left must not move it back).
//
// Not thread-safe: one owner feeds it.

#include "parallax/pipeline/string_map.hpp"
#include "parallax/schemas/error.hpp"
#include "parallax/schemas/event.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace parallax {

struct identity_options {
  /// How long (guest event time) a guest whose BIOS UUID the inventory does
  /// not know waits for it before weaker keys may bind it.
  time_ns uuid_grace = 60'000'000'000;
  /// Attribute events of a source without identity by `event.host`.
  bool host_fallback = true;
};

/// Which VM an event belongs to. The views point into the resolver (keys:
/// static strings) and stay valid until its next non-const call: copy them
/// into the event's `vm` and `vm_uuid` fields at once.
struct attribution {
  std::string_view vm;      ///< the hypervisor's VM name; empty: no VM (unsettled conflict)
  std::string_view vm_uuid; ///< the hypervisor's UUID, normalised
  std::string_view keys;    ///< evidence used: `mac+bios_uuid`, `mac`, `vm_uuid`, ...
  double confidence = 0;    ///< 0..1 (table above)
  bool conflict = false;    ///< the evidence conflicted (shared MACs, UUID mismatch)
};

enum class identity_change_kind : std::uint8_t {
  vm_added,           ///< the inventory learned a VM (new = host)
  bound,              ///< a guest source was attributed to a VM
  rebound,            ///< a guest source moved to another VM (old, new = names)
  unbound,            ///< a guest source lost its VM (pending again)
  host_changed,       ///< vMotion: old, new = physical hosts
  name_changed,       ///< the hypervisor renamed the VM
  hostname_changed,   ///< the guest's host name changed
  ip_changed,         ///< IPs changed (keys `vm_uuid`: hypervisor's; else the guest's)
  mac_changed,        ///< the hypervisor's MAC list changed
  mac_conflict,       ///< MACs claimed by several VMs: old = MACs, new = the other VMs
  conflict_cleared,   ///< the VM's MACs are its own again
  conflict_settled,   ///< a guest's shared MACs were settled by other keys
  conflict_unsettled, ///< nothing settles them: attributed to no VM (new = candidates)
};

std::string_view to_string(identity_change_kind k) noexcept;

/// One identity change (published on topic `identity`).
struct identity_change {
  time_ns time = 0; ///< event time of the event that caused it
  std::string vm;
  std::string vm_uuid;
  identity_change_kind kind = identity_change_kind::vm_added;
  std::string old_value;
  std::string new_value;
  std::string keys;
  double confidence = 0;
  std::string source_id; ///< the guest source, for guest-side changes
  friend bool operator==(const identity_change&, const identity_change&) = default;
};

/// An event for the `identity` topic / index: sourcetype `parallax:identity`,
/// host = the VM name, fields kind, vm, vm_uuid, old, new, keys, confidence,
/// source_id.
event to_event(const identity_change& c);

/// One version of a VM's hypervisor view, valid from `from` until the next.
struct vm_version {
  time_ns from = 0;
  std::string host, name;
  std::vector<std::string> macs, ips;
  friend bool operator==(const vm_version&, const vm_version&) = default;
};

/// A VM as the correlator and the per-VM view see it.
struct vm_record {
  std::string uuid; ///< normalised hypervisor UUID (the key)
  std::string name;
  std::string host;
  std::vector<std::string> macs; ///< normalised, as the hypervisor lists them
  std::vector<std::string> ips;  ///< the hypervisor's (vSphere) view
  std::string guest_source;      ///< the best-bound guest source, or empty
  std::string guest_hostname;
  std::vector<std::string> guest_ips;
  std::string keys;      ///< of that guest binding
  double confidence = 0; ///< of that guest binding; 0 without guest
  bool conflict = false; ///< one of its MACs is claimed by another VM
  time_ns first_seen = 0, last_seen = 0;
  std::vector<vm_version> history;
  friend bool operator==(const vm_record&, const vm_record&) = default;
};

enum class binding_state : std::uint8_t { pending, bound, ambiguous };

/// A guest source's identity and binding.
struct guest_record {
  std::string source_id;
  std::string hostname;
  std::vector<std::string> macs; ///< normalised
  std::vector<std::string> ips;
  std::string bios_uuid; ///< normalised, as the guest sees it
  binding_state state = binding_state::pending;
  std::string vm_uuid;   ///< bound: the VM
  std::string keys;
  double confidence = 0;
  bool conflict = false;
  std::string candidates; ///< ambiguous: the VM names, comma separated
  time_ns since = 0;      ///< event time the evidence last changed
  friend bool operator==(const guest_record&, const guest_record&) = default;
};

struct identity_counters {
  std::uint64_t events = 0;
  std::uint64_t attributed = 0;   ///< returned a VM
  std::uint64_t unattributed = 0; ///< returned nullopt
  std::uint64_t pending = 0;      ///< of those: guest source with identity, not bound yet
  std::uint64_t ambiguous = 0;    ///< returned an unsettled conflict (no VM)
  std::uint64_t host_fallback = 0;///< attributed by `event.host` before identity
  std::uint64_t conflicts = 0;    ///< mac_conflict changes
  std::uint64_t changes = 0;      ///< identity changes recorded
  std::uint64_t late = 0;         ///< hypervisor samples older than the VM's state
  friend bool operator==(const identity_counters&, const identity_counters&) = default;
};

class identity_resolver {
public:
  explicit identity_resolver(identity_options opts = {});

  /// Attributes one event and learns from it. `source_id` is the wire
  /// batch's source id. Call in arrival order. nullopt: no VM known for it
  /// (yet); an attribution with empty `vm`: unsettled conflict.
  std::optional<attribution> observe(std::string_view source_id, const event_view& e);
  /// The same for an owning event (tests, the simulator).
  std::optional<attribution> observe(std::string_view source_id, const event& e);

  /// The changes recorded since the last call, in order.
  std::vector<identity_change> take_changes();

  const vm_record* find_vm(std::string_view vm_uuid) const;
  /// Every VM, ordered by name then UUID.
  std::vector<vm_record> vms() const;
  const guest_record* find_source(std::string_view source_id) const;
  /// The physical host the VM ran on at `t` (empty: unknown VM or before it
  /// was first seen).
  std::string host_at(std::string_view vm_uuid, time_ns t) const;

  const identity_counters& counters() const noexcept {
    return counters_;
  }

  /// The whole state (inventory with history, bindings, counters, changes
  /// not yet taken) in a versioned binary format.
  std::string save() const;
  /// Restores `save()`'s output. Errors: unknown_version (another format
  /// or version), truncated / invalid_value (damaged data).
  static result<identity_resolver> load(std::string_view data);

private:
  template <class T>
  using sv_map = string_map<T>;
  using ids = std::vector<std::uint32_t>;

  struct vm_state {
    vm_record rec;
    std::string raw_macs, raw_ips; ///< the fields as last sent, for cheap compares
    std::string shared_macs;       ///< MACs another VM claims too, comma separated
    std::uint32_t uuid_proofs = 0; ///< guest sources bound to it by BIOS UUID
    ids bound_srcs;                ///< guest sources bound to it (not saved)
  };
  struct source_state {
    guest_record rec;
    std::string raw_hostname, raw_macs, raw_ips, raw_uuid;
    std::string uuid_swapped;
    std::vector<std::string> nic_macs; ///< os:nic MACs not in os:identity's list
    std::int64_t vm = -1;              ///< bound VM's index
    std::uint8_t key = 0;              ///< index into the keys table
    bool grace_done = false;           ///< weaker keys were allowed after the grace
    time_ns last_time = 0;             ///< latest event time (guest clock)
  };
  struct verdict {
    binding_state state = binding_state::pending;
    std::int64_t vm = -1;
    std::uint8_t key = 0;
    double confidence = 0;
    bool conflict = false;
    std::string candidates;
  };

  std::optional<attribution> hv_event(const event_view& e);
  std::optional<attribution> collectd_event(const event_view& e);
  std::optional<attribution> guest_event(std::string_view source_id, const event_view& e);
  std::optional<attribution> fallback(const event_view& e);
  std::optional<attribution> of_source(source_state& s, time_ns t);
  attribution of_vm(const vm_state& v, std::uint8_t key, double confidence,
                    bool conflict) const;

  std::int64_t find_uuid(std::string_view uuid) const;
  std::int64_t touch_vm(const event_view& e, std::string_view uuid_raw);
  void set_macs(std::size_t vi, std::vector<std::string> macs, time_ns t, ids& affected_vms);
  void set_ips(std::size_t vi, std::vector<std::string> ips, time_ns t);
  void index_vm_name(std::size_t vi, bool add);
  void refresh_conflicts(const ids& vms, time_ns t);
  void open_version(vm_state& v, time_ns t);

  source_state& source(std::string_view source_id);
  void identity_event(source_state& s, const event_view& e);
  void nic_event(source_state& s, const event_view& e);
  void index_source(std::size_t si, bool add);
  verdict evaluate(const source_state& s, time_ns now) const;
  void apply(std::size_t si, verdict v, time_ns t);
  void reevaluate(ids sources, time_ns t);
  void sources_for_vm(const vm_state& v, ids& out) const;
  void refresh_guest_view(std::size_t vi);
  void change(time_ns t, const vm_state* v, identity_change_kind k, std::string old_value,
              std::string new_value, std::string keys = {}, double confidence = 0,
              std::string source_id = {});
  void rebuild_indexes();

  identity_options opts_;
  std::vector<vm_state> vms_;
  std::vector<source_state> srcs_;
  sv_map<std::uint32_t> uuid_index_;   ///< normalised UUID -> VM
  sv_map<std::uint32_t> src_index_;    ///< source id -> source
  sv_map<ids> mac_vms_, ip_vms_, name_vms_; ///< hypervisor keys -> VMs (name: lower case)
  sv_map<ids> mac_srcs_, ip_srcs_, uuid_srcs_, name_srcs_; ///< guest keys -> sources
  std::vector<identity_change> changes_;
  identity_counters counters_;
  int depth_ = 0; ///< re-evaluation nesting (proof changes)
};

} // namespace parallax
