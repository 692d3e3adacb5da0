#include "parallax/storage/dir_lock.hpp"

#include <filesystem>
#include <random>

#include <doctest/doctest.h>
#include <unistd.h>

using namespace parallax;
namespace fs = std::filesystem;

TEST_CASE("storage: a data directory has one owner at a time") {
  std::random_device rd;
  auto dir = fs::temp_directory_path()
             / ("parallax-lock-" + std::to_string(rd()));
  {
    auto first = storage::dir_lock::acquire(dir / "var");
    REQUIRE(first);
    CHECK(fs::exists(dir / "var" / "LOCK"));
    // flock locks belong to the open file, so a second acquisition conflicts
    // even inside one process -- as a second server would.
    auto second = storage::dir_lock::acquire(dir / "var");
    REQUIRE_FALSE(second);
    CHECK(second.error().code == ec::storage_locked);
    CHECK(second.error().message.find(std::to_string(::getpid()))
          != std::string::npos);
  }
  // Released with the first lock.
  CHECK(storage::dir_lock::acquire(dir / "var"));
  fs::remove_all(dir);
}
