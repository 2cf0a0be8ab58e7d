//! Time: message stamps read from the cycle counter on the hot path and turned into
//! wall-clock time when serialized, and OSProfiler's timestamp text.

use std::time::{SystemTime, UNIX_EPOCH};

/// When a message was made: a raw cycle-counter reading on the hot path (about 10 ns, where
/// the system clock costs 40 ns on a VM), turned into wall-clock time when serialized.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stamp {
    Raw(u64),
    #[allow(dead_code)] // built by tests
    Micros(i64),
}

impl Stamp {
    #[inline]
    pub(crate) fn now() -> Stamp {
        Stamp::Raw(counter::raw())
    }

    pub(crate) fn micros(self) -> i64 {
        match self {
            Stamp::Raw(raw) => counter::wall_micros(raw),
            Stamp::Micros(us) => us,
        }
    }
}

/// Wall-clock time from the cycle counter: an anchor pairs a counter reading with the system
/// clock, and a new anchor is taken when the newest is over a second old, so that clock
/// adjustments (NTP) are followed.
///
/// A reading is always converted with the newest anchor taken before it, so converting the
/// same message twice gives the same time (a message serialized by two drivers, or read back
/// and compared, never changes its timestamp), and times within one anchor's second are
/// monotonic.
pub(crate) mod counter {
    use std::collections::VecDeque;
    use std::sync::{Mutex, OnceLock};
    use std::time::{Duration, Instant};

    fn clock() -> &'static quanta::Clock {
        static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();
        CLOCK.get_or_init(quanta::Clock::new)
    }

    /// Calibrates the clock now, so that the first traced request does not pay for it.
    pub(crate) fn warm_up() {
        let _ = clock();
    }

    #[inline]
    pub(crate) fn raw() -> u64 {
        clock().raw()
    }

    struct Anchor {
        raw: u64,
        wall_us: i64,
        taken: Instant,
    }

    /// Anchors kept: readings older than the oldest use the oldest (a message that waited over
    /// ten minutes to be serialized).
    const KEPT: usize = 600;

    /// The anchors taken so far, oldest first.
    #[derive(Default)]
    pub(super) struct Anchors(VecDeque<Anchor>);

    impl Anchors {
        /// Converts `raw` with the newest anchor taken before it, first taking a new anchor if
        /// the newest is over a second older than `now` (the time is given, so that tests can
        /// move it).
        pub(super) fn wall_micros(&mut self, c: &quanta::Clock, raw: u64, now: Instant) -> i64 {
            let anchors = &mut self.0;
            if anchors
                .back()
                .is_none_or(|a| now.saturating_duration_since(a.taken) > Duration::from_secs(1))
            {
                if anchors.len() == KEPT {
                    anchors.pop_front();
                }
                anchors.push_back(Anchor {
                    raw: c.raw(),
                    wall_us: super::now_micros(),
                    taken: now,
                });
            }
            let a = anchors
                .iter()
                .rev()
                .find(|a| a.raw <= raw)
                .or(anchors.front())
                .map_or((0, 0), |a| (a.raw, a.wall_us));
            if raw >= a.0 {
                a.1 + c.delta(a.0, raw).as_micros() as i64
            } else {
                a.1 - c.delta(raw, a.0).as_micros() as i64
            }
        }

        #[cfg(test)]
        pub(super) fn len(&self) -> usize {
            self.0.len()
        }
    }

    pub(crate) fn wall_micros(raw: u64) -> i64 {
        static ANCHORS: Mutex<Anchors> = Mutex::new(Anchors(VecDeque::new()));
        ANCHORS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .wall_micros(clock(), raw, Instant::now())
    }

    #[cfg(test)]
    pub(super) fn test_clock() -> &'static quanta::Clock {
        clock()
    }
}

/// Microseconds since the Unix epoch, now.
#[inline]
pub(crate) fn now_micros() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        Err(e) => -(e.duration().as_micros() as i64),
    }
}

/// Microseconds since the Unix epoch of a system time (negative before it; saturating).
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// assert_eq!(osprofiler_core::clock::system_micros(UNIX_EPOCH + Duration::from_secs(2)), 2_000_000);
/// ```
pub fn system_micros(t: std::time::SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_micros()).map_or(i64::MIN, |m| -m),
    }
}

