// Values, matching and expressions of the search language: what a single
// event or row means to a query. Execution is in search_exec.cpp.

#include "search_internal.hpp"

#include "parallax/storage/tokenizer.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <ctime>

#include <fmt/format.h>
#include <re2/re2.h>

namespace parallax::search {

using namespace internal;

// -- values --------------------------------------------------------------------

std::optional<double> to_number(std::string_view t) {
  if (t.empty())
    return std::nullopt;
  auto b = t.data(), e = t.data() + t.size();
  if (*b == '+')
    ++b;
  // from_chars takes "inf", "nan" and hex-free forms; only decimal
  // numbers count.
  for (auto p = b; p != e; ++p) {
    char c = *p;
    if (!((c >= '0' && c <= '9') || c == '.' || c == '-' || c == 'e'
          || c == 'E' || c == '+'))
      return std::nullopt;
  }
  double d = 0;
  auto [ptr, ec] = std::from_chars(b, e, d);
  if (ec != std::errc{} || ptr != e || !std::isfinite(d))
    return std::nullopt;
  return d;
}

std::optional<double> to_number(const val& v) {
  if (auto d = std::get_if<double>(&v))
    return *d;
  if (auto s = std::get_if<std::string>(&v))
    return to_number(std::string_view{*s});
  return std::nullopt;
}

std::string to_text(const val& v) {
  switch (v.index()) {
    case 1:
      return number_text(std::get<double>(v));
    case 2:
      return std::get<std::string>(v);
    case 3: {
      std::string out;
      for (const auto& s : std::get<multi>(v)) {
        if (!out.empty())
          out.push_back(' ');
        out += s;
      }
      return out;
    }
    default:
      return {};
  }
}

const val* row::get(std::string_view name) const noexcept {
  for (const auto& [n, v] : cells)
    if (n == name)
      return &v;
  return nullptr;
}

void row::set(std::string_view name, val v) {
  for (auto& [n, x] : cells)
    if (n == name) {
      x = std::move(v);
      return;
    }
  cells.emplace_back(std::string{name}, std::move(v));
}

void row::erase(std::string_view name) {
  std::erase_if(cells, [&](const auto& c) { return c.first == name; });
}

std::vector<std::string> columns_of(const std::vector<row>& rows) {
  std::vector<std::string> out;
  std::set<std::string, std::less<>> seen;
  for (const auto& r : rows)
    for (const auto& [n, v] : r.cells)
      if (seen.insert(n).second)
        out.push_back(n);
  return out;
}

void counters::merge(const counters& o) {
  buckets += o.buckets;
  buckets_from_tuples += o.buckets_from_tuples;
  buckets_from_rollups += o.buckets_from_rollups;
  buckets_from_postings += o.buckets_from_postings;
  buckets_scanned += o.buckets_scanned;
  events_read += o.events_read;
  events_matched += o.events_matched;
}

const late_rules* schema::find(std::string_view sourcetype) const {
  for (const auto& r : rules)
    if (iglob(sourcetype, r.sourcetype))
      return &r;
  return nullptr;
}

namespace internal {

std::string number_text(double d) {
  // Whole numbers print as integers up to int64's range (nanosecond
  // timestamps, byte counters), beyond 2^53 with a double's precision.
  if (std::isfinite(d) && d == std::trunc(d) && std::fabs(d) < 9.2e18)
    return fmt::format("{}", static_cast<long long>(d));
  return fmt::format("{}", d);
}

namespace {

char ascii_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}

} // namespace

std::string lower(std::string_view s) {
  std::string out{s};
  for (auto& c : out)
    c = ascii_lower(c);
  return out;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size())
    return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i]))
      return false;
  return true;
}

// Iterative glob with backtracking to the last star: linear in practice.
bool iglob(std::string_view t, std::string_view p) noexcept {
  std::size_t i = 0, j = 0, star = std::string_view::npos, mark = 0;
  while (i < t.size()) {
    if (j < p.size() && p[j] != '*' && ascii_lower(p[j]) == ascii_lower(t[i])) {
      ++i;
      ++j;
    } else if (j < p.size() && p[j] == '*') {
      star = j++;
      mark = i;
    } else if (star != std::string_view::npos) {
      j = star + 1;
      i = ++mark;
    } else {
      return false;
    }
  }
  while (j < p.size() && p[j] == '*')
    ++j;
  return j == p.size();
}

