// Disk I/O on both sides: /proc/diskstats parsing on real text of every
// kernel format and on this machine's file, the agent's os:disk events
// (whole disks only, exact rates), and vCenter's virtualDisk counters
// normalised for the disk_read / disk_write pairs (procfs.hpp, vsphere.hpp).

#include "parallax/pipeline/agent.hpp"
#include "parallax/pipeline/procfs.hpp"
#include "parallax/pipeline/vsphere.hpp"
#include "parallax/schemas/wire.hpp"

#include "field_of.hpp"
#include "temp_dir.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

using namespace parallax;
namespace fs = std::filesystem;

namespace {

// Kernels 4.18 to 5.4: 18 fields (11 counters plus the 4 discard ones, no
// flush counters). A laptop-like layout written for this test: snap loop
// devices, a disk with three partitions, a CD-ROM and an LVM volume.
constexpr std::string_view diskstats_18_fields =
  "   7       0 loop0 52 0 804 21 0 0 0 0 0 40 21 0 0 0 0\n"
  "   7       1 loop1 37 0 610 15 0 0 0 0 0 24 15 0 0 0 0\n"
  "   7       2 loop2 126 0 3012 22 0 0 0 0 0 60 22 0 0 0 0\n"
  "   7       3 loop3 214 0 4390 61 0 0 0 0 0 226 61 0 0 0 0\n"
  "   7       4 loop4 63 0 2240 18 0 0 0 0 0 30 18 0 0 0 0\n"
  "   7       5 loop5 795 0 56020 198 0 0 0 0 0 2310 198 0 0 0 0\n"
  "   7       6 loop6 44 0 702 11 0 0 0 0 0 26 11 0 0 0 0\n"
  "   7       7 loop7 61 0 2196 16 0 0 0 0 0 38 16 0 0 0 0\n"
  "   8       0 sda 15230 2874 904412 5120 19804 12990 731228 13010 0 25510 18130 0 0 0 0\n"
  "   8       1 sda1 166 0 1328 20 0 0 0 0 0 80 20 0 0 0 0\n"
  "   8       2 sda2 149 18 10644 21 12 11 196 3 0 92 24 0 0 0 0\n"
  "   8       3 sda3 7311 2853 887640 3512 19790 12977 731012 13007 0 18940 16519 0 0 0 0\n"
  "  11       0 sr0 301 0 21840 61 0 0 0 0 0 130 61 0 0 0 0\n"
  " 253       0 dm-0 10164 0 886512 7702 32767 0 731012 13544 0 18801 21246 0 0 0 0\n"
  "   7       8 loop8 243 0 4410 15 0 0 0 0 0 176 15 0 0 0 0\n"
  "\n";

// Kernel 5.5 and later: 20 fields (flush counters too). Read from a KVM
// guest's /proc/diskstats (kernel 6.18) while this test was written.
constexpr std::string_view kvm_diskstats =
  "   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
  " 254       0 vda 947676 53073 32646386 2097541 32108898 163093 814838760 "
  "25905181 0 629676 28103077 141980 89 343477064 56941 898442 43413\n"
  " 253       0 zram0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

// Kernels 2.6 to 4.17: 14 fields for a disk; 2.6.0 to 2.6.24 wrote only 4
// counters for a partition (reads, sectors read, writes, sectors written;
// Documentation/admin-guide/iostats.rst). Written for this test.
constexpr std::string_view old_diskstats =
  "   3    0   hda 512344 803110 10240968 4519820 440312 330871 6120440 20311540 0 3498120 24831360\n"
  "   3    1   hda1 40112 40996 41320 41320\n";

void write(const fs::path& p, std::string_view text) {
  fs::create_directories(p.parent_path());
  std::ofstream out{p, std::ios::binary | std::ios::trunc};
  out << text;
}

// A block device in <root>/sys/block: with a `device` link (a disk some
// driver, here the hypervisor's, provides) or without (stacked, virtual).
void sys_block(const fs::path& root, std::string_view name, bool device,
               bool removable = false) {
  auto dir = root / "sys/block" / name;
  fs::create_directories(dir);
  if (device)
    fs::create_directories(dir / "device");
  write(dir / "removable", removable ? "1\n" : "0\n");
}

using test::get;

const event* by_dev(const std::vector<event>& evs, std::string_view dev) {
  for (const auto& e : evs)
    if (auto v = e.find("dev"); v && std::get<std::string>(*v) == dev)
      return &e;
  return nullptr;
}

std::vector<std::string> devs(const std::vector<event>& evs) {
  std::vector<std::string> out;
  for (const auto& e : evs)
    out.push_back(get<std::string>(e, "dev"));
  return out;
}

} // namespace

