//! Markdown tables (readable as plain text too) and the number formats the report uses.

use super::hyperfine::Timing;

/// A table: header cells, then rows of cells; the first column left-aligned, the rest right.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let line = |cells: &[String]| {
            let escaped: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
            format!("| {} |\n", escaped.join(" | "))
        };
        let mut out = line(&self.header);
        let align: Vec<&str> = (0..self.header.len())
            .map(|i| if i == 0 { "---" } else { "---:" })
            .collect();
        out.push_str(&format!("|{}|\n", align.join("|")));
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }
}

/// Seconds as milliseconds.
pub fn ms(seconds: f64) -> String {
    format!("{:.2} ms", seconds * 1000.0)
}

/// Seconds in the unit that suits them.
pub fn duration(seconds: f64) -> String {
    if seconds >= 1.0 {
        format!("{seconds:.2} s")
    } else if seconds >= 1e-3 {
        ms(seconds)
    } else {
        format!("{:.0} µs", seconds * 1e6)
    }
}

/// `median (min – max)` of a timing.
pub fn spread(t: &Timing) -> String {
    format!(
        "{} ({} – {})",
        duration(t.median),
        duration(t.min),
        duration(t.max)
    )
}

/// A ratio of medians: two decimals below 10, one above.
pub fn ratio(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.2}×")
    } else {
        format!("{value:.1}×")
    }
}

/// KiB as MiB with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_markdown_with_escaped_cells() {
        let mut table = Table::new(&["a", "b"]);
        table.row(vec!["x|y".into(), "1".into()]);
        assert_eq!(table.render(), "| a | b |\n|---|---:|\n| x\\|y | 1 |\n");
    }

    #[test]
    fn number_formats() {
        assert_eq!(ms(0.00361), "3.61 ms");
        assert_eq!(duration(2.5), "2.50 s");
        assert_eq!(duration(0.0123), "12.30 ms");
        assert_eq!(duration(0.000_042), "42 µs");
        assert_eq!(ratio(1.034), "1.03×");
        assert_eq!(ratio(40.12), "40.1×");
        assert_eq!(mib(6656), "6.5 MiB");
        let t = Timing {
            median: 0.002,
            min: 0.001,
            max: 0.004,
            mean: 0.0,
            stddev: 0.0,
        };
        assert_eq!(spread(&t), "2.00 ms (1.00 ms – 4.00 ms)");
    }
}
