#pragma once

// The priority of the live path's threads: the correlator's and the
// parser's that feeds it (parallax.correlator.rt-priority and .nice); and
// the names of the server's own threads.

#include <string>

namespace parallax::detail {

/// Puts the calling thread in the real-time class at `rt_priority`
/// (SCHED_RR; 0: not) and sets its nice, which counts whenever it is not
/// there. Returns what it could not do, as a sentence to log with the
/// thread's name before it; empty when it got what it asked for.
std::string set_thread_priority(int rt_priority, int nice);

/// Names the calling thread (at most 15 bytes are kept), as `top -H`,
/// `ps -L` and perf show it: parallax's threads are `plx-<role>`.
void set_thread_name(const char* name);

/// Whether a thread of this process may enter the real-time class at
/// `rt_priority` (tried on a thread started for it, which then ends).
bool real_time_allowed(int rt_priority);

} // namespace parallax::detail
