#include "lb/event_log.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace lb {
namespace {

std::vector<uint64_t> idsOf(const std::vector<const Event*>& events) {
  std::vector<uint64_t> ids;
  for (const Event* e : events) ids.push_back(e->id);
  return ids;
}

TEST(EventLog, IdsGrowByOneAndTheOldestAreDroppedWhenFull) {
  EventLog log(3);
  EXPECT_EQ(log.lastId(), 0u);
  for (int i = 1; i <= 5; ++i) EXPECT_EQ(log.add(i * 1000, EventKind::Health, "e" + std::to_string(i)), uint64_t(i));
  EXPECT_EQ(log.size(), 3u);
  EXPECT_EQ(log.lastId(), 5u);
  EXPECT_EQ(idsOf(log.after(0, 100)), (std::vector<uint64_t>{3, 4, 5}));
  EXPECT_EQ(log.after(0, 100).front()->message, "e3");
}

TEST(EventLog, AfterGivesTheNewerOnesOldestFirstAndAtMostTheNewestLimit) {
  EventLog log;
  for (int i = 0; i < 10; ++i) log.add(i, EventKind::Admin, "x");
  EXPECT_EQ(idsOf(log.after(7, 100)), (std::vector<uint64_t>{8, 9, 10}));
  EXPECT_EQ(idsOf(log.after(0, 2)), (std::vector<uint64_t>{9, 10}));
  EXPECT_EQ(idsOf(log.after(3, 2)), (std::vector<uint64_t>{9, 10}));
  EXPECT_TRUE(log.after(10, 100).empty());
  EXPECT_TRUE(log.after(1000, 100).empty());
  EXPECT_TRUE(log.after(0, 0).empty());
}

TEST(EventLog, AfterAnIdAlreadyDroppedGivesAllKept) {
  EventLog log(4);
  for (int i = 0; i < 10; ++i) log.add(i, EventKind::Admin, "x");
  EXPECT_EQ(idsOf(log.after(2, 100)), (std::vector<uint64_t>{7, 8, 9, 10}));
}

TEST(EventLog, LatestIsNewestFirst) {
  EventLog log;
  for (int i = 0; i < 5; ++i) log.add(i, EventKind::Reload, "x");
  EXPECT_EQ(idsOf(log.latest(3)), (std::vector<uint64_t>{5, 4, 3}));
  EXPECT_EQ(idsOf(log.latest(50)), (std::vector<uint64_t>{5, 4, 3, 2, 1}));
  EXPECT_TRUE(EventLog().latest(3).empty());
}

TEST(EventLog, ALongMessageIsCutAtACharacterBoundary) {
  EventLog log;
  log.add(0, EventKind::Reload, std::string(kEventMaxMessage + 100, 'a'));
  EXPECT_EQ(log.latest(1)[0]->message.size(), kEventMaxMessage);

  // "é" is two bytes; placed so that the limit falls between them.
  std::string text(kEventMaxMessage - 1, 'a');
  text += "\xc3\xa9tail";
  log.add(0, EventKind::Reload, text);
  EXPECT_EQ(log.latest(1)[0]->message, std::string(kEventMaxMessage - 1, 'a'));

  // A four-byte character ending exactly at the limit is kept whole.
  std::string emoji(kEventMaxMessage - 4, 'b');
  emoji += "\xf0\x9f\x98\x80";
  log.add(0, EventKind::Reload, emoji + "more");
  EXPECT_EQ(log.latest(1)[0]->message, emoji);

  // A short message is untouched.
  log.add(0, EventKind::Reload, "ok \xc3\xa9");
  EXPECT_EQ(log.latest(1)[0]->message, "ok \xc3\xa9");
}

TEST(EventLog, BytesThatAreNotUtf8BecomeQuestionMarks) {
  EventLog log;
  // A lone continuation byte, a lead byte cut short, and one at the end.
  log.add(0, EventKind::Health, "a\x80" "b \xc3x \xe2\x82", "p", "m", "w\xff");
  EXPECT_EQ(log.latest(1)[0]->message, "a?b ?x ??");
  EXPECT_EQ(log.latest(1)[0]->who, "w?");
}

TEST(EventLog, KindNames) {
  EXPECT_EQ(toString(EventKind::Start), "start");
  EXPECT_EQ(toString(EventKind::Health), "health");
  EXPECT_EQ(toString(EventKind::Admin), "admin");
  EXPECT_EQ(toString(EventKind::Reload), "reload");
  EXPECT_EQ(toString(EventKind::Discovery), "discovery");
  EXPECT_EQ(toString(EventKind::Certificate), "certificate");
  EXPECT_EQ(toString(EventKind::Upgrade), "upgrade");
}

TEST(EventsJson, EscapesEverythingAndNullsEmptyFields) {
  EventLog log;
  log.add(1'764'165'600'123, EventKind::Health, "up -> down (\"refused\"\n\t\\)", "web", "m\"1");
  log.add(1'764'165'601'000, EventKind::Admin, "drain", "", "", "127.0.0.1:5000");
  EXPECT_EQ(renderEventsJson(log, 0, 100),
            R"({"last_id":2,"events":[)"
            R"({"id":1,"time":"2025-11-26T14:00:00Z","unix_ms":1764165600123,"kind":"health","pool":"web",)"
            R"x("member":"m\"1","who":null,"message":"up -> down (\"refused\"\n\t\\)"},)x"
            R"({"id":2,"time":"2025-11-26T14:00:01Z","unix_ms":1764165601000,"kind":"admin","pool":null,)"
            R"("member":null,"who":"127.0.0.1:5000","message":"drain"}]})"
            "\n");
}

