#include "lb/discovery/dns_answer.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace lb::discovery {
namespace {

constexpr uint16_t kTypeA = 1;
constexpr uint16_t kTypeCname = 5;
constexpr uint16_t kTypeAaaa = 28;
constexpr uint16_t kTypeSrv = 33;
constexpr uint16_t kClassIn = 1;

constexpr size_t kHeaderBytes = 12;
constexpr unsigned kMaxPointers = 16;    // per name (dns_answer.h)
constexpr unsigned kMaxCnameHops = 16;   // per answer
constexpr size_t kMaxLabelBytes = 63;
constexpr size_t kMaxNameBytes = 255;    // on the wire, length octets and the root's included

uint16_t typeCode(config::DiscoverType type) {
  switch (type) {
    case config::DiscoverType::A: return kTypeA;
    case config::DiscoverType::AAAA: return kTypeAaaa;
    case config::DiscoverType::SRV: return kTypeSrv;
  }
  return 0;
}

// A bounds-checked cursor over the message. Every read checks first; a
// failed read sets `bad` and returns zeros, so a parse goes on to its next
// check and ends Malformed without ever reading outside the message.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> message) : message_(message) {}

  size_t offset() const { return offset_; }
  void seek(size_t offset) { offset_ = offset; }
  size_t size() const { return message_.size(); }
  bool ok() const { return why_.empty(); }
  const std::string& why() const { return why_; }
  void fail(std::string why) {
    if (why_.empty()) why_ = std::move(why);
  }

  bool has(size_t bytes) {
    if (bytes <= message_.size() && offset_ <= message_.size() - bytes) return true;
    fail("the message ends inside a record (" + std::to_string(message_.size()) + " bytes)");
    return false;
  }
  uint8_t u8() {
    if (!has(1)) return 0;
    return message_[offset_++];
  }
  uint16_t u16() {
    if (!has(2)) return 0;
    uint16_t value = static_cast<uint16_t>(message_[offset_] << 8 | message_[offset_ + 1]);
    offset_ += 2;
    return value;
  }
  uint32_t u32() {
    uint32_t high = u16();
    return high << 16 | u16();
  }
  void bytes(void* out, size_t count) {
    if (!has(count)) return;
    std::memcpy(out, message_.data() + offset_, count);
    offset_ += count;
  }
  void skip(size_t count) {
    if (has(count)) offset_ += count;
  }

  // Reads a (possibly compressed) name at the cursor into `out` (lower
  // case, labels joined by '.', no trailing dot; the root is ""). The
  // cursor ends after the name's bytes where it started (after the first
  // pointer, if any). Each pointer must point strictly before the label
  // it replaces, so pointers can only walk backwards and a name can never
  // loop; at most kMaxPointers of them are followed.
  void name(std::string* out) {
    out->clear();
    size_t position = offset_;
    size_t resume = 0;  // where the cursor goes once the name ends; 0: not jumped yet
    size_t wireBytes = 1;
    unsigned pointers = 0;
    for (;;) {
      if (position >= message_.size()) return fail("a name runs past the end of the message");
      uint8_t length = message_[position];
      if ((length & 0xC0) == 0xC0) {
        if (position + 1 >= message_.size()) return fail("a name's pointer is cut off");
        size_t target = static_cast<size_t>(length & 0x3F) << 8 | message_[position + 1];
        if (++pointers > kMaxPointers) return fail("a name follows more than 16 compression pointers");
        if (target >= position || target < kHeaderBytes)
          return fail("a compression pointer does not point backwards into the message");
        if (resume == 0) resume = position + 2;
        position = target;
        continue;
      }
      if (length > kMaxLabelBytes) return fail("a label is longer than 63 bytes (or of an unknown kind)");
      if (length == 0) break;
      wireBytes += 1 + length;
      if (wireBytes > kMaxNameBytes) return fail("a name is longer than 255 bytes");
      if (position + 1 + length > message_.size()) return fail("a label runs past the end of the message");
      if (!out->empty()) out->push_back('.');
      appendLabel(message_.subspan(position + 1, length), out);
      position += 1 + length;
    }
    offset_ = resume != 0 ? resume : position + 1;
  }

 private:
  // Bytes that would make another name's text ('.', '\\', non-printing)
  // are written as \DDD (as dig does), so two names have the same text only
  // if they have the same labels.
  static void appendLabel(std::span<const uint8_t> label, std::string* out) {
    for (uint8_t byte : label) {
      if (byte >= 'A' && byte <= 'Z') {
        out->push_back(static_cast<char>(byte - 'A' + 'a'));
      } else if (byte > 0x20 && byte < 0x7F && byte != '.' && byte != '\\') {
        out->push_back(static_cast<char>(byte));
      } else {
        char escaped[5] = {'\\', static_cast<char>('0' + byte / 100), static_cast<char>('0' + byte / 10 % 10),
                           static_cast<char>('0' + byte % 10), 0};
        out->append(escaped, 4);
      }
    }
  }

  std::span<const uint8_t> message_;
  size_t offset_ = 0;
  std::string why_;
};

// One resource record, its RDATA left in place.
struct RawRecord {
  std::string owner;
  uint16_t type = 0;
  uint16_t rclass = 0;
  uint32_t ttl = 0;
  size_t rdata = 0;  // offset in the message
  uint16_t rdataBytes = 0;
};

void readRecord(Reader& reader, RawRecord* record) {
  reader.name(&record->owner);
  record->type = reader.u16();
  record->rclass = reader.u16();
  uint32_t ttl = reader.u32();
  record->ttl = ttl > 0x7FFFFFFF ? 0 : ttl;  // RFC 2181 section 8: a set top bit means zero
  record->rdataBytes = reader.u16();
  record->rdata = reader.offset();
  reader.skip(record->rdataBytes);
}

