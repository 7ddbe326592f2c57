//! Value trees as a hostile client may write them, and their rendering in JSON and CBOR.
//!
//! A [`Tree`] holds more than either format's data model: duplicate map keys, integers beyond
//! 64 bits (JSON digits, CBOR bignums), CBOR tags, simple values, indefinite and wrongly
//! declared lengths, nesting far past the decoder's limit, long runs of one value, and raw
//! fragments written verbatim (number spellings like `-0` or `1e400`, a CBOR head declaring
//! 2^64-1 elements). serde's own value types cannot say most of this, which is why the harness
//! renders trees itself.
//!
//! [`tree`] is the arbitrary strategy, biased toward what the API's types look for (their field
//! names, enum names, integers around every bound they check); `crate::schema` builds trees in
//! the shape of each request body, so that the decoder's deeper paths are reached too.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use kafdo_types::limits::MAX_REQUEST_BYTES;
use kafdo_worker::codec::Format;
use proptest::prelude::*;
use proptest::sample::select;

/// How a CBOR string, array or map declares its length (JSON has no lengths).
#[derive(Clone, Debug)]
pub enum Len {
    /// The true length, minimally encoded.
    Exact,
    /// Indefinite: chunks or items, then a break.
    Indefinite,
    /// A declared length that need not match what follows (huge, zero, off by one).
    Declared(u64),
}

/// A value as a client may write it (see the module docs).
#[derive(Clone, Debug)]
pub enum Tree {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer of any size: JSON digits; CBOR major type 0 or 1, or a bignum tag beyond
    /// 64 bits.
    Int(i128),
    /// A float: JSON's shortest spelling (`NaN` and `inf` as written, not JSON); a CBOR double.
    Float(f64),
    /// A text string.
    Text(String, Len),
    /// A byte string: base64 text in JSON, as the API writes bytes.
    Bytes(Vec<u8>, Len),
    /// An array.
    Array(Vec<Tree>, Len),
    /// A map, keys in order, duplicates kept; a JSON key that is not text is written as the
    /// text of its JSON rendering.
    Map(Vec<(Tree, Tree)>, Len),
    /// A CBOR tag (JSON writes only the tagged value).
    Tag(u64, Box<Tree>),
    /// A CBOR simple value (`undefined` is 23; 24 to 31 are malformed); JSON writes `null`.
    Simple(u8),
    /// `depth` levels of one-element arrays (or one-entry maps) around `inner`.
    Nest {
        /// How many levels.
        depth: u16,
        /// Maps (`{"n": ...}`) rather than arrays.
        map: bool,
        /// The innermost value.
        inner: Box<Tree>,
    },
    /// An array of `times` copies of one value (for the body's value budget), but never more
    /// copies than take the array one copy past [`MAX_REQUEST_BYTES`], the largest body the
    /// entry point reads (500,000 copies of a 70,000-byte string would take 35 GB to render).
    Repeat {
        /// How many copies.
        times: u32,
        /// The value.
        item: Box<Tree>,
    },
    /// Bytes written verbatim into the rendering.
    Raw(Vec<u8>),
}

/// How many copies of `one` a [`Tree::Repeat`] of `times` renders.
fn copies(times: u32, one: &[u8]) -> u32 {
    let most = MAX_REQUEST_BYTES / one.len().max(1) + 1;
    times.min(u32::try_from(most).unwrap_or(u32::MAX))
}

impl Tree {
    /// A text string with its true length.
    pub fn text(s: impl Into<String>) -> Tree {
        Tree::Text(s.into(), Len::Exact)
    }

    /// A map with its true length.
    pub fn map(entries: Vec<(Tree, Tree)>) -> Tree {
        Tree::Map(entries, Len::Exact)
    }

    /// The tree written in `format`.
    pub fn render(&self, format: Format) -> Vec<u8> {
        let mut out = Vec::new();
        match format {
            Format::Json => self.json(&mut out),
            Format::Cbor => self.cbor(&mut out),
        }
        out
    }

