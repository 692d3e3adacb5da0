// Published messages (schemas/README.md, "Published messages"). The encoder
// writes values with the wire format's own helper (detail::put_value), so a
// field has the same MessagePack form in a batch and in a published message. The decoder is a
// small pull reader like the batch decoder's: it knows the expected shape,
// so every error names the element and the byte offset.

#include "parallax/schemas/publish.hpp"

#include "parallax/schemas/utf8.hpp"
#include "parallax/schemas/wire.hpp"

#include "msgpack_out.hpp"

#include <cstring>
#include <limits>

#include <fmt/format.h>

namespace parallax::publish {

void delta_topic(std::string_view vm, std::string& out) {
  out.reserve(delta_prefix.size() + vm.size());
  out.assign(delta_prefix).append(vm);
}

std::string delta_topic(std::string_view vm) {
  std::string t;
  delta_topic(vm, t);
  return t;
}

std::string event_topic(std::string_view sourcetype) {
  return fmt::format("{}{}", event_prefix, sourcetype);
}

topic_kind kind_of(std::string_view topic) noexcept {
  if (topic.starts_with(delta_prefix))
    return topic_kind::delta;
  if (topic.starts_with(alert_prefix))
    return topic_kind::alert;
  if (topic == identity_topic)
    return topic_kind::identity;
  if (topic.starts_with(event_prefix))
    return topic_kind::event;
  return topic_kind::other;
}

int severity_rank(std::string_view name) noexcept {
  for (std::size_t i = 0; i < severities.size(); ++i)
    if (severities[i] == name)
      return static_cast<int>(i);
  return -1;
}

const value* published_message::find(std::string_view name) const noexcept {
  for (const auto& f : fields)
    if (f.name == name)
      return &f.value;
  return nullptr;
}

namespace {

std::string_view type_of(std::uint8_t b) noexcept {
  if (b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3))
    return "integer";
  if (b <= 0x8f || b == 0xde || b == 0xdf)
    return "map";
  if (b <= 0x9f || b == 0xdc || b == 0xdd)
    return "array";
  if (b <= 0xbf || (b >= 0xd9 && b <= 0xdb))
    return "string";
  switch (b) {
    case 0xc0: return "nil";
    case 0xc1: return "the never-used byte 0xc1";
    case 0xc2:
    case 0xc3: return "boolean";
    case 0xc4:
    case 0xc5:
    case 0xc6: return "binary";
    case 0xca:
    case 0xcb: return "float";
    default: return "extension";
  }
}

template <class T>
T load_be(const std::uint8_t* p) noexcept {
  T v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i)
    v = static_cast<T>((v << 8) | p[i]);
  return v;
}

// Reads a body front to back. Every read_* returns false after storing the
// error in `err_`; callers return at once.
class reader {
public:
  reader(std::string_view body, const limits& lim)
    : base_{reinterpret_cast<const std::uint8_t*>(body.data())},
      end_{body.size()},
      lim_{lim} {
  }

  result<published_message> run() {
    if (end_ > lim_.max_body_bytes)
      return error{ec::oversized_frame,
                   fmt::format("body of {} bytes exceeds the limit of {} bytes",
                               end_, lim_.max_body_bytes),
                   0};
    if (end_ == 0)
      return error{ec::truncated, "empty body", 0};
    published_message m;
    std::size_t n = 0;
    if (!read_array(n, "the message"))
      return std::move(err_);
    // The version first, so a newer major version is named as such even if
    // its shape differs.
    if (n >= 1) {
      auto at = pos_;
      std::uint64_t major = 0;
      if (!read_uint(major, "the format major version"))
        return std::move(err_);
      if (major != major_version)
        return fail(ec::unknown_version, at,
                    fmt::format("format major version {} is not supported; "
                                "this decoder reads version {}",
                                major, major_version));
    }
    if (n < message_elements)
      return fail(ec::wrong_type, 0,
                  fmt::format("the message array has {} elements, expected "
                              "{}",
                              n, message_elements));
    std::string_view s;
    if (!read_name(s, "the publisher id"))
      return std::move(err_);
    if (s.empty())
      return fail(ec::invalid_value, pos_ - 1, "the publisher id is empty");
    m.publisher = s;
    if (!read_name(s, "the topic"))
      return std::move(err_);
    if (s.empty())
      return fail(ec::invalid_value, pos_ - 1, "the topic is empty");
    m.topic = s;
    auto seq_at = pos_;
    if (!read_uint(m.sequence, "the sequence"))
      return std::move(err_);
    if (m.sequence == 0)
      return fail(ec::invalid_value, seq_at,
                  "the sequence is 0; sequences start at 1");
    if (!read_int(m.time, "the time"))
      return std::move(err_);
    if (!read_fields(m.fields))
      return std::move(err_);
    // Elements a later compatible version appended: skipped, but they must
    // be well-formed.
    for (std::size_t i = message_elements; i < n; ++i)
      if (!skip(0))
        return std::move(err_);
    if (pos_ != end_)
      return fail(ec::trailing_bytes, pos_,
                  fmt::format("{} bytes follow the end of the message",
                              end_ - pos_));
    return m;
  }

private:
  static constexpr int max_depth = 32;

