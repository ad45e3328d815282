//! Lexer and parser for the einsum notation inside a workload's `einsums:` block, producing an AST with file spans.
//!
//! The parser only knows the *shape* of the notation; names are resolved and semantics checked in
//! [`super::check`]. It is line-oriented (one statement per line, newlines inside brackets ignored) so that after
//! a syntax error it can skip to the next line and keep going: a file's syntax errors are all reported at once.

use super::file::TextLoc;
use super::ir::{BinOp, Cmp, Section, UnaryOp};
use crate::diag::{Diagnostic, Span};
use crate::expr::SizeExpr;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Stmt {
    Input(Vec<AstRef>),
    Section(Section),
    Until {
        var: String,
        var_span: Span,
        cmp: Cmp,
        bound: SizeExpr,
        span: Span,
    },
    Einsum(AstEinsum),
    /// An Einsum whose left-hand side parsed but whose rest did not (already reported). It still declares its
    /// output, so that later reads of the tensor are not reported as unknown as well.
    Broken(AstRef),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AstEinsum {
    pub section: Section,
    pub lhs: AstRef,
    pub reductions: Vec<AstReduction>,
    pub rhs: AstExpr,
    pub span: Span,
    pub comment: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AstRef {
    pub name: String,
    pub name_span: Span,
    pub indices: Vec<AstIndex>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum AstIndex {
    Var {
        var: String,
        span: Span,
    },
    Shift {
        var: String,
        offset: i64,
        span: Span,
    },
    Fixed {
        var: String,
        at: SizeExpr,
        span: Span,
    },
    /// An upper-case rank name in index position: that rank's final value.
    Final {
        rank: String,
        span: Span,
    },
    Flatten {
        terms: Vec<FlatTerm>,
        span: Span,
    },
    Filter {
        var: String,
        bound: String,
        cmp: Cmp,
        span: Span,
    },
}

impl AstIndex {
    pub fn span(&self) -> Span {
        match self {
            AstIndex::Var { span, .. }
            | AstIndex::Shift { span, .. }
            | AstIndex::Fixed { span, .. }
            | AstIndex::Final { span, .. }
            | AstIndex::Flatten { span, .. }
            | AstIndex::Filter { span, .. } => *span,
        }
    }
}

/// One term of a flattened index: `m1*M0` is var `m1` times rank `M0`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FlatTerm {
    pub var: String,
    pub var_span: Span,
    pub mults: Vec<(String, Span)>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum AstReduceOp {
    Sum,
    Max,
    Min,
    TopK(SizeExpr),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AstReduction {
    pub op: AstReduceOp,
    pub var: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum AstExpr {
    Ref(AstRef),
    Const(f64, Span),
    Unary {
        op: UnaryOp,
        arg: Box<AstExpr>,
        span: Span,
    },
    Binary {
        op: BinOp,
        lhs: Box<AstExpr>,
        rhs: Box<AstExpr>,
        span: Span,
    },
}

impl AstExpr {
    pub fn span(&self) -> Span {
        match self {
            AstExpr::Ref(r) => r.span,
            AstExpr::Const(_, s)
            | AstExpr::Unary { span: s, .. }
            | AstExpr::Binary { span: s, .. } => *s,
        }
    }
}

/// Unary map functions, by name.
pub(crate) const UNARY_FNS: [(&str, UnaryOp); 7] = [
    ("exp", UnaryOp::Exp),
    ("sigmoid", UnaryOp::Sigmoid),
    ("sqrt", UnaryOp::Sqrt),
    ("recip", UnaryOp::Recip),
    ("relu", UnaryOp::Relu),
    ("tanh", UnaryOp::Tanh),
    ("abs", UnaryOp::Abs),
];
/// Bound on operators and nesting in one statement, so no input can exhaust the stack of later recursive passes.
const MAX_OPS: usize = 256;
const MAX_DEPTH: usize = 64;
const FN_LIST: &str = "exp, sigmoid, sqrt, recip, relu, tanh, max(a, b) or min(a, b)";

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Num(String),
    Sym(&'static str),
    Comment(String),
    Newline,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    /// Relative to the block text.
    span: Span,
}

const SYMS: [&str; 19] = [
    "<=", ">=", "==", "[", "]", "(", ")", ",", "=", "+", "-", "*", "/", ":", "<", ">", "^", "!",
    ".",
];

fn lex(text: &str, errors: &mut Vec<(Span, String, String)>) -> Vec<Token> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c == b'\n' {
            i += 1;
            if depth == 0 {
                out.push(Token {
                    tok: Tok::Newline,
                    span: Span::new(start, i),
                });
            }
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else if b[i..].starts_with(b"--") || b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            let body = text.get(start + 2..i).unwrap_or("").trim().to_string();
            out.push(Token {
                tok: Tok::Comment(body),
                span: Span::new(start, i),
            });
        } else if c.is_ascii_alphabetic() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Ident(text.get(start..i).unwrap_or("").into()),
                span: Span::new(start, i),
            });
        } else if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
                i += 1;
            }
            if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            if matches!(b.get(i), Some(b'e' | b'E')) {
                let mut j = i + 1;
                if matches!(b.get(j), Some(b'+' | b'-')) {
                    j += 1;
                }
                if b.get(j).is_some_and(u8::is_ascii_digit) {
                    i = j;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            out.push(Token {
                tok: Tok::Num(text.get(start..i).unwrap_or("").into()),
                span: Span::new(start, i),
            });
        } else if let Some(s) = SYMS.iter().find(|s| b[i..].starts_with(s.as_bytes())) {
            i += s.len();
            match *s {
                "[" | "(" => depth += 1,
                "]" | ")" => depth = depth.saturating_sub(1),
                _ => {}
            }
            out.push(Token {
                tok: Tok::Sym(s),
                span: Span::new(start, i),
            });
        } else {
            let ch = text.get(i..).and_then(|s| s.chars().next()).unwrap_or('?');
            i += ch.len_utf8();
            errors.push((
                Span::new(start, i),
                format!("unexpected character `{}`", ch.escape_debug()),
                "expected a name, a number, an operator or a bracket".into(),
            ));
        }
    }
    out
}

