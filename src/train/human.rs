//! Human wording of sizes, ages and durations, shared by every table so `ckpts`, `status` and
//! `check` say "2.3 GiB", "17 min ago" and "2.00 it/s" the same way.

/// Binary units, one decimal from KiB up: disks and `du` count in powers of two.
pub fn fmt_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    // Round first, so 1023.96 KiB becomes "1.0 MiB" rather than "1024.0 KiB".
    while (value * 10.0).round() / 10.0 >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A span of time in its two largest units: `45 s`, `17 min`, `1 h 05 min`, `2 d 3 h`.
pub fn fmt_duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "unknown".to_string();
    }
    if seconds < 10.0 && seconds.fract() != 0.0 {
        return format!("{seconds:.1} s");
    }
    let s = seconds.round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=86_399 => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// How long ago something happened, from an age in seconds measured against the remote clock.
/// A negative age (a file stamped in the future) is shown as "just now" rather than as nonsense.
pub fn fmt_age(age_seconds: i64) -> String {
    if age_seconds < 10 {
        return "just now".to_string();
    }
    format!("{} ago", fmt_duration(age_seconds as f64))
}

/// A training pace as tqdm shows it, so rtrain's figures read like the bar in the log: items per
/// second when at least one a second (`2.00 it/s`), else seconds per item (`1.92 s/it`).
pub fn fmt_rate(seconds_per_step: f64) -> String {
    if !(seconds_per_step.is_finite() && seconds_per_step > 0.0) {
        return "unknown".to_string();
    }
    let per_second = 1.0 / seconds_per_step;
    if per_second >= 1.0 {
        format!("{per_second:.2} it/s")
    } else {
        format!("{seconds_per_step:.2} s/it")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_follow_tqdm_it_per_s_from_one_a_second_else_s_per_it() {
        assert_eq!(fmt_rate(0.5), "2.00 it/s");
        assert_eq!(fmt_rate(1.0), "1.00 it/s");
        assert_eq!(fmt_rate(1.92), "1.92 s/it");
        assert_eq!(fmt_rate(0.52), "1.92 it/s");
        assert_eq!(fmt_rate(4.0), "4.00 s/it");
        assert_eq!(fmt_rate(1.0 / 111.99), "111.99 it/s");
        assert_eq!(fmt_rate(0.0), "unknown");
        assert_eq!(fmt_rate(f64::NAN), "unknown");
    }

    #[test]
    fn bytes_use_binary_units_with_one_decimal() {
        assert_eq!(fmt_bytes(0), "0 B");
        assert_eq!(fmt_bytes(1023), "1023 B");
        assert_eq!(fmt_bytes(1024), "1.0 KiB");
        assert_eq!(fmt_bytes(2_469_606_195), "2.3 GiB");
        assert_eq!(fmt_bytes(1024 * 1024 - 1), "1.0 MiB");
        assert_eq!(fmt_bytes(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn durations_show_the_two_largest_units() {
        assert_eq!(fmt_duration(4.01), "4.0 s");
        assert_eq!(fmt_duration(45.0), "45 s");
        assert_eq!(fmt_duration(17.0 * 60.0 + 5.0), "17 min");
        assert_eq!(fmt_duration(3600.0 + 5.0 * 60.0), "1 h 05 min");
        assert_eq!(fmt_duration(2.0 * 86_400.0 + 3.0 * 3600.0), "2 d 3 h");
        assert_eq!(fmt_duration(f64::NAN), "unknown");
    }

    #[test]
    fn ages_read_as_ago() {
        assert_eq!(fmt_age(17 * 60 + 3), "17 min ago");
        assert_eq!(fmt_age(3), "just now");
        assert_eq!(fmt_age(-40), "just now");
    }
}
