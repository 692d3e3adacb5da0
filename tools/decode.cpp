#include "commands.hpp"

#include "parallax/schemas/json.hpp"
#include "parallax/schemas/wire.hpp"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include <fmt/format.h>

namespace parallax::tools {

int run_decode(const decode_args& args) {
  auto cfg = load(args.cfg, "decode");
  if (!cfg)
    return 2;
  std::string frame;
  if (args.file == "-") {
    std::ostringstream ss;
    ss << std::cin.rdbuf();
    frame = ss.str();
  } else {
    std::ifstream in{args.file, std::ios::binary};
    if (!in) {
      fmt::print(stderr, "parallax decode: cannot read {}\n", args.file);
      return 1;
    }
    frame.assign(std::istreambuf_iterator<char>{in}, {});
  }
  auto size = frame.size();
  auto b = wire::decode(std::move(frame), cfg->wire);
  if (!b) {
    fmt::print(stderr, "parallax decode: {}: rejected: {}\n", args.file,
               b.error().render());
    return 1;
  }
  std::string out;
  if (args.json) {
    out += "{\"batch\":";
    json::append_batch_header(out, *b);
    out += "}\n";
    for (const auto& e : b->events()) {
      json::append_event(out, e);
      out += '\n';
    }
  } else {
    out += fmt::format("batch {}.{} from {} seq {}: {} events, {} fields, "
                       "{} bytes\n",
                       b->major(), b->minor(), b->source_id(), b->sequence(),
                       b->events().size(), b->field_count(), size);
    for (const auto& e : b->events()) {
      out += fmt::format("{} {} {} {}", e.time, e.index, e.host, e.sourcetype);
      if (e.raw)
        out += fmt::format(" | {}", *e.raw);
      for (const auto& f : e.fields) {
        out += fmt::format(" {}=", f.name);
        json::append_value(out, f.value);
      }
      out += '\n';
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

} // namespace parallax::tools