    fn json(&self, out: &mut Vec<u8>) {
        match self {
            Tree::Null | Tree::Simple(_) => out.extend_from_slice(b"null"),
            Tree::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Tree::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
            Tree::Float(f) => out.extend_from_slice(format!("{f:?}").as_bytes()),
            Tree::Text(s, _) => json_string(s, out),
            Tree::Bytes(b, _) => json_string(&STANDARD.encode(b), out),
            Tree::Array(items, _) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.json(out);
                }
                out.push(b']');
            }
            Tree::Map(entries, _) => {
                out.push(b'{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    match key {
                        Tree::Text(s, _) => json_string(s, out),
                        // A JSON key is text: other keys become the text they render as.
                        other => {
                            let mut text = Vec::new();
                            other.json(&mut text);
                            json_string(&String::from_utf8_lossy(&text), out);
                        }
                    }
                    out.push(b':');
                    value.json(out);
                }
                out.push(b'}');
            }
            Tree::Tag(_, inner) => inner.json(out),
            Tree::Nest { depth, map, inner } => {
                let (open, close): (&[u8], &[u8]) = if *map {
                    (b"{\"n\":", b"}")
                } else {
                    (b"[", b"]")
                };
                for _ in 0..*depth {
                    out.extend_from_slice(open);
                }
                inner.json(out);
                for _ in 0..*depth {
                    out.extend_from_slice(close);
                }
            }
            Tree::Repeat { times, item } => {
                let mut one = Vec::new();
                item.json(&mut one);
                let times = copies(*times, &one);
                out.push(b'[');
                for i in 0..times {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(&one);
                }
                out.push(b']');
            }
            Tree::Raw(bytes) => out.extend_from_slice(bytes),
        }
    }

    fn cbor(&self, out: &mut Vec<u8>) {
        match self {
            Tree::Null => out.push(0xf6),
            Tree::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
            Tree::Int(n) => cbor_int(*n, out),
            Tree::Float(f) => {
                out.push(0xfb);
                out.extend_from_slice(&f.to_be_bytes());
            }
            Tree::Text(s, len) => cbor_string(3, s.as_bytes(), len, out),
            Tree::Bytes(b, len) => cbor_string(2, b, len, out),
            Tree::Array(items, len) => {
                cbor_container(4, items.len(), len, out);
                for item in items {
                    item.cbor(out);
                }
                if matches!(len, Len::Indefinite) {
                    out.push(0xff);
                }
            }
            Tree::Map(entries, len) => {
                cbor_container(5, entries.len(), len, out);
                for (key, value) in entries {
                    key.cbor(out);
                    value.cbor(out);
                }
                if matches!(len, Len::Indefinite) {
                    out.push(0xff);
                }
            }
            Tree::Tag(tag, inner) => {
                head(6, *tag, out);
                inner.cbor(out);
            }
            Tree::Simple(v) if *v < 24 => out.push(0xe0 | v),
            Tree::Simple(v) => out.extend_from_slice(&[0xf8, *v]),
            Tree::Nest { depth, map, inner } => {
                for _ in 0..*depth {
                    if *map {
                        out.extend_from_slice(&[0xa1, 0x61, b'n']);
                    } else {
                        out.push(0x81);
                    }
                }
                inner.cbor(out);
            }
            Tree::Repeat { times, item } => {
                let mut one = Vec::new();
                item.cbor(&mut one);
                let times = copies(*times, &one);
                head(4, u64::from(times), out);
                for _ in 0..times {
                    out.extend_from_slice(&one);
                }
            }
            Tree::Raw(bytes) => out.extend_from_slice(bytes),
        }
    }
}

fn json_string(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(
        serde_json::to_string(s)
            .expect("a string serializes")
            .as_bytes(),
    );
}

