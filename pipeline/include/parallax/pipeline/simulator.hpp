#pragma once

// The fleet simulator behind `parallax simulate` (docs/simulator.md): N VMs
// on M hosts, each seen consistently from the hypervisor (libvirt-style or
// vSphere-style samples every 20 s) and from a guest agent (process table,
// system totals, NIC and disk counters, identity, log lines every 10 s), with
// injected scenarios (a memory leak, a CPU hog, a rogue process, ...) and a
// machine-readable ground truth of what was injected where and when.
//
// Everything is deterministic for a seed: the same options give the same
// events, byte for byte. Each VM draws from its own generator, so a
// scenario on one VM leaves every other VM's data unchanged.
//
// Caveats: a `fleet` belongs to one thread. `run_simulation` blocks; call
// it on a thread of its own for live mode and stop it with the flag.

#include "parallax/schemas/error.hpp"
#include "parallax/schemas/event.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace parallax::sim {

/// The guest agent's sampling interval (parallax.agent.interval's default).
inline constexpr time_ns agent_interval = 10'000'000'000;
/// The hypervisor's sampling interval (vCenter realtime, libvirt poller).
inline constexpr time_ns hv_interval = 20'000'000'000;
/// The agent sends os:identity and os:nic at start and at least this often.
inline constexpr time_ns identity_interval = 3'600'000'000'000;

// -- scenarios ---------------------------------------------------------------

/// What a scenario injects. The names (to_string) are the scenario file's.
enum class kind {
  memory_leak,
  cpu_hog,
  rogue_process,
  non_admin_process,
  ballooning,
  cpu_contention,
  agent_outage,
  vmotion,
  clone,
  clock_skew,
};

/// `memory-leak`, `cpu-hog`, ... as written in scenario files.
std::string_view to_string(kind k) noexcept;

/// The kind named `name`, or nullopt.
std::optional<kind> kind_from_string(std::string_view name) noexcept;

/// One injected event. Times are offsets from the simulation start; a zero
/// duration means "until the end" (vmotion is instantaneous: it happens at
/// `start`). Parameters a kind does not use keep their defaults.
struct injection {
  parallax::sim::kind kind = kind::memory_leak;
  std::string vm;        ///< the VM's name (`db-02`)
  time_ns start = 0;     ///< offset from the simulation start
  time_ns duration = 0;  ///< 0: until the end of the simulation
  std::string origin;    ///< "file:line:col" of the entry, for messages
  // Kind-specific parameters (docs/simulator.md lists which kind reads what).
  std::string process;            ///< leak, hog, rogue, non-admin: command name
  std::string user;               ///< rogue, non-admin: owner
  double rate_mb_per_min = 50;    ///< memory-leak: RSS growth
  double cpu_pct = 0;             ///< hog, rogue, non-admin: % of one core (0: kind default)
  bool hidden = true;             ///< rogue-process: hidden from the guest's process table
  double balloon_mb = 1024;       ///< ballooning: balloon size
  double ready_pct = 25;          ///< cpu-contention: CPU ready / steal, % per vCPU
  std::string target_host;        ///< vmotion: destination (default: next host of the same flavour)
  std::string name;               ///< clone: the new VM's name (default `<vm>-clone`)
  double skew_s = 120;            ///< clock-skew: guest clock minus true time, seconds
};

/// A parsed scenario file.
struct scenario {
  std::string origin; ///< the file name, for messages
  std::vector<injection> injections;
};

/// Parses a duration: an integer with a unit, or several (`90s`, `5m`,
/// `1h30m`, `2d`; `ms` too). A bare integer is seconds.
result<time_ns> parse_duration(std::string_view text);

/// Parses a scenario (TOML, docs/simulator.md). Errors name the origin, the
/// line and column, and the key: `demo.toml:7:12: event[2].duration: ...`
/// (code config_parse, config_unknown_key or config_bad_value).
result<scenario> parse_scenario(std::string_view text, std::string_view origin);

