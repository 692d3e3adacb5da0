#include "parallax/pipeline/collectd.hpp"

#include "parallax/pipeline/timestamp.hpp"
#include "parallax/schemas/identity.hpp"

#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace parallax {

namespace {

using json = nlohmann::json;

error bad(std::size_t i, std::string_view what) {
  return error{ec::invalid_value,
               fmt::format("collectd JSON: element {}: {}", i, what)};
}

// A string member, or nullptr when absent or not a string.
const std::string* string_member(const json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || !it->is_string())
    return nullptr;
  return &it->get_ref<const std::string&>();
}

result<event> value_list(const json& v, std::size_t i, time_ns received,
                         rate_tracker& rates) {
  auto values = v.find("values");
  auto dstypes = v.find("dstypes");
  auto dsnames = v.find("dsnames");
  if (values == v.end() || dstypes == v.end() || dsnames == v.end()
      || !values->is_array() || !dstypes->is_array() || !dsnames->is_array())
    return bad(i, "a value list needs the arrays values, dstypes and "
                  "dsnames");
  if (values->size() != dstypes->size() || values->size() != dsnames->size())
    return bad(i, fmt::format("values, dstypes and dsnames differ in length "
                              "({}, {}, {})",
                              values->size(), dstypes->size(),
                              dsnames->size()));
  const std::string* names[5] = {};
  const char* keys[5] = {"host", "plugin", "plugin_instance", "type",
                         "type_instance"};
  for (int k = 0; k < 5; ++k) {
    names[k] = string_member(v, keys[k]);
    if (!names[k])
      return bad(i, fmt::format("\"{}\" must be a string", keys[k]));
  }
  const auto& [host, plugin, plugin_instance, type, type_instance] = names;
  if (host->empty() || plugin->empty() || type->empty())
    return bad(i, "host, plugin and type must not be empty");
  auto time = v.find("time");
  if (time == v.end() || !time->is_number())
    return bad(i, "\"time\" must be a number (seconds since the epoch)");
  auto seconds = time->get<double>();
  if (!(seconds >= 0 && seconds < 9.2e9))
    return bad(i, fmt::format("\"time\" {} is out of range", seconds));
  event e;
  // collectd prints times with millisecond digits; rounding to whole
  // microseconds keeps them exact (a double holds 2^53 > 10^15 us).
  e.time = seconds > 0
             ? static_cast<time_ns>(std::llround(seconds * 1e6)) * 1000
             : received;
  e.host = *host;
  e.source = fmt::format("collectd:{}", *plugin);
  e.sourcetype = std::string{collectd_sourcetype};
  auto add = [&](std::string n, value x) {
    e.fields.push_back({std::move(n), std::move(x)});
  };
  add("plugin", *plugin);
  add("plugin_instance", *plugin_instance);
  add("type", *type);
  add("type_instance", *type_instance);
  if (auto interval = v.find("interval");
      interval != v.end() && interval->is_number())
    add("interval_s", interval->get<double>());
  if (*plugin == "virt" && !plugin_instance->empty())
    add("vm_name", *plugin_instance);
  if (auto mac = normalize_mac(*type_instance))
    add("mac", *mac);
  auto series = fmt::format("{}/{}-{}/{}-{}", *host, *plugin, *plugin_instance,
                            *type, *type_instance);
  for (std::size_t k = 0; k < values->size(); ++k) {
    const auto& name = (*dsnames)[k];
    const auto& kind = (*dstypes)[k];
    const auto& x = (*values)[k];
    if (!name.is_string() || name.get_ref<const std::string&>().empty()
        || name.get_ref<const std::string&>().front() == '_')
      return bad(i, fmt::format("dsnames[{}] must be a non-empty string not "
                                "starting with '_'",
                                k));
    if (!kind.is_string())
      return bad(i, fmt::format("dstypes[{}] must be a string", k));
    const auto& ds = name.get_ref<const std::string&>();
    const auto& dstype = kind.get_ref<const std::string&>();
    if (dstype != "gauge" && dstype != "derive" && dstype != "counter"
        && dstype != "absolute")
      return bad(i, fmt::format("dstypes[{}] \"{}\" is not gauge, derive, "
                                "counter or absolute",
                                k, dstype));
    if (x.is_null())
      continue; // collectd writes NaN (unknown) as null
    if (!x.is_number())
      return bad(i, fmt::format("values[{}] must be a number or null", k));
    if (ds == "plugin" || ds == "plugin_instance" || ds == "type"
        || ds == "type_instance" || ds == "interval_s" || ds == "vm_name"
        || ds == "mac")
      return bad(i, fmt::format("dsnames[{}] \"{}\" collides with a field "
                                "Parallax sets",
                                k, ds));
    if (x.is_number_integer() || x.is_number_unsigned()) {
      if (x.is_number_unsigned()
          && x.get<std::uint64_t>()
               > static_cast<std::uint64_t>(INT64_MAX))
        add(ds, x.get<double>());
      else
        add(ds, x.get<std::int64_t>());
    } else {
      add(ds, x.get<double>());
    }
    if (dstype == "derive" || dstype == "counter")
      if (auto r = rates.update(series + "/" + ds, e.time, x.get<double>()))
        add(ds + "_per_s", *r);
  }
  return e;
}

