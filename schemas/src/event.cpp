#include "parallax/schemas/event.hpp"
#include "parallax/schemas/hash.hpp"
#include "parallax/schemas/utf8.hpp"

#include <cstring>

namespace parallax {

namespace {

constexpr std::string_view type_names[] = {"string", "integer", "float",
                                           "boolean"};

} // namespace

std::string_view type_name(const value& v) noexcept {
  return type_names[v.index()];
}

std::string_view type_name(const value_view& v) noexcept {
  return type_names[v.index()];
}

value materialize(const value_view& v) {
  switch (v.index()) {
    case 0:
      return std::string{std::get<0>(v)};
    case 1:
      return std::get<1>(v);
    case 2:
      return std::get<2>(v);
    default:
      return std::get<3>(v);
  }
}

value_view view(const value& v) noexcept {
  switch (v.index()) {
    case 0:
      return std::string_view{std::get<0>(v)};
    case 1:
      return std::get<1>(v);
    case 2:
      return std::get<2>(v);
    default:
      return std::get<3>(v);
  }
}

const value* event::find(std::string_view name) const noexcept {
  for (const auto& f : fields)
    if (f.name == name)
      return &f.value;
  return nullptr;
}

const value_view* event_view::find(std::string_view name) const noexcept {
  // The correlator looks up several fields of every process sample by
  // name; memcmp calls were half of this function's cost.
  for (const auto& f : fields)
    if (same_text(f.name, name))
      return &f.value;
  return nullptr;
}

event_view view_of(const event& e, std::span<const field_view> fields) {
  event_view v;
  v.time = e.time;
  v.index = e.index;
  v.host = e.host;
  v.source = e.source;
  v.sourcetype = e.sourcetype;
  if (e.raw)
    v.raw = std::string_view{*e.raw};
  v.fields = fields;
  return v;
}

event event_view::materialize() const {
  event e;
  e.time = time;
  e.index = index;
  e.host = host;
  e.source = source;
  e.sourcetype = sourcetype;
  if (raw)
    e.raw = std::string{*raw};
  e.fields.reserve(fields.size());
  for (const auto& f : fields)
    e.fields.push_back(field{std::string{f.name}, parallax::materialize(f.value)});
  return e;
}

namespace {

template <class Field>
bool valid_names(std::span<const Field> fields, std::size_t max_name_bytes) {
  // Repeats are looked for only among names that share a bit of a 64-bit
  // signature (of the length and the first and last bytes; equal names
  // share it): a name whose bit is new needs no compare. A dozen names
  // share a bit once or twice (a delta's 14 do twice), each costing one
  // scan of the names before it, instead of n^2/2 compares in all (which
  // were most of this check's cost for every published message).
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    std::string_view name = fields[i].name;
    if (name.empty() || name.size() > max_name_bytes || !is_valid_utf8(name))
      return false;
    auto sig = (name.size() + 31u * static_cast<unsigned char>(name.front())
                + 7u * static_cast<unsigned char>(name.back()))
               & 63u;
    auto bit = std::uint64_t{1} << sig;
    if (seen & bit)
      for (std::size_t j = 0; j < i; ++j)
        if (same_text(fields[j].name, name))
          return false;
    seen |= bit;
  }
  return true;
}

} // namespace

bool valid_field_names(std::span<const field> fields,
                       std::size_t max_name_bytes) {
  return valid_names(fields, max_name_bytes);
}

bool valid_field_names(std::span<const field_view> fields,
                       std::size_t max_name_bytes) {
  return valid_names(fields, max_name_bytes);
}

} // namespace parallax
