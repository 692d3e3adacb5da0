#pragma once

// The subcommands of `parallax`, as functions returning the exit code:
// 0 success, 1 runtime failure, 2 bad usage or bad configuration.

#include "parallax/pipeline/config.hpp"

#include <optional>
#include <string>
#include <vector>

namespace parallax::tools {

/// Options every command that reads the configuration takes.
struct config_args {
  std::optional<std::string> file; ///< --config FILE
  std::optional<std::string> data; ///< --data DIR (= --set parallax.data-dir=DIR)
  std::vector<std::string> sets;  ///< --set KEY=VALUE, in order
};

/// Loads the configuration or prints one line naming the key and returns
/// nullopt; the caller then exits with 2.
std::optional<config> load(const config_args& args, const char* command);

int run_serve(const config_args& args);

struct decode_args {
  config_args cfg;
  std::string file = "-";
  bool json = false;
};
int run_decode(const decode_args& args);

struct config_cmd_args {
  config_args cfg;
  bool example = false;
};
int run_config(const config_cmd_args& args);

struct buckets_args {
  config_args cfg;
  bool json = false;
};
int run_buckets(const buckets_args& args);

int run_rebuild_summaries(const config_args& args);

struct ingest_args {
  config_args cfg;
  std::vector<std::string> files;
  std::string sourcetype;
  std::string host;         ///< default: this machine's host name
  std::string index = "main";
  std::string endpoint;     ///< default: parallax.collector.endpoint
  unsigned timeout = 120;   ///< seconds to wait for the last acks
};
int run_ingest(const ingest_args& args);

} // namespace parallax::tools
