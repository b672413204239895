#pragma once
// Private to config/: typed reads of TOML values that record every problem
// (with the offending node's position) instead of stopping at the first.

#include <toml++/toml.h>

#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/choices.h"
#include "config/config.h"

namespace config {

// Values already used, each with the line where it first appeared.
using FirstSeen = std::map<std::string, int, std::less<>>;

// Each read*() leaves `out` untouched when the key is absent or its value is
// wrong, and returns true only when it stored a valid value. Wrong values are
// recorded as errors; absent keys are not (see require()).
class TomlReader {
 public:
  explicit TomlReader(std::string file) : file_(std::move(file)) {}

  void error(const toml::source_region& where, std::string message);
  void error(const toml::node& node, std::string message) {
    error(node.source(), std::move(message));
  }
  void errorWithoutPosition(std::string message);

  // Records every key of `table` not in `known`; `where` names the table.
  void checkKeys(const toml::table& table, std::span<const std::string_view> known,
                 std::string_view where);
  // Records a "missing required key" error at the table when `key` is absent.
  bool require(const toml::table& table, std::string_view key, std::string_view where);

  bool readString(const toml::table& table, std::string_view key, std::string& out);
  bool readNonEmptyString(const toml::table& table, std::string_view key, std::string& out);
  bool readInt(const toml::table& table, std::string_view key, int min, int max, int& out);
  bool readBool(const toml::table& table, std::string_view key, bool& out);
  // A float or an integer.
  bool readNumber(const toml::table& table, std::string_view key, double& out);
  // Durations must be greater than zero.
  bool readDuration(const toml::table& table, std::string_view key, Duration& out);
  bool readAddress(const toml::table& table, std::string_view key, Address& out);

  template <typename E, size_t N>
  bool readEnum(const toml::table& table, std::string_view key, std::string_view what,
                const Choice<E> (&choices)[N], E& out) {
    std::string name;
    if (!readString(table, key, name)) return false;
    for (const Choice<E>& choice : choices) {
      if (choice.name == name) {
        out = choice.value;
        return true;
      }
    }
    std::vector<std::string_view> names;
    for (const Choice<E>& choice : choices) names.push_back(choice.name);
    unknownChoice(*table.get(key), what, name, names);
    return false;
  }

  // Records an error at `node` and returns true when `value` was seen before:
  // 'duplicate WHAT "VALUE"CONTEXT (first at line N)'.
  bool isDuplicate(FirstSeen& seen, const std::string& value, const toml::node& node,
                   std::string_view what, std::string_view context);

  // Returns the table at `key`, or nullptr (recording an error) when the
  // value there is not a table. `header` is how the table is written: "[global]".
  const toml::table* tableAt(const toml::table& parent, std::string_view key,
                             std::string_view header);
  // Returns the array of tables at `key`, or nullptr (recording errors) when
  // the value or any element is not a table. `header`: "[[listener]]".
  const toml::array* tableArrayAt(const toml::table& parent, std::string_view key,
                                  std::string_view header);

  // The errors so far, ordered by position; those without one come last.
  std::vector<Error> takeErrors();

 private:
  void wrongType(const toml::node& node, std::string_view key, std::string_view expected);
  void unknownChoice(const toml::node& node, std::string_view what, std::string_view name,
                     const std::vector<std::string_view>& names);

  std::string file_;
  std::vector<Error> errors_;
};

// "string", "integer", "table", ... as a user would call them.
std::string_view typeName(toml::node_type type);
// 12 for a node that starts on line 12.
int lineOf(const toml::node& node);

}  // namespace config
