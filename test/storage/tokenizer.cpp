#include "parallax/storage/tokenizer.hpp"

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

using namespace parallax;
using storage::field_term;
using storage::max_term_bytes;
using storage::tokenize;

namespace {

// Every term `tokenize` emits, in emission order (copied: the view passed to
// the callback is only valid during the call).
std::vector<std::string> terms(std::string_view text) {
  std::vector<std::string> out;
  tokenize(text, [&](std::string_view t) { out.emplace_back(t); });
  return out;
}

using strings = std::vector<std::string>;

} // namespace

TEST_CASE("tokenizer: an sshd line yields whole tokens and their segments") {
  // Split by hand: spaces are major breakers, so the whole tokens are the
  // seven words; only "10.0.1.2" contains minor breakers ('.'), so only it
  // is followed by its segments "10", "0", "1", "2".
  CHECK(terms("Accepted publickey for deploy from 10.0.1.2 port 51122")
        == strings{"accepted", "publickey", "for", "deploy", "from",
                   "10.0.1.2", "10", "0", "1", "2", "port", "51122"});
}

TEST_CASE("tokenizer: a token with minor breakers is a term, and so is each "
          "segment") {
  // '-' is a minor breaker: the whole token, then its two segments.
  CHECK(terms("web-01") == strings{"web-01", "web", "01"});
  // '=' is a minor breaker too.
  CHECK(terms("user=deploy") == strings{"user=deploy", "user", "deploy"});
  // Runs of minor breakers produce no empty segments.
  CHECK(terms("a::b") == strings{"a::b", "a", "b"});
  // A path: '/' and '.' are minor; set comparison because "log" occurs twice
  // and how often a repeated term is emitted is not specified.
  auto path = terms("/var/log/auth.log");
  CHECK(path.front() == "/var/log/auth.log");
  CHECK(std::set<std::string>(path.begin(), path.end())
        == std::set<std::string>{"/var/log/auth.log", "var", "log", "auth"});
}

TEST_CASE("tokenizer: a token without minor breakers is emitted once") {
  CHECK(terms("deploy") == strings{"deploy"});
  CHECK(terms("a b") == strings{"a", "b"});
}

TEST_CASE("tokenizer: every major breaker splits tokens") {
  // The header's list: whitespace, brackets, quotes and `,;|!&?*+`, plus
  // every control character (0x00-0x1f and 0x7f).
  std::string majors = " []<>(){}|!;,'\"*&?+\t\n\r\x01\x1f\x7f";
  majors.push_back('\0');
  for (char c : majors) {
    std::string text = "ab";
    text.push_back(c);
    text += "cd";
    CAPTURE(static_cast<int>(static_cast<unsigned char>(c)));
    CHECK(terms(text) == strings{"ab", "cd"});
  }
}

TEST_CASE("tokenizer: every minor breaker splits segments, not tokens") {
  for (char c : std::string_view{"/:=@.-$#%\\_"}) {
    std::string whole = "ab";
    whole.push_back(c);
    whole += "cd";
    CAPTURE(c);
    CHECK(terms(whole) == strings{whole, "ab", "cd"});
  }
}

TEST_CASE("tokenizer: control characters are major breakers") {
  std::string text = "a\tb\nc\x01" "d\x7f" "e";
  text.push_back('\0');
  text += "f";
  CHECK(terms(text) == strings{"a", "b", "c", "d", "e", "f"});
  // So a term never contains a NUL byte (the index's key separator).
  for (const auto& t : terms(text))
    CHECK(t.find('\0') == std::string::npos);
}

TEST_CASE("tokenizer: empty text and breaker-only text yield nothing") {
  CHECK(terms("").empty());
  CHECK(terms("  \t\n ;;, ").empty());
}

TEST_CASE("tokenizer: ASCII is lowercased, other bytes pass through") {
  CHECK(terms("ERROR Disk FULL") == strings{"error", "disk", "full"});
  // "Größe": only 'G' is ASCII upper case; ö (c3 b6) and ß (c3 9f) stay.
  CHECK(terms("Größe") == strings{"größe"});
  // "ÄRGER": Ä (c3 84) is not ASCII, so it keeps its case; RGER is lowered.
  CHECK(terms("ÄRGER") == strings{"\xc3\x84rger"});
  CHECK(terms("café") == strings{"café"});
  // Bytes >= 0x80 are no breakers, even when they are not valid UTF-8.
  CHECK(terms("a\xff" "B c") == strings{"a\xff" "b", "c"});
  // Segments are lowercased as well.
  CHECK(terms("Web-01A") == strings{"web-01a", "web", "01a"});
}

TEST_CASE("tokenizer: terms longer than max_term_bytes are skipped") {
  REQUIRE(max_term_bytes == 128); // the documented limit the cases below use
  std::string at_limit(128, 'a');
  std::string over(129, 'a');
  CHECK(terms(at_limit) == strings{at_limit});
  CHECK(terms(over).empty());
  // Neighbours of a skipped token are still emitted.
  CHECK(terms("x " + over + " y") == strings{"x", "y"});
  // A 201-byte token (100 + '.' + 100) is skipped as a whole, but its two
  // 100-byte segments are terms.
  std::string left(100, 'l'), right(100, 'r');
  CHECK(terms(left + "." + right) == strings{left, right});
  // "x-" + 129 'a' is a 131-byte token with a 129-byte segment: neither is
  // a term, the short segment "x" is.
  CHECK(terms("x-" + over) == strings{"x"});
  // Mixed case counts bytes, not letters: 128 'A' is still a term.
  CHECK(terms(std::string(128, 'A')) == strings{at_limit});
}

