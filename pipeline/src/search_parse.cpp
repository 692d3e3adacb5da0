// The query parser: a hand-written recursive descent over the query text,
// so every error can name its column.

#include "search_internal.hpp"

#include "parallax/pipeline/config.hpp"
#include "parallax/pipeline/timestamp.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <ctime>

#include <fmt/format.h>
#include <re2/re2.h>

namespace parallax::search {

using namespace internal;

namespace {

constexpr time_ns ns_per_s = 1'000'000'000;

bool ident_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_';
}

bool ident_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.';
}

// A field name in a search clause: letters, digits, _ . : - and not
// starting with a digit or a dash.
bool valid_field(std::string_view s) {
  if (s.empty() || !(ident_start(s[0])))
    return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.'
          || c == ':' || c == '-'))
      return false;
  return true;
}

// RE2 of Debian 12 knows only (?P<name>...); SPL users write (?<name>...).
std::string python_groups(std::string_view pattern) {
  std::string out;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern.substr(i, 3) == "(?<" && i + 3 < pattern.size()
        && ident_start(pattern[i + 3])) {
      out += "(?P<";
      i += 2;
      continue;
    }
    if (pattern[i] == '\\' && i + 1 < pattern.size()) {
      out += pattern.substr(i, 2);
      ++i;
      continue;
    }
    out.push_back(pattern[i]);
  }
  return out;
}

const std::vector<std::string_view>& known_functions() {
  static const std::vector<std::string_view> fns = {
    "if",     "case",     "coalesce", "null",      "true",    "false",
    "isnull", "isnotnull", "isnum",   "isstr",     "now",     "len",
    "lower",  "upper",    "trim",     "ltrim",     "rtrim",   "substr",
    "replace", "match",   "like",     "tostring",  "tonumber", "strftime",
    "round",  "min",      "max",      "pow",       "log",     "abs",
    "ceil",   "ceiling",  "floor",    "sqrt",      "exp",     "ln"};
  return fns;
}

struct arity {
  std::size_t min, max;
};

arity arity_of(std::string_view f) {
  if (f == "null" || f == "true" || f == "false" || f == "now")
    return {0, 0};
  if (f == "if" || f == "replace")
    return {3, 3};
  if (f == "case")
    return {2, 64};
  if (f == "coalesce" || f == "min" || f == "max")
    return {1, 64};
  if (f == "substr")
    return {2, 3};
  if (f == "match" || f == "like" || f == "pow" || f == "strftime")
    return {2, 2};
  if (f == "round" || f == "log" || f == "trim" || f == "ltrim"
      || f == "rtrim")
    return {1, 2};
  return {1, 1};
}

class parser {
public:
  parser(std::string_view text, time_ns now) : s_{text}, now_{now} {
  }

  error err;

  // -- helpers ------------------------------------------------------------------

  bool fail(std::size_t col, std::string msg) {
    if (!err)
      err = error{ec::bad_query, std::move(msg), col};
    return false;
  }

  void ws() {
    while (pos_ < s_.size()
           && std::isspace(static_cast<unsigned char>(s_[pos_])))
      ++pos_;
  }

  bool end_of_stage() {
    ws();
    return pos_ >= s_.size() || s_[pos_] == '|';
  }

  char peek() const {
    return pos_ < s_.size() ? s_[pos_] : '\0';
  }

  std::size_t pos() const {
    return pos_;
  }

  // True (and consumes it) if the next word is `w` followed by a
  // delimiter; `w` is matched case-insensitively when `any_case`.
  bool keyword(std::string_view w, bool any_case = false) {
    ws();
    if (s_.size() - pos_ < w.size())
      return false;
    auto cand = s_.substr(pos_, w.size());
    if (any_case ? !iequals(cand, w) : cand != w)
      return false;
    auto after = pos_ + w.size();
    if (after < s_.size()
        && !(std::isspace(static_cast<unsigned char>(s_[after]))
             || s_[after] == '(' || s_[after] == ')' || s_[after] == '|'
             || s_[after] == ','))
      return false;
    pos_ = after;
    return true;
  }

  // A quoted string starting at pos_ ('"' or '\''); backslash escapes.
  std::optional<std::string> quoted() {
    char q = s_[pos_];
    auto start = pos_++;
    std::string out;
    while (pos_ < s_.size() && s_[pos_] != q) {
      // Only \" and \\ are escapes: regular expressions keep \d and \w.
      if (s_[pos_] == '\\' && pos_ + 1 < s_.size()
          && (s_[pos_ + 1] == q || s_[pos_ + 1] == '\\')) {
        out.push_back(s_[pos_ + 1]);
        pos_ += 2;
        continue;
      }
      out.push_back(s_[pos_++]);
    }
    if (pos_ >= s_.size()) {
      fail(start, "unterminated quote");
      return std::nullopt;
    }
    ++pos_;
    return out;
  }

