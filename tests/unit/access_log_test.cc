// The access log's buffer, drops and writer token against real pipes and
// files (no sockets, no sleeping: every write is non-blocking).
#include "lb/access_log.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <fstream>
#include <string>
#include <vector>

namespace lb {
namespace {

class Pipe {
 public:
  Pipe() {
    int fds[2];
    EXPECT_EQ(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    read_ = fds[0];
    write_ = fds[1];
  }
  ~Pipe() {
    ::close(read_);
    ::close(write_);
  }
  int writeEnd() const { return write_; }
  // Fills the pipe through its own (non-blocking) write end.
  void fill() {
    std::string junk(4096, 'x');
    while (::write(write_, junk.data(), junk.size()) > 0) {
    }
  }
  // Everything readable now.
  std::string drain() {
    std::string out;
    char buf[65536];
    ssize_t n;
    while ((n = ::read(read_, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }

 private:
  int read_ = -1;
  int write_ = -1;
};

std::vector<std::string> linesOf(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1)
    lines.push_back(text.substr(start, nl - start));
  EXPECT_EQ(start, text.size()) << "output ends inside a line";
  return lines;
}

// A line the way the access log writes it: starts with the time, ends with
// the end reason; `listener` makes it as long as a test needs.
AccessRecord record(std::string_view listener, std::string_view client = "127.0.0.1:1000") {
  AccessRecord r;
  r.listener = listener;
  r.client = client;
  r.end = EndReason::MemberClosed;
  return r;
}

bool isWholeLine(const std::string& line) {
  return line.rfind("{\"time\":\"", 0) == 0 && line.ends_with(",\"end\":\"member_closed\"}");
}

std::shared_ptr<AccessLogSink> sinkOn(int fd) {
  std::string error;
  auto sink = AccessLogSink::openDescriptor(fd, &error);
  EXPECT_TRUE(sink) << error;
  return sink;
}

TEST(AccessLog, FullOutputDropsWholeLinesAndNeverWaits) {
  Pipe pipe;
  auto sink = sinkOn(pipe.writeEnd());
  pipe.fill();
  AccessLog log(sink, 4096);
  for (int i = 0; i < 100; ++i) {
    log.record(record("front"));
    log.flush();  // takes nothing, returns at once
  }
  EXPECT_LE(log.bufferedBytes(), 4096u);
  uint64_t dropped = log.droppedLines();
  EXPECT_GT(dropped, 0u);

  std::string junk = pipe.drain();
  log.flush();
  auto lines = linesOf(pipe.drain());
  EXPECT_EQ(lines.size() + dropped, 100u);
  for (const auto& line : lines) EXPECT_TRUE(isWholeLine(line)) << line;
  EXPECT_EQ(log.bufferedBytes(), 0u);
}

// A line longer than the pipe holds is written in parts; another worker's
// line must not land between them.
TEST(AccessLog, NoOtherWorkersLineInsideAPartlyWrittenLine) {
  Pipe pipe;
  auto sink = sinkOn(pipe.writeEnd());
  AccessLog a(sink);
  AccessLog b(sink);
  std::string longName(100'000, 'a');
  a.record(record(longName));
  a.flush();  // the pipe takes 64 KiB of it
  EXPECT_GT(a.bufferedBytes(), 0u);
  std::string out = pipe.drain();  // room again, with a's line half written
  b.record(record("b"));
  b.flush();  // a holds the token: b keeps its line, without waiting
  EXPECT_GT(b.bufferedBytes(), 0u);

  a.flush();  // the rest of a's line; the token is free again
  EXPECT_EQ(a.bufferedBytes(), 0u);
  b.flush();
  EXPECT_EQ(b.bufferedBytes(), 0u);
  out += pipe.drain();
  auto lines = linesOf(out);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_TRUE(isWholeLine(lines[0]));
  EXPECT_NE(lines[0].find(longName), std::string::npos);
  EXPECT_TRUE(isWholeLine(lines[1]));
  EXPECT_NE(lines[1].find("\"listener\":\"b\""), std::string::npos);
}

TEST(AccessLog, OneFlushWritesWhatTheOutputTakes) {
  Pipe pipe;
  auto sink = sinkOn(pipe.writeEnd());
  pipe.fill();
  std::string junk = pipe.drain();
  AccessLog log(sink);
  for (int i = 0; i < 200; ++i) log.record(record("front"));
  log.flush();
  EXPECT_EQ(log.bufferedBytes(), 0u);
  auto lines = linesOf(pipe.drain());
  EXPECT_EQ(lines.size(), 200u);
}

TEST(AccessLog, UnwrittenLinesAtExitAreCountedAsDropped) {
  Pipe pipe;
  auto sink = sinkOn(pipe.writeEnd());
  pipe.fill();
  AccessLog log(sink);
  for (int i = 0; i < 3; ++i) log.record(record("front"));
  log.flushBeforeExit(std::chrono::milliseconds(0));
  EXPECT_EQ(log.droppedLines(), 3u);
  EXPECT_EQ(log.bufferedBytes(), 0u);
}

class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/ringlb-access-log-XXXXXX";
    path_ = mkdtemp(pattern);
  }
  ~TempDir() { std::system(("rm -rf " + path_).c_str()); }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::vector<std::string> fileLines(const std::string& path) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return linesOf(text);
}

TEST(AccessLogSink, ReopenSwitchesEveryWorkerAtItsNextFlush) {
  TempDir dir;
  std::string path = dir / "access.log";
  mode_t oldMask = umask(022);
  std::string error;
  auto sink = AccessLogSink::open(path, &error);
  ASSERT_TRUE(sink) << error;
  struct stat st{};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);

  AccessLog a(sink);
  AccessLog b(sink);
  a.record(record("before-a"));
  a.flush();
  b.record(record("before-b"));
  b.flush();
  ASSERT_EQ(rename(path.c_str(), (dir / "access.log.1").c_str()), 0);
  ASSERT_TRUE(sink->reopen());
  a.record(record("after-a"));
  a.flush();
  b.record(record("after-b"));
  b.flush();
  umask(oldMask);

  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  auto old = fileLines(dir / "access.log.1");
  auto fresh = fileLines(path);
  ASSERT_EQ(old.size(), 2u);
  ASSERT_EQ(fresh.size(), 2u);
  EXPECT_NE(old[0].find("before-a"), std::string::npos);
  EXPECT_NE(old[1].find("before-b"), std::string::npos);
  EXPECT_NE(fresh[0].find("after-a"), std::string::npos);
  EXPECT_NE(fresh[1].find("after-b"), std::string::npos);
}

TEST(AccessLogSink, RefusesASymlink) {
  TempDir dir;
  std::string target = dir / "elsewhere.log";
  std::ofstream(target).put('\n');
  ASSERT_EQ(symlink(target.c_str(), (dir / "access.log").c_str()), 0);
  std::string error;
  EXPECT_FALSE(AccessLogSink::open(dir / "access.log", &error));
  EXPECT_NE(error.find("symbolic link"), std::string::npos) << error;
}

TEST(AccessLogSink, StdoutAndOffHaveNothingToReopen) {
  std::string error;
  auto off = AccessLogSink::open("off", &error);
  ASSERT_TRUE(off);
  EXPECT_FALSE(off->enabled());
  EXPECT_FALSE(off->reopen());
  Pipe pipe;
  auto sink = sinkOn(pipe.writeEnd());
  EXPECT_TRUE(sink->enabled());
  EXPECT_FALSE(sink->reopen());
}

}  // namespace
}  // namespace lb
