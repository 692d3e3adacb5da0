#pragma once

#include "parallax/schemas/error.hpp"

#include <filesystem>

namespace parallax::storage {

/// An exclusive advisory lock (flock) on `<dir>/LOCK`, held for the object's
/// lifetime, so that two servers never share a data directory. The file holds
/// the owner's pid for the error message the second one prints.
///
/// Caveats: flock locks belong to the open file description; a forked child
/// inherits it. The lock disappears with the process, also on kill -9.
class dir_lock {
public:
  /// Creates `dir` if needed and takes the lock, or says who holds it.
  static result<dir_lock> acquire(const std::filesystem::path& dir);

  dir_lock(dir_lock&& other) noexcept;
  dir_lock& operator=(dir_lock&& other) noexcept;
  dir_lock(const dir_lock&) = delete;
  dir_lock& operator=(const dir_lock&) = delete;
  ~dir_lock();

private:
  explicit dir_lock(int fd) : fd_{fd} {
  }
  int fd_ = -1;
};

} // namespace parallax::storage