  // An identifier (command, function or field name in commands).
  std::string ident() {
    ws();
    auto start = pos_;
    if (pos_ < s_.size() && ident_start(s_[pos_]))
      while (pos_ < s_.size()
             && (ident_char(s_[pos_]) || s_[pos_] == ':' || s_[pos_] == '-'
                 || s_[pos_] == '*'))
        ++pos_;
    else if (pos_ < s_.size() && s_[pos_] == '*')
      while (pos_ < s_.size() && (ident_char(s_[pos_]) || s_[pos_] == '*'))
        ++pos_;
    return std::string{s_.substr(start, pos_ - start)};
  }

  // A field name in a command: an identifier or a quoted name.
  std::optional<std::string> field_name(std::string_view what) {
    ws();
    auto start = pos_;
    if (peek() == '"' || peek() == '\'') {
      auto q = quoted();
      if (!q)
        return std::nullopt;
      return q;
    }
    auto name = ident();
    if (name.empty()) {
      fail(start, fmt::format("expected {}", what));
      return std::nullopt;
    }
    return name;
  }

  // A bare value: up to whitespace, a comma, a parenthesis or a pipe.
  std::string bare() {
    ws();
    auto start = pos_;
    while (pos_ < s_.size()
           && !std::isspace(static_cast<unsigned char>(s_[pos_]))
           && s_[pos_] != ',' && s_[pos_] != '(' && s_[pos_] != ')'
           && s_[pos_] != '|')
      ++pos_;
    return std::string{s_.substr(start, pos_ - start)};
  }

  // -- the search clause ----------------------------------------------------------

  // and := or ( [AND] or )*   (SPL: OR binds tighter than AND)
  search_node parse_and(bool nested) {
    search_node n;
    n.k = search_node::kind::and_;
    n.column = pos_;
    for (;;) {
      ws();
      if (err || pos_ >= s_.size() || s_[pos_] == '|')
        break;
      if (s_[pos_] == ')') {
        if (!nested)
          fail(pos_, "unbalanced ')'");
        break;
      }
      auto at = pos_;
      if (keyword("AND")) {
        if (n.children.empty())
          fail(at, "AND needs a search term before it");
        if (end_of_stage() || peek() == ')')
          fail(at, "AND needs a search term after it");
        continue;
      }
      n.children.push_back(parse_or(nested));
    }
    if (n.children.size() == 1)
      return std::move(n.children.front());
    if (n.children.empty())
      n.k = search_node::kind::all;
    return n;
  }

  search_node parse_or(bool nested) {
    auto left = parse_not(nested);
    for (;;) {
      ws();
      auto at = pos_;
      if (!keyword("OR"))
        break;
      if (end_of_stage() || peek() == ')') {
        fail(at, "OR needs a search term after it");
        break;
      }
      if (left.k != search_node::kind::or_) {
        search_node o;
        o.k = search_node::kind::or_;
        o.column = left.column;
        o.children.push_back(std::move(left));
        left = std::move(o);
      }
      left.children.push_back(parse_not(nested));
    }
    return left;
  }

  search_node parse_not(bool nested) {
    ws();
    auto at = pos_;
    if (keyword("NOT")) {
      if (end_of_stage() || peek() == ')') {
        fail(at, "NOT needs a search term after it");
        return {};
      }
      search_node n;
      n.k = search_node::kind::not_;
      n.column = at;
      n.children.push_back(parse_not(nested));
      return n;
    }
    return atom(nested);
  }

