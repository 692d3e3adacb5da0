// Writes MessagePack: appended to a string (msgpack_out), or counted first
// and then stored at a cursor (publish::encode). Every encoder of the
// library writes with it: batches, replies and published messages.
//
// Each header and number takes its shortest form, as msgpack-cxx's packer
// writes it (test/schemas/msgpack_out.cpp compares the bytes with the
// packer's), except doubles, which are always float 64: the packer writes a
// whole-number double (50.0) as an integer, which would change a field's
// type on the wire.
//
// It exists for speed: the packer appends each header byte by byte through a
// sink, and every published delta and alert goes through here on the
// correlator's thread (schemas/README.md, "Published messages").

#pragma once

#include "parallax/schemas/event.hpp"

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace parallax::detail {

/// Where a packer's bytes go: appended to a string (the usual sink).
struct string_sink {
  std::string& out;
  void put(char c) {
    out.push_back(c);
  }
  void put(const char* p, std::size_t n) {
    out.append(p, n);
  }
};

/// Counts the bytes instead: with cursor_sink, a message whose size is
/// worked out first is written with plain stores into a string resized
/// once (publish::encode; a string's append checks and grows per call).
struct size_sink {
  std::size_t bytes = 0;
  void put(char) {
    ++bytes;
  }
  void put(const char*, std::size_t n) {
    bytes += n;
  }
};

/// Writes at a cursor into memory the caller has made room for.
struct cursor_sink {
  char* at;
  void put(char c) {
    *at++ = c;
  }
  void put(const char* p, std::size_t n) {
    // Names and short values: two overlapping loads instead of a call.
    if (n >= 8 && n <= 16) {
      std::uint64_t a, b;
      std::memcpy(&a, p, 8);
      std::memcpy(&b, p + n - 8, 8);
      std::memcpy(at, &a, 8);
      std::memcpy(at + n - 8, &b, 8);
    } else if (n >= 4 && n < 8) {
      std::uint32_t a, b;
      std::memcpy(&a, p, 4);
      std::memcpy(&b, p + n - 4, 4);
      std::memcpy(at, &a, 4);
      std::memcpy(at + n - 4, &b, 4);
    } else if (n < 4) {
      for (std::size_t i = 0; i < n; ++i)
        at[i] = p[i];
    } else {
      std::memcpy(at, p, n);
    }
    at += n;
  }
};

template <class Sink>
class basic_msgpack_out {
public:
  explicit basic_msgpack_out(Sink sink) noexcept : sink_{sink} {
  }

  const Sink& sink() const noexcept {
    return sink_;
  }

  void array(std::size_t n) {
    if (n < 16)
      byte(0x90 | n);
    else
      sized(n, 0xdc, 0xdd);
  }

  void map(std::size_t n) {
    if (n < 16)
      byte(0x80 | n);
    else
      sized(n, 0xde, 0xdf);
  }

  void str(std::string_view s) {
    auto n = s.size();
    if (n < 32) {
      byte(0xa0 | n);
    } else if (n < 256) {
      byte(0xd9);
      byte(n);
    } else {
      sized(n, 0xda, 0xdb);
    }
    sink_.put(s.data(), n);
  }

  void uint(std::uint64_t v) {
    if (v < 128)
      byte(v);
    else if (v < 0x100)
      be<1>(0xcc, v);
    else if (v < 0x10000)
      be<2>(0xcd, v);
    else if (v < 0x100000000)
      be<4>(0xce, v);
    else
      be<8>(0xcf, v);
  }

  void integer(std::int64_t v) {
    if (v >= 0) {
      uint(static_cast<std::uint64_t>(v));
      return;
    }
    auto u = static_cast<std::uint64_t>(v);
    if (v >= -32)
      byte(u); // negative fixint
    else if (v >= -128)
      be<1>(0xd0, u);
    else if (v >= -32768)
      be<2>(0xd1, u);
    else if (v >= -2147483648LL)
      be<4>(0xd2, u);
    else
      be<8>(0xd3, u);
  }

  void float64(double d) {
    std::uint64_t bits;
    std::memcpy(&bits, &d, sizeof bits);
    be<8>(0xcb, bits);
  }

  void boolean(bool b) {
    byte(b ? 0xc3 : 0xc2);
  }

  void nil() {
    byte(0xc0);
  }

private:
  void byte(std::uint64_t b) {
    sink_.put(static_cast<char>(b & 0xff));
  }

  // A type byte, then the low `Bytes` bytes of `v`, big-endian.
  template <int Bytes>
  void be(unsigned type, std::uint64_t v) {
    char buf[Bytes + 1];
    buf[0] = static_cast<char>(type);
    for (int i = 0; i < Bytes; ++i)
      buf[1 + i] = static_cast<char>((v >> (8 * (Bytes - 1 - i))) & 0xff);
    sink_.put(buf, Bytes + 1);
  }

  // A 16- or 32-bit length after its type byte.
  void sized(std::size_t n, unsigned type16, unsigned type32) {
    if (n < 0x10000)
      be<2>(type16, n);
    else
      be<4>(type32, n);
  }

  Sink sink_;
};

/// The packer appending to a string.
class msgpack_out : public basic_msgpack_out<string_sink> {
public:
  explicit msgpack_out(std::string& out) noexcept
    : basic_msgpack_out{string_sink{out}} {
  }
};

/// A field's value: the one form a value has in batches, replies and
/// published messages. Inline, for either kind of value (a published
/// message's fields own theirs: no view is made per field).
template <class Packer, class V>
inline void put_value(Packer& pk, const V& v) {
  switch (v.index()) {
    case 0:
      pk.str(std::get<0>(v));
      break;
    case 1:
      pk.integer(std::get<1>(v));
      break;
    case 2:
      pk.float64(std::get<2>(v));
      break;
    default:
      pk.boolean(std::get<3>(v));
  }
}

} // namespace parallax::detail
