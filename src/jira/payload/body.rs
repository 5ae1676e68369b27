//! The few values of a webhook body that `parse.rs` reads, deserialized without
//! building the rest: every other value is checked as a `serde_json::Value` is
//! (the same parser, so the same bodies are malformed, with the same errors) and
//! dropped. Jira's `issue.fields` carries dozens of fields (the description,
//! every custom field): read into a `Value` tree, each was allocated and freed for
//! nothing (docs/performance.md, "Worker CPU profile").

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// A JSON value read only as far as `T` asks: the named fields of an object, or
/// the kind of value it is instead (`null`, `a string`, …).
#[derive(Debug)]
pub(super) enum Shape<T> {
    /// An object, with the fields `T` names.
    Object(T),
    /// Not an object: what it is, as `MalformedWebhook` names it.
    Not(&'static str),
}

impl<T> Shape<T> {
    /// The object's fields, when it is one.
    pub(super) fn object(&self) -> Option<&T> {
        match self {
            Self::Object(fields) => Some(fields),
            Self::Not(_) => None,
        }
    }
}

/// The fields of an object that are read; every other is skipped.
pub(super) trait Fields: Default {
    /// The names read, in the order [`Fields::read`] numbers them.
    const NAMES: &'static [&'static str];

    /// Reads the value of field `NAMES[index]`. A name given twice keeps its
    /// last value, as a `serde_json::Map` does.
    fn read<'de, A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error>;
}

/// The body's top level.
#[derive(Debug, Default)]
pub(super) struct Root {
    pub(super) changelog: Option<Value>,
    pub(super) issue: Option<Shape<Issue>>,
    pub(super) timestamp: Option<Value>,
}

impl Fields for Root {
    const NAMES: &'static [&'static str] = &["changelog", "issue", "timestamp"];

    fn read<'de, A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error> {
        match index {
            0 => self.changelog = Some(map.next_value()?),
            1 => self.issue = Some(map.next_value()?),
            _ => self.timestamp = Some(map.next_value()?),
        }
        Ok(())
    }
}

/// `issue`.
#[derive(Debug, Default)]
pub(super) struct Issue {
    pub(super) key: Option<Value>,
    pub(super) fields: Option<Shape<IssueFields>>,
}

impl Fields for Issue {
    const NAMES: &'static [&'static str] = &["key", "fields"];

    fn read<'de, A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error> {
        match index {
            0 => self.key = Some(map.next_value()?),
            _ => self.fields = Some(map.next_value()?),
        }
        Ok(())
    }
}

/// `issue.fields`.
#[derive(Debug, Default)]
pub(super) struct IssueFields {
    pub(super) assignee: Option<Value>,
    pub(super) updated: Option<Value>,
}

impl Fields for IssueFields {
    const NAMES: &'static [&'static str] = &["assignee", "updated"];

    fn read<'de, A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error> {
        match index {
            0 => self.assignee = Some(map.next_value()?),
            _ => self.updated = Some(map.next_value()?),
        }
        Ok(())
    }
}

impl<'de, T: Fields> de::Deserialize<'de> for Shape<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // `deserialize_any`, as `Value` does: any value is accepted here, and
        // serde_json counts the same nesting depth.
        deserializer.deserialize_any(ShapeVisitor(PhantomData))
    }
}

struct ShapeVisitor<T>(PhantomData<T>);

