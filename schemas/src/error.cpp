#include "parallax/schemas/error.hpp"

#include <array>

#include <fmt/format.h>

namespace parallax {

namespace {

// One entry per enumerator, in order; the static_assert below fails the build
// when someone adds a code without a name.
constexpr auto names = std::array{
  std::string_view{"none"},
  std::string_view{"not_msgpack"},
  std::string_view{"truncated"},
  std::string_view{"wrong_type"},
  std::string_view{"unknown_version"},
  std::string_view{"oversized_frame"},
  std::string_view{"too_many_events"},
  std::string_view{"too_many_fields"},
  std::string_view{"string_too_long"},
  std::string_view{"invalid_utf8"},
  std::string_view{"invalid_value"},
  std::string_view{"trailing_bytes"},
  std::string_view{"config_parse"},
  std::string_view{"config_unknown_key"},
  std::string_view{"config_bad_value"},
  std::string_view{"storage_error"},
  std::string_view{"storage_version"},
  std::string_view{"storage_locked"},
  std::string_view{"storage_full"},
  std::string_view{"system_error"},
  std::string_view{"usage"},
  std::string_view{"bad_query"},
  std::string_view{"query_limit"},
  std::string_view{"query_cancelled"},
};

static_assert(names.size() == static_cast<std::size_t>(ec::last) + 1,
              "every ec needs a name in error.cpp");

} // namespace

std::string_view to_string(ec code) noexcept {
  auto i = static_cast<std::size_t>(code);
  return i < names.size() ? names[i] : std::string_view{"unknown_error"};
}

std::string error::render() const {
  if (offset == no_offset)
    return fmt::format("{}: {}", to_string(code), message);
  return fmt::format("{} at byte {}: {}", to_string(code), offset, message);
}

} // namespace parallax
