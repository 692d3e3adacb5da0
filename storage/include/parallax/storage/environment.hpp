#pragma once

// The LMDB environment that holds a Parallax store, with its format version.
//
// Caveats (LMDB's rules, which every user of this class must keep):
// - The environment is opened with MDB_NOTLS: read transactions are not tied
//   to a thread's local storage, so a reader may run on any CAF worker, but
//   one transaction must still be used by one thread at a time, and must be
//   begun and ended inside one message handler.
// - At most one write transaction exists at a time, per process and across
//   processes. The writer should own a thread (a detached actor).
// - Do not open the same environment twice in one process (lmdb.h, Caveats).

#include "parallax/schemas/error.hpp"

#include <cstdint>
#include <filesystem>
#include <string>

struct MDB_env;
struct MDB_txn;

namespace parallax::storage {

/// The on-disk format of a store. Bump `latest` whenever a persisted layout
/// changes; a reader that meets a version it does not know refuses to
/// touch the data.
///
/// v2 added the `runs` table (postings of large writes, see store.cpp): a
/// v1 reader would miss every event indexed there, so it must refuse v2.
/// This build reads v1 as it is, and store::open upgrades a v1 store it
/// opens writable: the empty runs table and the new record, in one
/// transaction.
enum class format_version : std::uint32_t {
  invalid = 0,
  v1 = 1,
  v2 = 2,
  latest = v2,
};

struct environment_options {
  /// Upper bound of the memory map, hence of the store (LMDB's map size).
  std::uint64_t map_size = std::uint64_t{64} << 30;
  /// Maximum number of named databases.
  unsigned max_dbs = 256;
  /// Open read-only: never creates or modifies anything.
  bool read_only = false;
};

/// Renders an LMDB return code as "MDB_MAP_FULL: Environment mapsize limit
/// reached" and the like.
std::string describe_mdb(int rc);

/// An open LMDB environment whose format version was checked.
class environment {
public:
  /// Opens (and, unless read-only, creates) the store in `dir`. Fails with
  /// `storage_version` if the store has a format this build does not read
  /// (nothing changed on disk); an older one it reads is left as it is
  /// (version() says which; store::open upgrades it).
  static result<environment> open(const std::filesystem::path& dir,
                                  const environment_options& opts = {});

  environment(environment&& other) noexcept;
  environment& operator=(environment&& other) noexcept;
  environment(const environment&) = delete;
  environment& operator=(const environment&) = delete;
  ~environment();

  /// The raw handle, for the storage layer's own transactions.
  MDB_env* handle() const noexcept {
    return env_;
  }

  const std::filesystem::path& path() const noexcept {
    return path_;
  }

  format_version version() const noexcept {
    return version_;
  }

  /// For store::open's upgrade of an older store: puts the latest format
  /// record in `txn`, a write transaction on this environment, and, once
  /// that committed, mark_upgraded() makes version() say so.
  int put_latest_format(MDB_txn* txn) const;
  void mark_upgraded() noexcept;

  /// Drops this process's page-table mappings of the store (madvise
  /// MADV_DONTNEED on LMDB's shared, read-only file map). The data stays in
  /// the kernel's page cache; the next access maps a page again with a minor
  /// fault. Why: copy-on-write gives the B-tree pages a commit changes new
  /// page numbers, so the hot pages wander through the whole file, and
  /// every page ever read stays mapped and counts in RSS, which then grows
  /// with the store. Safe with concurrent readers: a shared file mapping
  /// loses no data. Returns the bytes released.
  std::size_t release_mapped_pages() const noexcept;

private:
  environment(MDB_env* env, std::filesystem::path path, format_version v)
    : env_{env}, path_{std::move(path)}, version_{v} {
  }
  MDB_env* env_ = nullptr;
  std::filesystem::path path_;
  mutable void* map_ = nullptr; ///< found on first release_mapped_pages
  format_version version_ = format_version::invalid;
};

} // namespace parallax::storage
