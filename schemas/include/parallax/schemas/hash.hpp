#pragma once

// A hash of short strings -- terms, field names, hosts, VM UUIDs, source
// ids -- for the hash maps on the per-event paths: the indexer's term and
// series maps and the correlator's maps by VM and by source. std::hash's
// murmur was an eighth of the indexer's instructions. Up to 16 bytes are
// read as two overlapping words, longer strings 16 bytes a round; each
// round and the end fold a 64x64->128-bit product. Not for hostile input:
// nothing here is keyed (neither is std::hash), so a sender who knows it
// could make keys that collide -- the maps then slow down; they stay
// correct. The product is zero, and the bytes before lost, when a word
// equals k1 or (up to 16 bytes) k2 ^ k0 ^ length: words holding the bytes
// 0xfd or 0xf7, which no valid UTF-8 contains. The wire decoder checks
// names (source ids, hosts, field names) for it; field values and raw
// text it does not, so keys from those (the indexer's terms) are the
// easier ones to make collide.

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <string_view>

namespace parallax {

/// Mixes two words into one: the halves of their 128-bit product, xored.
inline std::uint64_t hash_mix(std::uint64_t a, std::uint64_t b) {
  auto m = static_cast<unsigned __int128>(a) * b;
  return static_cast<std::uint64_t>(m) ^ static_cast<std::uint64_t>(m >> 64);
}

namespace detail {

template <std::size_t N>
std::uint64_t load_le(const unsigned char* p) {
  static_assert(N == 4 || N == 8);
  std::conditional_t<N == 4, std::uint32_t, std::uint64_t> x;
  std::memcpy(&x, p, N); // one load
  return x;
}

} // namespace detail

/// Whether `a` and `b` hold the same bytes. Names and terms are short:
/// up to 16 bytes by two overlapping loads each instead of a call to
/// memcmp, whose call cost was most of the indexer's and correlator's
/// compares.
inline bool same_text(std::string_view a, std::string_view b) noexcept {
  auto n = a.size();
  if (n != b.size())
    return false;
  if (n > 16)
    return std::memcmp(a.data(), b.data(), n) == 0;
  auto x = reinterpret_cast<const unsigned char*>(a.data());
  auto y = reinterpret_cast<const unsigned char*>(b.data());
  using detail::load_le;
  if (n >= 8)
    return load_le<8>(x) == load_le<8>(y)
           && load_le<8>(x + n - 8) == load_le<8>(y + n - 8);
  if (n >= 4)
    return load_le<4>(x) == load_le<4>(y)
           && load_le<4>(x + n - 4) == load_le<4>(y + n - 4);
  for (std::size_t i = 0; i < n; ++i)
    if (x[i] != y[i])
      return false;
  return true;
}

inline std::size_t hash_bytes(std::string_view s) {
  constexpr std::uint64_t k0 = 0x9e3779b97f4a7c15ULL;
  constexpr std::uint64_t k1 = 0xd6e8feb86659fd93ULL;
  constexpr std::uint64_t k2 = 0xa0761d6478bd642fULL;
  auto p = reinterpret_cast<const unsigned char*>(s.data());
  auto n = s.size();
  std::uint64_t h = k0 ^ n;
  for (; n > 16; p += 16, n -= 16)
    h = hash_mix(detail::load_le<8>(p) ^ k1, detail::load_le<8>(p + 8) ^ h);
  std::uint64_t a = 0, b = 0;
  if (n >= 8) {
    a = detail::load_le<8>(p);
    b = detail::load_le<8>(p + n - 8);
  } else if (n >= 4) {
    a = detail::load_le<4>(p);
    b = detail::load_le<4>(p + n - 4);
  } else if (n > 0) {
    a = (std::uint64_t{p[0]} << 16) | (std::uint64_t{p[n / 2]} << 8) | p[n - 1];
  }
  return hash_mix(hash_mix(a ^ k1, b ^ k2 ^ h), k0 ^ s.size());
}

/// hash_bytes for the hash maps keyed by std::string and looked up by
/// std::string_view (no string built for a lookup). Not noexcept on
/// purpose: libstdc++ then keeps each node's hash, so a lookup compares
/// keys only on a full hash match and a rehash hashes no key again.
struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const {
    return hash_bytes(s);
  }
};

} // namespace parallax
