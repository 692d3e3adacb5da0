// Appends MessagePack to a string. Every encoder of the library writes with
// it: batches, replies and published messages.
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

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace parallax::detail {

class msgpack_out {
public:
  explicit msgpack_out(std::string& out) noexcept : out_{out} {
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
      char h[2] = {static_cast<char>(0xd9), static_cast<char>(n)};
      out_.append(h, 2);
    } else {
      sized(n, 0xda, 0xdb);
    }
    out_.append(s.data(), n);
  }

  void uint(std::uint64_t v) {
    if (v < 128)
      byte(v);
    else if (v < 0x100)
      be(0xcc, v, 1);
    else if (v < 0x10000)
      be(0xcd, v, 2);
    else if (v < 0x100000000)
      be(0xce, v, 4);
    else
      be(0xcf, v, 8);
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
      be(0xd0, u, 1);
    else if (v >= -32768)
      be(0xd1, u, 2);
    else if (v >= -2147483648LL)
      be(0xd2, u, 4);
    else
      be(0xd3, u, 8);
  }

  void float64(double d) {
    std::uint64_t bits;
    std::memcpy(&bits, &d, sizeof bits);
    be(0xcb, bits, 8);
  }

  void boolean(bool b) {
    byte(b ? 0xc3 : 0xc2);
  }

  void nil() {
    byte(0xc0);
  }

private:
  void byte(std::uint64_t b) {
    out_.push_back(static_cast<char>(b & 0xff));
  }

  // A type byte, then the low `bytes` bytes of `v`, big-endian.
  void be(unsigned type, std::uint64_t v, int bytes) {
    char buf[9];
    buf[0] = static_cast<char>(type);
    for (int i = 0; i < bytes; ++i)
      buf[1 + i] = static_cast<char>((v >> (8 * (bytes - 1 - i))) & 0xff);
    out_.append(buf, static_cast<std::size_t>(bytes) + 1);
  }

  // A 16- or 32-bit length after its type byte.
  void sized(std::size_t n, unsigned type16, unsigned type32) {
    if (n < 0x10000)
      be(type16, n, 2);
    else
      be(type32, n, 4);
  }

  std::string& out_;
};

} // namespace parallax::detail
