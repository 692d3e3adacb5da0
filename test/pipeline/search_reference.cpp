#include "search_reference.hpp"

#include "parallax/storage/store.hpp"
#include "parallax/storage/tokenizer.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <utility>

namespace parallax::test::ref {

namespace {

bool same_ci(char a, char b) {
  auto l = [](char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
  };
  return l(a) == l(b);
}

bool glob_at(std::string_view p, std::string_view t) {
  // Plain backtracking: patterns and texts here are short.
  if (p.empty())
    return t.empty();
  if (p[0] == '*') {
    for (std::size_t i = 0; i <= t.size(); ++i)
      if (glob_at(p.substr(1), t.substr(i)))
        return true;
    return false;
  }
  return !t.empty() && same_ci(p[0], t[0]) && glob_at(p.substr(1), t.substr(1));
}

double seconds(time_ns t) {
  return static_cast<double>(t) / 1e9;
}

time_ns floor_div(time_ns a, time_ns b) {
  auto q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0)))
    --q;
  return q;
}

bool compare(const value& v, std::string_view op, std::string_view text) {
  auto a = number_of(v);
  auto b = text.find('*') == std::string_view::npos ? number_of(text)
                                                     : std::nullopt;
  if (a && b) {
    if (op == "=")
      return *a == *b;
    if (op == "!=")
      return *a != *b;
    if (op == "<")
      return *a < *b;
    if (op == "<=")
      return *a <= *b;
    if (op == ">")
      return *a > *b;
    if (op == ">=")
      return *a >= *b;
    return false;
  }
  auto vt = text_of(v);
  if (op == "=")
    return glob_match(text, vt);
  if (op == "!=")
    return !glob_match(text, vt);
  auto x = lower(vt), y = lower(text);
  if (op == "<")
    return x < y;
  if (op == "<=")
    return x <= y;
  if (op == ">")
    return x > y;
  if (op == ">=")
    return x >= y;
  return false;
}

// One aggregation's running state.
struct acc {
  std::uint64_t count = 0;
  std::set<std::string> distinct;
  std::uint64_t numeric = 0;
  double sum = 0, min = 0, max = 0;
};

void add(acc& a, const search::aggregation& agg, const event& e) {
  if (agg.fn == "count" && agg.field.empty()) {
    ++a.count;
    return;
  }
  auto v = field_of(e, agg.field);
  if (!v)
    return;
  ++a.count;
  a.distinct.insert(text_of(*v));
  if (auto x = number_of(*v)) {
    if (a.numeric == 0)
      a.min = a.max = *x;
    a.min = std::min(a.min, *x);
    a.max = std::max(a.max, *x);
    a.sum += *x;
    ++a.numeric;
  }
}

search::val result_of(const acc& a, const search::aggregation& agg) {
  if (agg.fn == "count")
    return static_cast<double>(a.count);
  if (agg.fn == "dc")
    return static_cast<double>(a.distinct.size());
  if (a.numeric == 0)
    return std::monostate{};
  if (agg.fn == "sum")
    return a.sum;
  if (agg.fn == "avg")
    return a.sum / static_cast<double>(a.numeric);
  if (agg.fn == "min")
    return a.min;
  if (agg.fn == "max")
    return a.max;
  return std::monostate{};
}

std::string column_of(const search::aggregation& agg) {
  if (!agg.as.empty())
    return agg.as;
  if (agg.field.empty())
    return agg.fn;
  return agg.fn + "(" + agg.field + ")";
}

bool supported(const search::aggregation& agg) {
  static const std::set<std::string> fns{"count", "dc",  "sum",
                                         "avg",   "min", "max"};
  return fns.contains(agg.fn);
}

} // namespace

bool glob_match(std::string_view pattern, std::string_view text) {
  return glob_at(pattern, text);
}

std::string lower(std::string_view s) {
  std::string out{s};
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c + 32);
  return out;
}

std::set<std::string> terms_of(std::string_view text) {
  std::set<std::string> out;
  storage::tokenize(text, [&](std::string_view t) { out.emplace(t); });
  return out;
}

