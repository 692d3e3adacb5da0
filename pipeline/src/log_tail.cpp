#include "parallax/pipeline/log_tail.hpp"

#include "parallax/pipeline/logging.hpp"

#include <cerrno>
#include <filesystem>
#include <sstream>

#include <dirent.h>
#include <fcntl.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

namespace parallax {

namespace {

// Finds the file in `dir` with this device and inode (a rotated-away log),
// opened for reading, or -1.
int open_by_inode(const std::string& path, std::uint64_t dev,
                  std::uint64_t ino) {
  auto parent = std::filesystem::path{path}.parent_path();
  DIR* d = ::opendir(parent.empty() ? "." : parent.c_str());
  if (!d)
    return -1;
  int fd = -1;
  while (auto* de = ::readdir(d)) {
    auto p = (parent / de->d_name).string();
    struct stat sb {};
    if (::stat(p.c_str(), &sb) == 0 && S_ISREG(sb.st_mode)
        && static_cast<std::uint64_t>(sb.st_dev) == dev
        && static_cast<std::uint64_t>(sb.st_ino) == ino) {
      fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
      break;
    }
  }
  ::closedir(d);
  return fd;
}

} // namespace

log_tailer::log_tailer(std::vector<tail_input> inputs,
                       std::size_t max_line_bytes)
  : inputs_{std::move(inputs)}, max_line_{max_line_bytes} {
}

log_tailer::~log_tailer() {
  for (auto& [path, t] : files_)
    if (t.fd >= 0)
      ::close(t.fd);
}

bool log_tailer::drain(const std::string& path, tracked& t,
                       const emit_fn& emit, std::size_t& budget) {
  constexpr std::size_t chunk = 64u << 10;
  std::size_t consumed = 0; // bytes of buf_ already handed out
  buf_.clear();
  auto pos = t.offset;
  for (;;) {
    if (budget == 0)
      return false;
    auto old = buf_.size();
    buf_.resize(old + chunk);
    auto n = ::pread(t.fd, buf_.data() + old, chunk,
                     static_cast<off_t>(pos));
    if (n < 0 && errno == EINTR) {
      buf_.resize(old);
      continue;
    }
    buf_.resize(old + static_cast<std::size_t>(n > 0 ? n : 0));
    if (n <= 0)
      return true; // EOF (or an error: tried again next poll)
    pos += static_cast<std::uint64_t>(n);
    // Hand out every complete line in the buffer.
    std::string_view view{buf_};
    for (;;) {
      auto nl = view.find('\n', consumed);
      std::string_view line;
      std::size_t next;
      if (nl == std::string_view::npos) {
        if (view.size() - consumed < max_line_)
          break;
        line = view.substr(consumed, max_line_); // an endless line: cut it
        next = consumed + max_line_;
      } else {
        line = view.substr(consumed, nl - consumed);
        next = nl + 1;
      }
      if (!line.empty() && line.back() == '\r')
        line.remove_suffix(1);
      if (!line.empty())
        emit(path, t.sourcetype, line);
      auto used = next - consumed;
      consumed = next;
      t.offset += used;
      budget = used >= budget ? 0 : budget - used;
      if (budget == 0)
        return false;
    }
    // Keep only the partial line for the next read.
    buf_.erase(0, consumed);
    consumed = 0;
  }
}

void log_tailer::follow(const std::string& path, const std::string& sourcetype,
                        const emit_fn& emit, std::size_t& budget, bool& more) {
  struct stat sb {};
  if (::stat(path.c_str(), &sb) != 0 || !S_ISREG(sb.st_mode))
    return;
  auto dev = static_cast<std::uint64_t>(sb.st_dev);
  auto ino = static_cast<std::uint64_t>(sb.st_ino);
  auto [it, fresh] = files_.try_emplace(path);
  auto& t = it->second;
  t.sourcetype = sourcetype;
  if (fresh) {
    t.dev = dev;
    t.ino = ino;
  }
  if (t.dev != dev || t.ino != ino) {
    // Renamed away and recreated: finish the old file first.
    if (t.fd < 0)
      t.fd = open_by_inode(path, t.dev, t.ino);
    if (t.fd >= 0) {
      struct stat ob {};
      if (::fstat(t.fd, &ob) == 0
          && static_cast<std::uint64_t>(ob.st_size) < t.offset)
        t.offset = 0;
      if (!drain(path, t, emit, budget)) {
        more = true;
        return;
      }
      ::close(t.fd);
      t.fd = -1;
    } else {
      log::warning("agent", "{}: rotated while the agent was stopped and the "
                            "old file is gone; lines after offset {} of it "
                            "are lost",
                   path, t.offset);
    }
    ++renames_;
    t.dev = dev;
    t.ino = ino;
    t.offset = 0;
  }
  if (t.fd < 0) {
    t.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (t.fd < 0)
      return;
    // The path may have been replaced between stat and open.
    struct stat nb {};
    if (::fstat(t.fd, &nb) != 0
        || static_cast<std::uint64_t>(nb.st_ino) != t.ino
        || static_cast<std::uint64_t>(nb.st_dev) != t.dev) {
      ::close(t.fd);
      t.fd = -1;
      more = true;
      return;
    }
  }
  struct stat cb {};
  if (::fstat(t.fd, &cb) == 0 && static_cast<std::uint64_t>(cb.st_size) < t.offset) {
    log::info("agent", "{}: truncated (copytruncate?): reading from the start",
              path);
    ++truncations_;
    t.offset = 0;
  }
  if (!drain(path, t, emit, budget))
    more = true;
}

bool log_tailer::poll(const emit_fn& emit, std::size_t max_bytes) {
  std::size_t budget = max_bytes;
  bool more = false;
  for (const auto& in : inputs_) {
    glob_t g{};
    if (::glob(in.glob.c_str(), 0, nullptr, &g) == 0) {
      for (std::size_t i = 0; i < g.gl_pathc; ++i) {
        std::string path = g.gl_pathv[i];
        if (path.find('\n') != std::string::npos)
          continue; // cannot be checkpointed as a line
        follow(path, in.sourcetype, emit, budget, more);
      }
    }
    ::globfree(&g);
  }
  // A followed path that vanished (renamed, not recreated yet): lines the
  // writer still appends to the open file are read through the descriptor.
  for (auto& [path, t] : files_) {
    if (t.fd < 0 || t.sourcetype.empty())
      continue;
    struct stat sb {};
    if (::stat(path.c_str(), &sb) == 0)
      continue;
    if (!drain(path, t, emit, budget))
      more = true;
  }
  return more;
}

std::string log_tailer::checkpoints() const {
  std::string out = "parallax-log-checkpoints 1\n";
  for (const auto& [path, t] : files_)
    out += std::to_string(t.dev) + ' ' + std::to_string(t.ino) + ' '
           + std::to_string(t.offset) + ' ' + path + '\n';
  return out;
}

void log_tailer::restore(std::string_view text) {
  std::istringstream in{std::string{text}};
  std::string line;
  if (!std::getline(in, line) || line != "parallax-log-checkpoints 1")
    return;
  while (std::getline(in, line)) {
    std::istringstream ls{line};
    tracked t;
    if (!(ls >> t.dev >> t.ino >> t.offset))
      continue;
    ls.get(); // the space before the path
    std::string path;
    std::getline(ls, path);
    if (path.empty())
      continue;
    auto& slot = files_[path];
    if (slot.fd >= 0)
      ::close(slot.fd);
    slot = t;
  }
}

} // namespace parallax
