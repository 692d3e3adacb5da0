#include "parallax/bench/stats.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

namespace parallax::bench {

double median(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  auto n = xs.size();
  return n % 2 ? xs[n / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2;
}

double percentile(std::vector<double> xs, double q) {
  if (xs.empty())
    return 0;
  std::sort(xs.begin(), xs.end());
  auto i = static_cast<std::size_t>(q * static_cast<double>(xs.size() - 1)
                                    + 0.5);
  return xs[std::min(i, xs.size() - 1)];
}

bool write_all(int fd, const void* p, std::size_t n) {
  auto c = static_cast<const char*>(p);
  while (n > 0) {
    auto w = ::write(fd, c, n);
    if (w <= 0)
      return false;
    c += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool read_all(int fd, void* p, std::size_t n) {
  auto c = static_cast<char*>(p);
  while (n > 0) {
    auto r = ::read(fd, c, n);
    if (r <= 0)
      return false;
    c += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

std::string find_on_path(std::string_view name) {
  const char* path = std::getenv("PATH");
  std::string_view rest = path ? path : "/usr/bin:/bin";
  while (true) {
    auto colon = rest.find(':');
    auto dir = rest.substr(0, colon);
    if (!dir.empty()) {
      auto candidate = std::filesystem::path{dir} / name;
      std::error_code ec;
      if (std::filesystem::is_regular_file(candidate, ec)
          && ::access(candidate.c_str(), X_OK) == 0)
        return candidate.string();
    }
    if (colon == std::string_view::npos)
      return {};
    rest.remove_prefix(colon + 1);
  }
}

unsigned long long peak_rss_bytes() {
  std::ifstream in{"/proc/self/status"};
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmHWM:", 0) == 0)
      return std::stoull(line.substr(6)) * 1024; // reported in kB
  return 0;
}

rss_split current_rss() {
  rss_split r;
  std::ifstream in{"/proc/self/status"};
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("RssAnon:", 0) == 0)
      r.anon = std::stoull(line.substr(8)) * 1024;
    else if (line.rfind("RssFile:", 0) == 0)
      r.file = std::stoull(line.substr(8)) * 1024;
  }
  return r;
}

} // namespace parallax::bench
