#pragma once

// The subcommands of `parallax`, as functions returning the exit code:
// 0 success, 1 runtime failure, 2 bad usage or bad configuration.

#include "parallax/pipeline/config.hpp"

#include <cstdint>
#include "parallax/schemas/publish.hpp"
#include "parallax/storage/store.hpp"

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace CLI {
class App;
}

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

/// What a running server offers to code that runs beside it (the demo).
struct serve_context {
  std::string collector_endpoint; ///< where batches go
  std::string publisher_endpoint; ///< empty: publishing is off
  int http_port = 0;              ///< 0: HTTP is off
  storage::store& store;          ///< readable from any thread
  std::string search_endpoint;    ///< empty: the search endpoint is off
};

struct serve_hooks {
  /// Once everything listens.
  std::function<void(const serve_context&)> started;
  /// About once a second while running; false stops the server.
  std::function<bool()> tick;
  /// After a stop signal, before the server's own parts stop.
  std::function<void()> stopping;
};

/// `parallax serve` with an already loaded configuration: runs until
/// SIGINT or SIGTERM (blocked in every thread) or until `hooks.tick`
/// returns false.
int serve(const config& cfg, const serve_hooks& hooks);

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
int run_compact(const config_args& args);

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

/// `parallax simulate` (docs/simulator.md).
struct simulate_args {
  std::uint64_t seed = 1;
  std::size_t vms = 12;
  std::size_t hosts = 3;
  std::optional<std::string> scenario; ///< TOML scenario file
  std::optional<std::string> duration; ///< "1h" (default without --events)
  std::optional<std::uint64_t> events; ///< stop after N events
  std::string rate = "max";            ///< events/s or "max"
  bool live = false;                   ///< follow the wall clock
  std::optional<double> speed;         ///< paced replay, x real time
  std::optional<std::string> start;    ///< epoch seconds or now-DURATION
  std::string endpoint;                ///< send to a server, or
  std::string out;                     ///< write length-prefixed frames
  std::string truth;                   ///< ground-truth JSON file
  bool canonical_macs = false;         ///< guests write normalised MACs
  unsigned timeout = 120;              ///< seconds to wait for acks
};
int run_simulate(const simulate_args& args);

struct demo_args {
  config_args cfg;
  std::uint64_t seed = 1;
  std::size_t vms = 12;
  std::size_t hosts = 3;
  std::optional<std::string> scenario; ///< TOML scenario file
  bool no_agent = false;               ///< not even as root
  unsigned every = 5;                  ///< seconds between status lines
};
int run_demo(const demo_args& args);

/// `parallax tail`: subscribes to the publisher (schemas/README.md,
/// "Published messages") and prints one line per message.
struct tail_args {
  config_args cfg;
  std::string endpoint;              ///< default: parallax.publisher.endpoint
  std::vector<std::string> topics;   ///< prefixes; default delta., alert., identity
  std::vector<std::string> vms;      ///< only these VMs (field vm)
  std::string metric;                ///< only this metric
  std::string min_severity;          ///< alerts below it are skipped
  bool json = false;                 ///< JSON lines even on a terminal
  bool no_json = false;              ///< human lines even into a pipe
  std::string color = "auto";        ///< auto, always, never
  std::uint64_t count = 0;           ///< exit 0 after N printed; 0: never
  std::optional<double> timeout;     ///< exit 1 after S s without a message
};
int run_tail(const tail_args& args);

/// One published message as `parallax tail` prints it on a terminal.
std::string published_line(const publish::published_message& m, bool color);

/// `parallax search` (docs/search.md): directly on the data directory
/// (read-only) or through a server's search endpoint.
struct search_args {
  config_args cfg;
  std::string query;
  std::optional<std::string> earliest; ///< parse_time syntax
  std::optional<std::string> latest;
  std::string format = "table";        ///< table, json, csv
  std::optional<std::uint64_t> limit;  ///< at most parallax.search.max-results
  std::optional<std::string> server;   ///< the search endpoint to ask
  bool async = false;                  ///< print a job id and return
  std::optional<std::string> job;      ///< fetch a job's results
  std::optional<std::string> cancel;   ///< cancel a job
  bool stats = false;                  ///< counters to stderr
};
int run_search(const search_args& args);

/// `parallax vm NAME`: one VM in the terminal (docs/web.md's GET
/// /api/vm/NAME, drawn), from the data directory (read-only) or a server's
/// HTTP endpoint.
struct vm_args {
  config_args cfg;
  std::string name;
  std::string earliest = "-1h";       ///< parse_time syntax
  bool once = false;                  ///< print once, exit
  std::optional<std::string> server;  ///< http://HOST:PORT of a server
};
int run_vm(const vm_args& args);

struct agent_args {
  config_args cfg;
  bool once = false;      ///< one round, send, wait for the acks, exit
  unsigned timeout = 30;  ///< --once: seconds to wait for the acks
};
/// Installs SIGINT and SIGTERM handlers that set the returned flag (for
/// commands that poll it; `serve` blocks the signals instead).
const std::atomic<bool>& stop_on_signals();

/// --config, --data and --set.
void add_config_options(CLI::App& cmd, config_args& args);

/// What `parallax agent` and `parallax-agent` say they do.
inline constexpr std::string_view agent_command_summary
  = "Run the in-guest agent: sample processes, system figures, identity and "
    "log lines (parallax.agent.*) and send them to the server, spooling on "
    "disk what is not yet acknowledged; runs until SIGINT or SIGTERM";

/// The agent's options (config options, --once, --timeout).
void add_agent_options(CLI::App& cmd, agent_args& args);

int run_agent(const agent_args& args);

/// `parallax bench paint`: the VM page's first paint in headless Chromium,
/// measured by bench/browser/first_paint.mjs under node.
struct paint_args {
  std::string source;     ///< the source tree (bench/, test/, web/); empty: default
  std::size_t loads = 9;  ///< warm loads after the cold one
  bool json = false;
};

int run_bench_paint(const paint_args& args);

} // namespace parallax::tools
