import CMalloc

/// Process-wide settings a server process applies once, before it serves. `cloak-server`
/// calls this first thing; so does the benchmark's server child, so it measures the same.
public enum ProcessTuning {
    /// Turns off glibc's fastbins (`M_MXFAST` 0). Every pushed change set is about 1 KiB, above
    /// what glibc's per-thread cache holds, so each one took the allocator's slow path, and
    /// with fastbins in use that path first consolidated all freed small chunks
    /// (`malloc_consolidate`, 1–2 % of the server's push profile). Small blocks still come from
    /// the per-thread cache. Measured with `cloak-bench server --phases ingest1`, alternating
    /// runs: server CPU per change set 27.8 → 26.5 µs (medians of three).
    public static func apply() {
        #if canImport(Glibc)
        _ = mallopt(M_MXFAST, 0)
        #endif
    }
}