TEST(EventsJson, SinceAndLimit) {
  EventLog log;
  for (int i = 0; i < 4; ++i) log.add(0, EventKind::Start, "s" + std::to_string(i));
  std::string json = renderEventsJson(log, 2, 1);
  EXPECT_NE(json.find(R"("last_id":4)"), std::string::npos);
  EXPECT_EQ(json.find(R"("id":3)"), std::string::npos);
  EXPECT_NE(json.find(R"("id":4)"), std::string::npos);
  EXPECT_EQ(renderEventsJson(EventLog(), 0, 10), "{\"last_id\":0,\"events\":[]}\n");
}

TEST(EventsJson, ControlCharactersAreEscaped) {
  EventLog log;
  log.add(0, EventKind::Reload, std::string("a\x01" "b\x1f", 4));
  std::string json = renderEventsJson(log, 0, 10);
  EXPECT_NE(json.find(R"("message":"a\u0001b\u001f")"), std::string::npos) << json;
}

TEST(EventsText, AnAlignedTableNewestLast) {
  EventLog log;
  log.add(1'764'165'600'000, EventKind::Health, "up -> down (connect refused)", "web", "web-1");
  log.add(1'764'165'660'000, EventKind::Admin, "drain", "web", "web-22", "127.0.0.1:40000");
  log.add(1'764'165'720'000, EventKind::Reload, "refused:\nringlb.toml:3:1: bad\nringlb.toml:9:2: worse", "", "",
          "SIGHUP");
  std::string text = renderEventsText(log, 0, 100);
  EXPECT_EQ(text,
            "ID  TIME                  KIND    POOL/MEMBER  WHO              MESSAGE\n"
            " 1  2025-11-26T14:00:00Z  health  web/web-1    -                up -> down (connect refused)\n"
            " 2  2025-11-26T14:01:00Z  admin   web/web-22   127.0.0.1:40000  drain\n"
            " 3  2025-11-26T14:02:00Z  reload  -            SIGHUP           refused:\n"
            "                                                                ringlb.toml:3:1: bad\n"
            "                                                                ringlb.toml:9:2: worse\n");
}

TEST(EventsText, ControlCharactersAreNotPassedToTheTerminal) {
  EventLog log;
  log.add(0, EventKind::Discovery, "a\x1b[2Jb", "p\x07", "");
  std::string text = renderEventsText(log, 0, 10);
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
  EXPECT_EQ(text.find('\x07'), std::string::npos);
  EXPECT_NE(text.find("a?[2Jb"), std::string::npos);
}

TEST(EventsText, SinceAndLimitAsForJson) {
  EventLog log;
  for (int i = 0; i < 5; ++i) log.add(0, EventKind::Start, "s" + std::to_string(i));
  std::string text = renderEventsText(log, 3, 100);
  EXPECT_EQ(text.find("s2"), std::string::npos);
  EXPECT_NE(text.find("s3"), std::string::npos);
  EXPECT_NE(text.find("s4"), std::string::npos);
}

}  // namespace
}  // namespace lb