  search_node atom(bool nested) {
    (void)nested;
    ws();
    search_node n;
    n.column = pos_;
    if (peek() == '(') {
      auto open = pos_++;
      n = parse_and(true);
      ws();
      if (peek() != ')')
        fail(open, "'(' is never closed");
      else
        ++pos_;
      return n;
    }
    if (peek() == '"') {
      auto q = quoted();
      n.k = search_node::kind::phrase;
      n.text = lower(q.value_or("")); // matched case-insensitively
      return n;
    }
    // A word: up to whitespace, a parenthesis or a pipe; quotes inside it
    // (field="a b") are read whole.
    auto start = pos_;
    while (pos_ < s_.size()
           && !std::isspace(static_cast<unsigned char>(s_[pos_]))
           && s_[pos_] != '(' && s_[pos_] != ')' && s_[pos_] != '|') {
      if (s_[pos_] == '"') {
        if (!quoted())
          return n;
        continue;
      }
      ++pos_;
    }
    auto word = s_.substr(start, pos_ - start);
    // field OP value?
    auto op_at = word.find_first_of("=<>!");
    while (op_at != std::string_view::npos && word[op_at] == '!'
           && (op_at + 1 >= word.size() || word[op_at + 1] != '='))
      op_at = word.find_first_of("=<>!", op_at + 1);
    if (op_at != std::string_view::npos && op_at > 0
        && valid_field(word.substr(0, op_at))) {
      n.k = search_node::kind::compare;
      n.field = std::string{word.substr(0, op_at)};
      auto rest = word.substr(op_at);
      for (std::string_view op : {"!=", "<=", ">=", "==", "=", "<", ">"})
        if (rest.starts_with(op)) {
          n.op = op == "==" ? "=" : std::string{op};
          rest.remove_prefix(op.size());
          break;
        }
      if (n.op.empty()) {
        fail(start + op_at, "expected a comparison operator");
        return n;
      }
      auto value_col = start + (word.size() - rest.size());
      if (rest.empty()) {
        fail(value_col, fmt::format("expected a value after {}{}", n.field,
                                    n.op));
        return n;
      }
      if (rest.front() == '"') {
        parser sub{rest, now_};
        auto q = sub.quoted();
        if (!q || sub.pos() != rest.size()) {
          fail(value_col, "a quoted value must end the term");
          return n;
        }
        n.text = *q;
      } else {
        n.text = std::string{rest};
      }
      return n;
    }
    if (op_at == 0) {
      fail(start, "expected a field name before the operator");
      return n;
    }
    // field IN (a, b, c)?
    if (valid_field(word)) {
      auto save = pos_;
      if (keyword("IN")) {
        ws();
        if (peek() != '(') {
          fail(pos_, "expected '(' after IN");
          return n;
        }
        ++pos_;
        n.k = search_node::kind::in_list;
        n.field = std::string{word};
        for (;;) {
          ws();
          if (peek() == ')') {
            ++pos_;
            break;
          }
          if (pos_ >= s_.size() || peek() == '|') {
            fail(n.column, "IN ( is never closed");
            return n;
          }
          if (peek() == ',') {
            ++pos_;
            continue;
          }
          if (peek() == '"') {
            auto q = quoted();
            if (!q)
              return n;
            n.values.push_back(*q);
          } else {
            n.values.push_back(bare());
          }
        }
        if (n.values.empty())
          fail(n.column, "IN needs at least one value");
        return n;
      }
      pos_ = save;
    }
    if (word == "*") {
      n.k = search_node::kind::all;
      return n;
    }
    n.k = search_node::kind::keyword;
    n.text = lower(word); // matched case-insensitively
    if (n.text.find('"') != std::string::npos)
      fail(start, "a quote inside a keyword; quote the whole phrase");
    return n;
  }

  // -- expressions ------------------------------------------------------------------

  expr_ptr make(expr::kind k, std::string name, std::size_t col,
                std::vector<expr_ptr> args = {}) {
    auto e = std::make_shared<expr>();
    e->k = k;
    e->name = std::move(name);
    e->column = col;
    e->args = std::move(args);
    return e;
  }

  expr_ptr parse_expr() {
    return parse_eor();
  }

  // One level of a left-associative boolean operator, `word` or `symbol`.
  template <class Next>
  expr_ptr parse_boolean(std::string_view word, std::string_view symbol,
                         Next next) {
    auto l = (this->*next)();
    for (;;) {
      ws();
      auto at = pos_;
      if (keyword(word) || (s_.substr(pos_, 2) == symbol && (pos_ += 2)))
        l = make(expr::kind::binary, std::string{word}, at,
                 {l, (this->*next)()});
      else
        return l;
    }
  }

  expr_ptr parse_eor() {
    return parse_boolean("OR", "||", &parser::parse_eand);
  }

  expr_ptr parse_eand() {
    return parse_boolean("AND", "&&", &parser::parse_enot);
  }

  expr_ptr parse_enot() {
    ws();
    auto at = pos_;
    if (keyword("NOT")
        || (peek() == '!' && s_.substr(pos_, 2) != "!=" && (++pos_, true)))
      return make(expr::kind::unary, "NOT", at, {parse_enot()});
    return parse_cmp();
  }

  expr_ptr parse_cmp() {
    auto l = parse_add();
    ws();
    auto at = pos_;
    for (std::string_view op : {"==", "!=", "<=", ">=", "=", "<", ">"})
      if (s_.substr(pos_, op.size()) == op) {
        pos_ += op.size();
        return make(expr::kind::binary, std::string{op == "==" ? "=" : op},
                    at, {l, parse_add()});
      }
    return l;
  }

  // One level of left-associative one-character operators from `ops`.
  template <class Next>
  expr_ptr parse_arith(std::string_view ops, Next next) {
    auto l = (this->*next)();
    for (;;) {
      ws();
      char c = peek();
      auto at = pos_;
      if (c == '\0' || ops.find(c) == std::string_view::npos)
        return l;
      ++pos_;
      l = make(expr::kind::binary, std::string(1, c), at,
               {l, (this->*next)()});
    }
  }

