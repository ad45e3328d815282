//! Rows of a sweep: one flat JSON object per point (its JSON line), the headline outputs of a report as its
//! fields, and the CSV made from the lines. The CSV is always rendered from the JSON lines' text, so a whole run,
//! a resumed run and merged shards write the same bytes.

use crate::gpu::report::GpuReport;
use crate::report::RunReport;
use std::fmt::Write;

/// A field's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Int(i128),
    Float(f64),
    Text(String),
    /// A number as it was written in a JSON line (kept as text, so re-rendering never changes a digit).
    Num(String),
}

impl Cell {
    /// The value as CSV or plot text: numbers as written, text as is.
    pub fn text(&self) -> String {
        match self {
            Cell::Int(i) => i.to_string(),
            Cell::Float(f) => json_float(*f),
            Cell::Text(s) | Cell::Num(s) => s.clone(),
        }
    }
}

fn json_float(f: f64) -> String {
    if f.is_finite() {
        serde_json::to_string(&f).unwrap_or_else(|_| "null".into())
    } else {
        "null".into()
    }
}

/// One flat JSON object, fields in the given order.
pub fn json_line(fields: &[(String, Cell)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(k).unwrap_or_default());
        out.push(':');
        match v {
            Cell::Text(s) => out.push_str(&serde_json::to_string(s).unwrap_or_default()),
            other => out.push_str(&other.text()),
        }
    }
    out.push('}');
    out
}

/// The fields of a flat JSON object as [`json_line`] writes it, in order; `None` if the line is not one (e.g. a
/// line cut short when a run was killed).
pub fn parse_line(line: &str) -> Option<Vec<(String, Cell)>> {
    let b = line.as_bytes();
    let mut i = 0;
    let ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    // The end (exclusive) of the JSON string starting at `i`.
    let string_end = |mut i: usize| -> Option<usize> {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        i += 1;
        while i < b.len() {
            match b[i] {
                b'\\' => i += 2,
                b'"' => return Some(i + 1),
                _ => i += 1,
            }
        }
        None
    };
    ws(&mut i);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    let mut out = Vec::new();
    loop {
        ws(&mut i);
        if b.get(i) == Some(&b'}') && out.is_empty() {
            i += 1;
            break;
        }
        let e = string_end(i)?;
        let key: String = serde_json::from_str(&line[i..e]).ok()?;
        i = e;
        ws(&mut i);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i += 1;
        ws(&mut i);
        let value = if b.get(i) == Some(&b'"') {
            let e = string_end(i)?;
            let s: String = serde_json::from_str(&line[i..e]).ok()?;
            i = e;
            Cell::Text(s)
        } else {
            let start = i;
            while i < b.len() && !matches!(b[i], b',' | b'}') && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            let t = &line[start..i];
            if t.is_empty() {
                return None;
            }
            match t.parse::<i128>() {
                Ok(n) => Cell::Int(n),
                Err(_) => Cell::Num(t.to_string()),
            }
        };
        out.push((key, value));
        ws(&mut i);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => {
                i += 1;
                break;
            }
            _ => return None,
        }
    }
    ws(&mut i);
    (i == b.len()).then_some(out)
}

/// The headline outputs of a report, appended to a row: binding, limiter, cycles, bound, seconds, area (total and
/// per component), energy (total and per component), traffic per storage level and utilization per unit.
pub fn outputs(r: &RunReport, f: &mut Vec<(String, Cell)>) {
    f.push(("binding".into(), Cell::Text(r.binding.clone())));
    f.push(("limiter".into(), Cell::Text(r.bound.limiter.clone())));
    f.push(("cycles".into(), Cell::Int(r.cycles as i128)));
    f.push(("bound_cycles".into(), Cell::Int(r.bound.cycles as i128)));
    f.push(("seconds".into(), Cell::Float(r.seconds)));
    f.push(("area_mm2".into(), Cell::Float(r.area_mm2.values().sum())));
    f.push(("energy_pj".into(), Cell::Float(r.energy_pj.total)));
    for (k, v) in &r.area_mm2 {
        f.push((format!("area_mm2.{k}"), Cell::Float(*v)));
    }
    for (k, v) in &r.energy_pj.by_component {
        f.push((format!("energy_pj.{k}"), Cell::Float(*v)));
    }
    for (k, v) in &r.traffic_bytes {
        f.push((format!("traffic_bytes.{k}"), Cell::Int(*v as i128)));
    }
    for (k, v) in &r.utilization {
        f.push((format!("utilization.{k}"), Cell::Float(*v)));
    }
}

