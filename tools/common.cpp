#include "commands.hpp"

#include <cstdio>

namespace parallax::tools {

std::optional<config> load(const config_args& args, const char* command) {
  auto sets = args.sets;
  if (args.data)
    sets.insert(sets.begin(), "parallax.data-dir=" + *args.data);
  std::optional<std::filesystem::path> file;
  if (args.file)
    file = *args.file;
  auto cfg = load_config(file, sets);
  if (!cfg) {
    std::fprintf(stderr, "parallax %s: config: %s\n", command,
                 cfg.error().message.c_str());
    return std::nullopt;
  }
  return std::move(*cfg);
}

} // namespace parallax::tools