bool has_major_breaker(std::string_view s) noexcept {
  for (unsigned char c : s)
    if (c != '*' && storage::breaker_table[c] == storage::breaker::major)
      return true;
  return false;
}

bool compare(const fv& v, std::string_view op, std::string_view pattern) {
  if (!v.present())
    return false;
  std::string numbuf;
  std::string_view text = v.s;
  if (v.kind == fv::number) {
    numbuf = number_text(v.n);
    text = numbuf;
  }
  auto lhs = v.kind == fv::number ? std::optional<double>{v.n}
                                  : to_number(text);
  auto rhs = to_number(pattern);
  if (op == "=" || op == "!=") {
    bool eq;
    if (pattern.find('*') != std::string_view::npos)
      eq = iglob(text, pattern);
    else if (lhs && rhs)
      eq = *lhs == *rhs;
    else
      eq = iequals(text, pattern);
    return op == "=" ? eq : !eq;
  }
  int c;
  if (lhs && rhs)
    c = *lhs < *rhs ? -1 : (*lhs > *rhs ? 1 : 0);
  else
    c = text.compare(pattern) < 0 ? -1 : (text.compare(pattern) > 0 ? 1 : 0);
  if (op == "<")
    return c < 0;
  if (op == "<=")
    return c <= 0;
  if (op == ">")
    return c > 0;
  return c >= 0; // ">="
}

namespace {

bool has_term(std::string_view raw, std::string_view term_lower,
              bool wildcard) {
  bool found = false;
  storage::tokenize(raw, [&](std::string_view t) {
    if (!found)
      found = wildcard ? iglob(t, term_lower) : t == term_lower;
  });
  return found;
}

bool phrase_matches(std::string_view raw, std::string_view phrase) {
  if (lower(raw).find(phrase) == std::string::npos)
    return false;
  // Each instantiation of tokenize() has its own buffer, so the outer
  // term stays valid while has_term tokenizes the raw text.
  bool all = true;
  storage::tokenize(phrase, [&](std::string_view t) {
    if (all && !has_term(raw, t, false))
      all = false;
  });
  return all;
}

} // namespace

bool matches(const search_node& n, const accessor& a) {
  using k = search_node::kind;
  switch (n.k) {
    case k::all:
      return true;
    case k::keyword: {
      auto raw = a.raw();
      if (!raw)
        return false;
      if (has_major_breaker(n.text))
        return phrase_matches(*raw, n.text);
      return has_term(*raw, n.text,
                      n.text.find('*') != std::string::npos);
    }
    case k::phrase: {
      auto raw = a.raw();
      return raw && phrase_matches(*raw, n.text);
    }
    case k::compare:
      return compare(a.lookup(n.field), n.op, n.text);
    case k::in_list: {
      auto v = a.lookup(n.field);
      for (const auto& x : n.values)
        if (compare(v, "=", x))
          return true;
      return false;
    }
    case k::and_:
      for (const auto& c : n.children)
        if (!matches(c, a))
          return false;
      return true;
    case k::or_:
      for (const auto& c : n.children)
        if (matches(c, a))
          return true;
      return false;
    case k::not_:
      return !matches(n.children.front(), a);
  }
  return false;
}

fv row_accessor::lookup(std::string_view name) const {
  auto v = r_.get(name);
  if (!v)
    return {};
  switch (v->index()) {
    case 1:
      return {fv::number, std::get<double>(*v), {}};
    case 2:
      return {fv::text, 0, std::get<std::string>(*v)};
    case 3:
      buf_ = to_text(*v);
      return {fv::text, 0, buf_};
    default:
      return {};
  }
}

std::optional<std::string_view> row_accessor::raw() const {
  auto v = r_.get("_raw");
  if (!v)
    return std::nullopt;
  if (auto s = std::get_if<std::string>(v))
    return std::string_view{*s};
  return std::nullopt;
}

bool truthy(const val& v) noexcept {
  switch (v.index()) {
    case 1:
      return std::get<double>(v) != 0;
    case 2:
      return !std::get<std::string>(v).empty();
    case 3:
      return !std::get<multi>(v).empty();
    default:
      return false;
  }
}

// -- expressions ----------------------------------------------------------------

