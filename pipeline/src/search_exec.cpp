// Search execution: planning, the per-bucket map phase, merging partials,
// and the commands that need every row.

#include "search_internal.hpp"

#include "parallax/storage/store.hpp"
#include "parallax/storage/tokenizer.hpp"

#include <algorithm>
#include <bitset>
#include <chrono>
#include <cmath>
#include <unordered_set>

#include <fmt/format.h>

namespace parallax::search {

using namespace internal;

namespace {

constexpr time_ns ns_per_s = 1'000'000'000;

bool is_default_field(std::string_view f) {
  return f == "index" || f == "host" || f == "source" || f == "sourcetype";
}

time_ns steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::steady_clock::now().time_since_epoch())
    .count();
}

// -- events as the matcher sees them ---------------------------------------------

class event_accessor final : public accessor {
public:
  explicit event_accessor(const event_view& e) : e_{e} {
  }

  fv lookup(std::string_view name) const override {
    auto text = [](std::string_view s) {
      return s.empty() ? fv{} : fv{fv::text, 0, s};
    };
    if (name == "index")
      return text(e_.index);
    if (name == "host")
      return text(e_.host);
    if (name == "source")
      return text(e_.source);
    if (name == "sourcetype")
      return text(e_.sourcetype);
    if (name == "_time")
      return {fv::number, static_cast<double>(e_.time) / 1e9, {}};
    if (name == "_raw")
      return e_.raw ? fv{fv::text, 0, *e_.raw} : fv{};
    auto v = e_.find(name);
    if (!v)
      return {};
    switch (v->index()) {
      case 0:
        return {fv::text, 0, std::get<std::string_view>(*v)};
      case 1:
        return {fv::number, static_cast<double>(std::get<std::int64_t>(*v)),
                {}};
      case 2:
        if (!std::isfinite(std::get<double>(*v)))
          return {};
        return {fv::number, std::get<double>(*v), {}};
      default:
        return {fv::text, 0, std::get<bool>(*v) ? "true" : "false"};
    }
  }

  std::optional<std::string_view> raw() const override {
    return e_.raw;
  }

private:
  const event_view& e_;
};

} // namespace

// The names an aggregating query reads from events. Most of an event's
// fields are not among them, and a bitmap over (length, first byte)
// rejects those without comparing text.
struct field_need {
  std::set<std::string, std::less<>> names;
  std::bitset<1024> maybe;

  static std::size_t slot(std::string_view n) noexcept {
    return (n.size() & 31) * 32
           + (n.empty() ? 0 : static_cast<unsigned char>(n[0]) & 31);
  }
  void insert(std::string name) {
    maybe.set(slot(name));
    names.insert(std::move(name));
  }
  bool contains(std::string_view n) const {
    return maybe.test(slot(n)) && names.contains(n);
  }
};

namespace {

// The row of an event: _time, the default fields, _raw, then its fields (the
// first of a repeated name; the default fields win over copies).
//
// With `need`, only the fields it names (and _time and the default fields):
// an aggregating query reads a handful of an event's fields, and building
// the row is most of its cost per event.
row materialize(const event_view& e, const field_need* need = nullptr) {
  row r;
  r.cells.reserve(6 + (need ? need->names.size() : e.fields.size()));
  r.cells.emplace_back("_time", static_cast<double>(e.time) / 1e9);
  auto def = [&](std::string_view name, std::string_view v) {
    if (!v.empty())
      r.cells.emplace_back(std::string{name}, std::string{v});
  };
  def("index", e.index);
  def("host", e.host);
  def("source", e.source);
  def("sourcetype", e.sourcetype);
  if (e.raw && (!need || need->contains("_raw")))
    r.cells.emplace_back("_raw", std::string{*e.raw});
  for (const auto& f : e.fields) {
    if ((need && !need->contains(f.name)) || is_default_field(f.name)
        || f.name == "_time" || f.name == "_raw" || r.get(f.name))
      continue;
    val v;
    switch (f.value.index()) {
      case 0:
        v = std::string{std::get<std::string_view>(f.value)};
        break;
      case 1:
        v = static_cast<double>(std::get<std::int64_t>(f.value));
        break;
      case 2:
        if (!std::isfinite(std::get<double>(f.value)))
          continue; // not a number a query can use (nor a rollup)
        v = std::get<double>(f.value);
        break;
      default:
        v = std::string{std::get<bool>(f.value) ? "true" : "false"};
    }
    r.cells.emplace_back(std::string{f.name}, std::move(v));
  }
  return r;
}

double row_time(const row& r) {
  auto v = r.get("_time");
  auto d = v ? std::get_if<double>(v) : nullptr;
  return d ? *d : 0;
}

// -- aggregation ---------------------------------------------------------------------

class aggregator {
public:
  aggregator(const command& c, time_ns span) : c_{c}, span_{span} {
  }

  /// Folds a row in with weight `n` (tuple counts: count aggregations only).
  void add(const row& r, partial& p, std::uint64_t n = 1) const {
    key_.clear();
    using k = command::kind;
    if (c_.k == k::timechart) {
      auto t = row_time(r);
      auto span_s = static_cast<double>(span_) / 1e9;
      key_.push_back(number_text(std::floor(t / span_s) * span_s));
      if (!c_.by.empty()) {
        auto v = r.get(c_.by.front());
        key_.push_back(v && !std::holds_alternative<std::monostate>(*v)
                         ? to_text(*v)
                         : std::string{"NULL"});
      }
    } else {
      for (const auto& f : c_.by)
        if (!push_key(r, f))
          return;
      if (c_.k == k::top || c_.k == k::rare)
        for (const auto& f : c_.fields)
          if (!push_key(r, f))
            return;
    }
    auto [it, fresh] = p.groups.try_emplace(key_);
    auto& states = it->second;
    if (fresh) {
      states.resize(std::max<std::size_t>(1, c_.aggregations.size()));
      p.bytes += 64 + 48 * states.size();
      for (const auto& s : key_)
        p.bytes += 32 + s.size();
    }
    if (c_.k == k::top || c_.k == k::rare) {
      states[0].count += n;
      return;
    }
    for (std::size_t i = 0; i < c_.aggregations.size(); ++i)
      fold(c_.aggregations[i], states[i], r, p, n);
  }

private:
  bool push_key(const row& r, const std::string& f) const {
    auto v = r.get(f);
    if (!v || std::holds_alternative<std::monostate>(*v))
      return false;
    key_.push_back(to_text(*v));
    return true;
  }

