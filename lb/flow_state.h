#pragma once
// One direction of a session (a flow) as a state machine, apart from its
// I/O: which operation the flow is waiting for, and how far its stream has
// got. The worker asks for every transition here and checks that it was
// legal; unit tests drive it without sockets (tests/unit/flow_state_test.cc).
//
// What a flow waits for (its one operation in flight):
//
//   Nothing --start(Receive)--> Receive   a receive into a ring buffer, or the
//                                         next completion of the flow's
//                                         multishot receive (below)
//   Nothing --start(Send)-----> Send      the send of the ring buffer it holds
//   Nothing --start(PollIn)---> PollIn    the source readable (splice path)
//   Nothing --start(PollOut)--> PollOut   the destination writable (bytes in the pipe)
//   Nothing --start(Pause)----> Pause     a NOP (its budget is spent) or a short
//                                         timer (a local resource ran out)
//   Nothing --start(Output)---> Output    a TLS leg's send of the ciphertext this
//                                         flow made (the leg's own operation: the
//                                         flow has no SQE of its own meanwhile)
//   X --complete(X)--> Nothing            the completion of X, whatever its result
//
// Every operation starts from Nothing and ends in Nothing, so a flow never
// has two operations in flight, and cancelling the one in wait() cancels
// everything the flow has. One exception, outside this class: a plaintext
// flow of small messages keeps one multishot receive armed across its
// sends (Flow::multishot, lb/session.h). It is the only thing reading the
// source while armed; what it delivers while the flow is busy waits in the
// flow's ReceivedQueue and is taken, in order, at the flow's next
// start(Receive), which then needs no SQE. It is cancelled on its own when
// two buffers wait, when the flow turns to splice, and when the session ends.
//
// How far the stream has got, only forward:
//
//   Open --endSource()--> SourceEnded --finish()--> Finished
//
// endSource(): the source sent FIN. finish(): that FIN was passed on to the
// destination, after every byte before it; only with nothing in flight.
// Nothing starts once Finished. This axis is orthogonal to the wait: a flow
// whose source has ended may still be sending what it read before the FIN.

#include <cstdint>
#include <string_view>

namespace lb {

enum class FlowWait : uint8_t { Nothing, Receive, Send, PollIn, PollOut, Pause, Output };
enum class FlowEnd : uint8_t { Open, SourceEnded, Finished };

constexpr std::string_view toString(FlowWait wait) {
  constexpr std::string_view names[] = {"nothing", "receive", "send", "poll_in", "poll_out", "pause", "output"};
  return names[static_cast<uint8_t>(wait)];
}

class FlowState {
 public:
  FlowWait wait() const { return wait_; }
  FlowEnd end() const { return end_; }
  bool idle() const { return wait_ == FlowWait::Nothing; }
  bool sourceEnded() const { return end_ != FlowEnd::Open; }
  bool finished() const { return end_ == FlowEnd::Finished; }
  // A new operation may start: nothing in flight and the flow not finished.
  bool canStart() const { return idle() && !finished(); }

  // Each transition returns false, and changes nothing, when it is not
  // legal from the current state.
  [[nodiscard]] bool start(FlowWait operation) {
    if (operation == FlowWait::Nothing || !canStart()) return false;
    wait_ = operation;
    return true;
  }
  [[nodiscard]] bool complete(FlowWait operation) {
    if (operation == FlowWait::Nothing || wait_ != operation) return false;
    wait_ = FlowWait::Nothing;
    return true;
  }
  [[nodiscard]] bool endSource() {
    if (end_ != FlowEnd::Open) return false;
    end_ = FlowEnd::SourceEnded;
    return true;
  }
  [[nodiscard]] bool finish() {
    if (end_ != FlowEnd::SourceEnded || !idle()) return false;
    end_ = FlowEnd::Finished;
    return true;
  }

 private:
  FlowWait wait_ = FlowWait::Nothing;
  FlowEnd end_ = FlowEnd::Open;
};

}  // namespace lb