  // "." concatenates only between spaces or quotes: a.b is a field.
  expr_ptr parse_add() {
    return parse_arith("+-.", &parser::parse_mul);
  }

  expr_ptr parse_mul() {
    return parse_arith("*/%", &parser::parse_unary);
  }

  expr_ptr parse_unary() {
    ws();
    auto at = pos_;
    if (peek() == '-') {
      ++pos_;
      return make(expr::kind::unary, "-", at, {parse_unary()});
    }
    return parse_primary();
  }

  expr_ptr parse_primary() {
    ws();
    auto at = pos_;
    char c = peek();
    if (err)
      return make(expr::kind::literal, "", at);
    if (c == '(') {
      ++pos_;
      auto e = parse_expr();
      ws();
      if (peek() != ')')
        fail(at, "'(' is never closed");
      else
        ++pos_;
      return e;
    }
    if (c == '"') {
      auto q = quoted();
      auto e = std::make_shared<expr>();
      e->k = expr::kind::literal;
      e->literal = q.value_or("");
      e->column = at;
      return e;
    }
    if (c == '\'') {
      auto q = quoted();
      return make(expr::kind::field, q.value_or(""), at);
    }
    if (std::isdigit(static_cast<unsigned char>(c))
        || (c == '.' && std::isdigit(static_cast<unsigned char>(
                          pos_ + 1 < s_.size() ? s_[pos_ + 1] : 'x')))) {
      auto start = pos_;
      while (pos_ < s_.size()
             && (std::isdigit(static_cast<unsigned char>(s_[pos_]))
                 || s_[pos_] == '.'
                 || ((s_[pos_] == 'e' || s_[pos_] == 'E')
                     && pos_ + 1 < s_.size()
                     && (std::isdigit(static_cast<unsigned char>(s_[pos_ + 1]))
                         || s_[pos_ + 1] == '-' || s_[pos_ + 1] == '+'))
                 || ((s_[pos_] == '-' || s_[pos_] == '+')
                     && (s_[pos_ - 1] == 'e' || s_[pos_ - 1] == 'E'))))
        ++pos_;
      auto x = to_number(s_.substr(start, pos_ - start));
      if (!x) {
        fail(start, "not a number");
        return make(expr::kind::literal, "", at);
      }
      auto e = std::make_shared<expr>();
      e->k = expr::kind::literal;
      e->literal = *x;
      e->column = at;
      return e;
    }
    if (!ident_start(c)) {
      fail(at, pos_ >= s_.size() || c == '|'
                 ? std::string{"expected an expression"}
                 : fmt::format("unexpected '{}' in an expression", c));
      return make(expr::kind::literal, "", at);
    }
    auto start = pos_;
    while (pos_ < s_.size() && ident_char(s_[pos_]))
      ++pos_;
    while (pos_ > start + 1 && s_[pos_ - 1] == '.') // a.b. -> a.b then "."
      --pos_;
    std::string name{s_.substr(start, pos_ - start)};
    if (peek() != '(')
      return make(expr::kind::field, name, at);
    // A function call.
    const auto& fns = known_functions();
    if (std::find(fns.begin(), fns.end(), name) == fns.end()) {
      fail(at, fmt::format("unknown function '{}'", name));
      return make(expr::kind::literal, "", at);
    }
    ++pos_;
    std::vector<expr_ptr> args;
    ws();
    if (peek() != ')')
      for (;;) {
        args.push_back(parse_expr());
        ws();
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        break;
      }
    ws();
    if (peek() != ')') {
      fail(pos_, fmt::format("expected ')' to close {}(", name));
      return make(expr::kind::literal, "", at);
    }
    ++pos_;
    auto ar = arity_of(name);
    if (args.size() < ar.min || args.size() > ar.max) {
      fail(at, ar.min == ar.max
                 ? fmt::format("{}() takes {} argument{}", name, ar.min,
                               ar.min == 1 ? "" : "s")
                 : fmt::format("{}() takes {} to {} arguments", name, ar.min,
                               ar.max));
      return make(expr::kind::literal, "", at);
    }
    auto e = std::make_shared<expr>();
    e->k = expr::kind::call;
    e->name = name;
    e->column = at;
    e->args = std::move(args);
    if (name == "match" || name == "replace") {
      const auto& p = *e->args[1];
      auto text = std::get_if<std::string>(&p.literal);
      if (p.k != expr::kind::literal || !text) {
        fail(p.column, fmt::format("{}() needs a quoted regular expression",
                                   name));
        return e;
      }
      RE2::Options o;
      o.set_log_errors(false);
      auto re = std::make_shared<RE2>(python_groups(*text), o);
      if (!re->ok()) {
        fail(p.column, fmt::format("invalid regular expression: {}",
                                   re->error()));
        return e;
      }
      e->regex = std::move(re);
    }
    return e;
  }