  static void fold(const aggregation& a, agg_state& s, const row& r,
                   partial& p, std::uint64_t n) {
    if (a.fn == "count" && a.field.empty()) {
      s.count += n;
      return;
    }
    auto v = r.get(a.field);
    if (!v || std::holds_alternative<std::monostate>(*v))
      return;
    if (a.fn == "count") {
      s.count += n;
      return;
    }
    if (a.fn == "dc" || a.fn == "values") {
      auto t = to_text(*v);
      if (s.distinct.insert(t).second)
        p.bytes += 48 + t.size();
      ++s.count;
      return;
    }
    if (a.fn == "earliest" || a.fn == "latest") {
      auto t = static_cast<time_ns>(std::llround(row_time(r) * 1e9));
      auto text = to_text(*v);
      bool first = s.count == 0;
      if (first || t < s.first_time
          || (t == s.first_time && text < s.first_value)) {
        s.first_time = t;
        s.first_value = text;
      }
      if (first || t > s.last_time
          || (t == s.last_time && text > s.last_value)) {
        s.last_time = t;
        s.last_value = std::move(text);
      }
      ++s.count;
      return;
    }
    auto x = to_number(*v);
    ++s.count;
    if (!x)
      return;
    if (a.fn == "median" || a.fn == "perc") {
      s.samples.push_back(*x);
      p.bytes += sizeof(double);
    }
    if (s.numeric == 0) {
      s.min = s.max = *x;
    } else {
      s.min = std::min(s.min, *x);
      s.max = std::max(s.max, *x);
    }
    ++s.numeric;
    s.sum += *x;
    // Welford: stable for stdev, and mergeable (Chan et al.).
    auto delta = *x - s.mean;
    s.mean += delta / static_cast<double>(s.numeric);
    s.m2 += delta * (*x - s.mean);
  }

  const command& c_;
  time_ns span_;
  mutable std::vector<std::string> key_;
};

void merge_state(agg_state& a, agg_state&& b) {
  if (b.numeric > 0) {
    if (a.numeric == 0) {
      a.min = b.min;
      a.max = b.max;
      a.mean = b.mean;
      a.m2 = b.m2;
    } else {
      a.min = std::min(a.min, b.min);
      a.max = std::max(a.max, b.max);
      auto na = static_cast<double>(a.numeric);
      auto nb = static_cast<double>(b.numeric);
      auto delta = b.mean - a.mean;
      a.mean += delta * nb / (na + nb);
      a.m2 += b.m2 + delta * delta * na * nb / (na + nb);
    }
    a.sum += b.sum;
  }
  bool a_empty = a.count == 0;
  if (b.count > 0) {
    if (a_empty || b.first_time < a.first_time
        || (b.first_time == a.first_time && b.first_value < a.first_value)) {
      a.first_time = b.first_time;
      a.first_value = std::move(b.first_value);
    }
    if (a_empty || b.last_time > a.last_time
        || (b.last_time == a.last_time && b.last_value > a.last_value)) {
      a.last_time = b.last_time;
      a.last_value = std::move(b.last_value);
    }
  }
  a.count += b.count;
  a.numeric += b.numeric;
  a.distinct.merge(b.distinct);
  a.samples.insert(a.samples.end(), b.samples.begin(), b.samples.end());
}

val finish_state(const aggregation& a, const agg_state& s) {
  auto text_or_number = [](const std::string& t) -> val {
    if (auto x = to_number(std::string_view{t}))
      return *x;
    return t;
  };
  if (a.fn == "count")
    return static_cast<double>(s.count);
  if (a.fn == "dc")
    return static_cast<double>(s.distinct.size());
  if (a.fn == "values") {
    if (s.distinct.empty())
      return {};
    return multi{s.distinct.begin(), s.distinct.end()};
  }
  if (a.fn == "earliest")
    return s.count ? text_or_number(s.first_value) : val{};
  if (a.fn == "latest")
    return s.count ? text_or_number(s.last_value) : val{};
  if (s.numeric == 0)
    return {};
  auto n = static_cast<double>(s.numeric);
  if (a.fn == "sum")
    return s.sum;
  if (a.fn == "avg")
    return s.sum / n;
  if (a.fn == "min")
    return s.min;
  if (a.fn == "max")
    return s.max;
  if (a.fn == "stdev")
    return s.numeric < 2 ? 0.0 : std::sqrt(std::max(0.0, s.m2 / (n - 1)));
  // median, perc: nearest rank.
  auto v = s.samples;
  std::sort(v.begin(), v.end());
  double p = a.fn == "median" ? 50 : a.percentile;
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * n));
  rank = std::clamp<std::size_t>(rank, 1, v.size());
  return v[rank - 1];
}

