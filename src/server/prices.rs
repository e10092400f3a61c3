//! What saved tokens would have cost: a table of Mistral list prices per model, in US
//! dollars per million input (prompt) and output (completion) tokens, built in and
//! overridable with `--prices FILE`: [`PriceTable`] (its docs give the source and date
//! of the built-in prices and the file format).

use std::collections::BTreeMap;
use std::path::Path;

use crate::cache::Usage;

/// A model's list price, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// Per million input (prompt) tokens.
    pub input: f64,
    /// Per million output (completion) tokens.
    pub output: f64,
}

impl Price {
    /// What `usage` costs at this price: `(prompt, completion)` dollars.
    pub fn cost(&self, usage: &Usage) -> (f64, f64) {
        (
            usage.prompt_tokens as f64 * self.input / 1e6,
            usage.completion_tokens as f64 * self.output / 1e6,
        )
    }
}

/// The built-in list prices: `(model or family, input, output)`, USD per million
/// tokens (see [`PriceTable`] for the source and date).
const BUILT_IN: &[(&str, f64, f64)] = &[
    // Mistral Medium 3.5 is `mistral-medium-latest`; the dated Medium 3 / 3.1 releases
    // keep their own price.
    ("mistral-medium", 1.5, 7.5),
    ("mistral-medium-2505", 0.4, 2.0),
    ("mistral-medium-2508", 0.4, 2.0),
    // Mistral Large 3 is `mistral-large-latest`; Large 2 releases keep theirs.
    ("mistral-large", 0.5, 1.5),
    ("mistral-large-2407", 2.0, 6.0),
    ("mistral-large-2411", 2.0, 6.0),
    ("mistral-small", 0.1, 0.3),
    ("magistral-medium", 2.0, 5.0),
    ("magistral-small", 0.5, 1.5),
    ("ministral-3b", 0.1, 0.1),
    ("ministral-8b", 0.15, 0.15),
    ("ministral-14b", 0.2, 0.2),
    ("codestral", 0.3, 0.9),
    ("devstral", 0.4, 2.0),
    ("devstral-medium", 0.4, 2.0),
    ("devstral-small", 0.1, 0.3),
    ("pixtral-large", 2.0, 6.0),
    ("pixtral-12b", 0.15, 0.15),
    ("open-mistral-nemo", 0.15, 0.15),
    ("mistral-saba", 0.2, 0.6),
    ("mistral-embed", 0.1, 0.0),
    ("codestral-embed", 0.15, 0.0),
    ("mistral-moderation", 0.1, 0.0),
];

/// Model names to list prices.
///
/// # Example
///
/// ```
/// use mistral_tower::server::{Price, PriceTable};
///
/// let mut prices = PriceTable::built_in();
/// prices.insert("my-fine-tune", Price { input: 1.0, output: 2.0 });
/// // A dated release is priced like its family.
/// assert_eq!(prices.get("mistral-small-2506"), prices.get("mistral-small-latest"));
/// assert_eq!(prices.get("my-fine-tune").unwrap().output, 2.0);
/// assert_eq!(prices.get("someone-elses-model"), None);
/// ```
///
/// # Built-in prices
///
/// Mistral's public list prices for La Plateforme (standard, non-batch rates) as
/// published in June 2026 and collected on 2026-12-01 from third-party summaries of
/// <https://mistral.ai/pricing> (developer.puter.com "Mistral API Pricing: Full
/// Breakdown of Costs (Jun 2026)" and margindash.com "Mistral API Pricing", checked
/// against each other). Prices change: check the official page and override what
/// differs with a file.
///
/// A model is looked up by its exact name, then by its family: the name without a
/// `-latest` or `-YYMM` version suffix (`mistral-small-2506` → `mistral-small`).
/// Models the table does not know count tokens but no money.
///
/// # Price files
///
/// JSON or TOML (by the `.json` / `.toml` extension, otherwise JSON when the file
/// starts with `{`): one entry per model name, `input` and `output` in USD per
/// million tokens (`output` defaults to 0, for embedding models). Entries are added
/// to the built-in table, replacing the built-in price of the same name.
///
/// ```toml
/// [mistral-small-latest]
/// input = 0.1
/// output = 0.3
///
/// ["my-fine-tune.v2"]
/// input = 0.2
/// output = 0.6
/// ```
///
/// ```json
/// {"mistral-small-latest": {"input": 0.1, "output": 0.3}}
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PriceTable {
    models: BTreeMap<String, Price>,
}