  // -- commands ------------------------------------------------------------------

  bool parse_aggregations(command& c, bool allow_by) {
    static const std::vector<std::string_view> fns = {
      "count", "dc",     "distinct_count", "sum",      "avg",    "mean",
      "min",   "max",    "stdev",          "median",   "earliest", "latest",
      "values"};
    for (;;) {
      ws();
      if (end_of_stage())
        break;
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      auto at = pos_;
      if (allow_by && keyword("by", true))
        return parse_by(c);
      auto name = ident();
      if (name.empty()) {
        fail(at, "expected an aggregation such as count or avg(field)");
        return false;
      }
      aggregation a;
      auto lname = lower(name);
      if (lname.size() > 4 && lname.starts_with("perc")
          && std::all_of(lname.begin() + 4, lname.end(),
                         [](char ch) { return std::isdigit(
                                         static_cast<unsigned char>(ch)); })) {
        a.fn = "perc";
        a.percentile = std::stoi(lname.substr(4));
        if (a.percentile < 1 || a.percentile > 99) {
          fail(at, "perc<N> takes N from 1 to 99");
          return false;
        }
      } else if (std::find(fns.begin(), fns.end(), lname) != fns.end()) {
        a.fn = lname == "distinct_count" ? "dc"
               : lname == "mean"         ? "avg"
                                         : lname;
      } else {
        fail(at, fmt::format("unknown aggregation '{}'; known: count, dc, "
                             "sum, avg, min, max, stdev, median, perc<N>, "
                             "earliest, latest, values",
                             name));
        return false;
      }
      ws();
      if (peek() == '(') {
        ++pos_;
        auto f = field_name("a field name");
        if (!f)
          return false;
        a.field = *f;
        ws();
        if (peek() != ')') {
          fail(pos_, fmt::format("expected ')' after {}({}", name, a.field));
          return false;
        }
        ++pos_;
      } else if (a.fn != "count") {
        fail(pos_, fmt::format("{} needs a field: {}(field)", name, name));
        return false;
      }
      a.as = a.field.empty() ? a.fn
             : a.fn == "perc"
               ? fmt::format("perc{}({})", a.percentile, a.field)
               : fmt::format("{}({})", name == "mean" ? "avg" : lname,
                             a.field);
      if (keyword("as", true)) {
        auto alias = field_name("a name after AS");
        if (!alias)
          return false;
        a.as = *alias;
      }
      c.aggregations.push_back(std::move(a));
    }
    if (c.aggregations.empty())
      return fail(c.column, "expected at least one aggregation");
    return true;
  }

  bool parse_by(command& c) {
    for (;;) {
      ws();
      if (end_of_stage())
        break;
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      auto f = field_name("a field after BY");
      if (!f)
        return false;
      c.by.push_back(*f);
    }
    if (c.by.empty())
      return fail(pos_, "BY needs at least one field");
    return true;
  }

  bool parse_field_list(std::vector<std::string>& out, std::string_view what,
                        bool stop_at_by = false) {
    for (;;) {
      ws();
      if (end_of_stage())
        break;
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (stop_at_by) {
        auto save = pos_;
        if (keyword("by", true)) {
          pos_ = save;
          break;
        }
      }
      auto f = field_name(what);
      if (!f)
        return false;
      out.push_back(*f);
    }
    return true;
  }