/// Parse an einsums block. Spans in the result are file spans (mapped through `loc`).
pub(crate) fn parse(text: &str, loc: TextLoc) -> (Vec<Stmt>, Vec<Diagnostic>) {
    let mut lex_errors = Vec::new();
    let toks = lex(text, &mut lex_errors);
    let mut p = Parser {
        text,
        toks,
        i: 0,
        loc,
        errors: Vec::new(),
        section: Section::Main,
        depth: 0,
        ops: 0,
        pending_lhs: None,
    };
    for (s, m, l) in lex_errors {
        p.errors.push(Diagnostic::new(loc.map(s), m, l));
    }
    let mut stmts = Vec::new();
    loop {
        while matches!(p.peek(), Some(Tok::Newline | Tok::Comment(_))) {
            p.i += 1;
        }
        if p.i >= p.toks.len() {
            break;
        }
        p.ops = 0;
        p.pending_lhs = None;
        match p.statement() {
            Ok(Some(mut s)) => {
                let comment = match p.peek() {
                    Some(Tok::Comment(c)) => {
                        let c = c.clone();
                        p.i += 1;
                        Some(c)
                    }
                    _ => None,
                };
                if let Stmt::Einsum(e) = &mut s {
                    e.comment = comment.filter(|c| !c.is_empty());
                }
                if matches!(p.peek(), None | Some(Tok::Newline)) {
                    stmts.push(s);
                } else {
                    let d = p.error(
                        "unexpected text after the statement",
                        "expected the end of the line",
                    );
                    p.errors.push(d);
                    p.skip_line();
                }
            }
            Ok(None) => {}
            Err(d) => {
                p.errors.push(d);
                if let Some(lhs) = p.pending_lhs.take() {
                    stmts.push(Stmt::Broken(lhs));
                }
                p.skip_line();
            }
        }
    }
    (stmts, p.errors)
}

