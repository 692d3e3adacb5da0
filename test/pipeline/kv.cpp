#include "parallax/pipeline/kv.hpp"

#include <utility>
#include <vector>

#include <doctest/doctest.h>

using namespace parallax;

namespace {

using pairs = std::vector<std::pair<std::string, std::string>>;

pairs kv(std::string_view text, kv_mode mode = kv_mode::automatic) {
  pairs out;
  extract_kv(text, mode, [&](std::string_view k, std::string_view v) {
    out.emplace_back(std::string{k}, std::string{v});
  });
  return out;
}

} // namespace

TEST_CASE("kv: a=b, quoted values and a: b") {
  CHECK(kv("user=alice action=login src=10.0.1.2")
        == pairs{{"user", "alice"}, {"action", "login"}, {"src", "10.0.1.2"}});
  CHECK(kv(R"(msg="disk full" path="/var/lib/x \"y\"" ok=1)")
        == pairs{{"msg", "disk full"}, {"path", "/var/lib/x \"y\""}, {"ok", "1"}});
  CHECK(kv("status: degraded, reason: fan") 
        == pairs{{"status", "degraded"}, {"reason", "fan"}});
  CHECK(kv("a=1,b=2;c=3)") == pairs{{"a", "1"}, {"b", "2"}, {"c", "3"}});
}

TEST_CASE("kv: modes and what is not a pair") {
  CHECK(kv("status: degraded x=1", kv_mode::equals) == pairs{{"x", "1"}});
  CHECK(kv("x=1", kv_mode::none).empty());
  CHECK(kv("2026-11-25T20:18:30Z 20:18:30").empty()); // keys start with a letter
  CHECK(kv("sshd[2211]: Accepted").empty());          // not a key: sshd[2211]
  CHECK(kv("empty= x=\"\" http://host/").empty());    // empty values, URLs
  CHECK(kv("mid-word=1 a.b-c_d=2") == pairs{{"mid-word", "1"}, {"a.b-c_d", "2"}});
  CHECK(kv("abc" + std::string(70, 'x') + "=1").empty()); // key > 64 bytes
  CHECK(kv("unterminated=\"abc").empty());
}
