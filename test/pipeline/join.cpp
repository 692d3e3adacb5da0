#include "parallax/pipeline/join.hpp"

#include "parallax/schemas/wire.hpp"

#include <doctest/doctest.h>

#include <map>
#include <optional>

using namespace parallax;

namespace {

constexpr time_ns s = 1'000'000'000;
constexpr time_ns t0 = 1'795'600'000 * s; // a multiple of 20 s

// Events as the collector would hand them over: decoded views of a frame.
struct batch_of {
  wire::batch_view view;
  explicit batch_of(std::vector<event> events) {
    wire::batch b;
    b.source_id = "t";
    b.sequence = 1;
    b.events = std::move(events);
    auto d = wire::decode(wire::encode(b));
    REQUIRE(d);
    view = std::move(*d);
  }
  std::span<const event_view> events() const {
    return view.events();
  }
};

event ev(std::string sourcetype, time_ns t, std::vector<field> fields,
         std::string host = "kvm-01") {
  event e;
  e.time = t;
  e.index = "main";
  e.host = std::move(host);
  e.sourcetype = std::move(sourcetype);
  e.fields = std::move(fields);
  return e;
}

void feed(joiner& j, const std::vector<event>& events) {
  batch_of b{events};
  for (const auto& e : b.events())
    j.add("web-01", "uuid-1", e);
}

std::map<std::string, delta> by_metric(const std::vector<delta>& ds) {
  std::map<std::string, delta> out;
  for (const auto& d : ds)
    out[d.metric + (d.mac.empty() ? "" : "/" + d.mac)] = d;
  return out;
}

} // namespace

TEST_CASE("join: one window of both sides gives the catalog's deltas") {
  joiner j;
  feed(j, {
    ev("hv:libvirt:vm", t0 + 5 * s,
       {{"cpu_pct", 40.0}, {"mem_rss_bytes", std::int64_t{3000}},
        {"mem_allocated_bytes", std::int64_t{8000}},
        {"mem_balloon_bytes", std::int64_t{1000}}}),
    ev("hv:libvirt:vm", t0 + 15 * s,
       {{"cpu_pct", 60.0}, {"mem_rss_bytes", std::int64_t{3000}},
        {"mem_allocated_bytes", std::int64_t{8000}},
        {"mem_balloon_bytes", std::int64_t{1000}}}),
    ev("hv:libvirt:nic", t0 + 15 * s,
       {{"mac", std::string{"52:54:00:a1:00:01"}},
        {"rx_bytes_per_s", 1000.0}, {"tx_bytes_per_s", 500.0}}),
    ev("os:system", t0 + 10 * s,
       {{"mem_used_bytes", std::int64_t{2000}},
        {"mem_total_bytes", std::int64_t{7000}},
        {"cpu_busy_pct", 45.0}, {"cpus", std::int64_t{2}}},
       "web01.example.com"),
    // Two agent rounds of processes: 30 % + 50 %, then 40 % + 40 % of a
    // core; mean 80 % of a core = 40 % of two CPUs.
    ev("os:process", t0 + 10 * s, {{"cpu_pct", 30.0}}, "web01"),
    ev("os:process", t0 + 10 * s, {{"cpu_pct", 50.0}}, "web01"),
    ev("os:process", t0 + 19 * s, {{"cpu_pct", 40.0}}, "web01"),
    ev("os:process", t0 + 19 * s, {{"cpu_pct", 40.0}}, "web01"),
    // The guest writes its MAC its own way.
    ev("os:net", t0 + 12 * s,
       {{"mac", std::string{"52-54-00-A1-00-01"}},
        {"rx_bytes_per_s", 900.0}, {"tx_bytes_per_s", 500.0}},
       "web01"),
  });
  std::vector<delta> ds;
  std::vector<silence> ss;
  j.advance(ds, ss);
  CHECK(ds.empty()); // the watermark has not passed the window yet
  // A later sample moves the watermark (lateness 30 s) past the window.
  feed(j, {ev("hv:libvirt:vm", t0 + 55 * s, {{"cpu_pct", 10.0}})});
  j.advance(ds, ss);
  auto m = by_metric(ds);
  REQUIRE(m.count("mem_used"));
  CHECK(m["mem_used"].hv_value == 3000);
  CHECK(m["mem_used"].guest_value == 2000);
  CHECK(m["mem_used"].abs_diff == 1000);
  CHECK(m["mem_used"].rel_diff == doctest::Approx(1.0 / 3));
  CHECK(m["mem_used"].explained_share == doctest::Approx(2.0 / 3));
  CHECK(m["mem_used"].unit == "bytes");
  CHECK(m["mem_used"].vm == "web-01");
  CHECK(m["mem_used"].vm_uuid == "uuid-1");
  CHECK(m["mem_used"].host == "kvm-01");
  CHECK(m["mem_used"].window_start == t0);
  CHECK(m["mem_used"].window_end == t0 + 20 * s);
  CHECK(m["mem_visible"].hv_value == 7000); // allocated - balloon
  CHECK(m["mem_visible"].guest_value == 7000);
  CHECK(m["cpu"].hv_value == doctest::Approx(50)); // mean of 40 and 60
  CHECK(m["cpu"].guest_value == doctest::Approx(45));
  CHECK(m["cpu_processes"].guest_value == doctest::Approx(40));
  CHECK(m["net_rx/52:54:00:a1:00:01"].hv_value == 1000);
  CHECK(m["net_rx/52:54:00:a1:00:01"].guest_value == 900);
  CHECK(m["net_tx/52:54:00:a1:00:01"].abs_diff == 0);
  // No active memory on libvirt, no ready without delay stats: no delta
  // rather than a made-up one.
  CHECK(m.count("mem_active") == 0);
  CHECK(m.count("cpu_contention") == 0);
  CHECK_FALSE(m["mem_used"].correction);
  CHECK(j.counters().windows_closed >= 1);
}