/// A CBOR head: major type and argument, minimally encoded.
fn head(major: u8, n: u64, out: &mut Vec<u8>) {
    let major = major << 5;
    if n < 24 {
        out.push(major | n as u8);
    } else if let Ok(n) = u8::try_from(n) {
        out.extend_from_slice(&[major | 24, n]);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(major | 25);
        out.extend_from_slice(&n.to_be_bytes());
    } else if let Ok(n) = u32::try_from(n) {
        out.push(major | 26);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(major | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn cbor_int(n: i128, out: &mut Vec<u8>) {
    if let Ok(u) = u64::try_from(n) {
        head(0, u, out);
    } else if let Ok(u) = u64::try_from(-1 - n) {
        head(1, u, out);
    } else {
        // Beyond 64 bits: a bignum (tag 2, or tag 3 for -1 - n), big-endian, minimal.
        let (tag, magnitude) = if n >= 0 { (2, n) } else { (3, -1 - n) };
        let bytes = magnitude.to_be_bytes();
        let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        head(6, tag, out);
        cbor_string(2, &bytes[first..], &Len::Exact, out);
    }
}

fn cbor_string(major: u8, bytes: &[u8], len: &Len, out: &mut Vec<u8>) {
    match len {
        Len::Exact => {
            head(major, bytes.len() as u64, out);
            out.extend_from_slice(bytes);
        }
        Len::Declared(n) => {
            head(major, *n, out);
            out.extend_from_slice(bytes);
        }
        Len::Indefinite => {
            // Two chunks, split where a text string may be split (a character boundary).
            out.push((major << 5) | 31);
            let mut mid = bytes.len() / 2;
            while major == 3 && mid > 0 && (bytes[mid] & 0xc0) == 0x80 {
                mid -= 1;
            }
            for chunk in [&bytes[..mid], &bytes[mid..]] {
                head(major, chunk.len() as u64, out);
                out.extend_from_slice(chunk);
            }
            out.push(0xff);
        }
    }
}

fn cbor_container(major: u8, n: usize, len: &Len, out: &mut Vec<u8>) {
    match len {
        Len::Exact => head(major, n as u64, out),
        Len::Declared(d) => head(major, *d, out),
        Len::Indefinite => out.push((major << 5) | 31),
    }
}

/// Every field name of the request bodies: map keys are drawn from these most of the time.
pub const FIELD_NAMES: &[&str] = &[
    "name",
    "partitions",
    "config",
    "retention_ms",
    "cleanup_policy",
    "records",
    "key",
    "value",
    "headers",
    "partition",
    "timestamp",
    "producer_id",
    "producer_epoch",
    "base_sequence",
    "transactional",
    "transactional_id",
    "transaction_timeout_ms",
    "topic",
    "topics",
    "group_id",
    "generation_id",
    "member_id",
    "group_instance_id",
    "offsets",
    "offset",
    "metadata",
    "session_timeout_ms",
    "assignor",
];

/// The enum names the bodies accept, and near misses.
pub const ENUM_NAMES: &[&str] = &[
    "delete",
    "compact",
    "range",
    "roundrobin",
    "sticky",
    "Delete",
    "COMPACT",
    "read_committed",
    "",
];

/// Integers at and around every bound the API checks (±2^53 above all).
pub const INT_EDGES: &[i128] = &[
    0,
    1,
    -1,
    23,
    24,
    255,
    256,
    65_535,
    65_536,
    i32::MAX as i128,
    i32::MIN as i128,
    u32::MAX as i128,
    (1 << 53) - 1,
    1 << 53,
    -((1 << 53) - 1),
    -(1 << 53),
    i64::MAX as i128,
    i64::MIN as i128,
    u64::MAX as i128,
    -(1i128 << 64),
    1_000_000_000_000_000_000_000_000_000_000,
    -1_000_000_000_000_000_000_000_000_000_000,
];

/// JSON fragments written verbatim: number spellings, broken escapes, stray tokens.
const JSON_RAW: &[&str] = &[
    "-0",
    "1e3",
    "1E+2",
    "1.0",
    "00",
    "01",
    "+1",
    ".5",
    "-",
    "9007199254740993",
    "123456789012345678901234567890",
    "1e400",
    "-1e400",
    "NaN",
    "Infinity",
    "\"\\ud800\"",
    "\"\\udc00\\ud800\"",
    "\"\\u0000\"",
    "\"\\x\"",
    "\"unterminated",
    "tru",
    "nul",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    " \t\r\n",
    "\u{feff}",
    "/* comment */",
    "\"\u{0}\"",
];

/// CBOR fragments written verbatim: huge declared lengths, reserved and malformed heads,
/// half and single floats, bignums, tags, non-minimal integers, broken strings.
const CBOR_RAW: &[&[u8]] = &[
    &[0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0x1b, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
    &[0x3b, 0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0x7b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0x9a, 0xff, 0xff, 0xff, 0xff],
    &[0x5a, 0xff, 0xff, 0xff, 0xff],
    &[0x1c],
    &[0x1f],
    &[0x3f],
    &[0xff],
    &[0xf9, 0x7c, 0x00],
    &[0xf9, 0x7e, 0x00],
    &[0xf9, 0x3c, 0x00],
    &[0xfa, 0x3f, 0xc0, 0x00, 0x00],
    &[0xf8, 0x18],
    &[0xf7],
    &[0xc2, 0x40],
    &[0xc2, 0x41, 0x05],
    &[
        0xc3, 0x49, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ],
    &[0xd9, 0xd9, 0xf7, 0xf6],
    &[0xc1, 0x1a, 0x51, 0x4b, 0x67, 0xb0],
    &[0x62, 0xc3, 0x28],
    &[0x7f, 0x41, b'a', 0xff],
    &[0x5f, 0x61, b'a', 0xff],
    &[0x18, 0x05],
    &[0x19, 0x00, 0x05],
    &[0x1b, 0, 0, 0, 0, 0, 0, 0, 5],
    &[0xa1, 0x01, 0x02],
    &[0xa1, 0xf6, 0x02],
    &[0x80],
    &[0xa0],
];

/// Integers around the API's bounds, small ones, and any.
pub fn int() -> BoxedStrategy<i128> {
    prop_oneof![
        4 => (select(INT_EDGES), -2i128..=2).prop_map(|(edge, d)| edge.saturating_add(d)),
        3 => -5i128..300,
        1 => any::<i64>().prop_map(i128::from),
        1 => any::<u64>().prop_map(i128::from),
    ]
    .boxed()
}

fn float() -> BoxedStrategy<f64> {
    prop_oneof![
        2 => select(&[
            0.0,
            -0.0,
            1.0,
            1.5,
            9_007_199_254_740_992.0,
            9_007_199_254_740_994.0,
            1e300,
            -1e300,
            f64::MIN_POSITIVE,
            5e-324,
            f64::NAN,
            f64::INFINITY,
        ][..]),
        1 => any::<f64>(),
    ]
    .boxed()
}

/// Strings no well-behaved client sends: empty, NUL and controls, odd unicode, long ones.
pub fn hostile_string() -> BoxedStrategy<String> {
    prop_oneof![
        1 => Just(String::new()),
        3 => select(&[
            "\0",
            "a\0b",
            "\n",
            "\t",
            "\u{7f}",
            "\u{85}",
            "\u{feff}",
            "é",
            "😀",
            "\u{202e}abc",
            ".",
            "..",
            "a/b",
            "%2F",
            " ",
            "a b",
        ][..])
        .prop_map(str::to_owned),
        3 => ".{0,12}",
        2 => "[a-zA-Z0-9._-]{1,12}",
        1 => (
            select(&["x", "é", "\0"][..]),
            select(&[249usize, 250, 255, 256, 1_025, 5_000, 70_000][..]),
        )
            .prop_map(|(s, n)| s.repeat(n)),
    ]
    .boxed()
}

fn len(format: Format) -> BoxedStrategy<Len> {
    match format {
        Format::Json => Just(Len::Exact).boxed(),
        Format::Cbor => prop_oneof![
            12 => Just(Len::Exact),
            2 => Just(Len::Indefinite),
            1 => select(&[0u64, 1, 2, 23, 24, 255, 65_536, u32::MAX as u64, 1 << 63, u64::MAX][..])
                .prop_map(Len::Declared),
            1 => (0u64..8).prop_map(Len::Declared),
        ]
        .boxed(),
    }
}

/// Text: field and enum names, base64, hostile strings.
pub fn text(format: Format) -> BoxedStrategy<Tree> {
    (
        prop_oneof![
            3 => select(FIELD_NAMES).prop_map(str::to_owned),
            2 => select(ENUM_NAMES).prop_map(str::to_owned),
            2 => proptest::collection::vec(any::<u8>(), 0..12).prop_map(|b| STANDARD.encode(b)),
            3 => hostile_string(),
        ],
        len(format),
    )
        .prop_map(|(s, len)| Tree::Text(s, len))
        .boxed()
}

/// A value with no children.
pub fn leaf(format: Format) -> BoxedStrategy<Tree> {
    let raw = match format {
        Format::Json => select(JSON_RAW).prop_map(|s| s.as_bytes().to_vec()).boxed(),
        Format::Cbor => select(CBOR_RAW).prop_map(<[u8]>::to_vec).boxed(),
    };
    let bytes = (proptest::collection::vec(any::<u8>(), 0..16), len(format))
        .prop_map(|(b, len)| Tree::Bytes(b, len));
    prop_oneof![
        2 => Just(Tree::Null),
        1 => any::<bool>().prop_map(Tree::Bool),
        6 => int().prop_map(Tree::Int),
        1 => float().prop_map(Tree::Float),
        5 => text(format),
        2 => bytes,
        1 => any::<u8>().prop_map(Tree::Simple),
        2 => raw.prop_map(Tree::Raw),
    ]
    .boxed()
}

/// A map key: a field name most of the time, else any text or any value (CBOR keys may be
/// anything).
pub fn key(format: Format, value: BoxedStrategy<Tree>) -> BoxedStrategy<Tree> {
    prop_oneof![
        8 => select(FIELD_NAMES).prop_map(Tree::text),
        1 => hostile_string().prop_map(Tree::text),
        1 => int().prop_map(Tree::Int),
        1 => value,
        1 => len(format).prop_map(|len| Tree::Text("records".into(), len)),
    ]
    .boxed()
}

/// An arbitrary tree in `format` (see the module docs).
pub fn tree(format: Format) -> BoxedStrategy<Tree> {
    let leaves = leaf(format);
    let repeat_item = leaves.clone();
    leaves
        .prop_recursive(5, 64, 6, move |inner| {
            let array = (proptest::collection::vec(inner.clone(), 0..6), len(format))
                .prop_map(|(items, len)| Tree::Array(items, len));
            let map = (
                proptest::collection::vec((key(format, inner.clone()), inner.clone()), 0..6),
                len(format),
            )
                .prop_map(|(entries, len)| Tree::Map(entries, len));
            let tag = (
                select(&[0u64, 1, 2, 3, 24, 32, 55_799, u64::MAX][..]),
                inner.clone(),
            )
                .prop_map(|(t, v)| Tree::Tag(t, Box::new(v)));
            let nest = (1u16..48, any::<bool>(), inner.clone()).prop_map(|(depth, map, inner)| {
                Tree::Nest {
                    depth,
                    map,
                    inner: Box::new(inner),
                }
            });
            // Only a leaf is repeated, so one tree holds at most a few such runs.
            let repeat = (
                select(&[100u32, 10_000, 499_990, 500_000, 500_010][..]),
                repeat_item.clone(),
            )
                .prop_map(|(times, item)| Tree::Repeat {
                    times,
                    item: Box::new(item),
                });
            prop_oneof![
                40 => array,
                40 => map,
                8 => tag,
                8 => nest,
                1 => repeat,
            ]
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_it_says() {
        let t = Tree::map(vec![
            (Tree::text("a"), Tree::Int(1)),
            (Tree::text("a"), Tree::Int(-(1 << 70))),
            (Tree::Int(0), Tree::Bytes(vec![0, 255], Len::Exact)),
        ]);
        assert_eq!(
            String::from_utf8(t.render(Format::Json)).unwrap(),
            r#"{"a":1,"a":-1180591620717411303424,"0":"AP8="}"#
        );
        let cbor = t.render(Format::Cbor);
        assert_eq!(cbor[0], 0xa3);
        // -2^70 is a negative bignum: tag 3 over 2^70 - 1.
        assert_eq!(&cbor[6..9], &[0xc3, 0x49, 0x3f]);
        let nested = Tree::Nest {
            depth: 2,
            map: false,
            inner: Box::new(Tree::Null),
        };
        assert_eq!(nested.render(Format::Json), b"[[null]]");
        assert_eq!(nested.render(Format::Cbor), [0x81, 0x81, 0xf6]);
        let text = Tree::Text("héllo".into(), Len::Indefinite).render(Format::Cbor);
        assert_eq!(text[0], 0x7f);
        assert_eq!(*text.last().unwrap(), 0xff);
    }
}
