// libFuzzer target over the HTTP/1.1 request parser. The first two bytes pick the limits and
// how the rest is split into reads; the rest is the byte stream of a connection. Besides
// crashes, it aborts when the outcome depends on the split (whole vs. pieces) or when a
// promise breaks (kept body over the limit, unbounded buffering, an error that does not stick).
//   cmake -S . -B build-fuzz -DKASAMA_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ && cmake --build build-fuzz --target
//   fuzz_http_parser build-fuzz/tests/fuzz/fuzz_http_parser -max_total_time=300 -dict=tests/fuzz/http.dict
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "server/http/http_parser.hpp"

namespace {

using kasama::server::HttpLimits;
using kasama::server::HttpRequestParser;
using Result = HttpRequestParser::Result;

void check(bool ok) {
  if (!ok) std::abort();
}

std::string run(std::string_view input, const HttpLimits& limits, std::size_t step) {
  HttpRequestParser p(limits);
  std::string out;
  std::size_t off = 0;
  for (;;) {
    const Result r = p.next();
    if (r == Result::kRequest) {
      const auto& q = p.request();
      check(q.body.size() <= limits.max_body);
      check(q.fields.size() <= limits.max_fields);
      check(!q.content_length || q.body_too_large || q.body.size() == *q.content_length);
      out += q.method + ' ' + q.target + ' ' + std::to_string(q.minor_version) + (q.keep_alive ? " ka " : " close ") +
             std::to_string(q.body.size()) + (q.body_too_large ? " big" : "") + '|';
      continue;
    }
    if (r == Result::kError) {
      check(p.next() == Result::kError);
      return out + 'E' + std::to_string(p.error().status);
    }
    check(p.buffered() <= std::max(limits.max_head, HttpRequestParser::kMaxChunkLine) + 1);
    if (off >= input.size()) return out + (p.idle() ? "idle" : "partial");
    const std::size_t n = std::min(step, input.size() - off);
    p.feed(input.substr(off, n));
    off += n;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  HttpLimits limits;
  limits.max_head = 64 + static_cast<std::size_t>(data[0]) * 16;
  limits.max_fields = 1 + data[0] % 32;
  limits.max_body = data[1] % 64;
  limits.max_discard = limits.max_body * 4;
  const std::size_t step = 1 + data[1] % 29;
  const std::string_view input(reinterpret_cast<const char*>(data) + 2, size - 2);
  check(run(input, limits, input.size() + 1) == run(input, limits, step));
  return 0;
}
