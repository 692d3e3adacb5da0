#pragma once

// The search endpoint's messages (docs/search.md, "The search endpoint"):
// JSON text, one message part each, between a DEALER client and the
// server's ROUTER socket. Shared by the endpoint (actors/search.hpp) and
// `parallax search`, which also prints rows with `row_json` in --format json.
//
// Requests:  {"op":"search","query":Q,"earliest":T,"latest":T,"limit":N,
//             "async":B} | {"op":"fetch","id":I} | {"op":"cancel","id":I}
// Replies:   {"type":"rows","rows":[{...}],"events":B}  zero or more, then
//            {"type":"done","columns":[...],"stats":{...},"events":B}
//            {"type":"error","code":C,"column":N,"message":M}
//            {"type":"job","id":I} | {"type":"running","id":I}
//            {"type":"cancelled","id":I}
//
// Values: numbers are JSON numbers (integral ones without a fraction), text
// is a string, several values an array of strings, null is null. Text that
// looks like a number stays a string, so a row survives the round trip.

#include "parallax/pipeline/search.hpp"
#include "parallax/schemas/error.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace parallax::search::protocol {

struct request {
  std::string op;                      ///< search, fetch, cancel
  std::string query;                   ///< search
  std::optional<std::string> earliest; ///< search: parse_time syntax
  std::optional<std::string> latest;   ///< search: parse_time syntax
  std::optional<std::uint64_t> limit;  ///< search: at most max-results
  bool async = false;                  ///< search
  std::string id;                      ///< fetch, cancel
};

/// Parses a request; a malformed one is an error with code `usage` saying
/// what was wrong.
result<request> parse_request(std::string_view json);
std::string render_request(const request& r);

/// A reply as a client sees it.
struct reply {
  std::string type;  ///< rows, done, error, job, running, cancelled
  std::vector<row> rows;              ///< rows
  bool events = false;                ///< rows, done: the rows are events
  std::vector<std::string> columns;   ///< done
  counters stats;                     ///< done
  error err;                          ///< error (offset: the column)
  std::string id;                     ///< job, running, cancelled
};

result<reply> parse_reply(std::string_view json);

/// A row as one JSON object, columns in order.
std::string row_json(const row& r);

/// `events`: the rows are events (a client may print them as they come).
std::string rows_reply(std::span<const row> rows, bool events);
std::string done_reply(const std::vector<std::string>& columns,
                       const counters& stats, bool events);
/// `column` is e.offset when set (bad_query), else absent.
std::string error_reply(const error& e);
std::string job_reply(std::string_view type, std::string_view id);

/// The counters as a JSON object ("buckets", "buckets_from_tuples", ...).
std::string counters_json(const counters& c);

} // namespace parallax::search::protocol