  error fail(ec code, std::size_t at, std::string what) {
    if (!field_.empty())
      what = fmt::format("field '{}': {}", field_, what);
    err_ = error{code, std::move(what), at};
    return err_;
  }

  bool failed(ec code, std::size_t at, std::string what) {
    fail(code, at, std::move(what));
    return false;
  }

  bool need(std::size_t n, std::size_t at, std::string_view what) {
    if (end_ - pos_ >= n)
      return true;
    return failed(ec::truncated, at,
                  fmt::format("{} needs {} more bytes but the body ends at "
                              "byte {}",
                              what, n - (end_ - pos_), end_));
  }

  bool wrong(std::size_t at, std::string_view what, std::string_view expected) {
    auto b = base_[at];
    if (b == 0xc1)
      return failed(ec::not_msgpack, at,
                    fmt::format("byte 0xc1 where {} should start; this is not "
                                "MessagePack",
                                what));
    return failed(ec::wrong_type, at,
                  fmt::format("{}: expected {}, found {}", what, expected,
                              type_of(b)));
  }

  // Array and map headers: fix, 16 and 32 bit counts.
  bool read_count(std::size_t& n, std::string_view what, std::uint8_t fix,
                  std::uint8_t b16, std::string_view expected) {
    auto at = pos_;
    if (!need(1, at, what))
      return false;
    auto b = base_[pos_];
    if ((b & 0xf0) == fix) {
      n = b & 0x0f;
      ++pos_;
      return true;
    }
    if (b == b16 || b == b16 + 1) {
      std::size_t width = b == b16 ? 2 : 4;
      if (!need(1 + width, at, what))
        return false;
      n = width == 2 ? load_be<std::uint16_t>(base_ + pos_ + 1)
                     : load_be<std::uint32_t>(base_ + pos_ + 1);
      pos_ += 1 + width;
      return true;
    }
    return wrong(at, what, expected);
  }

  bool read_array(std::size_t& n, std::string_view what) {
    return read_count(n, what, 0x90, 0xdc, "array");
  }

  bool read_map(std::size_t& n, std::string_view what) {
    return read_count(n, what, 0x80, 0xde, "map");
  }

  // Any MessagePack integer; `negative` if it was signed and < 0, then `u`
  // holds it as two's complement.
  bool read_integer(std::uint64_t& u, bool& negative, std::string_view what,
                    std::string_view expected) {
    auto at = pos_;
    if (!need(1, at, what))
      return false;
    auto b = base_[pos_];
    negative = false;
    if (b <= 0x7f) {
      u = b;
      ++pos_;
      return true;
    }
    if (b >= 0xe0) {
      u = static_cast<std::uint64_t>(
        static_cast<std::int64_t>(static_cast<std::int8_t>(b)));
      negative = true;
      ++pos_;
      return true;
    }
    if (b < 0xcc || b > 0xd3)
      return wrong(at, what, expected);
    bool is_signed = b >= 0xd0;
    std::size_t width = std::size_t{1} << ((b - 0xcc) & 3);
    if (!need(1 + width, at, what))
      return false;
    auto p = base_ + pos_ + 1;
    std::uint64_t raw = 0;
    switch (width) {
      case 1: raw = p[0]; break;
      case 2: raw = load_be<std::uint16_t>(p); break;
      case 4: raw = load_be<std::uint32_t>(p); break;
      default: raw = load_be<std::uint64_t>(p); break;
    }
    if (is_signed) {
      // Sign-extend from the encoded width.
      auto shift = 64 - 8 * width;
      auto s = static_cast<std::int64_t>(raw << shift) >> shift;
      u = static_cast<std::uint64_t>(s);
      negative = s < 0;
    } else {
      u = raw;
    }
    pos_ += 1 + width;
    return true;
  }

  bool read_uint(std::uint64_t& out, std::string_view what) {
    auto at = pos_;
    bool negative = false;
    if (!read_integer(out, negative, what, "unsigned integer"))
      return false;
    if (negative)
      return failed(ec::invalid_value, at,
                    fmt::format("{} is negative ({})", what,
                                static_cast<std::int64_t>(out)));
    return true;
  }

  bool read_int(std::int64_t& out, std::string_view what) {
    auto at = pos_;
    std::uint64_t u = 0;
    bool negative = false;
    if (!read_integer(u, negative, what, "integer"))
      return false;
    if (!negative
        && u > static_cast<std::uint64_t>(
             std::numeric_limits<std::int64_t>::max()))
      return failed(ec::invalid_value, at,
                    fmt::format("{} is {}, beyond the signed 64-bit range",
                                what, u));
    out = static_cast<std::int64_t>(u);
    return true;
  }

