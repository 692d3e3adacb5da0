#pragma once

// A field of an owned event, required to be there with type T: the tests
// of the agent's samplers read their events this way.

#include "parallax/schemas/event.hpp"

#include <doctest/doctest.h>

#include <string_view>
#include <variant>

namespace parallax::test {

template <class T>
T get(const event& e, std::string_view name) {
  auto v = e.find(name);
  REQUIRE_MESSAGE(v, "field ", name, " is missing");
  REQUIRE_MESSAGE(std::holds_alternative<T>(*v), "field ", name,
                  " has type ", type_name(*v));
  return std::get<T>(*v);
}

} // namespace parallax::test
