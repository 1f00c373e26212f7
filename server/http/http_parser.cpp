#include "server/http/http_parser.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>

namespace kasama::server {
namespace {

bool is_tchar(unsigned char c) {
  if (std::isalnum(c)) return true;
  return c != 0 && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return is_tchar(static_cast<unsigned char>(c)); });
}

// Field values: visible characters, obs-text, and SP/HTAB inside. CR, LF and NUL in a value
// are what header injection and smuggling are made of.
bool is_field_value(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char ch) {
    auto c = static_cast<unsigned char>(ch);
    return c == '\t' || (c >= 0x20 && c != 0x7f);
  });
}

char ascii_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return ascii_lower(x) == ascii_lower(y); });
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls f on each element of a comma-separated field value, trimmed.
template <typename F>
void for_each_element(std::string_view value, F&& f) {
  while (true) {
    auto comma = value.find(',');
    f(trim_ows(value.substr(0, comma)));
    if (comma == std::string_view::npos) return;
    value.remove_prefix(comma + 1);
  }
}

// reg-name, IP literal or IPv4 and an optional port: what may sit between "https://" and the
// path of the base URL the server builds from it.
bool is_host_value(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char ch) {
    auto c = static_cast<unsigned char>(ch);
    return std::isalnum(c) || std::strchr("-._~!$&'()*+,;=:[]%", c) != nullptr;
  });
}

std::string too_large_message(std::uint64_t declared, std::uint64_t limit) {
  return "The body (" + std::to_string(declared) + " bytes) is larger than this server accepts (" +
         std::to_string(limit) + " bytes)";
}

}  // namespace

const std::string* HttpRequest::field(std::string_view lower_name) const {
  for (const auto& [name, value] : fields) {
    if (name == lower_name) return &value;
  }
  return nullptr;
}

HttpRequestParser::HttpRequestParser(HttpLimits limits) : limits_(limits) {}

