// Command-line options shared by `parallax` and `parallax-agent`.

#include "commands.hpp"

#include <CLI/CLI.hpp>

namespace parallax::tools {

void add_config_options(CLI::App& cmd, config_args& args) {
  cmd.add_option("-c,--config", args.file, "Read options from this TOML file")
    ->check(CLI::ExistingFile);
  cmd.add_option("-d,--data", args.data,
                 "Data directory (same as --set parallax.data-dir=DIR; "
                 "default ./var)");
  cmd.add_option("--set", args.sets,
                 "Override one option, e.g. --set parallax.log-level=debug "
                 "(repeatable; `parallax config --example` lists them)");
}

void add_agent_options(CLI::App& cmd, agent_args& args) {
  add_config_options(cmd, args.cfg);
  cmd.add_flag("--once", args.once,
               "Collect one round, send it with whatever the spool holds, "
               "wait for the acknowledgements and exit (exit 1 if some stay "
               "unanswered; they stay in the spool)");
  cmd.add_option("--timeout", args.timeout,
                 "With --once: seconds to wait for the acknowledgements")
    ->capture_default_str();
}

} // namespace parallax::tools
