//! Total decoding of request bodies: any bytes give a value or an `INVALID_REQUEST` error,
//! never a panic, never a value read from input that should have been refused.
//!
//! The format's own parser (serde_json, ciborium) decodes straight into the API type, but
//! through `Strict`, a deserializer wrapped around it that sees every value as it passes and
//! refuses:
//!
//! - a struct given as a sequence: serde's derived structs accept one and fill their fields by
//!   position, so `["name", 1]` would be a topic and `{"records":[[]]}` a record; a struct is
//!   read only from a map;
//! - an integer beyond ±[`MAX_SAFE_INTEGER`] (every number crosses into JavaScript and a Durable
//!   Object's SQLite), and any float (no API field is one);
//! - more than [`MAX_BODY_VALUES`] values or more than [`MAX_BODY_DEPTH`] levels, counted as the
//!   body is read, so neither a long body of tiny values nor a deep one can exhaust memory or
//!   the stack;
//! - a map key that is not a string: a derived struct takes an integer key as a field's index,
//!   which is reading by position again;
//! - a CBOR tag where any value may go (ciborium itself skips a tag before a value of a given
//!   type, whose value is then checked like any other), and anything after the body's one value (JSON's parser refuses trailing
//!   characters itself; a CBOR body with bytes left over is refused here).
//!
//! Declared lengths are never trusted: a sequence's size hint reaches the type it fills capped
//! at 4,096 (ciborium would pass on a declared 2^32), and strings grow as their bytes arrive.
//! Errors are words, not a decoder's debug text. Decoding through the wrapper costs about as
//! much as decoding without it (`cargo run --release -p kafdo-worker --example decode_bench`).

use std::cell::Cell;
use std::fmt;

use kafdo_types::limits::{MAX_BODY_DEPTH, MAX_BODY_VALUES, MAX_SAFE_INTEGER};
use serde::de::{self, DeserializeOwned, DeserializeSeed, Unexpected, Visitor};

/// The most elements a declared length may make a type reserve room for.
const MAX_RESERVED_ELEMENTS: usize = 4_096;

/// Why a body was refused (the message says it for a person).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodyError(pub String);

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Decodes a JSON body into `T` under the rules above.
pub fn from_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, BodyError> {
    // `from_slice` refuses anything but whitespace after the value.
    serde_json::from_slice::<Checked<T>>(body)
        .map(|c| c.0)
        .map_err(|e| BodyError(e.to_string()))
}

/// Decodes a CBOR body into `T` under the rules above.
pub fn from_cbor<T: DeserializeOwned>(body: &[u8]) -> Result<T, BodyError> {
    let mut rest = body;
    let value = ciborium::de::from_reader::<Checked<T>, _>(&mut rest)
        .map_err(cbor_error)?
        .0;
    if !rest.is_empty() {
        return Err(BodyError(format!(
            "{} bytes follow the body's one CBOR value",
            rest.len()
        )));
    }
    Ok(value)
}

/// ciborium's errors in words (its `Debug` text is not a message).
fn cbor_error<T>(e: ciborium::de::Error<T>) -> BodyError {
    use ciborium::de::Error;
    BodyError(match e {
        Error::Io(_) => "the CBOR body ends in the middle of a value".into(),
        Error::Syntax(offset) => format!("malformed CBOR at byte {offset}"),
        Error::Semantic(Some(offset), message) => format!("{message} (at byte {offset})"),
        Error::Semantic(None, message) => message,
        Error::RecursionLimitExceeded => {
            format!("the body nests deeper than {MAX_BODY_DEPTH} levels")
        }
    })
}

/// A whole body read through [`Strict`] with a fresh budget (the parsers take a type, not a
/// seed, so the budget starts here).
struct Checked<T>(T);

impl<'de, T: de::Deserialize<'de>> de::Deserialize<'de> for Checked<T> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let budget = Cell::new(MAX_BODY_VALUES);
        let limits = Limits {
            budget: &budget,
            depth: 0,
        };
        T::deserialize(Strict {
            inner: deserializer,
            limits,
            role: Role::Any,
        })
        .map(Checked)
    }
}

