#include "parallax/storage/dir_lock.hpp"

#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <fmt/format.h>

namespace parallax::storage {

result<dir_lock> dir_lock::acquire(const std::filesystem::path& dir) {
  std::error_code fs_err;
  std::filesystem::create_directories(dir, fs_err);
  if (fs_err)
    return error{ec::storage_error,
                 fmt::format("cannot create data directory {}: {}",
                             dir.string(), fs_err.message())};
  auto path = dir / "LOCK";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return error{ec::storage_error, fmt::format("cannot open {}: {}",
                                                path.string(),
                                                std::strerror(errno))};
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    auto why = errno;
    char buf[32] = {};
    auto n = ::pread(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    if (why == EWOULDBLOCK) {
      auto owner = n > 0 ? std::string{buf, static_cast<std::size_t>(n)}
                         : std::string{"unknown"};
      while (!owner.empty() && (owner.back() == '\n' || owner.back() == ' '))
        owner.pop_back();
      return error{ec::storage_locked,
                   fmt::format("data directory {} is in use by process {}",
                               dir.string(), owner)};
    }
    return error{ec::storage_error,
                 fmt::format("cannot lock {}: {}", path.string(),
                             std::strerror(why))};
  }
  auto pid = fmt::format("{}\n", ::getpid());
  if (::ftruncate(fd, 0) != 0
      || ::pwrite(fd, pid.data(), pid.size(), 0)
           != static_cast<ssize_t>(pid.size())) {
    auto why = errno;
    ::close(fd);
    return error{ec::storage_error, fmt::format("cannot write {}: {}",
                                                path.string(),
                                                std::strerror(why))};
  }
  return dir_lock{fd};
}

dir_lock::dir_lock(dir_lock&& other) noexcept : fd_{other.fd_} {
  other.fd_ = -1;
}

dir_lock& dir_lock::operator=(dir_lock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

dir_lock::~dir_lock() {
  if (fd_ >= 0)
    ::close(fd_); // releases the flock
}

} // namespace parallax::storage
