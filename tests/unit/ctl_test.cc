// `ringlb ctl`'s pure parts: arguments, requests, answers; and the text
// helpers of GET /status?format=text.
#include "lb/ctl.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "lb/admin_http.h"
#include "lb/status_text.h"

namespace lb::ctl {
namespace {

// Arguments as main() would hand them over (the words after "ctl").
struct Args {
  explicit Args(std::vector<std::string> words) : words_(std::move(words)) {
    for (std::string& w : words_) pointers_.push_back(w.data());
  }
  std::span<char* const> span() const { return pointers_; }

 private:
  std::vector<std::string> words_;
  std::vector<char*> pointers_;
};

std::optional<Command> parse(std::vector<std::string> words, std::string* error = nullptr) {
  Args args(std::move(words));
  std::string ignored;
  return parseArgs(args.span(), error ? error : &ignored);
}

TEST(CtlArgs, StatusWithDefaults) {
  auto c = parse({"status"});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->action, Action::Status);
  EXPECT_EQ(c->configPath, "/etc/ringlb/ringlb.toml");
  EXPECT_FALSE(c->json);
}

TEST(CtlArgs, OptionsBeforeAndAfterTheCommand) {
  auto c = parse({"-c", "/tmp/a.toml", "events", "--since", "42", "--json"});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->action, Action::Events);
  EXPECT_EQ(c->configPath, "/tmp/a.toml");
  EXPECT_EQ(c->since, 42u);
  EXPECT_TRUE(c->json);
  c = parse({"--config", "x.toml", "reload"});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->action, Action::Reload);
  EXPECT_EQ(c->configPath, "x.toml");
}

TEST(CtlArgs, MemberCommands) {
  auto c = parse({"drain", "web", "m/1"});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->action, Action::Drain);
  EXPECT_EQ(c->pool, "web");
  EXPECT_EQ(c->member, "m/1");
  c = parse({"undrain", "web", "m1"});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->action, Action::Undrain);
  c = parse({"weight", "web", "m1", "7"});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->action, Action::Weight);
  EXPECT_EQ(c->weight, "7");
  // After "--" a word that starts with '-' is a name.
  c = parse({"drain", "--", "web", "-odd"});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->member, "-odd");
}

TEST(CtlArgs, UsageErrorsSayWhat) {
  std::string error;
  EXPECT_FALSE(parse({}, &error));
  EXPECT_EQ(error, "no command given");
  EXPECT_FALSE(parse({"stat"}, &error));
  EXPECT_EQ(error, "unknown command \"stat\"");
  EXPECT_FALSE(parse({"drain", "web"}, &error));
  EXPECT_EQ(error, "drain takes 2 arguments");
  EXPECT_FALSE(parse({"weight", "web", "m1"}, &error));
  EXPECT_EQ(error, "weight takes 3 arguments");
  EXPECT_FALSE(parse({"status", "extra"}, &error));
  EXPECT_EQ(error, "status takes 0 arguments");
  EXPECT_FALSE(parse({"status", "-c"}, &error));
  EXPECT_EQ(error, "-c needs a value");
  EXPECT_FALSE(parse({"events", "--since", "x1"}, &error));
  EXPECT_EQ(error, "--since needs an event id (a number), not \"x1\"");
  EXPECT_FALSE(parse({"events", "--since", "-1"}, &error));
  EXPECT_FALSE(parse({"events", "--since", "99999999999999999999999"}, &error));
  EXPECT_FALSE(parse({"status", "--since", "3"}, &error));
  EXPECT_EQ(error, "--since is for events");
  EXPECT_FALSE(parse({"--verbose", "status"}, &error));
  EXPECT_EQ(error, "unknown option \"--verbose\"");
}

TEST(CtlUrl, PercentEncodesEverythingButUnreserved) {
  EXPECT_EQ(percentEncode("Az09-._~"), "Az09-._~");
  EXPECT_EQ(percentEncode("api.consul/10.0.0.1:80"), "api.consul%2F10.0.0.1%3A80");
  EXPECT_EQ(percentEncode("a b%?#&"), "a%20b%25%3F%23%26");
  EXPECT_EQ(percentEncode("\xc3\xa9"), "%C3%A9");
  EXPECT_EQ(percentEncode(std::string("\0x", 2)), "%00x");
}

