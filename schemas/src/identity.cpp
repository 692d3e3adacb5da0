#include "parallax/schemas/identity.hpp"

#include <array>

namespace parallax {

namespace {

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

constexpr char hex_digits[] = "0123456789abcdef";

// Collects exactly `n` hex digits from `text`, allowing `sep` only at the
// positions where `at_sep(i)` (index into the text) says so.
template <class IsSep>
std::optional<std::string> hex_run(std::string_view text, std::size_t n,
                                   IsSep is_sep) {
  std::string digits;
  digits.reserve(n);
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (is_sep(i, text[i]))
      continue;
    auto v = hex_value(text[i]);
    if (v < 0 || digits.size() == n)
      return std::nullopt;
    digits.push_back(hex_digits[v]);
  }
  if (digits.size() != n)
    return std::nullopt;
  return digits;
}

} // namespace

std::optional<std::string> normalize_mac(std::string_view text) {
  std::optional<std::string> digits;
  if (text.size() == 17 && (text[2] == ':' || text[2] == '-')) {
    auto sep = text[2];
    digits = hex_run(text, 12, [sep](std::size_t i, char c) {
      return i % 3 == 2 && c == sep;
    });
    // Every separator position must hold the separator.
    for (std::size_t i = 2; digits && i < text.size(); i += 3)
      if (text[i] != sep)
        digits.reset();
  } else if (text.size() == 14 && text[4] == '.' && text[9] == '.') {
    digits = hex_run(text, 12, [](std::size_t i, char c) {
      return (i == 4 || i == 9) && c == '.';
    });
  } else if (text.size() == 12) {
    digits = hex_run(text, 12, [](std::size_t, char) { return false; });
  }
  if (!digits || *digits == "000000000000")
    return std::nullopt;
  std::string out;
  out.reserve(17);
  for (std::size_t i = 0; i < 12; i += 2) {
    if (i > 0)
      out.push_back(':');
    out.append(*digits, i, 2);
  }
  return out;
}

bool is_locally_administered(std::string_view mac) noexcept {
  if (mac.size() < 2)
    return false;
  auto hi = hex_value(mac[0]);
  auto lo = hex_value(mac[1]);
  if (hi < 0 || lo < 0)
    return false;
  return ((hi << 4 | lo) & 0x02) != 0;
}

std::optional<std::string> normalize_uuid(std::string_view text) {
  if (text.size() >= 2 && text.front() == '{' && text.back() == '}')
    text = text.substr(1, text.size() - 2);
  std::optional<std::string> digits;
  if (text.size() == 36) {
    digits = hex_run(text, 32, [](std::size_t i, char c) {
      return (i == 8 || i == 13 || i == 18 || i == 23) && c == '-';
    });
  } else if (text.size() == 32) {
    digits = hex_run(text, 32, [](std::size_t, char) { return false; });
  }
  if (!digits)
    return std::nullopt;
  std::string out = *digits;
  for (auto pos : {8, 13, 18, 23})
    out.insert(out.begin() + pos, '-');
  return out;
}

std::string swap_uuid_byte_order(std::string_view uuid) {
  std::string out{uuid};
  if (uuid.size() != 36)
    return out;
  // Group 1 (4 bytes), group 2 (2 bytes), group 3 (2 bytes): reverse bytes.
  auto reverse_group = [&](std::size_t first, std::size_t bytes) {
    for (std::size_t b = 0; b < bytes; ++b) {
      auto src = first + 2 * (bytes - 1 - b);
      out[first + 2 * b] = uuid[src];
      out[first + 2 * b + 1] = uuid[src + 1];
    }
  };
  reverse_group(0, 4);
  reverse_group(9, 2);
  reverse_group(14, 2);
  return out;
}

} // namespace parallax
