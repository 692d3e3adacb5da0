#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace parallax {

/// Returns the byte offset of the first invalid UTF-8 sequence in `s`, or
/// `s.size()` if `s` is valid. Rejects overlong encodings, surrogates
/// (U+D800..U+DFFF) and code points above U+10FFFF, as RFC 3629 requires.
std::size_t find_invalid_utf8(std::string_view s) noexcept;

/// True if `s`, at most 64 bytes, is all ASCII; checked inline, eight
/// bytes at a time. Names and topics are short and almost always ASCII:
/// the call into find_invalid_utf8 cost more than the check.
inline bool is_short_ascii(std::string_view s) noexcept {
  auto n = s.size();
  if (n > 64)
    return false;
  auto p = s.data();
  std::uint64_t high = 0;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    high |= w;
  }
  for (; i < n; ++i)
    high |= static_cast<unsigned char>(p[i]);
  return (high & 0x8080808080808080ull) == 0;
}

/// True if `s` is valid UTF-8.
inline bool is_valid_utf8(std::string_view s) noexcept {
  return is_short_ascii(s) || find_invalid_utf8(s) == s.size();
}

} // namespace parallax
