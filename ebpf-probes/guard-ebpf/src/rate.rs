//! Token buckets for `limits.connects_per_minute` and `limits.execs_per_minute`, counted per
//! sandbox in the kernel.

use aya_ebpf::helpers::bpf_ktime_get_ns;
use guard_common::policy::{MAX_PER_MINUTE, TOKEN_COST, TokenBucket};

/// Takes one token from `bucket`, refilled at `per_minute` tokens a minute up to `per_minute`.
/// Returns false when the bucket is empty (over the limit). `per_minute == 0` means no limit.
///
/// Two CPUs updating the same bucket at once can both take the last token: the limit may be
/// exceeded by at most one event per concurrent CPU, never by more. A spin lock would need a
/// BTF-defined value type the legacy hash map cannot carry.
#[inline(always)]
pub fn take(bucket: *mut TokenBucket, per_minute: u32) -> bool {
    if per_minute == 0 {
        return true;
    }
    let capacity = (per_minute as u64).min(MAX_PER_MINUTE) * TOKEN_COST;
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: `bucket` points into a map value the caller looked up.
    let (units, last) = unsafe { ((*bucket).units, (*bucket).last_ns) };
    let refilled = if last == 0 {
        capacity
    } else {
        // After a minute the bucket is full whatever the rate, so longer gaps are clamped; with
        // `per_minute` at most MAX_PER_MINUTE (checked by the supervisor) nothing overflows,
        // and no 128-bit arithmetic (which BPF lacks) is needed.
        let elapsed = now.saturating_sub(last).min(TOKEN_COST);
        let per_minute = (per_minute as u64).min(MAX_PER_MINUTE);
        (units + elapsed * per_minute).min(capacity)
    };
    let allowed = refilled >= TOKEN_COST;
    let left = if allowed {
        refilled - TOKEN_COST
    } else {
        refilled
    };
    // SAFETY: as above.
    unsafe {
        (*bucket).units = left;
        (*bucket).last_ns = now;
    }
    allowed
}
