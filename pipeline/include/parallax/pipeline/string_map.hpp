#pragma once

// Hash maps keyed by std::string that look up by std::string_view without
// building a string first: the correlation's per-event lookups (VM UUIDs,
// source ids, MACs) stay free of allocations.

#include "parallax/schemas/hash.hpp"

#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace parallax {

// string_hash: schemas/hash.hpp.
template <class T>
using string_map
  = std::unordered_map<std::string, T, string_hash, std::equal_to<>>;

/// A set of strings looked up by std::string_view.
using string_set
  = std::unordered_set<std::string, string_hash, std::equal_to<>>;

/// The entry for `key`, default-constructed on first use: operator[] for a
/// string_view key, allocating only when the key is new.
template <class T>
T& entry(string_map<T>& map, std::string_view key) {
  auto it = map.find(key);
  if (it == map.end())
    it = map.emplace(std::string{key}, T{}).first;
  return it->second;
}

} // namespace parallax