std::optional<double> number_of(std::string_view text) {
  // [+-] digits [. digits] [e [+-] digits], or [+-] . digits ...
  std::size_t i = 0, n = text.size();
  if (i < n && (text[i] == '+' || text[i] == '-'))
    ++i;
  std::size_t digits = 0;
  while (i < n && text[i] >= '0' && text[i] <= '9')
    ++i, ++digits;
  if (i < n && text[i] == '.') {
    ++i;
    while (i < n && text[i] >= '0' && text[i] <= '9')
      ++i, ++digits;
  }
  if (digits == 0)
    return std::nullopt;
  if (i < n && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < n && (text[i] == '+' || text[i] == '-'))
      ++i;
    std::size_t exp = 0;
    while (i < n && text[i] >= '0' && text[i] <= '9')
      ++i, ++exp;
    if (exp == 0)
      return std::nullopt;
  }
  if (i != n)
    return std::nullopt;
  std::string s{text[0] == '+' ? text.substr(1) : text};
  double d = std::strtod(s.c_str(), nullptr);
  if (!std::isfinite(d))
    return std::nullopt;
  return d;
}

std::optional<value> field_of(const event& e, std::string_view name) {
  if (name == "index")
    return value{e.index};
  if (name == "host")
    return value{e.host};
  if (name == "source")
    return value{e.source};
  if (name == "sourcetype")
    return value{e.sourcetype};
  if (name == "_time")
    return value{seconds(e.time)};
  if (name == "_raw") {
    if (!e.raw)
      return std::nullopt;
    return value{*e.raw};
  }
  if (auto* v = e.find(name))
    return *v;
  return std::nullopt;
}

std::string text_of(const value& v) {
  switch (v.index()) {
    case 0:
      return std::get<0>(v);
    case 1:
      return std::to_string(std::get<1>(v));
    case 2: {
      char buf[64];
      auto r = std::to_chars(buf, buf + sizeof buf, std::get<2>(v));
      return std::string{buf, r.ptr};
    }
    default:
      return std::get<3>(v) ? "true" : "false";
  }
}

std::optional<double> number_of(const value& v) {
  switch (v.index()) {
    case 0:
      return number_of(std::string_view{std::get<0>(v)});
    case 1:
      return static_cast<double>(std::get<1>(v));
    case 2:
      return std::get<2>(v);
    default:
      return std::nullopt;
  }
}

bool matches(const search::search_node& n, const event& e,
             const std::set<std::string>* terms) {
  using k = search::search_node::kind;
  std::set<std::string> own;
  if (!terms && e.raw
      && (n.k == k::keyword || n.k == k::phrase)) {
    own = terms_of(*e.raw);
    terms = &own;
  }
  switch (n.k) {
    case k::all:
      return true;
    case k::keyword: {
      if (!e.raw)
        return false;
      for (const auto& t : *terms)
        if (glob_match(n.text, t))
          return true;
      return false;
    }
    case k::phrase: {
      if (!e.raw)
        return false;
      if (lower(*e.raw).find(lower(n.text)) == std::string::npos)
        return false;
      for (const auto& t : terms_of(n.text))
        if (!terms->contains(t))
          return false;
      return true;
    }
    case k::compare: {
      auto v = field_of(e, n.field);
      return v && compare(*v, n.op, n.text);
    }
    case k::in_list: {
      auto v = field_of(e, n.field);
      if (!v)
        return false;
      for (const auto& x : n.values)
        if (compare(*v, "=", x))
          return true;
      return false;
    }
    case k::and_:
      for (const auto& c : n.children)
        if (!matches(c, e, terms))
          return false;
      return true;
    case k::or_:
      for (const auto& c : n.children)
        if (matches(c, e, terms))
          return true;
      return false;
    case k::not_:
      return !n.children.empty() && !matches(n.children[0], e, terms);
  }
  return false;
}

search::row row_of(const event& e) {
  search::row r;
  auto as_val = [](const value& v) -> search::val {
    switch (v.index()) {
      case 1:
        return static_cast<double>(std::get<1>(v));
      case 2:
        return std::get<2>(v);
      default:
        return text_of(v);
    }
  };
  r.set("_time", seconds(e.time));
  if (e.raw)
    r.set("_raw", *e.raw);
  r.set("index", e.index);
  r.set("host", e.host);
  r.set("source", e.source);
  r.set("sourcetype", e.sourcetype);
  for (const auto& f : e.fields)
    if (!r.get(f.name))
      r.set(f.name, as_val(f.value));
  return r;
}

result<evaluator> evaluator::load(const storage::store& st) {
  evaluator ev;
  auto bs = st.buckets();
  if (!bs)
    return bs.error();
  for (const auto& b : *bs) {
    auto err = st.scan(b.id, [&](std::uint64_t id, const event_view& e) {
      stored s{id, e.materialize(), {}};
      if (s.e.raw)
        s.terms = terms_of(*s.e.raw);
      ev.events_.push_back(std::move(s));
    });
    if (err)
      return err;
  }
  return ev;
}

