// Tests for lb/upgrade: the text that tells a process started by SIGUSR2
// which inherited descriptor is which listener's socket.

#include "lb/upgrade.h"

#include <gtest/gtest.h>

#include <string>

namespace lb::upgrade {
namespace {

HandedSockets parsed(const std::string& text) {
  std::string whyNot;
  std::optional<HandedSockets> sockets = parseSockets(text, &whyNot);
  EXPECT_TRUE(sockets) << text << ": " << whyNot;
  return sockets.value_or(HandedSockets{});
}

std::string refusal(const std::string& text) {
  std::string whyNot;
  EXPECT_FALSE(parseSockets(text, &whyNot)) << text;
  return whyNot;
}

TEST(UpgradeSockets, ListenersAndAdminRoundTrip) {
  HandedSockets sockets;
  sockets.listeners.push_back({"front", "127.0.0.1:8080", {5, 6, 7}});
  sockets.listeners.push_back({"v6", "[::1]:8443", {9}});
  sockets.admin = 11;
  std::string text = encodeSockets(sockets);
  EXPECT_EQ(text, "front@127.0.0.1:8080=5,6,7;v6@[::1]:8443=9;admin=11");
  HandedSockets back = parsed(text);
  ASSERT_EQ(back.listeners.size(), 2u);
  EXPECT_EQ(back.listeners[0].name, "front");
  EXPECT_EQ(back.listeners[0].bind, "127.0.0.1:8080");
  EXPECT_EQ(back.listeners[0].fds, (std::vector<int>{5, 6, 7}));
  EXPECT_EQ(back.listeners[1].bind, "[::1]:8443");
  EXPECT_EQ(back.admin, 11);
  EXPECT_EQ(back.count(), 5u);
}

// A listener's name is any string the config allows: the separators and
// bytes outside printable ASCII are percent-encoded, so a name cannot
// forge another entry.
TEST(UpgradeSockets, NamesWithSeparatorsAreEncoded) {
  HandedSockets sockets;
  std::string name = "a;b=c@d,e%f g\n\xff";
  sockets.listeners.push_back({name, "127.0.0.1:1", {3}});
  sockets.listeners.push_back({"admin", "127.0.0.1:2", {4}});
  std::string text = encodeSockets(sockets);
  EXPECT_EQ(text.find(';'), text.find(";admin@"));
  HandedSockets back = parsed(text);
  ASSERT_EQ(back.listeners.size(), 2u);
  EXPECT_EQ(back.listeners[0].name, name);
  EXPECT_EQ(back.listeners[1].name, "admin");  // a listener named admin is not the admin socket
  EXPECT_EQ(back.admin, -1);
}

TEST(UpgradeSockets, NothingToHandOn) {
  EXPECT_EQ(encodeSockets(HandedSockets{}), "");
  HandedSockets back = parsed("");
  EXPECT_TRUE(back.listeners.empty());
  EXPECT_EQ(back.admin, -1);
  EXPECT_EQ(parsed("admin=3").admin, 3);
}

TEST(UpgradeSockets, MalformedTextIsRefused) {
  EXPECT_NE(refusal("front@127.0.0.1:1").find("no '='"), std::string::npos);
  EXPECT_NE(refusal("front@127.0.0.1:1=2").find("above 2"), std::string::npos);  // stdio is never handed on
  EXPECT_NE(refusal("front@127.0.0.1:1=x").find("not a descriptor"), std::string::npos);
  EXPECT_NE(refusal("front@127.0.0.1:1=").find("not a descriptor"), std::string::npos);
  EXPECT_NE(refusal("front@127.0.0.1:1=5,5").find("twice"), std::string::npos);
  EXPECT_NE(refusal("a@127.0.0.1:1=5;admin=5").find("twice"), std::string::npos);
  EXPECT_NE(refusal("admin=5,6").find("neither"), std::string::npos);
  EXPECT_NE(refusal("admin=5;admin=6").find("neither"), std::string::npos);
  EXPECT_NE(refusal("other=5").find("neither"), std::string::npos);
  EXPECT_NE(refusal("@127.0.0.1:1=5").find("bad name"), std::string::npos);
  EXPECT_NE(refusal("a@=5").find("bad name"), std::string::npos);
  EXPECT_NE(refusal("a%2@127.0.0.1:1=5").find("bad name"), std::string::npos);  // cut escape
  EXPECT_NE(refusal("a%zz@127.0.0.1:1=5").find("bad name"), std::string::npos);
  EXPECT_NE(refusal("a b@127.0.0.1:1=5").find("bad name"), std::string::npos);  // unencoded space
  EXPECT_NE(refusal("front@127.0.0.1:1=99999999999").find("not a descriptor"), std::string::npos);
}

}  // namespace
}  // namespace lb::upgrade