// Rows of an aggregated partial, for the command that made it.
// A timechart's bins span `range` (event times, inclusive) when given, else
// the bins that have data.
result<std::vector<row>> rows_of(const command& c, partial&& p, time_ns span,
                                 std::optional<std::pair<time_ns, time_ns>>
                                   range = std::nullopt) {
  using k = command::kind;
  std::vector<row> out;
  if (c.k == k::stats) {
    if (p.groups.empty() && c.by.empty())
      p.groups[{}].resize(c.aggregations.size());
    for (auto& [key, states] : p.groups) {
      row r;
      // By-values stay text ("042" is not 42); sorting compares numbers.
      for (std::size_t i = 0; i < c.by.size(); ++i)
        r.set(c.by[i], key[i]);
      for (std::size_t i = 0; i < c.aggregations.size(); ++i)
        r.set(c.aggregations[i].as,
              finish_state(c.aggregations[i], states[i]));
      out.push_back(std::move(r));
    }
    // Groups sort by their text; numbers among them by value.
    if (!c.by.empty())
      std::stable_sort(out.begin(), out.end(), [&](const row& a,
                                                   const row& b) {
        for (const auto& f : c.by) {
          auto x = a.get(f), y = b.get(f);
          auto nx = to_number(*x), ny = to_number(*y);
          if (nx && ny) {
            if (*nx != *ny)
              return *nx < *ny;
            continue;
          }
          auto tx = to_text(*x), ty = to_text(*y);
          if (tx != ty)
            return tx < ty;
        }
        return false;
      });
    return out;
  }
  if (c.k == k::top || c.k == k::rare) {
    // key = by-values, then field values.
    std::map<std::vector<std::string>,
             std::vector<std::pair<std::vector<std::string>, std::uint64_t>>>
      by_group;
    for (auto& [key, states] : p.groups) {
      std::vector<std::string> g(key.begin(), key.begin()
                                                + static_cast<long>(c.by.size()));
      std::vector<std::string> f(key.begin() + static_cast<long>(c.by.size()),
                                 key.end());
      by_group[g].emplace_back(std::move(f), states[0].count);
    }
    for (auto& [g, entries] : by_group) {
      std::uint64_t total = 0;
      for (const auto& e : entries)
        total += e.second;
      std::stable_sort(entries.begin(), entries.end(),
                       [&](const auto& a, const auto& b) {
                         if (a.second != b.second)
                           return c.k == k::top ? a.second > b.second
                                                : a.second < b.second;
                         return a.first < b.first;
                       });
      if (c.limit > 0 && entries.size() > c.limit)
        entries.resize(c.limit);
      for (const auto& [f, n] : entries) {
        row r;
        for (std::size_t i = 0; i < c.by.size(); ++i)
          r.set(c.by[i], g[i]);
        for (std::size_t i = 0; i < c.fields.size(); ++i)
          r.set(c.fields[i], f[i]);
        r.set("count", static_cast<double>(n));
        r.set("percent", static_cast<double>(n) * 100.0
                           / static_cast<double>(total));
        out.push_back(std::move(r));
      }
    }
    return out;
  }
  // timechart: one row per bin from the first to the last, empty bins
  // included.
  std::map<double, std::map<std::string, const std::vector<agg_state>*>> bins;
  std::set<std::string> series;
  for (const auto& [key, states] : p.groups) {
    auto t = to_number(std::string_view{key[0]}).value_or(0);
    auto s = key.size() > 1 ? key[1] : std::string{};
    bins[t][s] = &states;
    series.insert(s);
  }
  if (c.by.empty())
    series.insert(std::string{}); // the aggregations' own columns
  auto span_s = static_cast<double>(span) / 1e9;
  auto bin_of = [&](time_ns t) {
    return std::floor(static_cast<double>(t) / 1e9 / span_s) * span_s;
  };
  if (range && range->first > range->second)
    return out;
  if (!range && bins.empty())
    return out;
  auto first = range ? bin_of(range->first) : bins.begin()->first;
  auto last = range ? bin_of(range->second) : bins.rbegin()->first;
  auto count = (last - first) / span_s + 1;
  if (count > 100'000)
    return error{ec::query_limit,
                 fmt::format("timechart would make {:.0f} bins; use a larger "
                             "span=",
                             count)};
  std::vector<agg_state> empty(c.aggregations.size());
  for (std::size_t b = 0; b < static_cast<std::size_t>(std::llround(count));
       ++b) {
    auto t = first + static_cast<double>(b) * span_s;
    if (b + 1 == static_cast<std::size_t>(std::llround(count)))
      t = last; // no drift from adding spans
    row r;
    r.set("_time", t);
    // Bin keys were printed and parsed: find them within a fraction of a
    // span.
    auto it = bins.lower_bound(t - span_s / 4);
    if (it != bins.end() && it->first > t + span_s / 4)
      it = bins.end();
    for (const auto& s : series) {
      const std::vector<agg_state>* states = &empty;
      if (it != bins.end())
        if (auto j = it->second.find(s); j != it->second.end())
          states = j->second;
      for (std::size_t i = 0; i < c.aggregations.size(); ++i) {
        const auto& a = c.aggregations[i];
        std::string name = c.by.empty() ? a.as
                           : c.aggregations.size() == 1
                             ? s
                             : fmt::format("{}: {}", a.as, s);
        r.set(name, finish_state(a, (*states)[i]));
      }
    }
    out.push_back(std::move(r));
  }
  return out;
}

// -- the index --------------------------------------------------------------------

using id_list = std::vector<std::uint64_t>;

id_list intersect(const id_list& a, const id_list& b) {
  id_list out;
  std::set_intersection(a.begin(), a.end(), b.begin(), b.end(),
                        std::back_inserter(out));
  return out;
}

id_list unite(const id_list& a, const id_list& b) {
  id_list out;
  std::set_union(a.begin(), a.end(), b.begin(), b.end(),
                 std::back_inserter(out));
  return out;
}

// The per-bucket context of index lookups.
struct bucket_index {
  const storage::snapshot& st; // one snapshot: ids and blocks agree
  bool has_tuples;
  std::int64_t bucket;
  const schema& late;
  error err;
  std::optional<std::vector<storage::store::tuple_count>> tuples;
  bool tuples_complete = false;
  std::uint64_t events = 0;

  std::optional<id_list> postings(std::string_view term) {
    auto p = st.postings(bucket, term);
    if (!p) {
      err = p.error();
      return id_list{};
    }
    return std::move(*p);
  }

  const std::vector<storage::store::tuple_count>* all_tuples() {
    if (!tuples) {
      auto t = st.tuples(bucket);
      if (!t) {
        err = t.error();
        tuples.emplace();
        return nullptr;
      }
      std::uint64_t sum = 0;
      for (const auto& x : *t)
        sum += x.count;
      tuples_complete = has_tuples && sum == events;
      tuples = std::move(*t);
    }
    return tuples_complete ? &*tuples : nullptr;
  }

  // A value with a wildcard can be looked up only for default fields: their
  // values are listed in the tuples table, so every match is known.
  std::optional<id_list> default_glob(const std::string& field,
                                      std::string_view pattern) {
    auto all = all_tuples();
    if (!all)
      return std::nullopt;
    std::set<std::string> values;
    for (const auto& t : *all) {
      const std::string& v = field == "index"  ? t.index
                             : field == "host" ? t.host
                             : field == "source" ? t.source
                                                 : t.sourcetype;
      if (!v.empty() && compare({fv::text, 0, v}, "=", pattern))
        values.insert(lower(v));
    }
    id_list out;
    std::string term;
    for (const auto& v : values) {
      if (!storage::field_term_into(term, field, v))
        return std::nullopt; // a value too long for the index: scan
      auto p = postings(term);
      out = unite(out, *p);
    }
    return out;
  }

  // The events of `field = value` from the index, or nullopt when the
  // index cannot answer it exactly (the caller then reads every event).
  std::optional<id_list> equals(const std::string& field,
                                std::string_view value) {
    if (field == "_time" || field == "_raw" || late.late_fields.contains(field)
        || value.empty())
      return std::nullopt;
    // Numbers compare by value and numeric fields are not indexed.
    if (to_number(value))
      return std::nullopt;
    if (value.find('*') != std::string_view::npos) {
      if (is_default_field(field))
        return default_glob(field, value);
      return std::nullopt;
    }
    std::string term;
    if (!storage::field_term_into(term, field, value))
      return std::nullopt;
    return postings(term);
  }

  // Ids of events whose raw text has every whole token of `text`.
  std::optional<id_list> all_terms(std::string_view text) {
    std::optional<id_list> out;
    std::vector<std::string> terms;
    // Whole tokens only: every event with the phrase has them.
    std::size_t i = 0;
    while (i < text.size()) {
      while (i < text.size()
             && storage::breaker_table[static_cast<unsigned char>(text[i])]
                  == storage::breaker::major)
        ++i;
      auto s = i;
      while (i < text.size()
             && storage::breaker_table[static_cast<unsigned char>(text[i])]
                  != storage::breaker::major)
        ++i;
      if (i > s && i - s <= storage::max_term_bytes)
        terms.push_back(lower(text.substr(s, i - s)));
    }
    for (const auto& t : terms) {
      auto p = postings(t);
      out = out ? intersect(*out, *p) : std::move(*p);
      if (out->empty())
        break;
    }
    return out;
  }

  std::optional<id_list> candidates(const search_node& n) {
    using k = search_node::kind;
    switch (n.k) {
      case k::all:
        return std::nullopt;
      case k::keyword:
        if (n.text.find('*') != std::string::npos)
          return std::nullopt;
        if (has_major_breaker(n.text))
          return all_terms(n.text);
        if (n.text.size() > storage::max_term_bytes)
          return id_list{};
        return postings(n.text);
      case k::phrase:
        return all_terms(n.text);
      case k::compare:
        if (n.op != "=")
          return std::nullopt;
        return equals(n.field, n.text);
      case k::in_list: {
        id_list out;
        for (const auto& v : n.values) {
          auto p = equals(n.field, v);
          if (!p)
            return std::nullopt;
          out = unite(out, *p);
        }
        return out;
      }
      case k::and_: {
        std::optional<id_list> out;
        for (const auto& c : n.children) {
          auto p = candidates(c);
          if (!p)
            continue;
          out = out ? intersect(*out, *p) : std::move(*p);
          if (out->empty())
            break;
        }
        return out;
      }
      case k::or_: {
        id_list out;
        for (const auto& c : n.children) {
          auto p = candidates(c);
          if (!p)
            return std::nullopt;
          out = unite(out, *p);
        }
        return out;
      }
      case k::not_:
        return std::nullopt;
    }
    return std::nullopt;
  }
};

// True if every comparison of the clause is on a field `allowed` accepts
// (and it has no keyword or phrase): tuple counts can evaluate it exactly
// when those are the default fields, rollups when it is `host`.
template <class Allowed>
bool only_fields(const search_node& n, Allowed allowed) {
  using k = search_node::kind;
  switch (n.k) {
    case k::all:
      return true;
    case k::compare:
    case k::in_list:
      return allowed(n.field);
    case k::and_:
    case k::or_:
    case k::not_:
      return std::all_of(n.children.begin(), n.children.end(),
                         [&](const search_node& c) {
                           return only_fields(c, allowed);
                         });
    default:
      return false;
  }
}

bool tuple_filter(const search_node& n) {
  return only_fields(n, is_default_field);
}

bool host_filter(const search_node& n) {
  return only_fields(n, [](std::string_view f) { return f == "host"; });
}

// Sorts rows newest first by their event times (stable).
void newest_first(partial& p) {
  std::vector<std::size_t> order(p.rows.size());
  for (std::size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) {
    return p.times[a] > p.times[b];
  });
  std::vector<row> rows;
  std::vector<double> times;
  rows.reserve(order.size());
  times.reserve(order.size());
  for (auto i : order) {
    rows.push_back(std::move(p.rows[i]));
    times.push_back(p.times[i]);
  }
  p.rows = std::move(rows);
  p.times = std::move(times);
}

