#pragma once

#include <vector>

namespace parallax::bench {

/// Median of `xs` (the mean of the two middle values for even sizes).
/// Precondition: `xs` is not empty.
double median(std::vector<double> xs);

/// Peak resident set size of this process in bytes (VmHWM), or 0.
unsigned long long peak_rss_bytes();

} // namespace parallax::bench
