//! Rule evaluation: a rule's `propertyJPath` resolved on the resource's JSON, compared with its
//! `expectedValue` by `operator`, typed by `propertyType`. Rules of a rule set are AND-ed, rule
//! sets are OR-ed, and a source without rule sets takes every event.
//!
//! Decisions: a property that is absent (or of another type than `propertyType` says) matches no
//! operator, `NotEquals` included; strings compare without regard to ASCII case.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One step of a JPath.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// Parse a JPath: `a.b.c`, `$.a.b`, `a['b c'].d`, `a[0].b`. `Err` says what is wrong.
pub fn parse_jpath(path: &str) -> Result<Vec<Step>, String> {
    let mut rest = path.trim();
    if rest.is_empty() {
        return Err("the path is empty".into());
    }
    if let Some(r) = rest.strip_prefix('$') {
        rest = r.strip_prefix('.').unwrap_or(r);
        if rest.is_empty() {
            return Err("the path names no property after '$'".into());
        }
    }
    let mut steps = Vec::new();
    let mut expect_name = true;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let Some(close) = r.find(']') else {
                return Err("a '[' is not closed".into());
            };
            let inner = r[..close].trim();
            let quoted = inner
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')));
            match quoted {
                Some(key) if !key.is_empty() => steps.push(Step::Key(key.to_string())),
                Some(_) => return Err("a quoted property name is empty".into()),
                None => match inner.parse::<usize>() {
                    Ok(i) => steps.push(Step::Index(i)),
                    Err(_) => {
                        return Err(format!(
                            "'[{inner}]' is neither an array index nor a quoted property name"
                        ))
                    }
                },
            }
            rest = &r[close + 1..];
            expect_name = false;
        } else if let Some(r) = rest.strip_prefix('.') {
            if expect_name {
                return Err("a property name is empty ('..' or a leading '.')".into());
            }
            if r.is_empty() {
                return Err("the path ends with '.'".into());
            }
            rest = r;
            expect_name = true;
        } else {
            if !expect_name {
                return Err(format!("'{rest}' must follow a '.'"));
            }
            let end = rest.find(['.', '[', ']']).unwrap_or(rest.len());
            let name = &rest[..end];
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(format!("'{name}' is not a property name"));
            }
            steps.push(Step::Key(name.to_string()));
            rest = &rest[end..];
            if rest.starts_with(']') {
                return Err("a ']' has no '['".into());
            }
            expect_name = false;
        }
    }
    Ok(steps)
}

/// The value at `steps` in `root`: keys match exactly, else without regard to ASCII case.
pub fn resolve<'a>(root: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    steps.iter().try_fold(root, |v, step| match step {
        Step::Key(k) => {
            let map = v.as_object()?;
            map.get(k).or_else(|| {
                map.iter().find(|(name, _)| name.eq_ignore_ascii_case(k)).map(|(_, value)| value)
            })
        }
        Step::Index(i) => v.as_array()?.get(*i),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PropertyType {
    String,
    Integer,
    Number,
    Boolean,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operator {
    Equals,
    GreaterThan,
    GreaterThanOrEqualTo,
    LesserThan,
    LesserThanOrEqualTo,
    NotEquals,
    Contains,
    StartsWith,
    EndsWith,
}

impl PropertyType {
    pub const ALL: [PropertyType; 4] =
        [PropertyType::String, PropertyType::Integer, PropertyType::Number, PropertyType::Boolean];
    pub fn name(self) -> &'static str {
        match self {
            PropertyType::String => "String",
            PropertyType::Integer => "Integer",
            PropertyType::Number => "Number",
            PropertyType::Boolean => "Boolean",
        }
    }
}

impl Operator {
    pub const ALL: [Operator; 9] = [
        Operator::Equals,
        Operator::GreaterThan,
        Operator::GreaterThanOrEqualTo,
        Operator::LesserThan,
        Operator::LesserThanOrEqualTo,
        Operator::NotEquals,
        Operator::Contains,
        Operator::StartsWith,
        Operator::EndsWith,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Operator::Equals => "Equals",
            Operator::GreaterThan => "GreaterThan",
            Operator::GreaterThanOrEqualTo => "GreaterThanOrEqualTo",
            Operator::LesserThan => "LesserThan",
            Operator::LesserThanOrEqualTo => "LesserThanOrEqualTo",
            Operator::NotEquals => "NotEquals",
            Operator::Contains => "Contains",
            Operator::StartsWith => "StartsWith",
            Operator::EndsWith => "EndsWith",
        }
    }

    fn ordering(self, o: std::cmp::Ordering) -> Option<bool> {
        use std::cmp::Ordering::*;
        Some(match self {
            Operator::Equals => o == Equal,
            Operator::NotEquals => o != Equal,
            Operator::GreaterThan => o == Greater,
            Operator::GreaterThanOrEqualTo => o != Less,
            Operator::LesserThan => o == Less,
            Operator::LesserThanOrEqualTo => o != Greater,
            Operator::Contains | Operator::StartsWith | Operator::EndsWith => return None,
        })
    }
}