namespace {

val num(double d) {
  if (!std::isfinite(d))
    return {};
  return d;
}

val boolean(bool b) {
  return b ? 1.0 : 0.0;
}

std::optional<std::string> text_of(const val& v) {
  if (std::holds_alternative<std::monostate>(v))
    return std::nullopt;
  return to_text(v);
}

val compare_values(const val& a, const val& b, std::string_view op) {
  if (std::holds_alternative<std::monostate>(a)
      || std::holds_alternative<std::monostate>(b))
    return {};
  auto x = to_number(a), y = to_number(b);
  int c;
  if (x && y) {
    c = *x < *y ? -1 : (*x > *y ? 1 : 0);
  } else {
    auto s = to_text(a), t = to_text(b);
    c = s < t ? -1 : (s > t ? 1 : 0);
  }
  if (op == "=" || op == "==")
    return boolean(c == 0);
  if (op == "!=")
    return boolean(c != 0);
  if (op == "<")
    return boolean(c < 0);
  if (op == "<=")
    return boolean(c <= 0);
  if (op == ">")
    return boolean(c > 0);
  return boolean(c >= 0);
}

val arith(const val& a, const val& b, char op) {
  auto x = to_number(a), y = to_number(b);
  if (op == '+' && (!x || !y)) {
    // + on text concatenates, as in SPL.
    auto s = text_of(a), t = text_of(b);
    if (!s || !t)
      return {};
    return *s + *t;
  }
  if (!x || !y)
    return {};
  switch (op) {
    case '+':
      return num(*x + *y);
    case '-':
      return num(*x - *y);
    case '*':
      return num(*x * *y);
    case '/':
      return *y == 0 ? val{} : num(*x / *y);
    default:
      return *y == 0 ? val{} : num(std::fmod(*x, *y));
  }
}

val call(const expr& e, const row& r) {
  const auto& f = e.name;
  auto arg = [&](std::size_t i) {
    return i < e.args.size() ? evaluate(*e.args[i], r) : val{};
  };
  auto n = e.args.size();
  if (f == "if")
    return truthy(arg(0)) ? arg(1) : arg(2);
  if (f == "case") {
    for (std::size_t i = 0; i + 1 < n; i += 2)
      if (truthy(arg(i)))
        return arg(i + 1);
    return {};
  }
  if (f == "coalesce") {
    for (std::size_t i = 0; i < n; ++i)
      if (auto v = arg(i); !std::holds_alternative<std::monostate>(v))
        return v;
    return {};
  }
  if (f == "null")
    return {};
  if (f == "true")
    return 1.0;
  if (f == "false")
    return 0.0;
  if (f == "isnull")
    return boolean(std::holds_alternative<std::monostate>(arg(0)));
  if (f == "isnotnull")
    return boolean(!std::holds_alternative<std::monostate>(arg(0)));
  if (f == "isnum")
    return boolean(to_number(arg(0)).has_value());
  if (f == "isstr") {
    auto v = arg(0);
    return boolean(std::holds_alternative<std::string>(v)
                   && !to_number(v).has_value());
  }
  if (f == "now")
    return static_cast<double>(std::time(nullptr));
  if (f == "len") {
    auto s = text_of(arg(0));
    return s ? val{static_cast<double>(s->size())} : val{};
  }
  if (f == "lower" || f == "upper") {
    auto s = text_of(arg(0));
    if (!s)
      return {};
    for (auto& c : *s)
      c = f == "lower" ? ascii_lower(c)
                       : ((c >= 'a' && c <= 'z') ? static_cast<char>(c - 32)
                                                 : c);
    return *s;
  }
  if (f == "trim" || f == "ltrim" || f == "rtrim") {
    auto s = text_of(arg(0));
    if (!s)
      return {};
    std::string chars = n > 1 ? to_text(arg(1)) : std::string{" \t"};
    auto b = f == "rtrim" ? 0 : s->find_first_not_of(chars);
    if (b == std::string::npos)
      return std::string{};
    auto e2 = f == "ltrim" ? s->size() : s->find_last_not_of(chars) + 1;
    return s->substr(b, e2 - b);
  }
  if (f == "substr") {
    // substr(X, start[, length]), start counts from 1; negative from the end.
    auto s = text_of(arg(0));
    auto st = to_number(arg(1));
    if (!s || !st)
      return {};
    auto size = static_cast<long long>(s->size());
    auto start = static_cast<long long>(*st);
    start = start < 0 ? size + start : start - 1;
    start = std::clamp(start, 0LL, size);
    auto len = size - start;
    if (n > 2) {
      auto l = to_number(arg(2));
      if (!l)
        return {};
      len = std::clamp(static_cast<long long>(*l), 0LL, len);
    }
    return s->substr(static_cast<std::size_t>(start),
                     static_cast<std::size_t>(len));
  }
  if (f == "replace") {
    auto s = text_of(arg(0));
    auto to = text_of(arg(2));
    if (!s || !to || !e.regex)
      return {};
    RE2::GlobalReplace(&*s, *e.regex, *to);
    return *s;
  }
  if (f == "match") {
    auto s = text_of(arg(0));
    if (!s || !e.regex)
      return {};
    return boolean(RE2::PartialMatch(*s, *e.regex));
  }
  if (f == "like") {
    // SQL LIKE: % any run, _ one character.
    auto s = text_of(arg(0));
    auto p = text_of(arg(1));
    if (!s || !p)
      return {};
    std::string pat = "(?s)";
    for (char c : *p) {
      if (c == '%')
        pat += ".*";
      else if (c == '_')
        pat += ".";
      else
        pat += RE2::QuoteMeta(std::string_view{&c, 1});
    }
    return boolean(RE2::FullMatch(*s, RE2{pat}));
  }
  if (f == "tostring")
    return text_of(arg(0)) ? val{*text_of(arg(0))} : val{};
  if (f == "tonumber") {
    auto x = to_number(arg(0));
    return x ? val{*x} : val{};
  }
  if (f == "strftime") {
    auto t = to_number(arg(0));
    auto fmtv = text_of(arg(1));
    if (!t || !fmtv)
      return {};
    std::time_t tt = static_cast<std::time_t>(std::floor(*t));
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[256];
    auto len = std::strftime(buf, sizeof buf, fmtv->c_str(), &tm);
    return std::string{buf, len};
  }
  // Numeric functions.
  auto x = to_number(arg(0));
  if (f == "round") {
    if (!x)
      return {};
    double digits = 0;
    if (n > 1) {
      auto d = to_number(arg(1));
      if (!d)
        return {};
      digits = *d;
    }
    double scale = std::pow(10.0, digits);
    return num(std::round(*x * scale) / scale);
  }
  if (f == "min" || f == "max") {
    std::optional<double> best;
    for (std::size_t i = 0; i < n; ++i)
      if (auto y = to_number(arg(i)))
        best = !best ? *y : (f == "min" ? std::min(*best, *y)
                                        : std::max(*best, *y));
    return best ? val{*best} : val{};
  }
  if (f == "pow") {
    auto y = to_number(arg(1));
    return x && y ? num(std::pow(*x, *y)) : val{};
  }
  if (f == "log") {
    auto base = n > 1 ? to_number(arg(1)) : std::optional<double>{10.0};
    return x && base && *x > 0 && *base > 0 && *base != 1
             ? num(std::log(*x) / std::log(*base))
             : val{};
  }
  if (!x)
    return {};
  if (f == "abs")
    return num(std::fabs(*x));
  if (f == "ceil" || f == "ceiling")
    return num(std::ceil(*x));
  if (f == "floor")
    return num(std::floor(*x));
  if (f == "sqrt")
    return *x < 0 ? val{} : num(std::sqrt(*x));
  if (f == "exp")
    return num(std::exp(*x));
  if (f == "ln")
    return *x <= 0 ? val{} : num(std::log(*x));
  return {}; // the parser admits only known functions
}

} // namespace

