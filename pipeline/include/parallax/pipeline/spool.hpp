#pragma once

// The agent's on-disk spool of unacknowledged batches: one file per batch,
// named by its sequence number, written and fsynced before the batch is
// sent, removed when the server has answered for good. It survives agent
// restarts and server outages; frames are kept byte for byte, so a resend
// is identical to the first send (the server deduplicates it).
//
// File format (version 1), `<dir>/<20-digit sequence>.batch`:
//   "PXSPOOL1"  8 bytes magic and version
//   u64 LE      sequence
//   u32 LE      meta length M, then M bytes of meta (the agent stores the
//               log checkpoints as of this batch: see agent.hpp)
//   u32 LE      frame length F, then F bytes: the wire frame
// A file is written as `<name>.tmp`, fsynced, renamed, and the directory
// fsynced; leftover .tmp files (a crash mid-write) are deleted on open.
//
// Bound: when a `put` takes the spool above `max_bytes`, the oldest batches
// are deleted (never the one just written) until it fits; they are counted.
//
// Caveats: one process per directory (the agent holds the state dir); not
// thread-safe.

#include "parallax/schemas/error.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace parallax {

class spool {
public:
  /// One spooled batch as read back.
  struct entry {
    std::uint64_t sequence = 0;
    std::string meta;
    std::string frame;
  };

  /// Opens (creating) the spool directory and indexes what is in it.
  /// Unreadable or foreign files are reported in the error, not deleted.
  static result<spool> open(std::filesystem::path dir, std::uint64_t max_bytes);

  /// Writes batch `seq` durably, then drops the oldest batches while the
  /// spool exceeds its bound. Fails (nothing kept) if the write fails.
  error put(std::uint64_t seq, std::string_view meta, std::string_view frame);

  /// Reads batch `seq` back.
  result<entry> read(std::uint64_t seq) const;

  /// Removes batch `seq` (no-op if absent).
  void remove(std::uint64_t seq);

  /// Spooled sequences, oldest first.
  std::vector<std::uint64_t> sequences() const;
  bool contains(std::uint64_t seq) const {
    return files_.count(seq) != 0;
  }
  std::size_t size() const noexcept {
    return files_.size();
  }
  std::uint64_t bytes() const noexcept {
    return bytes_;
  }
  /// The highest sequence spooled, if any.
  std::optional<std::uint64_t> newest() const;

  /// Batches and bytes dropped to keep the bound, since open.
  std::uint64_t dropped_batches() const noexcept {
    return dropped_batches_;
  }
  std::uint64_t dropped_bytes() const noexcept {
    return dropped_bytes_;
  }

  const std::filesystem::path& dir() const noexcept {
    return dir_;
  }

private:
  spool(std::filesystem::path dir, std::uint64_t max_bytes)
    : dir_{std::move(dir)}, max_bytes_{max_bytes} {
  }
  std::filesystem::path file_of(std::uint64_t seq) const;

  std::filesystem::path dir_;
  std::uint64_t max_bytes_;
  std::map<std::uint64_t, std::uint64_t> files_; // seq -> file size
  std::uint64_t bytes_ = 0;
  std::uint64_t dropped_batches_ = 0;
  std::uint64_t dropped_bytes_ = 0;
};

/// Writes `data` to `path` durably: a temp file, fsync, rename, fsync of
/// the directory.
error write_file_durably(const std::filesystem::path& path,
                         std::string_view data);

} // namespace parallax