/// A typed expected value, checked when the automation is written.
#[derive(Debug, Clone, PartialEq)]
pub enum Expected {
    String(String),
    Integer(i64),
    Number(f64),
    Boolean(bool),
}

impl Expected {
    pub fn parse(t: PropertyType, text: &str) -> Result<Expected, String> {
        let trimmed = text.trim();
        match t {
            PropertyType::String => Ok(Expected::String(text.to_string())),
            PropertyType::Integer => trimmed
                .parse()
                .map(Expected::Integer)
                .map_err(|_| format!("'{text}' is not an Integer")),
            PropertyType::Number => match trimmed.parse::<f64>() {
                Ok(n) if n.is_finite() => Ok(Expected::Number(n)),
                _ => Err(format!("'{text}' is not a Number")),
            },
            PropertyType::Boolean => match trimmed.to_ascii_lowercase().as_str() {
                "true" => Ok(Expected::Boolean(true)),
                "false" => Ok(Expected::Boolean(false)),
                _ => Err(format!("'{text}' is not a Boolean (true or false)")),
            },
        }
    }

    /// Does `actual` (the resolved property) satisfy `operator` against this value?
    pub fn test(&self, operator: Operator, actual: Option<&Value>) -> bool {
        let Some(actual) = actual else { return false };
        match self {
            Expected::String(want) => {
                let have = match actual {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => return false,
                };
                let (have, want) = (have.to_lowercase(), want.to_lowercase());
                match operator {
                    Operator::Contains => have.contains(&want),
                    Operator::StartsWith => have.starts_with(&want),
                    Operator::EndsWith => have.ends_with(&want),
                    op => op.ordering(have.cmp(&want)).unwrap_or(false),
                }
            }
            Expected::Integer(want) => {
                let have = match actual {
                    Value::Number(n) => n.as_i64().or_else(|| {
                        n.as_f64()
                            .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                            .map(|f| f as i64)
                    }),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                };
                have.is_some_and(|h| {
                    compare_text(operator, &h.to_string(), &want.to_string(), h.cmp(want))
                })
            }
            Expected::Number(want) => {
                let have = match actual {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                };
                have.and_then(|h| h.partial_cmp(want).map(|o| (h, o))).is_some_and(|(h, o)| {
                    compare_text(operator, &h.to_string(), &want.to_string(), o)
                })
            }
            Expected::Boolean(want) => {
                let have = match actual {
                    Value::Bool(b) => Some(*b),
                    Value::String(s) => match s.to_ascii_lowercase().as_str() {
                        "true" => Some(true),
                        "false" => Some(false),
                        _ => None,
                    },
                    _ => None,
                };
                have.is_some_and(|h| {
                    compare_text(operator, &h.to_string(), &want.to_string(), h.cmp(want))
                })
            }
        }
    }
}

