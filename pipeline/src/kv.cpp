#include "parallax/pipeline/kv.hpp"

namespace parallax {

bool parse_kv_mode(std::string_view s, kv_mode& out) {
  if (s == "none")
    out = kv_mode::none;
  else if (s == "equals")
    out = kv_mode::equals;
  else if (s == "auto")
    out = kv_mode::automatic;
  else
    return false;
  return true;
}

} // namespace parallax
