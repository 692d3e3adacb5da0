#pragma once

// How long a CPU of this machine ran no thread of ours at all: on each CPU
// a thread in the highest real-time class (SCHED_FIFO at the top priority,
// when allowed), pinned there, sleeps to an absolute deadline every
// millisecond and notes how late it woke. Such a thread preempts every
// other thread of the guest at once, so lateness beyond a few microseconds
// is time when nothing could run on that CPU: the hypervisor running
// another tenant on this vCPU, or a kernel path that cannot be preempted
// (this kernel's default preemption model is "none"). The correlator's
// real-time thread would have waited as long. And the steal time the
// hypervisor reports (/proc/stat): CPU time it gave to others. And how
// fast the CPU and its memory run: about once a second each probe times
// a fixed loop of dependent reads from a 1 MiB table and arithmetic, and
// one of dependent multiplications alone. A
// CPU whose caches, memory bandwidth or core (an SMT sibling) others
// share -- the server's own threads included -- runs it slower, with no
// steal and no stall to show for it. Used by
// `parallax bench correlate` to tell a noisy machine from a slow server.

#include "parallax/schemas/event.hpp" // time_ns

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

namespace parallax::bench {

struct stall {
  time_ns from = 0; ///< when the probe should have woken (now_ns clock)
  time_ns to = 0;   ///< when it woke
};

struct stall_figures {
  bool real_time = false;   ///< false: the probes ran in the normal class
  std::size_t probes = 0;    ///< one per CPU this process may use
  double seconds = 0;        ///< how long they ran
  std::uint64_t wakeups = 0;
  /// Wakeups late by more than the threshold, all CPUs', by start.
  std::vector<stall> stalls;
  double max_ms = 0;
  double total_ms = 0;       ///< lateness of the stalls, summed
  /// Steal time over the probe's life, as a share of all CPUs' time
  /// (negative: /proc/stat unreadable).
  double steal_pct = -1;
  /// Microseconds the fixed loop (speed_loop) took, all CPUs' samples,
  /// sorted.
  std::vector<double> loop_us;
  /// The same for compute_loop, timed right after it.
  std::vector<double> compute_us;
};

/// The probes' second loop: `steps` dependent multiplications, no memory:
/// it slows when the core itself is shared (an SMT sibling) or clocked
/// down, which the memory-bound loop hardly shows.
std::uint64_t compute_loop(std::uint64_t seed, std::size_t steps);

/// The probes' fixed loop: `steps` dependent reads of `table` (whose size
/// is a power of two) mixed with a multiply. Returns a value that depends
/// on every step, so that none is optimised away.
std::uint64_t speed_loop(const std::vector<std::uint32_t>& table,
                         std::size_t steps);

class stall_probe {
public:
  /// Starts a probe on every CPU this process may use; wakeups late by
  /// more than `threshold` are stalls.
  /// Every `speed_every` wakeups (0: never) a probe times speed_loop; the
  /// probes of different CPUs at different wakeups.
  explicit stall_probe(std::chrono::microseconds period
                       = std::chrono::milliseconds{1},
                       std::chrono::microseconds threshold
                       = std::chrono::milliseconds{1},
                       std::size_t speed_every = 1000);
  ~stall_probe();
  stall_probe(const stall_probe&) = delete;
  stall_probe& operator=(const stall_probe&) = delete;

  /// Stops the probes and returns what they saw. Once.
  stall_figures stop();

private:
  struct cpu_probe {
    stall_figures figures;
    std::thread thread;
  };
  void run(int cpu, std::size_t phase, stall_figures& out);

  std::chrono::microseconds period_;
  std::chrono::microseconds threshold_;
  std::size_t speed_every_;
  std::atomic<bool> stop_{false};
  std::vector<cpu_probe> probes_;
  std::uint64_t steal_ticks_ = 0, all_ticks_ = 0;
  std::chrono::steady_clock::time_point started_;
  bool stopped_ = false;
};

/// How many of the intervals [from, to) overlap a stall.
std::size_t overlapping(const std::vector<stall>& stalls,
                        const std::vector<stall>& intervals);

} // namespace parallax::bench
