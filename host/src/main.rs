fn main() -> std::process::ExitCode {
    keep_large_allocations_out_of_arenas();
    latchkey::cli::main()
}

/// glibc's malloc raises its mmap threshold to the size of any large block freed (up to
/// 32 MiB), after which large blocks come from the per-thread arenas and stay there when
/// freed. The password history's argon2id needs 8 MiB of working memory per typed password
/// hashed or verified, on whichever thread of the blocking pool runs it, so a server under a
/// steady load kept a copy in every arena: the 30-minute soak ended at 3.9 GB resident in 53
/// arena heaps of 64 MiB. A fixed threshold keeps every block of 1 MiB or more in a mapping of
/// its own, returned to the system when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn keep_large_allocations_out_of_arenas() {
    // SAFETY: mallopt only sets malloc's parameters; this runs first thing in main, before any
    // other thread exists, and the value is one glibc documents.
    let set = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20) };
    debug_assert_eq!(set, 1, "glibc accepts a 1 MiB mmap threshold");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_large_allocations_out_of_arenas() {}