// Merges the newest-first rows of `from` into those of `into`.
void merge_newest(partial& into, partial&& from) {
  std::vector<row> rows;
  std::vector<double> times;
  rows.reserve(into.rows.size() + from.rows.size());
  times.reserve(rows.capacity());
  std::size_t i = 0, j = 0;
  while (i < into.rows.size() || j < from.rows.size()) {
    bool take_into = j >= from.rows.size()
                     || (i < into.rows.size()
                         && into.times[i] >= from.times[j]);
    auto& src = take_into ? into : from;
    auto& k = take_into ? i : j;
    rows.push_back(std::move(src.rows[k]));
    times.push_back(src.times[k]);
    ++k;
  }
  into.rows = std::move(rows);
  into.times = std::move(times);
}

// What `dedup` compares: the fields' values as text; none when one of them
// is missing or null (such rows are dropped).
std::optional<std::vector<std::string>>
dedup_key(const row& r, const std::vector<std::string>& fields) {
  std::vector<std::string> key;
  for (const auto& f : fields) {
    auto v = r.get(f);
    if (!v || std::holds_alternative<std::monostate>(*v))
      return std::nullopt;
    key.push_back(to_text(*v));
  }
  return key;
}

// `dedup` right after the map phase's commands keeps the first row per key
// in newest-first order; over newest-first rows that is the newest per
// key, so a bucket (and a merge of buckets) may drop the others at once
// instead of holding every row until the end. The central dedup then sees
// the same first rows.
void dedup_newest(partial& p, const std::vector<std::string>& fields) {
  std::set<std::vector<std::string>> seen;
  std::size_t kept = 0;
  p.bytes = 0;
  for (std::size_t i = 0; i < p.rows.size(); ++i) {
    auto key = dedup_key(p.rows[i], fields);
    if (!key || !seen.insert(std::move(*key)).second)
      continue;
    if (kept != i) {
      p.rows[kept] = std::move(p.rows[i]);
      p.times[kept] = p.times[i];
    }
    p.bytes += row_bytes(p.rows[kept]);
    ++kept;
  }
  p.rows.resize(kept);
  p.times.resize(kept);
}

