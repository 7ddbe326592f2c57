//! Trees in the shape of each request body: the right field names with values that are
//! usually of the right kind, sometimes missing, duplicated, joined by unknown fields, or
//! replaced by an arbitrary tree. They reach what arbitrary trees rarely do: a body that
//! decodes up to its last field and fails there, an enum written as CBOR's one-entry map, a
//! byte field written as an array of integers.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use kafdo_worker::codec::Format;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use crate::bodies::BodyType;
use crate::tree::{hostile_string, int, key, tree, Len, Tree, ENUM_NAMES};

/// A field's value, or now and then an arbitrary tree in its place.
fn or_junk(value: BoxedStrategy<Tree>, format: Format) -> BoxedStrategy<Tree> {
    prop_oneof![9 => value, 1 => tree(format)].boxed()
}

/// A map of `fields`, each present nine times in ten, sometimes with the first one repeated
/// or unknown entries added.
fn object(fields: Vec<(&'static str, BoxedStrategy<Tree>)>, format: Format) -> BoxedStrategy<Tree> {
    let entries: Vec<BoxedStrategy<Option<(Tree, Tree)>>> = fields
        .into_iter()
        .map(|(name, value)| {
            prop_oneof![
                9 => or_junk(value, format).prop_map(move |v| Some((Tree::text(name), v))),
                1 => Just(None),
            ]
            .boxed()
        })
        .collect();
    let extra = prop_oneof![
        12 => Just(vec![]),
        1 => vec((key(format, tree(format)), tree(format)), 1..3),
    ];
    let len = match format {
        Format::Json => Just(Len::Exact).boxed(),
        Format::Cbor => prop_oneof![
            20 => Just(Len::Exact),
            2 => Just(Len::Indefinite),
            1 => (0u64..8).prop_map(Len::Declared),
        ]
        .boxed(),
    };
    (entries, extra, proptest::bool::weighted(0.05), len)
        .prop_map(|(entries, extra, repeat, len)| {
            let mut entries: Vec<(Tree, Tree)> = entries.into_iter().flatten().collect();
            if repeat {
                if let Some(first) = entries.first().cloned() {
                    entries.push(first);
                }
            }
            entries.extend(extra);
            Tree::Map(entries, len)
        })
        .boxed()
}

fn array(item: BoxedStrategy<Tree>, max: usize) -> BoxedStrategy<Tree> {
    vec(item, 0..max)
        .prop_map(|items| Tree::Array(items, Len::Exact))
        .boxed()
}

fn integer() -> BoxedStrategy<Tree> {
    int().prop_map(Tree::Int).boxed()
}

fn small() -> BoxedStrategy<Tree> {
    prop_oneof![4 => (-2i128..4).prop_map(Tree::Int), 1 => integer()].boxed()
}

fn string() -> BoxedStrategy<Tree> {
    prop_oneof![
        3 => select(&["t1", "t2", "compacted", "tx-open", "g-live", "m-1", "x"][..])
            .prop_map(Tree::text),
        1 => hostile_string().prop_map(Tree::text),
    ]
    .boxed()
}

fn optional(value: BoxedStrategy<Tree>) -> BoxedStrategy<Tree> {
    prop_oneof![6 => value, 1 => Just(Tree::Null)].boxed()
}

fn boolean() -> BoxedStrategy<Tree> {
    prop_oneof![
        4 => any::<bool>().prop_map(Tree::Bool),
        1 => (0i128..2).prop_map(Tree::Int),
        1 => Just(Tree::text("true")),
    ]
    .boxed()
}

/// Bytes as the format writes them, and as it might: base64 in JSON (or broken base64); in
/// CBOR a byte string, an array of integers, or base64 text.
fn bytes(format: Format) -> BoxedStrategy<Tree> {
    let raw = vec(any::<u8>(), 0..12);
    let value = match format {
        Format::Json => prop_oneof![
            6 => raw.prop_map(|b| Tree::text(STANDARD.encode(b))),
            1 => select(&["!!", "a", "aw=", "aw===", "a w==", "aw==\n", "-_8="][..]).prop_map(Tree::text),
        ]
        .boxed(),
        Format::Cbor => prop_oneof![
            6 => raw.clone().prop_map(|b| Tree::Bytes(b, Len::Exact)),
            1 => raw.clone().prop_map(|b| Tree::Bytes(b, Len::Indefinite)),
            1 => vec(prop_oneof![4 => 0i128..256, 1 => Just(256i128), 1 => Just(-1i128)], 0..6)
                .prop_map(|b| Tree::Array(b.into_iter().map(Tree::Int).collect(), Len::Exact)),
            1 => raw.prop_map(|b| Tree::text(STANDARD.encode(b))),
        ]
        .boxed(),
    };
    optional(value)
}

/// An enum's name, as text, or (CBOR) as serde's externally tagged form, a one-entry map.
fn enumeration(names: &'static [&'static str], format: Format) -> BoxedStrategy<Tree> {
    let text = prop_oneof![
        4 => select(names).prop_map(Tree::text),
        1 => select(ENUM_NAMES).prop_map(Tree::text),
    ];
    match format {
        Format::Json => text.boxed(),
        Format::Cbor => prop_oneof![
            6 => text,
            1 => (select(names), prop_oneof![Just(Tree::Null), Just(Tree::Array(vec![], Len::Exact)), integer()])
                .prop_map(|(name, v)| Tree::map(vec![(Tree::text(name), v)])),
            1 => (select(names), select(&[0u64, 32, 55_799][..]))
                .prop_map(|(name, tag)| Tree::Tag(tag, Box::new(Tree::text(name)))),
        ]
        .boxed(),
    }
}