  std::optional<std::size_t> count_arg() {
    ws();
    auto start = pos_;
    while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_])))
      ++pos_;
    if (pos_ == start)
      return std::nullopt;
    if (pos_ - start > 9) {
      fail(start, "number too large");
      return std::nullopt;
    }
    return static_cast<std::size_t>(std::stoul(std::string{s_.substr(start,
                                                           pos_ - start)}));
  }

  bool parse_command(command& c) {
    ws();
    c.column = pos_;
    auto name = lower(ident());
    using k = command::kind;
    if (name.empty())
      return fail(c.column, "expected a command after '|'");
    if (name == "search") {
      c.k = k::search;
      c.filter = parse_and(false);
      return !err;
    }
    if (name == "where") {
      c.k = k::where;
      if (end_of_stage())
        return fail(pos_, "where needs a condition");
      c.condition = parse_expr();
      return !err && expect_stage_end();
    }
    if (name == "eval") {
      c.k = k::eval;
      for (;;) {
        ws();
        auto at = pos_;
        auto f = field_name("a field to assign, as in eval x=1");
        if (!f)
          return false;
        ws();
        if (peek() != '=' || s_.substr(pos_, 2) == "==")
          return fail(pos_, fmt::format("expected '=' after {}", *f));
        ++pos_;
        if (end_of_stage())
          return fail(pos_, fmt::format("expected an expression after {}=",
                                        *f));
        auto e = parse_expr();
        if (err)
          return false;
        (void)at;
        c.evals.emplace_back(*f, e);
        ws();
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        break;
      }
      return expect_stage_end();
    }
    if (name == "stats") {
      c.k = k::stats;
      return parse_aggregations(c, true);
    }
    if (name == "timechart") {
      c.k = k::timechart;
      for (;;) {
        ws();
        auto save = pos_;
        auto opt = ident();
        if (opt == "span" && peek() == '=') {
          ++pos_;
          auto at = pos_;
          auto v = bare();
          auto d = parse_duration(v);
          if (!d || d->count() <= 0)
            return fail(at, fmt::format("span={} is not a duration such as "
                                        "20s, 5m or 1h",
                                        v));
          c.span = d->count() * time_ns{1'000'000};
          continue;
        }
        pos_ = save;
        break;
      }
      if (!parse_aggregations(c, true))
        return false;
      if (c.by.size() > 1)
        return fail(c.column, "timechart splits by at most one field");
      return true;
    }
    if (name == "table" || name == "fields") {
      c.k = name == "table" ? k::table : k::fields;
      ws();
      if (c.k == k::fields && (peek() == '-' || peek() == '+')) {
        c.remove = peek() == '-';
        ++pos_;
      }
      if (!parse_field_list(c.fields, "a field name"))
        return false;
      if (c.fields.empty())
        return fail(pos_, fmt::format("{} needs at least one field", name));
      return true;
    }
    if (name == "rename") {
      c.k = k::rename;
      for (;;) {
        ws();
        if (end_of_stage())
          break;
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        auto from = field_name("a field to rename");
        if (!from)
          return false;
        if (!keyword("as", true))
          return fail(pos_, fmt::format("expected AS after {}", *from));
        auto to = field_name("a new name after AS");
        if (!to)
          return false;
        c.renames.emplace_back(*from, *to);
      }
      if (c.renames.empty())
        return fail(pos_, "rename needs `field AS name`");
      return true;
    }
    if (name == "sort") {
      c.k = k::sort;
      c.limit = count_arg().value_or(0);
      for (;;) {
        ws();
        if (end_of_stage())
          break;
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        bool desc = false;
        if (peek() == '-' || peek() == '+') {
          desc = peek() == '-';
          ++pos_;
        }
        auto f = field_name("a field to sort by");
        if (!f)
          return false;
        c.sort_keys.emplace_back(*f, desc);
      }
      if (c.sort_keys.empty())
        return fail(pos_, "sort needs at least one field");
      return !err;
    }
    if (name == "head" || name == "tail") {
      c.k = name == "head" ? k::head : k::tail;
      c.limit = count_arg().value_or(10);
      return !err && expect_stage_end();
    }
    if (name == "dedup") {
      c.k = k::dedup;
      if (!parse_field_list(c.fields, "a field name"))
        return false;
      if (c.fields.empty())
        return fail(pos_, "dedup needs at least one field");
      return true;
    }
    if (name == "top" || name == "rare") {
      c.k = name == "top" ? k::top : k::rare;
      c.limit = 10;
      for (;;) {
        ws();
        auto save = pos_;
        auto opt = ident();
        if (opt == "limit" && peek() == '=') {
          ++pos_;
          auto n = count_arg();
          if (!n)
            return fail(pos_, "limit= needs a number");
          c.limit = *n;
          continue;
        }
        pos_ = save;
        break;
      }
      if (!parse_field_list(c.fields, "a field name", true))
        return false;
      if (c.fields.empty())
        return fail(pos_, fmt::format("{} needs at least one field", name));
      if (keyword("by", true))
        return parse_by(c);
      return true;
    }
    if (name == "rex") {
      c.k = k::rex;
      ws();
      auto save = pos_;
      auto opt = ident();
      if (opt == "field" && peek() == '=') {
        ++pos_;
        auto f = field_name("a field after field=");
        if (!f)
          return false;
        c.rex_field = *f;
      } else {
        pos_ = save;
      }
      ws();
      auto at = pos_;
      if (peek() != '"')
        return fail(at, "rex needs a quoted regular expression");
      auto pattern = quoted();
      if (!pattern)
        return false;
      RE2::Options o;
      o.set_log_errors(false);
      auto re = std::make_shared<RE2>(python_groups(*pattern), o);
      if (!re->ok())
        return fail(at, fmt::format("invalid regular expression: {}",
                                    re->error()));
      if (re->NamedCapturingGroups().empty())
        return fail(at, "rex needs at least one named group: (?<name>...)");
      for (const auto& [group, index] : re->NamedCapturingGroups())
        c.rex_names.push_back(group);
      c.regex = std::move(re);
      return expect_stage_end();
    }
    return fail(c.column,
                fmt::format("unknown command '{}'; known: search, where, "
                            "eval, stats, timechart, table, fields, rename, "
                            "sort, head, tail, dedup, top, rare, rex",
                            name));
  }

  bool expect_stage_end() {
    if (end_of_stage())
      return true;
    return fail(pos_, fmt::format("unexpected '{}'", s_.substr(pos_, 1)));
  }

  bool pipe() {
    ws();
    if (peek() != '|')
      return false;
    ++pos_;
    return true;
  }

  time_ns now() const {
    return now_;
  }

