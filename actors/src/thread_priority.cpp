#include "thread_priority.hpp"

#include <cerrno>
#include <cstring>
#include <thread>

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fmt/format.h>

namespace parallax::detail {

namespace {

// Moves the calling thread into SCHED_RR at `rt_priority`; 0 or an errno.
int enter_real_time(int rt_priority) {
  sched_param sp{};
  sp.sched_priority = rt_priority;
  return ::pthread_setschedparam(::pthread_self(), SCHED_RR, &sp);
}

} // namespace

void set_thread_name(const char* name) {
  char buf[16] = {};
  std::strncpy(buf, name, sizeof buf - 1);
  (void)::pthread_setname_np(::pthread_self(), buf);
}

std::string set_thread_priority(int rt_priority, int nice) {
  std::string rt_error;
  if (rt_priority > 0) {
    auto rc = enter_real_time(rt_priority);
    if (rc == EPERM)
      rt_error = "needs CAP_SYS_NICE or an RLIMIT_RTPRIO that allows it, "
                 "and a cgroup that allows real-time threads";
    else if (rc != 0)
      rt_error = std::strerror(rc);
  }
  std::string nice_error;
  if (nice != 0) {
    errno = 0;
    if (::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), nice)
        != 0) {
      auto err = errno;
      nice_error = nice < 0 && (err == EACCES || err == EPERM)
                     ? "needs CAP_SYS_NICE or an RLIMIT_NICE that allows it"
                     : std::strerror(err);
    }
  }
  bool real_time = rt_priority > 0 && rt_error.empty();
  if (real_time || (rt_error.empty() && nice_error.empty()))
    return {};
  if (!rt_error.empty())
    return fmt::format(
      "cannot run at real-time priority {} ({}), so it runs at {}{}: deltas "
      "and alerts may wait while it is descheduled on a busy server; set "
      "parallax.correlator.rt-priority = 0{} to silence this",
      rt_priority, rt_error,
      nice_error.empty() ? fmt::format("nice {}", nice)
                         : std::string{"the process's nice"},
      nice_error.empty() ? std::string{}
                         : fmt::format(" (nice {} {})", nice, nice_error),
      nice_error.empty() ? "" : " and parallax.correlator.nice = 0");
  return fmt::format("cannot run at nice {} ({}), so it keeps the "
                     "process's: deltas and alerts may wait behind ingest on "
                     "a busy server; set parallax.correlator.nice = 0 to "
                     "silence this",
                     nice, nice_error);
}

bool real_time_allowed(int rt_priority) {
  if (rt_priority <= 0)
    return false;
  bool allowed = false;
  std::thread probe{[&] { allowed = enter_real_time(rt_priority) == 0; }};
  probe.join();
  return allowed;
}

} // namespace parallax::detail