/// Ordering operators by `o`; the text operators on the values' text.
fn compare_text(op: Operator, have: &str, want: &str, o: std::cmp::Ordering) -> bool {
    match op {
        Operator::Contains => have.contains(want),
        Operator::StartsWith => have.starts_with(want),
        Operator::EndsWith => have.ends_with(want),
        op => op.ordering(o).unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jpaths_parse_or_say_what_is_wrong() {
        let k = |s: &str| Step::Key(s.into());
        assert_eq!(
            parse_jpath("properties.score.percentage").unwrap(),
            [k("properties"), k("score"), k("percentage")]
        );
        assert_eq!(
            parse_jpath("$.Entity.AssessmentType").unwrap(),
            [k("Entity"), k("AssessmentType")]
        );
        assert_eq!(
            parse_jpath("a['b c'][2].d").unwrap(),
            [k("a"), k("b c"), Step::Index(2), k("d")]
        );
        assert_eq!(parse_jpath("a[\"x\"]").unwrap(), [k("a"), k("x")]);
        for bad in ["", "  ", "$", "a..b", ".a", "a.", "a[", "a[x]", "a['']", "a]b", "a b", "a[0]b"]
        {
            assert!(parse_jpath(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn resolve_walks_keys_indexes_and_ignores_case_only_as_a_fallback() {
        let v = json!({"properties": {"score": {"percentage": 0.5}, "list": [1, {"x": true}], "A": 1, "a": 2}});
        let at = |p: &str| resolve(&v, &parse_jpath(p).unwrap()).cloned();
        assert_eq!(at("properties.score.percentage"), Some(json!(0.5)));
        assert_eq!(at("PROPERTIES.Score.PERCENTAGE"), Some(json!(0.5)));
        assert_eq!(at("properties.list[1].x"), Some(json!(true)));
        assert_eq!(at("properties.list[2]"), None);
        assert_eq!(at("properties.a"), Some(json!(2)), "an exact match wins");
        assert_eq!(at("properties.nothing"), None);
    }

    fn check(t: PropertyType, expected: &str, op: Operator, actual: Value) -> bool {
        Expected::parse(t, expected).unwrap().test(op, Some(&actual))
    }

    #[test]
    fn every_operator_of_every_type() {
        use Operator::*;
        use PropertyType::*;
        let n = |x: f64| json!(x);
        // Number
        assert!(check(Number, "0.6", LesserThan, n(0.59)));
        assert!(!check(Number, "0.6", LesserThan, n(0.6)));
        assert!(check(Number, "0.6", LesserThanOrEqualTo, n(0.6)));
        assert!(check(Number, "0.6", GreaterThan, n(0.61)));
        assert!(check(Number, "0.6", GreaterThanOrEqualTo, n(0.6)));
        assert!(check(Number, "0.6", Equals, n(0.6)));
        assert!(check(Number, "0.6", NotEquals, n(0.7)));
        assert!(check(Number, "1", Equals, json!("1.0")), "numeric strings are numbers");
        // Integer
        assert!(check(Integer, "3", GreaterThan, json!(4)));
        assert!(check(Integer, "3", Equals, json!(3.0)));
        assert!(!check(Integer, "3", Equals, json!(3.5)));
        assert!(check(Integer, "-2", LesserThanOrEqualTo, json!(-2)));
        assert!(check(Integer, "12", StartsWith, json!(123)));
        assert!(check(Integer, "23", EndsWith, json!(123)));
        assert!(check(Integer, "2", Contains, json!(123)));
        // Boolean
        assert!(check(Boolean, "true", Equals, json!(true)));
        assert!(check(Boolean, "TRUE", NotEquals, json!(false)));
        assert!(check(Boolean, "false", Equals, json!("false")));
        // String: case-insensitive
        assert!(check(String, "High", Equals, json!("high")));
        assert!(check(String, "high", NotEquals, json!("Low")));
        assert!(check(String, "Unhe", StartsWith, json!("Unhealthy")));
        assert!(check(String, "THY", EndsWith, json!("Unhealthy")));
        assert!(check(String, "heal", Contains, json!("Unhealthy")));
        assert!(check(String, "b", GreaterThan, json!("c")));
        assert!(check(String, "b", LesserThan, json!("a")));
        assert!(check(String, "1", Equals, json!(1)));
    }

    #[test]
    fn absent_or_mistyped_properties_match_nothing() {
        for op in Operator::ALL {
            for t in PropertyType::ALL {
                let e = Expected::parse(t, "1").unwrap_or(Expected::Boolean(true));
                assert!(!e.test(op, None), "{op:?} {t:?} on an absent property");
            }
            assert!(!check(PropertyType::Integer, "1", op, json!({"a": 1})), "{op:?} on an object");
            assert!(!check(PropertyType::Boolean, "true", op, json!(1)), "{op:?} on a number");
        }
    }

    #[test]
    fn expected_values_are_typed() {
        assert!(Expected::parse(PropertyType::Integer, "1.5").is_err());
        assert!(Expected::parse(PropertyType::Number, "abc").is_err());
        assert!(Expected::parse(PropertyType::Number, "NaN").is_err());
        assert!(Expected::parse(PropertyType::Boolean, "yes").is_err());
        assert_eq!(Expected::parse(PropertyType::Integer, " 7 ").unwrap(), Expected::Integer(7));
    }
}
