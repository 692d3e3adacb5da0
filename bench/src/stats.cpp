#include "parallax/bench/stats.hpp"

#include <algorithm>
#include <fstream>
#include <string>

namespace parallax::bench {

double median(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  auto n = xs.size();
  return n % 2 ? xs[n / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2;
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
