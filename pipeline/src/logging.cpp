#include "parallax/pipeline/logging.hpp"

#include <atomic>
#include <chrono>
#include <ctime>

#include <unistd.h>

namespace parallax {

std::string_view to_string(log_level lvl) noexcept {
  switch (lvl) {
    case log_level::error: return "error";
    case log_level::warning: return "warning";
    case log_level::info: return "info";
    default: return "debug";
  }
}

namespace log {

namespace {

std::atomic<int> current{static_cast<int>(log_level::info)};

std::string_view tag(log_level lvl) {
  switch (lvl) {
    case log_level::error: return "ERROR";
    case log_level::warning: return "WARN ";
    case log_level::info: return "INFO ";
    default: return "DEBUG";
  }
}

} // namespace

void set_level(log_level lvl) noexcept {
  current.store(static_cast<int>(lvl), std::memory_order_relaxed);
}

bool enabled(log_level lvl) noexcept {
  return static_cast<int>(lvl) <= current.load(std::memory_order_relaxed);
}

void write(log_level lvl, std::string_view component, std::string_view msg) {
  using namespace std::chrono;
  auto now = system_clock::now();
  auto secs = system_clock::to_time_t(now);
  auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  fmt::memory_buffer buf;
  fmt::format_to(std::back_inserter(buf),
                 "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z {} {}: {}\n",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, ms, tag(lvl), component, msg);
  // One write(2) per line keeps lines whole across threads and processes.
  auto p = buf.data();
  auto n = buf.size();
  while (n > 0) {
    auto w = ::write(STDERR_FILENO, p, n);
    if (w <= 0)
      break;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

} // namespace log

} // namespace parallax
