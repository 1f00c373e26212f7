#pragma once
// Information categories (情報区分, R-03): every resource version belongs to one, decided by
// the rules in conformance/kasama/categories.json when it is written and kept as a
// meta.security label (system kSystem) and as a small number in the resource tables.
// Institutions and users are granted categories for read or read-write: a Range.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "resources/json.hpp"

namespace kasama::access {

using resources::Json;

// 0 is "unlabelled" (rows from before labelling; nobody outside the city is granted it).
using Category = std::uint8_t;
inline constexpr Category kUnlabelled = 0;
using CategoryMask = std::uint32_t;  // bit c set: category c
inline constexpr CategoryMask kAllCategories = ~CategoryMask{0};
inline constexpr CategoryMask bit(Category c) { return CategoryMask{1} << c; }

// Categories granted for reading and for writing. Writing implies reading.
struct Range {
  CategoryMask read = 0, write = 0;
  Range intersect(const Range& o) const { return {read & o.read, write & o.write}; }
  bool operator==(const Range&) const = default;
};

class Categories {
 public:
  static const Categories& instance();  // conformance/kasama/categories.json
  // From the rules document (throws std::runtime_error when it is malformed).
  explicit Categories(const Json& doc);

  const std::string& system() const { return system_; }
  // The category of a resource by the rules (always a labelled one).
  Category classify(const std::string& type, const Json& resource) const;
  // The category a stored version's label names (kUnlabelled when it has none of ours).
  Category label_of(const Json& resource) const;
  // Replaces any label of our system in meta.security with the category's.
  void set_label(Json& resource, Category c) const;

  std::optional<Category> parse(std::string_view code) const;
  const std::string& code(Category c) const;  // "" for kUnlabelled or unknown
  const std::string& display(Category c) const;
  std::size_t size() const { return codes_.size(); }  // categories 1 … size()
  Category directory() const { return directory_; }

  // A range as JSON: {"care": "read-write", "checkup": "read", …} (values "read",
  // "read-write"; "r"/"rw" also taken). Throws std::invalid_argument naming the offending
  // member.
  Range parse_range(const Json& j) const;
  Json range_json(const Range& r) const;
  // Every category read-write.
  Range full_range() const;

 private:
  struct Rule {
    std::string type;     // "*" any
    std::string profile;  // meta.profile canonical (without |version), or empty
    std::string element, coding_system, coding_code;
    bool compartment = false;  // the type is in the Patient compartment
    Category category = 0;
  };
  bool matches(const Rule& r, const std::string& type, const Json& resource) const;

  std::string system_;
  std::vector<std::string> codes_, displays_;  // index = category - 1
  std::vector<Rule> rules_;
  Category directory_ = 0;
};

}  // namespace kasama::access
