#include "parallax/storage/environment.hpp"

#include <array>
#include <fstream>
#include <cstring>
#include <system_error>

#include <fmt/format.h>
#include <lmdb.h>
#include <sys/mman.h>

namespace parallax::storage {

namespace {

// The meta database holds one record: "format" -> magic + version (u32, big
// endian). The magic tells a Parallax store from any other LMDB file.
constexpr std::string_view meta_db = "meta";
constexpr std::string_view format_key = "format";
constexpr std::array<char, 4> magic = {'P', 'L', 'X', 'S'};

std::array<char, 8> encode_format(format_version v) {
  std::array<char, 8> out{};
  std::memcpy(out.data(), magic.data(), magic.size());
  auto x = static_cast<std::uint32_t>(v);
  for (int i = 0; i < 4; ++i)
    out[4 + i] = static_cast<char>((x >> (24 - 8 * i)) & 0xff);
  return out;
}

MDB_val as_val(std::string_view s) {
  return MDB_val{s.size(), const_cast<char*>(s.data())};
}

// Writes the format record `v` (creating the meta database) in `txn`.
int put_format(MDB_txn* txn, format_version v) {
  MDB_dbi dbi;
  auto record = encode_format(v);
  auto key = as_val(format_key);
  MDB_val val{record.size(), record.data()};
  int rc = mdb_dbi_open(txn, meta_db.data(), MDB_CREATE, &dbi);
  if (rc == 0)
    rc = mdb_put(txn, dbi, &key, &val, 0);
  return rc;
}

// The same in a transaction of its own, committed.
int write_format(MDB_env* env, format_version v) {
  MDB_txn* txn = nullptr;
  if (auto rc = mdb_txn_begin(env, nullptr, 0, &txn); rc != 0)
    return rc;
  if (auto rc = put_format(txn, v); rc != 0) {
    mdb_txn_abort(txn);
    return rc;
  }
  return mdb_txn_commit(txn);
}

} // namespace

std::string describe_mdb(int rc) {
  const char* name = nullptr;
  switch (rc) {
    case MDB_MAP_FULL: name = "MDB_MAP_FULL"; break;
    case MDB_VERSION_MISMATCH: name = "MDB_VERSION_MISMATCH"; break;
    case MDB_INVALID: name = "MDB_INVALID"; break;
    case MDB_NOTFOUND: name = "MDB_NOTFOUND"; break;
    case MDB_READERS_FULL: name = "MDB_READERS_FULL"; break;
    case MDB_DBS_FULL: name = "MDB_DBS_FULL"; break;
    case MDB_CORRUPTED: name = "MDB_CORRUPTED"; break;
    default: break;
  }
  if (name)
    return fmt::format("{}: {}", name, mdb_strerror(rc));
  return mdb_strerror(rc);
}

result<environment> environment::open(const std::filesystem::path& dir,
                                      const environment_options& opts) {
  auto fail = [&](std::string what, int rc) {
    return error{ec::storage_error, fmt::format("{} ({}): {}", what,
                                                dir.string(), describe_mdb(rc))};
  };
  if (!opts.read_only) {
    std::error_code fs_err;
    std::filesystem::create_directories(dir, fs_err);
    if (fs_err)
      return error{ec::storage_error,
                   fmt::format("cannot create {}: {}", dir.string(),
                               fs_err.message())};
  } else if (!std::filesystem::exists(dir / "data.mdb")) {
    return error{ec::storage_error,
                 fmt::format("no Parallax store in {}", dir.string())};
  }
  MDB_env* env = nullptr;
  if (auto rc = mdb_env_create(&env); rc != 0)
    return fail("cannot create LMDB environment", rc);
  // From here on, every failure path must close `env`.
  auto close_and = [&](error e) {
    mdb_env_close(env);
    return e;
  };
  if (auto rc = mdb_env_set_mapsize(env, opts.map_size); rc != 0)
    return close_and(fail("cannot set map size", rc));
  if (auto rc = mdb_env_set_maxdbs(env, opts.max_dbs); rc != 0)
    return close_and(fail("cannot set max dbs", rc));
  // Not MDB_NOMEMINIT, though LMDB's zeroing of each new page's unused
  // tail is 3 % of a write's instructions: without it leftover heap bytes
  // (the HTTP token, other requests' data) could reach the file and its
  // backups.
  unsigned flags = MDB_NOTLS;
  if (opts.read_only)
    flags |= MDB_RDONLY;
  if (auto rc = mdb_env_open(env, dir.c_str(), flags, 0644); rc != 0)
    return close_and(fail("cannot open LMDB environment", rc));
  // Read the format record first, in a read transaction: a mismatch must be
  // found before anything is written.
  MDB_txn* txn = nullptr;
  if (auto rc = mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn); rc != 0)
    return close_and(fail("cannot begin read transaction", rc));
  MDB_dbi dbi;
  auto rc = mdb_dbi_open(txn, meta_db.data(), 0, &dbi);
  bool fresh = rc == MDB_NOTFOUND;
  if (rc == 0) {
    auto key = as_val(format_key);
    MDB_val val;
    rc = mdb_get(txn, dbi, &key, &val);
    if (rc == MDB_NOTFOUND) {
      fresh = true;
    } else if (rc != 0) {
      mdb_txn_abort(txn);
      return close_and(fail("cannot read the format record", rc));
    } else {
      auto bytes = static_cast<const unsigned char*>(val.mv_data);
      if (val.mv_size != 8 || std::memcmp(bytes, magic.data(), 4) != 0) {
        mdb_txn_abort(txn);
        return close_and(error{ec::storage_version,
                               fmt::format("{} holds an LMDB store that is "
                                           "not Parallax's; refusing to touch "
                                           "it",
                                           dir.string())});
      }
      std::uint32_t v = (std::uint32_t{bytes[4]} << 24)
                        | (std::uint32_t{bytes[5]} << 16)
                        | (std::uint32_t{bytes[6]} << 8) | bytes[7];
      mdb_txn_abort(txn);
      constexpr auto latest = static_cast<std::uint32_t>(format_version::latest);
      constexpr auto oldest = static_cast<std::uint32_t>(format_version::v1);
      if (v < oldest || v > latest)
        return close_and(error{
          ec::storage_version,
          fmt::format("{} holds storage format {}; this parallax reads "
                      "formats {} to {}. Nothing was changed: use {}, or "
                      "another data directory",
                      dir.string(), v, oldest, latest,
                      v > latest ? "the newer parallax that wrote it"
                                 : "a parallax of the matching version")});
      // An older format stays as it is here: store::open upgrades it when
      // it opens the store writable, in the transaction that adds what
      // the newer format needs.
      return environment{env, dir, static_cast<format_version>(v)};
    }
  } else if (rc != MDB_NOTFOUND) {
    mdb_txn_abort(txn);
    return close_and(fail("cannot open the meta database", rc));
  }
  mdb_txn_abort(txn);
  if (!fresh || opts.read_only)
    return close_and(error{ec::storage_error,
                           fmt::format("no Parallax store in {}",
                                       dir.string())});
  // A fresh store: write the format record.
  if (rc = write_format(env, format_version::latest); rc != 0)
    return close_and(fail("cannot write the format record", rc));
  return environment{env, dir, format_version::latest};
}

