//! A consume-transform-produce pipeline with exactly-once results: split lines into words.
//!
//! ```text
//! kafdo topics create lines --partitions 4
//! kafdo topics create words --partitions 4
//! cargo run -p kafdo-client --example word_count -- http://127.0.0.1:8787 worker-1 &
//! kafdo produce lines < some.txt
//! kafdo consume words --from-beginning --format json --timeout-ms 3000 \
//!     | jq -r .key | sort | uniq -c          # the word counts
//! ```
//!
//! Each step consumes a batch of lines as a member of group `word-count`, emits one record per
//! word (key = the word, so one word's records share a partition), and commits those records
//! together with the input offsets in one transaction. Kill it at any moment and start it again
//! (or start several with different ids): every line's words appear exactly once in the
//! committed output, and the counts are exact.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use kafdo_client::{Client, ConsumerRecord, Error, OutputRecord, Processor, ProcessorConfig};

fn split(records: &[ConsumerRecord]) -> Vec<OutputRecord> {
    let mut out = Vec::new();
    for record in records {
        let line = String::from_utf8_lossy(record.value.as_deref().unwrap_or_default());
        for word in line.split_whitespace() {
            out.push(OutputRecord::keyed(
                "words",
                word.to_lowercase(),
                b"1".to_vec(),
            ));
        }
    }
    out
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8787".into());
    let instance = args.next().unwrap_or_else(|| "worker-1".into());
    let client = Client::connect(&url)?;
    let mut processor = Processor::new(
        client,
        "word-count",
        vec!["lines".into()],
        &format!("word-count-{instance}"),
        ProcessorConfig::default(),
    )
    .await?;
    let running = Arc::new(AtomicBool::new(true));
    let flag = running.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        flag.store(false, Ordering::SeqCst);
    });
    let committed = processor
        .run(split, || running.load(Ordering::SeqCst))
        .await?;
    eprintln!("{committed} lines processed");
    processor.close().await
}