/// Reads and parses a scenario file.
result<scenario> load_scenario(const std::filesystem::path& file);

// -- the fleet ---------------------------------------------------------------

struct fleet_options {
  std::uint64_t seed = 1;
  std::size_t vms = 12;
  std::size_t hosts = 3;
  /// Time of the first sample; rounded down to a multiple of 20 s.
  time_ns start = 0;
  /// Simulated time span; 0: no end (stop by event count or flag).
  time_ns duration = 3'600'000'000'000;
  /// Guests write MACs in mixed notations (upper-case dashes, Cisco dots,
  /// ...), as third-party agents do; false: every MAC normalised.
  bool mixed_mac_notation = true;
  scenario injected;
};

/// One batch as one simulated source sends it.
struct sim_batch {
  std::string source_id; ///< `sim-agent:<vm>/<run>` or `sim-hv:<host>/<run>`
  time_ns at = 0;        ///< simulated time the batch is due
  std::vector<event> events;
};

/// The simulated fleet: advances in 10 s steps and yields each step's
/// batches: one per guest agent (log lines of the interval, then the
/// samples at its end), then, every other step, one per hypervisor host;
/// events within a batch in time order.
class fleet {
public:
  /// Builds the fleet; fails (config_bad_value, naming the scenario entry)
  /// when a scenario names a VM, process or host the fleet does not have.
  static result<fleet> make(fleet_options opts);

  fleet(fleet&&) noexcept;
  fleet& operator=(fleet&&) noexcept;
  ~fleet();

  /// Appends the next step's batches to `out`; false (appending nothing)
  /// once the duration is over.
  bool step(std::vector<sim_batch>& out);

  /// Time of the next step.
  time_ns next_time() const noexcept;
  /// First sample time (options' start, aligned).
  time_ns start() const noexcept;
  /// The run tag in every source id: a hash of everything that determines
  /// the events, so that a different run never reuses (source id, sequence).
  const std::string& run_tag() const noexcept;
  /// VMs in the fleet, clones included.
  std::size_t vm_count() const noexcept;