TEST_CASE("join: a window without the guest is a silence signal") {
  joiner j;
  feed(j, {ev("hv:vsphere", t0 + 1 * s, {{"cpu_pct", 5.0}}),
           ev("os:system", t0 + 2 * s, {{"cpu_busy_pct", 5.0}}, "g")});
  // The guest stops; the hypervisor goes on.
  for (int k = 1; k <= 5; ++k)
    feed(j, {ev("hv:vsphere", t0 + k * 20 * s + 1 * s, {{"cpu_pct", 5.0}})});
  std::vector<delta> ds;
  std::vector<silence> ss;
  j.advance(ds, ss);
  REQUIRE_FALSE(ss.empty());
  CHECK(ss.front().guest_missing);
  CHECK(ss.front().window_start == t0 + 20 * s);
  CHECK(j.counters().guest_silent == ss.size());
  CHECK(by_metric(ds).count("cpu") == 1); // the first window had both
}

TEST_CASE("join: late data is joined as a correction or dropped, and "
          "counted") {
  join_options o;
  o.correction_horizon = 60 * s;
  joiner j{o};
  feed(j, {ev("hv:vsphere", t0 + 1 * s, {{"cpu_pct", 50.0}}),
           ev("os:system", t0 + 2 * s, {{"cpu_busy_pct", 40.0}}, "g"),
           ev("hv:vsphere", t0 + 61 * s, {{"cpu_pct", 50.0}})});
  std::vector<delta> ds;
  std::vector<silence> ss;
  j.advance(ds, ss);
  REQUIRE(by_metric(ds).count("cpu") == 1);
  CHECK(by_metric(ds)["cpu"].guest_value == 40);
  // A second guest sample for the closed first window arrives late.
  ds.clear();
  feed(j, {ev("os:system", t0 + 12 * s, {{"cpu_busy_pct", 60.0}}, "g")});
  j.advance(ds, ss);
  auto m = by_metric(ds);
  REQUIRE(m.count("cpu") == 1);
  CHECK(m["cpu"].correction);
  CHECK(m["cpu"].guest_value == doctest::Approx(50)); // mean of 40 and 60
  CHECK(j.counters().late_joined == 1);
  CHECK(j.counters().corrections >= 1);
  // Much later data moves the horizon past the first window: dropped.
  feed(j, {ev("hv:vsphere", t0 + 400 * s, {{"cpu_pct", 50.0}})});
  j.advance(ds, ss);
  feed(j, {ev("os:system", t0 + 5 * s, {{"cpu_busy_pct", 1.0}}, "g")});
  CHECK(j.counters().late_dropped == 1);
}