/// What a value may still spend: values left in the body, and its depth.
#[derive(Clone, Copy)]
struct Limits<'b> {
    budget: &'b Cell<usize>,
    depth: usize,
}

impl Limits<'_> {
    fn spend<E: de::Error>(self) -> Result<(), E> {
        match self.budget.get().checked_sub(1) {
            Some(left) => {
                self.budget.set(left);
                Ok(())
            }
            None => Err(E::custom(format!(
                "the body holds more than {MAX_BODY_VALUES} values"
            ))),
        }
    }

    fn nested<E: de::Error>(self) -> Result<Self, E> {
        if self.depth >= MAX_BODY_DEPTH {
            return Err(E::custom(format!(
                "the body nests deeper than {MAX_BODY_DEPTH} levels"
            )));
        }
        Ok(Self {
            budget: self.budget,
            depth: self.depth + 1,
        })
    }
}

fn in_range<E: de::Error>(n: i128) -> Result<(), E> {
    if (-i128::from(MAX_SAFE_INTEGER)..=i128::from(MAX_SAFE_INTEGER)).contains(&n) {
        Ok(())
    } else {
        Err(E::custom(format!(
            "the number {n} is beyond ±{MAX_SAFE_INTEGER}, the largest integer Kafdo keeps exactly"
        )))
    }
}

/// The checking deserializer around a format's own.
struct Strict<'b, D> {
    inner: D,
    limits: Limits<'b>,
    /// What the value may be (a map key's deserializer takes only a string).
    role: Role,
}

impl<'b, D> Strict<'b, D> {
    fn visitor<V>(&self, visitor: V, role: Role) -> Checking<'b, V> {
        Checking {
            visitor,
            limits: self.limits,
            role,
        }
    }
}

/// What a value is allowed to be, besides any value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Any value.
    Any,
    /// A struct's: not a sequence.
    Struct,
    /// A map key's: a string.
    Key,
    /// An enum's: its variant, given as the format gives enums.
    Enum,
}

/// Forwards `deserialize_*` methods to the inner deserializer with a checking visitor.
macro_rules! forward {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
                let visitor = self.visitor(visitor, self.role);
                self.inner.$method(visitor)
            }
        )*
    };
}

impl<'de, 'b, D: de::Deserializer<'de>> de::Deserializer<'de> for Strict<'b, D> {
    type Error = D::Error;

    forward! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_option deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier
    }

    /// A value the type ignores is still read through the checks: the parsers skip it
    /// without visiting otherwise.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        let visitor = self.visitor(visitor, self.role);
        self.inner.deserialize_any(visitor)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.visitor(visitor, self.role);
        self.inner.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.visitor(visitor, self.role);
        self.inner.deserialize_newtype_struct(name, visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.visitor(visitor, self.role);
        self.inner.deserialize_tuple(len, visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.visitor(visitor, self.role);
        self.inner.deserialize_tuple_struct(name, len, visitor)
    }

    /// A struct is read only from a map, never by position from a sequence.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.visitor(visitor, Role::Struct);
        self.inner.deserialize_struct(name, fields, visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.visitor(visitor, Role::Enum);
        self.inner.deserialize_enum(name, variants, visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// The visitor that checks each value before the API type's visitor sees it.
struct Checking<'b, V> {
    visitor: V,
    limits: Limits<'b>,
    role: Role,
}

impl<V> Checking<'_, V> {
    /// Spends one value, refusing a map key that is not a string (`what` names the value).
    fn value<E: de::Error>(&self, string: bool, what: Unexpected<'_>) -> Result<(), E> {
        if self.role == Role::Key && !string {
            return Err(E::custom(format!("map keys must be strings, not {what}")));
        }
        self.limits.spend()
    }
}

/// Forwards `visit_*` methods of plain values, each spending one value of the budget
/// (`string`: whether it may be a map key; `what`: how an error names it).
macro_rules! visit_plain {
    ($($method:ident($ty:ty, $string:expr, $what:expr))*) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
                self.value($string, $what)?;
                self.visitor.$method(v)
            }
        )*
    };
}