  // Length of the string starting at pos_ (header and body sizes).
  bool str_header(std::size_t& len, std::size_t& header, std::string_view what) {
    auto at = pos_;
    if (!need(1, at, what))
      return false;
    auto b = base_[pos_];
    if (b >= 0xa0 && b <= 0xbf) {
      len = b & 0x1f;
      header = 1;
      return true;
    }
    if (b < 0xd9 || b > 0xdb)
      return wrong(at, what, "string");
    header = 1 + (std::size_t{1} << (b - 0xd9));
    if (!need(header, at, what))
      return false;
    auto p = base_ + pos_ + 1;
    len = header == 2 ? p[0]
          : header == 3 ? load_be<std::uint16_t>(p)
                        : load_be<std::uint32_t>(p);
    return true;
  }

  bool read_str(std::string_view& out, std::size_t max, std::string_view what) {
    auto at = pos_;
    std::size_t len = 0, header = 0;
    if (!str_header(len, header, what))
      return false;
    if (len > max)
      return failed(ec::string_too_long, at,
                    fmt::format("{} is {} bytes long; the limit is {}", what,
                                len, max));
    if (!need(header + len, at, what))
      return false;
    out = std::string_view{
      reinterpret_cast<const char*>(base_ + pos_ + header), len};
    pos_ += header + len;
    return true;
  }

  // A string within the name limit that is valid UTF-8.
  bool read_name(std::string_view& out, std::string_view what) {
    auto at = pos_;
    if (!read_str(out, lim_.max_name_bytes, what))
      return false;
    auto bad = find_invalid_utf8(out);
    if (bad != out.size()) {
      auto header = pos_ - at - out.size();
      return failed(ec::invalid_utf8, at + header + bad,
                    fmt::format("{} is not valid UTF-8 (byte {} of the string)",
                                what, bad));
    }
    return true;
  }

  bool read_fields(std::vector<field>& fields) {
    auto map_at = pos_;
    std::size_t n = 0;
    if (!read_map(n, "the field map"))
      return false;
    if (n > lim_.max_fields)
      return failed(ec::too_many_fields, map_at,
                    fmt::format("{} fields; the limit is {}", n,
                                lim_.max_fields));
    // Each field takes at least two bytes: a larger count is a truncation,
    // and checking it here bounds the reservation.
    if (n > (end_ - pos_) / 2)
      return failed(ec::truncated, map_at,
                    fmt::format("the field map announces {} fields but only "
                                "{} bytes follow",
                                n, end_ - pos_));
    fields.reserve(n);
    for (std::size_t k = 0; k < n; ++k) {
      auto name_at = pos_;
      std::string_view name;
      if (!read_name(name, "a field name"))
        return false;
      if (name.empty())
        return failed(ec::invalid_value, name_at, "a field name is empty");
      for (const auto& f : fields)
        if (f.name == name)
          return failed(ec::invalid_value, name_at,
                        fmt::format("field '{}' appears twice", name));
      field_ = name;
      value v;
      if (!read_value(v))
        return false;
      field_ = {};
      fields.push_back(field{std::string{name}, std::move(v)});
    }
    return true;
  }

