#pragma once

#include <cstddef>
#include <string_view>

namespace parallax {

/// Returns the byte offset of the first invalid UTF-8 sequence in `s`, or
/// `s.size()` if `s` is valid. Rejects overlong encodings, surrogates
/// (U+D800..U+DFFF) and code points above U+10FFFF, as RFC 3629 requires.
std::size_t find_invalid_utf8(std::string_view s) noexcept;

/// True if `s` is valid UTF-8.
inline bool is_valid_utf8(std::string_view s) noexcept {
  return find_invalid_utf8(s) == s.size();
}

} // namespace parallax
