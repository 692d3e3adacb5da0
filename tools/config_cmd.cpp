#include "commands.hpp"

#include <cstdio>

namespace parallax::tools {

int run_config(const config_cmd_args& args) {
  if (args.example) {
    std::fputs(render_config(config::defaults()).c_str(), stdout);
    return 0;
  }
  auto cfg = load(args.cfg, "config");
  if (!cfg)
    return 2;
  std::fputs(render_config(*cfg).c_str(), stdout);
  return 0;
}

} // namespace parallax::tools
