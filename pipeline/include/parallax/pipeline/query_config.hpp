#pragma once

// The search engine's view of the configuration: the late-binding schema
// from every `[parallax.sourcetypes."NAME"]` table's `extract`,
// `field-aliases` and `calculated` keys, and the bounds of
// `[parallax.search]`. Kept apart from config.hpp so that only the users of
// search include its header.

#include "parallax/pipeline/config.hpp"
#include "parallax/pipeline/search.hpp"

namespace parallax {

/// Every sourcetype's search-time rules, compiled, with `late_fields` holding
/// every field a rule defines (extracted group names, aliases, calculated
/// names). The rules were checked when the config was loaded; a sourcetype
/// whose rules fail to compile anyway is left out.
search::schema search_schema_of(const config& cfg);

/// Options for a query under `cfg`: max-results, max-memory, timeout and
/// the late-binding schema. The time range is left open.
search::options search_options_of(const config& cfg);

} // namespace parallax