namespace {

// LMDB does not expose where it mapped the file (mdb_env_info's
// me_mapaddr is only set with MDB_FIXEDMAP): find data.mdb's mapping in
// /proc/self/maps.
void* find_map(const std::filesystem::path& dir) {
  std::error_code ec;
  auto file = std::filesystem::canonical(dir / "data.mdb", ec);
  if (ec)
    return nullptr;
  std::ifstream maps{"/proc/self/maps"};
  for (std::string line; std::getline(maps, line);) {
    auto slash = line.find('/');
    if (slash == std::string::npos || line.compare(slash, std::string::npos,
                                                   file.string())
                                        != 0)
      continue;
    return reinterpret_cast<void*>(std::stoull(line.substr(0, line.find('-')),
                                               nullptr, 16));
  }
  return nullptr;
}

} // namespace

std::size_t environment::release_mapped_pages() const noexcept {
  if (!env_)
    return 0;
  try {
    if (!map_)
      map_ = find_map(path_);
  } catch (...) {
    return 0;
  }
  MDB_envinfo info;
  MDB_stat st;
  if (!map_ || mdb_env_info(env_, &info) != 0 || mdb_env_stat(env_, &st) != 0)
    return 0;
  // Only the used part of the map: pages beyond the last one were never
  // touched.
  auto used = (info.me_last_pgno + 1) * static_cast<std::size_t>(st.ms_psize);
  if (::madvise(map_, used, MADV_DONTNEED) != 0)
    return 0;
  return used;
}

environment::environment(environment&& other) noexcept
  : env_{other.env_},
    path_{std::move(other.path_)},
    version_{other.version_} {
  other.env_ = nullptr;
}

environment& environment::operator=(environment&& other) noexcept {
  if (this != &other) {
    if (env_)
      mdb_env_close(env_);
    env_ = other.env_;
    path_ = std::move(other.path_);
    version_ = other.version_;
    other.env_ = nullptr;
  }
  return *this;
}

int environment::put_latest_format(MDB_txn* txn) const {
  return put_format(txn, format_version::latest);
}

void environment::mark_upgraded() noexcept {
  version_ = format_version::latest;
}

environment::~environment() {
  if (env_)
    mdb_env_close(env_);
}

} // namespace parallax::storage
