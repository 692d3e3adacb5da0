#pragma once

// Thin owning wrappers around libzmq's C API, with errors as values.
//
// Caveats (ZeroMQ's rules): a socket is used by one thread at a time. It may
// move to another thread only across a full memory barrier (thread start,
// a mutex hand-over). A context is thread-safe and must outlive its sockets.

#include "parallax/schemas/error.hpp"

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace parallax::zmq {

/// A ZeroMQ context (owns libzmq's I/O threads).
class context {
public:
  context();
  ~context();
  context(const context&) = delete;
  context& operator=(const context&) = delete;
  void* handle() const noexcept {
    return ctx_;
  }

private:
  void* ctx_;
};

/// A received message part whose bytes are owned by libzmq (no copy).
class message {
public:
  message();
  ~message();
  message(message&& other) noexcept;
  message& operator=(message&&) = delete;
  message(const message&) = delete;
  std::span<const std::byte> bytes() const noexcept;
  std::string_view view() const noexcept;
  void* raw() noexcept {
    return msg_.get();
  }

private:
  std::unique_ptr<unsigned char[]> msg_; // storage of a zmq_msg_t
};

class socket {
public:
  /// `type` is ZMQ_ROUTER, ZMQ_DEALER, ZMQ_PUSH, ZMQ_PULL, ...
  socket(context& ctx, int type);
  ~socket();
  socket(socket&& other) noexcept;
  socket& operator=(socket&& other) noexcept;
  socket(const socket&) = delete;
  socket& operator=(const socket&) = delete;

  void* handle() const noexcept {
    return s_;
  }

  error set_int(int option, int value);
  error set_int64(int option, std::int64_t value);
  error bind(const std::string& endpoint);
  error connect(const std::string& endpoint);
  /// The endpoint actually bound (resolves tcp://127.0.0.1:0 to a port).
  std::string last_endpoint() const;

  /// Sends the parts as one multipart message. With `dont_wait`, returns an
  /// error with code system_error and message "EAGAIN" instead of blocking.
  error send(std::span<const std::string_view> parts, bool dont_wait = false);

  /// Receives one multipart message. With `dont_wait` and nothing waiting,
  /// returns an error with code system_error and message "EAGAIN".
  result<std::vector<message>> recv(bool dont_wait = false);

private:
  void* s_ = nullptr;
};

/// "inproc://parallax-<what>-<n>", with n unique in this process.
std::string unique_inproc_endpoint(std::string_view what);

/// zmq_poll over sockets; returns which ones are readable.
/// `want[i]` false skips socket i. Timeout in milliseconds (-1 waits).
result<std::vector<bool>> poll_in(std::span<socket* const> sockets,
                                  std::span<const bool> want,
                                  std::chrono::milliseconds timeout);

} // namespace parallax::zmq
