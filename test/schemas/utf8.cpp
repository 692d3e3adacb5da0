#include "parallax/schemas/utf8.hpp"

#include <doctest/doctest.h>

#include <string>

using parallax::find_invalid_utf8;
using parallax::is_valid_utf8;

TEST_CASE("utf8: valid text of every sequence length") {
  CHECK(is_valid_utf8(""));
  CHECK(is_valid_utf8("plain ASCII, long enough for the 8-byte fast path"));
  CHECK(is_valid_utf8("caf\xc3\xa9"));              // U+00E9
  CHECK(is_valid_utf8("\xe2\x82\xac"));             // U+20AC
  CHECK(is_valid_utf8("\xef\xbf\xbf"));             // U+FFFF
  CHECK(is_valid_utf8("\xf0\x9f\x98\x80"));         // U+1F600
  CHECK(is_valid_utf8("\xf4\x8f\xbf\xbf"));         // U+10FFFF, the last
}

TEST_CASE("utf8: invalid sequences are found at their first byte") {
  CHECK(find_invalid_utf8("ab\x80") == 2);          // lone continuation
  CHECK(find_invalid_utf8("\xc0\xaf") == 0);        // overlong '/'
  CHECK(find_invalid_utf8("\xc1\xbf") == 0);        // overlong
  CHECK(find_invalid_utf8("\xe0\x80\xaf") == 0);    // overlong 3-byte
  CHECK(find_invalid_utf8("\xed\xa0\x80") == 0);    // surrogate U+D800
  CHECK(find_invalid_utf8("\xf0\x80\x80\xaf") == 0);// overlong 4-byte
  CHECK(find_invalid_utf8("\xf4\x90\x80\x80") == 0);// above U+10FFFF
  CHECK(find_invalid_utf8("\xf5\x80\x80\x80") == 0);
  CHECK(find_invalid_utf8("abcdefghij\xc3") == 10); // truncated at the end
  CHECK(find_invalid_utf8("\xe2\x82") == 0);        // truncated 3-byte
  CHECK(find_invalid_utf8("\xe2\x28\xa1") == 0);    // bad second byte
  CHECK(find_invalid_utf8("12345678\xff") == 8);    // after the fast path
}

TEST_CASE("utf8: the inline ASCII check sees a high bit anywhere, up to 64 "
          "bytes") {
  using parallax::is_short_ascii;
  CHECK(is_short_ascii(""));
  CHECK(is_short_ascii("window_start"));
  std::string s(64, 'a');
  CHECK(is_short_ascii(s));
  // Every position: in the 8-byte words and in the tail.
  for (std::size_t n : {1u, 7u, 8u, 9u, 15u, 16u, 63u, 64u})
    for (std::size_t i = 0; i < n; ++i) {
      std::string t(n, 'x');
      t[i] = '\xc3';
      CHECK_FALSE(is_short_ascii(t));
      // Not ASCII, so decoded: a lone lead byte is invalid.
      CHECK_FALSE(is_valid_utf8(t));
    }
  // Longer than 64: not checked inline; still valid UTF-8.
  std::string longer(65, 'a');
  CHECK_FALSE(is_short_ascii(longer));
  CHECK(is_valid_utf8(longer));
  CHECK_FALSE(is_valid_utf8(longer + "\xff"));
}
