#pragma once

// The priority of the live path's threads: the correlator's and the
// parser's that feeds it (parallax.correlator.rt-priority and .nice).

#include <string>

namespace parallax::detail {

/// Puts the calling thread in the real-time class at `rt_priority`
/// (SCHED_RR; 0: not) and sets its nice, which counts whenever it is not
/// there. Returns what it could not do, as a sentence to log with the
/// thread's name before it; empty when it got what it asked for.
std::string set_thread_priority(int rt_priority, int nice);

/// Whether a thread of this process may enter the real-time class at
/// `rt_priority` (tried on a thread started for it, which then ends).
bool real_time_allowed(int rt_priority);

} // namespace parallax::detail
