//! Per-native statistics: calls, errors and latency over a recent window, counted where each
//! call is answered (the fast path included) with a few relaxed atomic adds, read by `:info`.
//!
//! Latencies go into a log-scale histogram (four bins per power of two: within 12.5% of
//! the truth), one for each of two alternating windows of `WINDOW` seconds; the recent
//! window is the current one and the one before it (between `WINDOW` and twice that long).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Seconds of one window.
pub const WINDOW: u64 = 30;
const BINS: usize = 160;

pub struct NativeStats {
    pub calls: AtomicU64,
    pub errors: AtomicU64,
    windows: [Window; 2],
}

struct Window {
    /// Which window (seconds since the process's first call / WINDOW) the bins count.
    epoch: AtomicU64,
    bins: [AtomicU64; BINS],
}

/// What `:info` reports of one native.
#[derive(Debug, PartialEq)]
pub struct Summary {
    pub calls: u64,
    pub errors: u64,
    /// Over the recent window; None when it saw no call.
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
}

fn epoch_of(at: Instant) -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    at.saturating_duration_since(*START.get_or_init(Instant::now)).as_secs() / WINDOW
}

fn bin_of(us: u64) -> usize {
    if us < 4 {
        return us as usize;
    }
    let e = 63 - us.leading_zeros() as usize; // 2 and up
    let m = ((us >> (e - 2)) & 3) as usize;
    (4 + (e - 2) * 4 + m).min(BINS - 1)
}

/// The middle of bin `i`'s range of microseconds.
fn value_of(i: usize) -> u64 {
    if i < 4 {
        return i as u64;
    }
    let (e, m) = ((i - 4) / 4 + 2, ((i - 4) % 4) as u64);
    let width = 1u64 << (e - 2);
    ((4 + m) << (e - 2)) + width / 2
}

impl Default for NativeStats {
    fn default() -> Self {
        let window = || Window { epoch: AtomicU64::new(u64::MAX), bins: std::array::from_fn(|_| AtomicU64::new(0)) };
        NativeStats { calls: AtomicU64::new(0), errors: AtomicU64::new(0), windows: [window(), window()] }
    }
}

impl NativeStats {
    /// A call that started at `started` was answered now (an error or not).
    pub fn record(&self, started: Instant, error: bool) {
        let now = Instant::now();
        self.record_at(now, now.saturating_duration_since(started), error);
    }

    fn record_at(&self, now: Instant, took: Duration, error: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let epoch = epoch_of(now);
        let window = &self.windows[(epoch % 2) as usize];
        let seen = window.epoch.load(Ordering::Relaxed);
        if seen != epoch && window.epoch.compare_exchange(seen, epoch, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            // This window's turn again: what it counted is older than the recent window.
            // (A call counted by another thread in between may be lost: a statistic.)
            window.bins.iter().for_each(|b| b.store(0, Ordering::Relaxed));
        }
        window.bins[bin_of(took.as_micros().min(u64::MAX as u128) as u64)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn summary(&self) -> Summary {
        self.summary_at(Instant::now())
    }

    fn summary_at(&self, now: Instant) -> Summary {
        let epoch = epoch_of(now);
        let mut counts = [0u64; BINS];
        for window in &self.windows {
            let e = window.epoch.load(Ordering::Relaxed);
            if e == epoch || e.wrapping_add(1) == epoch {
                for (count, bin) in counts.iter_mut().zip(&window.bins) {
                    *count += bin.load(Ordering::Relaxed);
                }
            }
        }
        let total: u64 = counts.iter().sum();
        let percentile = |q: f64| -> Option<u64> {
            if total == 0 {
                return None;
            }
            let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
            let mut seen = 0;
            counts.iter().position(|c| {
                seen += c;
                seen >= rank
            })
            .map(value_of)
        };
        Summary {
            calls: self.calls.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            p50_us: percentile(0.5),
            p99_us: percentile(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_cover_every_latency_within_an_eighth() {
        for us in (0..100_000u64).chain([1 << 20, 1 << 30, u64::MAX / 2]) {
            let i = bin_of(us);
            assert!(i < BINS);
            if us < (1 << 39) {
                let v = value_of(i);
                assert!(v.abs_diff(us) as f64 <= us as f64 / 8.0 + 1.0, "{us} us in bin {i} read as {v}");
            }
        }
        assert!((1..BINS).all(|i| value_of(i) > value_of(i - 1)));
    }

    #[test]
    fn percentiles_of_the_recent_window_and_totals_of_all() {
        let stats = NativeStats::default();
        let start = Instant::now();
        assert_eq!(stats.summary_at(start), Summary { calls: 0, errors: 0, p50_us: None, p99_us: None });
        for i in 0..99 {
            stats.record_at(start, Duration::from_micros(100), i == 0);
        }
        stats.record_at(start, Duration::from_millis(10), false);
        let s = stats.summary_at(start);
        assert_eq!((s.calls, s.errors), (100, 1));
        assert!(s.p50_us.unwrap().abs_diff(100) <= 13, "{s:?}");
        assert!(s.p99_us.unwrap().abs_diff(100) <= 13, "{s:?}"); // the 99th of 100 is still 100 us
        // One window on, the calls are still recent; two on, they are not (the totals stay).
        let later = start + Duration::from_secs(WINDOW);
        assert!(stats.summary_at(later).p50_us.is_some());
        let much_later = start + Duration::from_secs(2 * WINDOW + 1);
        stats.record_at(much_later, Duration::from_micros(7), false);
        let s = stats.summary_at(much_later);
        assert_eq!((s.calls, s.p50_us, s.p99_us), (101, Some(7), Some(7)));
    }
}
