// `parallax bench paint`: runs bench/browser/first_paint.mjs under node
// (playwright-core from web/node_modules, Debian's chromium) against this
// very binary. The measuring is the script's: the page records when both
// charts are drawn, which only the browser can tell.

#include "commands.hpp"

#include "parallax/bench/stats.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include <spawn.h>
#include <unistd.h>
#include <sys/wait.h>

extern char** environ;

namespace parallax::tools {

namespace fs = std::filesystem;

int run_bench_paint(const paint_args& args) {
  constexpr const char* who = "parallax bench paint";
  fs::path source = args.source;
  if (source.empty()) {
    const char* env = std::getenv("PARALLAX_SOURCE_DIR");
    source = env && *env ? env : PARALLAX_BUILT_FROM;
  }
  std::error_code ec;
  auto script = source / "bench" / "browser" / "first_paint.mjs";
  if (!fs::is_regular_file(script, ec)) {
    std::fprintf(stderr,
                 "%s: no %s: --source (or $PARALLAX_SOURCE_DIR) must name "
                 "Parallax's source tree\n",
                 who, script.c_str());
    return 2;
  }
  if (!fs::is_directory(source / "web" / "node_modules" / "playwright-core",
                        ec)) {
    std::fprintf(stderr,
                 "%s: %s has no node_modules/playwright-core: run "
                 "scripts/setup.sh (npm ci in web/)\n",
                 who, (source / "web").c_str());
    return 1;
  }
  fs::path node = bench::find_on_path("node");
  if (node.empty()) {
    std::fprintf(stderr,
                 "%s: node is not on PATH (scripts/setup.sh installs "
                 "nodejs)\n",
                 who);
    return 1;
  }
  auto self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) {
    std::fprintf(stderr, "%s: cannot find this binary: %s\n", who,
                 ec.message().c_str());
    return 1;
  }
  // Screenshots go to a directory of their own, removed afterwards.
  auto tmpl = (fs::temp_directory_path(ec) / "parallax-bench-paint-XXXXXX")
                .string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    std::fprintf(stderr, "%s: cannot make a temporary directory: %s\n", who,
                 std::strerror(errno));
    return 1;
  }
  fs::path artifacts = tmpl;
  if (!args.json)
    std::printf("%s: the VM page in headless Chromium, against a fresh "
                "`parallax serve` fed 24 h of one VM by `parallax simulate`; "
                "1 cold load, %zu warm\n",
                who, args.loads);
  std::fflush(stdout);
  auto loads = std::to_string(args.loads);
  std::vector<std::string> argv_s{node.string(),    script.string(),
                                  self.string(),    source.string(),
                                  artifacts.string(), "--loads",
                                  loads};
  if (args.json)
    argv_s.emplace_back("--json");
  std::vector<char*> argv;
  for (auto& a : argv_s)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  // Only the figures on stdout; a failed check goes to stderr.
  ::setenv("PARALLAX_QUIET_OK", "1", 1);
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(),
                         environ);
  int status = 0;
  if (rc == 0)
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  fs::remove_all(artifacts, ec);
  if (rc != 0) {
    std::fprintf(stderr, "%s: cannot run %s: %s\n", who, argv[0],
                 std::strerror(rc));
    return 1;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr,
                 "%s: the measurement failed (%s exited with %d); the lines "
                 "above say why\n",
                 who, script.c_str(),
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 1;
  }
  return 0;
}

} // namespace parallax::tools
