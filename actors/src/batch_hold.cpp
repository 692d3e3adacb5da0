#include "parallax/actors/batch_hold.hpp"

#include "parallax/pipeline/correlator.hpp"

#include <algorithm>

namespace parallax {

namespace {

/// The fields to add to one event; `vm` empty: none.
struct extra {
  std::string_view vm, vm_uuid;
  bool conflict = false;
};

/// Rebuilds `item`'s overlay with each event's extra fields after its own.
/// A sender's own vm / vm_uuid (hypervisor samples carry vm_uuid) give way
/// to the resolved, normalised ones: a field name appears once.
void overlay(ingest_item& item, const std::vector<extra>& extras) {
  auto in = item.events();
  std::vector<event_view> events(in.begin(), in.end());
  std::vector<field_view> fields;
  std::size_t n = 0;
  for (const auto& e : in)
    n += e.fields.size() + 3;
  fields.reserve(n);
  std::vector<std::size_t> first(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    first[i] = fields.size();
    if (extras[i].vm.empty()) {
      fields.insert(fields.end(), in[i].fields.begin(), in[i].fields.end());
      continue;
    }
    for (const auto& f : in[i].fields)
      if (f.name != "vm" && f.name != "vm_uuid" && f.name != "vm_conflict")
        fields.push_back(f);
    fields.push_back({"vm", extras[i].vm});
    fields.push_back({"vm_uuid", extras[i].vm_uuid});
    if (extras[i].conflict)
      fields.push_back({"vm_conflict", true});
  }
  item.fields = std::move(fields);
  for (std::size_t i = 0; i < in.size(); ++i) {
    auto end = i + 1 < in.size() ? first[i + 1] : item.fields.size();
    events[i].fields = std::span<const field_view>{
      item.fields.data() + first[i], end - first[i]};
  }
  item.parsed = std::move(events);
}

bool is_guest(const event_view& e) {
  return e.sourcetype.starts_with("os:");
}

bool is_hypervisor(const event_view& e) {
  return e.sourcetype.starts_with("hv:");
}

} // namespace

batch_attribution attribute_batch(ingest_item& item, correlator& c) {
  batch_attribution found;
  auto source = item.batch.source_id();
  auto in = item.events();
  // Reused from batch to batch: a batch of a thousand events allocated
  // 40 KB for it every time. Safe as a thread_local: nothing here runs
  // again before overlay() is done with it, and assign() overwrites what
  // the last batch left.
  thread_local std::vector<extra> extras;
  extras.assign(in.size(), extra{});
  // The resolver's strings change as it learns: copy them into the batch,
  // once per distinct value (a batch usually names few VMs).
  std::vector<std::string_view> interned;
  auto intern = [&](std::string_view s) -> std::string_view {
    for (auto x : interned)
      if (x == s)
        return x;
    item.arena.emplace_back(s);
    interned.push_back(item.arena.back());
    return interned.back();
  };
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (is_hypervisor(in[i]))
      found.hv_newest = std::max(found.hv_newest, in[i].time);
    auto a = c.observe(source, in[i]);
    if (!a || a->vm.empty()) {
      if (is_guest(in[i]))
        ++found.guest_unattributed;
      continue;
    }
    extras[i] = {intern(a->vm), intern(a->vm_uuid), a->conflict};
    if (!found.guest && is_guest(in[i]))
      found.guest = owned_attribution{std::string{a->vm},
                                      std::string{a->vm_uuid}, a->conflict};
    ++found.attributed;
  }
  if (found.guest_unattributed > 0) {
    const auto* g = c.identity().find_source(source);
    found.guest_pending = g && g->state != binding_state::bound;
  }
  // Attributed first, the overlay rebuilt after: the views stay valid.
  if (found.attributed > 0)
    overlay(item, extras);
  return found;
}

std::optional<owned_attribution> bound_vm(const identity_resolver& r,
                                          std::string_view source_id) {
  const auto* g = r.find_source(source_id);
  if (!g || g->state != binding_state::bound)
    return std::nullopt;
  const auto* vm = r.find_vm(g->vm_uuid);
  if (!vm)
    return std::nullopt;
  return owned_attribution{vm->name, vm->uuid, g->conflict};
}

std::size_t attribute_guest_events(ingest_item& item,
                                   const owned_attribution& a) {
  auto in = item.events();
  std::vector<extra> extras(in.size());
  std::string_view vm, vm_uuid;
  std::size_t n = 0;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (!is_guest(in[i]) || in[i].find("vm"))
      continue;
    if (vm.empty()) {
      vm = item.arena.emplace_back(a.vm);
      vm_uuid = item.arena.emplace_back(a.vm_uuid);
    }
    extras[i] = {vm, vm_uuid, a.conflict};
    ++n;
  }
  if (n > 0)
    overlay(item, extras);
  return n;
}

