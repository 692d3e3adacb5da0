#include "parallax/schemas/wire.hpp"

#include <cstring>

#include <msgpack.hpp>

namespace parallax::wire {

namespace {

// msgpack-cxx's packer writes through any type with write(const char*, size_t).
struct string_sink {
  std::string* out;
  void write(const char* data, std::size_t size) {
    out->append(data, size);
  }
};

using packer = msgpack::packer<string_sink>;

void pack_str(packer& pk, std::string_view s) {
  pk.pack_str(static_cast<std::uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

// Always float 64. msgpack-cxx's pack_double writes a whole-number double
// (50.0) as an integer, which would change the field's type on the wire.
void pack_float64(string_sink& sink, double d) {
  std::uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  char buf[9];
  buf[0] = static_cast<char>(0xcb);
  for (int i = 0; i < 8; ++i)
    buf[1 + i] = static_cast<char>((bits >> (56 - 8 * i)) & 0xff);
  sink.write(buf, sizeof buf);
}

void pack_value(packer& pk, string_sink& sink, const value_view& v) {
  switch (v.index()) {
    case 0:
      pack_str(pk, std::get<0>(v));
      break;
    case 1:
      pk.pack_int64(std::get<1>(v)); // packs the shortest form
      break;
    case 2:
      pack_float64(sink, std::get<2>(v));
      break;
    default:
      if (std::get<3>(v))
        pk.pack_true();
      else
        pk.pack_false();
  }
}

void pack_value(packer& pk, string_sink& sink, const value& v) {
  pack_value(pk, sink, view(v));
}

// The envelope up to the event list header.
void pack_envelope(packer& pk, std::string_view source_id,
                   std::uint64_t sequence, std::size_t events) {
  pk.pack_array(batch_elements);
  pk.pack_uint64(major_version);
  pk.pack_uint64(minor_version);
  pack_str(pk, source_id);
  pk.pack_uint64(sequence);
  pk.pack_array(static_cast<std::uint32_t>(events));
}

// One event; E is `event` or `event_view`.
template <class E>
void pack_event(packer& pk, string_sink& sink, const E& e) {
  pk.pack_array(event_elements);
  if (e.time == unknown_time)
    pk.pack_nil();
  else
    pk.pack_int64(e.time);
  pack_str(pk, e.index);
  pack_str(pk, e.host);
  pack_str(pk, e.source);
  pack_str(pk, e.sourcetype);
  if (e.raw)
    pack_str(pk, *e.raw);
  else
    pk.pack_nil();
  pk.pack_map(static_cast<std::uint32_t>(e.fields.size()));
  for (const auto& f : e.fields) {
    pack_str(pk, f.name);
    pack_value(pk, sink, f.value);
  }
}

} // namespace

void encode(std::string_view source_id, std::uint64_t sequence,
            std::span<const event_view* const> events, std::string& out) {
  string_sink sink{&out};
  packer pk{sink};
  pack_envelope(pk, source_id, sequence, events.size());
  for (const auto* e : events)
    pack_event(pk, sink, *e);
}

void append_value(std::string& out, const value_view& v) {
  string_sink sink{&out};
  packer pk{sink};
  pack_value(pk, sink, v);
}

void encode(const batch& b, std::string& out) {
  string_sink sink{&out};
  packer pk{sink};
  pack_envelope(pk, b.source_id, b.sequence, b.events.size());
  for (const auto& e : b.events)
    pack_event(pk, sink, e);
}

std::string encode(const batch& b) {
  std::string out;
  encode(b, out);
  return out;
}

} // namespace parallax::wire