TEST_CASE("procfs: diskstats of every kernel format parse to the right "
          "counters") {
  auto u = procfs::parse_diskstats(diskstats_18_fields);
  REQUIRE(u.size() == 15); // the blank line is skipped
  CHECK(u[0].name == "loop0");
  const auto& sda = u[8];
  CHECK(sda == procfs::diskstat{8, 0, "sda", 15230, 904412, 19804, 731228});
  CHECK(u[11] == procfs::diskstat{8, 3, "sda3", 7311, 887640, 19790, 731012});
  CHECK(u[12] == procfs::diskstat{11, 0, "sr0", 301, 21840, 0, 0});
  CHECK(u[13] == procfs::diskstat{253, 0, "dm-0", 10164, 886512, 32767, 731012});

  auto k = procfs::parse_diskstats(kvm_diskstats);
  REQUIRE(k.size() == 3);
  CHECK(k[1] == procfs::diskstat{254, 0, "vda", 947676, 32646386, 32108898,
                                 814838760});
  CHECK(k[2] == procfs::diskstat{253, 0, "zram0", 0, 0, 0, 0});

  auto o = procfs::parse_diskstats(old_diskstats);
  REQUIRE(o.size() == 2);
  CHECK(o[0] == procfs::diskstat{3, 0, "hda", 512344, 10240968, 440312, 6120440});
  // The 4-counter partition line: reads, sectors read, writes, sectors written.
  CHECK(o[1] == procfs::diskstat{3, 1, "hda1", 40112, 40996, 41320, 41320});

  // Broken lines are skipped, the rest kept; no trailing newline needed.
  auto b = procfs::parse_diskstats(
    "   8       1 sda1 invalid data\n"
    "   8       2 sda2 1 2 3 4 5 6\n"                  // 9 fields
    "   x       0 sdz 1 0 8 0 1 0 8 0 0 0 0 0 0 0 0 0 0\n"
    "   8      16 sdb 1 0 8 0 2 0 16 0 0 0 0");         // 14 fields
  REQUIRE(b.size() == 1);
  CHECK(b[0] == procfs::diskstat{8, 16, "sdb", 1, 8, 2, 16});
}

