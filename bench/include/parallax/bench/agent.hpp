#pragma once

#include <cstddef>
#include <string>

namespace parallax::bench {

struct agent_options {
  std::size_t processes = 300; ///< child processes started (asleep)
  std::size_t rounds = 30;     ///< collection rounds measured
  bool json = false;           ///< one machine-readable line
  /// The `parallax-agent` binary to measure as its own process; empty: the
  /// one next to this binary.
  std::string binary;
};

/// `parallax bench agent`: the in-guest agent's footprint. Starts
/// `processes` children (fork + pause), then runs `rounds` collection rounds
/// of the real agent code against this machine's /proc and /sys: processes,
/// system and identity sampled, encoded, and spooled (written and fsynced)
/// into a temporary state directory. Nothing is sent: the agent is opened
/// without a connection and each round's batches are removed from the
/// spool afterwards, as acks would; a ZeroMQ send of the frame is a copy
/// into a queue and is left out. Reports CPU time per round (process CPU
/// clock) as % of one core at the default 10 s interval, wall time per
/// round, median and p90, and the peak RSS (VmHWM) of this process, which
/// runs the same binary as `parallax agent`. Kills the children afterwards.
///
/// First, the installed form is measured the same way from outside: the
/// `parallax-agent` binary runs as its own process (1 s interval, spooling
/// because nothing listens), and its CPU time and VmHWM are read from /proc.
int run_agent(const agent_options& opts);

} // namespace parallax::bench
