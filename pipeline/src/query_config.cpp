#include "parallax/pipeline/query_config.hpp"

#include <re2/re2.h>

namespace parallax {

search::schema search_schema_of(const config& cfg) {
  search::schema out;
  for (const auto& st : cfg.sourcetypes) {
    if (st.extract.empty() && st.field_aliases.empty()
        && st.calculated.empty())
      continue;
    auto rules = search::compile_late_rules(st.name, st.extract,
                                            st.field_aliases, st.calculated);
    if (!rules)
      continue; // load_config reported it already
    for (const auto& re : rules->extract)
      if (re)
        for (const auto& [name, index] : re->NamedCapturingGroups())
          out.late_fields.insert(name);
    for (const auto& [existing, alias] : rules->aliases)
      out.late_fields.insert(alias);
    for (const auto& [name, expression] : rules->calculated)
      out.late_fields.insert(name);
    out.rules.push_back(std::move(*rules));
  }
  return out;
}

search::options search_options_of(const config& cfg) {
  search::options o;
  o.max_results = static_cast<std::size_t>(cfg.search.max_results);
  o.max_memory = static_cast<std::size_t>(cfg.search.max_memory);
  o.timeout = cfg.search.timeout;
  o.late = search_schema_of(cfg);
  return o;
}

} // namespace parallax
