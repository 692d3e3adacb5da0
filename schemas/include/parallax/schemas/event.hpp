#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace parallax {

/// Event time: nanoseconds since 1970-01-01T00:00:00Z. Signed, so times
/// before 1970 are representable (the pipeline decides whether to accept them).
using time_ns = std::int64_t;

/// An event time the sender does not know: nil on the wire. The receiver's
/// parser extracts it from the raw text, interpolates it, or takes the
/// receive time (see the parser).
inline constexpr time_ns unknown_time = std::numeric_limits<time_ns>::min();

/// The wall clock as an event time.
inline time_ns now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

/// A duration (config values are milliseconds) in event-time nanoseconds.
template <class Rep, class Period>
constexpr time_ns to_ns(std::chrono::duration<Rep, Period> d) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

/// A typed field value that owns its string. The alternatives' order is part
/// of the API: `value` and `value_view` use the same indices.
using value = std::variant<std::string, std::int64_t, double, bool>;

/// A typed field value whose string points into a buffer owned elsewhere
/// (usually the batch frame it was decoded from).
using value_view = std::variant<std::string_view, std::int64_t, double, bool>;

/// Type names as the wire format documentation uses them.
std::string_view type_name(const value& v) noexcept;
std::string_view type_name(const value_view& v) noexcept;

/// Copies a view into an owning value.
value materialize(const value_view& v);

/// Views an owning value; valid while `v` lives and is not modified.
value_view view(const value& v) noexcept;

/// A named field that owns its data.
struct field {
  std::string name;
  parallax::value value;
  friend bool operator==(const field&, const field&) = default;
};

/// A named field that points into a buffer owned elsewhere.
struct field_view {
  std::string_view name;
  value_view value;
};

/// One timestamped event as producers build it. Empty `index`, `host`,
/// `source` or `sourcetype` mean "let the receiver apply its default".
/// `raw` is absent for pure metric samples.
struct event {
  time_ns time = 0;
  std::string index;
  std::string host;
  std::string source;
  std::string sourcetype;
  std::optional<std::string> raw;
  std::vector<field> fields;

  /// The first field called `name`, or nullptr.
  const parallax::value* find(std::string_view name) const noexcept;

  friend bool operator==(const event&, const event&) = default;
};

/// A decoded event whose strings point into the frame it came from. It stays
/// valid as long as the `batch_view` that produced it lives.
struct event_view {
  time_ns time = 0;
  std::string_view index;
  std::string_view host;
  std::string_view source;
  std::string_view sourcetype;
  std::optional<std::string_view> raw;
  std::span<const field_view> fields;

  /// The first field called `name`, or nullptr.
  const value_view* find(std::string_view name) const noexcept;

  /// A deep copy that owns its data.
  event materialize() const;
};

/// A view of `e` whose fields are `fields`: views of e's own, in order,
/// made by the caller (see view()). Both must outlive the view.
event_view view_of(const event& e, std::span<const field_view> fields);

/// Whether every name in `fields` is non-empty, valid UTF-8, at most
/// `max_name_bytes` long and not repeated: what the wire and publish
/// decoders take.
bool valid_field_names(std::span<const field> fields,
                       std::size_t max_name_bytes);
bool valid_field_names(std::span<const field_view> fields,
                       std::size_t max_name_bytes);

} // namespace parallax
