//! Model-shape files (`workloads/models/*.ron`): named parameter sets such as BERT-Base's heads and head size.
//!
//! A model is not a cascade; it supplies values for a cascade's parameters (`heads`, `head_dim`, `seq`, ...) plus
//! shapes used outside attention (`d_model`, `ffn`). [`Model::overrides_for`] picks the ones a cascade knows.

use super::file::{locate, parse_ron, RawModel};
use super::ir::{Cascade, Param};
use crate::diag::{Diagnostic, Diagnostics, SourceFile, Span};

#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// Short name, e.g. `bert-base`.
    pub name: String,
    pub description: String,
    /// Where the shapes come from.
    pub source: String,
    /// Parameters in file order; every value is positive.
    pub params: Vec<Param>,
}

impl Model {
    pub fn param(&self, name: &str) -> Option<i64> {
        self.params
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.default)
    }
    /// This model's values for the parameters `c` declares, as overrides for [`Cascade::with_params`].
    pub fn overrides_for(&self, c: &Cascade) -> Vec<(String, i64)> {
        self.params
            .iter()
            .filter(|p| c.param(&p.name).is_some())
            .map(|p| (p.name.clone(), p.default))
            .collect()
    }
}

/// Load a model file, reporting RON errors, duplicate or invalid names and non-positive values.
pub fn load_model(file: &SourceFile) -> Result<Model, Diagnostics> {
    let fail = |items| Diagnostics {
        file: file.clone(),
        items,
    };
    let raw: RawModel = parse_ron(file).map_err(|d| fail(vec![d]))?;
    let root = locate(&file.text);
    let span_of = |i: usize| -> (Span, Span) {
        match root
            .as_ref()
            .and_then(|r| r.field("params"))
            .and_then(|(_, l)| l.entry(i))
        {
            Some((k, v)) => (k.span(), v.span()),
            None => (Span::default(), Span::default()),
        }
    };
    let mut errors = Vec::new();
    let mut params: Vec<Param> = Vec::new();
    for (i, (name, v)) in raw.params.0.into_iter().enumerate() {
        let (ks, vs) = span_of(i);
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            errors.push(Diagnostic::new(
                ks,
                format!("invalid parameter name `{name}`"),
                "expected a name of letters, digits and `_` that does not start with a digit",
            ));
        } else if let Some(prev) = params.iter().find(|p| p.name == name) {
            errors.push(
                Diagnostic::new(
                    ks,
                    format!("duplicate parameter `{name}`"),
                    "expected each parameter once",
                )
                .with_secondary(prev.span, "first defined here"),
            );
        } else if v <= 0 {
            errors.push(Diagnostic::new(
                vs,
                format!("parameter `{name}` is {v}"),
                "expected a positive value",
            ));
        } else {
            params.push(Param {
                name,
                default: v,
                follows: None, // a model gives values, never expressions
                span: ks,
                range: None,
            });
        }
    }
    if !errors.is_empty() {
        return Err(fail(errors));
    }
    Ok(Model {
        name: raw.name,
        description: raw.description,
        source: raw.source,
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_bad_params() {
        let text = "Model(name: \"m\", params: { \"heads\": 12, \"heads\": 16, \"seq\": 0 })";
        let d = load_model(&SourceFile::new("m.ron", text)).unwrap_err();
        let out = d.render();
        assert!(out.contains("duplicate parameter `heads`"), "{out}");
        assert!(out.contains("parameter `seq` is 0"), "{out}");
        let d = load_model(&SourceFile::new("m.ron", "Model(name: \"m\")")).unwrap_err();
        assert!(d.render().contains("missing field `params`"));
    }
}
