// `parallax-agent`: the in-guest agent as a binary of its own, the one to
// install in guests. Same options and behaviour as `parallax agent`, but
// linked without the actor runtime, libvirt, the HTTP server or SQLite, so
// that a guest pays only for what the agent uses (its footprint target is
// <= 20 MB RSS; `parallax bench agent --binary` measures it).

#include "commands.hpp"

#include "parallax/version.hpp"

#include <cstdio>

#include <CLI/CLI.hpp>

int main(int argc, char** argv) {
  using namespace parallax::tools;
  CLI::App app{std::string{agent_command_summary}, "parallax-agent"};
  app.set_version_flag("-V,--version", std::string{"parallax-agent "}
                                         + parallax::version_string);
  app.footer("Exit codes: 0 success, 1 failure, 2 bad usage or "
             "configuration.\nOptions are the parallax.agent.* keys of "
             "`parallax config --example`.");
  agent_args args;
  add_agent_options(app, args);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    auto code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  return run_agent(args);
}
