import ArgumentParser
import NIOCore
import NIOPosix

// Swift concurrency's tasks run on NIO's event loops instead of the global pool, before any
// task exists (NIO requires it be done first, once): a connection's messages are handled on
// the thread that reads its socket, with no hop between pools. Measured with
// `scripts/bench server`, builds alternating in one session (averages of six or seven runs
// each): SQLite ingest +15–18 %, SQLite catch-up within the noise, PostgreSQL catch-up about
// a fifth slower (cause not found; it has no target, ingest does). Nothing in the server
// blocks a thread in a task (the stores' blocking work runs on their own queues), which
// this requires.
NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
await run()

/// ArgumentParser's async entry point (top-level code alone picks its synchronous `main()`,
/// which cannot run an async command).
func run() async {
    await CloakServerCommand.main()
}
