#pragma once

// Follows log files named by globs and hands out their complete new lines,
// with checkpoints (device, inode, offset per path) that a caller persists
// once the lines are safe, so a restart neither loses nor repeats a line.
//
// Rotation:
// - rename and create (logrotate's default): the path gets a new inode. The
//   old file is finished first (through the descriptor still open, or,
//   after a restart, by finding the inode again in the same directory,
//   e.g. auth.log.1), then the new file is read from offset 0.
// - copytruncate: the file shrinks below the offset; reading restarts at 0.
//   (A file truncated and then refilled beyond the old offset between two
//   polls cannot be told apart from appends; every tailer shares this.)
// A file seen for the first time, without a checkpoint, is read from its
// beginning. Only complete lines are handed out: a partial last line waits
// for its newline. A line longer than `max_line_bytes` is cut there. Empty
// lines are consumed and not handed out; a trailing '\r' is dropped.
//
// Caveats: not thread-safe; keeps one open descriptor per followed file.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace parallax {

/// A glob and the sourcetype its lines are sent as.
struct tail_input {
  std::string glob;
  std::string sourcetype;
};

class log_tailer {
public:
  /// Called with the file path, the input's sourcetype and one line.
  using emit_fn = std::function<void(const std::string& path,
                                     const std::string& sourcetype,
                                     std::string_view line)>;

  explicit log_tailer(std::vector<tail_input> inputs,
                      std::size_t max_line_bytes = 512u << 10);
  ~log_tailer();
  log_tailer(const log_tailer&) = delete;
  log_tailer& operator=(const log_tailer&) = delete;

  /// Reads new complete lines of every matching file, at most about
  /// `max_bytes` in all. Returns true if more data is waiting.
  bool poll(const emit_fn& emit, std::size_t max_bytes = 4u << 20);

  /// The current read positions, serialised (version line, then one line
  /// per file: "dev inode offset path").
  std::string checkpoints() const;

  /// Restores positions from `checkpoints()` output (unknown lines are
  /// ignored). Call before the first poll.
  void restore(std::string_view checkpoints);

  /// Rotations seen (renamed, truncated) since construction.
  std::uint64_t renames() const noexcept {
    return renames_;
  }
  std::uint64_t truncations() const noexcept {
    return truncations_;
  }

private:
  struct tracked {
    std::string sourcetype;
    std::uint64_t dev = 0;
    std::uint64_t ino = 0;
    std::uint64_t offset = 0;
    int fd = -1;
  };
  // Reads complete lines from `t` until EOF or the budget is spent; returns
  // false if it stopped for the budget.
  bool drain(const std::string& path, tracked& t, const emit_fn& emit,
             std::size_t& budget);
  void follow(const std::string& path, const std::string& sourcetype,
              const emit_fn& emit, std::size_t& budget, bool& more);

  std::vector<tail_input> inputs_;
  std::size_t max_line_;
  std::map<std::string, tracked> files_;
  std::string buf_;
  std::uint64_t renames_ = 0;
  std::uint64_t truncations_ = 0;
};

} // namespace parallax
