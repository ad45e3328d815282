//! Diagnostics: errors that point into a source file.
//!
//! Every phase that reads user input (cascade files, arch files, `--set` overrides) reports problems as
//! [`Diagnostic`]s carrying byte spans into a named [`SourceFile`]. Rendering to text is done here with
//! `codespan-reporting` (no colour, so output is stable for snapshots); the core never prints.

use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term::{self, Config};
use std::ops::Range;

/// A byte range into a source file. `start == end` is a point.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }
    pub fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
    /// The smallest span covering both.
    pub fn join(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
    /// Shift by `offset` bytes (used when a text block is embedded inside a larger file).
    pub fn offset(self, offset: usize) -> Span {
        Span {
            start: self.start + offset as u32,
            end: self.end + offset as u32,
        }
    }
}

/// A named source text: a file on disk, an embedded shipped file, or a command-line argument.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        SourceFile {
            name: name.into(),
            text: text.into(),
        }
    }

    /// 1-based (line, column) of a byte offset, for plain messages.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }
}

/// One problem found in user input.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// What is wrong, e.g. "unknown tensor `QKX`".
    pub message: String,
    /// The primary span and its label (usually what was expected).
    pub span: Span,
    pub label: String,
    /// Secondary spans, e.g. where a tensor was first written.
    pub secondary: Vec<(Span, String)>,
    /// Extra lines ("help: ...").
    pub notes: Vec<String>,
}

impl Diagnostic {
    pub fn new(span: Span, message: impl Into<String>, label: impl Into<String>) -> Self {
        Diagnostic {
            message: message.into(),
            span,
            label: label.into(),
            secondary: Vec::new(),
            notes: Vec::new(),
        }
    }
    pub fn with_secondary(mut self, span: Span, label: impl Into<String>) -> Self {
        self.secondary.push((span, label.into()));
        self
    }
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }
}

/// Errors found in one file, rendered together.
#[derive(Clone, Debug)]
pub struct Diagnostics {
    pub file: SourceFile,
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// A single diagnostic in `file`.
    pub fn one(file: &SourceFile, d: Diagnostic) -> Diagnostics {
        Diagnostics {
            file: file.clone(),
            items: vec![d],
        }
    }

    /// Render every diagnostic as `error: ...` with file:line:column and the span underlined.
    pub fn render(&self) -> String {
        let file = SimpleFile::new(self.file.name.as_str(), self.file.text.as_str());
        let config = Config::default();
        let mut out = Vec::new();
        {
            let mut writer = term::termcolor::NoColor::new(&mut out);
            for d in &self.items {
                let mut labels = vec![Label::primary((), clamp(d.span.range(), &self.file.text))
                    .with_message(d.label.clone())];
                for (s, l) in &d.secondary {
                    labels.push(
                        Label::secondary((), clamp(s.range(), &self.file.text))
                            .with_message(l.clone()),
                    );
                }
                let cs = CsDiagnostic::error()
                    .with_message(d.message.clone())
                    .with_labels(labels)
                    .with_notes(d.notes.clone());
                // Writing into a Vec cannot fail; a failure here would be a bug in codespan.
                let _ = term::emit_to_write_style(&mut writer, &config, &file, &cs);
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl std::fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

impl std::error::Error for Diagnostics {}

/// Keep spans inside the text and on char boundaries so rendering never panics on odd input.
fn clamp(r: Range<usize>, text: &str) -> Range<usize> {
    let mut s = r.start.min(text.len());
    let mut e = r.end.min(text.len()).max(s);
    while !text.is_char_boundary(s) {
        s -= 1;
    }
    while !text.is_char_boundary(e) {
        e += 1;
    }
    s..e
}

/// Byte offset of a 1-based (line, column in chars) position, clamped to the text.
pub fn offset_of(text: &str, line: usize, col: usize) -> usize {
    let mut off = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            return off
                + l.char_indices()
                    .nth(col.saturating_sub(1))
                    .map_or(l.len(), |(b, _)| b);
        }
        off += l.len();
    }
    text.len()
}

/// The span of the first `"needle"` (a quoted string) in the text at or after byte `from`, or of the
/// unquoted word if no quoted one exists; the whole-file start if neither does. Used to point semantic errors in
/// RON files (whose parser keeps no spans) at the name they are about.
pub fn locate(text: &str, needle: &str, from: usize) -> Span {
    let from = from.min(text.len());
    let quoted = format!("\"{needle}\"");
    let hay = text.get(from..).unwrap_or("");
    if let Some(i) = hay.find(&quoted) {
        return Span::new(from + i + 1, from + i + 1 + needle.len());
    }
    if let Some(i) = text.find(&quoted) {
        return Span::new(i + 1, i + 1 + needle.len());
    }
    if let Some(i) = text.find(needle).filter(|_| !needle.is_empty()) {
        return Span::new(i, i + needle.len());
    }
    Span::new(0, 0)
}