impl<'de, T: Fields> Visitor<'de> for ShapeVisitor<T> {
    type Value = Shape<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape<T>, A::Error> {
        let mut fields = T::default();
        while let Some(name) = map.next_key_seed(Name(T::NAMES))? {
            match name {
                Some(index) => fields.read(index, &mut map)?,
                None => map.next_value::<Skip>().map(|_| ())?,
            }
        }
        Ok(Shape::Object(fields))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Shape<T>, A::Error> {
        SkipVisitor.visit_seq(seq)?;
        Ok(Shape::Not("an array"))
    }

    fn visit_unit<E>(self) -> Result<Shape<T>, E> {
        Ok(Shape::Not("null"))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Shape<T>, E> {
        Ok(Shape::Not("a boolean"))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Shape<T>, E> {
        Ok(Shape::Not("a number"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Shape<T>, E> {
        Ok(Shape::Not("a number"))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Shape<T>, E> {
        Ok(Shape::Not("a number"))
    }

    fn visit_str<E>(self, _: &str) -> Result<Shape<T>, E> {
        Ok(Shape::Not("a string"))
    }
}

/// An object key: the index of the name among those read, `None` for another.
struct Name(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for Name {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Visitor<'_> for Name {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|name| *name == key))
    }
}

/// A value that is checked and dropped: parsed as `Value` parses it (strings
/// decoded and checked as UTF-8, numbers in range), nothing allocated.
/// `serde::de::IgnoredAny` would not do: serde_json skips what it ignores
/// without checking its strings or numbers, so a body `Value` refuses (a lone
/// surrogate, `1e400`) would be read.
struct Skip;

impl<'de> de::Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }

    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Map, json};

    use super::*;

    /// What `serde_json::Value` makes of a body, in the shape read here: the
    /// reading this module replaces.
    fn via_value(body: &[u8]) -> Result<String, String> {
        fn shape<T>(value: Value, fields: impl Fn(&Map<String, Value>) -> T) -> Shape<T> {
            match &value {
                Value::Object(map) => Shape::Object(fields(map)),
                Value::Null => Shape::Not("null"),
                Value::Bool(_) => Shape::Not("a boolean"),
                Value::Number(_) => Shape::Not("a number"),
                Value::String(_) => Shape::Not("a string"),
                Value::Array(_) => Shape::Not("an array"),
            }
        }
        let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let root = shape(value, |root| Root {
            changelog: root.get("changelog").cloned(),
            issue: root.get("issue").cloned().map(|issue| {
                shape(issue, |issue| Issue {
                    key: issue.get("key").cloned(),
                    fields: issue.get("fields").cloned().map(|fields| {
                        shape(fields, |fields| IssueFields {
                            assignee: fields.get("assignee").cloned(),
                            updated: fields.get("updated").cloned(),
                        })
                    }),
                })
            }),
            timestamp: root.get("timestamp").cloned(),
        });
        Ok(format!("{root:?}"))
    }

    fn read(body: &[u8]) -> Result<String, String> {
        serde_json::from_slice::<Shape<Root>>(body)
            .map(|root| format!("{root:?}"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_body_reads_as_its_value_would_valid_or_not() {
        let deep = format!("{{\"issue\": {}1{}}}", "[".repeat(200), "]".repeat(200));
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "the usual",
                json!({"timestamp": 1, "issue": {"key": "A-1", "fields": {"assignee": {"name": "a"},
                    "updated": "2023-01-01T02:00:00.000+0200", "description": "x"}},
                    "changelog": {"items": [{"field": "assignee"}]}})
                .to_string()
                .into_bytes(),
            ),
            (
                "names given twice keep the last",
                br#"{"issue": {"key": "A-1", "fields": {"assignee": null}}, "issue": {"fields": 3, "key": "B-2", "key": "C-3"}}"#.to_vec(),
            ),
            (
                "an escaped name",
                br#"{"\u0069ssue": {"ke\u0079": "A-1"}}"#.to_vec(),
            ),
            ("not objects", br#"{"issue": [1, {"key": 2}], "changelog": "x"}"#.to_vec()),
            ("a lone surrogate where nothing is read", br#"{"other": "\ud800"}"#.to_vec()),
            ("a lone surrogate in a key", br#"{"issue": {"\udc00": 1}}"#.to_vec()),
            ("a number out of range", br#"{"issue": {"fields": {"x": 1e400}}}"#.to_vec()),
            ("invalid UTF-8", b"{\"other\": \"\xff\"}".to_vec()),
            ("a control character", b"{\"other\": \"a\x01\"}".to_vec()),
            ("too deep", deep.into_bytes()),
            ("trailing bytes", br#"{"issue": {}} x"#.to_vec()),
            ("not closed", br#"{"issue": {"key": "A-1""#.to_vec()),
            ("top level array", b"[1, \"\\ud800\"]".to_vec()),
            ("top level scalar", b"  7 ".to_vec()),
            ("empty", b"".to_vec()),
        ];
        for (case, body) in cases {
            assert_eq!(read(&body), via_value(&body), "{case}");
        }
    }

    /// JSON values whose object keys are the names read, and a few others.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(json!(null)),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "[a-z\u{e9}\u{1f600}]{0,8}".prop_map(Value::from),
        ];
        let key = prop_oneof![
            Just("changelog".to_owned()),
            Just("issue".to_owned()),
            Just("timestamp".to_owned()),
            Just("key".to_owned()),
            Just("fields".to_owned()),
            Just("assignee".to_owned()),
            Just("updated".to_owned()),
            "[a-z]{1,3}",
        ];
        leaf.prop_recursive(4, 64, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                proptest::collection::vec((key.clone(), inner), 0..6)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_json_reads_as_its_value_would(value in json_value()) {
            let body = value.to_string().into_bytes();
            prop_assert_eq!(read(&body), via_value(&body));
        }

        #[test]
        fn any_bytes_read_as_their_value_would(body in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(read(&body), via_value(&body));
        }

        #[test]
        fn any_json_like_text_reads_as_its_value_would(parts in proptest::collection::vec(prop_oneof![
            Just("{"), Just("}"), Just("["), Just("]"), Just(","), Just(":"), Just(" "),
            Just("\"issue\""), Just("\"key\""), Just("\"fields\""), Just("\"assignee\""),
            Just("\"changelog\""), Just("\"x\""), Just("1"), Just("1e400"), Just("-0.5"),
            Just("null"), Just("true"), Just("\"\\ud800\""), Just("\"\\u00e9\""), Just("\"\u{e9}\""),
        ], 0..24)) {
            let body = parts.concat().into_bytes();
            prop_assert_eq!(read(&body), via_value(&body));
        }
    }
}
