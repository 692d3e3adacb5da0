#pragma once

// Readers of a Linux guest's /proc and /sys for `parallax agent`: processes
// (os:process), system figures (os:system), NIC counters (os:net), block
// device counters (os:disk) and identity (os:identity, os:nic), as
// schemas/sourcetypes.md defines them.
//
// Every reader takes a root directory holding proc/, sys/ and etc/ ("/" on a
// real guest); tests point it at fixture trees built in a temp dir.
//
// Caveats:
// - Rates (cpu_pct, cpu_*_pct, *_per_s) need two samples: the samplers keep the
//   previous one, so use one sampler per root and call it once per interval
//   with a monotonic time. A rate is absent on the first sample and when a
//   counter went backwards.
// - Processes vanish while they are read: such a process is skipped
//   silently (ENOENT, ESRCH), never reported as an error.
// - IP addresses come from getifaddrs(), i.e. from the running kernel, so
//   they are read only when the root is "/"; fixture roots have no IPs.

#include "parallax/pipeline/rates.hpp"
#include "parallax/schemas/event.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace parallax::procfs {

/// The fields of /proc/PID/stat that the agent uses.
struct proc_stat {
  std::int64_t pid = 0;
  std::string command;        ///< field 2, without the parentheses
  char state = '?';           ///< field 3
  std::int64_t ppid = 0;      ///< field 4
  std::uint64_t utime = 0;    ///< field 14, clock ticks
  std::uint64_t stime = 0;    ///< field 15, clock ticks
  std::int64_t threads = 0;   ///< field 20
  std::uint64_t starttime = 0;///< field 22, clock ticks after boot
  std::uint64_t vsize = 0;    ///< field 23, bytes
  std::uint64_t rss_pages = 0;///< field 24, pages
};

/// Parses the contents of /proc/PID/stat. The command name may hold spaces
/// and parentheses: it runs from the first '(' to the last ')'.
std::optional<proc_stat> parse_stat(std::string_view text);

/// The real uid and gid from the contents of /proc/PID/status.
struct proc_owner {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
};
std::optional<proc_owner> parse_status(std::string_view text);

/// /proc/PID/cmdline (NUL-separated) joined by single spaces; trailing NULs
/// dropped. Empty for kernel threads.
std::string join_cmdline(std::string_view raw);

/// Parses passwd- or group-format text ("name:x:id:...") into id → name.
/// Comments, blank lines and malformed lines are skipped; the first entry
/// of an id wins, as getpwuid does.
std::unordered_map<std::uint32_t, std::string>
parse_id_file(std::string_view text);

/// Names of users and groups, cached. With root "/" it asks the system's
/// user database (getpwuid_r, getgrgid_r: NSS, so LDAP and sssd users are
/// found); for any other root it reads <root>/etc/passwd and <root>/etc/group
/// once. An unknown id is named by its number, as ps does.
class user_db {
public:
  explicit user_db(std::filesystem::path root);
  const std::string& user(std::uint32_t uid);
  const std::string& group(std::uint32_t gid);

private:
  bool system_;
  std::filesystem::path root_;
  bool files_loaded_ = false;
  std::unordered_map<std::uint32_t, std::string> users_;
  std::unordered_map<std::uint32_t, std::string> groups_;
  void load_files();
};

/// Host constants the process figures depend on (sysconf by default; tests
/// set them to make expected values exact).
struct host_constants {
  long clk_tck = 0;   ///< 0: sysconf(_SC_CLK_TCK)
  long page_size = 0; ///< 0: sysconf(_SC_PAGESIZE)
};

/// Samples every process under <root>/proc into os:process events. Keeps
/// the previous sample keyed by (pid, starttime), so a reused pid starts
/// afresh (no cpu_pct) instead of inheriting another process's ticks.
class process_sampler {
public:
  process_sampler(std::filesystem::path root, host_constants hc = {});

