#include "parallax/pipeline/zmq.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <zmq.h>

namespace parallax::zmq {

namespace {

error zmq_fail(std::string_view what) {
  auto e = zmq_errno();
  if (e == EAGAIN)
    return error{ec::system_error, "EAGAIN"};
  return error{ec::system_error, fmt::format("{}: {}", what, zmq_strerror(e))};
}

} // namespace

context::context() : ctx_{zmq_ctx_new()} {
}

context::~context() {
  zmq_ctx_term(ctx_);
}

message::message() : msg_{new unsigned char[sizeof(zmq_msg_t)]} {
  zmq_msg_init(reinterpret_cast<zmq_msg_t*>(msg_.get()));
}

message::~message() {
  if (msg_)
    zmq_msg_close(reinterpret_cast<zmq_msg_t*>(msg_.get()));
}

message::message(message&& other) noexcept : msg_{std::move(other.msg_)} {
}

std::span<const std::byte> message::bytes() const noexcept {
  auto m = reinterpret_cast<zmq_msg_t*>(msg_.get());
  return {static_cast<const std::byte*>(zmq_msg_data(m)), zmq_msg_size(m)};
}

std::string_view message::view() const noexcept {
  auto m = reinterpret_cast<zmq_msg_t*>(msg_.get());
  return {static_cast<const char*>(zmq_msg_data(m)), zmq_msg_size(m)};
}

socket::socket(context& ctx, int type) : s_{zmq_socket(ctx.handle(), type)} {
  if (s_) {
    int linger = 0; // never block shutdown on undelivered replies
    zmq_setsockopt(s_, ZMQ_LINGER, &linger, sizeof linger);
  }
}

socket::~socket() {
  if (s_)
    zmq_close(s_);
}

socket::socket(socket&& other) noexcept : s_{other.s_} {
  other.s_ = nullptr;
}

socket& socket::operator=(socket&& other) noexcept {
  if (this != &other) {
    if (s_)
      zmq_close(s_);
    s_ = other.s_;
    other.s_ = nullptr;
  }
  return *this;
}

error socket::set_int(int option, int value) {
  if (zmq_setsockopt(s_, option, &value, sizeof value) != 0)
    return zmq_fail("zmq_setsockopt");
  return {};
}

error socket::set_int64(int option, std::int64_t value) {
  if (zmq_setsockopt(s_, option, &value, sizeof value) != 0)
    return zmq_fail("zmq_setsockopt");
  return {};
}

error socket::bind(const std::string& endpoint) {
  if (!s_)
    return error{ec::system_error, "no socket"};
  if (zmq_bind(s_, endpoint.c_str()) != 0)
    return zmq_fail(fmt::format("cannot bind {}", endpoint));
  return {};
}

error socket::connect(const std::string& endpoint) {
  if (!s_)
    return error{ec::system_error, "no socket"};
  if (zmq_connect(s_, endpoint.c_str()) != 0)
    return zmq_fail(fmt::format("cannot connect to {}", endpoint));
  return {};
}

std::string socket::last_endpoint() const {
  char buf[256] = {};
  size_t len = sizeof buf;
  if (zmq_getsockopt(s_, ZMQ_LAST_ENDPOINT, buf, &len) != 0)
    return {};
  return buf;
}

error socket::send(std::span<const std::string_view> parts, bool dont_wait) {
  for (std::size_t i = 0; i < parts.size(); ++i) {
    int flags = (i + 1 < parts.size() ? ZMQ_SNDMORE : 0)
                | (dont_wait ? ZMQ_DONTWAIT : 0);
    if (zmq_send(s_, parts[i].data(), parts[i].size(), flags) < 0)
      return zmq_fail("zmq_send");
  }
  return {};
}

result<std::vector<message>> socket::recv(bool dont_wait) {
  std::vector<message> parts;
  for (;;) {
    parts.emplace_back();
    auto m = reinterpret_cast<zmq_msg_t*>(parts.back().raw());
    if (zmq_msg_recv(m, s_, dont_wait ? ZMQ_DONTWAIT : 0) < 0)
      return zmq_fail("zmq_msg_recv");
    if (!zmq_msg_more(m))
      return parts;
    dont_wait = false; // the rest of a multipart message is already here
  }
}

std::string unique_inproc_endpoint(std::string_view what) {
  static std::atomic<unsigned> next{0};
  return fmt::format("inproc://parallax-{}-{}", what, next.fetch_add(1));
}

result<std::vector<bool>> poll_in(std::span<socket* const> sockets,
                                  std::span<const bool> want,
                                  std::chrono::milliseconds timeout) {
  zmq_pollitem_t items[8];
  std::size_t map[8];
  std::size_t n = 0;
  for (std::size_t i = 0; i < sockets.size() && n < 8; ++i)
    if (want[i]) {
      items[n] = zmq_pollitem_t{sockets[i]->handle(), 0, ZMQ_POLLIN, 0};
      map[n++] = i;
    }
  std::vector<bool> ready(sockets.size(), false);
  auto rc = zmq_poll(items, static_cast<int>(n),
                     static_cast<long>(timeout.count()));
  if (rc < 0) {
    if (zmq_errno() == EINTR)
      return ready;
    return zmq_fail("zmq_poll");
  }
  for (std::size_t k = 0; k < n; ++k)
    if (items[k].revents & ZMQ_POLLIN)
      ready[map[k]] = true;
  return ready;
}

} // namespace parallax::zmq