TEST(CtlUrl, EncodedNamesDecodeBackToThemselves) {
  for (std::string name : {"m1", "a/b/c", "%2F", "x y", "\xff\x01"}) {
    std::string decoded;
    ASSERT_TRUE(percentDecode(percentEncode(name), &decoded));
    EXPECT_EQ(decoded, name);
    EXPECT_EQ(percentEncode(name).find('/'), std::string::npos);
  }
}

TEST(CtlRequest, OnePerCommand) {
  Command c;
  c.action = Action::Status;
  EXPECT_EQ(requestFor(c).target, "/status?format=text");
  EXPECT_EQ(requestFor(c).method, "GET");
  c.json = true;
  EXPECT_EQ(requestFor(c).target, "/status");
  c.action = Action::Events;
  c.since = 7;
  EXPECT_EQ(requestFor(c).target, "/events?since=7");
  c.json = false;
  EXPECT_EQ(requestFor(c).target, "/events?format=text&since=7");
  c.action = Action::Drain;
  c.pool = "p q";
  c.member = "dns/1.2.3.4:80";
  Request r = requestFor(c);
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/pools/p%20q/members/dns%2F1.2.3.4%3A80/drain");
  c.action = Action::Undrain;
  EXPECT_EQ(requestFor(c).target, "/pools/p%20q/members/dns%2F1.2.3.4%3A80/undrain");
  c.action = Action::Weight;
  c.weight = "12";
  r = requestFor(c);
  EXPECT_EQ(r.target, "/pools/p%20q/members/dns%2F1.2.3.4%3A80/weight");
  EXPECT_EQ(r.body, "12");
  c.action = Action::Reload;
  r = requestFor(c);
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/reload");
}

TEST(CtlRequest, WhatTheAdminEndpointAccepts) {
  std::string text = serializeRequest({"POST", "/pools/p/members/m/weight", "5"}, "127.0.0.1:9900", "s3cret");
  EXPECT_EQ(text,
            "POST /pools/p/members/m/weight HTTP/1.1\r\nHost: 127.0.0.1:9900\r\nUser-Agent: ringlb-ctl\r\n"
            "Connection: close\r\nAuthorization: Bearer s3cret\r\nContent-Type: text/plain\r\n"
            "Content-Length: 1\r\n\r\n5");
  // The server's own parser reads it as meant, with no Origin.
  AdminRequest parsed;
  ASSERT_EQ(parseAdminRequest(text, &parsed), ParseOutcome::Done);
  EXPECT_EQ(parsed.path, "/pools/p/members/m/weight");
  EXPECT_EQ(parsed.authorization, "Bearer s3cret");
  EXPECT_EQ(parsed.host, "127.0.0.1:9900");
  EXPECT_EQ(parsed.body, "5");
  EXPECT_FALSE(parsed.hasOrigin);

  text = serializeRequest({"GET", "/status?format=text", ""}, "[::1]:9900", "");
  EXPECT_EQ(text.find("Authorization"), std::string::npos);
  EXPECT_EQ(text.find("Content-Length"), std::string::npos);
  ASSERT_EQ(parseAdminRequest(text, &parsed), ParseOutcome::Done);
  EXPECT_EQ(parsed.path, "/status");
  EXPECT_EQ(parsed.query, "format=text");
}

TEST(CtlResponse, ParsesTheServersAnswers) {
  AdminResponse answer;
  answer.status = 401;
  answer.body = "a valid token is required\n";
  answer.extraHeaders = "WWW-Authenticate: Bearer\r\n";
  std::string why;
  auto r = parseResponse(serializeResponse(answer), &why);
  ASSERT_TRUE(r) << why;
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(r->reason, "Unauthorized");
  EXPECT_EQ(r->body, "a valid token is required\n");

  r = parseResponse("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA", &why);
  ASSERT_TRUE(r) << why;
  EXPECT_EQ(r->body, "ok");
  // Without a Content-Length the body runs to the close.
  r = parseResponse("HTTP/1.0 204\r\nX: y\r\n\r\nall of it", &why);
  ASSERT_TRUE(r) << why;
  EXPECT_EQ(r->status, 204);
  EXPECT_EQ(r->reason, "");
  EXPECT_EQ(r->body, "all of it");
}

