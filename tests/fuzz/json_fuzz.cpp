// libFuzzer target over the JSON parser, the serializer and the validator.
//   cmake -S . -B build-fuzz -DKASAMA_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ && cmake --build build-fuzz --target
//   fuzz_json build-fuzz/tests/fuzz/fuzz_json -max_total_time=300 ../shared/corpora/r4-examples
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "resources/json.hpp"
#include "resources/validator.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kasama::resources;
  auto r = parse_json(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!r.ok) return 0;
  (void)validate_resource(r.value);
  auto again = parse_json(dump_json(r.value));
  if (!again.ok || !(again.value == r.value)) std::abort();
  return 0;
}
