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
#include <cstring>
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

/// Copies `n` bytes from `in` to `out`, ASCII-lowercasing them when
/// `lower`; returns whether a NUL byte was among them. Eight bytes at a
/// time: every term the indexer makes goes through here. Per byte b of a
/// word, t = b & 0x7f plus 0x80 - 'A' (or 0x80 - 'Z' - 1) sets the byte's
/// high bit iff t >= 'A' (or t > 'Z'); no sum carries into the next byte.
inline bool copy_term_bytes(const char* in, std::size_t n, char* out,
                            bool lower) {
  constexpr std::uint64_t ones = 0x0101010101010101ULL;
  constexpr std::uint64_t highs = 0x8080808080808080ULL;
  std::uint64_t nul = 0;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, in + i, 8);
    nul |= (w - ones) & ~w & highs;
    if (lower) {
      auto t = w & ~highs;
      auto upper = ((t + (0x80 - 'A') * ones) ^ (t + (0x80 - 'Z' - 1) * ones))
                   & ~w & highs;
      w |= upper >> 2; // 0x80 >> 2 is 0x20, the case bit
    }
    std::memcpy(out + i, &w, 8);
  }
  bool found = nul != 0;
  for (; i < n; ++i) {
    auto c = in[i];
    found |= c == '\0';
    out[i] = (lower && c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
  }
  return found;
}

/// Calls `emit(std::string_view term)` for every term of `text`: each whole
/// token, then, if it contains minor breakers, each of its segments that
/// differs from the token (so `-abc` yields `-abc` and `abc`). The view
/// passed to `emit` is valid only during the call.
template <class F>
void tokenize(std::string_view text, F&& emit) {
  thread_local std::string buf; // reused: no allocation per call
  std::size_t i = 0;
  const std::size_t n = text.size();
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
      buf.resize(len);
      copy_term_bytes(text.data() + start, len, buf.data(), true);
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
        buf.resize(j - s);
        copy_term_bytes(token.data() + s, j - s, buf.data(), true);
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
  // Written into place: this runs for every string field of every event
  // stored.
  out.resize(n);
  auto p = out.data();
  bool nul = copy_term_bytes(name.data(), name.size(), p, false);
  p[name.size()] = '=';
  nul |= copy_term_bytes(value.data(), value.size(), p + name.size() + 1,
                         true);
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
