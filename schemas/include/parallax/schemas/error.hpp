#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace parallax {

/// Every error a Parallax user can meet, as one enum. The description table
/// in error.cpp is checked against this enum's size at compile time.
enum class ec : std::uint8_t {
  none = 0,
  // -- wire format (schemas/README.md) ---------------------------------------
  not_msgpack,       ///< a byte that starts no MessagePack object
  truncated,         ///< the frame ends inside an object
  wrong_type,        ///< an element has another MessagePack type than required
  unknown_version,   ///< unsupported format version or unknown element
  oversized_frame,   ///< the frame is larger than the configured maximum
  too_many_events,   ///< more events in one batch than allowed
  too_many_fields,   ///< more fields in one event than allowed
  string_too_long,   ///< a string is longer than allowed
  invalid_utf8,      ///< a name is not valid UTF-8
  invalid_value,     ///< a value is of the right type but not allowed
  trailing_bytes,    ///< bytes after the end of the batch
  // -- configuration ---------------------------------------------------------
  config_parse,      ///< the config file is not valid TOML
  config_unknown_key,///< a key that no option has
  config_bad_value,  ///< a value of the wrong type or out of range
  // -- storage ---------------------------------------------------------------
  storage_error,     ///< LMDB or the file system failed
  storage_version,   ///< the data directory holds another storage format
  storage_locked,    ///< another process owns the data directory
  storage_full,      ///< the store reached its map size or the disk is full
  // -- everything else -------------------------------------------------------
  system_error,      ///< an operating-system call failed
  usage,             ///< a command line that makes no sense
  // -- search (docs/search.md) -----------------------------------------------
  bad_query,         ///< a query that does not parse; offset is its column
  query_limit,       ///< a query went past its memory or time bound
  query_cancelled,   ///< a query was cancelled
  last = query_cancelled,
};

/// A short, stable, lower-case name for the code (`"truncated"`).
std::string_view to_string(ec code) noexcept;

/// Sentinel for "this error has no byte offset".
inline constexpr std::size_t no_offset = static_cast<std::size_t>(-1);

/// An error as a value: a code plus a human-readable sentence saying what was
/// wrong and where. `offset` is the byte offset in a frame for wire errors.
struct error {
  ec code = ec::none;
  std::string message;
  std::size_t offset = no_offset;

  error() = default;
  error(ec c, std::string msg, std::size_t off = no_offset)
    : code{c}, message{std::move(msg)}, offset{off} {
  }

  /// True if this holds an error (code != none).
  explicit operator bool() const noexcept {
    return code != ec::none;
  }

  /// "truncated at byte 17: ..." -- what a user sees.
  std::string render() const;
};

/// Either a T or an error. Deliberately small: no exceptions on access paths;
/// callers check with `if (!r)` before dereferencing.
template <class T>
class [[nodiscard]] result {
public:
  result(T value) : v_{std::in_place_index<0>, std::move(value)} {
  }
  result(parallax::error err) : v_{std::in_place_index<1>, std::move(err)} {
  }

  explicit operator bool() const noexcept {
    return v_.index() == 0;
  }
  T& operator*() & {
    return *std::get_if<0>(&v_);
  }
  const T& operator*() const& {
    return *std::get_if<0>(&v_);
  }
  T&& operator*() && {
    return std::move(*std::get_if<0>(&v_));
  }
  T* operator->() {
    return std::get_if<0>(&v_);
  }
  const T* operator->() const {
    return std::get_if<0>(&v_);
  }
  /// Precondition: `!*this`.
  const parallax::error& error() const {
    return *std::get_if<1>(&v_);
  }

private:
  std::variant<T, parallax::error> v_;
};

} // namespace parallax
