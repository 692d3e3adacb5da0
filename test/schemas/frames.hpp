#pragma once

// Hand-built MessagePack frames for the decoder tests, written with
// msgpack-cxx's packer: an encoder independent of Parallax's own.

#include <cstdint>
#include <string>
#include <string_view>

#include <msgpack.hpp>

namespace parallax::test {

class frame_builder {
public:
  frame_builder() : pk_{buf_} {
  }
  frame_builder& array(std::uint32_t n) {
    pk_.pack_array(n);
    return *this;
  }
  frame_builder& map(std::uint32_t n) {
    pk_.pack_map(n);
    return *this;
  }
  frame_builder& uint(std::uint64_t v) {
    pk_.pack_uint64(v);
    return *this;
  }
  frame_builder& int_(std::int64_t v) {
    pk_.pack_int64(v);
    return *this;
  }
  frame_builder& str(std::string_view s) {
    pk_.pack_str(static_cast<std::uint32_t>(s.size()));
    pk_.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
    return *this;
  }
  frame_builder& bin(std::string_view s) {
    pk_.pack_bin(static_cast<std::uint32_t>(s.size()));
    pk_.pack_bin_body(s.data(), static_cast<std::uint32_t>(s.size()));
    return *this;
  }
  frame_builder& nil() {
    pk_.pack_nil();
    return *this;
  }
  frame_builder& boolean(bool b) {
    if (b)
      pk_.pack_true();
    else
      pk_.pack_false();
    return *this;
  }
  frame_builder& f32(float f) {
    pk_.pack_float(f);
    return *this;
  }
  frame_builder& f64(double d) {
    pk_.pack_double(d);
    return *this;
  }
  frame_builder& bytes(std::string_view raw) {
    buf_.write(raw.data(), raw.size());
    return *this;
  }
  /// The batch envelope up to the event list header:
  /// [1, minor, "src", 7, [n events...
  /// Byte offsets: 0 array, 1 major, 2 minor, 3-6 "src", 7 sequence,
  /// 8 event-list header (for n < 16), 9 first event.
  frame_builder& envelope(std::uint32_t n, std::uint64_t minor = 0) {
    return array(5).uint(1).uint(minor).str("src").uint(7).array(n);
  }
  /// An event header up to its field map header, with fixed short strings:
  /// [time, "main", "h", "s", "st", raw|nil, {nfields...
  frame_builder& event_head(std::uint32_t nfields, std::int64_t time = 5,
                            bool with_raw = false) {
    array(7).int_(time).str("main").str("h").str("s").str("st");
    if (with_raw)
      str("raw text");
    else
      nil();
    return map(nfields);
  }
  std::string done() const {
    return std::string{buf_.data(), buf_.size()};
  }
  std::size_t size() const {
    return buf_.size();
  }

private:
  msgpack::sbuffer buf_;
  msgpack::packer<msgpack::sbuffer> pk_;
};

} // namespace parallax::test