type PResult<T> = Result<T, Diagnostic>;

struct Parser<'a> {
    text: &'a str,
    toks: Vec<Token>,
    i: usize,
    loc: TextLoc,
    errors: Vec<Diagnostic>,
    section: Section,
    /// Expression nesting, bounded so hostile input cannot overflow the stack.
    depth: usize,
    /// Binary operators in the current statement, bounded for the same reason (a long `a + b + ...` chain is a
    /// deep tree).
    ops: usize,
    /// The left-hand side of the Einsum being parsed, kept for [`Stmt::Broken`] if the rest fails.
    pending_lhs: Option<AstRef>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|t| &t.tok)
    }
    fn peek_at(&self, k: usize) -> Option<&Tok> {
        self.toks.get(self.i + k).map(|t| &t.tok)
    }
    fn is_sym(&self, s: &str) -> bool {
        matches!(self.peek(), Some(Tok::Sym(x)) if *x == s)
    }
    fn eat(&mut self, s: &str) -> bool {
        let hit = self.is_sym(s);
        if hit {
            self.i += 1;
        }
        hit
    }
    /// Span (block-relative) of the current token, or an empty span at the end.
    fn here(&self) -> Span {
        self.toks
            .get(self.i)
            .map(|t| t.span)
            .unwrap_or_else(|| Span::new(self.text.len(), self.text.len()))
    }
    fn prev_end(&self) -> usize {
        self.i
            .checked_sub(1)
            .and_then(|j| self.toks.get(j))
            .map_or(0, |t| t.span.end as usize)
    }
    fn span_from(&self, start: Span) -> Span {
        self.loc.map(Span::new(
            start.start as usize,
            self.prev_end().max(start.start as usize),
        ))
    }
    fn error(&self, message: &str, label: &str) -> Diagnostic {
        let found = match self.peek() {
            None => "the end of the block".to_string(),
            Some(Tok::Newline) => "the end of the line".to_string(),
            Some(Tok::Comment(_)) => "a comment".to_string(),
            Some(Tok::Ident(s) | Tok::Num(s)) => format!("`{s}`"),
            Some(Tok::Sym(s)) => format!("`{s}`"),
        };
        let mut span = self.here();
        if matches!(self.peek(), None | Some(Tok::Newline)) {
            span = Span::new(span.start as usize, span.start as usize);
        }
        Diagnostic::new(
            self.loc.map(span),
            format!("{message}, found {found}"),
            label,
        )
    }
    fn expect(&mut self, s: &str, message: &str, label: &str) -> PResult<()> {
        if self.eat(s) {
            Ok(())
        } else {
            Err(self.error(message, label))
        }
    }
    fn skip_line(&mut self) {
        while !matches!(self.peek(), None | Some(Tok::Newline)) {
            self.i += 1;
        }
    }
    fn ident(&mut self) -> Option<(String, Span)> {
        match self.toks.get(self.i) {
            Some(Token {
                tok: Tok::Ident(s),
                span,
            }) => {
                let out = (s.clone(), *span);
                self.i += 1;
                Some(out)
            }
            _ => None,
        }
    }
    fn lower_ident(&mut self, message: &str, label: &str) -> PResult<(String, Span)> {
        match self.peek() {
            Some(Tok::Ident(s)) if s.starts_with(|c: char| c.is_ascii_lowercase()) => {
                self.ident().ok_or_else(|| self.error(message, label))
            }
            _ => Err(self.error(message, label)),
        }
    }

    fn statement(&mut self) -> PResult<Option<Stmt>> {
        let is = |t: Option<&Tok>, s: &str| matches!(t, Some(Tok::Ident(x)) if x == s);
        let colon_next = matches!(self.peek_at(1), Some(Tok::Sym(":")));
        if is(self.peek(), "init") && colon_next {
            self.i += 2;
            self.section = Section::Init;
            return Ok(Some(Stmt::Section(Section::Init)));
        }
        if is(self.peek(), "main") && colon_next {
            self.i += 2;
            self.section = Section::Main;
            return Ok(Some(Stmt::Section(Section::Main)));
        }
        if is(self.peek(), "input") {
            self.i += 1;
            let mut refs = vec![self.tensor_ref()?];
            while self.eat(",") {
                refs.push(self.tensor_ref()?);
            }
            return Ok(Some(Stmt::Input(refs)));
        }
        if is(self.peek(), "until") {
            let start = self.here();
            self.i += 1;
            let (var, var_span) = self.lower_ident(
                "expected an index variable",
                "expected the iterated index, as in `until m1 >= M1`",
            )?;
            let cmp = self.cmp()?;
            let bound = self.size_expr_until(&[], "a bound such as `M1`")?;
            return Ok(Some(Stmt::Until {
                var,
                var_span: self.loc.map(var_span),
                cmp,
                bound,
                span: self.span_from(start),
            }));
        }
        match self.peek() {
            Some(Tok::Ident(s)) if s.starts_with(|c: char| c.is_ascii_uppercase()) => {}
            _ => {
                return Err(self.error(
                    "expected a statement",
                    "expected an Einsum `T[i, ...] = ...`, `input ...`, `init:`, `main:` or `until ...`",
                ))
            }
        }
        let start = self.here();
        let lhs = self.tensor_ref()?;
        self.pending_lhs = Some(lhs.clone());
        self.expect("=", "expected `=` after the output tensor", "expected `=`")?;
        let mut reductions = Vec::new();
        while let Some(r) = self.reduction_prefix()? {
            reductions.extend(r);
        }
        let rhs = self.expr()?;
        Ok(Some(Stmt::Einsum(AstEinsum {
            section: self.section,
            lhs,
            reductions,
            rhs,
            span: self.span_from(start),
            comment: None,
        })))
    }

    fn cmp(&mut self) -> PResult<Cmp> {
        let c = match self.peek() {
            Some(Tok::Sym("<")) => Cmp::Lt,
            Some(Tok::Sym("<=")) => Cmp::Le,
            Some(Tok::Sym(">")) => Cmp::Gt,
            Some(Tok::Sym(">=")) => Cmp::Ge,
            Some(Tok::Sym("==")) => Cmp::Eq,
            _ => {
                return Err(self.error(
                    "expected a comparison",
                    "expected one of `<`, `<=`, `>`, `>=`, `==`",
                ))
            }
        };
        self.i += 1;
        Ok(c)
    }

    /// Parse the tokens up to (not including) one of `stops` at bracket depth 0, or the end of the line, as a
    /// size expression.
    fn size_expr_until(&mut self, stops: &[&str], what: &str) -> PResult<SizeExpr> {
        let first = self.i;
        let mut depth = 0usize;
        loop {
            match self.peek() {
                None | Some(Tok::Newline | Tok::Comment(_)) => break,
                Some(Tok::Sym(s)) if depth == 0 && stops.contains(s) => break,
                Some(Tok::Sym("(" | "[")) => depth += 1,
                Some(Tok::Sym(")" | "]")) => depth = depth.saturating_sub(1),
                _ => {}
            }
            self.i += 1;
        }
        if self.i == first {
            return Err(self.error("expected a size expression", &format!("expected {what}")));
        }
        let (s, e) = (self.toks[first].span.start as usize, self.prev_end());
        let body = self.text.get(s..e).unwrap_or("");
        let loc = self.loc;
        let fix = |sp: Span| loc.map(sp.offset(s));
        match parse_size(body) {
            Ok(mut x) => {
                map_size_spans(&mut x, &fix);
                Ok(x)
            }
            Err(err) => Err(Diagnostic::new(
                fix(err.span),
                format!("invalid size expression: {}", err.message),
                format!("expected {}", err.expected),
            )),
        }
    }

    fn tensor_ref(&mut self) -> PResult<AstRef> {
        let start = self.here();
        let (name, name_span) = match self.peek() {
            Some(Tok::Ident(s)) if s.starts_with(|c: char| c.is_ascii_uppercase()) => self
                .ident()
                .ok_or_else(|| self.error("expected a tensor", ""))?,
            _ => {
                return Err(self.error(
                    "expected a tensor",
                    "expected a tensor name starting with an upper-case letter",
                ))
            }
        };
        if !self.is_sym("[") {
            return Err(self.error(
                &format!("expected `[` after tensor `{name}`"),
                &format!(
                    "expected an index list, e.g. `{name}[m, p]` (write `{name}[]` for a scalar)"
                ),
            ));
        }
        self.i += 1;
        let mut indices = Vec::new();
        if !self.eat("]") {
            loop {
                indices.push(self.index()?);
                if self.eat("]") {
                    break;
                }
                self.expect(
                    ",",
                    "expected `,` or `]` in an index list",
                    "expected `,` or `]`",
                )?;
            }
        }
        Ok(AstRef {
            name,
            name_span: self.loc.map(name_span),
            indices,
            span: self.span_from(start),
        })
    }

    fn index(&mut self) -> PResult<AstIndex> {
        let start = self.here();
        let Some((var, var_span)) = self.ident() else {
            return Err(self.error(
                "expected an index",
                "expected an index such as `m`, `m1+1`, `m1=0`, `M1`, `m1*M0+m0` or `k:k<=i`",
            ));
        };
        if var.starts_with(|c: char| c.is_ascii_uppercase()) {
            return Ok(AstIndex::Final {
                rank: var,
                span: self.loc.map(var_span),
            });
        }
        if !var.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(Diagnostic::new(
                self.loc.map(var_span),
                format!("invalid index `{var}`"),
                "expected a lower-case index variable or an upper-case rank name",
            ));
        }
        let is_num = |t: Option<&Tok>| matches!(t, Some(Tok::Num(_)));
        if (self.is_sym("+") || self.is_sym("-")) && is_num(self.peek_at(1)) {
            let neg = self.is_sym("-");
            self.i += 1;
            let Some(Tok::Num(n)) = self.peek().cloned() else {
                unreachable!("checked above")
            };
            let Some(mut offset) = n.replace('_', "").parse::<i64>().ok() else {
                return Err(self.error("invalid shift", "expected a whole number such as `1`"));
            };
            self.i += 1;
            if neg {
                offset = -offset;
            }
            return Ok(AstIndex::Shift {
                var,
                offset,
                span: self.span_from(start),
            });
        }
        if self.eat("=") {
            let at = self.size_expr_until(&[",", "]"], "a coordinate such as `0` or `M1`")?;
            return Ok(AstIndex::Fixed {
                var,
                at,
                span: self.span_from(start),
            });
        }
        if self.eat(":") {
            let (v2, v2_span) =
                self.lower_ident("expected the filtered index", &format!("expected `{var}`"))?;
            if v2 != var {
                return Err(Diagnostic::new(
                    self.loc.map(v2_span),
                    format!("a filter on `{var}` must compare `{var}`"),
                    format!("expected `{var}`, as in `{var}:{var}<=i`"),
                ));
            }
            let cmp = self.cmp()?;
            let (bound, _) = self.lower_ident(
                "expected an index variable",
                "expected the bounding index, e.g. `i`",
            )?;
            return Ok(AstIndex::Filter {
                var,
                bound,
                cmp,
                span: self.span_from(start),
            });
        }
        if self.is_sym("*") || self.is_sym("+") {
            let mut terms = vec![FlatTerm {
                var,
                var_span: self.loc.map(var_span),
                mults: Vec::new(),
            }];
            loop {
                if self.eat("*") {
                    match self.peek() {
                        Some(Tok::Ident(r)) if r.starts_with(|c: char| c.is_ascii_uppercase()) => {
                            let (r, s) = (r.clone(), self.here());
                            self.i += 1;
                            if let Some(t) = terms.last_mut() {
                                t.mults.push((r, self.loc.map(s)));
                            }
                        }
                        _ => {
                            return Err(self.error(
                                "expected a rank name in a flattened index",
                                "expected an upper-case part size, as in `m1*M0+m0`",
                            ));
                        }
                    }
                } else if self.eat("+") {
                    let (v, s) = self.lower_ident(
                        "expected an index variable in a flattened index",
                        "expected the next part's index, as in `m1*M0+m0`",
                    )?;
                    terms.push(FlatTerm {
                        var: v,
                        var_span: self.loc.map(s),
                        mults: Vec::new(),
                    });
                } else {
                    break;
                }
            }
            return Ok(AstIndex::Flatten {
                terms,
                span: self.span_from(start),
            });
        }
        Ok(AstIndex::Var {
            var,
            span: self.loc.map(var_span),
        })
    }

    /// `sum(m)`, `max(m1, m0)`, `min(m)` or `topk(m, k)` before an operand; `None` when the RHS does not start
    /// with one (e.g. it is the map call `max(A[m], B[m])`).
    fn reduction_prefix(&mut self) -> PResult<Option<Vec<AstReduction>>> {
        let Some(Tok::Ident(f)) = self.peek().cloned() else {
            return Ok(None);
        };
        if !matches!(self.peek_at(1), Some(Tok::Sym("("))) {
            return Ok(None);
        }
        let start = self.here();
        if f == "topk" {
            self.i += 2;
            let (var, _) = self.lower_ident(
                "expected the selected index",
                "expected an index, as in `topk(m, k)`",
            )?;
            self.expect(
                ",",
                "expected `,` after the index",
                "expected `, k)` with the number of elements kept",
            )?;
            let k = self.size_expr_until(
                &[")"],
                "the number of elements kept, e.g. `keep` or `M / 2`",
            )?;
            self.expect(")", "expected `)`", "expected `)` closing `topk(`")?;
            return Ok(Some(vec![AstReduction {
                op: AstReduceOp::TopK(k),
                var,
                span: self.span_from(start),
            }]));
        }
        let op = match f.as_str() {
            "sum" => AstReduceOp::Sum,
            "max" => AstReduceOp::Max,
            "min" => AstReduceOp::Min,
            _ => return Ok(None),
        };
        // Look ahead: `(` lower-case names separated by `,` `)` followed by the start of an operand.
        let mut k = 2;
        let mut vars = Vec::new();
        loop {
            match self.toks.get(self.i + k) {
                Some(Token {
                    tok: Tok::Ident(v),
                    span,
                }) if v.starts_with(|c: char| c.is_ascii_lowercase()) => {
                    vars.push((v.clone(), *span));
                }
                _ => return Ok(None),
            }
            match self.peek_at(k + 1) {
                Some(Tok::Sym(",")) => k += 2,
                Some(Tok::Sym(")")) => break,
                _ => return Ok(None),
            }
        }
        let operand_next = matches!(
            self.peek_at(k + 2),
            Some(Tok::Ident(_) | Tok::Num(_) | Tok::Sym("(" | "-"))
        );
        if !operand_next {
            return Ok(None);
        }
        self.i += k + 2;
        Ok(Some(
            vars.into_iter()
                .map(|(var, s)| AstReduction {
                    op: op.clone(),
                    var,
                    span: self.loc.map(s),
                })
                .collect(),
        ))
    }

    fn expr(&mut self) -> PResult<AstExpr> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(
                "expression nested too deeply",
                "expected fewer nested parentheses",
            ));
        }
        let r = self.sum();
        self.depth -= 1;
        r
    }
    fn count_op(&mut self) -> PResult<()> {
        self.ops += 1;
        if self.ops > MAX_OPS {
            return Err(self.error(
                "expression too long",
                &format!("expected at most {MAX_OPS} operators in one Einsum"),
            ));
        }
        Ok(())
    }
    /// One left-associative precedence level: `next (op next)*`, with `ops` the level's operator symbols.
    fn binary_level(
        &mut self,
        ops: &[(&str, BinOp)],
        next: fn(&mut Self) -> PResult<AstExpr>,
    ) -> PResult<AstExpr> {
        let mut e = next(self)?;
        loop {
            let Some(op) = ops.iter().find(|(sym, _)| self.is_sym(sym)).map(|o| o.1) else {
                return Ok(e);
            };
            self.i += 1;
            self.count_op()?;
            let rhs = next(self)?;
            let span = e.span().join(rhs.span());
            e = AstExpr::Binary {
                op,
                lhs: Box::new(e),
                rhs: Box::new(rhs),
                span,
            };
        }
    }
    fn sum(&mut self) -> PResult<AstExpr> {
        self.binary_level(&[("+", BinOp::Add), ("-", BinOp::Sub)], Self::product)
    }
    fn product(&mut self) -> PResult<AstExpr> {
        self.binary_level(&[("*", BinOp::Mul), ("/", BinOp::Div)], Self::unary)
    }
    fn unary(&mut self) -> PResult<AstExpr> {
        if self.is_sym("-") {
            let start = self.here();
            self.i += 1;
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(self.error(
                    "expression nested too deeply",
                    "expected fewer unary minuses",
                ));
            }
            let arg = self.unary();
            self.depth -= 1;
            let arg = arg?;
            let span = self.span_from(start);
            // Fold `-literal` so that `-inf` and `-1` are constants, as the IR documents.
            return Ok(match arg {
                AstExpr::Const(v, _) => AstExpr::Const(-v, span),
                arg => AstExpr::Unary {
                    op: UnaryOp::Neg,
                    arg: Box::new(arg),
                    span,
                },
            });
        }
        self.atom()
    }
    fn atom(&mut self) -> PResult<AstExpr> {
        let start = self.here();
        match self.peek().cloned() {
            Some(Tok::Num(n)) => {
                self.i += 1;
                let v: f64 = n.replace('_', "").parse().map_err(|_| {
                    Diagnostic::new(
                        self.loc.map(start),
                        format!("invalid number `{n}`"),
                        "expected a number such as `0` or `1.5`",
                    )
                })?;
                Ok(AstExpr::Const(v, self.loc.map(start)))
            }
            Some(Tok::Sym("(")) => {
                self.i += 1;
                let e = self.expr()?;
                self.expect(")", "expected `)`", "expected `)` closing the parenthesis")?;
                Ok(e)
            }
            Some(Tok::Ident(name)) if name.starts_with(|c: char| c.is_ascii_uppercase()) => {
                Ok(AstExpr::Ref(self.tensor_ref()?))
            }
            Some(Tok::Ident(name)) if name == "inf" => {
                self.i += 1;
                Ok(AstExpr::Const(f64::INFINITY, self.loc.map(start)))
            }
            Some(Tok::Ident(name)) => {
                if !matches!(self.peek_at(1), Some(Tok::Sym("("))) {
                    return Err(Diagnostic::new(
                        self.loc.map(start),
                        format!("`{name}` is not a value"),
                        "expected a tensor such as `A[m]`, a number, or a function call",
                    ));
                }
                let unary = UNARY_FNS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, op)| *op);
                let binary = match name.as_str() {
                    "max" => Some(BinOp::Max),
                    "min" => Some(BinOp::Min),
                    _ => None,
                };
                if unary.is_none() && binary.is_none() {
                    return Err(Diagnostic::new(
                        self.loc.map(start),
                        format!("unknown function `{name}`"),
                        format!("expected one of {FN_LIST}"),
                    ));
                }
                self.i += 2;
                let mut args = vec![self.expr()?];
                while self.eat(",") {
                    args.push(self.expr()?);
                }
                self.expect(
                    ")",
                    "expected `)`",
                    &format!("expected `)` closing `{name}(`"),
                )?;
                let span = self.span_from(start);
                let want = if unary.is_some() { 1 } else { 2 };
                if args.len() != want {
                    let plural = if want == 1 { "argument" } else { "arguments" };
                    return Err(Diagnostic::new(
                        span,
                        format!("`{name}` takes {want} {plural}, found {}", args.len()),
                        format!("expected {want} {plural}"),
                    ));
                }
                let mut it = args.into_iter();
                let (Some(a), b) = (it.next(), it.next()) else {
                    unreachable!("argument count checked")
                };
                Ok(match (unary, binary, b) {
                    (Some(op), _, _) => AstExpr::Unary {
                        op,
                        arg: Box::new(a),
                        span,
                    },
                    (_, Some(op), Some(b)) => AstExpr::Binary {
                        op,
                        lhs: Box::new(a),
                        rhs: Box::new(b),
                        span,
                    },
                    _ => unreachable!("function kind checked"),
                })
            }
            _ => Err(self.error(
                "expected a value",
                "expected a tensor such as `A[m]`, a number, `(`, or a function call",
            )),
        }
    }
}

