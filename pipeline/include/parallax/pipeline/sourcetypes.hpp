#pragma once

// Per-sourcetype parsing rules, from the config file:
//
//   [parallax.sourcetypes."os:auth"]
//   time-format = "syslog"          # see timestamp.hpp
//   time-lookahead = 128            # bytes searched for a timestamp
//   sedcmd = ['s/password=\S+/password=*****/g']
//   kv = "auto"                     # auto | equals | none
//   line-breaker = '^\w{3} +\d+ '   # RE2: a line matching starts an event
//
// and the search-time ("late-binding") rules, applied when a search reads
// an event, so they change without re-indexing (search.hpp, late_rules):
//
//   extract = ['user (?<user>\S+) from (?<src_ip>[\d.]+)']  # RE2, named groups
//   field-aliases = ["src_ip=client_ip"]         # existing=alias
//   calculated = ["duration_s=duration_ms / 1000"]  # name=EXPRESSION (eval)
//
// A sourcetype without rules gets the defaults (auto, 128, none, auto, one
// event per line). Every regex is RE2: linear time, no catastrophic
// backtracking; an invalid one is a config error naming the rule.

#include "parallax/pipeline/kv.hpp"
#include "parallax/pipeline/timestamp.hpp"
#include "parallax/schemas/error.hpp"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace re2 {
class RE2;
}

namespace parallax {

/// The rules as written in the config file.
struct sourcetype_rules {
  std::string name;
  std::string time_format = "auto";
  std::size_t time_lookahead = 128;
  std::vector<std::string> sedcmd;
  std::string kv = "auto";
  std::string line_breaker; ///< empty: one event per line
  /// Search time: RE2 patterns with named groups over _raw.
  std::vector<std::string> extract;
  /// Search time: "existing=alias".
  std::vector<std::string> field_aliases;
  /// Search time: "name=EXPRESSION" (an eval expression).
  std::vector<std::string> calculated;
  friend bool operator==(const sourcetype_rules&,
                         const sourcetype_rules&) = default;
};

/// A `s/regex/replacement/[g]` transform, compiled.
struct sed_transform {
  std::shared_ptr<const re2::RE2> regex;
  std::string replacement; ///< RE2 syntax: \1 refers to a group
  bool global = false;
  /// Applies the transform; returns true if `text` changed.
  bool apply(std::string& text) const;
};

/// Rules ready to use.
struct compiled_rules {
  time_format time;
  std::size_t time_lookahead = 128;
  std::vector<sed_transform> sed;
  kv_mode kv = kv_mode::automatic;
  std::shared_ptr<const re2::RE2> line_breaker; ///< null: one line each

  /// True if a line starts a new event.
  bool starts_event(std::string_view line) const;
};

/// Compiles `r`; the error message names the key, e.g.
/// `parallax.sourcetypes."os:auth".sedcmd[0]: invalid regex: missing )`.
result<compiled_rules> compile(const sourcetype_rules& r);

/// The rules for a sourcetype: its own, or the defaults.
class rulebook {
public:
  static result<rulebook> make(const std::vector<sourcetype_rules>& rules);
  const compiled_rules& find(std::string_view sourcetype) const;

private:
  std::vector<std::pair<std::string, compiled_rules>> rules_;
  compiled_rules defaults_;
};

} // namespace parallax
