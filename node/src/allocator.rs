//! The allocator's settings: memory a thread frees stays with the process for reuse instead of
//! going back to the OS a second later.
//!
//! mimalloc, the `signer` binary's global allocator, returns memory unused for a while to the
//! OS (its `purge_delay`, one second in mimalloc 3). A node's request buffers (TLS records,
//! HTTP/2 frames, protobuf, Raft entries) churn through the same few MiB, so under load the
//! process kept faulting them back in, each fault zeroing a fresh 2 MiB huge page: 9,949 page
//! faults in a 25-second `signer bench --profiles espresso --clients 256` run against 756 with
//! purging off, about 3% of the CPU (`clear_page_erms` in the profile). The cost: a node's
//! resident memory stays at its peak (start-up with many KMS keys, a snapshot build or
//! restore), which the README's Performance section says.
//!
//! Owns: [`keep_freed_memory`]. One of three modules of the crate allowed to use `unsafe`: one
//! FFI call into mimalloc. Must not: change how memory is allocated, only when it is returned.
#![allow(unsafe_code)]

/// `mi_option_purge_delay`: its index in mimalloc 3's `mi_option_t` (`include/mimalloc.h`),
/// for which the binding crate has no constant. `libmimalloc-sys` is pinned to one version so
/// the index cannot move; the test checks this index holds the purge delay's default.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Never return freed memory to the OS (purge delay -1). Call first thing in `main`, before
/// threads start.
pub fn keep_freed_memory() {
    // SAFETY: `mi_option_set` stores a value in mimalloc's option table (it ignores an index
    // out of range); it reads no pointer, and no other thread runs yet to race the store.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_is_the_option_set_and_it_becomes_never() {
        // SAFETY: reads an option value by index.
        let default = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
        // mimalloc 3's default purge delay: 1000 ms (unless the environment overrides it).
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(default, 1000);
        }
        keep_freed_memory();
        // SAFETY: as above.
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }, -1);
    }
}
