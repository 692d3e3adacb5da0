// `parallax search` against the real server: events ingested through the
// real endpoint with `parallax ingest`; the same queries answered directly
// from the data directory (read-only, while the server runs and holds its
// lock) and through the server's search endpoint must print the same rows;
// a bad query exits 2 with a caret; --async then --job gives the same rows;
// search-time rules from the config apply in both; a bad rule stops the
// start naming its key.

#include "parallax/pipeline/query_protocol.hpp"
#include "parallax/pipeline/zmq.hpp"

#include "integration/server_process.hpp"
#include "temp_dir.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <zmq.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace parallax;
using namespace parallax::test;
namespace fs = std::filesystem;

namespace {

struct cli_result {
  int code = -1;
  std::string out;
  std::string err;
};

// Runs `parallax ARGS...` with stdout and stderr into files; everything the
// child needs is prepared before fork.
cli_result run_cli(std::vector<std::string> args, const fs::path& dir) {
  static int n = 0;
  ++n;
  args.insert(args.begin(), PARALLAX_BINARY);
  auto out_path = dir / fmt::format("cli-{}.out", n);
  auto err_path = dir / fmt::format("cli-{}.err", n);
  pid_t pid = spawn_to(std::move(args), out_path, err_path);
  cli_result r;
  r.code = wait_exit(pid, std::chrono::seconds{120});
  r.out = read_file(out_path);
  r.err = read_file(err_path);
  return r;
}

std::string rfc3339(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
}

std::size_t lines(const std::string& s) {
  return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n'));
}

} // namespace

