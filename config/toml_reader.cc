#include "config/toml_reader.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

namespace config {

std::string_view typeName(toml::node_type type) {
  switch (type) {
    case toml::node_type::table:
      return "table";
    case toml::node_type::array:
      return "array";
    case toml::node_type::string:
      return "string";
    case toml::node_type::integer:
      return "integer";
    case toml::node_type::floating_point:
      return "float";
    case toml::node_type::boolean:
      return "boolean";
    case toml::node_type::date:
      return "date";
    case toml::node_type::time:
      return "time";
    case toml::node_type::date_time:
      return "date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

int lineOf(const toml::node& node) { return static_cast<int>(node.source().begin.line); }

void TomlReader::error(const toml::source_region& where, std::string message) {
  errors_.push_back(Error{file_, static_cast<int>(where.begin.line),
                          static_cast<int>(where.begin.column), std::move(message)});
}

void TomlReader::errorWithoutPosition(std::string message) {
  errors_.push_back(Error{file_, 0, 0, std::move(message)});
}

void TomlReader::checkKeys(const toml::table& table, std::span<const std::string_view> known,
                           std::string_view where) {
  for (auto&& [key, value] : table) {
    if (std::find(known.begin(), known.end(), key.str()) == known.end())
      error(key.source(), fmt::format(R"(unknown key "{}" in {})", printable(key.str()), where));
  }
}

bool TomlReader::require(const toml::table& table, std::string_view key, std::string_view where) {
  if (table.contains(key)) return true;
  error(table, fmt::format(R"(missing required key "{}" in {})", key, where));
  return false;
}

void TomlReader::wrongType(const toml::node& node, std::string_view key,
                           std::string_view expected) {
  error(node, fmt::format(R"("{}" must be {}, got {})", key, expected, typeName(node.type())));
}

void TomlReader::unknownChoice(const toml::node& node, std::string_view what, std::string_view name,
                               const std::vector<std::string_view>& names) {
  std::string expected;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) expected += i + 1 == names.size() ? " or " : ", ";
    expected += names[i];
  }
  error(node, fmt::format(R"(unknown {} "{}" (expected {}))", what, printable(name), expected));
}

bool TomlReader::readString(const toml::table& table, std::string_view key, std::string& out) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return false;
  if (!node->is_string()) {
    wrongType(*node, key, "a string");
    return false;
  }
  out = node->as_string()->get();
  return true;
}

bool TomlReader::readNonEmptyString(const toml::table& table, std::string_view key,
                                    std::string& out) {
  std::string value;
  if (!readString(table, key, value)) return false;
  if (value.empty()) {
    error(*table.get(key), fmt::format(R"("{}" must not be empty)", key));
    return false;
  }
  out = std::move(value);
  return true;
}

bool TomlReader::readInt(const toml::table& table, std::string_view key, int min, int max,
                         int& out) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return false;
  if (!node->is_integer()) {
    wrongType(*node, key, "an integer");
    return false;
  }
  int64_t value = node->as_integer()->get();
  if (value < min || value > max) {
    error(*node,
          fmt::format(R"("{}" must be an integer from {} to {}, got {})", key, min, max, value));
    return false;
  }
  out = static_cast<int>(value);
  return true;
}

bool TomlReader::readBool(const toml::table& table, std::string_view key, bool& out) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return false;
  if (!node->is_boolean()) {
    wrongType(*node, key, "a boolean (true or false)");
    return false;
  }
  out = node->as_boolean()->get();
  return true;
}

bool TomlReader::readNumber(const toml::table& table, std::string_view key, double& out) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return false;
  if (const auto* value = node->as_floating_point()) {
    out = value->get();
    return true;
  }
  if (const auto* value = node->as_integer()) {
    out = static_cast<double>(value->get());
    return true;
  }
  wrongType(*node, key, "a number");
  return false;
}

bool TomlReader::readDuration(const toml::table& table, std::string_view key, Duration& out) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return false;
  if (!node->is_string()) {
    wrongType(*node, key, R"(a duration string such as "250ms", "2s", "1m" or "1h")");
    return false;
  }
  std::string whyNot;
  std::optional<Duration> value = parseDuration(node->as_string()->get(), &whyNot);
  if (!value) {
    error(*node, fmt::format(R"("{}": {})", key, whyNot));
    return false;
  }
  if (value->count() == 0) {
    error(*node, fmt::format(R"("{}" must be greater than zero)", key));
    return false;
  }
  out = *value;
  return true;
}

bool TomlReader::readAddress(const toml::table& table, std::string_view key, Address& out) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return false;
  if (!node->is_string()) {
    wrongType(*node, key, R"(an address string such as "127.0.0.1:8080" or "[::1]:8080")");
    return false;
  }
  std::string whyNot;
  std::optional<Address> value = parseAddress(node->as_string()->get(), &whyNot);
  if (!value) {
    error(*node, fmt::format(R"("{}": {})", key, whyNot));
    return false;
  }
  out = std::move(*value);
  return true;
}

bool TomlReader::isDuplicate(FirstSeen& seen, const std::string& value, const toml::node& node,
                             std::string_view what, std::string_view context) {
  auto [it, inserted] = seen.emplace(value, lineOf(node));
  if (inserted) return false;
  error(node, fmt::format(R"(duplicate {} "{}"{} (first at line {}))", what, printable(value), context,
                          it->second));
  return true;
}

const toml::table* TomlReader::tableAt(const toml::table& parent, std::string_view key,
                                       std::string_view header) {
  const toml::node* node = parent.get(key);
  if (node == nullptr) return nullptr;
  if (!node->is_table()) wrongType(*node, key, fmt::format("a table ({})", header));
  return node->as_table();
}

const toml::array* TomlReader::tableArrayAt(const toml::table& parent, std::string_view key,
                                            std::string_view header) {
  const toml::node* node = parent.get(key);
  if (node == nullptr) return nullptr;
  std::string expected = fmt::format("an array of tables ({})", header);
  if (!node->is_array()) {
    wrongType(*node, key, expected);
    return nullptr;
  }
  bool allTables = true;
  for (const toml::node& element : *node->as_array()) {
    if (!element.is_table()) {
      wrongType(element, key, expected);
      allTables = false;
    }
  }
  return allTables ? node->as_array() : nullptr;
}

std::vector<Error> TomlReader::takeErrors() {
  static constexpr int kLast = std::numeric_limits<int>::max();
  auto position = [](const Error& e) { return std::pair(e.line == 0 ? kLast : e.line, e.column); };
  std::stable_sort(errors_.begin(), errors_.end(),
                   [&](const Error& a, const Error& b) { return position(a) < position(b); });
  return std::move(errors_);
}

}  // namespace config
