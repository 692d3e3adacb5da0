#include "parallax/storage/environment.hpp"
#include "parallax/storage/store.hpp"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "temp_dir.hpp"

#include <doctest/doctest.h>
#include <lmdb.h>

using namespace parallax;
namespace fs = std::filesystem;

namespace {

using parallax::test::temp_dir;

std::string slurp(const fs::path& p) {
  std::ifstream in{p, std::ios::binary};
  return {std::istreambuf_iterator<char>{in}, {}};
}

// Overwrites the format record with raw LMDB calls, as a store written by
// another Parallax version would have it.
void write_format_record(const fs::path& dir, std::string_view record) {
  MDB_env* env = nullptr;
  REQUIRE(mdb_env_create(&env) == 0);
  REQUIRE(mdb_env_set_maxdbs(env, 8) == 0);
  REQUIRE(mdb_env_open(env, dir.c_str(), 0, 0644) == 0);
  MDB_txn* txn = nullptr;
  REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
  MDB_dbi dbi;
  REQUIRE(mdb_dbi_open(txn, "meta", MDB_CREATE, &dbi) == 0);
  MDB_val key{6, const_cast<char*>("format")};
  MDB_val val{record.size(), const_cast<char*>(record.data())};
  REQUIRE(mdb_put(txn, dbi, &key, &val, 0) == 0);
  REQUIRE(mdb_txn_commit(txn) == 0);
  mdb_env_close(env);
}

} // namespace

TEST_CASE("storage: a fresh store is created with the latest format") {
  temp_dir tmp;
  auto dir = tmp.path / "store";
  {
    auto env = storage::environment::open(dir);
    REQUIRE(env);
    CHECK(env->version() == storage::format_version::latest);
    CHECK(fs::exists(dir / "data.mdb"));
  }
  // Reopening finds the record it wrote.
  auto again = storage::environment::open(dir);
  REQUIRE(again);
  CHECK(again->version() == storage::format_version::latest);
}

TEST_CASE("storage: another format version is refused and nothing changes") {
  temp_dir tmp;
  auto dir = tmp.path / "store";
  { REQUIRE(storage::environment::open(dir)); }
  // Format 7, as a future Parallax would write it.
  write_format_record(dir, std::string_view{"PLXS\0\0\0\x07", 8});
  auto before = slurp(dir / "data.mdb");
  auto env = storage::environment::open(dir);
  REQUIRE_FALSE(env);
  CHECK(env.error().code == ec::storage_version);
  CHECK(env.error().message.find("format 7") != std::string::npos);
  CHECK(env.error().message.find("Nothing was changed") != std::string::npos);
  CHECK(slurp(dir / "data.mdb") == before);
}

TEST_CASE("storage: a format 1 store opens as it is, and store::open "
          "upgrades it to 2 unless it fails") {
  temp_dir tmp;
  auto dir = tmp.path / "store";
  {
    auto env = storage::environment::open(dir);
    REQUIRE(env);
    REQUIRE(storage::store::open(*env));
  }
  write_format_record(dir, std::string_view{"PLXS\0\0\0\x01", 8});
  auto before = slurp(dir / "data.mdb");
  storage::environment_options ro;
  ro.read_only = true;
  auto version_on_disk = [&] {
    auto env = storage::environment::open(dir, ro);
    REQUIRE(env);
    return env->version();
  };
  CHECK(version_on_disk() == storage::format_version::v1);
  {
    // Writable: the environment alone changes nothing.
    auto env = storage::environment::open(dir);
    REQUIRE(env);
    CHECK(env->version() == storage::format_version::v1);
  }
  CHECK(slurp(dir / "data.mdb") == before);
  {
    // A store::open that fails (another bucket span) upgrades nothing.
    auto env = storage::environment::open(dir);
    REQUIRE(env);
    storage::store_options other;
    other.bucket_span *= 2;
    auto s = storage::store::open(*env, other);
    REQUIRE_FALSE(s);
    CHECK(s.error().code == ec::config_bad_value);
    CHECK(env->version() == storage::format_version::v1);
  }
  CHECK(version_on_disk() == storage::format_version::v1);
  {
    auto env = storage::environment::open(dir);
    REQUIRE(env);
    REQUIRE(storage::store::open(*env));
    CHECK(env->version() == storage::format_version::v2);
  }
  // The record says 2 now: an older parallax (format 1 only) refuses it
  // instead of missing what format 2 indexes in its runs table.
  CHECK(version_on_disk() == storage::format_version::v2);
  CHECK(storage::format_version::latest == storage::format_version::v2);
}

TEST_CASE("storage: a format newer than this build's is refused, naming "
          "the newer parallax") {
  temp_dir tmp;
  auto dir = tmp.path / "store";
  { REQUIRE(storage::environment::open(dir)); }
  write_format_record(dir, std::string_view{"PLXS\0\0\0\x03", 8});
  auto env = storage::environment::open(dir);
  REQUIRE_FALSE(env);
  CHECK(env.error().message.find("format 3") != std::string::npos);
  CHECK(env.error().message.find("newer parallax") != std::string::npos);
  write_format_record(dir, std::string_view{"PLXS\0\0\0\x00", 8});
  env = storage::environment::open(dir);
  REQUIRE_FALSE(env);
  CHECK(env.error().message.find("format 0") != std::string::npos);
}

TEST_CASE("storage: an LMDB store that is not Parallax's is refused") {
  temp_dir tmp;
  write_format_record(tmp.path, "something else");
  auto env = storage::environment::open(tmp.path);
  REQUIRE_FALSE(env);
  CHECK(env.error().code == ec::storage_version);
  CHECK(env.error().message.find("not Parallax's") != std::string::npos);
}

TEST_CASE("storage: read-only opening never creates a store") {
  temp_dir tmp;
  storage::environment_options opts;
  opts.read_only = true;
  auto env = storage::environment::open(tmp.path / "missing", opts);
  REQUIRE_FALSE(env);
  CHECK(env.error().code == ec::storage_error);
  CHECK_FALSE(fs::exists(tmp.path / "missing"));
  // And it does open an existing one.
  { REQUIRE(storage::environment::open(tmp.path / "store")); }
  CHECK(storage::environment::open(tmp.path / "store", opts));
}

TEST_CASE("storage: a file that is not LMDB gives LMDB's reason") {
  temp_dir tmp;
  {
    std::ofstream out{tmp.path / "data.mdb", std::ios::binary};
    out << std::string(8192, 'x');
  }
  auto env = storage::environment::open(tmp.path);
  REQUIRE_FALSE(env);
  CHECK(env.error().code == ec::storage_error);
  CHECK(env.error().message.find("MDB_INVALID") != std::string::npos);
}