private:
  std::string_view s_;
  std::size_t pos_ = 0;
  time_ns now_;
};

// Takes earliest=/latest= out of the top-level conjunction.
bool extract_time_bounds(search_node& n, query& q, time_ns now, error& err,
                         bool top) {
  using k = search_node::kind;
  auto is_bound = [](const search_node& c) {
    return c.k == k::compare && (c.field == "earliest" || c.field == "latest");
  };
  auto take = [&](const search_node& c) {
    if (c.op != "=") {
      err = error{ec::bad_query, fmt::format("{} takes '=', as in {}=-1h",
                                             c.field, c.field),
                  c.column};
      return false;
    }
    auto t = parse_time(c.text, now);
    if (!t) {
      err = error{ec::bad_query, t.error().message, c.column};
      return false;
    }
    (c.field == "earliest" ? q.earliest : q.latest) = *t;
    return true;
  };
  if (top && is_bound(n)) {
    if (!take(n))
      return false;
    n = search_node{};
    return true;
  }
  if (top && n.k == k::and_) {
    std::vector<search_node> kept;
    for (auto& c : n.children) {
      if (is_bound(c)) {
        if (!take(c))
          return false;
        continue;
      }
      if (!extract_time_bounds(c, q, now, err, false))
        return false;
      kept.push_back(std::move(c));
    }
    n.children = std::move(kept);
    if (n.children.empty())
      n = search_node{};
    else if (n.children.size() == 1) {
      auto only = std::move(n.children.front());
      n = std::move(only);
    }
    return true;
  }
  if (is_bound(n)) {
    err = error{ec::bad_query,
                fmt::format("{}= applies to the whole search; use it outside "
                            "OR, NOT and parentheses",
                            n.field),
                n.column};
    return false;
  }
  for (auto& c : n.children)
    if (!extract_time_bounds(c, q, now, err, false))
      return false;
  return true;
}

} // namespace

result<query> parse(std::string_view text, time_ns now) {
  query q;
  q.text = std::string{text};
  parser p{text, now};
  p.ws();
  q.filter = p.parse_and(false);
  if (p.err)
    return p.err;
  error err;
  if (!extract_time_bounds(q.filter, q, now, err, true))
    return err;
  while (p.pipe()) {
    command c;
    if (!p.parse_command(c))
      return p.err;
    q.commands.push_back(std::move(c));
  }
  if (p.err)
    return p.err;
  p.ws();
  if (p.pos() < text.size())
    return error{ec::bad_query, "unexpected text", p.pos()};
  if (q.earliest && q.latest && *q.earliest >= *q.latest) {
    auto at = text.find("latest=");
    return error{ec::bad_query, "latest= is not after earliest=",
                 at == std::string_view::npos ? 0 : at};
  }
  return q;
}

result<expr_ptr> parse_expression(std::string_view text) {
  parser p{text, 0};
  auto e = p.parse_expr();
  if (p.err)
    return p.err;
  if (!p.end_of_stage())
    return error{ec::bad_query, "unexpected text after the expression",
                 p.pos()};
  return e;
}

