//! Charts drawn on the server: a bar per day as SVG — no script, no external asset — that a
//! screen reader reads by its title and description, with its numbers in a table beside it. It
//! draws what it is given; which quantities to chart is the pages' choice.

use time::{Date, Duration, OffsetDateTime};

/// The chart's drawing box: the SVG's `viewBox` is this wide and tall.
const WIDTH: u64 = 600;
const HEIGHT: u64 = 120;

/// One day's bar, placed.
#[derive(Debug, Clone, PartialEq)]
pub struct DayBar {
    /// The day as people read it (`Dec 3`).
    pub label: String,
    /// The amount as people read it.
    pub text: String,
    pub x: u64,
    pub y: u64,
    pub width: u64,
    pub height: u64,
}

/// A chart of one quantity per day.
#[derive(Debug, Clone, PartialEq)]
pub struct DayChart {
    /// Unique on its page: the SVG's title and description are named after it.
    pub id: String,
    pub title: String,
    /// What a screen reader hears besides the title: the span, the total and the busiest day.
    pub summary: String,
    pub bars: Vec<DayBar>,
    pub width: u64,
    pub height: u64,
}

impl DayChart {
    /// A chart of `days` (each day's first instant and its amount), one bar per day from `from`
    /// up to the day before `until`; days without an amount are drawn at zero. `text` writes an
    /// amount as people read it.
    pub fn new(
        id: &str,
        title: &str,
        from: OffsetDateTime,
        until: OffsetDateTime,
        days: &[(OffsetDateTime, u64)],
        text: impl Fn(u64) -> String,
    ) -> DayChart {
        let first = from.date();
        let count = (until.date() - first).whole_days().clamp(1, 400) as u64;
        let amount_on = |d: Date| days.iter().filter(|(at, _)| at.date() == d).map(|(_, n)| *n).sum::<u64>();
        let amounts: Vec<(Date, u64)> =
            (0..count).map(|i| first + Duration::days(i as i64)).map(|d| (d, amount_on(d))).collect();
        let max = amounts.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
        let slot = (WIDTH / count).max(1);
        let bars = amounts
            .iter()
            .enumerate()
            .map(|(i, (day, n))| {
                let height = if *n == 0 { 0 } else { (n * HEIGHT / max).max(1) };
                DayBar {
                    label: format!("{} {}", &day.month().to_string()[..3], day.day()),
                    text: text(*n),
                    x: i as u64 * slot,
                    y: HEIGHT - height,
                    width: slot.saturating_sub(1).max(1),
                    height,
                }
            })
            .collect();
        let total: u64 = amounts.iter().map(|(_, n)| n).sum();
        let busiest = amounts.iter().max_by_key(|(_, n)| *n).filter(|(_, n)| *n > 0);
        let summary = match busiest {
            Some((day, n)) => {
                format!("{} days from {first}: {} in all; the most on {day}, {}.", count, text(total), text(*n))
            }
            None => format!("{count} days from {first}: nothing yet."),
        };
        DayChart { id: id.into(), title: title.into(), summary, bars, width: count * slot, height: HEIGHT }
    }

    /// A chart of a level (how many there were each day) rather than of amounts that add up:
    /// its description names the last day's level and the highest, not a total.
    pub fn levels(
        id: &str,
        title: &str,
        from: OffsetDateTime,
        until: OffsetDateTime,
        days: &[(OffsetDateTime, u64)],
    ) -> DayChart {
        let mut chart = DayChart::new(id, title, from, until, days, |n| n.to_string());
        let last = days.iter().max_by_key(|(at, _)| *at).map_or(0, |(_, n)| *n);
        let highest = days.iter().max_by_key(|(_, n)| *n).filter(|(_, n)| *n > 0);
        chart.summary = match highest {
            Some((at, n)) => format!(
                "{} days from {}: {last} on the last day; the most, {n}, on {}.",
                chart.bars.len(),
                from.date(),
                at.date()
            ),
            None => format!("{} days from {}: none.", chart.bars.len(), from.date()),
        };
        chart
    }
}

/// An org's operations and data transfer per day, from the start of the previous period
/// through today.
pub fn usage_charts(u: &crate::routes::usage::UsageDays) -> Vec<DayChart> {
    let through_today = u.until + Duration::days(1);
    let since = u.since.date();
    let operations: Vec<_> = u.days.iter().map(|d| (d.day, d.operations)).collect();
    let transfer: Vec<_> = u.days.iter().map(|d| (d.day, d.transfer)).collect();
    vec![
        DayChart::new(
            "operations-per-day",
            &format!("Operations per day since {since}"),
            u.since,
            through_today,
            &operations,
            |n| n.to_string(),
        ),
        DayChart::new(
            "transfer-per-day",
            &format!("Data transfer per day since {since}"),
            u.since,
            through_today,
            &transfer,
            super::bytes_text,
        ),
        DayChart::levels(
            "seats-per-day",
            &format!("Seats at the end of each day since {since}"),
            u.since,
            through_today,
            &u.seats.iter().map(|s| (s.day, s.seats)).collect::<Vec<_>>(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn every_day_has_a_bar_and_the_busiest_is_the_tallest() {
        let from = datetime!(2026-12-01 00:00 UTC);
        let until = datetime!(2026-12-05 00:00 UTC);
        let days = [(datetime!(2026-12-02 00:00 UTC), 50), (datetime!(2026-12-04 00:00 UTC), 100)];
        let chart = DayChart::new("ops", "Operations per day", from, until, &days, |n| n.to_string());
        let heights: Vec<u64> = chart.bars.iter().map(|b| b.height).collect();
        assert_eq!(heights, [0, HEIGHT / 2, 0, HEIGHT]);
        assert_eq!(chart.bars[1].label, "Dec 2");
        assert!(chart.bars.iter().all(|b| b.y + b.height == HEIGHT), "bars stand on the base line");
        assert_eq!(chart.summary, "4 days from 2026-12-01: 150 in all; the most on 2026-12-04, 100.");
        let empty = DayChart::new("t", "Transfer per day", from, until, &[], |n| n.to_string());
        assert_eq!(empty.summary, "4 days from 2026-12-01: nothing yet.");
    }
}