TEST_CASE("join: a stopped VM's windows close by the fleet's clock") {
  joiner j;
  feed(j, {ev("hv:vsphere", t0 + 1 * s, {{"cpu_pct", 50.0}}),
           ev("os:system", t0 + 2 * s, {{"cpu_busy_pct", 40.0}}, "g")});
  batch_of other{{ev("hv:vsphere", t0 + 200 * s, {{"cpu_pct", 1.0}})}};
  j.add("db-02", "uuid-2", other.events()[0]);
  std::vector<delta> ds;
  std::vector<silence> ss;
  j.advance(ds, ss);
  auto m = by_metric(ds);
  REQUIRE(m.count("cpu") == 1);
  CHECK(m["cpu"].vm_uuid == "uuid-1");
}

TEST_CASE("join: a VM fed no more is closed once the fleet's clock passes its "
          "window, not before") {
  joiner j;
  feed(j, {ev("hv:vsphere", t0 + 1 * s, {{"cpu_pct", 50.0}}),
           ev("os:system", t0 + 2 * s, {{"cpu_busy_pct", 40.0}}, "g")});
  std::vector<delta> ds;
  std::vector<silence> ss;
  j.advance(ds, ss); // its own watermark is far from the window's end
  CHECK(ds.empty());
  // From now on only another VM is fed (advanced without this one). The
  // fleet's cut is the latest time less the allowed lateness (30 s) and the
  // silence timeout (60 s): at t0 + 110 s it reaches the window's end, t0 +
  // 20 s, and the window (start, end] stays open until the cut passes it.
  auto other = [&](time_ns t) {
    batch_of b{{ev("hv:vsphere", t, {{"cpu_pct", 1.0}})}};
    j.add("db-02", "uuid-2", b.events()[0]);
    j.advance(ds, ss);
  };
  other(t0 + 60 * s);
  other(t0 + 110 * s);
  CHECK(ds.empty());
  other(t0 + 110 * s + 1);
  auto m = by_metric(ds);
  REQUIRE(m.count("cpu") == 1);
  CHECK(m["cpu"].vm_uuid == "uuid-1");
  CHECK(m["cpu"].window_end == t0 + 20 * s);
  // Closed once only.
  ds.clear();
  other(t0 + 200 * s);
  CHECK(by_metric(ds).count("cpu") == 0);
}

