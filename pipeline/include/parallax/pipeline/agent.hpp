#pragma once

// `parallax agent`: the in-guest agent. Each round it samples processes,
// system figures, NIC and block device counters and identity (procfs.hpp),
// reads new log lines (log_tail.hpp), encodes them into batches, spools
// every batch durably (spool.hpp) and only then hands it to the ingest
// client; a batch leaves the spool when the server has answered it for good.
//
// Why not a CAF actor: the agent runs inside every guest and must stay
// small (target ≤ 20 MB RSS, ≤ 1 % of one core with 300 processes at a 10 s
// interval). CAF's scheduler threads, its actor system and type registry
// would cost more than the whole agent's work; one thread with a steady
// clock and a poll loop is all it needs.
//
// State directory (parallax.agent.state-dir, default <data-dir>/agent):
//   LOCK        one agent per state directory (flock)
//   agent-id    "<hostname>-<16 hex digits>", made once, kept forever; every
//               event carries it as `agent_id`
//   state       the next sequence number and the log checkpoints, rewritten
//               durably after every spooled batch
//   spool/      unacknowledged batches (spool.hpp)
//
// Source id and sequences: the wire source id is "<agent-id>.<incarnation>",
// the incarnation being 8 random hex digits drawn at every start. Sequences
// come from one persisted counter that never goes back, so a sequence is
// never reused for other content, and spooled batches of an earlier
// incarnation are resent byte-identical under their own source id. Clones
// of a VM copy the state directory (and the agent id), but each start draws
// a new incarnation, so two clones never send the same (source, sequence).
//
// Log checkpoints: a log line is "done" once the batch holding it is in
// the spool (fsynced). Each spooled batch carries the checkpoints as of its
// last line; the state file is rewritten after the spool write. On start the
// newer of the two wins, so a crash between them neither loses nor repeats
// lines. Lines dropped because the spool was full are lost, and counted.
//
// Caveats: single-threaded; the ingest client's socket belongs to the thread
// that opened the agent.

#include "parallax/pipeline/config.hpp"
#include "parallax/pipeline/ingest_client.hpp"
#include "parallax/pipeline/log_tail.hpp"
#include "parallax/pipeline/procfs.hpp"
#include "parallax/pipeline/spool.hpp"
#include "parallax/pipeline/zmq.hpp"
#include "parallax/storage/dir_lock.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>

namespace parallax {

struct agent_options {
  /// False: collect and spool only, never connect (the footprint benchmark).
  bool connect = true;
  /// Clock ticks and page size (tests set them for exact figures).
  procfs::host_constants host;
  /// Batches handed to the client at once (the rest wait in the spool).
  std::size_t window = 8;
  /// Resend a batch unanswered for this long.
  std::chrono::milliseconds resend_after{5'000};
  /// Most log bytes read per batch, and per round.
  std::size_t log_batch_bytes = 1u << 20;
  std::size_t log_round_bytes = 16u << 20;
};

struct agent_stats {
  std::uint64_t rounds = 0;
  std::uint64_t process_events = 0;
  std::uint64_t system_events = 0;
  std::uint64_t net_events = 0;      ///< os:net (the "system" input)
  std::uint64_t disk_events = 0;     ///< os:disk (the "system" input)
  std::uint64_t identity_events = 0; ///< os:identity and os:nic
  std::uint64_t log_events = 0;
  std::uint64_t batches_spooled = 0;
  std::uint64_t batches_answered = 0; ///< ack, duplicate or rejected
  std::uint64_t batches_rejected = 0;
  std::uint64_t bytes_spooled = 0;
};

class guest_agent {
public:
  /// Opens the state directory (`cfg.state_dir`, or `data_dir`/agent),
  /// takes its lock, loads or creates the agent id, state and spool, and
  /// (with `opts.connect`) connects to `cfg.server` without waiting for it.
  static result<std::unique_ptr<guest_agent>>
  open(const agent_config& cfg, const std::filesystem::path& data_dir,
       agent_options opts = {});

  ~guest_agent();

  /// One round: samples the enabled inputs, encodes and spools the batches,
  /// saves the state. Never waits for the server. An error means the spool
  /// or state could not be written.
  error collect();

  /// Hands spooled batches to the client (oldest first, window permitting)
  /// and handles replies arriving within `wait`.
  error pump(std::chrono::milliseconds wait);

  /// Pumps until the spool is empty, or fails after `timeout`.
  error flush(std::chrono::milliseconds timeout);

  const std::string& agent_id() const noexcept {
    return agent_id_;
  }
  const std::string& source_id() const noexcept {
    return source_id_;
  }
  const agent_stats& stats() const noexcept {
    return stats_;
  }
  spool& spooled() noexcept {
    return spool_;
  }
  const std::filesystem::path& state_dir() const noexcept {
    return dir_;
  }
  /// The next sequence number a new batch gets.
  std::uint64_t next_sequence() const noexcept {
    return next_seq_;
  }

private:
  guest_agent(agent_config cfg, agent_options opts, std::filesystem::path dir,
              storage::dir_lock lock, spool sp);
  error spool_batch(std::vector<event>& events);
  error save_state();
  void stamp(event& e) const;

  agent_config cfg_;
  agent_options opts_;
  std::filesystem::path dir_;
  storage::dir_lock lock_;
  spool spool_;
  std::string agent_id_;
  std::string source_id_;
  std::uint64_t next_seq_ = 1;
  std::string hostname_;
  bool want_processes_ = false, want_system_ = false, want_identity_ = false,
       want_logs_ = false;
  std::unique_ptr<procfs::process_sampler> processes_;
  std::unique_ptr<procfs::system_sampler> system_;
  std::unique_ptr<procfs::net_sampler> net_;
  std::unique_ptr<procfs::disk_sampler> disks_;
  std::unique_ptr<log_tailer> tailer_;
  std::optional<procfs::identity> last_identity_;
  std::chrono::steady_clock::time_point identity_sent_;
  bool bios_hint_logged_ = false;
  std::unique_ptr<zmq::context> zctx_;
  std::unique_ptr<ingest_client> client_;
  std::set<std::uint64_t> in_flight_;
  std::string frame_;
  agent_stats stats_;
};

} // namespace parallax