void truncate(partial& p, std::size_t keep) {
  if (p.rows.size() > keep) {
    p.rows.resize(keep);
    p.times.resize(keep);
  }
}

int compare_cells(const val* a, const val* b) {
  bool na = !a || std::holds_alternative<std::monostate>(*a);
  bool nb = !b || std::holds_alternative<std::monostate>(*b);
  if (na || nb)
    return na == nb ? 0 : (na ? 1 : -1); // nulls last
  auto x = to_number(*a), y = to_number(*b);
  if (x && y)
    return *x < *y ? -1 : (*x > *y ? 1 : 0);
  if (x != y) // numbers before text
    return x ? -1 : 1;
  auto s = to_text(*a), t = to_text(*b);
  return s < t ? -1 : (s > t ? 1 : 0);
}

} // namespace

// -- commands over all rows ---------------------------------------------------------

namespace internal {

error apply_central(const command& c, std::vector<row>& rows,
                    const options& opts) {
  using k = command::kind;
  switch (c.k) {
    case k::sort:
      std::stable_sort(rows.begin(), rows.end(),
                       [&](const row& a, const row& b) {
                         for (const auto& [f, desc] : c.sort_keys) {
                           auto x = compare_cells(a.get(f), b.get(f));
                           if (x != 0) {
                             // nulls stay last either way
                             bool null_a = !a.get(f);
                             bool null_b = !b.get(f);
                             if (null_a || null_b)
                               return x < 0;
                             return desc ? x > 0 : x < 0;
                           }
                         }
                         return false;
                       });
      if (c.limit > 0 && rows.size() > c.limit)
        rows.resize(c.limit);
      return {};
    case k::head:
      if (rows.size() > c.limit)
        rows.resize(c.limit);
      return {};
    case k::tail: {
      // The last N, the last first (as SPL's tail).
      std::vector<row> out;
      for (std::size_t i = rows.size(); i > 0 && out.size() < c.limit; --i)
        out.push_back(std::move(rows[i - 1]));
      rows = std::move(out);
      return {};
    }
    case k::dedup: {
      std::set<std::vector<std::string>> seen;
      std::vector<row> out;
      for (auto& r : rows)
        if (auto key = dedup_key(r, c.fields);
            key && seen.insert(std::move(*key)).second)
          out.push_back(std::move(r));
      rows = std::move(out);
      return {};
    }
    case k::stats:
    case k::timechart:
    case k::top:
    case k::rare: {
      time_ns span = c.span;
      if (c.k == k::timechart && span == 0)
        span = 60 * ns_per_s;
      aggregator agg{c, span};
      partial p;
      p.aggregated = true;
      for (const auto& r : rows) {
        agg.add(r, p);
        if (p.bytes > opts.max_memory)
          return error{ec::query_limit,
                       fmt::format("the query holds more than {} MiB; narrow "
                                   "it or raise parallax.search.max-memory",
                                   opts.max_memory >> 20)};
      }
      auto out = rows_of(c, std::move(p), span);
      if (!out)
        return out.error();
      rows = std::move(*out);
      return {};
    }
    default: {
      std::vector<row> out;
      for (auto& r : rows)
        if (stream(c, r))
          out.push_back(std::move(r));
      rows = std::move(out);
      return {};
    }
  }
}

} // namespace internal

// -- the plan ---------------------------------------------------------------------

struct plan::detail {
  // Folds a bucket's rollups into `p` if they hold exactly what reading its
  // events would: every value of the aggregated fields is a number (no
  // text or boolean value in the summaries), and every host's series has
  // rollups (its key fits LMDB's limit). False: read the events instead.
  static bool from_rollups(const plan& pl, const storage::snapshot& st,
                           std::int64_t bucket, bucket_index& idx,
                           partial& p) {
    const auto& c = pl.q_.commands.front();
    auto tuples = idx.all_tuples();
    if (!tuples)
      return false;
    std::set<std::string, std::less<>> fields;
    for (const auto& a : c.aggregations)
      fields.insert(a.field);
    for (const auto& f : fields) {
      auto text = st.summaries(bucket, f + "=");
      if (!text) {
        idx.err = text.error();
        return false;
      }
      if (!text->empty())
        return false;
      for (const auto& t : *tuples)
        if (t.host.size() + f.size() + 18 > 511)
          return false;
    }
    auto rolls = st.rollups(bucket);
    if (!rolls) {
      idx.err = rolls.error();
      return false;
    }
    using k = command::kind;
    auto span = c.span;
    auto key_of = [&](const std::string& host,
                      time_ns t) -> std::optional<std::vector<std::string>> {
      std::vector<std::string> key;
      if (c.k == k::timechart) {
        auto span_s = static_cast<double>(span) / 1e9;
        key.push_back(number_text(
          std::floor(static_cast<double>(t) / 1e9 / span_s) * span_s));
        if (!c.by.empty())
          key.push_back(host.empty() ? std::string{"NULL"} : host);
      } else if (!c.by.empty()) {
        if (host.empty())
          return std::nullopt;
        key.push_back(host);
      }
      return key;
    };
    auto group = [&](const std::vector<std::string>& key) -> auto& {
      auto [it, fresh] = p.groups.try_emplace(key);
      if (fresh)
        it->second.resize(c.aggregations.size());
      return it->second;
    };
    auto passes = [&](const std::string& host) {
      row r;
      if (!host.empty())
        r.cells.emplace_back("host", host);
      return matches(pl.q_.filter, row_accessor{r});
    };
    // Every host with events that pass makes its group (or series), with
    // or without values, as reading the events would.
    for (const auto& t : *tuples)
      if (passes(t.host)) {
        p.stats.events_matched += t.count;
        if (auto key = key_of(t.host, pl.data_lo_); key
                                                    && c.k == k::stats)
          group(*key);
        else if (key && !c.by.empty())
          group(*key); // a series; its bin lies in the range
      }
    for (auto& r : *rolls) {
      if (!fields.contains(r.metric) || !passes(r.host))
        continue;
      auto key = key_of(r.host, r.interval_start);
      if (!key)
        continue;
      auto& states = group(*key);
      for (std::size_t i = 0; i < c.aggregations.size(); ++i) {
        if (c.aggregations[i].field != r.metric || r.cell.count == 0)
          continue;
        agg_state cell;
        cell.count = cell.numeric = r.cell.count;
        cell.sum = r.cell.sum;
        cell.min = r.cell.min;
        cell.max = r.cell.max;
        auto n = static_cast<double>(r.cell.count);
        cell.mean = r.cell.sum / n;
        cell.m2 = std::max(0.0, r.cell.sum_sq - r.cell.sum * r.cell.sum / n);
        merge_state(states[i], std::move(cell));
      }
    }
    p.stats.buckets_from_rollups = 1;
    return true;
  }

