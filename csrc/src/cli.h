// cli.h — moe-bench's command line (csrc/CONTRACT.md, "Flags"). Bad flags or
// values: exit 2 with one line naming the flag and what was expected.
#pragma once
#include "common.h"
#include "variant_table.h"

namespace moe {

// Parses argv; presets and the default variant come from the table. Sets
// `list` for --list (then nothing else is checked).
Config parse_command_line(int argc, char** argv, const VariantTable& table, bool& list);

}  // namespace moe