result<outcome> evaluator::run(std::string_view text, time_ns now,
                               const search::options& opts) const {
  auto q = search::parse(text, now);
  if (!q)
    return q.error();
  auto earliest = opts.earliest, latest = opts.latest;
  if (q->earliest)
    earliest = std::max(earliest, *q->earliest);
  if (q->latest)
    latest = std::min(latest, *q->latest);

  std::vector<const stored*> matched;
  for (const auto& s : events_)
    if (s.e.time >= earliest && s.e.time < latest
        && matches(q->filter, s.e, &s.terms))
      matched.push_back(&s);
  std::sort(matched.begin(), matched.end(),
            [](const stored* a, const stored* b) {
              if (a->e.time != b->e.time)
                return a->e.time > b->e.time;
              return a->id < b->id;
            });

  auto unsupported = [&](const search::command& c) {
    return error{ec::usage,
                 "reference: unsupported command at column "
                   + std::to_string(c.column),
                 c.column};
  };

  outcome out;
  out.events = true;
  std::size_t i = 0;
  using ck = search::command::kind;
  // Streaming commands on events.
  for (; i < q->commands.size(); ++i) {
    const auto& c = q->commands[i];
    if (c.k == ck::head) {
      out.head = out.head ? std::min(*out.head, c.limit) : c.limit;
    } else if (c.k == ck::table) {
      if (out.head)
        return unsupported(c); // keep the shapes simple
      out.table = c.fields;
    } else if (c.k == ck::search) {
      if (out.head)
        return unsupported(c);
      std::erase_if(matched,
                    [&](const stored* s) {
                      return !matches(c.filter, s->e, &s->terms);
                    });
    } else {
      break;
    }
  }
  if (i == q->commands.size()) {
    out.matched = std::move(matched);
    return out;
  }
  if (out.head || out.table)
    return unsupported(q->commands[i]);

  // One transforming command: stats or timechart.
  const auto& c = q->commands[i];
  out.events = false;
  for (const auto& agg : c.aggregations)
    if (!supported(agg))
      return unsupported(c);
  std::map<std::vector<std::string>, std::vector<acc>> groups;
  if (c.k == ck::stats) {
    out.keys = c.by;
    for (const auto* s : matched) {
      std::vector<std::string> key;
      bool complete = true;
      for (const auto& b : c.by) {
        auto v = field_of(s->e, b);
        if (!v) {
          complete = false;
          break;
        }
        key.push_back(text_of(*v));
      }
      if (!complete)
        continue;
      auto& g = groups[key];
      g.resize(c.aggregations.size());
      for (std::size_t a = 0; a < c.aggregations.size(); ++a)
        add(g[a], c.aggregations[a], s->e);
    }
    if (c.by.empty() && groups.empty())
      groups[{}].resize(c.aggregations.size());
  } else if (c.k == ck::timechart) {
    if (!c.by.empty() || c.span <= 0)
      return unsupported(c);
    out.keys = {"_time"};
    std::map<time_ns, std::vector<acc>> bins;
    for (const auto* s : matched) {
      auto& g = bins[floor_div(s->e.time, c.span) * c.span];
      g.resize(c.aggregations.size());
      for (std::size_t a = 0; a < c.aggregations.size(); ++a)
        add(g[a], c.aggregations[a], s->e);
    }
    for (auto& [t, g] : bins) {
      char buf[32];
      auto r = std::to_chars(buf, buf + sizeof buf, floor_div(t, 1'000'000'000));
      groups[{std::string{buf, r.ptr}}] = std::move(g);
    }
  } else {
    return unsupported(c);
  }
  for (const auto& agg : c.aggregations)
    out.values.push_back(column_of(agg));
  for (const auto& [key, accs] : groups) {
    search::row r;
    for (std::size_t k = 0; k < key.size(); ++k)
      r.set(out.keys[k], key[k]);
    for (std::size_t a = 0; a < c.aggregations.size(); ++a)
      r.set(out.values[a], result_of(accs[a], c.aggregations[a]));
    out.rows.push_back(std::move(r));
  }
  // Later commands on the rows: only head (on an unordered set of rows it
  // would be ambiguous, so the tests do not generate it).
  if (i + 1 != q->commands.size())
    return unsupported(q->commands[i + 1]);
  return out;
}

} // namespace parallax::test::ref