impl Default for PriceTable {
    /// The built-in table.
    fn default() -> Self {
        PriceTable::built_in()
    }
}

impl PriceTable {
    /// The built-in Mistral list prices.
    pub fn built_in() -> Self {
        let models = BUILT_IN
            .iter()
            .map(|&(m, input, output)| (m.to_owned(), Price { input, output }))
            .collect();
        PriceTable { models }
    }

    /// A table without any price.
    pub fn empty() -> Self {
        PriceTable {
            models: BTreeMap::new(),
        }
    }

    /// Sets the price of `model` (an exact name, or a family without a version suffix).
    pub fn insert(&mut self, model: impl Into<String>, price: Price) {
        self.models.insert(model.into(), price);
    }

    /// The built-in table with the prices of the file at `path` added (JSON or TOML,
    /// see [`PriceTable`]); the error says which file and what is wrong.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the prices file {}: {e}", path.display()))?;
        let toml = match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("toml") => true,
            Some(e) if e.eq_ignore_ascii_case("json") => false,
            _ => !text.trim_start().starts_with('{'),
        };
        let entries = if toml {
            parse_toml(&text)
        } else {
            parse_json(&text)
        }
        .map_err(|e| format!("invalid prices file {}: {e}", path.display()))?;
        let mut table = PriceTable::built_in();
        table.models.extend(entries);
        Ok(table)
    }

    /// The price of `model`: its exact name, then its family (without a `-latest` or
    /// `-YYMM` suffix).
    pub fn get(&self, model: &str) -> Option<Price> {
        if let Some(p) = self.models.get(model) {
            return Some(*p);
        }
        let (family, version) = model.rsplit_once('-')?;
        let versioned = version == "latest"
            || (version.len() == 4 && version.bytes().all(|b| b.is_ascii_digit()));
        versioned.then(|| self.models.get(family).copied())?
    }

    /// What `prompt` and `completion` tokens of `model` cost, in dollars; `None` for a
    /// model without a price.
    pub(crate) fn usd(&self, model: &str, prompt: u64, completion: u64) -> Option<f64> {
        let (p, c) = self.get(model)?.cost(&Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: 0,
        });
        Some(p + c)
    }

    /// Every `(model, price)` of the table, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Price)> {
        self.models.iter().map(|(m, p)| (m.as_str(), *p))
    }
}

/// One price checked: a finite number, not negative.
fn amount(model: &str, field: &str, v: Option<f64>) -> Result<f64, String> {
    match v {
        Some(x) if x.is_finite() && x >= 0.0 => Ok(x),
        Some(_) => Err(format!(
            "{model}: {field} must be a non-negative number (USD per million tokens)"
        )),
        None => Err(format!(
            "{model}: {field} must be a number (USD per million tokens)"
        )),
    }
}

/// Checks one model's fields, given as `(name, number or None when not a number)`.
fn entry<'a>(
    model: &str,
    fields: impl Iterator<Item = (&'a str, Option<f64>)>,
) -> Result<(String, Price), String> {
    if model.trim().is_empty() {
        return Err("a model name is empty".to_owned());
    }
    let (mut input, mut output) = (None, None);
    for (k, v) in fields {
        match k {
            "input" => input = Some(amount(model, k, v)?),
            "output" => output = Some(amount(model, k, v)?),
            other => {
                return Err(format!(
                    "{model}: unknown field {other:?} (expected input and output; quote model names holding dots in TOML)"
                ));
            }
        }
    }
    let input = input.ok_or_else(|| format!("{model}: input price missing"))?;
    Ok((
        model.to_owned(),
        Price {
            input,
            output: output.unwrap_or(0.0),
        },
    ))
}

