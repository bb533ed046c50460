// The subcommands: each names its words ("sandbox create"), the options it takes, how many
// positional arguments, and the function that runs it. main.cc parses and dispatches.
#pragma once

#include <string>
#include <vector>

#include "client/cli/args.h"
#include "client/cli/client.h"

namespace tcplab::cli {

struct Command {
  std::vector<std::string> words;  // {"sandbox", "create"}
  std::vector<OptionSpec> options;
  size_t min_positional = 0, max_positional = 0;
  std::string positional_names;    // for the message when the count is wrong: "NAME"
  int (*run)(Client& client, const Args& args) = nullptr;
};

const std::vector<Command>& Commands();

// The full usage text (tcplab help).
const char* UsageText();

// Sandbox commands (sandbox.cc).
int RunSandboxCreate(Client& client, const Args& args);
int RunSandboxList(Client& client, const Args& args);
int RunSandboxShow(Client& client, const Args& args);
int RunSandboxRemove(Client& client, const Args& args);
int RunImpair(Client& client, const Args& args);

// Stream commands (watch.cc).
int RunWatch(Client& client, const Args& args);
int RunPcap(Client& client, const Args& args);

// Grading (grade.cc).
int RunGrade(Client& client, const Args& args);
int RunGradeResults(Client& client, const Args& args);

// Devices under test (dut.cc).
int RunDut(Client& client, const Args& args);
int RunDutList(Client& client, const Args& args);

}  // namespace tcplab::cli
