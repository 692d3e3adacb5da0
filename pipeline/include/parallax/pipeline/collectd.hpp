#pragma once

// collectd's `write_http` plugin with `Format "JSON"` as a hypervisor
// source (schemas/sourcetypes.md, `hv:collectd`). A POST body is a JSON
// array of value lists
//   {"values":[..],"dstypes":["derive",..],"dsnames":["rx","tx"],
//    "time":1795635510.492,"interval":5.0,"host":"hv-1","plugin":"virt",
//    "plugin_instance":"db01","type":"if_octets",
//    "type_instance":"52:54:00:a1:00:02"}
// or, for notifications, of {"labels":{..},"annotations":{..},
// "startsAt":"RFC 3339"} objects. Real captured bodies are in
// ../shared/data/collectd/.

#include "parallax/pipeline/rates.hpp"
#include "parallax/schemas/error.hpp"
#include "parallax/schemas/event.hpp"

#include <string_view>
#include <vector>

namespace parallax {

inline constexpr std::string_view collectd_sourcetype = "hv:collectd";
inline constexpr std::string_view collectd_notification_sourcetype
  = "hv:collectd:notification";

/// Turns POST bodies into events. Keeps the previous value of every derive
/// and counter data source, so it must see one sender's POSTs in order
/// (one converter per endpoint does).
class collectd_converter {
public:
  /// The events of one body, or an error saying which element is wrong and
  /// why; a wrong body yields no events at all.
  result<std::vector<event>> convert(std::string_view body, time_ns received);

private:
  rate_tracker rates_;
};

} // namespace parallax
