#include "parallax/pipeline/query_protocol.hpp"

#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace parallax::search::protocol {

namespace {

// Objects keep their keys in document order: a row's columns are ordered.
using json = nlohmann::ordered_json;

json value_json(const val& v) {
  if (auto d = std::get_if<double>(&v)) {
    // Integral numbers print without ".0"; others with round-trip digits.
    if (std::isfinite(*d) && std::trunc(*d) == *d && std::fabs(*d) < 9.2e18)
      return static_cast<std::int64_t>(*d);
    if (!std::isfinite(*d))
      return nullptr;
    return *d;
  }
  if (auto s = std::get_if<std::string>(&v))
    return *s;
  if (auto m = std::get_if<multi>(&v))
    return *m;
  return nullptr;
}

std::optional<val> json_value(const json& j) {
  if (j.is_null())
    return val{};
  if (j.is_number())
    return val{j.get<double>()};
  if (j.is_string())
    return val{j.get<std::string>()};
  if (j.is_boolean())
    return val{std::string{j.get<bool>() ? "true" : "false"}};
  if (j.is_array()) {
    multi m;
    for (const auto& e : j) {
      if (!e.is_string())
        return std::nullopt;
      m.push_back(e.get<std::string>());
    }
    return val{std::move(m)};
  }
  return std::nullopt;
}

error bad(std::string msg) {
  return error{ec::usage, std::move(msg)};
}

std::optional<std::string> string_or_number(const json& j) {
  if (j.is_string())
    return j.get<std::string>();
  if (j.is_number_integer())
    return std::to_string(j.get<std::int64_t>());
  if (j.is_number())
    return fmt::format("{}", j.get<double>());
  return std::nullopt;
}

} // namespace

std::string row_json(const row& r) {
  // Written by hand so that columns keep their order.
  std::string out = "{";
  bool first = true;
  for (const auto& [name, v] : r.cells) {
    if (!first)
      out += ',';
    first = false;
    out += json(name).dump(-1, ' ', false, json::error_handler_t::replace);
    out += ':';
    out += value_json(v).dump(-1, ' ', false, json::error_handler_t::replace);
  }
  return out + "}";
}

result<request> parse_request(std::string_view text) {
  auto j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return bad("a request is one JSON object");
  request r;
  auto op = j.find("op");
  if (op == j.end() || !op->is_string())
    return bad("\"op\" must be \"search\", \"fetch\" or \"cancel\"");
  r.op = op->get<std::string>();
  if (r.op == "search") {
    auto q = j.find("query");
    if (q == j.end() || !q->is_string())
      return bad("\"query\" must be a string");
    r.query = q->get<std::string>();
    for (auto [key, out] : {std::pair{"earliest", &r.earliest},
                            std::pair{"latest", &r.latest}}) {
      auto t = j.find(key);
      if (t == j.end() || t->is_null())
        continue;
      auto s = string_or_number(*t);
      if (!s)
        return bad(fmt::format("\"{}\" must be a time string or epoch "
                               "seconds",
                               key));
      *out = std::move(*s);
    }
    if (auto l = j.find("limit"); l != j.end() && !l->is_null()) {
      if (!l->is_number_unsigned() || l->get<std::uint64_t>() == 0)
        return bad("\"limit\" must be a positive integer");
      r.limit = l->get<std::uint64_t>();
    }
    if (auto a = j.find("async"); a != j.end() && !a->is_null()) {
      if (!a->is_boolean())
        return bad("\"async\" must be true or false");
      r.async = a->get<bool>();
    }
    return r;
  }
  if (r.op == "fetch" || r.op == "cancel") {
    auto id = j.find("id");
    if (id == j.end() || !id->is_string())
      return bad(fmt::format("\"{}\" needs the job's \"id\" (a string)",
                             r.op));
    r.id = id->get<std::string>();
    return r;
  }
  return bad(fmt::format("unknown op \"{}\"; expected \"search\", \"fetch\" "
                         "or \"cancel\"",
                         r.op));
}

