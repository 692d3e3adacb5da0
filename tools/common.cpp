#include "commands.hpp"

#include <csignal>
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

namespace {

std::atomic<bool> stop_flag{false};

extern "C" void on_stop_signal(int) {
  stop_flag.store(true);
}

} // namespace

const std::atomic<bool>& stop_on_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  return stop_flag;
}

} // namespace parallax::tools