fn record(format: Format) -> BoxedStrategy<Tree> {
    let header = object(vec![("key", string()), ("value", bytes(format))], format);
    object(
        vec![
            ("key", bytes(format)),
            ("value", bytes(format)),
            ("headers", array(header, 3)),
            ("partition", optional(small())),
            ("timestamp", optional(integer())),
        ],
        format,
    )
}

fn partition_offset(format: Format) -> BoxedStrategy<Tree> {
    object(
        vec![
            ("topic", string()),
            ("partition", small()),
            ("offset", integer()),
            ("metadata", optional(string())),
        ],
        format,
    )
}

/// A tree in the shape of a body of type `ty`.
pub fn shaped(ty: BodyType, format: Format) -> BoxedStrategy<Tree> {
    let records = || array(record(format), 4);
    let producer = || vec![("producer_id", integer()), ("producer_epoch", small())];
    let partition_produce = || {
        let mut fields = producer();
        fields.push(("base_sequence", optional(small())));
        fields.push(("transactional", boolean()));
        fields.push(("records", records()));
        fields
    };
    let fields = match ty {
        BodyType::CreateTopic => vec![
            ("name", string()),
            ("partitions", small()),
            (
                "config",
                object(
                    vec![
                        ("retention_ms", integer()),
                        (
                            "cleanup_policy",
                            enumeration(&["delete", "compact"], format),
                        ),
                    ],
                    format,
                ),
            ),
        ],
        BodyType::Produce => vec![("records", records())],
        BodyType::PartitionProduce => partition_produce(),
        BodyType::InitProducer => vec![
            ("transactional_id", optional(string())),
            ("transaction_timeout_ms", optional(integer())),
        ],
        BodyType::AddPartitions => {
            let partition = object(vec![("topic", string()), ("partition", small())], format);
            let mut fields = producer();
            fields.push(("partitions", array(partition, 3)));
            fields
        }
        BodyType::AddOffsets => {
            let mut fields = producer();
            fields.push(("group_id", string()));
            fields.push(("generation_id", small()));
            fields.push(("member_id", string()));
            fields.push(("offsets", array(partition_offset(format), 3)));
            fields
        }
        BodyType::EndTxn => producer(),
        BodyType::JoinGroup => vec![
            ("member_id", optional(string())),
            ("group_instance_id", optional(string())),
            ("topics", array(string(), 3)),
            ("session_timeout_ms", optional(integer())),
            (
                "assignor",
                optional(enumeration(&["range", "roundrobin", "sticky"], format)),
            ),
        ],
        BodyType::Heartbeat => vec![("generation_id", small())],
        BodyType::OffsetCommit => vec![
            ("generation_id", small()),
            ("member_id", string()),
            ("offsets", array(partition_offset(format), 3)),
        ],
        BodyType::CreatePartitions => vec![("count", small())],
        BodyType::MultiProduce => {
            let batch = object(
                vec![
                    ("topic", string()),
                    ("partition", small()),
                    ("batch", object(partition_produce(), format)),
                ],
                format,
            );
            vec![("partitions", array(batch, 3))]
        }
        BodyType::MultiFetch => {
            let partition = object(
                vec![
                    ("topic", string()),
                    ("partition", small()),
                    ("offset", integer()),
                    ("max_bytes", optional(integer())),
                    ("max_records", optional(integer())),
                ],
                format,
            );
            vec![
                ("partitions", array(partition, 3)),
                (
                    "isolation",
                    enumeration(&["read_committed", "read_uncommitted"], format),
                ),
                ("wait_ms", small()),
                ("min_bytes", integer()),
                ("max_bytes", integer()),
            ]
        }
    };
    object(fields, format)
}