std::string render_request(const request& r) {
  auto j = json::object();
  j["op"] = r.op;
  if (r.op == "search") {
    j["query"] = r.query;
    if (r.earliest)
      j["earliest"] = *r.earliest;
    if (r.latest)
      j["latest"] = *r.latest;
    if (r.limit)
      j["limit"] = *r.limit;
    j["async"] = r.async;
  } else {
    j["id"] = r.id;
  }
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

result<reply> parse_reply(std::string_view text) {
  auto j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return error{ec::wrong_type, "a reply is one JSON object"};
  reply r;
  auto type = j.find("type");
  if (type == j.end() || !type->is_string())
    return error{ec::wrong_type, "a reply needs a \"type\""};
  r.type = type->get<std::string>();
  if (auto id = j.find("id"); id != j.end() && id->is_string())
    r.id = id->get<std::string>();
  if (auto e = j.find("events"); e != j.end() && e->is_boolean())
    r.events = e->get<bool>();
  if (r.type == "rows") {
    auto rows = j.find("rows");
    if (rows == j.end() || !rows->is_array())
      return error{ec::wrong_type, "\"rows\" must be an array"};
    for (const auto& o : *rows) {
      if (!o.is_object())
        return error{ec::wrong_type, "a row must be an object"};
      row out;
      for (const auto& [k, v] : o.items()) {
        auto value = json_value(v);
        if (!value)
          return error{ec::wrong_type,
                       fmt::format("column \"{}\": not a value", k)};
        out.cells.emplace_back(k, std::move(*value));
      }
      r.rows.push_back(std::move(out));
    }
  } else if (r.type == "done") {
    if (auto c = j.find("columns"); c != j.end() && c->is_array())
      for (const auto& e : *c)
        if (e.is_string())
          r.columns.push_back(e.get<std::string>());
    if (auto s = j.find("stats"); s != j.end() && s->is_object()) {
      auto get = [&](const char* key) -> std::uint64_t {
        auto v = s->find(key);
        return v != s->end() && v->is_number_unsigned()
                 ? v->get<std::uint64_t>()
                 : 0;
      };
      r.stats.buckets = get("buckets");
      r.stats.buckets_from_tuples = get("buckets_from_tuples");
      r.stats.buckets_from_rollups = get("buckets_from_rollups");
      r.stats.buckets_from_postings = get("buckets_from_postings");
      r.stats.buckets_scanned = get("buckets_scanned");
      r.stats.events_read = get("events_read");
      r.stats.events_matched = get("events_matched");
    }
  } else if (r.type == "error") {
    r.err.code = ec::system_error;
    if (auto c = j.find("code"); c != j.end() && c->is_string()) {
      auto name = c->get<std::string>();
      for (int i = 1; i <= static_cast<int>(ec::last); ++i)
        if (to_string(static_cast<ec>(i)) == name)
          r.err.code = static_cast<ec>(i);
    }
    if (auto m = j.find("message"); m != j.end() && m->is_string())
      r.err.message = m->get<std::string>();
    if (auto c = j.find("column"); c != j.end() && c->is_number_unsigned())
      r.err.offset = c->get<std::size_t>();
  }
  return r;
}

std::string rows_reply(std::span<const row> rows, bool events) {
  std::string out = "{\"type\":\"rows\",\"rows\":[";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (i)
      out += ',';
    out += row_json(rows[i]);
  }
  return out + (events ? "],\"events\":true}" : "],\"events\":false}");
}

std::string counters_json(const counters& c) {
  return fmt::format("{{\"buckets\":{},\"buckets_from_tuples\":{},"
                     "\"buckets_from_rollups\":{},"
                     "\"buckets_from_postings\":{},\"buckets_scanned\":{},"
                     "\"events_read\":{},\"events_matched\":{}}}",
                     c.buckets, c.buckets_from_tuples, c.buckets_from_rollups,
                     c.buckets_from_postings, c.buckets_scanned,
                     c.events_read, c.events_matched);
}

std::string done_reply(const std::vector<std::string>& columns,
                       const counters& stats, bool events) {
  return fmt::format("{{\"type\":\"done\",\"columns\":{},\"stats\":{},"
                     "\"events\":{}}}",
                     json(columns).dump(-1, ' ', false,
                                        json::error_handler_t::replace),
                     counters_json(stats), events ? "true" : "false");
}

std::string error_reply(const error& e) {
  auto j = json::object();
  j["type"] = "error";
  j["code"] = std::string{to_string(e.code)};
  if (e.offset != no_offset)
    j["column"] = e.offset;
  j["message"] = e.message;
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string job_reply(std::string_view type, std::string_view id) {
  auto j = json::object();
  j["type"] = std::string{type};
  j["id"] = std::string{id};
  return j.dump();
}

} // namespace parallax::search::protocol