std::span<char> HttpRequestParser::prepare(std::size_t min_room) {
  if (begin_ == end_) {
    begin_ = end_ = 0;
    scanned_ = 0;
  }
  if (buf_.size() - end_ < min_room) {
    if (begin_ > 0) {
      std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (buf_.size() - end_ < min_room) buf_.resize(end_ + min_room);
  }
  return {buf_.data() + end_, buf_.size() - end_};
}

void HttpRequestParser::commit(std::size_t n) {
  end_ = std::min(end_ + n, buf_.size());
}

void HttpRequestParser::feed(std::string_view bytes) {
  auto room = prepare(bytes.size());
  std::memcpy(room.data(), bytes.data(), bytes.size());
  commit(bytes.size());
}

bool HttpRequestParser::idle() const {
  if (state_ == State::kDone) return buffered() == 0;
  return state_ == State::kHead && !request_line_seen_ && head_bytes_ == 0 && buffered() == 0;
}

bool HttpRequestParser::head_complete() const {
  return state_ != State::kHead && state_ != State::kFailed;
}

bool HttpRequestParser::awaiting_continue() const {
  return request_.expect_continue && !continue_sent_ && storing_ && request_.body_received == 0 && buffered() == 0 &&
         (state_ == State::kBody || state_ == State::kChunkSize);
}

HttpRequestParser::Result HttpRequestParser::fail(int status, std::string message) {
  state_ = State::kFailed;
  error_ = HttpError{status, std::move(message)};
  return Result::kError;
}

void HttpRequestParser::start_request() {
  request_ = HttpRequest{};
  state_ = State::kHead;
  request_line_seen_ = false;
  absolute_target_ = false;
  continue_sent_ = false;
  storing_ = true;
  head_bytes_ = 0;
  field_count_ = 0;
  remaining_ = 0;
}

bool HttpRequestParser::take_line(std::string_view& line, std::size_t limit, bool& too_long) {
  const char* base = buf_.data() + begin_;
  const std::size_t avail = end_ - begin_;
  const void* lf = scanned_ < avail ? std::memchr(base + scanned_, '\n', avail - scanned_) : nullptr;
  if (!lf) {
    scanned_ = avail;
    too_long = avail > limit;
    return false;
  }
  const std::size_t used = static_cast<std::size_t>(static_cast<const char*>(lf) - base) + 1;
  if (used > limit) {
    too_long = true;
    return false;
  }
  std::size_t len = used - 1;
  if (len > 0 && base[len - 1] == '\r') --len;  // a bare LF is taken as a line end too (RFC 9112 2.2)
  line = std::string_view(base, len);
  begin_ += used;
  scanned_ = 0;
  head_bytes_ += used;
  return true;
}

bool HttpRequestParser::parse_request_line(std::string_view line) {
  const auto sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return false;
  const auto sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return false;
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (!is_token(method) || target.empty()) return false;
  for (char ch : target) {
    auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c == 0x7f) return false;
  }
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || !std::isdigit(static_cast<unsigned char>(version[5])) ||
      version[6] != '.' || !std::isdigit(static_cast<unsigned char>(version[7]))) {
    return false;
  }
  request_.method.assign(method);
  if (version[5] != '1' || (version[7] != '0' && version[7] != '1')) {
    fail(505, "HTTP version " + std::string(version.substr(5)) + " is not supported: send HTTP/1.1");
    return false;
  }
  request_.minor_version = version[7] - '0';
  if (target.front() == '/' || target == "*") {
    request_.target.assign(target);
    return true;
  }
  // absolute-form (RFC 9112 3.2.2): the authority replaces Host; only the path and query stay.
  std::size_t scheme_end = 0;
  if (target.size() > 7 && iequals(target.substr(0, 7), "http://")) scheme_end = 7;
  if (target.size() > 8 && iequals(target.substr(0, 8), "https://")) scheme_end = 8;
  if (scheme_end == 0) return false;
  std::string_view rest = target.substr(scheme_end);
  const auto path_start = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, path_start);
  if (authority.empty() || authority.find('@') != std::string_view::npos || !is_host_value(authority)) return false;
  request_.host.assign(authority);
  absolute_target_ = true;
  if (path_start == std::string_view::npos) {
    request_.target = "/";
  } else if (rest[path_start] == '?') {
    request_.target = "/" + std::string(rest.substr(path_start));
  } else {
    request_.target.assign(rest.substr(path_start));
  }
  return true;
}

bool HttpRequestParser::parse_field_line(std::string_view line, bool trailer) {
  // A line starting with whitespace is obs-fold (or junk before the first field): RFC 9112
  // 5.2 lets a server refuse it, and unfolding is how two parsers come to disagree.
  if (line.front() == ' ' || line.front() == '\t') return false;
  std::size_t colon = 0;
  while (colon < line.size() && is_tchar(static_cast<unsigned char>(line[colon]))) ++colon;
  if (colon == 0 || colon == line.size() || line[colon] != ':') return false;  // also "Name : value"
  std::string_view value = trim_ows(line.substr(colon + 1));
  if (!is_field_value(value)) return false;
  if (trailer) return true;  // trailers are checked, then dropped: nothing here needs them
  std::string name(line.substr(0, colon));
  for (char& c : name) c = ascii_lower(c);
  request_.fields.emplace_back(std::move(name), std::string(value));
  return true;
}

