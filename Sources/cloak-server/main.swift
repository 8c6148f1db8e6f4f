import ArgumentParser
import CloakServerHTTP
import NIOCore
import NIOPosix

// Allocator settings first, before any thread allocates (ProcessTuning says why).
ProcessTuning.apply()

// Swift concurrency's tasks run on NIO's event loops instead of the global pool, before any
// task exists (NIO requires it be done first, once): a connection's messages are handled on
// the thread that reads its socket, with no hop between pools. Measured with
// `scripts/bench server`, builds alternating in one session (averages of six or seven runs
// each): SQLite ingest +15–18 %, SQLite catch-up within the noise, PostgreSQL catch-up about
// a fifth slower (cause not found; it has no target, ingest does). The stores' blocking work
// runs on their own queues, which this requires; the exception is the optional signature
// check on push, whose `concurrentPerform` holds a loop while it verifies. A job resumed from
// a thread that is not a loop (a store completion, a timer) goes to the group's next loop,
// the same counter that assigns accepted sockets: devices that each log in right after
// connecting can all land on one loop (seen in the ingest bench; pinning every task to its
// socket's loop balanced them but measured no faster).
NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
await run()

/// ArgumentParser's async entry point (top-level code alone picks its synchronous `main()`,
/// which cannot run an async command).
func run() async {
    await CloakServerCommand.main()
}
