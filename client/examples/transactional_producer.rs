//! A transactional producer: writes batches of records to two topics atomically.
//!
//! ```text
//! kafdo topics create orders --partitions 4
//! kafdo topics create audit --partitions 1
//! cargo run -p kafdo-client --example transactional_producer -- http://127.0.0.1:8787 shop-1
//! kafdo consume orders --from-beginning --timeout-ms 2000   # read_committed: only committed
//! ```
//!
//! Every fifth transaction is aborted on purpose: its records never reach a read_committed
//! reader. A `PRODUCER_FENCED` error (another instance started with the same transactional id)
//! is fatal: the program stops.

use kafdo_client::{Client, Error, ErrorClass, ProducerConfig, TransactionalProducer};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8787".into());
    let transactional_id = args.next().unwrap_or_else(|| "shop-1".into());
    let client = Client::connect(&url)?;
    let producer =
        TransactionalProducer::init(client, &transactional_id, None, ProducerConfig::default())
            .await?;
    for txn in 0..10 {
        producer.begin_transaction()?;
        for i in 0..100 {
            let order = format!("order-{txn}-{i}");
            producer
                .send(
                    "orders",
                    Some(order.clone().into_bytes()),
                    b"placed".to_vec(),
                )
                .await?;
            producer
                .send("audit", None, format!("{order} placed").into_bytes())
                .await?;
        }
        let result = if txn % 5 == 4 {
            producer.abort_transaction().await.map(|()| "aborted")
        } else {
            producer.commit_transaction().await.map(|()| "committed")
        };
        match result {
            Ok(what) => println!("transaction {txn}: {what}"),
            // A commit that timed out may have happened: commit again, never abort.
            Err(e) if e.class() == ErrorClass::UnknownOutcome => {
                producer.commit_transaction().await?;
                println!("transaction {txn}: committed (after a retry)");
            }
            Err(e) if e.class() == ErrorClass::Abortable => {
                producer.abort_transaction().await?;
                println!("transaction {txn}: aborted ({e})");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