/// Formats microseconds since the epoch as OSProfiler does: UTC, no offset, 6 fractional
/// digits (`2024-01-02T03:04:05.678901`).
///
/// ```
/// assert_eq!(osprofiler_core::clock::format_timestamp(1_704_164_645_678_901), "2024-01-02T03:04:05.678901");
/// ```
pub fn format_timestamp(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Parses a timestamp in OSProfiler's format (fraction optional, 1 to 6 digits) into
/// microseconds since the epoch.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    if let Some(us) = parse_canonical(s.as_bytes()) {
        return Some(us);
    }
    let s = s.trim();
    let (date, time) = s.split_once('T').or_else(|| s.split_once(' '))?;
    let mut dp = date.splitn(3, '-');
    let y: i64 = dp.next()?.parse().ok()?;
    let m: u32 = dp.next()?.parse().ok()?;
    let d: u32 = dp.next()?.parse().ok()?;
    let (hms, frac) = match time.split_once('.') {
        Some((a, b)) => (a, b),
        None => (time, ""),
    };
    let mut tp = hms.splitn(3, ':');
    let hh: i64 = tp.next()?.parse().ok()?;
    let mm: i64 = tp.next()?.parse().ok()?;
    let ss: i64 = tp.next()?.parse().ok()?;
    if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut us: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    for _ in frac.len()..6 {
        us *= 10;
    }
    micros_of(y, m.into(), d.into(), hh, mm, ss, us)
}

/// Microseconds since the epoch of a UTC date and time, `None` when a field is out of range.
fn micros_of(y: i64, m: i64, d: i64, hh: i64, mm: i64, ss: i64, us: i64) -> Option<i64> {
    // Years 0..=99999 keep every time and every difference of two times within an i64 of
    // microseconds (a garbage timestamp must not overflow a report's arithmetic).
    if !(0..=99_999).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&d)
        || !(0..=23).contains(&hh)
        || !(0..=59).contains(&mm)
        || !(0..=60).contains(&ss)
    {
        return None;
    }
    let days = days_from_civil(y, m as u32, d as u32);
    Some(((days * 86_400) + hh * 3600 + mm * 60 + ss) * 1_000_000 + us)
}

// Howard Hinnant's civil calendar algorithms.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The common case, `YYYY-MM-DDTHH:MM:SS.ffffff` exactly (what every writer produces), without
/// splitting or UTF-8 parsing: reports parse one timestamp per message.
fn parse_canonical(b: &[u8]) -> Option<i64> {
    if b.len() != 26
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'.'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss, us) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..26)?);
    micros_of(y, m, d, hh, mm, ss, us)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_converts_to_the_same_time_after_the_clock_is_re_anchored() {
        // The anchors' clock is moved by hand: a second and more passes without waiting it.
        let c = counter::test_clock();
        let mut anchors = counter::Anchors::default();
        let t0 = std::time::Instant::now();
        let before = c.raw(); // older than every anchor: converted with the oldest
        let first = anchors.wall_micros(c, before, t0);
        let between = c.raw(); // after the first anchor
        let second = anchors.wall_micros(c, between, t0);
        assert_eq!(anchors.len(), 1);
        assert!(second >= first);

        let later = t0 + std::time::Duration::from_millis(1100);
        let after = c.raw();
        let third = anchors.wall_micros(c, after, later); // takes a new anchor
        assert_eq!(anchors.len(), 2, "re-anchored after a second");
        assert!(third >= second);
        assert_eq!(anchors.wall_micros(c, before, later), first);
        assert_eq!(anchors.wall_micros(c, between, later), second);
        assert_eq!(anchors.len(), 2);

        // And through the process's own anchors, as messages are serialized.
        let stamp = Stamp::now();
        assert_eq!(stamp.micros(), stamp.micros());
    }

    #[test]
    fn timestamps_round_trip_and_match_python_format() {
        // datetime(2024, 2, 29, 23, 59, 59, 5).strftime("%Y-%m-%dT%H:%M:%S.%f")
        let us = 1_709_251_199_000_005;
        assert_eq!(format_timestamp(us), "2024-02-29T23:59:59.000005");
        assert_eq!(parse_timestamp("2024-02-29T23:59:59.000005"), Some(us));
        assert_eq!(
            parse_timestamp("2024-02-29T23:59:59.5"),
            Some(us - 5 + 500_000)
        );
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000000");
        assert_eq!(parse_timestamp("garbage"), None);
        for us in [1i64, 951_782_400_123_456, 4_102_444_800_000_000] {
            assert_eq!(parse_timestamp(&format_timestamp(us)), Some(us));
        }
    }
}