result<event> notification(const json& v, std::size_t i, time_ns received) {
  auto labels = v.find("labels");
  if (!labels->is_object())
    return bad(i, "\"labels\" must be an object");
  event e;
  e.time = received;
  if (auto at = string_member(v, "startsAt"))
    if (auto t = extract_time(*at, time_format{time_format::rfc3339, {}},
                              received))
      e.time = t->time;
  e.sourcetype = std::string{collectd_notification_sourcetype};
  e.source = "collectd:notification";
  std::string summary;
  auto copy = [&](const json& obj, const char* what) -> error {
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      if (!it.value().is_string())
        return bad(i, fmt::format("{}.{} must be a string", what, it.key()));
      if (it.key().empty() || it.key().front() == '_')
        return bad(i, fmt::format("{} has an empty or '_' name", what));
      const auto& s = it.value().get_ref<const std::string&>();
      if (it.key() == "instance")
        e.host = s;
      if (it.key() == "summary")
        summary = s;
      e.fields.push_back({it.key(), s});
    }
    return {};
  };
  if (auto err = copy(*labels, "labels"))
    return err;
  if (auto ann = v.find("annotations"); ann != v.end()) {
    if (!ann->is_object())
      return bad(i, "\"annotations\" must be an object");
    if (auto err = copy(*ann, "annotations"))
      return err;
  }
  if (auto virt = e.find("virt"); virt && std::get_if<std::string>(virt))
    e.fields.push_back({"vm_name", *virt});
  e.raw = summary;
  return e;
}

} // namespace

result<std::vector<event>> collectd_converter::convert(std::string_view body,
                                                       time_ns received) {
  auto doc = json::parse(body, nullptr, false);
  if (doc.is_discarded())
    return error{ec::invalid_value,
                 "collectd JSON: the body is not valid JSON"};
  if (!doc.is_array())
    return error{ec::invalid_value,
                 "collectd JSON: the body must be an array of value lists"};
  // Convert into a copy of the rate state, so a rejected body leaves no
  // trace.
  auto rates = rates_;
  std::vector<event> out;
  out.reserve(doc.size());
  for (std::size_t i = 0; i < doc.size(); ++i) {
    const auto& v = doc[i];
    if (!v.is_object())
      return bad(i, "not an object");
    auto e = v.contains("labels") ? notification(v, i, received)
                                  : value_list(v, i, received, rates);
    if (!e)
      return e.error();
    out.push_back(std::move(*e));
  }
  rates_ = std::move(rates);
  return out;
}

} // namespace parallax