TEST_CASE("tokenizer: field_term lowercases the value only") {
  CHECK(field_term("user", "Deploy") == "user=deploy");
  CHECK(field_term("User", "X") == "User=x");
  CHECK(field_term("host", "WEB-01") == "host=web-01");
  CHECK(field_term("sourcetype", "os:auth") == "sourcetype=os:auth");
  // Non-ASCII bytes of the value are kept as they are.
  CHECK(field_term("name", "ÄRGER") == "name=\xc3\x84rger");
  // An empty value still makes a term; the store skips empty values itself.
  CHECK(field_term("user", "") == "user=");
}

TEST_CASE("tokenizer: field_term rejects NUL bytes and overlong terms") {
  using namespace std::string_literals;
  CHECK(field_term("user", "de\0ploy"s).empty());
  CHECK(field_term("us\0er"s, "deploy").empty());
  // 4 ("user") + 1 ('=') + 123 = 128 bytes: exactly the limit, accepted.
  std::string v123(123, 'v');
  CHECK(field_term("user", v123) == "user=" + v123);
  // One more byte (129) is over the limit.
  CHECK(field_term("user", v123 + "v").empty());
  // The name counts as well: 124-byte name + '=' + 4-byte value = 129.
  CHECK(field_term(std::string(124, 'n'), "abcd").empty());
  CHECK(field_term(std::string(123, 'n'), "abcd").size() == 128);
}

TEST_CASE("tokenizer: field_term_into writes the term or clears the output") {
  std::string out = "previous content";
  CHECK(storage::field_term_into(out, "user", "Deploy"));
  CHECK(out == "user=deploy");
  // Reused buffer: the old term is replaced, not appended to.
  CHECK(storage::field_term_into(out, "host", "A"));
  CHECK(out == "host=a");
  // On failure it returns false and leaves `out` empty.
  using namespace std::string_literals;
  CHECK_FALSE(storage::field_term_into(out, "user", "x\0y"s));
  CHECK(out.empty());
  out = "stale";
  CHECK_FALSE(storage::field_term_into(out, "user", std::string(124, 'v')));
  CHECK(out.empty()); // 4 + 1 + 124 = 129 bytes: over the limit
}

TEST_CASE("tokenizer: consecutive calls do not see each other's terms") {
  // The term buffer is reused between calls; a long term of one call must
  // not leak into a shorter one of the next.
  CHECK(terms("abcdefghijklmnop.qrstuvwxyz")
        == strings{"abcdefghijklmnop.qrstuvwxyz", "abcdefghijklmnop",
                   "qrstuvwxyz"});
  CHECK(terms("X y") == strings{"x", "y"});
}

TEST_CASE("tokenizer: terms are lowercased and NULs found at every offset") {
  // copy_term_bytes works eight bytes at a time: each byte value at each
  // position of words and tails, against the byte-at-a-time definition.
  auto naive_lower = [](std::string s) {
    for (auto& c : s)
      if (c >= 'A' && c <= 'Z')
        c = static_cast<char>(c + 32);
    return s;
  };
  std::uint32_t seed = 12345;
  auto next = [&] {
    seed = seed * 1664525u + 1013904223u;
    return seed >> 8;
  };
  std::string out;
  for (int round = 0; round < 4000; ++round) {
    std::string value(next() % 41, 'x');
    for (auto& c : value)
      c = static_cast<char>(next() % 256);
    // Mostly letters around the case boundaries ('@', 'A', 'Z', '[', '`',
    // 'a', 'z', '{') and bytes with the high bit set.
    static constexpr unsigned char edges[]
      = {0x40, 0x41, 0x5a, 0x5b, 0x60, 0x61, 0x7a, 0x7b, 0xc1, 0xda, 0xff};
    for (auto& c : value)
      if (next() % 2 == 0)
        c = static_cast<char>(edges[next() % std::size(edges)]);
    auto has_nul = value.find('\0') != std::string::npos;
    auto ok = storage::field_term_into(out, "Name", value);
    REQUIRE(ok == !has_nul);
    if (ok) {
      CHECK(out == "Name=" + naive_lower(value)); // the name keeps its case
    } else {
      CHECK(out.empty());
    }
  }
  // Every byte value, in a word and in the tail.
  for (int b = 1; b < 256; ++b) {
    auto value = std::string(8, static_cast<char>(b)) + static_cast<char>(b);
    REQUIRE(storage::field_term_into(out, "f", value));
    CHECK(out == "f=" + naive_lower(value));
  }
  using namespace std::string_literals;
  for (std::size_t at = 0; at < 20; ++at) {
    auto value = std::string(20, 'A');
    value[at] = '\0';
    CHECK_FALSE(storage::field_term_into(out, "f", value));
    auto name = std::string(20, 'n');
    name[at] = '\0';
    CHECK_FALSE(storage::field_term_into(out, name, "v"));
  }
  // '@' is a minor breaker, '[' and '{' major ones, '`' neither.
  CHECK(terms("ABCDEFGHIJKLMNOPQRSTUVWXYZ@[`{ Mixed.CASE-Word")
        == strings{"abcdefghijklmnopqrstuvwxyz@", "abcdefghijklmnopqrstuvwxyz",
                   "`", "mixed.case-word", "mixed", "case", "word"});
}
