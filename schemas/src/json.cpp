#include "parallax/schemas/json.hpp"

#include "parallax/schemas/utf8.hpp"

#include <cmath>

#include <fmt/format.h>

namespace parallax::json {

void append_string(std::string& out, std::string_view s) {
  out += '"';
  while (!s.empty()) {
    auto bad = find_invalid_utf8(s);
    for (std::size_t i = 0; i < bad; ++i) {
      auto c = static_cast<unsigned char>(s[i]);
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
          if (c < 0x20)
            fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
          else
            out += static_cast<char>(c);
      }
    }
    if (bad == s.size())
      break;
    out += "\xEF\xBF\xBD"; // U+FFFD for the invalid byte
    s.remove_prefix(bad + 1);
  }
  out += '"';
}

void append_value(std::string& out, const value_view& v) {
  switch (v.index()) {
    case 0:
      append_string(out, std::get<0>(v));
      break;
    case 1:
      fmt::format_to(std::back_inserter(out), "{}", std::get<1>(v));
      break;
    case 2: {
      auto d = std::get<2>(v);
      if (std::isnan(d))
        out += "\"NaN\"";
      else if (std::isinf(d))
        out += d > 0 ? "\"Infinity\"" : "\"-Infinity\"";
      else if (d == std::floor(d) && std::fabs(d) < 1e15)
        fmt::format_to(std::back_inserter(out), "{:.1f}", d); // keep it a float
      else
        fmt::format_to(std::back_inserter(out), "{}", d);
      break;
    }
    default:
      out += std::get<3>(v) ? "true" : "false";
  }
}

void append_event(std::string& out, const event_view& e) {
  if (e.time == unknown_time)
    out += "{\"time\":null,\"index\":";
  else
    fmt::format_to(std::back_inserter(out), "{{\"time\":{},\"index\":", e.time);
  append_string(out, e.index);
  out += ",\"host\":";
  append_string(out, e.host);
  out += ",\"source\":";
  append_string(out, e.source);
  out += ",\"sourcetype\":";
  append_string(out, e.sourcetype);
  out += ",\"raw\":";
  if (e.raw)
    append_string(out, *e.raw);
  else
    out += "null";
  out += ",\"fields\":{";
  bool first = true;
  for (const auto& f : e.fields) {
    if (!first)
      out += ',';
    first = false;
    append_string(out, f.name);
    out += ':';
    append_value(out, f.value);
  }
  out += "}}";
}

void append_batch_header(std::string& out, const wire::batch_view& b) {
  fmt::format_to(std::back_inserter(out), "{{\"version\":\"{}.{}\",\"source_id\":",
                 b.major(), b.minor());
  append_string(out, b.source_id());
  fmt::format_to(std::back_inserter(out), ",\"sequence\":{},\"events\":{}}}",
                 b.sequence(), b.events().size());
}

} // namespace parallax::json
