#include "parallax/actors/parser.hpp"

#include "thread_priority.hpp"

#include "parallax/pipeline/logging.hpp"
#include "parallax/pipeline/vsphere.hpp"

#include <caf/actor_system.hpp>
#include <caf/sec.hpp>
#include <caf/spawn_options.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

namespace parallax {

namespace {

// The index of events that name none (as Splunk's).
constexpr std::string_view default_index = "main";

bool needs_parsing(const event_view& e, const compiled_rules& r) {
  return e.time == unknown_time || e.index.empty()
         || (e.raw && (!r.sed.empty() || r.kv != kv_mode::none))
         || e.sourcetype == vsphere_sourcetype;
}

bool has_field(std::span<const field_view> fields, std::size_t first,
               std::string_view name) {
  for (auto i = first; i < fields.size(); ++i)
    if (fields[i].name == name)
      return true;
  return false;
}

} // namespace

void parse_batch(ingest_item& item, const rulebook& book, time_ns now,
                 time_ns max_future, parse_counters& counters,
                 std::size_t max_fields) {
  auto in = item.batch.events();
  bool any = false;
  for (const auto& e : in)
    if (needs_parsing(e, book.find(e.sourcetype))) {
      any = true;
      break;
    }
  if (!any)
    return;
  item.parsed.assign(in.begin(), in.end());
  item.fields.clear();
  std::vector<std::size_t> first(in.size());
  std::vector<std::size_t> time_field(in.size(), SIZE_MAX);
  for (std::size_t i = 0; i < in.size(); ++i) {
    auto& e = item.parsed[i];
    const auto& rules = book.find(e.sourcetype);
    first[i] = item.fields.size();
    if (e.index.empty())
      e.index = default_index;
    if (e.raw && !rules.sed.empty()) {
      std::string text{*e.raw};
      bool changed = false;
      for (const auto& t : rules.sed)
        changed |= t.apply(text);
      if (changed) {
        item.arena.push_back(std::move(text));
        e.raw = std::string_view{item.arena.back()};
        ++counters.transformed;
      }
    }
    item.fields.insert(item.fields.end(), e.fields.begin(), e.fields.end());
    if (e.time == unknown_time) {
      if (e.raw)
        if (auto t = extract_time(*e.raw, rules.time, now,
                                  rules.time_lookahead);
            t && t->time >= 0 && t->time <= now + max_future) {
          e.time = t->time;
          ++counters.extracted;
        }
      time_field[i] = item.fields.size();
      item.fields.push_back(
        {"_time_source", std::string_view{e.time == unknown_time
                                            ? "received"
                                            : "extracted"}});
    }
    if (e.raw && rules.kv != kv_mode::none) {
      auto raw = *e.raw;
      extract_kv(raw, rules.kv, [&](std::string_view k, std::string_view v) {
        // The wire's field limit holds for parsed events too.
        if (item.fields.size() - first[i] >= max_fields)
          return;
        if (has_field(item.fields, first[i], k))
          return; // the sender's field, or an earlier pair, wins
        // Unquoted values view the raw text; unescaped quoted ones are
        // temporary and move into the arena.
        if (v.data() < raw.data() || v.data() >= raw.data() + raw.size()) {
          item.arena.emplace_back(v);
          v = item.arena.back();
        }
        item.fields.push_back({k, v});
        ++counters.kv_fields;
      });
    }
    if (e.sourcetype == vsphere_sourcetype) {
      std::vector<field_view> added;
      normalize_vsphere(
        std::span<const field_view>{item.fields.data() + first[i],
                                    item.fields.size() - first[i]},
        [&](std::string_view k, value_view v) { added.push_back({k, v}); });
      for (const auto& f : added)
        if (item.fields.size() - first[i] < max_fields)
          item.fields.push_back(f);
    }
  }
  // Times still unknown: the nearest event of the same source whose time
  // was sent or extracted, before it, else after it; else the receive time.
  std::vector<bool> known(in.size());
  for (std::size_t i = 0; i < in.size(); ++i)
    known[i] = item.parsed[i].time != unknown_time;
  for (std::size_t i = 0; i < in.size(); ++i) {
    auto& e = item.parsed[i];
    if (known[i])
      continue;
    std::optional<time_ns> t;
    for (auto j = i; j-- > 0 && !t;)
      if (known[j] && item.parsed[j].source == e.source)
        t = item.parsed[j].time;
    for (auto j = i + 1; j < in.size() && !t; ++j)
      if (known[j] && item.parsed[j].source == e.source)
        t = item.parsed[j].time;
    if (t) {
      e.time = *t;
      item.fields[time_field[i]].value = std::string_view{"interpolated"};
      ++counters.interpolated;
    } else {
      e.time = item.times.received;
      ++counters.received;
    }
  }
  // The field vector no longer grows: point each event at its fields.
  for (std::size_t i = 0; i < in.size(); ++i) {
    auto end = i + 1 < in.size() ? first[i + 1] : item.fields.size();
    item.parsed[i].fields = std::span<const field_view>{
      item.fields.data() + first[i], end - first[i]};
  }
}

parser_actor::behavior_type
parser(parser_actor::stateful_pointer<parser_state> self, parser_config cfg) {
  auto book = rulebook::make(cfg.rules);
  if (!book || !cfg.metrics || !cfg.next) {
    self->quit(caf::make_error(caf::sec::invalid_argument,
                               book ? std::string{"parser: metrics and next "
                                                  "stage are required"}
                                    : book.error().message));
    return parser_actor::behavior_type::make_empty_behavior();
  }
  detail::set_thread_name("plx-parser");
  // The correlator says it when it cannot have the same.
  if (auto why = detail::set_thread_priority(cfg.rt_priority, cfg.nice);
      !why.empty())
    log::debug("parser", "{}", why);
  auto& st = self->state;
  st.book = std::make_shared<const rulebook>(std::move(*book));
  st.cfg = std::move(cfg);
  auto& m = *st.cfg.metrics;
  st.received = &m.get("parser", "received_events_total");
  st.sent = &m.get("parser", "sent_events_total");
  st.extracted = &m.get("parser", "times_total", "extracted");
  st.interpolated = &m.get("parser", "times_total", "interpolated");
  st.received_time = &m.get("parser", "times_total", "received");
  st.kv_fields = &m.get("parser", "kv_fields_total");
  st.transformed = &m.get("parser", "transformed_events_total");
  return {
    [=](ingest_atom, ingest_ptr& item) {
      auto& s = self->state;
      auto n = item->batch.events().size();
      s.received->add(n);
      parse_counters c;
      parse_batch(*item, *s.book, now_ns(), to_ns(s.cfg.max_future), c,
                  s.cfg.max_fields);
      s.extracted->add(c.extracted);
      s.interpolated->add(c.interpolated);
      s.received_time->add(c.received);
      s.kv_fields->add(c.kv_fields);
      s.transformed->add(c.transformed);
      s.sent->add(n);
      item->times.passed_on = now_ns();
      self->send(s.cfg.next, ingest_atom::value, std::move(item));
    },
  };
}

parser_actor spawn_parser(caf::actor_system& sys, parser_config cfg) {
  // A thread of its own, at the correlator's priority: on the shared
  // scheduler at nice 0, batches waited for it behind the work of other
  // threads. `parallax bench correlate --burst` (every agent sending at
  // once) traced 7.3 ms (median) between the collector and the parser for
  // the batches whose deltas came late, against 0.01 ms in the correlator.
  return sys.spawn<caf::detached>(parser, std::move(cfg));
}

} // namespace parallax