TEST(CtlResponse, RefusesTruncatedAnswers) {
  std::string why;
  EXPECT_FALSE(parseResponse("", &why));
  EXPECT_EQ(why, "the server closed without an answer");
  EXPECT_FALSE(parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", &why));
  EXPECT_EQ(why, "the answer ended within its head");
  EXPECT_FALSE(parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", &why));
  EXPECT_EQ(why, "the answer was cut short (5 of 10 body bytes)");
  // Every prefix of a whole answer is refused, never taken for a shorter one.
  std::string whole = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody";
  for (size_t n = 0; n < whole.size(); ++n) EXPECT_FALSE(parseResponse(whole.substr(0, n), &why)) << n;
  EXPECT_TRUE(parseResponse(whole, &why));
}

TEST(CtlResponse, RefusesGarbage) {
  std::string why;
  for (std::string_view garbage :
       {"SSH-2.0-OpenSSH_9.6\r\n\r\n", "HTTP/2 200\r\n\r\n", "HTTP/1.1 2x0 OK\r\n\r\n", "HTTP/1.1 200OK\r\n\r\n",
        "HTTP/1.1 20\r\n\r\n", "\r\n\r\n", "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        "HTTP/1.1 200 OK\r\n: empty name\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1,1\r\n\r\nx",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n"}) {
    EXPECT_FALSE(parseResponse(garbage, &why)) << garbage;
  }
  EXPECT_FALSE(parseResponse(std::string("\0\0\0\0\r\n\r\n", 8), &why));
}

TEST(CtlJson, ReadsTopLevelFields) {
  std::string_view answer = R"({"pool":"p","member":"dns\/1.2.3.4:80","state":"draining","weight":1})" "\n";
  EXPECT_EQ(jsonField(answer, "pool"), "p");
  EXPECT_EQ(jsonField(answer, "member"), "dns/1.2.3.4:80");
  EXPECT_EQ(jsonField(answer, "weight"), "1");
  EXPECT_EQ(jsonField(answer, "absent"), std::nullopt);
  EXPECT_EQ(jsonField(R"( { "a" : "x\"y\\z\n\u00e9\ud83d\ude00" } )", "a"), "x\"y\\z\n\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(jsonField(R"({"n":-1.5e+3,"t":true,"z":null})", "n"), "-1.5e+3");
  EXPECT_EQ(jsonField(R"({"n":-1.5e+3,"t":true,"z":null})", "t"), "true");
  EXPECT_EQ(jsonField(R"({"n":-1.5e+3,"t":true,"z":null})", "z"), "null");
  EXPECT_EQ(jsonField("{}", "a"), std::nullopt);
}

TEST(CtlJson, NestedValuesAreSkippedNotSearched) {
  std::string_view text = R"({"inner":{"state":"up","list":[1,{"state":"x"},[]]},"state":"down"})";
  EXPECT_EQ(jsonField(text, "state"), "down");
  EXPECT_EQ(jsonField(text, "inner"), std::nullopt);
  EXPECT_EQ(jsonField(R"({"inner":{"state":"up"}})", "state"), std::nullopt);
}

TEST(CtlJson, MalformedOrTruncatedIsNone) {
  std::string_view whole = R"({"pool":"p","member":"m","state":"up","weight":3})";
  for (size_t n = 0; n < whole.size(); ++n) EXPECT_EQ(jsonField(whole.substr(0, n), "pool"), std::nullopt) << n;
  for (std::string_view bad :
       {R"({"pool":"p",})", R"({"pool" "p"})", R"({"pool":'p'})", R"({"pool":"p"} x)", R"(["pool","p"])",
        R"({"pool":"a\x"})", R"({"pool":"\ud800"})", R"({"pool":"\udc00"})", R"({"pool":"\u12"})",
        R"({"pool":01a})", R"({"pool":-})", R"({"pool":1.})", R"({"pool":tru})", "{\"pool\":\"a\nb\"}",
        R"({"x":[1,2,,3],"pool":"p"})", R"({"x":{"a"},"pool":"p"})", "not json"})
    EXPECT_EQ(jsonField(bad, "pool"), std::nullopt) << bad;
  std::string deep(1000, '[');
  EXPECT_EQ(jsonField(R"({"x":)" + deep, "x"), std::nullopt);
}

TEST(CtlConfirmation, FromTheServersAnswer) {
  Command c;
  c.action = Action::Drain;
  Response r{200, "OK", R"({"pool":"p","member":"m1","state":"draining","weight":1})" "\n"};
  EXPECT_EQ(confirmation(c, r), "pool p member m1: draining (weight 1)");
  c.action = Action::Reload;
  EXPECT_EQ(confirmation(c, {200, "OK", "reloaded\n"}), "reloaded");
  // An answer of another shape is shown as it came.
  c.action = Action::Weight;
  EXPECT_EQ(confirmation(c, {200, "OK", "{\"pool\":\"p\"}\n"}), "{\"pool\":\"p\"}");
  // Control characters in names are escaped, not sent to the terminal.
  c.action = Action::Undrain;
  EXPECT_EQ(confirmation(c, {200, "OK", R"({"pool":"p","member":"m\u001b[2J","state":"up","weight":2})"}),
            "pool p member m\\x1b[2J: up (weight 2)");
}

}  // namespace
}  // namespace lb::ctl

namespace lb {
namespace {

TEST(StatusText, HumanRates) {
  EXPECT_EQ(humanRate(std::nan("")), "-");
  EXPECT_EQ(humanRate(0), "0 B/s");
  EXPECT_EQ(humanRate(-3), "0 B/s");
  EXPECT_EQ(humanRate(950), "950 B/s");
  EXPECT_EQ(humanRate(999.6), "1.0 kB/s");
  EXPECT_EQ(humanRate(1234), "1.2 kB/s");
  EXPECT_EQ(humanRate(34.4e6), "34 MB/s");
  EXPECT_EQ(humanRate(1.5e9), "1.5 GB/s");
  EXPECT_EQ(humanRate(2e15), "2000 TB/s");
  EXPECT_EQ(humanPerSecond(std::nan("")), "-");
  EXPECT_EQ(humanPerSecond(0), "0");
  EXPECT_EQ(humanPerSecond(0.5), "0.5");
  EXPECT_EQ(humanPerSecond(12.4), "12");
  EXPECT_EQ(humanPerSecond(1234), "1.2k");
  EXPECT_EQ(humanPerSecond(25000), "25k");
}

TEST(StatusText, HumanDurations) {
  EXPECT_EQ(humanDuration(-5), "0s");
  EXPECT_EQ(humanDuration(0), "0s");
  EXPECT_EQ(humanDuration(59), "59s");
  EXPECT_EQ(humanDuration(192), "3m12s");
  EXPECT_EQ(humanDuration(3600 * 2 + 5 * 60 + 59), "2h05m");
  EXPECT_EQ(humanDuration(86400 * 4 + 3 * 3600 + 1), "4d03h");
}

TEST(StatusText, TablesAlignTheirColumns) {
  TextTable table({"member", "active", "state"}, {false, true, false});
  table.add({"m1", "3", "up"});
  table.add({"longer-name", "12345", "draining"});
  table.add({"\xc3\xa9t\xc3\xa9", "0", ""});  // two-byte characters take one column each
  EXPECT_EQ(table.render(),
            "member       active  state\n"
            "m1                3  up\n"
            "longer-name   12345  draining\n"
            "\xc3\xa9t\xc3\xa9               0\n");
}

}  // namespace
}  // namespace lb