bool batch_hold::take_resend(ingest_ptr& item, std::vector<ingest_ptr>& out) {
  auto it = held_.find(item->batch.source_id());
  if (it == held_.end())
    return false;
  auto seq = item->batch.sequence();
  auto& h = it->second;
  auto same = [&](const ingest_ptr& x) { return x->batch.sequence() == seq; };
  if (std::none_of(h.batches.begin(), h.batches.end(), same))
    return false;
  h.bytes += item->bytes;
  bytes_ += item->bytes;
  h.resends.push_back(std::move(item));
  ++counters_.resends;
  bound_bytes(out);
  return true;
}

void batch_hold::bound_bytes(std::vector<ingest_ptr>& out) {
  // The longest held sources go first.
  while (bytes_ > opts_.max_bytes && !held_.empty()) {
    auto oldest = std::min_element(
      held_.begin(), held_.end(), [](const auto& a, const auto& b) {
        return a.second.since < b.second.since;
      });
    release(oldest, nullptr, out);
  }
}

void batch_hold::admit(ingest_ptr item, const batch_attribution& found,
                       clock::time_point now, std::vector<ingest_ptr>& out) {
  hv_newest_ = std::max(hv_newest_, found.hv_newest);
  auto source = item->batch.source_id();
  auto it = held_.find(source);
  if (found.guest) {
    // A held guest is known: what waited goes first, with its VM, and so
    // do this batch's events from before the resolver knew it (an agent's
    // events are all its VM's). A source never held may be no agent (a
    // syslog relay attributed line by line): its batch stays as it is.
    if (it != held_.end()) {
      release(it, &*found.guest, out);
      if (found.guest_unattributed > 0)
        counters_.events_attributed
          += attribute_guest_events(*item, *found.guest);
    } else if (!settled_.contains(source)) {
      settled_.emplace(source);
    }
    out.push_back(std::move(item));
    return;
  }
  if (it == held_.end()) {
    if (!found.guest_pending || opts_.span <= 0
        || opts_.wall <= clock::duration::zero()
        || settled_.contains(source)) {
      out.push_back(std::move(item));
      return;
    }
    it = held_.emplace(std::string{source}, source_hold{}).first;
    it->second.since = now;
    it->second.hv_start = hv_newest_;
  }
  // Held, behind the source's earlier batches (their order is kept).
  auto& h = it->second;
  h.bytes += item->bytes;
  bytes_ += item->bytes;
  h.batches.push_back(std::move(item));
  bound_bytes(out);
}

void batch_hold::expire(clock::time_point now, std::vector<ingest_ptr>& out) {
  for (auto it = held_.begin(); it != held_.end();) {
    auto next = std::next(it);
    auto& h = it->second;
    // The hypervisors' time since the hold began (or since their first
    // sample, when none had come yet): two polls have passed without one
    // naming the VM. The guest's own times do not count: its first batch
    // may carry old log lines, or its clock may be off.
    if (h.hv_start == INT64_MIN)
      h.hv_start = hv_newest_;
    if (now - h.since >= opts_.wall
        || (h.hv_start != INT64_MIN && hv_newest_ - h.hv_start > opts_.span))
      release(it, nullptr, out);
    it = next;
  }
}

void batch_hold::settle(const identity_resolver& r,
                        std::vector<ingest_ptr>& out) {
  for (auto it = held_.begin(); it != held_.end();) {
    auto next = std::next(it);
    if (auto a = bound_vm(r, it->first))
      release(it, &*a, out);
    it = next;
  }
}

std::size_t batch_hold::drop_all() {
  std::size_t n = 0;
  for (const auto& [source, h] : held_)
    n += h.batches.size();
  held_.clear();
  bytes_ = 0;
  return n;
}

void batch_hold::release(string_map<source_hold>::iterator it,
                         const owned_attribution* a,
                         std::vector<ingest_ptr>& out) {
  auto& h = it->second;
  for (auto& b : h.batches) {
    if (a) {
      counters_.events_attributed += attribute_guest_events(*b, *a);
      ++counters_.attributed;
    } else {
      ++counters_.given_up;
    }
    out.push_back(std::move(b));
  }
  for (auto& b : h.resends)
    out.push_back(std::move(b));
  bytes_ -= h.bytes;
  settled_.insert(it->first);
  held_.erase(it);
}

} // namespace parallax