TEST_CASE("search: the CLI directly and through the server's endpoint") {
  temp_dir tmp{"parallax-search-"};
  auto cfg_file = tmp.path / "parallax.toml";
  {
    // A search-time extraction (named group in both syntaxes) and an alias.
    std::ofstream cfg{cfg_file};
    cfg << "[parallax.sourcetypes.\"os:auth\"]\n"
           "extract = ['from (?<src>[\\d.]+) port (?P<src_port>\\d+)']\n"
           "field-aliases = [\"src=client\"]\n";
  }
  server_process server{tmp.path, free_port(),
                        {"--config", cfg_file.string(), "--set",
                         "parallax.correlator.enabled=false"}};
  server.start();
  auto search_ep = server.search_endpoint();
  REQUIRE_MESSAGE(search_ep.starts_with("tcp://127.0.0.1:"),
                  read_file(server.log_path()));

  // 600 auth lines over the last 3 hours (4 buckets of an hour): every
  // 18 s, alternately a failed password from 10.0.0.(i % 7) and an
  // accepted key.
  auto now = std::time(nullptr);
  auto log_file = tmp.path / "auth.log";
  {
    std::ofstream log{log_file};
    for (int i = 0; i < 600; ++i) {
      auto t = now - 3 * 3600 + i * 18;
      if (i % 2 == 0)
        log << rfc3339(t) << " web-01 sshd[" << 1000 + i
            << "]: Failed password for root from 10.0.0." << i % 7
            << " port " << 40000 + i << " ssh2\n";
      else
        log << rfc3339(t) << " web-02 sshd[" << 1000 + i
            << "]: Accepted publickey for deploy from 10.0.1.2 port "
            << 50000 + i << " ssh2\n";
    }
  }
  auto ingested = run_cli({"ingest", log_file.string(), "--sourcetype",
                           "os:auth", "--host", "web-01", "--endpoint",
                           server.endpoint()},
                          tmp.path);
  REQUIRE_MESSAGE(ingested.code == 0, ingested.err);

  auto data = server.data_dir().string();
  auto direct = [&](std::vector<std::string> args) {
    args.insert(args.begin(),
                {"search", "--config", cfg_file.string(), "--data", data});
    return run_cli(std::move(args), tmp.path);
  };
  auto remote = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"search", "--server", search_ep});
    return run_cli(std::move(args), tmp.path);
  };

  SUBCASE("the same rows directly and through the server") {
    for (std::string query :
         {"sshd Failed | stats count by host",
          "* | stats count",
          "sshd Failed",
          "sshd | head 7",
          "sshd | head 2 | eval x=1",
          "src=10.0.0.3 | stats count by src_port | sort src_port",
          "client=10.0.0.3 | stats count"}) {
      CAPTURE(query);
      for (std::string format : {"json", "csv", "table"}) {
        CAPTURE(format);
        auto a = direct({query, "--format", format});
        auto b = remote({query, "--format", format});
        CHECK_MESSAGE(a.code == 0, a.err);
        CHECK_MESSAGE(b.code == 0, b.err);
        CHECK(a.out == b.out);
        CHECK(!a.out.empty());
      }
    }
    // The counts: 300 failures, all stored under the host given to ingest.
    auto a = direct({"sshd Failed | stats count", "--format", "csv"});
    CHECK(a.out == "count\n300\n");
    // i % 7 == 3 and i even: i = 10, 24, ... (i % 14 == 10): 43 of 600.
    a = direct({"src=10.0.0.3 | stats count", "--format", "csv"});
    CHECK(a.out == "count\n43\n");
    a = direct({"client=10.0.0.3 | stats count", "--format", "csv"});
    CHECK(a.out == "count\n43\n");
    // Events: newest first, one per line, limited.
    a = direct({"sshd Failed", "--limit", "5", "--format", "json"});
    CHECK(lines(a.out) == 5);
    auto b = remote({"sshd Failed", "--limit", "5", "--format", "json"});
    CHECK(a.out == b.out);
    a = direct({"sshd Failed", "--limit", "3"});
    CHECK(lines(a.out) == 3);
    CHECK(a.out.find(" web-01 os:auth ") != std::string::npos);
    CHECK(a.out.find("Failed password") != std::string::npos);
    // A time range: only the last hour (200 lines, 100 failures at most).
    a = direct({"sshd Failed | stats count", "--earliest", "-1h", "--format",
                "csv"});
    b = remote({"sshd Failed | stats count", "--earliest", "-1h", "--format",
                "csv"});
    CHECK(a.out == b.out);
    // i = 401 ... 599 (i = 400 is exactly an hour before the file was
    // written, a little more than an hour before the search): 99 failures.
    CHECK(a.out == "count\n99\n");
    // --stats reports the counters on stderr.
    a = direct({"sshd Failed | stats count", "--stats"});
    CHECK(a.err.find("buckets:") != std::string::npos);
  }

  SUBCASE("the server compacts buckets that went quiet; answers stay") {
    auto before = direct({"* | stats count by host, sourcetype", "--format",
                          "csv"});
    REQUIRE(before.code == 0);
    auto sshd = direct({"sshd Failed root | stats count", "--format", "csv"});
    REQUIRE(sshd.code == 0);
    // parallax.storage.compact-after is 2 s by default: every bucket is
    // compacted within a few seconds of the ingest.
    bool all = false;
    std::string last;
    for (int i = 0; i < 100 && !all; ++i) {
      auto b = run_cli({"buckets", "--data", data, "--json"}, tmp.path);
      REQUIRE(b.code == 0);
      last = b.out;
      all = lines(b.out) >= 4;
      for (std::size_t at = 0; (at = b.out.find("\"events\":", at))
                               != std::string::npos;) {
        auto events = std::stoull(b.out.substr(at + 9));
        auto c = b.out.find("\"compacted_events\":", at);
        REQUIRE(c != std::string::npos);
        all = all && std::stoull(b.out.substr(c + 19)) == events;
        at = c;
      }
      if (!all)
        std::this_thread::sleep_for(std::chrono::milliseconds{200});
    }
    CHECK_MESSAGE(all, last);
    CHECK(direct({"* | stats count by host, sourcetype", "--format", "csv"})
            .out
          == before.out);
    CHECK(direct({"sshd Failed root | stats count", "--format", "csv"}).out
          == sshd.out);
    CHECK(sshd.out.find("300") != std::string::npos);
  }

  SUBCASE("a bad query exits 2 with a caret under the column") {
    for (const auto& r : {direct({"sshd | frobnicate 3"}),
                          remote({"sshd | frobnicate 3"})}) {
      CHECK(r.code == 2);
      // The query, then a caret under the unknown command (column 7).
      auto at = r.err.find("sshd | frobnicate 3\n");
      CHECK_MESSAGE(at != std::string::npos, r.err);
      if (at != std::string::npos)
        CHECK_MESSAGE(r.err.substr(at + 20, 8) == "       ^", r.err);
      CHECK(r.out.empty());
    }
  }

  SUBCASE("--async returns an id; --job fetches the same rows") {
    std::string query = "sshd | stats count by host";
    auto started = remote({query, "--async"});
    REQUIRE_MESSAGE(started.code == 0, started.err);
    auto id = started.out.substr(0, started.out.find('\n'));
    REQUIRE(id.size() == 16);
    auto fetched = remote({"--job", id, "--format", "json"});
    CHECK_MESSAGE(fetched.code == 0, fetched.err);
    auto sync = remote({query, "--format", "json"});
    CHECK(fetched.out == sync.out);
    // Fetching again works until the job's TTL.
    CHECK(remote({"--job", id, "--format", "json"}).out == sync.out);
    auto unknown = remote({"--job", "0000000000000000"});
    CHECK(unknown.code == 1);
    CHECK(unknown.err.find("unknown job") != std::string::npos);
  }

  SUBCASE("a malformed request gets an error and disturbs nobody") {
    namespace proto = search::protocol;
    zmq::context ctx;
    zmq::socket bad{ctx, ZMQ_DEALER}, good{ctx, ZMQ_DEALER};
    REQUIRE_FALSE(bad.connect(search_ep));
    REQUIRE_FALSE(good.connect(search_ep));
    // Waits for one reply on `s`.
    auto next = [](zmq::socket& s) {
      zmq::socket* socks[] = {&s};
      const bool want[] = {true};
      auto ready = zmq::poll_in(socks, want, std::chrono::seconds{10});
      REQUIRE(ready);
      REQUIRE((*ready)[0]);
      auto msg = s.recv();
      REQUIRE(msg);
      auto r = proto::parse_reply(msg->back().view());
      REQUIRE(r);
      return *r;
    };
    auto send = [](zmq::socket& s, std::string_view text) {
      std::string_view parts[] = {text};
      REQUIRE_FALSE(s.send(parts));
    };
    send(good, R"({"op":"search","query":"sshd Failed | stats count"})");
    for (std::string_view junk :
         {"not json", "[1,2]", R"({"op":"frobnicate"})",
          R"({"op":"search"})", R"({"op":"search","query":"x","limit":-1})",
          R"({"op":"fetch"})"}) {
      CAPTURE(junk);
      send(bad, junk);
      auto r = next(bad);
      CHECK(r.type == "error");
      CHECK(r.err.code == ec::usage);
    }
    auto r = next(good);
    REQUIRE(r.type == "rows");
    REQUIRE(r.rows.size() == 1);
    CHECK(r.rows[0].get("count"));
    CHECK(search::to_text(*r.rows[0].get("count")) == "300");
    r = next(good);
    CHECK(r.type == "done");
    CHECK(r.columns == std::vector<std::string>{"count"});
    CHECK(r.stats.buckets >= 3);
    // The same socket keeps working after its junk.
    send(bad, R"({"op":"search","query":"sshd Failed","limit":2})");
    r = next(bad);
    CHECK(r.type == "rows");
    CHECK(r.events);
    std::size_t rows = r.rows.size();
    while (r.type == "rows") {
      r = next(bad);
      rows += r.rows.size();
    }
    CHECK(r.type == "done");
    CHECK(rows == 2);
  }

  SUBCASE("a bad search-time rule is a config error naming the key") {
    auto bad = tmp.path / "bad.toml";
    {
      std::ofstream cfg{bad};
      cfg << "[parallax.sourcetypes.\"os:auth\"]\n"
             "extract = ['from (?<src>[\\d.+']\n";
    }
    auto r = run_cli({"search", "--config", bad.string(), "--data", data,
                      "sshd"},
                     tmp.path);
    CHECK(r.code == 2);
    CHECK(r.err.find("parallax.sourcetypes.\"os:auth\".extract[0]")
          != std::string::npos);
  }

  auto status = server.terminate();
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