  // Rows the map phase must keep per bucket in events mode: a head right
  // after the streaming commands, or the result limit when nothing
  // follows; otherwise all.
  static std::size_t keep(const plan& p) {
    const auto& cmds = p.q_.commands;
    auto split = static_cast<std::size_t>(p.split_);
    if (split == cmds.size())
      return p.opts_.max_results;
    if (cmds[split].k == command::kind::head)
      return std::min(cmds[split].limit, p.opts_.max_results);
    return std::numeric_limits<std::size_t>::max();
  }

  static bool aggregated(const plan& p) {
    auto split = static_cast<std::size_t>(p.split_);
    return split < p.q_.commands.size()
           && is_transform(p.q_.commands[split].k);
  }

  static time_ns span(const plan& p) {
    auto split = static_cast<std::size_t>(p.split_);
    return split < p.q_.commands.size() ? p.q_.commands[split].span : 0;
  }
};


// The fields an aggregating query reads from events: those its search
// clauses, streaming commands and aggregation name, plus every input of
// the search-time rules. Null when that is not a closed set (events mode,
// wildcard field names).
void expr_fields(const expr& x, std::set<std::string, std::less<>>& out) {
  if (x.k == expr::kind::field)
    out.insert(x.name);
  for (const auto& a : x.args)
    if (a)
      expr_fields(*a, out);
}

void node_fields(const search_node& n, std::set<std::string, std::less<>>& out) {
  if (n.k == search_node::kind::keyword || n.k == search_node::kind::phrase)
    out.insert("_raw");
  if (!n.field.empty())
    out.insert(n.field);
  for (const auto& c : n.children)
    node_fields(c, out);
}

std::shared_ptr<const field_need>
needed_fields(const query& q, std::size_t split, const schema& late) {
  using k = command::kind;
  if (split >= q.commands.size() || !is_transform(q.commands[split].k))
    return nullptr;
  std::set<std::string, std::less<>> names;
  node_fields(q.filter, names);
  for (std::size_t i = 0; i <= split; ++i) {
    const auto& c = q.commands[i];
    switch (c.k) {
      case k::search:
        node_fields(c.filter, names);
        break;
      case k::where:
        if (c.condition)
          expr_fields(*c.condition, names);
        break;
      case k::eval:
        for (const auto& [name, x] : c.evals)
          if (x)
            expr_fields(*x, names);
        break;
      case k::rename:
        for (const auto& [from, to] : c.renames)
          names.insert(from);
        break;
      case k::rex:
        names.insert(c.rex_field);
        break;
      default:
        break;
    }
    for (const auto& a : c.aggregations)
      names.insert(a.field);
    names.insert(c.by.begin(), c.by.end());
    names.insert(c.fields.begin(), c.fields.end());
    for (const auto& [name, desc] : c.sort_keys)
      names.insert(name);
  }
  for (const auto& rules : late.rules) {
    if (!rules.extract.empty())
      names.insert("_raw");
    for (const auto& [from, alias] : rules.aliases)
      names.insert(from);
    for (const auto& [name, x] : rules.calculated)
      if (x)
        expr_fields(*x, names);
  }
  names.erase("");
  auto need = std::make_shared<field_need>();
  for (const auto& f : names) {
    if (f.find('*') != std::string::npos)
      return nullptr;
    need->insert(f);
  }
  return need;
}