std::string normalized(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  std::string out(name);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// An A or AAAA record's address; false (and the reader failed) when its
// RDATA has the wrong length.
bool readAddress(Reader& reader, const RawRecord& record, AddressRecord* out) {
  out->owner = record.owner;
  out->ttl = record.ttl;
  out->address = {};
  reader.seek(record.rdata);
  if (record.type == kTypeA) {
    if (record.rdataBytes != 4) {
      reader.fail("an A record's data is not 4 bytes");
      return false;
    }
    auto* v4 = reinterpret_cast<sockaddr_in*>(&out->address);
    v4->sin_family = AF_INET;
    reader.bytes(&v4->sin_addr, 4);
  } else {
    if (record.rdataBytes != 16) {
      reader.fail("an AAAA record's data is not 16 bytes");
      return false;
    }
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&out->address);
    v6->sin6_family = AF_INET6;
    reader.bytes(&v6->sin6_addr, 16);
  }
  return reader.ok();
}

bool readSrv(Reader& reader, const RawRecord& record, SrvRecord* out) {
  out->owner = record.owner;
  out->ttl = record.ttl;
  reader.seek(record.rdata);
  out->priority = reader.u16();
  out->weight = reader.u16();
  out->port = reader.u16();
  reader.name(&out->target);
  if (reader.ok() && reader.offset() != record.rdata + record.rdataBytes)
    reader.fail("an SRV record's data does not end where its length says");
  return reader.ok();
}

}  // namespace

std::optional<DnsAnswer> parseDnsAnswer(std::span<const uint8_t> message, std::string_view name,
                                        config::DiscoverType type, std::string* whyNot) {
  auto malformed = [&](const std::string& why) -> std::optional<DnsAnswer> {
    if (whyNot) *whyNot = why;
    return std::nullopt;
  };
  if (message.size() < kHeaderBytes) return malformed("shorter than a DNS header");
  Reader reader(message);
  reader.skip(2);  // id: c-ares has matched it to its query
  uint16_t flags = reader.u16();
  uint16_t questions = reader.u16();
  uint16_t answers = reader.u16();
  uint16_t authorities = reader.u16();
  uint16_t additionals = reader.u16();
  if (!(flags & 0x8000)) return malformed("not a response (QR is 0)");
  if (questions != 1) return malformed("the response has " + std::to_string(questions) + " questions, not 1");

  DnsAnswer answer;
  answer.rcode = flags & 0x000F;
  answer.truncated = (flags & 0x0200) != 0;

  std::string questionName;
  reader.name(&questionName);
  uint16_t questionType = reader.u16();
  uint16_t questionClass = reader.u16();
  if (!reader.ok()) return malformed(reader.why());
  const uint16_t askedType = typeCode(type);
  if (questionName != normalized(name) || questionType != askedType || questionClass != kClassIn)
    return malformed("the response answers another question (" + questionName + " type " +
                     std::to_string(questionType) + ")");

  // Every record of every section is read (and must be well formed) before
  // any is used.
  std::vector<RawRecord> answerRecords;
  for (uint16_t i = 0; i < answers && reader.ok(); ++i) {
    answerRecords.emplace_back();
    readRecord(reader, &answerRecords.back());
  }
  RawRecord skipped;
  for (uint16_t i = 0; i < authorities && reader.ok(); ++i) readRecord(reader, &skipped);
  std::vector<RawRecord> additionalRecords;
  for (uint16_t i = 0; i < additionals && reader.ok(); ++i) {
    readRecord(reader, &skipped);
    if (skipped.rclass == kClassIn && (skipped.type == kTypeA || skipped.type == kTypeAaaa))
      additionalRecords.push_back(skipped);
  }
  if (!reader.ok()) return malformed(reader.why());

  // The CNAME chain from the question name: each hop is the (first) CNAME
  // owned by the name reached so far.
  answer.canonicalName = questionName;
  for (unsigned hops = 0;; ++hops) {
    auto cname = std::find_if(answerRecords.begin(), answerRecords.end(), [&](const RawRecord& record) {
      return record.type == kTypeCname && record.rclass == kClassIn && record.owner == answer.canonicalName;
    });
    if (cname == answerRecords.end()) break;
    if (hops == kMaxCnameHops) return malformed("a CNAME chain longer than 16 (or a loop)");
    reader.seek(cname->rdata);
    reader.name(&answer.canonicalName);
    if (reader.ok() && reader.offset() != cname->rdata + cname->rdataBytes)
      reader.fail("a CNAME record's data does not end where its length says");
    if (!reader.ok()) return malformed(reader.why());
  }

  bool first = true;
  for (const RawRecord& record : answerRecords) {
    if (record.type != askedType || record.rclass != kClassIn || record.owner != answer.canonicalName) continue;
    if (askedType == kTypeSrv) {
      SrvRecord srv;
      if (!readSrv(reader, record, &srv)) return malformed(reader.why());
      answer.services.push_back(std::move(srv));
    } else {
      AddressRecord address;
      if (!readAddress(reader, record, &address)) return malformed(reader.why());
      answer.addresses.push_back(std::move(address));
    }
    answer.ttl = first ? record.ttl : std::min(answer.ttl, record.ttl);
    first = false;
  }
  for (const RawRecord& record : additionalRecords) {
    AddressRecord address;
    if (!readAddress(reader, record, &address)) return malformed(reader.why());
    answer.additional.push_back(std::move(address));
  }
  return answer;
}

}  // namespace lb::discovery
