//! How pages show quantities and times: byte sizes, usage bars, dates.

/// Byte counts for people.
pub fn bytes_text(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// A usage bar: what is used against a limit (none: unlimited).
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    pub used: u64,
    pub limit: Option<u64>,
    /// `used` as people read it.
    pub used_text: String,
    /// The limit as people read it, or "unlimited".
    pub limit_text: String,
}

impl Bar {
    /// A bar of counts.
    pub fn count(label: &str, used: u64, limit: Option<u64>) -> Bar {
        Bar {
            label: label.into(),
            used,
            limit,
            used_text: used.to_string(),
            limit_text: limit.map_or_else(|| "unlimited".into(), |l| l.to_string()),
        }
    }

    /// A bar of bytes.
    pub fn bytes(label: &str, used: u64, limit: Option<u64>) -> Bar {
        Bar {
            label: label.into(),
            used,
            limit,
            used_text: bytes_text(used),
            limit_text: limit.map_or_else(|| "unlimited".into(), bytes_text),
        }
    }

    /// The meter's maximum: the limit, or (unlimited) the amount used so that the bar reads empty.
    pub fn max(&self) -> u64 {
        self.limit.unwrap_or(0).max(1)
    }

    /// The value the meter shows.
    pub fn value(&self) -> u64 {
        if self.limit.is_some() { self.used.min(self.max()) } else { 0 }
    }

    /// Whether the limit is reached.
    pub fn full(&self) -> bool {
        self.limit.is_some_and(|l| self.used >= l)
    }
}

/// The bars of an org's usage view.
pub fn usage_bars(u: &crate::routes::usage::UsageView) -> Vec<Bar> {
    vec![
        Bar::count("Operations this period", u.operations.used, u.operations.limit),
        Bar::bytes("Data transfer this period", u.transfer.used, u.transfer.limit),
        Bar::count("Data stores", u.data_stores.used, u.data_stores.limit),
        Bar::bytes("Data store storage", u.data_store_bytes.used, u.data_store_bytes.limit),
        Bar::count("Scenarios", u.scenarios.used, u.scenarios.limit),
        Bar::bytes("File storage", u.file_bytes.used, u.file_bytes.limit),
    ]
}

/// A time as people read it (UTC, to the minute).
pub fn when(t: &time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.to_offset(time::UtcOffset::UTC).format(&f).unwrap_or_default()
}

/// An RFC 3339 time from the API, as people read it.
pub fn when_text(t: &str) -> String {
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .map_or_else(|_| t.into(), |t| when(&t))
}