TEST_CASE("join: disk_read and disk_write sum the VM's disks per round, then "
          "average the rounds") {
  joiner j;
  auto disk = [](std::string st, time_ns t, std::string dev,
                 std::optional<double> rd, std::optional<double> wr,
                 std::string host) {
    std::vector<field> f = {{"dev", dev}};
    if (rd)
      f.push_back({"rd_bytes_per_s", *rd});
    if (wr)
      f.push_back({"wr_bytes_per_s", *wr});
    return ev(std::move(st), t, std::move(f), std::move(host));
  };
  auto hv = [&](time_ns t, std::string dev, std::optional<double> rd,
                std::optional<double> wr) {
    return disk("hv:libvirt:disk", t, std::move(dev), rd, wr, "kvm-01");
  };
  auto guest = [&](time_ns t, std::string dev, std::optional<double> rd,
                   std::optional<double> wr) {
    return disk("os:disk", t, std::move(dev), rd, wr, "web01");
  };
  feed(j, {
    // The hypervisor's disks are vda and vdb. Poll at 1 s: 4000 read,
    // 4000 written; at 11 s: 7000 and 8000. At 15 s vdb has no rates (its
    // first sample): that poll does not count, for either figure.
    hv(t0 + 1 * s, "vda", 1000.0, 4000.0),
    hv(t0 + 1 * s, "vdb", 3000.0, 0.0),
    hv(t0 + 11 * s, "vda", 2000.0, 6000.0),
    hv(t0 + 11 * s, "vdb", 5000.0, 2000.0),
    hv(t0 + 15 * s, "vda", 100.0, 100.0),
    hv(t0 + 15 * s, "vdb", std::nullopt, std::nullopt),
    // The guest calls them sda and sdb. Rounds at 5 s: 3700 read, 3100
    // written; at 15 s: 6700 and 7500; at 18 s reads only (4600): no
    // write figure in that round.
    guest(t0 + 5 * s, "sda", 900.0, 3000.0),
    guest(t0 + 5 * s, "sdb", 2800.0, 100.0),
    guest(t0 + 15 * s, "sda", 2100.0, 5500.0),
    guest(t0 + 15 * s, "sdb", 4600.0, 2000.0),
    guest(t0 + 18 * s, "sda", 1600.0, std::nullopt),
    guest(t0 + 18 * s, "sdb", 3000.0, std::nullopt),
  });
  // A vSphere VM: VM-wide rates, as the parser normalises them.
  batch_of other{{
    ev("hv:vsphere", t0 + 1 * s,
       {{"disk_rd_bytes_per_s", 1000.0},
        {"disk_wr_bytes_per_s", std::int64_t{4096}}}, "esx-02"),
    ev("hv:vsphere", t0 + 19 * s,
       {{"disk_rd_bytes_per_s", 3000.0},
        {"disk_wr_bytes_per_s", std::int64_t{6144}}}, "esx-02"),
    ev("os:disk", t0 + 10 * s,
       {{"dev", std::string{"sda"}}, {"rd_bytes_per_s", 1900.0},
        {"wr_bytes_per_s", 5000.0}}, "db02"),
  }};
  for (const auto& e : other.events())
    j.add("db-02", "uuid-2", e);
  feed(j, {ev("hv:libvirt:vm", t0 + 55 * s, {{"cpu_pct", 10.0}})});
  batch_of later{{ev("hv:vsphere", t0 + 55 * s, {{"cpu_pct", 10.0}}, "esx-02")}};
  j.add("db-02", "uuid-2", later.events()[0]);
  std::vector<delta> ds;
  std::vector<silence> ss;
  j.advance(ds, ss);
  std::map<std::string, delta> web, db;
  for (const auto& d : ds)
    (d.vm_uuid == "uuid-1" ? web : db)[d.metric] = d;
  // Only the disk pairs have both sides here.
  CHECK(web.size() == 2);
  REQUIRE(web.count("disk_read"));
  REQUIRE(web.count("disk_write"));
  CHECK(web["disk_read"].unit == "bytes_per_s");
  CHECK(web["disk_read"].mac.empty());
  CHECK(web["disk_read"].window_start == t0);
  CHECK(web["disk_read"].host == "kvm-01");
  CHECK(web["disk_read"].hv_value == 5500);     // (4000 + 7000) / 2
  CHECK(web["disk_read"].guest_value == 5000);  // (3700 + 6700 + 4600) / 3
  CHECK(web["disk_read"].abs_diff == 500);
  CHECK(web["disk_read"].rel_diff == doctest::Approx(500.0 / 5500));
  CHECK(web["disk_read"].explained_share == doctest::Approx(5000.0 / 5500));
  CHECK(web["disk_write"].hv_value == 6000);    // (4000 + 8000) / 2
  CHECK(web["disk_write"].guest_value == 5300); // (3100 + 7500) / 2
  CHECK(web["disk_write"].abs_diff == 700);
  REQUIRE(db.count("disk_read"));
  CHECK(db["disk_read"].hv_value == 2000); // mean of 1000 and 3000
  CHECK(db["disk_read"].guest_value == 1900);
  CHECK(db["disk_write"].hv_value == 5120);
  CHECK(db["disk_write"].guest_value == 5000);
  CHECK(db["disk_write"].host == "esx-02");
}

TEST_CASE("join: no disk delta when a side has no complete round") {
  joiner j;
  feed(j, {
    // Both first samples: counters without rates.
    ev("hv:libvirt:disk", t0 + 1 * s,
       {{"dev", std::string{"vda"}}, {"rd_bytes", std::int64_t{512}}}),
    ev("os:disk", t0 + 2 * s,
       {{"dev", std::string{"vda"}}, {"rd_bytes", std::int64_t{512}}},
       "web01"),
    ev("os:system", t0 + 2 * s, {{"mem_used_bytes", std::int64_t{1}}},
       "web01"),
    ev("hv:libvirt:vm", t0 + 3 * s, {{"mem_rss_bytes", std::int64_t{2}}}),
    ev("hv:libvirt:vm", t0 + 55 * s, {{"cpu_pct", 10.0}}),
  });
  std::vector<delta> ds;
  std::vector<silence> ss;
  j.advance(ds, ss);
  auto m = by_metric(ds);
  CHECK(m.count("mem_used") == 1);
  CHECK(m.count("disk_read") == 0);
  CHECK(m.count("disk_write") == 0);
  CHECK(ss.empty());
}