result<plan> plan::make(const storage::store& st, query q, options opts) {
  plan p;
  p.earliest_ = std::max(opts.earliest,
                         q.earliest.value_or(std::numeric_limits<time_ns>::min()));
  p.latest_ = std::min(opts.latest,
                       q.latest.value_or(std::numeric_limits<time_ns>::max()));
  if (opts.timeout.count() > 0)
    p.deadline_ = steady_ns()
                  + std::chrono::duration_cast<std::chrono::nanoseconds>(
                      opts.timeout)
                      .count();
  auto all = st.buckets();
  if (!all)
    return all.error();
  time_ns lo = std::numeric_limits<time_ns>::max(),
          hi = std::numeric_limits<time_ns>::min();
  for (auto it = all->rbegin(); it != all->rend(); ++it) {
    if (it->max_time < p.earliest_ || it->min_time >= p.latest_)
      continue;
    p.buckets_.push_back(it->id);
    p.events_.emplace_back(it->id, it->events);
    if (it->min_time >= p.earliest_ && it->max_time < p.latest_)
      p.whole_.push_back(it->id);
    lo = std::min(lo, std::max(it->min_time, p.earliest_));
    hi = std::max(hi, std::min(it->max_time, p.latest_));
  }
  auto& cmds = q.commands;
  p.split_ = static_cast<int>(cmds.size());
  for (std::size_t i = 0; i < cmds.size(); ++i)
    if (!is_streaming(cmds[i].k)) {
      p.split_ = static_cast<int>(i);
      break;
    }
  for (std::size_t i = 0; i < cmds.size(); ++i)
    if (is_transform(cmds[i].k)) {
      p.transform_ = static_cast<int>(i);
      break;
    }
  // timechart without span=: the smallest common span giving at most 100
  // bins over the data in range.
  for (auto& c : cmds)
    if (c.k == command::kind::timechart && c.span == 0) {
      static constexpr time_ns spans[] = {1,    5,    10,    30,    60,
                                          300,  600,  1800,  3600,  21600,
                                          86400, 604800};
      auto range = hi > lo ? hi - lo : 0;
      c.span = spans[std::size(spans) - 1] * ns_per_s;
      for (auto s : spans)
        if (range / (s * ns_per_s) < 100) {
          c.span = s * ns_per_s;
          break;
        }
    }
  auto split = static_cast<std::size_t>(p.split_);
  if (opts.accelerate && st.has_tuples() && split == 0 && !cmds.empty()
      && tuple_filter(q.filter)) {
    const auto& c = cmds[0];
    using k = command::kind;
    bool ok = false;
    if (c.k == k::stats) {
      ok = std::all_of(c.aggregations.begin(), c.aggregations.end(),
                       [](const aggregation& a) {
                         return a.fn == "count" && a.field.empty();
                       })
           && std::all_of(c.by.begin(), c.by.end(), is_default_field);
    } else if (c.k == k::top || c.k == k::rare) {
      ok = std::all_of(c.by.begin(), c.by.end(), is_default_field)
           && std::all_of(c.fields.begin(), c.fields.end(), is_default_field);
    }
    p.tuples_ok_ = ok;
  }
  // Metric stats from rollups: sums, extremes and deviations of numeric
  // fields per host, with a host-only filter and bins the rollup interval
  // divides. Whether a bucket's rollups are exact is checked in map().
  p.rollup_interval_ = st.options().rollup_interval;
  p.data_lo_ = lo;
  p.data_hi_ = hi;
  if (opts.accelerate && st.has_tuples() && split == 0 && !cmds.empty()
      && host_filter(q.filter) && !opts.late.late_fields.contains("host")) {
    const auto& c = cmds[0];
    using k = command::kind;
    bool ok = (c.k == k::stats
               || (c.k == k::timechart && c.span % p.rollup_interval_ == 0))
              && (c.by.empty() || (c.by.size() == 1 && c.by[0] == "host"));
    for (const auto& a : c.aggregations) {
      static const std::set<std::string, std::less<>> fns = {
        "count", "sum", "avg", "min", "max", "stdev"};
      ok = ok && fns.contains(a.fn) && !a.field.empty()
           && !is_default_field(a.field) && a.field != "_time"
           && a.field != "_raw" && !opts.late.late_fields.contains(a.field)
           && a.field.find('\0') == std::string::npos;
    }
    p.rollups_ok_ = ok;
  }
  p.need_ = needed_fields(q, split, opts.late);
  p.q_ = std::move(q);
  p.opts_ = std::move(opts);
  return p;
}

partial plan::map(const storage::store& st, std::int64_t bucket) const {
  partial p;
  p.aggregated = detail::aggregated(*this);
  p.stats.buckets = 1;
  const auto& cmds = q_.commands;
  auto split = static_cast<std::size_t>(split_);
  std::optional<aggregator> agg;
  if (p.aggregated)
    agg.emplace(cmds[split], detail::span(*this));
  std::uint64_t events = 0;
  for (const auto& [id, n] : events_)
    if (id == bucket)
      events = n;
  // Every read of the bucket through one snapshot: a compaction that
  // commits meanwhile renumbers its events.
  auto snap = st.read();
  if (!snap) {
    p.err = snap.error();
    return p;
  }
  bucket_index idx{*snap, st.has_tuples(), bucket, opts_.late, {}, {},
                   false, events};
  // Counts straight from the tuples table.
  if (tuples_ok_
      && std::find(whole_.begin(), whole_.end(), bucket) != whole_.end()) {
    if (auto all = idx.all_tuples()) {
      for (const auto& t : *all) {
        row r;
        auto def = [&](std::string_view name, const std::string& v) {
          if (!v.empty())
            r.cells.emplace_back(std::string{name}, v);
        };
        def("index", t.index);
        def("host", t.host);
        def("source", t.source);
        def("sourcetype", t.sourcetype);
        if (!matches(q_.filter, row_accessor{r}))
          continue;
        p.stats.events_matched += t.count;
        agg->add(r, p, t.count);
      }
      p.stats.buckets_from_tuples = 1;
      return p;
    }
    if (idx.err) {
      p.err = idx.err;
      return p;
    }
  }
  if (rollups_ok_
      && std::find(whole_.begin(), whole_.end(), bucket) != whole_.end()
      && detail::from_rollups(*this, *snap, bucket, idx, p))
    return p;
  if (idx.err) {
    p.err = idx.err;
    return p;
  }
  std::optional<id_list> cand;
  if (opts_.accelerate)
    cand = idx.candidates(q_.filter);
  if (idx.err) {
    p.err = idx.err;
    return p;
  }
  auto keep = p.aggregated ? std::numeric_limits<std::size_t>::max()
                           : detail::keep(*this);
  // `dedup` next: only the newest row per key is kept (see dedup_newest),
  // already while reading, so a bucket holds one row per key.
  const std::vector<std::string>* dedup_fields
    = !p.aggregated && split < cmds.size()
          && cmds[split].k == command::kind::dedup
        ? &cmds[split].fields
        : nullptr;
  std::map<std::vector<std::string>, std::size_t> newest; // key -> row
  bool stop = false;
  auto visit = [&](std::uint64_t, const event_view& e) -> bool {
    if (stop)
      return false;
    ++p.stats.events_read;
    if ((p.stats.events_read & 4095) == 0) {
      if (opts_.cancel && opts_.cancel->load(std::memory_order_relaxed)) {
        p.err = error{ec::query_cancelled, "the query was cancelled"};
        stop = true;
        return false;
      }
      if (deadline_ != 0 && steady_ns() > deadline_) {
        p.err = error{ec::query_limit,
                      fmt::format("the query ran past its time bound of {} "
                                  "s (parallax.search.timeout)",
                                  opts_.timeout.count() / 1000.0)};
        stop = true;
        return false;
      }
    }
    if (e.time < earliest_ || e.time >= latest_)
      return true;
    row r;
    if (auto rules = opts_.late.rules.empty() ? nullptr
                                              : opts_.late.find(e.sourcetype)) {
      r = materialize(e, need_.get());
      apply_late(*rules, r);
      if (!matches(q_.filter, row_accessor{r}))
        return true;
    } else {
      if (!matches(q_.filter, event_accessor{e}))
        return true;
      r = materialize(e, need_.get());
    }
    ++p.stats.events_matched;
    auto seconds = static_cast<double>(e.time) / 1e9;
    for (std::size_t i = 0; i < split; ++i)
      if (!stream(cmds[i], r))
        return true;
    if (agg) {
      agg->add(r, p);
    } else if (dedup_fields) {
      auto key = dedup_key(r, *dedup_fields);
      if (!key)
        return true;
      auto [it, fresh] = newest.try_emplace(std::move(*key), p.rows.size());
      if (fresh) {
        p.bytes += row_bytes(r);
        p.rows.push_back(std::move(r));
        p.times.push_back(seconds);
      } else if (seconds > p.times[it->second]) {
        // Equal times keep the first read, as newest_first's stable sort.
        p.bytes -= row_bytes(p.rows[it->second]);
        p.bytes += row_bytes(r);
        p.rows[it->second] = std::move(r);
        p.times[it->second] = seconds;
      }
    } else {
      p.bytes += row_bytes(r);
      p.rows.push_back(std::move(r));
      p.times.push_back(seconds);
    }
    if (p.bytes > opts_.max_memory) {
      p.err = error{ec::query_limit,
                    fmt::format("the query holds more than {} MiB; narrow it "
                                "or raise parallax.search.max-memory",
                                opts_.max_memory >> 20)};
      stop = true;
      return false;
    }
    return true;
  };
  error err;
  if (cand) {
    p.stats.buckets_from_postings = 1;
    err = snap->events(bucket, *cand, visit);
  } else {
    p.stats.buckets_scanned = 1;
    err = snap->scan(bucket, [&](std::uint64_t id, const event_view& e) {
      visit(id, e);
    });
  }
  if (err && !p.err)
    p.err = err;
  if (!p.aggregated) {
    newest_first(p);
    truncate(p, keep);
  }
  return p;
}

