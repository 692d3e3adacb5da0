#pragma once

// Terms of the keyword index, as Splunk's segmenter makes them: raw text is
// split at major breakers (whitespace, brackets, quotes, `,;|!&?*+`) into
// whole tokens, and each whole token is split again at minor breakers
// (`/ : = @ . - $ # % \ _`) into segments. Both are terms, so `10.0.1.2`
// and `10`, `0`, `1`, `2` are all found. Terms are ASCII-lowercased; bytes
// >= 0x80 are kept as they are (UTF-8 passes through unchanged).

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace parallax::storage {

/// Terms longer than this are not indexed (they are still stored and found
/// by scanning).
inline constexpr std::size_t max_term_bytes = 128;

enum class breaker : std::uint8_t { none, minor, major };

/// Classification of every byte.
inline constexpr std::array<breaker, 256> breaker_table = [] {
  std::array<breaker, 256> t{};
  for (int c = 0; c < 0x20; ++c)
    t[static_cast<std::size_t>(c)] = breaker::major;
  t[0x7f] = breaker::major;
  for (unsigned char c : std::string_view{" []<>(){}|!;,'\"*&?+"})
    t[c] = breaker::major;
  for (unsigned char c : std::string_view{"/:=@.-$#%\\_"})
    t[c] = breaker::minor;
  return t;
}();

/// Calls `emit(std::string_view term)` for every term of `text`: each whole
/// token, then, if it contains minor breakers, each of its segments that
/// differs from the token (so `-abc` yields `-abc` and `abc`). The view
/// passed to `emit` is valid only during the call.
template <class F>
void tokenize(std::string_view text, F&& emit) {
  thread_local std::string buf; // reused: no allocation per call
  std::size_t i = 0;
  const std::size_t n = text.size();
  auto lower = [](char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
  };
  while (i < n) {
    while (i < n
           && breaker_table[static_cast<unsigned char>(text[i])]
                == breaker::major)
      ++i;
    auto start = i;
    bool has_minor = false;
    while (i < n) {
      auto b = breaker_table[static_cast<unsigned char>(text[i])];
      if (b == breaker::major)
        break;
      has_minor |= b == breaker::minor;
      ++i;
    }
    auto len = i - start;
    if (len == 0)
      continue;
    if (len <= max_term_bytes) {
      buf.assign(text.data() + start, len);
      for (auto& c : buf)
        c = lower(c);
      emit(std::string_view{buf});
    }
    if (!has_minor)
      continue;
    // Segments of the whole token.
    auto token = text.substr(start, len);
    std::size_t j = 0;
    while (j < token.size()) {
      while (j < token.size()
             && breaker_table[static_cast<unsigned char>(token[j])]
                  == breaker::minor)
        ++j;
      auto s = j;
      while (j < token.size()
             && breaker_table[static_cast<unsigned char>(token[j])]
                  != breaker::minor)
        ++j;
      if (j > s && j - s <= max_term_bytes && j - s < len) {
        buf.assign(token.data() + s, j - s);
        for (auto& c : buf)
          c = lower(c);
        emit(std::string_view{buf});
      }
    }
  }
}

/// Writes the term for an indexed field into `out`: `name=value`, the value
/// ASCII-lowercased. Returns false (and leaves `out` empty) if the term
/// would exceed `max_term_bytes` or contain a NUL byte (the key separator
/// of the index).
inline bool field_term_into(std::string& out, std::string_view name,
                            std::string_view value) {
  out.clear();
  auto n = name.size() + 1 + value.size();
  if (n > max_term_bytes)
    return false;
  // One pass over the bytes, writing into place: this runs for every
  // string field of every event stored.
  out.resize(n);
  auto p = out.data();
  bool nul = false;
  for (char c : name) {
    nul |= c == '\0';
    *p++ = c;
  }
  *p++ = '=';
  for (char c : value) {
    nul |= c == '\0';
    *p++ = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
  }
  if (nul)
    out.clear();
  return !nul;
}

/// The term for an indexed field, or an empty string (see field_term_into).
inline std::string field_term(std::string_view name, std::string_view value) {
  std::string t;
  field_term_into(t, name, value);
  return t;
}

} // namespace parallax::storage