bool HttpRequestParser::finish_head() {
  HttpRequest& r = request_;
  int hosts = 0;
  bool te_seen = false, cl_seen = false, cl_bad = false, te_bad = false;
  std::uint64_t cl = 0;
  int te_elements = 0;
  bool close = false, keep_alive = false;
  for (const auto& [name, value] : r.fields) {
    if (name == "host") {
      ++hosts;
      if (!absolute_target_) r.host = value;
    } else if (name == "content-length") {
      for_each_element(value, [&](std::string_view v) {
        if (v.empty() || v.size() > 18 ||
            !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
          cl_bad = true;
          return;
        }
        std::uint64_t n = 0;
        for (char c : v) n = n * 10 + static_cast<std::uint64_t>(c - '0');
        if (cl_seen && n != cl) cl_bad = true;
        cl = n;
        cl_seen = true;
      });
    } else if (name == "transfer-encoding") {
      te_seen = true;
      for_each_element(value, [&](std::string_view v) {
        ++te_elements;
        if (!iequals(v, "chunked")) te_bad = true;
      });
    } else if (name == "connection") {
      for_each_element(value, [&](std::string_view v) {
        if (iequals(v, "close")) close = true;
        if (iequals(v, "keep-alive")) keep_alive = true;
      });
    } else if (name == "expect") {
      if (iequals(trim_ows(value), "100-continue")) r.expect_continue = r.minor_version >= 1;
    }
  }
  auto refuse = [this](int status, std::string message) {
    fail(status, std::move(message));
    return false;
  };
  if (hosts > 1) return refuse(400, "More than one Host header field");
  if (hosts == 0 && r.minor_version >= 1 && !absolute_target_) {
    return refuse(400, "An HTTP/1.1 request needs a Host header field (RFC 9112 3.2)");
  }
  if (!is_host_value(r.host)) return refuse(400, "Invalid Host header field");
  // Ambiguous framing is refused rather than resolved: a front end may have resolved it the
  // other way, and the rest of the bytes would then be read as a second request.
  if (cl_bad) return refuse(400, "Invalid or conflicting Content-Length");
  if (te_seen) {
    if (cl_seen) return refuse(400, "Both Transfer-Encoding and Content-Length are present");
    if (r.minor_version == 0) return refuse(400, "Transfer-Encoding in an HTTP/1.0 request");
    if (te_bad || te_elements != 1) return refuse(400, "Transfer-Encoding other than chunked is not supported");
  }
  r.keep_alive = r.minor_version >= 1 ? !close : (keep_alive && !close);
  if (te_seen) {
    r.chunked = true;
    state_ = State::kChunkSize;
    return true;
  }
  if (!cl_seen || cl == 0) {
    if (cl_seen) r.content_length = 0;
    state_ = State::kDone;
    return true;
  }
  r.content_length = cl;
  remaining_ = cl;
  state_ = State::kBody;
  if (cl > limits_.max_body) {
    // A client waiting for 100-continue has sent nothing yet: refuse before it does. Past
    // max_discard, reading it all is not worth the 413.
    if (r.expect_continue || cl > limits_.max_discard) return refuse(413, too_large_message(cl, limits_.max_body));
    storing_ = false;
    r.body_too_large = true;
    return true;
  }
  r.body.reserve(static_cast<std::size_t>(cl));
  return true;
}

void HttpRequestParser::take_body_bytes(std::uint64_t n) {
  if (storing_) request_.body.append(buf_.data() + begin_, static_cast<std::size_t>(n));
  begin_ += static_cast<std::size_t>(n);
  scanned_ = 0;
  request_.body_received += n;
}