  /// The ground truth (JSON, docs/simulator.md) of what has been simulated
  /// so far: the fleet, each VM's hosts over time, and every injected
  /// event with its window clipped to the simulated span.
  std::string truth_json() const;

private:
  struct impl;
  explicit fleet(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

// -- running a simulation ----------------------------------------------------

/// Where batches go. `write` gets each batch with its sequence (1, 2, ...
/// per source id) in order.
class batch_sink {
public:
  virtual ~batch_sink() = default;
  virtual error write(const std::string& source_id, std::uint64_t sequence,
                      std::vector<event>& events) = 0;
  /// The same batch, encoded beforehand (wire::encode: a pre-rendered
  /// replay encodes before its clock starts). The endpoint and file sinks
  /// send or write the frame as it is; by default it is decoded and passed
  /// to write().
  virtual error write_frame(const std::string& source_id,
                            std::uint64_t sequence, std::string frame);
  /// Called once at the end: waits for outstanding acknowledgements, flushes.
  virtual error finish() {
    return {};
  }
  /// Historical mode, after each flush of every source's pending steps:
  /// waits until what was written is taken (endpoint sinks: acknowledged,
  /// the hypervisors' batches first: a server holds a new guest's first
  /// batches until the hypervisor names its VM), so the sources reach the
  /// server in event-time order.
  virtual error barrier() {
    return {};
  }
  /// Batches acknowledged / refused by a server (endpoint sinks only).
  virtual std::uint64_t acked() const {
    return 0;
  }
  virtual std::uint64_t rejected() const {
    return 0;
  }
};

/// Sends to a `parallax serve` ingest endpoint, one ingest_client per
/// source id (the client requires that), resending until acknowledged.
result<std::unique_ptr<batch_sink>>
open_endpoint_sink(std::string endpoint,
                   std::chrono::milliseconds drain_timeout
                   = std::chrono::minutes{2});

/// Writes wire frames to a file, each preceded by its length as a 4-byte
/// big-endian integer (docs/simulator.md).
result<std::unique_ptr<batch_sink>>
open_file_sink(const std::filesystem::path& file);

/// Reads a file written by the file sink: its frames, in order.
result<std::vector<std::string>>
read_frame_file(const std::filesystem::path& file);

struct simulation_options {
  fleet_options fleet;
  /// Stop after this many events (the last batch is cut); 0: no limit.
  std::uint64_t max_events = 0;
  /// Events per second to pace sending at; 0: as fast as possible.
  double rate = 0;
  /// Emit each step when the wall clock reaches its time (start defaults
  /// to now); otherwise as fast as `rate` allows.
  bool live = false;
  /// Replay `speed` times faster than real time (0: off; not with `live`
  /// or `rate`). Every source sends each step on its own, when the wall
  /// clock reaches the run's start plus (step time - fleet start + the
  /// source's phase) / speed. The phase, from a hash of the source id,
  /// spreads the sources over the agent interval as independently started
  /// agents are (the real agent keeps the phase of its own start); event
  /// times are not changed. A sender that falls behind sends at once.
  double speed = 0;
  /// With `speed`: simulate and encode every step before the first send,
  /// so that the replay itself costs only the sending (a benchmark whose
  /// sender stands for remote machines). Holds the whole run's frames in
  /// memory, and gives them to batch_sink::write_frame.
  bool prerender = false;
  /// Called once right before the first send (after pre-rendering), with
  /// the number of events pre-rendered (0 without `prerender`).
  std::function<void(std::uint64_t)> ready;
  /// Historical mode: a source's consecutive steps are sent as one batch
  /// of up to this many events (live mode sends each step at once).
  std::size_t batch_events = 1000;
  /// Historical mode: all pending steps of every source are sent once they
  /// span this much simulated time (sources stay aligned as live ones).
  time_ns batch_span = 20'000'000'000;
  /// Written at the end (also when stopped), unless empty.
  std::filesystem::path truth_file;
};

/// How far behind its schedule a paced sender sent: at most, and how many
/// batches more than 5 ms behind (a sender short of CPU catches up in a
/// burst).
struct schedule_lag {
  double max_ms = 0;
  std::uint64_t over_5ms = 0;
  void add(std::chrono::steady_clock::duration behind) {
    auto ms = std::chrono::duration<double, std::milli>(behind).count();
    max_ms = std::max(max_ms, ms);
    over_5ms += ms > 5;
  }
};

struct simulation_stats {
  std::map<std::string, std::uint64_t> per_sourcetype;
  std::uint64_t events = 0;
  std::uint64_t batches = 0;
  std::size_t vms = 0; ///< including clones
  std::size_t hosts = 0;
  time_ns first_time = 0; ///< simulated span covered
  time_ns last_time = 0;
  double seconds = 0; ///< wall-clock time taken
  std::uint64_t acked = 0;
  std::uint64_t rejected = 0;
  schedule_lag behind; ///< a paced replay's (speed)
};

/// Runs a simulation into `sink` until the duration or event count is
/// reached or `stop` becomes true; writes the truth file; then calls
/// `sink.finish()`. Errors: a fleet that cannot be built (config_bad_value),
/// `speed` with `live`, `rate` or `max_events` (usage),
/// a sink that fails, a truth file that cannot be written.
result<simulation_stats> run_simulation(const simulation_options& opts,
                                        const std::atomic<bool>& stop,
                                        batch_sink& sink);

/// A source's offset within the agent interval in a paced replay
/// (simulation_options::speed): [0, agent_interval), from its id.
time_ns source_phase(std::string_view source_id) noexcept;

/// "2026-11-25T10:00:01.000Z".
std::string rfc3339(time_ns t);

} // namespace parallax::sim
