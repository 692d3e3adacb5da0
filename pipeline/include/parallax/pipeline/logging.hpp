#pragma once

// Process-wide logging to standard error, one line per message:
//   2026-11-25T20:31:04.123Z INFO  serve: listening on tcp://127.0.0.1:7400
// Thread-safe; a line is written with one write(2), so lines never interleave.

#include <string_view>
#include <utility>

#include <fmt/format.h>

namespace parallax {

enum class log_level { error, warning, info, debug };

/// "error", "warning", "info", "debug".
std::string_view to_string(log_level lvl) noexcept;

namespace log {

/// Messages above `lvl` are discarded. The default is `info`.
void set_level(log_level lvl) noexcept;

/// True if a message at `lvl` would be written.
bool enabled(log_level lvl) noexcept;

/// Writes one line. Prefer the typed helpers below.
void write(log_level lvl, std::string_view component, std::string_view msg);

template <class... Ts>
void error(std::string_view component, fmt::format_string<Ts...> f,
           Ts&&... xs) {
  if (enabled(log_level::error))
    write(log_level::error, component, fmt::format(f, std::forward<Ts>(xs)...));
}

template <class... Ts>
void warning(std::string_view component, fmt::format_string<Ts...> f,
             Ts&&... xs) {
  if (enabled(log_level::warning))
    write(log_level::warning, component,
          fmt::format(f, std::forward<Ts>(xs)...));
}

template <class... Ts>
void info(std::string_view component, fmt::format_string<Ts...> f,
          Ts&&... xs) {
  if (enabled(log_level::info))
    write(log_level::info, component, fmt::format(f, std::forward<Ts>(xs)...));
}

template <class... Ts>
void debug(std::string_view component, fmt::format_string<Ts...> f,
           Ts&&... xs) {
  if (enabled(log_level::debug))
    write(log_level::debug, component, fmt::format(f, std::forward<Ts>(xs)...));
}

} // namespace log

} // namespace parallax
