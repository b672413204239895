#include "lb/admin_http.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "lb/admin.h"

namespace lb {
namespace {

struct Parsed {
  ParseOutcome outcome;
  AdminRequest request;
};

Parsed parse(std::string_view bytes) {
  Parsed p;
  p.outcome = parseAdminRequest(bytes, &p.request);
  return p;
}

const char* name(ParseOutcome outcome) {
  switch (outcome) {
    case ParseOutcome::NeedMore: return "NeedMore";
    case ParseOutcome::Done: return "Done";
    case ParseOutcome::Bad: return "Bad";
    case ParseOutcome::TooLarge: return "TooLarge";
  }
  return "?";
}

// Long inputs are shown by their size and their last bytes.
std::string describe(const std::string& bytes) {
  if (bytes.size() <= 120) return testing::PrintToString(bytes);
  return std::to_string(bytes.size()) + " bytes ending " + testing::PrintToString(bytes.substr(bytes.size() - 40));
}

#define EXPECT_OUTCOME(bytes, expected) \
  EXPECT_STREQ(name(parse(bytes).outcome), name(expected)) << "input: " << describe(std::string(bytes))

TEST(AdminHttp, GoodGet) {
  Parsed p = parse("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9900\r\nAccept: */*\r\n\r\n");
  ASSERT_EQ(p.outcome, ParseOutcome::Done);
  EXPECT_EQ(p.request.method, "GET");
  EXPECT_EQ(p.request.path, "/metrics");
  EXPECT_EQ(p.request.body, "");
  EXPECT_EQ(p.request.authorization, "");
}

TEST(AdminHttp, GetWithoutHeadersAndHttp10) {
  Parsed p = parse("GET / HTTP/1.0\r\n\r\n");
  ASSERT_EQ(p.outcome, ParseOutcome::Done);
  EXPECT_EQ(p.request.method, "GET");
  EXPECT_EQ(p.request.path, "/");
}

TEST(AdminHttp, QueryStringIsStripped) {
  Parsed p = parse("GET /status?pretty=1&x=y HTTP/1.1\r\n\r\n");
  ASSERT_EQ(p.outcome, ParseOutcome::Done);
  EXPECT_EQ(p.request.path, "/status");
  p = parse("GET /?refresh HTTP/1.1\r\n\r\n");
  ASSERT_EQ(p.outcome, ParseOutcome::Done);
  EXPECT_EQ(p.request.path, "/");
}

TEST(AdminHttp, QueryIsKeptRaw) {
  Parsed p = parse("GET /events?since=12&format=text HTTP/1.1\r\n\r\n");
  ASSERT_EQ(p.outcome, ParseOutcome::Done);
  EXPECT_EQ(p.request.path, "/events");
  EXPECT_EQ(p.request.query, "since=12&format=text");
  p = parse("GET /p%20q?a=%41?b HTTP/1.1\r\n\r\n");  // only the first '?' splits; nothing decoded
  ASSERT_EQ(p.outcome, ParseOutcome::Done);
  EXPECT_EQ(p.request.path, "/p%20q");
  EXPECT_EQ(p.request.query, "a=%41?b");
  p = parse("GET /events? HTTP/1.1\r\n\r\n");
  ASSERT_EQ(p.outcome, ParseOutcome::Done);
  EXPECT_EQ(p.request.path, "/events");
  EXPECT_EQ(p.request.query, "");
  p = parse("GET /events HTTP/1.1\r\n\r\n");
  ASSERT_EQ(p.outcome, ParseOutcome::Done);
  EXPECT_EQ(p.request.query, "");
  EXPECT_EQ(p.request.peer, "");  // Admin sets it, never the bytes
}

TEST(AdminHttp, AuthorizationHeaderAnyCaseTrimmed) {
  Parsed p = parse("POST /pools/p/members/m/drain HTTP/1.1\r\nauthorization: \t Bearer abc \t\r\n\r\n");
  ASSERT_EQ(p.outcome, ParseOutcome::Done);
  EXPECT_EQ(p.request.method, "POST");
  EXPECT_EQ(p.request.authorization, "Bearer abc");
  p = parse("POST /x HTTP/1.1\r\nAUTHORIZATION:Bearer t\r\n\r\n");
  ASSERT_EQ(p.outcome, ParseOutcome::Done);
  EXPECT_EQ(p.request.authorization, "Bearer t");
}

TEST(AdminHttp, HeadArrivingInPiecesNeedsMore) {
  const std::string whole = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  for (size_t n = 0; n < whole.size(); ++n) EXPECT_OUTCOME(whole.substr(0, n), ParseOutcome::NeedMore);
  EXPECT_OUTCOME(whole, ParseOutcome::Done);
}

TEST(AdminHttp, PostBodySplitAcrossCalls) {
  const std::string head =
      "POST /pools/p/members/m1/weight HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
      "Authorization: Bearer tok\r\n\r\n";
  const std::string whole = head + "128\n";
  // The bytes received so far grow call by call: NeedMore until the last
  // body byte is in.
  for (size_t n = 0; n < whole.size(); ++n) EXPECT_OUTCOME(whole.substr(0, n), ParseOutcome::NeedMore);
  Parsed p = parse(whole);
  ASSERT_EQ(p.outcome, ParseOutcome::Done);
  EXPECT_EQ(p.request.method, "POST");
  EXPECT_EQ(p.request.path, "/pools/p/members/m1/weight");
  EXPECT_EQ(p.request.body, "128\n");
  EXPECT_EQ(p.request.authorization, "Bearer tok");
  // Bytes past Content-Length are not part of the body.
  p = parse(whole + "GET / HTTP/1.1\r\n\r\n");
  ASSERT_EQ(p.outcome, ParseOutcome::Done);
  EXPECT_EQ(p.request.body, "128\n");
}

TEST(AdminHttp, ContentLengthBound) {
  const std::string atLimit = "POST /x HTTP/1.1\r\nContent-Length: 4096\r\n\r\n";
  EXPECT_OUTCOME(atLimit, ParseOutcome::NeedMore);
  Parsed p = parse(atLimit + std::string(4096, 'b'));
  ASSERT_EQ(p.outcome, ParseOutcome::Done);
  EXPECT_EQ(p.request.body.size(), 4096u);
  // Over 4 KiB: refused as soon as the head is in, without waiting for the body.
  EXPECT_OUTCOME("POST /x HTTP/1.1\r\nContent-Length: 4097\r\n\r\n", ParseOutcome::TooLarge);
  EXPECT_OUTCOME("POST /x HTTP/1.1\r\ncontent-length: 100000\r\n\r\n", ParseOutcome::TooLarge);
  EXPECT_OUTCOME("POST /x HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", ParseOutcome::Bad);
}

TEST(AdminHttp, HeadBound) {
  const std::string line = "GET /metrics HTTP/1.1\r\n";
  // An unfinished head: NeedMore up to 8 KiB, TooLarge past it.
  std::string head = line + "X-Big: ";
  head += std::string(kMaxAdminHead - head.size(), 'a');
  ASSERT_EQ(head.size(), kMaxAdminHead);
  EXPECT_OUTCOME(head, ParseOutcome::NeedMore);
  EXPECT_OUTCOME(head + "a", ParseOutcome::TooLarge);
  // A 10 KiB header, complete or not.
  std::string big = line + "X-Big: " + std::string(10 * 1024, 'a');
  EXPECT_OUTCOME(big, ParseOutcome::TooLarge);
  EXPECT_OUTCOME(big + "\r\n\r\n", ParseOutcome::TooLarge);
  // A complete head of exactly 8 KiB (without its blank line) is accepted,
  // one byte more is not.
  std::string exact = line + "X-Big: ";
  exact += std::string(kMaxAdminHead - exact.size(), 'a');
  EXPECT_OUTCOME(exact + "\r\n\r\n", ParseOutcome::Done);
  EXPECT_OUTCOME(exact + "a\r\n\r\n", ParseOutcome::TooLarge);
}

// A head of exactly kMaxAdminHead bytes is accepted when it arrives whole
// (HeadBound above) but refused when its terminating CRLFCRLF arrives in a
// later read: after "...\r\n" the bytes received (8194) exceed the bound and
// no "\r\n\r\n" is found yet, so the verdict depends on how TCP cut the
// stream. Disabled until lb/admin_http.cc allows for a partly received
// terminator (reported, not fixed here: lb/ is not this test's to change).
TEST(AdminHttp, HeadAtTheBoundDoesNotDependOnHowItArrives) {
  std::string exact = "GET /metrics HTTP/1.1\r\nX-Big: ";
  exact += std::string(kMaxAdminHead - exact.size(), 'a');
  const std::string whole = exact + "\r\n\r\n";
  for (size_t n = exact.size(); n < whole.size(); ++n)
    EXPECT_OUTCOME(whole.substr(0, n), ParseOutcome::NeedMore);
  EXPECT_OUTCOME(whole, ParseOutcome::Done);
}

TEST(AdminHttp, BadRequestLines) {
  for (std::string_view line : {
           "GET /x",                  // no version
           "GET",                     // method only
           "",                        // empty
           "GET  /x HTTP/1.1",        // two spaces
           " GET /x HTTP/1.1",        // leading space
           "GET /x HTTP/1.1 ",        // trailing space
           "GET /x HTTP/1.1 extra",   // a fourth part
           "GET x HTTP/1.1",          // target not starting with /
           "GET * HTTP/1.1",
           "GET http://h/x HTTP/1.1", // absolute form
           "GET /x http/1.1",         // version is case-sensitive
           "GET /x HTTP/1",
           "GET /x HTTP/1.2",
           "GET /x HTTP/2.0",
           "GET /x HTTP/2",
           "G\x01T /x HTTP/1.1",      // control byte in the method
           "GET /a\x7f HTTP/1.1",     // DEL in the target
           "GET /\xff HTTP/1.1",      // non-ASCII in the target
           "GET\t/x HTTP/1.1",        // tab is not the separator
       }) {
    std::string request = std::string(line) + "\r\nHost: x\r\n\r\n";
    EXPECT_OUTCOME(request, ParseOutcome::Bad);
  }
  EXPECT_OUTCOME("\r\n\r\n", ParseOutcome::Bad);
  EXPECT_OUTCOME(std::string("\x00\xff\xfe garbage\r\n\r\n", 15), ParseOutcome::Bad);
}

TEST(AdminHttp, Http2IsBad) {
  EXPECT_OUTCOME("GET /metrics HTTP/2.0\r\n\r\n", ParseOutcome::Bad);
  // The HTTP/2 connection preface.
  EXPECT_OUTCOME("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", ParseOutcome::Bad);
}

TEST(AdminHttp, TransferEncodingIsBad) {
  EXPECT_OUTCOME("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", ParseOutcome::Bad);
  EXPECT_OUTCOME("POST /x HTTP/1.1\r\ntransfer-encoding: identity\r\n\r\n", ParseOutcome::Bad);
  EXPECT_OUTCOME("GET /x HTTP/1.1\r\nHost: x\r\nTRANSFER-ENCODING: gzip\r\n\r\n", ParseOutcome::Bad);
}

TEST(AdminHttp, HeaderWithoutColonIsBad) {
  EXPECT_OUTCOME("GET /x HTTP/1.1\r\nHost x\r\n\r\n", ParseOutcome::Bad);
  EXPECT_OUTCOME("GET /x HTTP/1.1\r\nHost: x\r\njunk\r\n\r\n", ParseOutcome::Bad);
  EXPECT_OUTCOME("GET /x HTTP/1.1\r\n: no name\r\n\r\n", ParseOutcome::Bad);
}

// Found by tests/fuzz/admin_http_fuzz.cc: a bare CR or LF inside a header
// line was taken as part of the value, so "Authorization: Bearer t\r\x01..."
// became a token with control bytes, and "A: b\nC: d" one header where
// other HTTP readers see two. Header names are tokens; values hold no
// control bytes but HTAB.
TEST(AdminHttp, ControlBytesInHeadersAreBad) {
  using namespace std::string_literals;
  for (const std::string& line :
       {"Authorization: Bearer t\r\x01\0\0\0tent-Length: 0"s, "Host: x\nContent-Length: 5"s,
        "Host: x\ry"s, "Host: a\0b"s, "Host: a\x7f"s, "Ho st: x"s, "Ho\nst: x"s, "H\x01: x"s,
        "Host\t: x"s, "Hé: x"s}) {
    EXPECT_OUTCOME("POST /reload HTTP/1.1\r\n" + line + "\r\n\r\n", ParseOutcome::Bad);
  }
  Parsed p = parse("GET / HTTP/1.1\r\nAuthorization: Bearer\ttok \xc3\xa9\r\nX-Empty:\r\n\r\n");
  ASSERT_EQ(p.outcome, ParseOutcome::Done);
  EXPECT_EQ(p.request.authorization, "Bearer\ttok \xc3\xa9");
}

TEST(AdminHttp, BadContentLength) {
  for (std::string_view value : {"abc", "12x", "-1", "+3", "1 2", "", "0x10"}) {
    std::string request = "POST /x HTTP/1.1\r\nContent-Length: " + std::string(value) + "\r\n\r\n";
    EXPECT_OUTCOME(request, ParseOutcome::Bad);
  }
}

// Strictness (issue 11): what another HTTP reader could take differently
// is a 400 as soon as it is seen, never a guess.
TEST(AdminHttp, ConflictingContentLengthIsBad) {
  EXPECT_OUTCOME("POST /x HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", ParseOutcome::Bad);
  EXPECT_OUTCOME("POST /x HTTP/1.1\r\nContent-Length: 4\r\ncontent-length: 3\r\n\r\nabcd", ParseOutcome::Bad);
  EXPECT_OUTCOME("POST /x HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\nabc", ParseOutcome::Bad);
  EXPECT_OUTCOME("POST /x HTTP/1.1\r\nContent-Length: 3,4\r\n\r\nabc", ParseOutcome::Bad);
  // Bad at once: the body those lengths promise is not waited for.
  EXPECT_OUTCOME("POST /x HTTP/1.1\r\nContent-Length: 30\r\nContent-Length: 40\r\n\r\n", ParseOutcome::Bad);
  // The same length twice means one thing to every reader.
  Parsed p = parse("POST /x HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc");
  ASSERT_EQ(p.outcome, ParseOutcome::Done);
  EXPECT_EQ(p.request.body, "abc");
}

TEST(AdminHttp, RepeatedAuthorizationOrHostIsBad) {
  EXPECT_OUTCOME("POST /x HTTP/1.1\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n", ParseOutcome::Bad);
  EXPECT_OUTCOME("POST /x HTTP/1.1\r\nAuthorization: Bearer a\r\nauthorization: Bearer a\r\n\r\n", ParseOutcome::Bad);
  EXPECT_OUTCOME("GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", ParseOutcome::Bad);
}

TEST(AdminHttp, BareLfIsBadAtOnce) {
  // Without a CRLFCRLF the head would never end: Bad as soon as the LF is in.
  EXPECT_OUTCOME("GET /metrics HTTP/1.1\n", ParseOutcome::Bad);
  EXPECT_OUTCOME("GET /metrics HTTP/1.1\nHost: x\n\n", ParseOutcome::Bad);
  EXPECT_OUTCOME("GET /metrics HTTP/1.1\r\nHost: x\n", ParseOutcome::Bad);
  EXPECT_OUTCOME("\n", ParseOutcome::Bad);
  EXPECT_OUTCOME("GET /metrics HTTP/1.1\r\nHost: x\nX: y\r\n\r\n", ParseOutcome::Bad);
  EXPECT_OUTCOME("GET /metrics HTTP/1.1\r\nHost: x\r\n\n", ParseOutcome::Bad);
  // A body may hold bare LFs.
  Parsed p = parse("POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\n1\n\n");
  ASSERT_EQ(p.outcome, ParseOutcome::Done);
  EXPECT_EQ(p.request.body, "1\n\n");
}

TEST(AdminHttp, ObsFoldAndSpaceBeforeColonAreBad) {
  EXPECT_OUTCOME("GET /x HTTP/1.1\r\nX-A: b\r\n c\r\n\r\n", ParseOutcome::Bad);
  EXPECT_OUTCOME("GET /x HTTP/1.1\r\nX-A: b\r\n\tc: d\r\n\r\n", ParseOutcome::Bad);
  EXPECT_OUTCOME("GET /x HTTP/1.1\r\n Host: x\r\n\r\n", ParseOutcome::Bad);
  EXPECT_OUTCOME("GET /x HTTP/1.1\r\nHost : x\r\n\r\n", ParseOutcome::Bad);
  EXPECT_OUTCOME("POST /x HTTP/1.1\r\nContent-Length : 0\r\n\r\n", ParseOutcome::Bad);
  EXPECT_OUTCOME("POST /x HTTP/1.1\r\nAuthorization\t: Bearer t\r\n\r\n", ParseOutcome::Bad);
}

TEST(AdminHttp, HostAndOriginAreRecorded) {
  Parsed p = parse("GET /x HTTP/1.1\r\nhost:  [::1]:9900 \r\n\r\n");
  ASSERT_EQ(p.outcome, ParseOutcome::Done);
  EXPECT_EQ(p.request.host, "[::1]:9900");
  EXPECT_FALSE(p.request.hasOrigin);
  p = parse("GET /x HTTP/1.1\r\nORIGIN: null\r\n\r\n");
  ASSERT_EQ(p.outcome, ParseOutcome::Done);
  EXPECT_TRUE(p.request.hasOrigin);
  EXPECT_EQ(p.request.host, "");
  p = parse("GET /x HTTP/1.1\r\nOrigin:\r\n\r\n");  // even empty
  ASSERT_EQ(p.outcome, ParseOutcome::Done);
  EXPECT_TRUE(p.request.hasOrigin);
  EXPECT_EQ(p.request.origin, "");
}

TEST(AdminHttp, OriginValueIsRecordedTrimmed) {
  Parsed p = parse("GET /x HTTP/1.1\r\nHost: 127.0.0.1:9900\r\norigin:  http://127.0.0.1:9900 \r\n\r\n");
  ASSERT_EQ(p.outcome, ParseOutcome::Done);
  EXPECT_TRUE(p.request.hasOrigin);
  EXPECT_EQ(p.request.origin, "http://127.0.0.1:9900");
  p = parse("GET /x HTTP/1.1\r\nOrigin: null\r\n\r\n");
  ASSERT_EQ(p.outcome, ParseOutcome::Done);
  EXPECT_EQ(p.request.origin, "null");
  p = parse("GET /x HTTP/1.1\r\n\r\n");
  ASSERT_EQ(p.outcome, ParseOutcome::Done);
  EXPECT_FALSE(p.request.hasOrigin);
  EXPECT_EQ(p.request.origin, "");
}

// Two Origins could name this endpoint once and another site once.
TEST(AdminHttp, RepeatedOriginIsBad) {
  EXPECT_OUTCOME("GET /x HTTP/1.1\r\nOrigin: http://127.0.0.1:9900\r\nOrigin: http://evil.example\r\n\r\n",
                 ParseOutcome::Bad);
  EXPECT_OUTCOME("GET /x HTTP/1.1\r\nOrigin: null\r\nORIGIN: null\r\n\r\n", ParseOutcome::Bad);
}

// The head deadline stops once the head is in, whatever the body still lacks.
TEST(AdminHttp, HeadComplete) {
  EXPECT_FALSE(adminHeadComplete("GET /x HTTP/1.1\r\nHost: x\r\n"));
  EXPECT_TRUE(adminHeadComplete("POST /x HTTP/1.1\r\nContent-Length: 9\r\n\r\n12"));
}

TEST(AdminHttp, PercentDecode) {
  std::string out;
  ASSERT_TRUE(percentDecode("m%201%22q", &out));
  EXPECT_EQ(out, "m 1\"q");
  ASSERT_TRUE(percentDecode("a%2Fb%2fc%25", &out));
  EXPECT_EQ(out, "a/b/c%");
  ASSERT_TRUE(percentDecode("plain+name", &out));
  EXPECT_EQ(out, "plain+name");  // '+' is not a space in a path
  ASSERT_TRUE(percentDecode("", &out));
  EXPECT_EQ(out, "");
  ASSERT_TRUE(percentDecode("%e2%9c%93%00", &out));
  EXPECT_EQ(out, std::string("\xe2\x9c\x93\0", 4));
  for (std::string_view bad : {"%", "%2", "a%", "%zz", "%G0", "%0g", "%%20", "m%2"}) {
    EXPECT_FALSE(percentDecode(bad, &out)) << bad;
  }
}

TEST(AdminHttp, SerializeResponse) {
  AdminResponse r;
  r.status = 200;
  r.contentType = "application/json";
  r.body = "{\"a\":1}\n";
  r.extraHeaders = "X-Extra: yes\r\n";
  std::string text = serializeResponse(r);
  size_t headEnd = text.find("\r\n\r\n");
  ASSERT_NE(headEnd, std::string::npos);
  std::string head = text.substr(0, headEnd + 2);
  EXPECT_EQ(text.substr(headEnd + 4), r.body);
  EXPECT_EQ(head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << head;
  EXPECT_NE(head.find("\r\nContent-Length: 8\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("\r\nConnection: close\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("\r\nContent-Type: application/json\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("\r\nX-Extra: yes\r\n"), std::string::npos) << head;
}

TEST(AdminHttp, SerializeErrorResponses) {
  for (auto [status, text] : {std::pair{400, "Bad Request"}, {401, "Unauthorized"}, {403, "Forbidden"},
                              {404, "Not Found"}, {405, "Method Not Allowed"}, {413, "Payload Too Large"},
                              {429, "Too Many Requests"}}) {
    AdminResponse r;
    r.status = status;
    std::string out = serializeResponse(r);
    EXPECT_EQ(out.rfind("HTTP/1.1 " + std::to_string(status) + " " + text + "\r\n", 0), 0u) << out;
    EXPECT_NE(out.find("\r\nContent-Length: 0\r\n"), std::string::npos) << out;
    EXPECT_NE(out.find("\r\nConnection: close\r\n"), std::string::npos) << out;
    EXPECT_EQ(out.substr(out.size() - 4), "\r\n\r\n") << out;
  }
  AdminResponse big;
  big.body = std::string(5000, 'z');
  std::string out = serializeResponse(big);
  EXPECT_NE(out.find("\r\nContent-Length: 5000\r\n"), std::string::npos);
  EXPECT_EQ(out.size() - out.find("\r\n\r\n") - 4, 5000u);
}

// Whatever the body holds (even blank lines), the head ends at the first
// CRLFCRLF and exactly Content-Length bytes follow it.
TEST(AdminHttp, SerializedBodyMatchesContentLength) {
  for (std::string body : {std::string(), std::string("x"), std::string("line\r\n\r\nwith blank lines\n")}) {
    AdminResponse r;
    r.body = body;
    std::string out = serializeResponse(r);
    size_t headEnd = out.find("\r\n\r\n");
    ASSERT_NE(headEnd, std::string::npos);
    EXPECT_EQ(out.substr(headEnd + 4), body);
    EXPECT_NE(out.find("Content-Length: " + std::to_string(body.size()) + "\r\n"), std::string::npos);
  }
}

// ---------------------------------------------------------------- routes

// An endpoint without a ring or a socket: route() and refuseBrowser() only.
struct AdminRoutes : testing::Test {
  Admin::Clock::time_point now{};
  int reloads = 0;
  bool reloadSucceeds = true;

  std::unique_ptr<Admin> make(config::Admin settings) {
    auto admin = std::make_unique<Admin>(nullptr, -1, settings, ReportSources{});
    admin->setClock([this] { return now; });
    admin->setReload([this](std::string* errors) {
      ++reloads;
      if (!reloadSucceeds) *errors = "x.toml:1:1: broken\n";
      return reloadSucceeds;
    });
    return admin;
  }

  static AdminRequest request(std::string method, std::string path, std::string authorization = {}) {
    AdminRequest r;
    r.method = std::move(method);
    r.path = std::move(path);
    r.authorization = std::move(authorization);
    return r;
  }

  static AdminResponse getEvents(Admin& admin, std::string query) {
    AdminRequest r = request("GET", "/events");
    r.query = std::move(query);
    return admin.route(r);
  }
};

TEST_F(AdminRoutes, ReloadAtMostOncePerInterval) {
  config::Admin settings;
  settings.token = "t";
  settings.reloadMinInterval = std::chrono::seconds(10);
  auto admin = make(settings);
  AdminRequest reload = request("POST", "/reload", "Bearer t");
  EXPECT_EQ(admin->route(reload).status, 200);
  now += std::chrono::seconds(3);
  AdminResponse refused = admin->route(reload);
  EXPECT_EQ(refused.status, 429);
  EXPECT_EQ(refused.extraHeaders, "Retry-After: 7\r\n");
  now += std::chrono::milliseconds(6500);
  EXPECT_EQ(admin->route(reload).extraHeaders, "Retry-After: 1\r\n");  // rounded up, never 0
  EXPECT_EQ(admin->route(request("POST", "/reload")).status, 401);        // the token first
  EXPECT_EQ(reloads, 1);
  now += std::chrono::milliseconds(500);
  EXPECT_EQ(admin->route(reload).status, 200);
  EXPECT_EQ(reloads, 2);
  // A refused reload counts as one: it read and built the file all the same.
  reloadSucceeds = false;
  now += std::chrono::seconds(10);
  EXPECT_EQ(admin->route(reload).status, 400);
  EXPECT_EQ(admin->route(reload).status, 429);
  EXPECT_EQ(reloads, 3);
}

TEST_F(AdminRoutes, ReadsNeedTheTokenWhenAsked) {
  config::Admin settings;
  settings.token = "t";
  settings.requireTokenForReads = true;
  auto admin = make(settings);
  for (std::string path : {"/", "/status", "/metrics"}) {
    AdminResponse r = admin->route(request("GET", path));
    EXPECT_EQ(r.status, 401) << path;
    EXPECT_EQ(r.extraHeaders, "WWW-Authenticate: Bearer\r\n");
    EXPECT_EQ(admin->route(request("HEAD", path, "Bearer x")).status, 401) << path;
  }
}

TEST_F(AdminRoutes, BrowserRequestsAreRefused) {
  config::Admin settings;
  std::string why;
  settings.listen = config::parseAddress("127.0.0.1:9900", &why);
  auto admin = make(settings);
  auto verdict = [&](std::string host, std::string_view local = "127.0.0.1:9900", bool origin = false) {
    AdminRequest r = request("GET", "/metrics");
    r.host = std::move(host);
    r.hasOrigin = origin;
    auto refused = admin->refuseBrowser(r, local);
    return refused ? refused->status : 0;
  };
  for (std::string host : {"", "127.0.0.1:9900", "localhost", "localhost:9900", "LocalHost:8080"})
    EXPECT_EQ(verdict(host), 0) << host;
  EXPECT_EQ(verdict("10.0.0.5:9900", "10.0.0.5:9900"), 0);  // the address the client connected to
  EXPECT_EQ(verdict("[::1]:9900", "[::1]:9900"), 0);
  for (std::string host : {"evil.example", "evil.example:9900", "127.0.0.1:9901", "127.0.0.1", "localhost:",
                           "localhost:9x", "localhost.evil.example", "xlocalhost", "10.0.0.5:9900"})
    EXPECT_EQ(verdict(host), 403) << host;
  EXPECT_EQ(verdict("127.0.0.1:9900", "127.0.0.1:9900", true), 403);
  EXPECT_EQ(verdict("", "127.0.0.1:9900", true), 403);
}

// The status page's own fetch (a POST from http://HOST/) sends Origin:
// http://HOST with the Host it loaded the page from. Exactly that passes,
// and only where that Host passes on its own; any other Origin is a page
// of another site (or scheme, or port) and stays refused.
TEST_F(AdminRoutes, SameOriginRequestsFromTheStatusPagePass) {
  config::Admin settings;
  std::string why;
  settings.listen = config::parseAddress("127.0.0.1:9900", &why);
  auto admin = make(settings);
  auto verdict = [&](std::string host, std::string origin, std::string_view local = "127.0.0.1:9900") {
    AdminRequest r = request("POST", "/pools/p/members/m/drain");
    r.host = std::move(host);
    r.hasOrigin = true;
    r.origin = std::move(origin);
    auto refused = admin->refuseBrowser(r, local);
    return refused ? refused->status : 0;
  };
  EXPECT_EQ(verdict("127.0.0.1:9900", "http://127.0.0.1:9900"), 0);
  EXPECT_EQ(verdict("localhost:9900", "http://localhost:9900"), 0);
  EXPECT_EQ(verdict("LocalHost:9900", "http://localhost:9900"), 0);  // browsers lower-case the origin
  EXPECT_EQ(verdict("localhost", "http://localhost"), 0);
  EXPECT_EQ(verdict("[::1]:9900", "http://[::1]:9900", "[::1]:9900"), 0);
  // Another origin, whatever the Host.
  for (std::string origin : {"http://evil.example", "http://127.0.0.1:9901", "https://127.0.0.1:9900",
                             "http://localhost:9900", "null", "", "http://127.0.0.1:9900/", "http://127.0.0.1",
                             "127.0.0.1:9900", "http://127.0.0.1:9900.evil.example"})
    EXPECT_EQ(verdict("127.0.0.1:9900", origin), 403) << origin;
  // The same origin as a Host that does not pass: DNS rebinding.
  EXPECT_EQ(verdict("evil.example:9900", "http://evil.example:9900"), 403);
  EXPECT_EQ(verdict("127.0.0.2:9900", "http://127.0.0.2:9900"), 403);
  // No Host: nothing to be the same as.
  EXPECT_EQ(verdict("", "http://127.0.0.1:9900"), 403);
  EXPECT_EQ(verdict("", ""), 403);
}

TEST_F(AdminRoutes, EventsFollowTheReadRules) {
  config::Admin settings;
  settings.token = "t";
  settings.requireTokenForReads = true;
  auto admin = make(settings);
  EXPECT_EQ(admin->route(request("GET", "/events")).status, 401);
  EXPECT_EQ(admin->route(request("GET", "/events", "Bearer t")).status, 200);
  EXPECT_EQ(admin->route(request("HEAD", "/events", "Bearer t")).status, 200);
  AdminResponse post = admin->route(request("POST", "/events", "Bearer t"));
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(post.extraHeaders, "Allow: GET, HEAD\r\n");
}

TEST_F(AdminRoutes, EventsSinceLimitAndFormat) {
  EventLog log;
  for (int i = 1; i <= 5; ++i)
    log.add(1'764'165'600'000 + i, EventKind::Health, "event " + std::to_string(i), "p", "m");
  ReportSources sources;
  sources.events = &log;
  Admin admin(nullptr, -1, config::Admin{}, sources);
  auto get = [&](std::string query) { return getEvents(admin, std::move(query)); };
  AdminResponse all = get("");
  EXPECT_EQ(all.status, 200);
  EXPECT_EQ(all.contentType, "application/json");
  EXPECT_EQ(all.body, renderEventsJson(log, 0, kEventLogCapacity));
  EXPECT_EQ(get("since=3").body, renderEventsJson(log, 3, kEventLogCapacity));
  EXPECT_EQ(get("since=1&limit=2").body, renderEventsJson(log, 1, 2));
  EXPECT_EQ(get("format=json&since=0").body, all.body);
  AdminResponse text = get("format=text&since=4");
  EXPECT_EQ(text.status, 200);
  EXPECT_EQ(text.contentType, "text/plain; charset=utf-8");
  EXPECT_EQ(text.body, renderEventsText(log, 4, kEventLogCapacity));
  EXPECT_NE(text.body.find("event 5"), std::string::npos);
  EXPECT_EQ(text.body.find("event 4"), std::string::npos);
  EXPECT_EQ(get("since=99").body, R"({"last_id":5,"events":[]})" "\n");
  EXPECT_EQ(get("limit=500").status, 200);
}

TEST_F(AdminRoutes, BadEventsParametersSayWhatIsWrong) {
  EventLog log;
  ReportSources sources;
  sources.events = &log;
  Admin admin(nullptr, -1, config::Admin{}, sources);
  auto get = [&](std::string query) { return getEvents(admin, std::move(query)); };
  for (std::string query : {"since=", "since=-1", "since=x", "since=1x", "since=99999999999999999999999"}) {
    AdminResponse r = get(query);
    EXPECT_EQ(r.status, 400) << query;
    EXPECT_NE(r.body.find("since must be"), std::string::npos) << query << r.body;
  }
  for (std::string query : {"limit=0", "limit=501", "limit=", "limit=ten"}) {
    AdminResponse r = get(query);
    EXPECT_EQ(r.status, 400) << query;
    EXPECT_NE(r.body.find("limit must be a whole number from 1 to 500"), std::string::npos) << query << r.body;
  }
  AdminResponse format = get("format=xml");
  EXPECT_EQ(format.status, 400);
  EXPECT_NE(format.body.find("format must be text or json"), std::string::npos);
  AdminResponse unknown = get("sinse=3");
  EXPECT_EQ(unknown.status, 400);
  EXPECT_NE(unknown.body.find("unknown parameter \"sinse\""), std::string::npos);
}

TEST_F(AdminRoutes, EventsWithoutALogAreEmpty) {
  auto admin = make(config::Admin{});
  AdminResponse r = admin->route(request("GET", "/events"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"last_id":0,"events":[]})" "\n");
}

TEST_F(AdminRoutes, NamesArePercentDecoded) {
  auto admin = make(config::Admin{});
  EXPECT_EQ(admin->route(request("POST", "/pools/p/members/m%zz/drain")).status, 400);
  EXPECT_EQ(admin->route(request("POST", "/pools/p%2/members/m/drain")).status, 400);
}

}  // namespace
}  // namespace lb