impl<'de, 'b, V: Visitor<'de>> Visitor<'de> for Checking<'b, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visitor.expecting(f)
    }

    visit_plain! {
        visit_bool(bool, false, Unexpected::Other("a boolean"))
        visit_char(char, true, Unexpected::Other("a character"))
        visit_str(&str, true, Unexpected::Other("a string"))
        visit_borrowed_str(&'de str, true, Unexpected::Other("a string"))
        visit_string(String, true, Unexpected::Other("a string"))
        visit_bytes(&[u8], false, Unexpected::Other("bytes"))
        visit_borrowed_bytes(&'de [u8], false, Unexpected::Other("bytes"))
        visit_byte_buf(Vec<u8>, false, Unexpected::Other("bytes"))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<V::Value, E> {
        self.value(false, Unexpected::Other("an integer"))?;
        in_range(i128::from(v))?;
        self.visitor.visit_i64(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<V::Value, E> {
        self.value(false, Unexpected::Other("an integer"))?;
        in_range(i128::from(v))?;
        self.visitor.visit_u64(v)
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<V::Value, E> {
        self.value(false, Unexpected::Other("an integer"))?;
        in_range(v)?;
        self.visitor.visit_i128(v)
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<V::Value, E> {
        self.value(false, Unexpected::Other("an integer"))?;
        in_range(i128::try_from(v).unwrap_or(i128::MAX))?;
        self.visitor.visit_u128(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<V::Value, E> {
        Err(E::custom(format!(
            "the number {v} is not a whole number (or is too large to be one exactly)"
        )))
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.value(false, Unexpected::Option)?;
        self.visitor.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.value(false, Unexpected::Unit)?;
        self.visitor.visit_unit()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.value::<D::Error>(false, Unexpected::Option)?;
        self.visitor.visit_some(Strict {
            inner: deserializer,
            limits: self.limits,
            role: Role::Any,
        })
    }

    fn visit_newtype_struct<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<V::Value, D::Error> {
        self.visitor.visit_newtype_struct(Strict {
            inner: deserializer,
            limits: self.limits,
            role: self.role,
        })
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        if self.role == Role::Struct {
            return Err(de::Error::invalid_type(Unexpected::Seq, &self.visitor));
        }
        self.value(false, Unexpected::Seq)?;
        self.visitor.visit_seq(Elements {
            inner: seq,
            limits: self.limits.nested()?,
        })
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.value(false, Unexpected::Map)?;
        self.visitor.visit_map(Entries {
            inner: map,
            limits: self.limits.nested()?,
        })
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        // An enum the type asked for (serde_json gives `"delete"` as one) is read through the
        // checks; anywhere else this is ciborium presenting a CBOR tag.
        if self.role != Role::Enum {
            return Err(de::Error::custom("CBOR tags are not accepted"));
        }
        self.value::<A::Error>(false, Unexpected::Enum)?;
        self.visitor.visit_enum(Variant {
            inner: data,
            limits: self.limits,
        })
    }
}

/// A seed whose deserializer checks as [`Strict`] does.
struct Seed<'b, S> {
    seed: S,
    limits: Limits<'b>,
    role: Role,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'_, S> {
    type Value = S::Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(Strict {
            inner: deserializer,
            limits: self.limits,
            role: self.role,
        })
    }
}

/// An enum's variant, and what it carries, checked.
struct Variant<'b, A> {
    inner: A,
    limits: Limits<'b>,
}

impl<'de, 'b, A: de::EnumAccess<'de>> de::EnumAccess<'de> for Variant<'b, A> {
    type Error = A::Error;
    type Variant = Variant<'b, A::Variant>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), A::Error> {
        let (name, variant) = self.inner.variant_seed(Seed {
            seed,
            limits: self.limits,
            role: Role::Any,
        })?;
        let variant = Variant {
            inner: variant,
            limits: self.limits,
        };
        Ok((name, variant))
    }
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for Variant<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, A::Error> {
        self.inner.newtype_variant_seed(Seed {
            seed,
            limits: self.limits,
            role: Role::Any,
        })
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        let visitor = Checking {
            visitor,
            limits: self.limits,
            role: Role::Any,
        };
        self.inner.tuple_variant(len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        let visitor = Checking {
            visitor,
            limits: self.limits,
            role: Role::Struct,
        };
        self.inner.struct_variant(fields, visitor)
    }
}

/// A sequence's elements, each checked.
struct Elements<'b, A> {
    inner: A,
    limits: Limits<'b>,
}

impl<'de, A: de::SeqAccess<'de>> de::SeqAccess<'de> for Elements<'_, A> {
    type Error = A::Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, A::Error> {
        self.inner.next_element_seed(Seed {
            seed,
            limits: self.limits,
            role: Role::Any,
        })
    }

    // The length the input declares, not one it has shown: a type that reserved for it could be
    // made to reserve gigabytes before the first element. Capped, it still spares a large body
    // most of its vector's regrowth.
    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint().map(|n| n.min(MAX_RESERVED_ELEMENTS))
    }
}

/// A map's entries, each key and value checked.
struct Entries<'b, A> {
    inner: A,
    limits: Limits<'b>,
}

impl<'de, A: de::MapAccess<'de>> de::MapAccess<'de> for Entries<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.inner.next_key_seed(Seed {
            seed,
            limits: self.limits,
            role: Role::Key,
        })
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        self.inner.next_value_seed(Seed {
            seed,
            limits: self.limits,
            role: Role::Any,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint().map(|n| n.min(MAX_RESERVED_ELEMENTS))
    }
}

