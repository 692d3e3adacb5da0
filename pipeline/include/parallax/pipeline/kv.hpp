#pragma once

// Automatic key/value extraction from raw text, as the parser applies it:
//   a=b        value up to whitespace or , ; ) ] }
//   a="b c"    quoted value; \" inside is a quote
//   a: b       only in `auto` mode; value up to whitespace, a trailing , ;
//              or : dropped
// A key starts at a token boundary with a letter or `_`, continues with
// letters, digits, `_`, `.` and `-`, and is at most 64 bytes. Empty values
// are skipped. The `a: b` form is noisier on syslog-style text (`su: pam…`),
// hence the `equals` mode.

#include <string>
#include <string_view>

namespace parallax {

enum class kv_mode { none, equals, automatic };

/// "none", "equals" or "auto".
bool parse_kv_mode(std::string_view s, kv_mode& out);

/// Calls `f(key, value)` for each pair, in text order. Values of quoted
/// pairs have their `\"` unescaped, so they are passed as std::string.
template <class F>
void extract_kv(std::string_view text, kv_mode mode, F&& f);

namespace detail {

inline bool key_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

inline bool key_char(char c) {
  return key_start(c) || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

inline bool value_end(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ','
         || c == ';' || c == ')' || c == ']' || c == '}';
}

} // namespace detail

template <class F>
void extract_kv(std::string_view text, kv_mode mode, F&& f) {
  if (mode == kv_mode::none)
    return;
  std::size_t i = 0;
  const std::size_t n = text.size();
  std::string value;
  while (i < n) {
    if (!detail::key_start(text[i])
        || (i > 0 && detail::key_char(text[i - 1]))) {
      ++i;
      continue;
    }
    auto k0 = i;
    while (i < n && detail::key_char(text[i]))
      ++i;
    auto key = text.substr(k0, i - k0);
    if (key.size() > 64 || i >= n)
      continue;
    if (text[i] == '=') {
      ++i;
      if (i < n && text[i] == '"') {
        ++i;
        value.clear();
        bool closed = false;
        while (i < n) {
          if (text[i] == '\\' && i + 1 < n && text[i + 1] == '"') {
            value.push_back('"');
            i += 2;
          } else if (text[i] == '"') {
            ++i;
            closed = true;
            break;
          } else {
            value.push_back(text[i++]);
          }
        }
        if (closed && !value.empty())
          f(key, std::string_view{value});
        continue;
      }
      auto v0 = i;
      while (i < n && !detail::value_end(text[i]))
        ++i;
      if (i > v0)
        f(key, text.substr(v0, i - v0));
      continue;
    }
    if (mode == kv_mode::automatic && text[i] == ':' && i + 1 < n
        && text[i + 1] == ' ') {
      i += 2;
      auto v0 = i;
      while (i < n && !detail::value_end(text[i]))
        ++i;
      auto v = text.substr(v0, i - v0);
      while (!v.empty() && (v.back() == ':' || v.back() == ','))
        v.remove_suffix(1);
      if (!v.empty())
        f(key, v);
    }
  }
}

} // namespace parallax
