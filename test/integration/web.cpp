// The web view's API (docs/web.md) on the real server: `parallax simulate`
// feeds 30 minutes of the demo scenario; a real HTTP client asks every
// route, and the answers are compared with `parallax search` over the same
// data directory. Also: the event stream delivers while the simulator
// sends, static files, errors, the token, and `parallax vm NAME --once`.

#include "integration/server_process.hpp"
#include "temp_dir.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <cctype>
#include <cstdio>
#include <map>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

using namespace parallax;
using namespace parallax::test;
using json = nlohmann::json;

namespace {

// Runs a shell command line; returns (exit code, stdout).
std::pair<int, std::string> run_capture(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
    out.append(buf, n);
  int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// `parallax search --format json` on the data directory: one object a row.
std::vector<json> search_rows(const std::filesystem::path& data,
                              const std::string& query) {
  auto [code, out] = run_capture(fmt::format(
    "'{}' search --data '{}' --format json '{}'", PARALLAX_BINARY,
    data.string(), query));
  REQUIRE_MESSAGE(code == 0, query);
  std::vector<json> rows;
  std::size_t at = 0;
  while (at < out.size()) {
    auto end = out.find('\n', at);
    if (end == std::string::npos)
      end = out.size();
    if (end > at)
      rows.push_back(json::parse(out.substr(at, end - at)));
    at = end + 1;
  }
  return rows;
}

std::string encode(std::string_view s) {
  std::string out;
  for (unsigned char c : s)
    out += std::isalnum(c) || c == '-' || c == '_' || c == '.'
             ? std::string(1, static_cast<char>(c))
             : fmt::format("%{:02X}", c);
  return out;
}

json get_json(httplib::Client& http, const std::string& path,
              int want_status = 200) {
  auto res = http.Get(path);
  REQUIRE_MESSAGE(res, path);
  CHECK_MESSAGE(res->status == want_status, path, ": ", res->body);
  CHECK(res->get_header_value("Content-Type") == "application/json");
  auto j = json::parse(res->body, nullptr, false);
  REQUIRE_MESSAGE(!j.is_discarded(), path, ": ", res->body);
  return j;
}

} // namespace

TEST_CASE("web: the API, the event stream and static files of a server fed "
          "by the simulator, parallax vm") {
  temp_dir tmp{"parallax-web-"};
  // A web root of our own (the real one is web/, written separately).
  auto root = tmp.path / "www";
  std::filesystem::create_directories(root / "node_modules/uplot/dist");
  std::ofstream{root / "index.html"} << "<!doctype html><title>fleet</title>";
  std::ofstream{root / "app.js"} << "console.log('hi');";
  std::ofstream{root / "node_modules/uplot/dist/uPlot.iife.min.js"}
    << "var uPlot;";
  std::ofstream{tmp.path / "secret.html"} << "outside the root";
  auto port = free_port();
  auto data = tmp.path / "data";
  std::vector<std::string> web_root = {"--set", "parallax.http.web-root=\""
                                                  + root.string() + "\""};
  {
    server_process server{tmp.path, port, web_root};
    server.start();
    httplib::Client http{"127.0.0.1", server.http_port()};
    http.set_read_timeout(30, 0);

    // The event stream, opened before anything is sent.
    std::atomic<bool> got_event{false};
    std::string first_event;
    std::thread stream{[&] {
      httplib::Client sse{"127.0.0.1", server.http_port()};
      sse.set_read_timeout(120, 0);
      std::string buf;
      sse.Get("/api/stream", [&](const char* d, std::size_t n) {
        buf.append(d, n);
        auto at = buf.find("event: ");
        if (at != std::string::npos && buf.find("\n\n", at) != std::string::npos) {
          first_event = buf.substr(at, buf.find("\n\n", at) - at);
          got_event.store(true);
          return false; // enough: hang up
        }
        return true;
      });
    }};

    // 30 minutes of the demo scenario, ending now (docs/simulator.md):
    // db-02 leaks from 5 min, app-03's java hogs CPU from 10 min, web-01's
    // alice starts python3 at 20 min.
    auto sim_log = tmp.path / "simulate.log";
    auto pid = spawn_logged(
      {PARALLAX_BINARY, "simulate", "--endpoint", server.endpoint(),
       "--duration", "30m", "--scenario",
       std::string{PARALLAX_SOURCE_DIR} + "/etc/scenarios/demo.toml"},
      sim_log);
    REQUIRE_MESSAGE(wait_exit(pid, 180s) == 0, read_file(sim_log));
    std::this_thread::sleep_for(1s);
    stream.join();
    CHECK(got_event.load());
    MESSAGE("first streamed message: ", first_event);
    CHECK(first_event.find("data: {\"topic\":") != std::string::npos);

    // -- GET /api/vms: every VM the hypervisors reported in 10 minutes.
    auto vms = get_json(http, "/api/vms");
    std::set<std::string> listed;
    for (const auto& v : vms["vms"]) {
      listed.insert(v["vm"].get<std::string>());
      CHECK(v.contains("open_alerts"));
    }
    std::set<std::string> searched;
    for (const auto& r :
         search_rows(data, "(sourcetype=hv:libvirt:vm OR sourcetype=hv:vsphere) "
                           "earliest=-10m | stats count by vm"))
      searched.insert(r["vm"].get<std::string>());
    CHECK(searched.size() >= 12);
    for (const auto& name : searched)
      CHECK_MESSAGE(listed.count(name) == 1, name);
    json web01;
    for (const auto& v : vms["vms"])
      if (v["vm"] == "web-01")
        web01 = v;
    REQUIRE(web01.is_object());
    CHECK(web01["host"] == "kvm-01"); // docs/simulator.md: odd VMs on kvm-0i
    CHECK(web01["state"] == "running");
    CHECK(web01["mem_delta"].is_object());
    CHECK(web01["cpu_delta"]["unit"] == "pct");

    // -- GET /api/vm/NAME over a fixed range, against a timechart of the
    // same range and span.
    auto now_s = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    auto lo = now_s - 40 * 60, hi = now_s;
    auto d = get_json(http, fmt::format("/api/vm/web-01?earliest={}&latest={}"
                                        "&points=120",
                                        lo, hi));
    CHECK(d["vm"] == "web-01");
    CHECK(d["host"] == "kvm-01");
    auto span = d["span"].get<int>();
    // 2400 s in at most 120 epoch-aligned bins: 20 s (121 bins unless the
    // range starts on a multiple of 20) or 30 s.
    CHECK((span == 20 || span == 30));
    const auto& s = d["series"];
    auto bins = s["time"].size();
    CHECK(bins <= 120);
    CHECK(bins >= 80);
    for (auto name : {"hv_mem_pct", "guest_mem_pct", "hv_cpu_pct",
                      "guest_cpu_pct", "ready_pct", "steal_pct"})
      CHECK_MESSAGE(s[name].size() == bins, name);
    std::map<long, double> cpu_by_bin;
    for (const auto& r : search_rows(
           data, fmt::format("vm=web-01 (sourcetype=hv:libvirt:vm OR "
                             "sourcetype=hv:vsphere) earliest={} latest={} | "
                             "timechart span={}s avg(cpu_pct) as c",
                             lo, hi, span)))
      if (r["c"].is_number())
        cpu_by_bin[r["_time"].get<long>()] = r["c"].get<double>();
    std::size_t compared = 0;
    for (std::size_t i = 0; i < bins; ++i) {
      auto t = s["time"][i].get<long>();
      auto it = cpu_by_bin.find(t);
      if (it == cpu_by_bin.end()) {
        CHECK(s["hv_cpu_pct"][i].is_null());
        continue;
      }
      CHECK(s["hv_cpu_pct"][i].get<double>() == doctest::Approx(it->second));
      ++compared;
    }
    CHECK(compared >= 50);
    REQUIRE(!d["processes"].empty());
    double prev = 1e300;
    for (const auto& p : d["processes"]) {
      auto c = p["cpu_pct"].is_number() ? p["cpu_pct"].get<double>() : 0;
      CHECK(c <= prev);
      prev = c;
    }
    // alice's python3 (the scenario's non-admin process) raised alerts.
    bool python_alert = false;
    for (const auto& a : d["alerts"])
      python_alert |= a["process"] == "python3"
                      && (a["kind"] == "non_admin_process"
                          || a["kind"] == "rogue_process");
    CHECK(python_alert);
    auto db02 = get_json(http, "/api/vm/db-02?earliest=-40m");
    bool leak = false;
    for (const auto& a : db02["alerts"])
      leak |= a["kind"] == "memory_leak";
    CHECK(leak);

    // -- a process of the VM.
    auto first_pid = d["processes"][0]["pid"].get<long>();
    auto p = get_json(http, fmt::format("/api/vm/web-01/process/{}?earliest={}"
                                        "&latest={}&points=120",
                                        first_pid, lo, hi));
    CHECK(p["pid"] == first_pid);
    CHECK(p["series"]["time"] == s["time"]);
    for (auto name : {"cpu_pct", "mem_pct", "rss_bytes"})
      CHECK_MESSAGE(p["series"][name].size() == bins, name);
    CHECK(p["logs"].is_array());
    get_json(http, "/api/vm/web-01/process/999999", 404);

    // -- a process across the fleet: app-03 runs java (docs/simulator.md).
    auto java = get_json(http, "/api/process?name=java");
    bool app03 = false;
    for (const auto& v : java["vms"])
      if (v["vm"] == "app-03") {
        app03 = true;
        CHECK(!v["pids"].empty());
        REQUIRE(v["cpu_share"].is_number());
        CHECK(v["cpu_share"].get<double>() >= 0);
        CHECK(v["cpu_share"].get<double>() <= 1);
      }
    CHECK(app03);

    // -- search, as `parallax search` answers it.
    auto q = "sourcetype=os:* | stats count by sourcetype";
    auto sr = get_json(http, "/api/search?q=" + encode(q)
                               + "&latest=" + std::to_string(hi));
    CHECK(sr["events"] == false);
    CHECK(sr["columns"] == json::array({"sourcetype", "count"}));
    auto direct = search_rows(data, fmt::format("{} latest={}", "sourcetype=os:*",
                                                hi) + " | stats count by sourcetype");
    CHECK(sr["rows"] == json(direct));

    // -- errors.
    auto bad = get_json(http, "/api/search?q=" + encode(
                                                   "vm=web-01 | stats count by"),
                        400);
    CHECK(bad["code"] == "bad_query");
    CHECK(bad["column"].is_number());
    get_json(http, "/api/vm/no-such-vm", 404);
    get_json(http, "/api/vm/web-01?earliest=yesterday", 400);

    // -- static files.
    auto index = http.Get("/");
    REQUIRE(index);
    CHECK(index->status == 200);
    CHECK(index->body.find("<title>fleet</title>") != std::string::npos);
    CHECK(index->get_header_value("Content-Type").starts_with("text/html"));
    auto js = http.Get("/app.js");
    REQUIRE(js);
    CHECK(js->status == 200);
    CHECK(js->get_header_value("Content-Type").starts_with("text/javascript"));
    auto uplot = http.Get("/vendor/uplot/uPlot.iife.min.js");
    REQUIRE(uplot);
    CHECK(uplot->status == 200);
    for (auto path : {"/../secret.html", "/%2e%2e/secret.html",
                      "/node_modules/uplot/dist/uPlot.iife.min.js",
                      "/vendor/uplot/../../../../secret.html"}) {
      auto r = http.Get(path);
      CHECK_MESSAGE((!r || r->status != 200), path);
    }

    // -- parallax vm, on the data directory beside the running server.
    auto [code, out] = run_capture(fmt::format(
      "'{}' vm web-01 --once --earliest -40m --data '{}'", PARALLAX_BINARY,
      data.string()));
    CHECK(code == 0);
    CHECK(out.find("web-01") != std::string::npos);
    CHECK(out.find("PID") != std::string::npos);
    CHECK(out.find("\x1b[") == std::string::npos); // a pipe: no ANSI codes
    CHECK(out.find(d["processes"][0]["name"].get<std::string>())
          != std::string::npos);
    auto [code2, out2] = run_capture(fmt::format(
      "'{}' vm nope --once --data '{}' 2>&1", PARALLAX_BINARY, data.string()));
    CHECK(code2 == 1);
    CHECK(out2.find("web-01") != std::string::npos); // the known VMs
    // ... and through the server's API.
    auto [code3, out3] = run_capture(fmt::format(
      "'{}' vm web-01 --once --earliest -40m --server http://127.0.0.1:{}",
      PARALLAX_BINARY, server.http_port()));
    CHECK(code3 == 0);
    CHECK(out3.find("PID") != std::string::npos);
    CHECK(out3.find("delta mem_used") != std::string::npos);
    CHECK(out.find("delta mem_used") != std::string::npos);

    auto status = server.terminate();
    CHECK(WIFEXITED(status));
  }

  // -- the token: the same data, a server that requires one.
  std::vector<std::string> with_token = web_root;
  with_token.insert(with_token.end(), {"--set", "parallax.http.token=s3cret"});
  server_process server{tmp.path, port, with_token};
  // Its first log has the first server's (serve-1.log): gone, so start()
  // waits for its own.
  std::filesystem::remove(tmp.path / "serve-1.log");
  server.start();
  httplib::Client http{"127.0.0.1", server.http_port()};
  auto none = http.Get("/api/vms");
  REQUIRE_MESSAGE(none, "port ", server.http_port(), ", ",
                  httplib::to_string(none.error()), "; log:\n",
                  read_file(server.log_path()));
  CHECK(none->status == 401);
  CHECK(http.Get("/")->status == 401);
  CHECK(http.Get("/api/vms?token=s3cret")->status == 200);
  CHECK(http.Get("/?token=s3cret")->status == 200);
  http.set_bearer_token_auth("s3cret");
  CHECK(http.Get("/api/vms")->status == 200);
  auto status = server.terminate();
  CHECK(WIFEXITED(status));
}