/// [`SizeExpr::parse`] behind a guard: the expression parser and evaluator recurse once per nesting level and per
/// operator, so absurdly nested or long user text is rejected here before it could exhaust the stack.
pub(crate) fn parse_size(text: &str) -> Result<SizeExpr, crate::expr::ExprError> {
    let mut depth = 0usize;
    let mut ops = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            '+' | '-' | '*' | '/' | '^' | ',' => ops += 1,
            _ => {}
        }
        if depth > MAX_DEPTH || ops > MAX_OPS {
            return Err(crate::expr::ExprError {
                span: Span::new(i, i + c.len_utf8()),
                message: "size expression too complex".into(),
                expected: format!("at most {MAX_DEPTH} nested parentheses and {MAX_OPS} operators"),
            });
        }
    }
    SizeExpr::parse(text)
}

/// Apply `f` to every span in a size expression.
pub(crate) fn map_size_spans(e: &mut SizeExpr, f: &dyn Fn(Span) -> Span) {
    match e {
        SizeExpr::Num(_) => {}
        SizeExpr::Name(_, s) => *s = f(*s),
        SizeExpr::Bin(a, _, b) => {
            map_size_spans(a, f);
            map_size_spans(b, f)
        }
        SizeExpr::Call(_, args) => args.iter_mut().for_each(|a| map_size_spans(a, f)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> (Vec<Stmt>, Vec<Diagnostic>) {
        parse(text, TextLoc::new(text, None, text, Span::default()))
    }

    #[test]
    fn parses_the_forms() {
        let (s, e) = p(
            "input Q[e,p], K[e,m]\ninit:\nBK[e,m1,m0] = K[e, m1*M0+m0]\nRM[m1=0,p] = -inf\nmain:\n\
             LM[m1,p] = max(m0) BQK[m1,m0,p] -- local\nRM[m1+1,p] = max(RM[m1,p], LM[m1,p])\n\
             S[i+1] = A[k:k<=i]\nY[] = topk(m, M / 2) X[m]\nuntil m1 >= M1\n",
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(s.len(), 10);
        let Stmt::Einsum(lm) = &s[5] else { panic!() };
        assert_eq!(lm.comment.as_deref(), Some("local"));
        assert_eq!(lm.reductions.len(), 1);
        let Stmt::Einsum(rm) = &s[6] else { panic!() };
        assert!(rm.reductions.is_empty());
        assert!(matches!(rm.rhs, AstExpr::Binary { op: BinOp::Max, .. }));
        let Stmt::Einsum(init) = &s[3] else { panic!() };
        assert!(matches!(init.rhs, AstExpr::Const(v, _) if v == f64::NEG_INFINITY));
    }

    #[test]
    fn collects_errors_per_line() {
        let (_, e) = p("A[m] = foo(B[m])\nC[m] = B[m] +\nD[m] = B[m] ~\n");
        assert_eq!(e.len(), 3, "{e:?}");
    }
}
