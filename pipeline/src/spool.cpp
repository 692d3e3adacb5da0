#include "parallax/pipeline/spool.hpp"

#include "parallax/pipeline/logging.hpp"
#include "parallax/pipeline/procfs.hpp"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

namespace parallax {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view magic = "PXSPOOL1";
constexpr std::string_view suffix = ".batch";

error sys_error(std::string_view what, const fs::path& p, int err) {
  return error{ec::system_error,
               fmt::format("{} {}: {}", what, p.string(), std::strerror(err))};
}

void put_le(std::string& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i)
    out += static_cast<char>((v >> (8 * i)) & 0xff);
}

std::uint64_t get_le(std::string_view in, std::size_t at, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i)
    v |= std::uint64_t{static_cast<unsigned char>(in[at + static_cast<std::size_t>(i)])}
         << (8 * i);
  return v;
}

error fsync_dir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return sys_error("cannot open", dir, errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0)
    return sys_error("cannot fsync", dir, err);
  return {};
}

} // namespace

error write_file_durably(const fs::path& path, std::string_view data) {
  auto tmp = path;
  tmp += ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return sys_error("cannot create", tmp, errno);
  const char* p = data.data();
  std::size_t left = data.size();
  while (left > 0) {
    auto n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return sys_error("cannot write", tmp, err);
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return sys_error("cannot fsync", tmp, err);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return sys_error("cannot rename to", path, err);
  }
  return fsync_dir(path.parent_path());
}

result<spool> spool::open(fs::path dir, std::uint64_t max_bytes) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return error{ec::system_error,
                 fmt::format("cannot create {}: {}", dir.string(), ec.message())};
  spool s{dir, max_bytes};
  for (fs::directory_iterator it{dir, ec}, end; !ec && it != end;
       it.increment(ec)) {
    auto name = it->path().filename().string();
    if (name.ends_with(".tmp")) {
      fs::remove(it->path(), ec); // a write that never completed
      ec.clear();
      continue;
    }
    if (!name.ends_with(suffix))
      continue;
    auto digits = name.substr(0, name.size() - suffix.size());
    std::uint64_t seq = 0;
    try {
      std::size_t used = 0;
      seq = std::stoull(digits, &used);
      if (used != digits.size())
        continue;
    } catch (...) {
      continue;
    }
    auto size = fs::file_size(it->path(), ec);
    if (ec)
      return error{ec::system_error, fmt::format("cannot stat {}: {}",
                                                 it->path().string(),
                                                 ec.message())};
    s.files_[seq] = size;
    s.bytes_ += size;
  }
  if (ec)
    return error{ec::system_error,
                 fmt::format("cannot list {}: {}", dir.string(), ec.message())};
  return s;
}

fs::path spool::file_of(std::uint64_t seq) const {
  return dir_ / fmt::format("{:020}{}", seq, suffix);
}

error spool::put(std::uint64_t seq, std::string_view meta,
                 std::string_view frame) {
  std::string data;
  data.reserve(magic.size() + 16 + meta.size() + frame.size());
  data += magic;
  put_le(data, seq, 8);
  put_le(data, meta.size(), 4);
  data += meta;
  put_le(data, frame.size(), 4);
  data += frame;
  if (auto err = write_file_durably(file_of(seq), data))
    return err;
  if (auto it = files_.find(seq); it != files_.end())
    bytes_ -= it->second;
  files_[seq] = data.size();
  bytes_ += data.size();
  // Drop the oldest until the bound holds again, never the newest batch.
  std::uint64_t dropped = 0, dropped_bytes = 0;
  while (bytes_ > max_bytes_ && files_.size() > 1) {
    auto oldest = files_.begin();
    dropped_bytes += oldest->second;
    ++dropped;
    std::error_code ec;
    fs::remove(file_of(oldest->first), ec);
    bytes_ -= oldest->second;
    files_.erase(oldest);
  }
  if (dropped > 0) {
    dropped_batches_ += dropped;
    dropped_bytes_ += dropped_bytes;
    log::warning("agent", "spool full ({} bytes, parallax.agent.spool-max-bytes"
                          "): dropped the {} oldest batches ({} bytes); {} "
                          "batches dropped since start",
                 max_bytes_, dropped, dropped_bytes, dropped_batches_);
  }
  return {};
}

result<spool::entry> spool::read(std::uint64_t seq) const {
  auto path = file_of(seq);
  std::string data;
  if (auto err = procfs::read_file(path, data, std::size_t{1} << 32))
    return sys_error("cannot read", path, err);
  auto bad = [&](std::string_view why) {
    return error{ec::storage_error,
                 fmt::format("spool file {} is damaged: {}", path.string(), why)};
  };
  if (data.size() < magic.size() + 12 || std::string_view{data}.substr(0, 8) != magic)
    return bad("no PXSPOOL1 header");
  entry e;
  e.sequence = get_le(data, 8, 8);
  if (e.sequence != seq)
    return bad("its sequence does not match its name");
  auto mlen = get_le(data, 16, 4);
  if (20 + mlen + 4 > data.size())
    return bad("truncated meta");
  e.meta = data.substr(20, mlen);
  auto flen = get_le(data, 20 + mlen, 4);
  if (24 + mlen + flen != data.size())
    return bad("truncated frame");
  e.frame = data.substr(24 + mlen);
  return e;
}

void spool::remove(std::uint64_t seq) {
  auto it = files_.find(seq);
  if (it == files_.end())
    return;
  std::error_code ec;
  fs::remove(file_of(seq), ec);
  bytes_ -= it->second;
  files_.erase(it);
}

std::vector<std::uint64_t> spool::sequences() const {
  std::vector<std::uint64_t> out;
  out.reserve(files_.size());
  for (const auto& [seq, size] : files_)
    out.push_back(seq);
  return out;
}

std::optional<std::uint64_t> spool::newest() const {
  if (files_.empty())
    return std::nullopt;
  return files_.rbegin()->first;
}

} // namespace parallax