#[cfg(test)]
mod tests {
    use kafdo_types::api::{CreateTopicRequest, ProduceRequest};
    use kafdo_types::txn::EndTxnRequest;
    use serde::de::IgnoredAny;

    use super::*;

    fn json<T: DeserializeOwned>(body: &str) -> Result<T, BodyError> {
        from_json(body.as_bytes())
    }

    fn to_cbor<T: serde::Serialize>(value: &T) -> Vec<u8> {
        kafdo_broker::cbor::to_cbor(value)
    }

    #[test]
    fn the_api_reads_as_before() {
        let t: CreateTopicRequest = json(
            r#"{"name":"t","partitions":2,"config":{"retention_ms":-1,"cleanup_policy":"compact"}}"#,
        )
        .unwrap();
        assert_eq!((t.name.as_str(), t.partitions), ("t", 2));
        assert_eq!(from_cbor::<CreateTopicRequest>(&to_cbor(&t)).unwrap(), t);
        assert!(json::<CreateTopicRequest>(
            r#"{"name":"t","partitions":2,"config":{"cleanup_policy":"nope"}}"#
        )
        .is_err());
        let p: ProduceRequest = json(
            r#"{"records":[{"key":"aw==","value":"AP8=","headers":[{"key":"h","value":null}]}]}"#,
        )
        .unwrap();
        assert_eq!(p.records[0].value.as_deref(), Some(&[0u8, 255][..]));
        assert_eq!(from_cbor::<ProduceRequest>(&to_cbor(&p)).unwrap(), p);
    }

