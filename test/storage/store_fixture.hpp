#pragma once

// A real store in a temporary directory for the storage tests, written
// one batch at a time as the pipeline does (encoded, decoded, written).

#include "parallax/schemas/wire.hpp"
#include "parallax/storage/environment.hpp"
#include "parallax/storage/store.hpp"

#include "temp_dir.hpp"

#include <doctest/doctest.h>

#include <optional>
#include <span>
#include <string>
#include <vector>

namespace parallax::test {

/// The value of `r`, which must hold one (else the test stops, saying why).
template <class T>
T ok(result<T> r) {
  INFO((r ? std::string{} : r.error().render()));
  REQUIRE(r);
  return std::move(*r);
}

struct store_fixture {
  temp_dir tmp;
  std::optional<storage::environment> env;
  std::optional<storage::store> st;
  std::uint64_t seq = 0;

  explicit store_fixture(storage::store_options so = {}) {
    env.emplace(ok(storage::environment::open(tmp.path / "store")));
    st.emplace(ok(storage::store::open(*env, so)));
  }

  /// Writes `evs` as one batch of source "src" with the next sequence.
  void write(const std::vector<event>& evs) {
    auto v = wire::decode(wire::encode(wire::batch{"src", ++seq, evs}));
    REQUIRE(v);
    storage::incoming_batch in{v->source_id(), v->sequence(), v->events()};
    (void)ok(st->write(std::span{&in, 1}));
  }
};

} // namespace parallax::test
