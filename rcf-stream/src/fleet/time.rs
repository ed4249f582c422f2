//! Event timestamps: epoch seconds (integer or fractional) or RFC 3339, kept as milliseconds.

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// The earliest timestamp accepted: 2000-01-01T00:00:00Z (older ones are a unit mistake, such
/// as epoch minutes, or a device without a clock).
pub const MIN_TIMESTAMP: Millis = 946_684_800_000;
/// The latest timestamp accepted: 9999-12-31T23:59:59Z.
pub const MAX_TIMESTAMP: Millis = 253_402_300_799_000;

/// A timestamp from JSON: a number of epoch seconds, or an RFC 3339 string
/// (`2026-01-01T00:05:00Z`, `2026-01-01T01:05:00.250+01:00`).
pub fn parse_json(v: &serde_json::Value) -> Result<Millis, String> {
    let ms = match v {
        serde_json::Value::Number(n) => {
            let s = n.as_f64().ok_or_else(|| format!("`{n}` is not a number"))?;
            if !s.is_finite() {
                return Err(format!("`{n}` is not finite"));
            }
            // epoch milliseconds are a common mix-up: say so instead of a far-future date
            let ms = (s * 1000.0).round();
            if ms > MAX_TIMESTAMP as f64 && s < MAX_TIMESTAMP as f64 * 1000.0 {
                return Err(format!(
                    "{n} is past the year 9999 as epoch seconds (epoch milliseconds? divide by 1000)"
                ));
            }
            ms
        }
        serde_json::Value::String(s) => parse_rfc3339(s)? as f64,
        other => {
            return Err(format!(
                "must be epoch seconds or an RFC 3339 string, got {}",
                crate::fleet::value::json_kind(other)
            ));
        }
    };
    if !(MIN_TIMESTAMP as f64..=MAX_TIMESTAMP as f64).contains(&ms) {
        return Err(format!(
            "{} is outside 2000-01-01 .. 9999-12-31",
            match v {
                serde_json::Value::String(s) => crate::fleet::value::quoted(s),
                other => other.to_string(),
            }
        ));
    }
    Ok(ms as Millis)
}

/// Parses an RFC 3339 date-time (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`; a space for `T` and
/// a lower-case `z` are accepted).
pub fn parse_rfc3339(s: &str) -> Result<Millis, String> {
    let bad = || {
        format!(
            "{} is not an RFC 3339 date-time",
            crate::fleet::value::quoted(s)
        )
    };
    let b = s.as_bytes();
    if b.len() < 20 || !s.is_ascii() {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        let t = &s[r];
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
        let digits = &s[start..i.min(start + 3)];
        millis = digits.parse::<i64>().map_err(|_| bad())? * 10i64.pow(3 - digits.len() as u32);
    }
    let offset_min = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let (h, m) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if h > 23 || m > 59 {
                return Err(bad());
            }
            let o = h * 60 + m;
            if sign == b'+' { o } else { -o }
        }
        _ => return Err(bad()),
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + second.min(59) - offset_min * 60;
    Ok(secs * 1000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `ms` as RFC 3339 in UTC (`2026-01-01T00:05:00Z`, with milliseconds when there are some).
pub fn format_rfc3339(ms: Millis) -> String {
    let secs = ms.div_euclid(1000);
    let frac = ms.rem_euclid(1000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    let base = format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    );
    if frac == 0 {
        format!("{base}Z")
    } else {
        format!("{base}.{frac:03}Z")
    }
}

/// `ms` as Device Defender writes times in JSON: epoch seconds (fractional when needed).
pub(crate) fn to_json(ms: Millis) -> serde_json::Value {
    if ms % 1000 == 0 {
        serde_json::Value::from(ms / 1000)
    } else {
        serde_json::Value::from(ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_and_rejects_nonsense() {
        assert_eq!(parse_rfc3339("2026-01-01T00:00:00Z"), Ok(1_767_225_600_000));
        assert_eq!(
            parse_rfc3339("2026-01-01T01:00:00+01:00"),
            Ok(1_767_225_600_000)
        );
        assert_eq!(
            parse_rfc3339("2026-01-01 00:00:00.25z"),
            Ok(1_767_225_600_250)
        );
        assert_eq!(format_rfc3339(1_767_225_900_000), "2026-01-01T00:05:00Z");
        assert_eq!(format_rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        for t in [0i64, 951_782_400_000, 1_767_225_600_000, 4_102_444_800_000] {
            assert_eq!(parse_rfc3339(&format_rfc3339(t)), Ok(t));
        }
        for bad in [
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-01-01T00:00:00",
            "2026-01-01",
            "yesterday",
            "2026-01-01T00:00:00+1:00",
            "2026-01-01T00:00:00.Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_timestamps() {
        use serde_json::json;
        assert_eq!(parse_json(&json!(1_767_225_600)), Ok(1_767_225_600_000));
        assert_eq!(parse_json(&json!(1_767_225_600.5)), Ok(1_767_225_600_500));
        let e = parse_json(&json!(1_767_225_600_000u64)).unwrap_err();
        assert!(e.contains("milliseconds"), "{e}");
        assert!(parse_json(&json!(12)).unwrap_err().contains("outside"));
        assert!(parse_json(&json!(true)).unwrap_err().contains("boolean"));
    }
}
