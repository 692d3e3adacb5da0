#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace parallax::bench {

/// Median of `xs` (the mean of the two middle values for even sizes).
/// Precondition: `xs` is not empty.
double median(std::vector<double> xs);

/// The `q` quantile of `xs` (0..1), nearest rank; 0 for an empty `xs`.
double percentile(std::vector<double> xs, double q);

/// Writes / reads exactly `n` bytes through a pipe to or from a benchmark's
/// client process; false when the other end is gone.
bool write_all(int fd, const void* p, std::size_t n);
bool read_all(int fd, void* p, std::size_t n);

/// The first executable regular file `name` in a directory of $PATH
/// (/usr/bin:/bin without one), or empty: a peer's or a runner's binary.
std::string find_on_path(std::string_view name);

/// Peak resident set size of this process in bytes (VmHWM), or 0.
unsigned long long peak_rss_bytes();

/// Current resident memory split as the kernel reports it: anonymous
/// (heap, stacks) and file-backed (here mostly LMDB's memory map, which is
/// page cache the kernel can reclaim), in bytes.
struct rss_split {
  unsigned long long anon = 0;
  unsigned long long file = 0;
};
rss_split current_rss();

} // namespace parallax::bench