  /// Appends one os:process event per process to `out` (time = `wall`,
  /// sourcetype and fields set; index, host and agent_id are the caller's).
  /// `mono_ns` is a monotonic clock reading for the CPU rates.
  void sample(time_ns wall, std::int64_t mono_ns, std::vector<event>& out);

  /// Processes skipped last time because they vanished mid-read.
  std::size_t vanished() const noexcept {
    return vanished_;
  }

private:
  struct key {
    std::int64_t pid;
    std::uint64_t starttime;
    bool operator==(const key&) const = default;
  };
  struct key_hash {
    std::size_t operator()(const key& k) const noexcept {
      return std::hash<std::int64_t>{}(k.pid) * 31
             ^ std::hash<std::uint64_t>{}(k.starttime);
    }
  };
  std::filesystem::path proc_;
  host_constants hc_;
  user_db users_;
  std::unordered_map<key, std::uint64_t, key_hash> prev_;
  std::unordered_map<key, std::uint64_t, key_hash> next_;
  std::optional<std::int64_t> prev_mono_;
  std::size_t vanished_ = 0;
  std::string buf_; // reused read buffer
};

/// The aggregate "cpu" line of /proc/stat, in clock ticks.
struct cpu_times {
  std::uint64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0,
                irq = 0, softirq = 0, steal = 0;
  std::uint64_t total() const noexcept {
    return user + nice + system + idle + iowait + irq + softirq + steal;
  }
};

/// What /proc/stat says: the cpu line, online CPUs (cpuN lines), boot time.
struct proc_stat_file {
  cpu_times cpu;
  std::int64_t cpus = 0;
  std::int64_t btime = 0; ///< seconds since the epoch
};
std::optional<proc_stat_file> parse_proc_stat(std::string_view text);

/// Reads <root>/proc/stat's btime (seconds since the epoch), or nullopt.
std::optional<std::int64_t> boot_time(const std::filesystem::path& root);

/// Samples /proc/meminfo, /proc/stat, /proc/loadavg and /proc/uptime into
/// one os:system event. cpu_busy_pct is user+nice+system+irq+softirq over
/// all ticks; iowait and steal are reported apart (steal is time the host
/// did not give, not guest work).
class system_sampler {
public:
  explicit system_sampler(std::filesystem::path root);
  /// nullopt when /proc/meminfo or /proc/stat cannot be read.
  std::optional<event> sample(time_ns wall);

private:
  std::filesystem::path root_;
  std::optional<cpu_times> prev_;
};

/// One network interface under <root>/sys/class/net.
struct nic_info {
  std::string name;
  std::string mac;       ///< normalised; empty if none
  std::string kind;      ///< physical, loopback, virtual, bridge
  std::string operstate;
  std::vector<std::string> ips;
  friend bool operator==(const nic_info&, const nic_info&) = default;
};

/// The guest's identity.
struct identity {
  std::string hostname;
  std::vector<nic_info> nics; ///< sorted by name
  std::string bios_uuid;      ///< lower case
  std::string bios_serial;
  bool bios_readable = false;

  /// The os:identity event followed by one os:nic event per interface.
  std::vector<event> to_events(time_ns wall) const;
  friend bool operator==(const identity&, const identity&) = default;
};

/// Reads the identity under `root`; IPs only when root is "/".
identity read_identity(const std::filesystem::path& root);

/// Samples the traffic counters of every interface under
/// <root>/sys/class/net except loopback (statistics/rx_bytes, tx_bytes,
/// rx_packets, tx_packets) into one os:net event per interface: `nic`,
/// `mac` (normalised; absent if none), `kind` (as in os:nic), the
/// cumulative counters and their rates `*_per_s`. A rate is absent on an
/// interface's first sample, when its counter went backwards (driver reload,
/// interface recreated: the series is keyed by name and ifindex) and when
/// the monotonic time did not advance; never negative.
class net_sampler {
public:
  explicit net_sampler(std::filesystem::path root);