/// The headline outputs of a GPU run, appended to a row: the kernel (`binding`), the unit that binds a tile step
/// (`limiter`), cycles, bound, seconds, energy (the board at TDP, a calibration: gpus.md §5.4), TFLOP/s, percent
/// of the dense peak, and utilization per unit. A GPU has no area model, so its area cells stay empty.
pub fn gpu_outputs(r: &GpuReport, f: &mut Vec<(String, Cell)>) {
    f.push(("binding".into(), Cell::Text(r.kernel.clone())));
    f.push(("limiter".into(), Cell::Text(r.binds.clone())));
    f.push(("cycles".into(), Cell::Int(r.cycles as i128)));
    f.push(("bound_cycles".into(), Cell::Int(r.bound_cycles as i128)));
    f.push(("seconds".into(), Cell::Float(r.seconds)));
    f.push(("energy_pj".into(), Cell::Float(r.energy_j * 1e12)));
    f.push(("tflops".into(), Cell::Float(r.tflops)));
    f.push(("percent_of_peak".into(), Cell::Float(r.percent_of_peak)));
    for u in &r.units {
        f.push((
            format!("utilization.{}", u.unit),
            Cell::Float(u.utilization),
        ));
    }
}

/// Output columns of GPU rows only (after the per-design families in the CSV, as any extra column).
pub const GPU_HEAD: [&str; 2] = ["tflops", "percent_of_peak"];

/// The output columns every successful row has, in CSV order (after the axes).
pub const HEAD: [&str; 9] = [
    "status",
    "error",
    "binding",
    "limiter",
    "cycles",
    "bound_cycles",
    "seconds",
    "area_mm2",
    "energy_pj",
];

/// Column families whose members depend on the design (`energy_pj.dram`, `utilization.pe2d`).
pub const FAMILIES: [&str; 4] = ["area_mm2.", "energy_pj.", "traffic_bytes.", "utilization."];

/// CSV of the rows: `point`, the axes, the headline outputs, then the per-component columns any row has (sorted);
/// a row without a column (a failed point) leaves it empty.
pub fn csv<'a>(axes: &[String], lines: impl Iterator<Item = &'a str> + Clone) -> String {
    let mut cols: Vec<String> = vec!["point".into()];
    cols.extend(axes.iter().cloned());
    cols.extend(HEAD.iter().map(|s| s.to_string()));
    let mut extra = std::collections::BTreeSet::new();
    let rows: Vec<Vec<(String, Cell)>> = lines.filter_map(parse_line).collect();
    for r in &rows {
        for (k, _) in r {
            if !cols.contains(k) {
                extra.insert(k.clone());
            }
        }
    }
    cols.extend(extra);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        cols.iter().map(|c| quote(c)).collect::<Vec<_>>().join(",")
    );
    for r in &rows {
        let cells: Vec<String> = cols
            .iter()
            .map(|c| {
                r.iter()
                    .find(|(k, _)| k == c)
                    .map_or_else(String::new, |(_, v)| quote(&v.text()))
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join(","));
    }
    out
}

/// A CSV field, quoted when it needs to be.
fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A parsed CSV: header and rows of text.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Parse CSV text (RFC 4180 quoting). Rows shorter than the header are padded with empty fields.
    pub fn parse(text: &str) -> Table {
        let mut records: Vec<Vec<String>> = Vec::new();
        let mut field = String::new();
        let mut record: Vec<String> = Vec::new();
        let mut quoted = false;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if quoted {
                match c {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    '"' => quoted = false,
                    _ => field.push(c),
                }
            } else {
                match c {
                    '"' => quoted = true,
                    ',' => record.push(std::mem::take(&mut field)),
                    '\r' => {}
                    '\n' => {
                        record.push(std::mem::take(&mut field));
                        records.push(std::mem::take(&mut record));
                    }
                    _ => field.push(c),
                }
            }
        }
        if !field.is_empty() || !record.is_empty() {
            record.push(field);
            records.push(record);
        }
        let mut it = records.into_iter();
        let columns = it.next().unwrap_or_default();
        let rows = it
            .map(|mut r| {
                r.resize(columns.len().max(r.len()), String::new());
                r
            })
            .collect();
        Table { columns, rows }
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let f = vec![
            ("point".to_string(), Cell::Int(3)),
            ("design".to_string(), Cell::Text("a \"b\", c".into())),
            ("seconds".to_string(), Cell::Float(1.25e-3)),
        ];
        let l = json_line(&f);
        assert_eq!(l, r#"{"point":3,"design":"a \"b\", c","seconds":0.00125}"#);
        let back = parse_line(&l).unwrap();
        assert_eq!(back[0], f[0]);
        assert_eq!(back[1], f[1]);
        assert_eq!(back[2].1.text(), "0.00125");
        assert!(parse_line(&l[..l.len() - 3]).is_none());
        let csv = csv(&["design".into()], [l.as_str()].into_iter());
        let t = Table::parse(&csv);
        assert_eq!(t.rows[0][t.column("design").unwrap()], "a \"b\", c");
        assert_eq!(t.rows[0][t.column("seconds").unwrap()], "0.00125");
    }
}
