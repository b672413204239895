#include "health/http_status.h"

#include <gtest/gtest.h>

#include <random>

namespace health {
namespace {

using namespace std::string_view_literals;
using Result = StatusLineParser::Result;
using Kind = StatusLineParser::Kind;

Result parseWhole(std::string_view bytes) {
  StatusLineParser parser;
  return parser.feed(bytes);
}

Result parseByteByByte(std::string_view bytes) {
  StatusLineParser parser;
  Result result;
  for (char c : bytes) result = parser.feed(std::span<const char>(&c, 1));
  return result;
}

// Every way of cutting the bytes into two feeds must give the whole's verdict.
void expectSameAtEverySplit(std::string_view bytes, const Result& expected) {
  for (size_t cut = 0; cut <= bytes.size(); ++cut) {
    StatusLineParser parser;
    parser.feed(bytes.substr(0, cut));
    EXPECT_EQ(parser.feed(bytes.substr(cut)), expected) << "cut at " << cut;
  }
}

struct Good {
  std::string_view response;
  int status;
};

TEST(StatusLine, AcceptsWellFormedLines) {
  const Good corpus[] = {
      {"HTTP/1.0 200 OK\r\n", 200},
      {"HTTP/1.1 503 Service Unavailable\r\n", 503},
      {"HTTP/1.1 200\r\n", 200},
      {"HTTP/1.1 204 \r\n", 204},
      {"HTTP/1.1 200 OK\n", 200},
      {"HTTP/1.1 301\n", 301},
      {"HTTP/1.1 100 Continue\r\n", 100},
      {"HTTP/1.1 599 Whatever\r\n", 599},
      {"HTTP/1.9 200 OK\r\n", 200},
      {"HTTP/1.1 200 D\xc3\xa9j\xc3\xa0 vu\tfine (really)!\r\n", 200},
      {"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 404},
      {"HTTP/1.1 200 OK\r\n\x01\x02 anything after the line is not ours", 200},
  };
  for (const Good& good : corpus) {
    SCOPED_TRACE(good.response);
    Result expected = Result::done(good.status);
    EXPECT_EQ(parseWhole(good.response), expected);
    EXPECT_EQ(parseByteByByte(good.response), expected);
    expectSameAtEverySplit(good.response, expected);
  }
}

struct BadCase {
  std::string_view response;
  std::string_view reason;
};

TEST(StatusLine, RejectsMalformedLines) {
  const BadCase corpus[] = {
      {"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", "not HTTP"},
      {"http/1.1 200 OK\r\n", "not HTTP"},
      {" HTTP/1.1 200 OK\r\n", "not HTTP"},
      {"\r\n", "not HTTP"},
      {"\n", "not HTTP"},
      {"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"sv, "not HTTP"},
      {"\0\0\0\0"sv, "not HTTP"},
      {"HTTP/2 200\r\n", "unsupported HTTP version"},
      {"HTTP/2.0 200 OK\r\n", "unsupported HTTP version"},
      {"HTTP/1.x 200 OK\r\n", "unsupported HTTP version"},
      {"HTTP/1. 200 OK\r\n", "unsupported HTTP version"},
      {"HTTP/1.1 20 OK\r\n", "bad status code"},
      {"HTTP/1.1 2000 OK\r\n", "bad status code"},
      {"HTTP/1.1 099 x\r\n", "bad status code"},
      {"HTTP/1.1 600 x\r\n", "bad status code"},
      {"HTTP/1.1 000\r\n", "bad status code"},
      {"HTTP/1.1 OK\r\n", "bad status code"},
      {"HTTP/1.1 2x0 OK\r\n", "bad status code"},
      {"HTTP/1.1  200 OK\r\n", "bad status code"},
      {"HTTP/1.1\r\n", "bad status line"},
      {"HTTP/1.1200 OK\r\n", "bad status line"},
      {"HTTP/1.10 200 OK\r\n", "bad status line"},
      {"HTTP/1.1 200OK\r\n", "bad status line"},
      {"HTTP/1.1 200\tOK\r\n", "bad status line"},
      {"HTTP/1.1 200 O\0K\r\n"sv, "bad status line"},
      {"HTTP/1.1 200 OK\x7f\r\n", "bad status line"},
      {"HTTP/1.1 200 OK\x1b[31m\r\n", "bad status line"},
      {"HTTP/1.1 200 OK\rX\n", "bad status line"},
      {"HTTP/1.1 200\r\r\n", "bad status line"},
  };
  for (const BadCase& bad : corpus) {
    SCOPED_TRACE(testing::PrintToString(std::string(bad.response)));
    Result expected = Result::bad(bad.reason);
    EXPECT_EQ(parseWhole(bad.response), expected);
    EXPECT_EQ(parseByteByByte(bad.response), expected);
    expectSameAtEverySplit(bad.response, expected);
  }
}

TEST(StatusLine, GivesUpAsSoonAsThePrefixDiffers) {
  EXPECT_EQ(parseWhole("S"), Result::bad("not HTTP"));
  EXPECT_EQ(parseWhole("HTTX"), Result::bad("not HTTP"));
  EXPECT_EQ(parseWhole("HTTP/2"), Result::bad("unsupported HTTP version"));
  EXPECT_EQ(parseWhole("HTTP/1.1 2000"), Result::bad("bad status code"));
  EXPECT_EQ(parseWhole("HTTP/1.1 099"), Result::bad("bad status code"));
}

TEST(StatusLine, WaitsForTheEndOfTheLine) {
  for (std::string_view partial : {"", "H", "HTTP/1.", "HTTP/1.1", "HTTP/1.1 ", "HTTP/1.1 20",
                                   "HTTP/1.1 200", "HTTP/1.1 200 OK", "HTTP/1.1 200 OK\r"}) {
    SCOPED_TRACE(partial);
    StatusLineParser parser;
    EXPECT_EQ(parser.feed(partial), Result::needMore());
    std::string_view why = partial.empty() ? "empty response" : "truncated status line";
    EXPECT_EQ(parser.finish(), Result::bad(why));
  }
}

TEST(StatusLine, CarriageReturnWithoutLineFeedThenMoreIsBad) {
  StatusLineParser parser;
  EXPECT_EQ(parser.feed("HTTP/1.1 200 OK\r"sv), Result::needMore());
  EXPECT_EQ(parser.feed("HTTP/1.1 200 OK\r\n"sv), Result::bad("bad status line"));
}

TEST(StatusLine, VerdictIsFinal) {
  StatusLineParser parser;
  EXPECT_EQ(parser.feed("HTTP/1.1 200 OK\n"sv), Result::done(200));
  EXPECT_EQ(parser.feed("\0garbage"sv), Result::done(200));
  EXPECT_EQ(parser.finish(), Result::done(200));
  EXPECT_EQ(parser.result(), Result::done(200));

  StatusLineParser bad;
  EXPECT_EQ(bad.feed("SSH-2.0"sv), Result::bad("not HTTP"));
  EXPECT_EQ(bad.feed("HTTP/1.1 200 OK\r\n"sv), Result::bad("not HTTP"));
  EXPECT_EQ(bad.finish(), Result::bad("not HTTP"));
}

TEST(StatusLine, LineIsBoundedIncludingItsEnding) {
  constexpr size_t kMax = StatusLineParser::kMaxLineLength;
  std::string head = "HTTP/1.1 200 ";
  std::string fits = head + std::string(kMax - head.size() - 2, 'a') + "\r\n";
  ASSERT_EQ(fits.size(), kMax);
  EXPECT_EQ(parseWhole(fits), Result::done(200));
  EXPECT_EQ(parseByteByByte(fits), Result::done(200));

  std::string over = head + std::string(kMax - head.size() - 1, 'a') + "\r\n";
  EXPECT_EQ(parseWhole(over), Result::bad("status line too long"));

  // Endless reason phrase, no newline: the verdict comes at byte kMax + 1.
  StatusLineParser parser;
  std::string endless = head + std::string(kMax - head.size(), 'a');
  EXPECT_EQ(parser.feed(endless), Result::needMore());
  EXPECT_EQ(parser.feed("a"sv), Result::bad("status line too long"));
}

TEST(StatusLine, HugeInputIsJudgedWithoutReadingItAll) {
  std::string huge = "HTTP/1.1 200 " + std::string(1 << 20, 'x');
  EXPECT_EQ(parseWhole(huge), Result::bad("status line too long"));
  StatusLineParser chunked;
  for (size_t at = 0; at < huge.size(); at += 100) {
    chunked.feed(std::string_view(huge).substr(at, 100));
  }
  EXPECT_EQ(chunked.result(), Result::bad("status line too long"));
}

TEST(StatusLine, RandomBytesNeverCrashAndSplitsAgree) {
  std::mt19937 random(3);
  for (int round = 0; round < 2000; ++round) {
    std::string bytes = round % 2 == 0 ? "HTTP/1.1 " : "";
    size_t length = random() % 40;
    for (size_t i = 0; i < length; ++i) {
      bytes += round % 3 == 0 ? "0123456789 \r\nOK"[random() % 15] : static_cast<char>(random());
    }
    Result whole = parseWhole(bytes);
    EXPECT_EQ(parseByteByByte(bytes), whole);
    if (whole.kind == Kind::Done) {
      EXPECT_GE(whole.status, 100);
      EXPECT_LE(whole.status, 599);
    }
    EXPECT_EQ(whole.kind == Kind::Bad, !whole.reason.empty());
  }
}

TEST(BuildRequest, FormatsAGetThatClosesTheConnection) {
  EXPECT_EQ(buildRequest("/health", "127.0.0.1:9001"),
            "GET /health HTTP/1.1\r\nHost: 127.0.0.1:9001\r\nConnection: close\r\n"
            "User-Agent: ringlb-health\r\n\r\n");
  EXPECT_EQ(buildRequest("/ready?full=1", "[::1]:8080"),
            "GET /ready?full=1 HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n"
            "User-Agent: ringlb-health\r\n\r\n");
}

TEST(BuildRequest, RefusesValuesThatWouldBreakTheRequest) {
  EXPECT_EQ(buildRequest("health", "h"), "");
  EXPECT_EQ(buildRequest("", "h"), "");
  EXPECT_EQ(buildRequest("/a b", "h"), "");
  EXPECT_EQ(buildRequest("/a\r\nX-Injected: 1", "h"), "");
  EXPECT_EQ(buildRequest("/a\n", "h"), "");
  EXPECT_EQ(buildRequest("/a\tb", "h"), "");
  EXPECT_EQ(buildRequest("/\xc3\xa9", "h"), "");
  EXPECT_EQ(buildRequest("/", ""), "");
  EXPECT_EQ(buildRequest("/", "a b"), "");
  EXPECT_EQ(buildRequest("/", "h\r\n"), "");
  EXPECT_EQ(buildRequest("/", "h\0"sv), "");
  EXPECT_NE(buildRequest("/", "h"), "");
}

}  // namespace
}  // namespace health