  /// Appends the os:net events to `out` (time = `wall`; index, host and
  /// agent_id are the caller's); `mono_ns` is a monotonic clock reading.
  /// An interface whose statistics cannot be read is skipped.
  void sample(time_ns wall, std::int64_t mono_ns, std::vector<event>& out);

private:
  std::filesystem::path net_;
  rate_tracker rates_;
  std::optional<std::int64_t> prev_mono_;
  std::string buf_;
};

/// One line of /proc/diskstats: the counters os:disk uses. Sectors are
/// 512 bytes whatever the device's own sector size (the kernel counts
/// them so).
struct diskstat {
  std::uint32_t major = 0;
  std::uint32_t minor = 0;
  std::string name;             ///< as the kernel writes it (`sda`, `cciss/c0d0`)
  std::uint64_t rd_ios = 0;     ///< field 4: reads completed
  std::uint64_t rd_sectors = 0; ///< field 6: sectors read
  std::uint64_t wr_ios = 0;     ///< field 8: writes completed
  std::uint64_t wr_sectors = 0; ///< field 10: sectors written
  friend bool operator==(const diskstat&, const diskstat&) = default;
};

/// Parses the contents of /proc/diskstats, in the file's order. Lines of
/// 14 fields (up to 4.17), 18 (4.18+: discards), 20 (5.5+: flushes) or
/// more are read; so are the 7-field partition lines of 2.6.0 to 2.6.24
/// (reads, sectors read, writes, sectors written). Other lines are skipped.
std::vector<diskstat> parse_diskstats(std::string_view text);

/// Samples <root>/proc/diskstats into one os:disk event per whole block
/// device that the hypervisor could see as a disk: `dev`, the cumulative
/// `rd_bytes`, `wr_bytes` (sectors × 512), `rd_reqs`, `wr_reqs`, and the
/// rates `rd_bytes_per_s`, `wr_bytes_per_s` (absent on a device's first
/// sample, when a counter went backwards and when the monotonic time did
/// not advance; never negative). Left out:
/// - `loop*`, `ram*`, `zram*`: file- and RAM-backed;
/// - with <root>/sys/block present: partitions (no /sys/block/DEV: they
///   live under /sys/block/DISK/PART), devices without a `device` link
///   (dm-*, md*, nbd*, other stacked or virtual devices: their I/O is
///   counted again on the disk below, which is what the hypervisor sees),
///   and removable media (`removable` is 1: CD-ROM, floppy; the libvirt
///   poller reports `device='disk'` only);
/// - without it (fixture roots, a container without sysfs), by name:
///   `dm-*`, `md*`, `sr*`, `fd*`, and partitions (another listed device's
///   name followed by digits, or by `p` and digits when it ends in a
///   digit: `sda1`, `nvme0n1p1`, `mmcblk0p2`);
/// - devices never used since boot (all four counters 0), as sysstat does.
class disk_sampler {
public:
  explicit disk_sampler(std::filesystem::path root);

  /// Appends the os:disk events to `out` (time = `wall`; index, host and
  /// agent_id are the caller's); `mono_ns` is a monotonic clock reading.
  /// Nothing when /proc/diskstats cannot be read.
  void sample(time_ns wall, std::int64_t mono_ns, std::vector<event>& out);

  /// Whether `d` is reported, given every device of the same read (for
  /// the partition rule without sysfs).
  bool reported(const diskstat& d, const std::vector<diskstat>& all);

private:
  std::filesystem::path root_;
  rate_tracker rates_;
  std::optional<std::int64_t> prev_mono_;
  std::string buf_;
};

/// True if `root` names the running system's root directory.
bool is_system_root(const std::filesystem::path& root);

/// Reads a small file whole into `out`. Returns 0 or the errno.
int read_file(const std::filesystem::path& p, std::string& out,
              std::size_t max_bytes = 1u << 20);

} // namespace parallax::procfs
