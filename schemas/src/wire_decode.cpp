// A pull decoder for the Parallax batch format, written against the
// MessagePack specification rather than on top of msgpack-cxx's object tree:
// it knows the expected shape, so it reports errors with the element and the
// byte offset, and it allocates per batch (two vectors), never per field.

#include "parallax/schemas/utf8.hpp"
#include "parallax/schemas/reply.hpp"
#include "parallax/schemas/wire.hpp"

#include <cmath>
#include <cstring>
#include <limits>

#include <fmt/format.h>

#include <functional>

namespace parallax::wire {

namespace {

// Human names for the MessagePack type that a leading byte announces.
std::string_view type_of(std::uint8_t b) noexcept {
  if (b <= 0x7f || b >= 0xe0)
    return "integer";
  if (b <= 0x8f)
    return "map";
  if (b <= 0x9f)
    return "array";
  if (b <= 0xbf)
    return "string";
  switch (b) {
    case 0xc0:
      return "nil";
    case 0xc1:
      return "the never-used byte 0xc1";
    case 0xc2:
    case 0xc3:
      return "boolean";
    case 0xc4:
    case 0xc5:
    case 0xc6:
      return "binary";
    case 0xc7:
    case 0xc8:
    case 0xc9:
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
      return "extension";
    case 0xca:
    case 0xcb:
      return "float";
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3:
      return "integer";
    case 0xd9:
    case 0xda:
    case 0xdb:
      return "string";
    case 0xdc:
    case 0xdd:
      return "array";
    default:
      return "map";
  }
}

template <class T>
T load_be(const std::uint8_t* p) noexcept {
  T v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i)
    v = static_cast<T>((v << 8) | p[i]);
  return v;
}

} // namespace

// Reads the frame front to back. Every read_* returns false after storing
// the error in `err`; callers return at once.
class decoder {
public:
  decoder(std::span<const std::byte> frame, const limits& lim)
    : base_{reinterpret_cast<const std::uint8_t*>(frame.data())},
      pos_{0},
      end_{frame.size()},
      lim_{lim} {
  }

  result<batch_view> run(std::shared_ptr<const void> owner) {
    batch_view b;
    b.owner_ = std::move(owner);
    b.frame_bytes_ = end_;
    if (end_ > lim_.max_frame_bytes)
      return error{ec::oversized_frame,
                   fmt::format("frame of {} bytes exceeds the limit of {} bytes",
                               end_, lim_.max_frame_bytes),
                   0};
    if (end_ == 0)
      return error{ec::truncated, "empty frame", 0};
    std::size_t n = 0;
    if (!read_array(n, "the batch"))
      return std::move(err_);
    if (n < 2)
      return fail(ec::wrong_type, 0,
                  fmt::format("the batch array has {} elements, expected {}", n,
                              batch_elements));
    auto version_at = pos_;
    if (!read_uint(b.major_, "the format major version"))
      return std::move(err_);
    if (b.major_ != major_version)
      return fail(ec::unknown_version, version_at,
                  fmt::format("format major version {} is not supported; this "
                              "decoder reads version {}.x",
                              b.major_, major_version));
    if (!read_uint(b.minor_, "the format minor version"))
      return std::move(err_);
    if (!check_count(n, batch_elements, b.minor_, 0, "the batch"))
      return std::move(err_);
    if (!read_name(b.source_id_, "the source id"))
      return std::move(err_);
    if (b.source_id_.empty())
      return fail(ec::invalid_value, pos_ - 1, "the source id is empty");
    if (!read_uint(b.sequence_, "the batch sequence number"))
      return std::move(err_);
    std::size_t events_at = pos_;
    std::size_t count = 0;
    if (!read_array(count, "the event list"))
      return std::move(err_);
    if (count > lim_.max_events)
      return fail(ec::too_many_events, events_at,
                  fmt::format("the batch has {} events; the limit is {}", count,
                              lim_.max_events));
    // Every event takes at least one byte: a count beyond the remaining bytes
    // is a truncation, and checking it here bounds the reservation below.
    if (count > end_ - pos_)
      return fail(ec::truncated, events_at,
                  fmt::format("the batch announces {} events but only {} bytes "
                              "follow",
                              count, end_ - pos_));
    b.events_.resize(count);
    b.fields_.reserve(count * 8);
    std::vector<std::size_t> first_field(count);
    for (std::size_t i = 0; i < count; ++i) {
      event_ = i;
      first_field[i] = b.fields_.size();
      if (keep_ && !(*keep_)(i)) {
        if (!skip_object("an event", 0))
          return std::move(err_);
        continue;
      }
      if (!read_event(b.events_[i], b.fields_, b.minor_))
        return std::move(err_);
    }
    event_ = no_event;
    if (pos_ != end_)
      return fail(ec::trailing_bytes, pos_,
                  fmt::format("{} bytes follow the end of the batch",
                              end_ - pos_));
    // The field vector no longer grows: point each event at its fields.
    for (std::size_t i = 0; i < count; ++i) {
      auto last = i + 1 < count ? first_field[i + 1] : b.fields_.size();
      b.events_[i].fields = std::span<const field_view>{
        b.fields_.data() + first_field[i], last - first_field[i]};
    }
    return b;
  }

