#include "parallax/schemas/wire.hpp"

#include "msgpack_out.hpp"

namespace parallax::wire {

namespace {

using detail::msgpack_out;

using detail::put_value;

// The envelope up to the event list header.
void put_envelope(msgpack_out& pk, std::string_view source_id,
                  std::uint64_t sequence, std::size_t events) {
  pk.array(batch_elements);
  pk.uint(major_version);
  pk.uint(minor_version);
  pk.str(source_id);
  pk.uint(sequence);
  pk.array(events);
}

// One event; E is `event` or `event_view`.
template <class E>
void put_event(msgpack_out& pk, const E& e) {
  pk.array(event_elements);
  if (e.time == unknown_time)
    pk.nil();
  else
    pk.integer(e.time);
  pk.str(e.index);
  pk.str(e.host);
  pk.str(e.source);
  pk.str(e.sourcetype);
  if (e.raw)
    pk.str(*e.raw);
  else
    pk.nil();
  pk.map(e.fields.size());
  for (const auto& f : e.fields) {
    pk.str(f.name);
    put_value(pk, f.value);
  }
}

} // namespace

void encode(std::string_view source_id, std::uint64_t sequence,
            std::span<const event_view* const> events, std::string& out) {
  msgpack_out pk{out};
  put_envelope(pk, source_id, sequence, events.size());
  for (const auto* e : events)
    put_event(pk, *e);
}

void append_value(std::string& out, const value_view& v) {
  msgpack_out pk{out};
  put_value(pk, v);
}

void encode_head(std::string_view source_id, std::uint64_t sequence,
                 std::size_t events, std::string& out) {
  msgpack_out pk{out};
  put_envelope(pk, source_id, sequence, events);
}

void encode_events(std::span<const event> events, std::string& out) {
  msgpack_out pk{out};
  for (const auto& e : events)
    put_event(pk, e);
}

void encode(const batch& b, std::string& out) {
  encode_head(b.source_id, b.sequence, b.events.size(), out);
  encode_events(b.events, out);
}

std::string encode(const batch& b) {
  std::string out;
  encode(b, out);
  return out;
}

} // namespace parallax::wire
