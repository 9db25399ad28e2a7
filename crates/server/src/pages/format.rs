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

    /// Whether a meter can show it: only a limit above zero bounds a quantity.
    pub fn bounded(&self) -> bool {
        self.limit.is_some_and(|l| l > 0)
    }

    /// The meter's maximum: the limit.
    pub fn max(&self) -> u64 {
        self.limit.unwrap_or(1).max(1)
    }

    /// The value the meter shows.
    pub fn value(&self) -> u64 {
        self.used.min(self.max())
    }

    /// Where the meter turns from calm to a warning (75%) and to a danger (90%); lower is better.
    pub fn low(&self) -> u64 {
        self.max() * 3 / 4
    }

    pub fn high(&self) -> u64 {
        self.max() * 9 / 10
    }

    /// Whether the limit is reached.
    pub fn full(&self) -> bool {
        self.limit.is_some_and(|l| self.used >= l)
    }

    /// The amount in words: "1200 of 5000", "300 used; no limit", "none allowed (300 used)".
    pub fn text(&self) -> String {
        match self.limit {
            None => format!("{} used; no limit", self.used_text),
            Some(0) if self.used == 0 => "none allowed".into(),
            Some(0) => format!("none allowed ({} used)", self.used_text),
            Some(_) => format!("{} of {}", self.used_text, self.limit_text),
        }
    }
}

/// An org's usage as its pages tell it: the bars, when the period renews, and why the org is
/// frozen and what lifts it.
pub struct UsageStory {
    pub bars: Vec<Bar>,
    /// "Renews on 2027-01-01 (in 25 days)."
    pub renews: String,
    /// A sentence for each thing that freezes the org; empty when it is not frozen.
    pub frozen_why: Vec<String>,
}

/// Why a deprovisioned org is frozen, whoever reads it.
const DEPROVISIONED: &str = "The operator deprovisioned this organization: it is kept exactly as it was, can be read and \
     exported, and comes back as it was when it is restored.";

/// The story of `org`'s usage `u` at `now`.
pub fn usage_story(
    u: &crate::routes::usage::UsageView,
    org: &crate::views::OrgView,
    now: time::OffsetDateTime,
) -> UsageStory {
    let expires_at = org.license.expires_at;
    let renews = format!("Renews on {} ({}).", u.period.end.date(), in_days(u.period.end, now));
    let mut frozen_why = Vec::new();
    if org.state == "deprovisioned" {
        frozen_why.push(DEPROVISIONED.to_owned());
    } else if let Some(at) = expires_at.filter(|at| *at <= now) {
        frozen_why.push(format!("The license expired on {}; renewing or extending the license lifts it.", at.date()));
    } else {
        let used_up = [("Operations", &u.operations), ("Data transfer", &u.transfer)];
        for (what, c) in used_up {
            match c.limit {
                Some(0) => frozen_why.push(format!(
                    "{what} are not allowed by the license (0); a license that allows them lifts it."
                )),
                Some(l) if c.used >= l => frozen_why.push(format!(
                    "{what} of this period are used up; the period renews on {} ({}), or a larger license lifts it sooner.",
                    u.period.end.date(),
                    in_days(u.period.end, now)
                )),
                _ => {}
            }
        }
    }
    UsageStory { bars: usage_bars(u), renews, frozen_why }
}

/// Why an org is frozen, told to a member who may not read its usage: the expiry, or that this
/// period's allowance is used up and when the period renews — without the amounts.
pub fn frozen_why_for_members(org: &crate::views::OrgView, now: time::OffsetDateTime) -> Vec<String> {
    if !org.frozen {
        return vec![];
    }
    if org.state == "deprovisioned" {
        return vec![DEPROVISIONED.to_owned()];
    }
    if let Some(at) = org.license.expires_at.filter(|at| *at <= now) {
        return vec![format!("The license expired on {}; renewing or extending the license lifts it.", at.date())];
    }
    let period = steward_core::license::period_containing(org.created_at, org.license.restart_period, now);
    vec![format!(
        "The organization has used what its license allows for this period; the period renews on {} ({}), or a larger license lifts it sooner.",
        period.end.date(),
        in_days(period.end, now)
    )]
}

/// "in 3 days", "tomorrow", "today".
pub fn in_days(at: time::OffsetDateTime, now: time::OffsetDateTime) -> String {
    match (at.date() - now.date()).whole_days() {
        ..=0 => "today".into(),
        1 => "tomorrow".into(),
        n => format!("in {n} days"),
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
