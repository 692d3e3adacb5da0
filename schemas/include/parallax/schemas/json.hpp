#pragma once

// JSON renderings of the event model, for tools and tests.
//
// Strings are escaped per RFC 8259. Bytes that are not valid UTF-8 (raw text
// is not validated on the wire) become U+FFFD. Non-finite floats, which JSON
// cannot carry, are rendered as the strings "NaN", "Infinity", "-Infinity".

#include "parallax/schemas/event.hpp"
#include "parallax/schemas/wire.hpp"

#include <string>
#include <string_view>

namespace parallax::json {

/// Appends `s` as a quoted JSON string.
void append_string(std::string& out, std::string_view s);

/// Appends one value.
void append_value(std::string& out, const value_view& v);

/// Appends one event as a JSON object:
/// {"time":..,"index":..,"host":..,"source":..,"sourcetype":..,"raw":..|null,"fields":{..}}
void append_event(std::string& out, const event_view& e);

/// Appends the batch header as a JSON object:
/// {"version":"1.0","source_id":..,"sequence":..,"events":N}
void append_batch_header(std::string& out, const wire::batch_view& b);

} // namespace parallax::json
