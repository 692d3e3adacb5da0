#include "parallax/pipeline/rates.hpp"

#include <doctest/doctest.h>

using namespace parallax;

TEST_CASE("rates: per-second rate from the previous sample") {
  rate_tracker r;
  CHECK_FALSE(r.update("a", 1'000'000'000, 100));
  auto v = r.update("a", 3'000'000'000, 300);
  REQUIRE(v);
  CHECK(*v == doctest::Approx(100.0));
}

TEST_CASE("rates: a counter that goes backwards restarts, never negative") {
  rate_tracker r;
  r.update("a", 1'000'000'000, 5000);
  CHECK_FALSE(r.update("a", 2'000'000'000, 10)); // domain restarted
  auto v = r.update("a", 3'000'000'000, 30);
  REQUIRE(v);
  CHECK(*v == doctest::Approx(20.0));
}

TEST_CASE("rates: repeated or older timestamps give no rate and keep the "
          "newer sample") {
  rate_tracker r;
  r.update("a", 2'000'000'000, 10);
  CHECK_FALSE(r.update("a", 2'000'000'000, 20));
  CHECK_FALSE(r.update("a", 1'000'000'000, 0));
  auto v = r.update("a", 4'000'000'000, 30);
  REQUIRE(v);
  CHECK(*v == doctest::Approx(10.0));
}

TEST_CASE("rates: series are independent and expire") {
  rate_tracker r;
  r.update("a", 1, 1);
  r.update("b", 100, 1);
  CHECK(r.size() == 2);
  r.expire_before(50);
  CHECK(r.size() == 1);
  CHECK_FALSE(r.update("a", 200, 5)); // forgotten: a first sample again
}