  bool read_value(value& v) {
    auto at = pos_;
    constexpr std::string_view what = "the value";
    if (!need(1, at, what))
      return false;
    auto b = base_[pos_];
    if ((b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb)) {
      std::string_view s;
      if (!read_str(s, lim_.max_string_bytes, what))
        return false;
      v = std::string{s};
      return true;
    }
    if (b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3)) {
      std::int64_t i = 0;
      if (!read_int(i, what))
        return false;
      v = i;
      return true;
    }
    if (b == 0xc2 || b == 0xc3) {
      v = b == 0xc3;
      ++pos_;
      return true;
    }
    if (b == 0xca) {
      if (!need(5, at, what))
        return false;
      auto bits = load_be<std::uint32_t>(base_ + pos_ + 1);
      float f;
      std::memcpy(&f, &bits, sizeof f);
      v = static_cast<double>(f);
      pos_ += 5;
      return true;
    }
    if (b == 0xcb) {
      if (!need(9, at, what))
        return false;
      auto bits = load_be<std::uint64_t>(base_ + pos_ + 1);
      double d;
      std::memcpy(&d, &bits, sizeof d);
      v = d;
      pos_ += 9;
      return true;
    }
    return wrong(at, what, "string, integer, float or boolean");
  }

  // Skips one well-formed object of any type (unknown trailing elements).
  bool skip(int depth) {
    constexpr std::string_view what = "an added element";
    auto at = pos_;
    if (depth > max_depth)
      return failed(ec::invalid_value, at,
                    fmt::format("{} nests deeper than {} levels", what,
                                max_depth));
    if (!need(1, at, what))
      return false;
    auto b = base_[pos_];
    auto skip_bytes = [&](std::size_t n) {
      if (!need(n, at, what))
        return false;
      pos_ += n;
      return true;
    };
    // Length-prefixed: `width` bytes of length after the type byte, plus
    // `extra` bytes (an extension's type) before the payload.
    auto skip_prefixed = [&](std::size_t width, std::size_t extra) {
      if (!need(1 + width, at, what))
        return false;
      auto p = base_ + pos_ + 1;
      std::size_t len = width == 1   ? p[0]
                        : width == 2 ? load_be<std::uint16_t>(p)
                                     : load_be<std::uint32_t>(p);
      return skip_bytes(1 + width + extra + len);
    };
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
      return skip_bytes(1);
    if ((b >= 0x80 && b <= 0x9f) || (b >= 0xdc && b <= 0xdf)) {
      std::size_t n = 0;
      bool is_map = b <= 0x8f || b >= 0xde;
      if (!(is_map ? read_map(n, what) : read_array(n, what)))
        return false;
      if (is_map)
        n *= 2;
      for (std::size_t i = 0; i < n; ++i)
        if (!skip(depth + 1))
          return false;
      return true;
    }
    if (b >= 0xa0 && b <= 0xbf)
      return skip_bytes(1 + (b & 0x1f));
    switch (b) {
      case 0xc4: return skip_prefixed(1, 0);
      case 0xc5: return skip_prefixed(2, 0);
      case 0xc6: return skip_prefixed(4, 0);
      case 0xc7: return skip_prefixed(1, 1);
      case 0xc8: return skip_prefixed(2, 1);
      case 0xc9: return skip_prefixed(4, 1);
      case 0xca: return skip_bytes(5);
      case 0xcb: return skip_bytes(9);
      case 0xcc: case 0xd0: return skip_bytes(2);
      case 0xcd: case 0xd1: return skip_bytes(3);
      case 0xce: case 0xd2: return skip_bytes(5);
      case 0xcf: case 0xd3: return skip_bytes(9);
      case 0xd4: return skip_bytes(3);
      case 0xd5: return skip_bytes(4);
      case 0xd6: return skip_bytes(6);
      case 0xd7: return skip_bytes(10);
      case 0xd8: return skip_bytes(18);
      case 0xd9: return skip_prefixed(1, 0);
      case 0xda: return skip_prefixed(2, 0);
      case 0xdb: return skip_prefixed(4, 0);
      default: return wrong(at, what, "a MessagePack object"); // 0xc1
    }
  }

  const std::uint8_t* base_;
  std::size_t pos_ = 0;
  std::size_t end_;
  const limits& lim_;
  std::string_view field_; // the field whose value is being read, if any
  error err_;
};

template <class Packer, class Field>
void put_message(Packer& pk, std::string_view publisher,
                 std::string_view topic, std::uint64_t sequence, time_ns time,
                 std::span<const Field> fields) {
  pk.array(message_elements);
  pk.uint(major_version);
  pk.str(publisher);
  pk.str(topic);
  pk.uint(sequence);
  pk.integer(time);
  pk.map(fields.size());
  for (const auto& f : fields) {
    pk.str(f.name);
    detail::put_value(pk, f.value);
  }
}

// Sized first, then written with plain stores: appending piece by piece
// was most of the encoding's cost, for every message published.
template <class Field>
void encode_sized(std::string_view publisher, std::string_view topic,
                  std::uint64_t sequence, time_ns time,
                  std::span<const Field> fields, std::string& out) {
  detail::basic_msgpack_out<detail::size_sink> count{{}};
  put_message(count, publisher, topic, sequence, time, fields);
  auto at = out.size();
  out.resize(at + count.sink().bytes);
  detail::basic_msgpack_out<detail::cursor_sink> pk{{out.data() + at}};
  put_message(pk, publisher, topic, sequence, time, fields);
}

} // namespace

void encode(std::string_view publisher, std::string_view topic,
            std::uint64_t sequence, time_ns time,
            std::span<const field> fields, std::string& out) {
  encode_sized(publisher, topic, sequence, time, fields, out);
}

void encode(std::string_view publisher, std::string_view topic,
            std::uint64_t sequence, time_ns time,
            std::span<const field_view> fields, std::string& out) {
  encode_sized(publisher, topic, sequence, time, fields, out);
}

std::string encode(const published_message& m) {
  std::string out;
  encode(m.publisher, m.topic, m.sequence, m.time, m.fields, out);
  return out;
}

result<published_message> decode(std::string_view body, const limits& lim) {
  return reader{body, lim}.run();
}

} // namespace parallax::publish
