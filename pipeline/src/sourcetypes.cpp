#include "parallax/pipeline/sourcetypes.hpp"

#include <fmt/format.h>
#include <re2/re2.h>

namespace parallax {

namespace {

std::string key_of(const sourcetype_rules& r, std::string_view option) {
  return fmt::format("parallax.sourcetypes.\"{}\".{}", r.name, option);
}

// Splits "s/regex/replacement/flags" at unescaped delimiters; the delimiter
// is the character after the leading 's'.
result<sed_transform> parse_sed(std::string_view cmd, const std::string& key) {
  if (cmd.size() < 4 || cmd[0] != 's')
    return error{ec::config_bad_value,
                 fmt::format("{}: expected s/regex/replacement/[g], got \"{}\"",
                             key, cmd)};
  char delim = cmd[1];
  std::vector<std::string> parts(1);
  for (std::size_t i = 2; i < cmd.size(); ++i) {
    if (cmd[i] == '\\' && i + 1 < cmd.size() && cmd[i + 1] == delim) {
      parts.back().push_back(delim);
      ++i;
    } else if (cmd[i] == delim) {
      parts.emplace_back();
    } else {
      parts.back().push_back(cmd[i]);
    }
  }
  if (parts.size() != 3)
    return error{ec::config_bad_value,
                 fmt::format("{}: expected s/regex/replacement/[g], got \"{}\"",
                             key, cmd)};
  if (parts[2] != "" && parts[2] != "g")
    return error{ec::config_bad_value,
                 fmt::format("{}: unknown flags \"{}\" (only g)", key,
                             parts[2])};
  auto re = std::make_shared<re2::RE2>(parts[0], re2::RE2::Quiet);
  if (!re->ok())
    return error{ec::config_bad_value,
                 fmt::format("{}: invalid regex: {}", key, re->error())};
  std::string why;
  if (!re->CheckRewriteString(parts[1], &why))
    return error{ec::config_bad_value,
                 fmt::format("{}: invalid replacement: {}", key, why)};
  return sed_transform{std::move(re), parts[1], parts[2] == "g"};
}

} // namespace

bool sed_transform::apply(std::string& text) const {
  if (global)
    return re2::RE2::GlobalReplace(&text, *regex, replacement) > 0;
  return re2::RE2::Replace(&text, *regex, replacement);
}

bool compiled_rules::starts_event(std::string_view line) const {
  return !line_breaker
         || re2::RE2::PartialMatch(re2::StringPiece{line.data(), line.size()},
                                   *line_breaker);
}

result<compiled_rules> compile(const sourcetype_rules& r) {
  compiled_rules c;
  auto tf = parse_time_format(r.time_format);
  if (!tf)
    return error{ec::config_bad_value, fmt::format("{}: {}",
                                                   key_of(r, "time-format"),
                                                   tf.error().message)};
  c.time = std::move(*tf);
  c.time_lookahead = r.time_lookahead;
  if (!parse_kv_mode(r.kv, c.kv))
    return error{ec::config_bad_value,
                 fmt::format("{}: expected \"auto\", \"equals\" or \"none\", "
                             "got \"{}\"",
                             key_of(r, "kv"), r.kv)};
  for (std::size_t i = 0; i < r.sedcmd.size(); ++i) {
    auto t = parse_sed(r.sedcmd[i], key_of(r, fmt::format("sedcmd[{}]", i)));
    if (!t)
      return t.error();
    c.sed.push_back(std::move(*t));
  }
  if (!r.line_breaker.empty()) {
    auto re = std::make_shared<re2::RE2>(r.line_breaker, re2::RE2::Quiet);
    if (!re->ok())
      return error{ec::config_bad_value,
                   fmt::format("{}: invalid regex: {}",
                               key_of(r, "line-breaker"), re->error())};
    c.line_breaker = std::move(re);
  }
  return c;
}

result<rulebook> rulebook::make(const std::vector<sourcetype_rules>& rules) {
  rulebook b;
  auto d = compile(sourcetype_rules{});
  if (!d)
    return d.error();
  b.defaults_ = std::move(*d);
  for (const auto& r : rules) {
    auto c = compile(r);
    if (!c)
      return c.error();
    b.rules_.emplace_back(r.name, std::move(*c));
  }
  return b;
}

const compiled_rules& rulebook::find(std::string_view sourcetype) const {
  for (const auto& [name, rules] : rules_)
    if (name == sourcetype)
      return rules;
  return defaults_;
}

} // namespace parallax
