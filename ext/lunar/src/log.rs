//! Lunar's own log lines from the native side, in the format and at the level Ruby's
//! `Lunar::Log` uses (`--log-format text|json`, `--log-level`), set once at boot through
//! `Lunar::Native.configure_log`. Lines go to stderr, where Ruby writes its warnings (a
//! `stdout_redirect` reopens that same descriptor, so both land in one file). Plain data,
//! no Ruby: any thread may log.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sync::lock;

#[derive(Clone, Copy, PartialEq, PartialOrd, Debug)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    pub fn parse(name: &str) -> Option<Level> {
        [Level::Debug, Level::Info, Level::Warn, Level::Error].into_iter().find(|l| l.name() == name)
    }
}

static JSON: AtomicBool = AtomicBool::new(false);
static THRESHOLD: AtomicU8 = AtomicU8::new(Level::Info as u8);

pub fn configure(json: bool, threshold: Level) {
    JSON.store(json, Ordering::Relaxed);
    THRESHOLD.store(threshold as u8, Ordering::Relaxed);
}

pub fn warn(message: &str) {
    write(Level::Warn, message);
}

pub fn info(message: &str) {
    write(Level::Info, message);
}

/// A warning any client can cause, once per request (a body over `--max-body`): written at
/// most once per `every`, with the count of those held back since, so that a client
/// cannot fill the log while an operator still learns that it happens and which limit.
pub struct Throttled {
    every: Duration,
    /// When a line was last written, and how many were held back since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttled {
    pub const fn new(every: Duration) -> Self {
        Throttled { every, state: Mutex::new((None, 0)) }
    }

    /// Writes `message()` (only built when written) unless a line went out within `every`.
    pub fn warn(&self, message: impl FnOnce() -> String) {
        if let Some(held) = self.admit(Instant::now()) {
            let more = if held > 0 { format!(" ({held} more since the last such line)") } else { String::new() };
            warn(&format!("{}{more}", message()));
        }
    }

    /// `Some(lines held back since the last)` when one may be written at `now`.
    fn admit(&self, now: Instant) -> Option<u64> {
        let mut state = lock(&self.state);
        if state.0.is_some_and(|last| now.saturating_duration_since(last) < self.every) {
            state.1 += 1;
            return None;
        }
        state.0 = Some(now);
        Some(std::mem::take(&mut state.1))
    }
}

fn write(level: Level, message: &str) {
    // Unit tests drive code that warns (a malformed body, a short stream) on purpose; the
    // harness does not capture stderr written this way, so their lines would litter its output.
    if cfg!(test) || (level as u8) < THRESHOLD.load(Ordering::Relaxed) {
        return;
    }
    let line = line(level, message, JSON.load(Ordering::Relaxed));
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// One line as `Lunar::Log` writes it: `lunar: MESSAGE`, or a JSON object.
fn line(level: Level, message: &str, json: bool) -> String {
    if !json {
        return format!("lunar: {message}\n");
    }
    let time = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!(
        "{{\"time\":\"{}\",\"level\":\"{}\",\"pid\":{},\"message\":{}}}\n",
        iso8601(time.as_secs(), time.subsec_millis()),
        level.name(),
        std::process::id(),
        quoted(message)
    )
}

/// A JSON string.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// UTC `YYYY-MM-DDTHH:MM:SS.mmmZ` from Unix seconds (civil-from-days, proleptic Gregorian).
fn iso8601(secs: u64, millis: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_rubys() {
        assert_eq!(line(Level::Warn, "Redis x: lost", false), "lunar: Redis x: lost\n");
        let json = line(Level::Warn, "say \"hi\"\n", true);
        assert!(json.starts_with("{\"time\":\"") && json.contains("\"level\":\"warn\"") && json.ends_with("\"message\":\"say \\\"hi\\\"\\n\"}\n"), "{json}");
        assert_eq!(iso8601(0, 5), "1970-01-01T00:00:00.005Z");
        assert_eq!(iso8601(1_796_400_000, 0), "2026-12-04T16:00:00.000Z");
        assert_eq!(iso8601(951_782_400, 0), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn a_throttled_warning_is_written_once_per_interval_with_the_count_held_back() {
        let throttled = Throttled::new(Duration::from_secs(60));
        let start = Instant::now();
        assert_eq!(throttled.admit(start), Some(0), "the first is written");
        assert_eq!(throttled.admit(start + Duration::from_secs(1)), None);
        assert_eq!(throttled.admit(start + Duration::from_secs(59)), None);
        assert_eq!(throttled.admit(start + Duration::from_secs(60)), Some(2), "then one, saying two were held back");
        assert_eq!(throttled.admit(start + Duration::from_secs(61)), None);
        assert_eq!(throttled.admit(start + Duration::from_secs(200)), Some(1));
    }
}