HttpRequestParser::Result HttpRequestParser::next() {
  if (state_ == State::kFailed) return Result::kError;
  if (state_ == State::kDone) start_request();
  for (;;) {
    switch (state_) {
      case State::kHead: {
        std::string_view line;
        bool too_long = false;
        const std::size_t budget = limits_.max_head - std::min(head_bytes_, limits_.max_head);
        if (!take_line(line, budget, too_long)) {
          if (!too_long) return Result::kNeedMore;
          if (!request_line_seen_) {
            return fail(414, "The request line is longer than this server accepts (" +
                                 std::to_string(limits_.max_head) + " bytes)");
          }
          return fail(431, "The request header section is larger than this server accepts (" +
                               std::to_string(limits_.max_head) + " bytes)");
        }
        if (!request_line_seen_) {
          if (line.empty()) continue;  // RFC 9112 2.2: empty lines before a request are ignored
          if (line.find('\r') != std::string_view::npos || !parse_request_line(line)) {
            if (state_ == State::kFailed) return Result::kError;
            return fail(400, "Malformed request line");
          }
          request_line_seen_ = true;
          continue;
        }
        if (line.empty()) {
          if (!finish_head()) return Result::kError;
          continue;
        }
        if (++field_count_ > limits_.max_fields) {
          return fail(431, "More than " + std::to_string(limits_.max_fields) + " header fields");
        }
        if (line.front() == ' ' || line.front() == '\t') {
          return fail(400, "A header line starts with whitespace (obsolete line folding is not accepted)");
        }
        if (line.find('\r') != std::string_view::npos || !parse_field_line(line, false)) {
          return fail(400, "Malformed header field");
        }
        continue;
      }
      case State::kBody: {
        const std::uint64_t n = std::min<std::uint64_t>(buffered(), remaining_);
        take_body_bytes(n);
        remaining_ -= n;
        if (remaining_ > 0) return Result::kNeedMore;
        state_ = State::kDone;
        continue;
      }
      case State::kChunkSize: {
        std::string_view line;
        bool too_long = false;
        if (!take_line(line, kMaxChunkLine, too_long)) {
          if (too_long) return fail(400, "Chunk size line too long");
          return Result::kNeedMore;
        }
        std::size_t digits = 0;
        std::uint64_t size = 0;
        while (digits < line.size() && std::isxdigit(static_cast<unsigned char>(line[digits]))) {
          if (digits == 16) return fail(400, "Chunk size too large");
          const char c = ascii_lower(line[digits]);
          size = size * 16 + static_cast<std::uint64_t>(c <= '9' ? c - '0' : c - 'a' + 10);
          ++digits;
        }
        // Extensions are ignored; whitespace is allowed only before one (BWS), never as the
        // end of the line, which lenient parsers disagree about.
        std::string_view ext = line.substr(digits);
        while (!ext.empty() && (ext.front() == ' ' || ext.front() == '\t')) ext.remove_prefix(1);
        const bool ext_ok =
            ext.empty() ? ext.size() == line.size() - digits : ext.front() == ';' && is_field_value(ext);
        if (digits == 0 || !ext_ok) return fail(400, "Invalid chunk size");
        if (size == 0) {
          state_ = State::kTrailers;
          head_bytes_ = 0;  // the trailer section gets a budget of its own
          field_count_ = 0;
          continue;
        }
        if (size > limits_.max_discard - std::min(request_.body_received, limits_.max_discard)) {
          return fail(413,
                      "The body is larger than this server accepts (" + std::to_string(limits_.max_body) + " bytes)");
        }
        if (storing_ && request_.body.size() + size > limits_.max_body) {
          storing_ = false;
          request_.body_too_large = true;
          std::string().swap(request_.body);
        }
        remaining_ = size;
        state_ = State::kChunkData;
        continue;
      }
      case State::kChunkData: {
        const std::uint64_t n = std::min<std::uint64_t>(buffered(), remaining_);
        take_body_bytes(n);
        remaining_ -= n;
        if (remaining_ > 0) return Result::kNeedMore;
        state_ = State::kChunkDataEnd;
        continue;
      }
      case State::kChunkDataEnd: {
        if (buffered() == 0) return Result::kNeedMore;
        const char c = buf_[begin_];
        if (c == '\r') {
          if (buffered() < 2) return Result::kNeedMore;
          if (buf_[begin_ + 1] != '\n') return fail(400, "Chunk data not followed by CRLF");
          begin_ += 2;
        } else if (c == '\n') {
          begin_ += 1;
        } else {
          return fail(400, "Chunk data not followed by CRLF");
        }
        scanned_ = 0;
        state_ = State::kChunkSize;
        continue;
      }
      case State::kTrailers: {
        std::string_view line;
        bool too_long = false;
        const std::size_t budget = limits_.max_head - std::min(head_bytes_, limits_.max_head);
        if (!take_line(line, budget, too_long)) {
          if (too_long) return fail(431, "The trailer section is too large");
          return Result::kNeedMore;
        }
        if (line.empty()) {
          state_ = State::kDone;
          continue;
        }
        if (++field_count_ > limits_.max_fields) return fail(431, "Too many trailer fields");
        if (line.find('\r') != std::string_view::npos || !parse_field_line(line, true)) {
          return fail(400, "Malformed trailer field");
        }
        continue;
      }
      case State::kDone:
        return Result::kRequest;
      case State::kFailed:
        return Result::kError;
    }
  }
}

}  // namespace kasama::server