void plan::merge(partial& into, partial&& from) const {
  into.stats.merge(from.stats);
  if (from.err && !into.err)
    into.err = std::move(from.err);
  into.aggregated = from.aggregated;
  into.bytes += from.bytes;
  if (from.aggregated) {
    for (auto& [key, states] : from.groups) {
      auto [it, fresh] = into.groups.try_emplace(key);
      if (fresh) {
        it->second = std::move(states);
        continue;
      }
      for (std::size_t i = 0; i < states.size(); ++i)
        merge_state(it->second[i], std::move(states[i]));
    }
  } else {
    merge_newest(into, std::move(from));
    auto split = static_cast<std::size_t>(split_);
    if (split < q_.commands.size()
        && q_.commands[split].k == command::kind::dedup)
      dedup_newest(into, q_.commands[split].fields);
    truncate(into, detail::keep(*this));
  }
  if (into.bytes > opts_.max_memory && !into.err)
    into.err = error{ec::query_limit,
                     fmt::format("the query holds more than {} MiB; narrow it "
                                 "or raise parallax.search.max-memory",
                                 opts_.max_memory >> 20)};
}

bool plan::satisfied(const partial& p) const {
  if (p.err)
    return true;
  if (detail::aggregated(*this))
    return false;
  auto keep = detail::keep(*this);
  return keep != std::numeric_limits<std::size_t>::max()
         && p.rows.size() >= keep;
}

result<std::vector<row>> plan::finish(partial&& p) const {
  if (p.err)
    return p.err;
  const auto& cmds = q_.commands;
  auto split = static_cast<std::size_t>(split_);
  std::vector<row> rows;
  auto next = split;
  if (detail::aggregated(*this)) {
    auto r = rows_of(cmds[split], std::move(p), detail::span(*this),
                     cmds[split].k == command::kind::timechart
                       ? std::optional{std::pair{data_lo_, data_hi_}}
                       : std::nullopt);
    if (!r)
      return r.error();
    rows = std::move(*r);
    next = split + 1;
  } else {
    rows = std::move(p.rows);
  }
  for (auto i = next; i < cmds.size(); ++i)
    if (auto err = apply_central(cmds[i], rows, opts_))
      return err;
  if (rows.size() > opts_.max_results)
    rows.resize(opts_.max_results);
  return rows;
}

result<results> run(const storage::store& st, std::string_view text,
                    const options& opts, time_ns now,
                    const std::function<void(const std::vector<row>&)>& on_rows) {
  auto q = parse(text, now);
  if (!q)
    return q.error();
  auto p = plan::make(st, std::move(*q), opts);
  if (!p)
    return p.error();
  // Rows stream early when nothing after the map phase reorders them.
  const auto& cmds = p->parsed().commands;
  // That is: only streaming commands, then at most a final head.
  bool streams = p->events_mode() && on_rows;
  for (std::size_t i = 0; streams && i < cmds.size(); ++i)
    streams = is_streaming(cmds[i].k)
              || (cmds[i].k == command::kind::head && i + 1 == cmds.size());
  partial total;
  std::size_t sent = 0;
  for (auto b : p->buckets()) {
    p->merge(total, p->map(st, b));
    if (total.err)
      return total.err;
    if (streams && total.rows.size() > sent) {
      std::vector<row> fresh(total.rows.begin() + static_cast<long>(sent),
                             total.rows.end());
      sent = total.rows.size();
      on_rows(fresh);
    }
    if (p->satisfied(total))
      break;
  }
  results out;
  out.stats = total.stats;
  out.stats.buckets = p->buckets().size();
  out.events = p->events_mode();
  auto rows = p->finish(std::move(total));
  if (!rows)
    return rows.error();
  out.rows = std::move(*rows);
  out.columns = columns_of(out.rows);
  return out;
}

} // namespace parallax::search
