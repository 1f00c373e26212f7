#pragma once
// HTTP/1.1 request parsing (RFC 9112) for the server's connection loop. Pure: it is fed bytes
// and yields requests or an error, and never touches a socket, so that every framing rule can
// be tested (and fuzzed) without one. Strict where leniency enables request smuggling
// (ambiguous body length, obs-fold, whitespace before the colon); bounded everywhere (head
// size, field count, body size), so that no input makes it hold more than a fixed amount.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kasama::server {

struct HttpLimits {
  std::size_t max_head = 64 * 1024;  // request line + header fields; trailers have the same budget
  std::size_t max_fields = 100;      // header fields; trailer fields likewise
  std::uint64_t max_body = 64ULL << 20;
  // A body over max_body is still read (and dropped) up to this total, so that the client,
  // which is busy sending, can read the 413; beyond it the connection is closed instead.
  std::uint64_t max_discard = 256ULL << 20;
};

struct HttpRequest {
  std::string method;
  std::string target;     // origin-form (path and query); an absolute-form target is reduced to it
  int minor_version = 1;  // HTTP/1.<minor_version>
  std::vector<std::pair<std::string, std::string>> fields;  // names in lower case, in order
  std::string host;  // the Host field, or the authority of an absolute-form target
  std::string body;
  std::optional<std::uint64_t> content_length;
  bool chunked = false;
  bool keep_alive = true;
  bool expect_continue = false;
  // The body was larger than max_body and was dropped: the answer is 413.
  bool body_too_large = false;
  std::uint64_t body_received = 0;  // body bytes seen, dropped ones included

  const std::string* field(std::string_view lower_name) const;
};

struct HttpError {
  int status = 400;  // 400, 408, 413, 414, 431 or 505
  std::string message;
};

class HttpRequestParser {
 public:
  enum class Result { kNeedMore, kRequest, kError };
  // A chunk-size line with its extensions; extensions are ignored, so there is no reason to
  // take long ones. While waiting for bytes, the parser holds one partial line at most: of
  // the head (max_head) or of a chunk size (this).
  static constexpr std::size_t kMaxChunkLine = 4096;

  explicit HttpRequestParser(HttpLimits limits = {});

  // Reading straight into the parser's buffer saves a copy: prepare() gives room for at
  // least min_room bytes, commit() says how many were written there.
  std::span<char> prepare(std::size_t min_room);
  void commit(std::size_t n);
  void feed(std::string_view bytes);

  // Parses what is buffered. kRequest: request() is complete; the next call starts on the
  // following request (bytes after it stay buffered: pipelining). kError: error() says why;
  // the connection must be closed, as its framing can no longer be trusted.
  Result next();

  HttpRequest& request() { return request_; }
  const HttpError& error() const { return error_; }

  // Nothing of a next request has arrived (the connection is idle between requests).
  bool idle() const;
  bool head_complete() const;
  // The client sent "Expect: 100-continue" and waits for the go-ahead before sending a body
  // that is within the limit.
  bool awaiting_continue() const;
  void continue_sent() { continue_sent_ = true; }
  std::size_t buffered() const { return end_ - begin_; }

 private:
  enum class State { kHead, kBody, kChunkSize, kChunkData, kChunkDataEnd, kTrailers, kDone, kFailed };

  Result fail(int status, std::string message);
  void start_request();
  // Takes one complete line (without its line ending) from the buffer; false when none is.
  bool take_line(std::string_view& line, std::size_t limit, bool& too_long);
  bool parse_request_line(std::string_view line);
  bool parse_field_line(std::string_view line, bool trailer);
  bool finish_head();
  void take_body_bytes(std::uint64_t n);

  HttpLimits limits_;
  std::vector<char> buf_;
  std::size_t begin_ = 0, end_ = 0;
  std::size_t scanned_ = 0;  // bytes after begin_ known to hold no line feed
  State state_ = State::kHead;
  bool request_line_seen_ = false;
  bool absolute_target_ = false;  // the authority came with the target; Host does not override it
  bool continue_sent_ = false;
  bool storing_ = true;  // false: body bytes are counted and dropped
  std::size_t head_bytes_ = 0;
  std::size_t field_count_ = 0;
  std::uint64_t remaining_ = 0;  // of the Content-Length body or of the current chunk
  HttpRequest request_;
  HttpError error_;
};

}  // namespace kasama::server
