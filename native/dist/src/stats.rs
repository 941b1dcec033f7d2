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
pub const BINS: usize = 160;
/// The outcomes of a call counted apart, by their reason's tag; "ok" is calls - errors.
pub const OUTCOMES: [&str; 8] = ["badarg", "panic", "exception", "badresource", "overloaded", "badrequest", "undef", "other"];

pub struct NativeStats {
    pub calls: AtomicU64,
    pub errors: AtomicU64,
    /// Errors by reason, as OUTCOMES lists them.
    outcomes: [AtomicU64; OUTCOMES.len()],
    windows: [Window; 2],
    /// Every latency since the start, for an exporter's histogram, and their sum.
    total: [AtomicU64; BINS],
    total_us: AtomicU64,
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

/// Which of OUTCOMES an error reply is.
pub fn outcome_of(reply: &[u8]) -> usize {
    let tag = rustelixir_nif::reply::error_tag(reply).unwrap_or_default();
    OUTCOMES.iter().position(|o| o.as_bytes() == tag).unwrap_or(OUTCOMES.len() - 1)
}

/// The largest whole number of microseconds bin `i` holds.
fn upper_of(i: usize) -> u64 {
    if i < 4 {
        return i as u64;
    }
    let (e, m) = ((i - 4) / 4 + 2, ((i - 4) % 4) as u64);
    ((5 + m) << (e - 2)) - 1
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
        NativeStats {
            calls: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            outcomes: std::array::from_fn(|_| AtomicU64::new(0)),
            windows: [window(), window()],
            total: std::array::from_fn(|_| AtomicU64::new(0)),
            total_us: AtomicU64::new(0),
        }
    }
}

impl NativeStats {
    /// A call that started at `started` was answered now with `reply`.
    pub fn record(&self, started: Instant, reply: &[u8]) {
        let now = Instant::now();
        let error = rustelixir_nif::reply::is_error(reply).then(|| outcome_of(reply));
        self.record_at(now, now.saturating_duration_since(started), error);
    }

    /// `error`: the call failed, with the reason of OUTCOMES at that index.
    fn record_at(&self, now: Instant, took: Duration, error: Option<usize>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if let Some(outcome) = error {
            self.errors.fetch_add(1, Ordering::Relaxed);
            self.outcomes[outcome].fetch_add(1, Ordering::Relaxed);
        }
        let us = took.as_micros().min(u64::MAX as u128) as u64;
        self.total[bin_of(us)].fetch_add(1, Ordering::Relaxed);
        self.total_us.fetch_add(us, Ordering::Relaxed);
        let epoch = epoch_of(now);
        let window = &self.windows[(epoch % 2) as usize];
        let seen = window.epoch.load(Ordering::Relaxed);
        if seen != epoch && window.epoch.compare_exchange(seen, epoch, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            // This window's turn again: what it counted is older than the recent window.
            // (A call counted by another thread in between may be lost: a statistic.)
            window.bins.iter().for_each(|b| b.store(0, Ordering::Relaxed));
        }
        window.bins[bin_of(us)].fetch_add(1, Ordering::Relaxed);
    }

    /// Errors by reason, as OUTCOMES lists them.
    pub fn outcomes(&self) -> [u64; OUTCOMES.len()] {
        std::array::from_fn(|i| self.outcomes[i].load(Ordering::Relaxed))
    }

    /// Every call's latency since the start: (the count per bin, each bin's upper bound in
    /// microseconds), and the sum of the latencies in microseconds.
    pub fn histogram(&self) -> (Vec<(u64, u64)>, u64) {
        let bins = (0..BINS).map(|i| (self.total[i].load(Ordering::Relaxed), upper_of(i))).collect();
        (bins, self.total_us.load(Ordering::Relaxed))
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
        // Each bin's upper bound is the last value it holds.
        for i in 0..BINS - 1 {
            assert_eq!(bin_of(upper_of(i)), i);
            assert_eq!(bin_of(upper_of(i) + 1), i + 1);
        }
    }

    #[test]
    fn outcomes_by_the_reasons_tag() {
        use rustelixir_nif::reply::{write_error, Reason};
        let reason = |r: Reason<'_>| {
            let mut out = Vec::new();
            write_error(&mut out, r);
            OUTCOMES[outcome_of(&out)]
        };
        assert_eq!(reason(Reason::BadArg { index: 1, message: "m" }), "badarg");
        assert_eq!(reason(Reason::Overloaded), "overloaded");
        assert_eq!(reason(Reason::Exception { kind: "E", message: "m" }), "exception");
        assert_eq!(reason(Reason::Undef { name: "f", arity: 1 }), "undef");
        let mut custom = Vec::new();
        rustelixir_nif::reply::write_error_head(&mut custom);
        etf::encode::put_int(&mut custom, 7);
        assert_eq!(OUTCOMES[outcome_of(&custom)], "other");
    }

    #[test]
    fn percentiles_of_the_recent_window_and_totals_of_all() {
        let stats = NativeStats::default();
        let start = Instant::now();
        assert_eq!(stats.summary_at(start), Summary { calls: 0, errors: 0, p50_us: None, p99_us: None });
        for i in 0..99 {
            stats.record_at(start, Duration::from_micros(100), (i == 0).then_some(0));
        }
        stats.record_at(start, Duration::from_millis(10), None);
        let s = stats.summary_at(start);
        assert_eq!((s.calls, s.errors), (100, 1));
        assert!(s.p50_us.unwrap().abs_diff(100) <= 13, "{s:?}");
        assert!(s.p99_us.unwrap().abs_diff(100) <= 13, "{s:?}"); // the 99th of 100 is still 100 us
        // One window on, the calls are still recent; two on, they are not (the totals stay).
        let later = start + Duration::from_secs(WINDOW);
        assert!(stats.summary_at(later).p50_us.is_some());
        let much_later = start + Duration::from_secs(2 * WINDOW + 1);
        stats.record_at(much_later, Duration::from_micros(7), None);
        let s = stats.summary_at(much_later);
        assert_eq!((s.calls, s.p50_us, s.p99_us), (101, Some(7), Some(7)));
    }
}
