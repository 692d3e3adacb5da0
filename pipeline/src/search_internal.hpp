#pragma once

// Pieces of the search engine shared by its translation units
// (search_parse.cpp, search_eval.cpp, search_exec.cpp). Not installed.

#include "parallax/pipeline/search.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace parallax::search::internal {

/// A field value as the matcher sees it, pointing into an event or a row.
struct fv {
  enum kind_t { none, number, text } kind = none;
  double n = 0;
  std::string_view s;
  bool present() const noexcept {
    return kind != none;
  }
};

/// Formats a number the way results show it (12, 0.5, 1e+20).
std::string number_text(double d);

/// ASCII case-insensitive equality and glob (`*` any run of bytes).
bool iequals(std::string_view a, std::string_view b) noexcept;
bool iglob(std::string_view text, std::string_view pattern) noexcept;
std::string lower(std::string_view s);

/// True if the keyword holds bytes the tokenizer breaks at (major
/// breakers): it is then matched as a phrase.
bool has_major_breaker(std::string_view s) noexcept;

/// Field access over an event (with its search-time fields) or a row.
class accessor {
public:
  virtual ~accessor() = default;
  virtual fv lookup(std::string_view name) const = 0;
  virtual std::optional<std::string_view> raw() const = 0;
};

/// The search clause's verdict on one event or row.
bool matches(const search_node& n, const accessor& a);

/// Compares a present value with `pattern` under `op` (docs/search.md).
bool compare(const fv& v, std::string_view op, std::string_view pattern);

/// Evaluates an eval expression on a row. Booleans are 1 and 0.
val evaluate(const expr& e, const row& r);

/// True for a non-null value that is not 0 and not empty text.
bool truthy(const val& v) noexcept;

/// An accessor over a row.
class row_accessor final : public accessor {
public:
  explicit row_accessor(const row& r) : r_{r} {
  }
  fv lookup(std::string_view name) const override;
  std::optional<std::string_view> raw() const override;

private:
  const row& r_;
  mutable std::string buf_;
};

/// Applies a sourcetype's search-time rules to a row.
void apply_late(const late_rules& rules, row& r);

/// Runs one streaming command over a row; false drops the row.
bool stream(const command& c, row& r);

/// True for commands that work on one row at a time.
bool is_streaming(command::kind k) noexcept;

/// True for commands whose output is an aggregate.
bool is_transform(command::kind k) noexcept;

/// Runs a non-streaming command over all rows (sort, head, tail, dedup, and
/// stats/timechart/top/rare after an earlier transform).
error apply_central(const command& c, std::vector<row>& rows,
                    const options& opts);

/// Bytes a row holds, roughly (for the memory bound).
std::size_t row_bytes(const row& r) noexcept;

} // namespace parallax::search::internal