val evaluate(const expr& e, const row& r) {
  switch (e.k) {
    case expr::kind::literal:
      return e.literal;
    case expr::kind::field: {
      auto v = r.get(e.name);
      return v ? *v : val{};
    }
    case expr::kind::call:
      return call(e, r);
    case expr::kind::unary: {
      auto v = evaluate(*e.args[0], r);
      if (e.name == "NOT")
        return boolean(!truthy(v));
      auto x = to_number(v);
      return x ? num(-*x) : val{};
    }
    case expr::kind::binary: {
      const auto& op = e.name;
      if (op == "AND") {
        return boolean(truthy(evaluate(*e.args[0], r))
                       && truthy(evaluate(*e.args[1], r)));
      }
      if (op == "OR") {
        return boolean(truthy(evaluate(*e.args[0], r))
                       || truthy(evaluate(*e.args[1], r)));
      }
      auto a = evaluate(*e.args[0], r);
      auto b = evaluate(*e.args[1], r);
      if (op == ".") {
        auto s = text_of(a), t = text_of(b);
        return s && t ? val{*s + *t} : val{};
      }
      if (op.size() == 1 && std::string_view{"+-*/%"}.find(op[0])
                              != std::string_view::npos)
        return arith(a, b, op[0]);
      return compare_values(a, b, op);
    }
  }
  return {};
}