TEST_CASE("procfs: os:disk reports whole disks only, with exact rates from "
          "two samples") {
  test::temp_dir root;
  auto diskstats = root.path / "proc/diskstats";
  write(diskstats, std::string{diskstats_18_fields}
                     + "   8      16 sdb 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n");
  // sysfs as the kernel lays it out: partitions under their disk, loop and
  // device-mapper devices without a `device` link, the CD-ROM removable.
  sys_block(root.path, "sda", true);
  fs::create_directories(root.path / "sys/block/sda/sda1");
  fs::create_directories(root.path / "sys/block/sda/sda2");
  fs::create_directories(root.path / "sys/block/sda/sda3");
  sys_block(root.path, "sdb", true); // attached, never used: no event
  sys_block(root.path, "sr0", true, true);
  sys_block(root.path, "dm-0", false);
  for (int i = 0; i <= 8; ++i)
    sys_block(root.path, "loop" + std::to_string(i), false);

  procfs::disk_sampler s{root.path};
  std::vector<event> first;
  s.sample(100, 5'000'000'000, first);
  REQUIRE(devs(first) == std::vector<std::string>{"sda"});
  const auto& e = first[0];
  CHECK(e.sourcetype == "os:disk");
  CHECK(e.time == 100);
  // /proc/diskstats counts 512-byte sectors.
  CHECK(get<std::int64_t>(e, "rd_bytes") == 904412LL * 512);
  CHECK(get<std::int64_t>(e, "wr_bytes") == 731228LL * 512);
  CHECK(get<std::int64_t>(e, "rd_reqs") == 15230);
  CHECK(get<std::int64_t>(e, "wr_reqs") == 19804);
  CHECK(e.find("rd_bytes_per_s") == nullptr); // first sample: no rates
  CHECK(e.find("wr_bytes_per_s") == nullptr);

  // 4 s later: +20000 sectors read, +10000 written on sda; an NVMe disk
  // (with a partition) appears.
  write(diskstats,
        "   8       0 sda 15930 2874 924412 5190 20104 12990 741228 13090 0 25600 18220 0 0 0 0\n"
        "   8       1 sda1 166 0 1328 20 0 0 0 0 0 80 20 0 0 0 0\n"
        " 259       0 nvme0n1 52018 7 4811232 23104 1101877 45012 40112384 1023911 0 231007 1047133 0 0 0 0\n"
        " 259       1 nvme0n1p1 1203 0 9912 18 1 0 1 0 0 18 18 0 0 0 0\n");
  sys_block(root.path, "nvme0n1", true);
  fs::create_directories(root.path / "sys/block/nvme0n1/nvme0n1p1");
  std::vector<event> second;
  s.sample(200, 9'000'000'000, second);
  REQUIRE(devs(second) == std::vector<std::string>{"sda", "nvme0n1"});
  const auto* a = by_dev(second, "sda");
  CHECK(get<double>(*a, "rd_bytes_per_s") == 20000.0 * 512 / 4);
  CHECK(get<double>(*a, "wr_bytes_per_s") == 10000.0 * 512 / 4);
  CHECK(get<std::int64_t>(*a, "rd_reqs") == 15930);
  const auto* n = by_dev(second, "nvme0n1");
  CHECK(get<std::int64_t>(*n, "wr_bytes") == 40112384LL * 512);
  CHECK(n->find("rd_bytes_per_s") == nullptr); // its first sample

  // A counter that went back (the disk was replaced): no rate for it; the
  // other keeps its rate. Idle is 0, not absent.
  write(diskstats,
        "   8       0 sda 16010 2874 1000 5190 20104 12990 741228 13090 0 25600 18220 0 0 0 0\n"
        " 259       0 nvme0n1 52018 7 4811232 23104 1101877 45012 40112384 1023911 0 231007 1047133 0 0 0 0\n");
  std::vector<event> third;
  s.sample(300, 11'000'000'000, third);
  a = by_dev(third, "sda");
  REQUIRE(a);
  CHECK(a->find("rd_bytes_per_s") == nullptr);
  CHECK(get<double>(*a, "wr_bytes_per_s") == 0.0);
  n = by_dev(third, "nvme0n1");
  REQUIRE(n);
  CHECK(get<double>(*n, "rd_bytes_per_s") == 0.0);

  // No rates when the monotonic clock did not advance; none when the file
  // is gone (no events at all).
  std::vector<event> same;
  s.sample(301, 11'000'000'000, same);
  CHECK(by_dev(same, "nvme0n1")->find("rd_bytes_per_s") == nullptr);
  fs::remove(diskstats);
  std::vector<event> none;
  s.sample(400, 12'000'000'000, none);
  CHECK(none.empty());
}

TEST_CASE("procfs: os:disk without sysfs goes by the device's name") {
  test::temp_dir root;
  write(root.path / "proc/diskstats",
        std::string{diskstats_18_fields} + std::string{old_diskstats}
          + std::string{kvm_diskstats});
  procfs::disk_sampler s{root.path};
  std::vector<event> out;
  s.sample(1, 1'000'000'000, out);
  // Not loop*, zram*, sr0, dm-0, nor the partitions sda1-3 and hda1.
  CHECK(devs(out) == std::vector<std::string>{"sda", "hda", "vda"});

  // The partition rule on its own: a digit after a name that does not end
  // in one, `p` and digits after one that does.
  auto reported = [&](std::vector<std::string> names) {
    std::vector<procfs::diskstat> all;
    for (auto& n : names)
      all.push_back({8, 0, n, 1, 8, 1, 8});
    std::vector<std::string> kept;
    for (const auto& d : all)
      if (s.reported(d, all))
        kept.push_back(d.name);
    return kept;
  };
  CHECK(reported({"nvme0n1", "nvme0n1p1", "nvme0n1p12", "mmcblk0",
                  "mmcblk0p1", "mmcblk0boot0", "xvda", "xvda1", "sdaa",
                  "sdaa1", "md0", "md127", "ram0", "fd0", "sr1"})
        == std::vector<std::string>{"nvme0n1", "mmcblk0", "mmcblk0boot0",
                                    "xvda", "sdaa"});
  // Without its disk in the file, a name is not taken for a partition.
  CHECK(reported({"sdb1"}) == std::vector<std::string>{"sdb1"});
}

TEST_CASE("procfs: os:disk on this machine's /proc/diskstats") {
  std::string text;
  REQUIRE(procfs::read_file("/proc/diskstats", text) == 0);
  auto all = procfs::parse_diskstats(text);
  std::size_t lines = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    auto eol = text.find('\n', pos);
    if (eol == std::string::npos)
      eol = text.size();
    lines += eol > pos;
    pos = eol + 1;
  }
  CHECK(all.size() == lines); // every line of this kernel's format is read
  // What the agent must report, from sysfs directly.
  std::set<std::string> want;
  for (const auto& d : all) {
    auto dir = fs::path{"/sys/block"} / d.name;
    std::string removable;
    procfs::read_file(dir / "removable", removable);
    if (!d.name.starts_with("loop") && !d.name.starts_with("ram")
        && !d.name.starts_with("zram") && fs::exists(dir / "device")
        && removable != "1\n"
        && (d.rd_ios || d.wr_ios || d.rd_sectors || d.wr_sectors))
      want.insert(d.name);
  }
  procfs::disk_sampler s{"/"};
  std::vector<event> first, second;
  s.sample(1, 1'000'000'000, first);
  s.sample(2, 3'000'000'000, second);
  auto got = devs(first);
  std::string names;
  for (const auto& g : got)
    names += (names.empty() ? "" : ", ") + g;
  MESSAGE("/proc/diskstats: ", all.size(), " devices, os:disk for ",
          got.size(), ": ", names);
  CHECK(std::set<std::string>(got.begin(), got.end()) == want);
  if (fs::exists("/sys/block/vda/device")) // this machine's disk
    CHECK(want.count("vda") == 1);
  REQUIRE(devs(second) == got);
  for (std::size_t i = 0; i < got.size(); ++i) {
    const auto& a = first[i];
    const auto& b = second[i];
    auto before = std::find_if(all.begin(), all.end(), [&](const auto& d) {
      return d.name == got[i];
    });
    REQUIRE(before != all.end());
    auto rd0 = get<std::int64_t>(a, "rd_bytes");
    auto wr0 = get<std::int64_t>(a, "wr_bytes");
    CHECK(rd0 % 512 == 0);
    CHECK(rd0 >= static_cast<std::int64_t>(before->rd_sectors * 512));
    CHECK(wr0 >= static_cast<std::int64_t>(before->wr_sectors * 512));
    CHECK(get<std::int64_t>(a, "rd_reqs") >= static_cast<std::int64_t>(before->rd_ios));
    CHECK(a.find("rd_bytes_per_s") == nullptr);
    // Two (pretend) seconds apart: the counters' difference over 2 s.
    CHECK(get<double>(b, "rd_bytes_per_s")
          == static_cast<double>(get<std::int64_t>(b, "rd_bytes") - rd0) / 2);
    CHECK(get<double>(b, "wr_bytes_per_s")
          == static_cast<double>(get<std::int64_t>(b, "wr_bytes") - wr0) / 2);
  }
}

TEST_CASE("agent: the system input sends os:disk every round") {
  test::temp_dir base;
  auto cfg = config::defaults().agent;
  cfg.root = base.path / "root";
  cfg.state_dir = base.path / "state";
  cfg.inputs = {"system"};
  cfg.server = "tcp://127.0.0.1:1";
  write(cfg.root / "proc/sys/kernel/hostname", "guest-01\n");
  write(cfg.root / "proc/diskstats", kvm_diskstats);
  sys_block(cfg.root, "vda", true);
  sys_block(cfg.root, "zram0", false);
  agent_options opts;
  opts.connect = false;
  auto a = guest_agent::open(cfg, base.path, opts);
  REQUIRE(a);
  REQUIRE(!(*a)->collect());
  write(cfg.root / "proc/diskstats",
        " 254       0 vda 947777 53073 32647386 2097541 32109898 163093 "
        "814848760 25905181 0 629676 28103077 141980 89 343477064 56941 "
        "898442 43413\n");
  REQUIRE(!(*a)->collect());
  CHECK((*a)->stats().disk_events == 2);
  auto frame = (*a)->spooled().read(*(*a)->spooled().newest());
  REQUIRE(frame);
  auto b = wire::decode(frame->frame);
  REQUIRE(b);
  std::size_t disks = 0;
  for (const auto& e : b->events())
    if (e.sourcetype == "os:disk") {
      ++disks;
      CHECK(std::get<std::string_view>(*e.find("dev")) == "vda");
      CHECK(std::get<std::int64_t>(*e.find("rd_bytes")) == 32647386LL * 512);
      CHECK(std::get<double>(*e.find("rd_bytes_per_s")) > 0);
      CHECK(std::get<std::string_view>(*e.find("agent_id"))
            == (*a)->agent_id());
      CHECK(e.host == "guest-01");
    }
  CHECK(disks == 1);
}

TEST_CASE("vsphere: virtualDisk read and write rates become the VM-wide "
          "disk fields") {
  std::map<std::string, value_view> out;
  std::vector<field_view> in = {
    {"virtualDisk.read.average", std::int64_t{1500}},
    {"virtualDisk.write.average", 2.5},
    {"net.received.average", std::int64_t{1}},
  };
  normalize_vsphere(in, [&](std::string_view k, value_view v) {
    out[std::string{k}] = v;
  });
  CHECK(std::get<double>(out.at("disk_rd_bytes_per_s")) == 1500.0 * 1024);
  CHECK(std::get<double>(out.at("disk_wr_bytes_per_s")) == 2.5 * 1024);
  // The sender's own value wins; a wrong type is skipped.
  out.clear();
  in = {{"virtualDisk.read.average", std::int64_t{1}},
        {"disk_rd_bytes_per_s", 7.0},
        {"virtualDisk.write.average", std::string_view{"12"}}};
  normalize_vsphere(in, [&](std::string_view k, value_view v) {
    out[std::string{k}] = v;
  });
  CHECK(out.count("disk_rd_bytes_per_s") == 0);
  CHECK(out.count("disk_wr_bytes_per_s") == 0);
}