fn parse_json(text: &str) -> Result<Vec<(String, Price)>, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let obj = v
        .as_object()
        .ok_or("expected an object of model names to {\"input\": .., \"output\": ..}")?;
    obj.iter()
        .map(|(model, p)| {
            let fields = p
                .as_object()
                .ok_or_else(|| format!("{model}: expected {{\"input\": .., \"output\": ..}}"))?;
            entry(model, fields.iter().map(|(k, v)| (k.as_str(), v.as_f64())))
        })
        .collect()
}

fn parse_toml(text: &str) -> Result<Vec<(String, Price)>, String> {
    let doc: toml_edit::DocumentMut = text.parse().map_err(|e| format!("not TOML: {e}"))?;
    doc.as_table()
        .iter()
        .map(|(model, item)| {
            let table = item
                .as_table_like()
                .ok_or_else(|| format!("{model}: expected a table with input and output"))?;
            let number = |i: &toml_edit::Item| i.as_float().or(i.as_integer().map(|n| n as f64));
            entry(model, table.iter().map(|(k, i)| (k, number(i))))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(p: u64, c: u64) -> Usage {
        Usage {
            prompt_tokens: p,
            completion_tokens: c,
            total_tokens: p + c,
        }
    }

    #[test]
    fn lookup_by_name_then_family() {
        let t = PriceTable::built_in();
        let small = t.get("mistral-small").unwrap();
        assert_eq!(t.get("mistral-small-latest"), Some(small));
        assert_eq!(t.get("mistral-small-2506"), Some(small));
        assert_eq!(t.get("mistral-large-2411").unwrap().input, 2.0);
        assert_eq!(t.get("mistral-large-2512").unwrap().input, 0.5);
        assert_eq!(t.get("mistral-small-x"), None);
        assert_eq!(t.get("unknown-model"), None);
        assert_eq!(t.get(""), None);
        let (p, c) = small.cost(&usage(1_000_000, 2_000_000));
        assert!((p - 0.1).abs() < 1e-12 && (c - 0.6).abs() < 1e-12);
    }

    #[test]
    fn files_override_and_bad_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("p.json");
        std::fs::write(
            &json,
            r#"{"mistral-small-latest":{"input":1,"output":2.5},"e":{"input":0.3}}"#,
        )
        .unwrap();
        let t = PriceTable::load(&json).unwrap();
        assert_eq!(t.get("mistral-small-latest").unwrap().output, 2.5);
        assert_eq!(
            t.get("mistral-small-2506").unwrap().output,
            0.3,
            "built-in kept"
        );
        assert_eq!(t.get("e").unwrap().output, 0.0);
        let toml = dir.path().join("p.toml");
        std::fs::write(
            &toml,
            "[m]\ninput = 2\noutput = 4.5\n[\"a.b\"]\ninput = 1\n",
        )
        .unwrap();
        let t = PriceTable::load(&toml).unwrap();
        assert_eq!(
            t.get("m"),
            Some(Price {
                input: 2.0,
                output: 4.5
            })
        );
        assert!(t.get("a.b").is_some());
        for (name, text, needle) in [
            ("a.json", "{", "not JSON"),
            ("b.json", "[1]", "expected an object"),
            ("c.json", r#"{"m":{"input":-1}}"#, "non-negative"),
            ("d.json", r#"{"m":{"input":"x"}}"#, "must be a number"),
            ("e.json", r#"{"m":{"inptu":1}}"#, "unknown field"),
            ("f.json", r#"{"m":{"output":1}}"#, "input price missing"),
            ("g.toml", "[m\ninput=1", "not TOML"),
            ("h.toml", "[a.b]\ninput = 1\n", "unknown field \"b\""),
            ("i.toml", "m = 3\n", "expected a table"),
            ("j", "[m]\ninput = nan\n", "non-negative"),
        ] {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            let err = PriceTable::load(&p).unwrap_err();
            assert!(err.contains(needle) && err.contains(name), "{name}: {err}");
        }
        let err = PriceTable::load(&dir.path().join("missing.json")).unwrap_err();
        assert!(err.contains("cannot read the prices file"), "{err}");
    }
}