result<time_ns> parse_time(std::string_view text, time_ns now) {
  auto bad = [&] {
    return error{ec::bad_query,
                 fmt::format("'{}' is not a time: use now, -15m, -1d@d, "
                             "epoch seconds or 2026-11-25T10:00:00Z",
                             text)};
  };
  if (text.empty())
    return bad();
  if (text == "now")
    return now;
  if (auto x = to_number(text); x && text[0] != '-' && text[0] != '+')
    return static_cast<time_ns>(std::llround(*x * 1e9));
  if (text[0] == '-' || text[0] == '+' || text[0] == '@') {
    time_ns t = now;
    std::size_t i = 0;
    auto unit_ns = [](std::string_view u) -> time_ns {
      if (u == "s" || u == "sec" || u == "secs" || u == "second"
          || u == "seconds")
        return ns_per_s;
      if (u == "m" || u == "min" || u == "mins" || u == "minute"
          || u == "minutes")
        return 60 * ns_per_s;
      if (u == "h" || u == "hr" || u == "hrs" || u == "hour" || u == "hours")
        return 3600 * ns_per_s;
      if (u == "d" || u == "day" || u == "days")
        return 86400 * ns_per_s;
      if (u == "w" || u == "week" || u == "weeks")
        return 7 * 86400 * ns_per_s;
      return 0;
    };
    while (i < text.size() && (text[i] == '-' || text[i] == '+')) {
      int sign = text[i] == '-' ? -1 : 1;
      ++i;
      auto start = i;
      while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])))
        ++i;
      long long n = i > start ? std::stoll(std::string{text.substr(start,
                                                                   i - start)})
                              : 1;
      start = i;
      while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i])))
        ++i;
      auto u = unit_ns(text.substr(start, i - start));
      if (u == 0)
        return bad();
      t += sign * n * u;
    }
    if (i < text.size()) {
      if (text[i] != '@')
        return bad();
      auto u = unit_ns(text.substr(i + 1));
      if (u == 0)
        return bad();
      if (u == 7 * 86400 * ns_per_s) {
        // @w snaps to the start of the week, Sunday (as SPL does).
        auto day = 86400 * ns_per_s;
        auto days = t >= 0 ? t / day : (t - day + 1) / day;
        auto weekday = ((days % 7) + 7 + 4) % 7; // 1970-01-01 was a Thursday
        t = (days - weekday) * day;
      } else {
        t = (t >= 0 ? t / u : (t - u + 1) / u) * u;
      }
    }
    return t;
  }
  for (auto fmt : {time_format{time_format::rfc3339, {}},
                   time_format{time_format::strptime, "%m/%d/%Y:%H:%M:%S"}}) {
    auto x = extract_time(text, fmt, now, text.size());
    if (x && x->offset == 0 && x->length == text.size())
      return x->time;
  }
  return bad();
}

std::string render_error(std::string_view query_text, const error& e) {
  if (e.code != ec::bad_query || e.offset == no_offset)
    return e.message;
  auto col = std::min(e.offset, query_text.size());
  return fmt::format("{}\n{}^ {}", query_text, std::string(col, ' '),
                     e.message);
}

result<late_rules> compile_late_rules(std::string_view sourcetype,
                                      const std::vector<std::string>& extract,
                                      const std::vector<std::string>& aliases,
                                      const std::vector<std::string>& calculated) {
  late_rules r;
  r.sourcetype = std::string{sourcetype};
  auto key = [&](std::string_view what, std::size_t i) {
    return fmt::format("parallax.sourcetypes.\"{}\".{}[{}]", sourcetype, what,
                       i);
  };
  for (std::size_t i = 0; i < extract.size(); ++i) {
    RE2::Options o;
    o.set_log_errors(false);
    auto re = std::make_shared<RE2>(python_groups(extract[i]), o);
    if (!re->ok())
      return error{ec::config_bad_value,
                   fmt::format("{}: invalid regex: {}", key("extract", i),
                               re->error())};
    if (re->NamedCapturingGroups().empty())
      return error{ec::config_bad_value,
                   fmt::format("{}: the regex names no group; write "
                               "(?<field>...)",
                               key("extract", i))};
    r.extract.push_back(std::move(re));
  }
  for (std::size_t i = 0; i < aliases.size(); ++i) {
    std::string_view a = aliases[i];
    std::string from, to;
    if (auto as = a.find(" AS "); as != std::string_view::npos) {
      from = std::string{a.substr(0, as)};
      to = std::string{a.substr(as + 4)};
    } else if (auto eq = a.find('='); eq != std::string_view::npos) {
      from = std::string{a.substr(0, eq)};
      to = std::string{a.substr(eq + 1)};
    }
    auto trim = [](std::string& s) {
      while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
        s.pop_back();
      while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
        s.erase(s.begin());
    };
    trim(from);
    trim(to);
    if (!valid_field(from) || !valid_field(to))
      return error{ec::config_bad_value,
                   fmt::format("{}: expected \"existing=alias\", got \"{}\"",
                               key("field-aliases", i), a)};
    r.aliases.emplace_back(std::move(from), std::move(to));
  }
  for (std::size_t i = 0; i < calculated.size(); ++i) {
    std::string_view c = calculated[i];
    auto eq = c.find('=');
    std::string name{eq == std::string_view::npos ? c : c.substr(0, eq)};
    while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back())))
      name.pop_back();
    if (eq == std::string_view::npos || !valid_field(name))
      return error{ec::config_bad_value,
                   fmt::format("{}: expected \"name=expression\", got \"{}\"",
                               key("calculated", i), c)};
    auto e = parse_expression(c.substr(eq + 1));
    if (!e)
      return error{ec::config_bad_value,
                   fmt::format("{}: {} (at column {} of the expression)",
                               key("calculated", i), e.error().message,
                               e.error().offset + 1)};
    r.calculated.emplace_back(std::move(name), std::move(*e));
  }
  return r;
}

} // namespace parallax::search
