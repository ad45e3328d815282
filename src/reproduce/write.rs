//! The one place in the library that writes files: a reproduction's `report.md`, `runs.csv` and plots (SVG and
//! PNG) into a directory. Everything else in [`crate::reproduce`] is computation; the CLI calls [`write`].

use super::targets::TargetResult;
use super::{figures, render, Reproduction};
use crate::plot::Figure;
use std::path::{Path, PathBuf};

/// A file that could not be written, and why.
#[derive(Debug)]
pub struct WriteError {
    pub path: PathBuf,
    pub message: String,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot write `{}`: {}",
            self.path.display(),
            self.message
        )
    }
}

impl std::error::Error for WriteError {}

/// The text artifacts (file name, contents): `report.md`, `runs.csv` and one SVG per figure. These are
/// byte-for-byte deterministic; the drift test compares them to the committed copies.
pub fn text_artifacts(
    rep: &Reproduction,
    results: &[TargetResult],
) -> Result<Vec<(String, String)>, WriteError> {
    let mut out = vec![
        ("report.md".to_string(), render::report_md(rep, results)),
        ("runs.csv".to_string(), render::runs_csv(rep)),
    ];
    for (stem, fig) in figures::all(rep) {
        let name = format!("{stem}.svg");
        let svg = crate::plot::svg(&fig).map_err(|e| WriteError {
            path: PathBuf::from(&name),
            message: e.to_string(),
        })?;
        out.push((name, svg));
    }
    Ok(out)
}

/// Write every artifact of a reproduction into `dir` (created if needed) and return the paths written, in order.
pub fn write(
    dir: &Path,
    rep: &Reproduction,
    results: &[TargetResult],
) -> Result<Vec<PathBuf>, WriteError> {
    let texts = text_artifacts(rep, results)?;
    // SVGs are already among the texts; only the PNGs remain to be rendered.
    write_files(dir, &texts, &figures::all(rep), false)
}

/// Write text files, then each figure as PNG (and as SVG too when `svg`), into `dir` (created if needed).
pub fn write_files(
    dir: &Path,
    texts: &[(String, String)],
    figures: &[(&str, Figure)],
    svg: bool,
) -> Result<Vec<PathBuf>, WriteError> {
    let io = |path: &Path, e: std::io::Error| WriteError {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut written = Vec::new();
    for (name, text) in texts {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
        written.push(path);
    }
    for (stem, fig) in figures {
        let plot_err = |path: &Path, e: crate::plot::PlotError| WriteError {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        if svg {
            let path = dir.join(format!("{stem}.svg"));
            let text = crate::plot::svg(fig).map_err(|e| plot_err(&path, e))?;
            std::fs::write(&path, text).map_err(|e| io(&path, e))?;
            written.push(path);
        }
        let path = dir.join(format!("{stem}.png"));
        crate::plot::png(fig, &path).map_err(|e| plot_err(&path, e))?;
        written.push(path);
    }
    Ok(written)
}