// -- search-time fields and streaming commands ------------------------------------

namespace {

// Sets the named groups of `re`'s first match in `text` that took part in
// it; `overwrite` false keeps fields the row has already (extract), true
// replaces them (rex).
void set_groups(const RE2& re, std::string_view text, row& r,
                bool overwrite) {
  auto groups = static_cast<std::size_t>(re.NumberOfCapturingGroups());
  std::vector<re2::StringPiece> sub(groups + 1);
  if (!re.Match(text, 0, text.size(), RE2::UNANCHORED, sub.data(),
                static_cast<int>(sub.size())))
    return;
  for (const auto& [name, index] : re.NamedCapturingGroups()) {
    auto i = static_cast<std::size_t>(index);
    if (i < sub.size() && sub[i].data() && (overwrite || !r.get(name)))
      r.set(name, std::string{sub[i].data(), sub[i].size()});
  }
}

} // namespace

void apply_late(const late_rules& rules, row& r) {
  if (auto raw = r.get("_raw"); raw && !rules.extract.empty()) {
    auto text = to_text(*raw);
    for (const auto& re : rules.extract)
      set_groups(*re, text, r, false);
  }
  for (const auto& [from, alias] : rules.aliases)
    if (auto v = r.get(from); v && !r.get(alias))
      r.set(alias, val{*v});
  for (const auto& [name, e] : rules.calculated) {
    auto v = evaluate(*e, r);
    if (std::holds_alternative<std::monostate>(v))
      r.erase(name);
    else
      r.set(name, std::move(v));
  }
}

bool is_streaming(command::kind k) noexcept {
  using c = command::kind;
  return k == c::search || k == c::where || k == c::eval || k == c::rex
         || k == c::rename || k == c::fields || k == c::table;
}

bool is_transform(command::kind k) noexcept {
  using c = command::kind;
  return k == c::stats || k == c::timechart || k == c::top || k == c::rare;
}

namespace {

bool name_matches(std::string_view name, const std::vector<std::string>& ps) {
  for (const auto& p : ps)
    if (p.find('*') != std::string::npos ? iglob(name, p) : name == p)
      return true;
  return false;
}

} // namespace

bool stream(const command& c, row& r) {
  using k = command::kind;
  switch (c.k) {
    case k::search:
      return matches(c.filter, row_accessor{r});
    case k::where:
      return truthy(evaluate(*c.condition, r));
    case k::eval:
      for (const auto& [name, e] : c.evals) {
        auto v = evaluate(*e, r);
        if (std::holds_alternative<std::monostate>(v))
          r.erase(name);
        else
          r.set(name, std::move(v));
      }
      return true;
    case k::rex: {
      auto v = r.get(c.rex_field);
      if (!v || !c.regex)
        return true;
      set_groups(*c.regex, to_text(*v), r, true);
      return true;
    }
    case k::rename:
      for (const auto& [from, to] : c.renames) {
        auto v = r.get(from);
        if (!v)
          continue;
        auto moved = *v;
        r.erase(from);
        r.erase(to);
        r.set(to, std::move(moved));
      }
      return true;
    case k::fields:
      if (c.remove)
        std::erase_if(r.cells, [&](const auto& cell) {
          return name_matches(cell.first, c.fields);
        });
      else
        std::erase_if(r.cells, [&](const auto& cell) {
          return cell.first != "_time" && !name_matches(cell.first, c.fields);
        });
      return true;
    case k::table: {
      row out;
      for (const auto& p : c.fields) {
        if (p.find('*') == std::string::npos) {
          auto v = r.get(p);
          out.cells.emplace_back(p, v ? *v : val{});
          continue;
        }
        for (const auto& [n, v] : r.cells)
          if (iglob(n, p) && !out.get(n))
            out.cells.emplace_back(n, v);
      }
      r = std::move(out);
      return true;
    }
    default:
      return true;
  }
}

std::size_t row_bytes(const row& r) noexcept {
  std::size_t n = sizeof(row) + r.cells.capacity() * sizeof(r.cells[0]);
  for (const auto& [name, v] : r.cells) {
    n += name.capacity();
    if (auto s = std::get_if<std::string>(&v))
      n += s->capacity();
    else if (auto m = std::get_if<multi>(&v))
      for (const auto& x : *m)
        n += sizeof x + x.capacity();
  }
  return n;
}

} // namespace internal

} // namespace parallax::search