    #[test]
    fn numbers_beyond_two_to_the_53_are_refused() {
        for n in [
            "9007199254740992",
            "-9007199254740992",
            "18446744073709551615",
            "1e300",
        ] {
            let body = format!(r#"{{"name":"r","partitions":1,"config":{{"retention_ms":{n}}}}}"#);
            assert!(json::<CreateTopicRequest>(&body).is_err(), "{n}");
        }
        let ok = r#"{"name":"r","partitions":1,"config":{"retention_ms":9007199254740991}}"#;
        assert!(json::<CreateTopicRequest>(ok).is_ok());
        assert!(json::<CreateTopicRequest>(r#"{"name":"r","partitions":1.5}"#).is_err());
        // CBOR: 2^53 as an unsigned integer, and a bignum tag.
        let big = [0xa1, 0x61, b'x', 0x1b, 0, 0x20, 0, 0, 0, 0, 0, 0];
        assert!(from_cbor::<IgnoredAny>(&big).is_err());
        let bignum = [0xc2, 0x49, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(from_cbor::<IgnoredAny>(&bignum).is_err());
    }

    #[test]
    fn structs_are_read_only_from_maps() {
        assert!(json::<CreateTopicRequest>(r#"["positional",1]"#).is_err());
        assert!(json::<ProduceRequest>(r#"{"records":[[]]}"#).is_err());
        assert!(json::<EndTxnRequest>("[7,0]").is_err());
        assert!(json::<CreateTopicRequest>(
            r#"{"name":"r","partitions":1,"config":[-1,"delete"]}"#
        )
        .is_err());
        assert!(from_cbor::<EndTxnRequest>(&to_cbor(&(7, 0))).is_err());
        // Integer keys would name fields by index in a derived struct.
        let by_index: std::collections::BTreeMap<u8, i64> = [(0, 7), (1, 0)].into();
        assert!(from_cbor::<EndTxnRequest>(&to_cbor(&by_index)).is_err());
        let e = from_cbor::<IgnoredAny>(&to_cbor(&by_index)).unwrap_err();
        assert!(e.0.contains("keys must be strings"), "{e}");
    }

    #[test]
    fn nothing_may_follow_the_body() {
        let one = to_cbor(&EndTxnRequest {
            keep_epoch: false,
            producer_id: 1,
            producer_epoch: 0,
        });
        let mut two = one.clone();
        two.extend_from_slice(&one);
        assert!(from_cbor::<EndTxnRequest>(&one).is_ok());
        let e = from_cbor::<EndTxnRequest>(&two).unwrap_err();
        assert!(e.0.contains("follow"), "{e}");
        assert!(json::<EndTxnRequest>(r#"{"producer_id":1,"producer_epoch":0} {}"#).is_err());
    }

    #[test]
    fn declared_lengths_are_not_trusted() {
        // A record value (bytes) declared as an array of 2^32-1 elements, then nothing.
        let body = [
            0xa1, 0x67, b'r', b'e', b'c', b'o', b'r', b'd', b's', 0x81, 0xa1, 0x65, b'v', b'a',
            b'l', b'u', b'e', 0x9a, 0xff, 0xff, 0xff, 0xff,
        ];
        let e = from_cbor::<ProduceRequest>(&body).unwrap_err();
        assert!(e.0.contains("ends"), "{e}");
        // A text string declared 2^63 bytes long.
        let body = [0x7b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(from_cbor::<IgnoredAny>(&body).is_err());
    }

    #[test]
    fn bodies_are_bounded_in_depth_and_size() {
        let deep = format!(
            "{}{}",
            "[".repeat(MAX_BODY_DEPTH + 1),
            "]".repeat(MAX_BODY_DEPTH + 1)
        );
        let e = json::<IgnoredAny>(&deep).unwrap_err();
        assert!(e.0.contains("deeper"), "{e}");
        let ok = format!(
            "{}{}",
            "[".repeat(MAX_BODY_DEPTH),
            "]".repeat(MAX_BODY_DEPTH)
        );
        assert!(json::<IgnoredAny>(&ok).is_ok());
        let wide = format!("[{}0]", "0,".repeat(MAX_BODY_VALUES));
        let e = json::<IgnoredAny>(&wide).unwrap_err();
        assert!(e.0.contains("values"), "{e}");
    }

    #[test]
    fn cbor_errors_read_as_words() {
        for body in [
            &[0xff][..],
            &[0x1c],
            &[0xa1, 0x01, 0x02],
            &[0xf8, 0x20],
            &[],
        ] {
            let e = from_cbor::<IgnoredAny>(body)
                .map(|_| ())
                .expect_err(&format!("{body:?}"));
            assert!(
                !e.0.contains("Syntax(") && !e.0.contains("Semantic("),
                "{e}"
            );
        }
    }
}