  /// Events whose index `keep` rejects are walked over, not decoded.
  void only(const std::function<bool(std::size_t)>* keep) {
    keep_ = keep;
  }

  // Reads the envelope up to the sequence, as far as it is readable.
  envelope_peek peek() {
    envelope_peek out;
    std::size_t n = 0;
    std::uint64_t major = 0, minor = 0, seq = 0;
    std::string_view src;
    if (!read_array(n, "the batch") || n < 4 || !read_uint(major, "major")
        || !read_uint(minor, "minor") || !read_name(src, "the source id"))
      return out;
    out.source_id = src;
    if (read_uint(seq, "the sequence"))
      out.sequence = seq;
    return out;
  }

private:
  static constexpr std::size_t no_event = static_cast<std::size_t>(-1);

  // Steps over one MessagePack object of any type, checking only that it
  // fits in the frame. Iterative: `pending` counts the objects still to
  // step over (an array's or map's elements join it), and every object
  // takes at least one byte, so the loop ends within the frame.
  bool skip_object(std::string_view what, int) {
    auto at = pos_;
    std::uint64_t pending = 1;
    auto be = [&](std::size_t off, std::size_t width) -> std::uint64_t {
      auto p = base_ + pos_ + off;
      return width == 1   ? p[0]
             : width == 2 ? load_be<std::uint16_t>(p)
                          : load_be<std::uint32_t>(p);
    };
    while (pending > 0) {
      if (pos_ >= end_)
        return need(1, at, what);
      auto b = base_[pos_];
      --pending;
      std::size_t header = 1;   // bytes before the payload
      std::uint64_t payload = 0; // bytes of payload
      if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
      } else if (b >= 0xa0 && b <= 0xbf) {
        payload = b & 0x1f;
      } else if (b >= 0x90 && b <= 0x9f) {
        pending += b & 0x0f;
      } else if (b >= 0x80 && b <= 0x8f) {
        pending += 2u * (b & 0x0f);
      } else {
        // Width of a length or count that follows the type byte.
        std::size_t width = 0;
        switch (b) {
          case 0xcc: case 0xd0: payload = 1; break;
          case 0xcd: case 0xd1: payload = 2; break;
          case 0xce: case 0xd2: case 0xca: payload = 4; break;
          case 0xcf: case 0xd3: case 0xcb: payload = 8; break;
          case 0xd4: payload = 2; break;
          case 0xd5: payload = 3; break;
          case 0xd6: payload = 5; break;
          case 0xd7: payload = 9; break;
          case 0xd8: payload = 17; break;
          case 0xd9: case 0xc4: case 0xc7: width = 1; break;
          case 0xda: case 0xc5: case 0xc8: case 0xdc: case 0xde: width = 2; break;
          case 0xdb: case 0xc6: case 0xc9: case 0xdd: case 0xdf: width = 4; break;
          default: return wrong(pos_, what, "a MessagePack object");
        }
        if (width > 0) {
          if (!need(1 + width, at, what))
            return false;
          auto n = be(1, width);
          header = 1 + width;
          if (b == 0xdc || b == 0xdd)
            pending += n;
          else if (b == 0xde || b == 0xdf)
            pending += 2 * n;
          else
            payload = n + ((b >= 0xc7 && b <= 0xc9) ? 1 : 0); // ext: type byte
        }
      }
      if (header + payload > end_ - pos_)
        return need(header + payload, at, what);
      pos_ += header + payload;
    }
    return true;
  }

  const std::function<bool(std::size_t)>* keep_ = nullptr;

  // Prefixes the message with where in the batch the decoder was; this
  // context is kept as cheap members and formatted only on failure.
  error fail(ec code, std::size_t at, std::string what) {
    if (!field_.empty())
      what = fmt::format("field '{}': {}", field_, what);
    if (event_ != no_event)
      what = fmt::format("event {}: {}", event_, what);
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
                  fmt::format("{} needs {} more bytes but the frame ends at "
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

  // Element counts: fewer than known is malformed; more than known is only
  // legal for a newer minor version, and even then refused, because this
  // decoder would have to drop the unknown elements silently.
  bool check_count(std::size_t n, std::size_t expected, std::uint64_t minor,
                   std::size_t at, std::string_view what) {
    if (n == expected)
      return true;
    if (n > expected && minor > minor_version)
      return failed(ec::unknown_version, at,
                    fmt::format("{} has {} elements; format {}.{} added "
                                "elements that this decoder ({}.{}) does not "
                                "know",
                                what, n, major_version, minor, major_version,
                                minor_version));
    return failed(ec::wrong_type, at,
                  fmt::format("{} has {} elements, expected {}", what, n,
                              expected));
  }

  bool read_array(std::size_t& n, std::string_view what) {
    auto at = pos_;
    if (!need(1, at, what))
      return false;
    auto b = base_[pos_];
    if (b >= 0x90 && b <= 0x9f) {
      n = b & 0x0f;
      ++pos_;
      return true;
    }
    if (b == 0xdc) {
      if (!need(3, at, what))
        return false;
      n = load_be<std::uint16_t>(base_ + pos_ + 1);
      pos_ += 3;
      return true;
    }
    if (b == 0xdd) {
      if (!need(5, at, what))
        return false;
      n = load_be<std::uint32_t>(base_ + pos_ + 1);
      pos_ += 5;
      return true;
    }
    return wrong(at, what, "array");
  }

  bool read_map(std::size_t& n, std::string_view what) {
    auto at = pos_;
    if (!need(1, at, what))
      return false;
    auto b = base_[pos_];
    if (b >= 0x80 && b <= 0x8f) {
      n = b & 0x0f;
      ++pos_;
      return true;
    }
    if (b == 0xde) {
      if (!need(3, at, what))
        return false;
      n = load_be<std::uint16_t>(base_ + pos_ + 1);
      pos_ += 3;
      return true;
    }
    if (b == 0xdf) {
      if (!need(5, at, what))
        return false;
      n = load_be<std::uint32_t>(base_ + pos_ + 1);
      pos_ += 5;
      return true;
    }
    return wrong(at, what, "map");
  }

  // Reads any MessagePack integer. Sets `negative` if it was signed and < 0;
  // then `u` holds the value as two's complement.
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
      u = static_cast<std::uint64_t>(static_cast<std::int64_t>(
        static_cast<std::int8_t>(b)));
      negative = true;
      ++pos_;
      return true;
    }
    std::size_t width = 0;
    bool is_signed = false;
    switch (b) {
      case 0xcc: width = 1; break;
      case 0xcd: width = 2; break;
      case 0xce: width = 4; break;
      case 0xcf: width = 8; break;
      case 0xd0: width = 1; is_signed = true; break;
      case 0xd1: width = 2; is_signed = true; break;
      case 0xd2: width = 4; is_signed = true; break;
      case 0xd3: width = 8; is_signed = true; break;
      default:
        return wrong(at, what, expected);
    }
    if (!need(1 + width, at, what))
      return false;
    auto p = base_ + pos_ + 1;
    if (!is_signed) {
      switch (width) {
        case 1: u = p[0]; break;
        case 2: u = load_be<std::uint16_t>(p); break;
        case 4: u = load_be<std::uint32_t>(p); break;
        default: u = load_be<std::uint64_t>(p); break;
      }
    } else {
      std::int64_t s;
      switch (width) {
        case 1: s = static_cast<std::int8_t>(p[0]); break;
        case 2: s = static_cast<std::int16_t>(load_be<std::uint16_t>(p)); break;
        case 4: s = static_cast<std::int32_t>(load_be<std::uint32_t>(p)); break;
        default: s = static_cast<std::int64_t>(load_be<std::uint64_t>(p)); break;
      }
      u = static_cast<std::uint64_t>(s);
      negative = s < 0;
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
    if (!negative && u > static_cast<std::uint64_t>(
                       std::numeric_limits<std::int64_t>::max()))
      return failed(ec::invalid_value, at,
                    fmt::format("{} is {}, beyond the signed 64-bit range",
                                what, u));
    out = static_cast<std::int64_t>(u);
    return true;
  }

  // Reads a string header and body; does not validate the contents.
  bool read_str(std::string_view& out, std::size_t max, std::string_view what) {
    auto at = pos_;
    if (!need(1, at, what))
      return false;
    auto b = base_[pos_];
    std::size_t len = 0, header = 0;
    if (b >= 0xa0 && b <= 0xbf) {
      len = b & 0x1f;
      header = 1;
    } else if (b == 0xd9) {
      if (!need(2, at, what))
        return false;
      len = base_[pos_ + 1];
      header = 2;
    } else if (b == 0xda) {
      if (!need(3, at, what))
        return false;
      len = load_be<std::uint16_t>(base_ + pos_ + 1);
      header = 3;
    } else if (b == 0xdb) {
      if (!need(5, at, what))
        return false;
      len = load_be<std::uint32_t>(base_ + pos_ + 1);
      header = 5;
    } else {
      return wrong(at, what, "string");
    }
    if (len > max)
      return failed(ec::string_too_long, at,
                    fmt::format("{} is {} bytes long; the limit is {}", what,
                                len, max));
    if (!need(header + len, at, what))
      return false;
    out = std::string_view{reinterpret_cast<const char*>(base_ + pos_ + header),
                           len};
    pos_ += header + len;
    return true;
  }

  // A name: a string within the name limit that is valid UTF-8.
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

  bool read_event(event_view& e, std::vector<field_view>& fields,
                  std::uint64_t minor) {
    auto at = pos_;
    std::size_t n = 0;
    if (!read_array(n, "the event"))
      return false;
    if (!check_count(n, event_elements, minor, at, "the event"))
      return false;
    if (!need(1, pos_, "the time"))
      return false;
    if (base_[pos_] == 0xc0) { // nil: unknown, the receiver works it out
      e.time = unknown_time;
      ++pos_;
    } else if (!read_int(e.time, "the time")) {
      return false;
    }
    if (!read_name(e.index, "the index"))
      return false;
    if (!read_name(e.host, "the host"))
      return false;
    if (!read_name(e.source, "the source"))
      return false;
    if (!read_name(e.sourcetype, "the sourcetype"))
      return false;
    if (!need(1, pos_, "the raw text"))
      return false;
    if (base_[pos_] == 0xc0) {
      e.raw.reset();
      ++pos_;
    } else {
      std::string_view raw;
      if (!read_str(raw, lim_.max_string_bytes, "the raw text"))
        return false;
      e.raw = raw;
    }
    auto map_at = pos_;
    std::size_t nfields = 0;
    if (!read_map(nfields, "the field map"))
      return false;
    if (nfields > lim_.max_fields)
      return failed(ec::too_many_fields, map_at,
                    fmt::format("{} fields; the limit is {}", nfields,
                                lim_.max_fields));
    auto first = fields.size();
    for (std::size_t k = 0; k < nfields; ++k) {
      auto name_at = pos_;
      field_view f;
      if (!read_name(f.name, "a field name"))
        return false;
      if (f.name.empty())
        return failed(ec::invalid_value, name_at, "a field name is empty");
      for (auto i = first; i < fields.size(); ++i)
        if (fields[i].name == f.name)
          return failed(ec::invalid_value, name_at,
                        fmt::format("field '{}' appears twice", f.name));
      field_ = f.name;
      if (!read_value(f.value))
        return false;
      field_ = {};
      fields.push_back(f);
    }
    return true;
  }

  bool read_value(value_view& v) {
    auto at = pos_;
    constexpr std::string_view what = "the value";
    if (!need(1, at, what))
      return false;
    auto b = base_[pos_];
    if ((b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb)) {
      std::string_view s;
      if (!read_str(s, lim_.max_string_bytes, what))
        return false;
      v = s;
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

  const std::uint8_t* base_;
  std::size_t pos_;
  std::size_t end_;
  const limits& lim_;
  std::size_t event_ = no_event;
  std::string_view field_; // the field whose value is being read, if any
  error err_;
};

result<batch_view> decode(std::span<const std::byte> frame,
                          std::shared_ptr<const void> owner,
                          const limits& lim) {
  return decoder{frame, lim}.run(std::move(owner));
}

result<batch_view> decode_some(std::span<const std::byte> frame,
                               const std::function<bool(std::size_t)>& keep,
                               const limits& lim) {
  decoder d{frame, lim};
  d.only(&keep);
  return d.run(nullptr);
}

result<batch_view> decode(std::string frame, const limits& lim) {
  auto owned = std::make_shared<const std::string>(std::move(frame));
  auto bytes = std::as_bytes(std::span{owned->data(), owned->size()});
  return decode(bytes, std::move(owned), lim);
}

envelope_peek peek_envelope(std::string_view frame) noexcept {
  try {
    limits lim;
    lim.max_frame_bytes = frame.size();
    return decoder{std::as_bytes(std::span{frame.data(), frame.size()}), lim}
      .peek();
  } catch (...) {
    return {}; // allocation failure: nothing to name
  }
}

batch batch_view::materialize() const {
  batch b;
  b.source_id = source_id_;
  b.sequence = sequence_;
  b.events.reserve(events_.size());
  for (const auto& e : events_)
    b.events.push_back(e.materialize());
  return b;
}

} // namespace parallax::wire
